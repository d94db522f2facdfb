"""CPU speed for training, turned on by one explicit call: :func:`enable`.

Importing jaxcnn changes nothing in the process. ``jaxcnn.cpu.enable()``, called before JAX's
first computation (the training CLIs and the notebooks that train call it first), turns on:

1. **XLA CPU flags** measured for this jaxlib version and CPU vendor (:mod:`jaxcnn.cpu.flags`),
   added to ``XLA_FLAGS``; a flag you set yourself (by name) is kept as you set it.
2. **Conv tuning** (:mod:`jaxcnn.cpu.tuning`): each convolution's forward pass, input gradient
   and kernel gradient use the fastest exact formulation for its shape, measured while a
   training step is compiled, within a total time budget, and kept in ``tuning.json``.
3. **JAX's persistent compilation cache** in ``xla/`` of the cache folder, so a second run of
   the same model skips most of its first-step compilation (programs that took at least
   :data:`CACHE_MIN_COMPILE_SECONDS` to compile are kept). A cache folder you configured in
   JAX yourself is kept.
4. **The oneDNN extension** (``jaxcnn.cpu.onednn``) where it is installed and available.
5. **glibc's allocator keeps freed memory** (:func:`keep_freed_memory`): XLA CPU allocates a
   step's temporaries afresh at every step; with glibc's defaults each large one is a new
   ``mmap`` whose pages fault in again, thousands of page faults per step. With
   ``M_MMAP_MAX = 0`` and a high ``M_TRIM_THRESHOLD`` the freed memory is reused instead. The
   process then keeps its peak memory until it exits, as a training process does anyway.

It prints one line saying what it turned on and what it could not, and returns a
:class:`Status`; :func:`status` says the same later. Where JAX will run on a TPU or GPU (the
machine has one and JAX has its plugin, or ``JAX_PLATFORMS`` names it), it does nothing and says
so; it never starts JAX to find out. Results change at most
in float32 summation order.

>>> import jaxcnn.cpu
>>> jaxcnn.cpu.status().tuning
False
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import pathlib
import pkgutil

from jaxcnn import _checks
from jaxcnn.cpu import flags as flags_lib
from jaxcnn.cpu import tuning as tuning_lib

CACHE_MIN_COMPILE_SECONDS = 0.3
ONEDNN_MODES = (True, False, "auto")


@dataclasses.dataclass(frozen=True)
class Status:
  """What :func:`enable` turned on in this process.

  ``xla_flags``: the flags jaxcnn added to ``XLA_FLAGS``; ``tuning_*``: the conv tuning's budget
  and, from :func:`status`, what it measured so far; ``compilation_cache``: JAX's persistent
  cache folder when it is on; ``notes``: what could not be done or needs saying, one phrase each.
  """
  platform: str  # 'cpu', 'tpu', 'gpu', ...
  xla_flags: tuple[str, ...] = ()
  tuning: bool = False
  tuning_budget_s: float = 0.0
  tuning_measured: int = 0
  tuning_seconds: float = 0.0
  compilation_cache: str | None = None
  onednn: bool = False
  keep_freed_memory: bool = False
  notes: tuple[str, ...] = ()

  def line(self) -> str:
    """The one line :func:`enable` prints."""
    on = []
    if self.xla_flags:
      on.append(f"XLA flags ({', '.join(flags_lib.describe(f) for f in self.xla_flags)})")
    if self.tuning:
      on.append(f"conv tuning (at most {self.tuning_budget_s:g} s of measuring)")
    if self.compilation_cache:
      on.append(f"compilation cache ({self.compilation_cache})")
    if self.onednn:
      on.append("oneDNN")
    if self.keep_freed_memory:
      on.append("malloc keeps freed memory")
    if not on and self.notes:
      return "jaxcnn.cpu: " + "; ".join(self.notes)
    return "; ".join(["jaxcnn.cpu: " + ("on: " + ", ".join(on) if on else "nothing turned on"),
                      *self.notes])


_status: Status | None = None  # the last enable()'s record


def _platform() -> str:
  """The platform JAX runs (or will run) on, without starting JAX where it has not started."""
  if flags_lib.backends_started():
    import jax  # pylint: disable=g-import-not-at-top
    return jax.default_backend()
  import jax  # pylint: disable=g-import-not-at-top
  asked = (jax.config.jax_platforms or "").split(",")[0].strip().lower()
  if asked:
    return "gpu" if asked in ("cuda", "rocm") else asked
  accelerator = flags_lib.machine_accelerator()
  return accelerator if accelerator and _jax_supports(accelerator) else "cpu"


def _jax_supports(accelerator: str) -> bool:
  """Whether the installed JAX has a backend for ``accelerator`` (else it runs on the CPU)."""
  if accelerator == "tpu":
    return importlib.util.find_spec("libtpu") is not None
  try:
    import jax_plugins  # pylint: disable=g-import-not-at-top  (the PJRT plugins' namespace)
  except ImportError:
    return False
  return any(m.name.startswith(("xla_cuda", "xla_rocm"))
             for m in pkgutil.iter_modules(jax_plugins.__path__))


def _compilation_cache(path: pathlib.Path) -> tuple[str | None, str | None]:
  """Points JAX's persistent compilation cache at ``path``; returns (folder in use, note)."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental.compilation_cache import (  # pylint: disable=g-import-not-at-top
      compilation_cache)
  current = jax.config.jax_compilation_cache_dir
  if current and (_status is None or current != _status.compilation_cache):
    return current, None  # the user's own setting wins
  try:  # JAX would warn at every compilation that it cannot read or write the folder
    path.mkdir(parents=True, exist_ok=True)
    writable = os.access(path, os.W_OK)
  except OSError:
    writable = False
  if not writable:
    return None, f"compilation cache off: {path} is not writable"
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
  if flags_lib.backends_started():
    compilation_cache.reset_cache()  # JAX decides at its first compilation whether to use one
  return str(path), None


def _onednn(mode) -> tuple[bool, str | None]:
  """Activates the oneDNN extension when installed and available; returns (active, note)."""
  if mode is False:
    return False, None
  if importlib.util.find_spec("jaxcnn.cpu.onednn") is None:
    return False, "oneDNN extension not installed" if mode is True else None
  ext = importlib.import_module("jaxcnn.cpu.onednn")
  ok, why = ext.available()
  if not ok:  # 'auto' stays quiet: the extension is an optional extra
    return False, f"oneDNN extension not used: {why}" if mode is True else None
  ext.activate()
  return bool(ext.is_active()), None


# glibc's mallopt parameters (malloc.h) and the values keep_freed_memory sets.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
TRIM_THRESHOLD_BYTES = 2**31 - 1  # the largest an int holds (mallopt takes an int)


def keep_freed_memory() -> bool:
  """Makes glibc's malloc reuse freed memory instead of returning it to the system (one arena,
  no ``mmap`` per large allocation, no trimming below 2 GiB of free memory); returns whether it
  applied (False where the C library is not glibc). Part of :func:`enable`.
  """
  import ctypes  # pylint: disable=g-import-not-at-top
  import ctypes.util  # pylint: disable=g-import-not-at-top
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to set
    return False
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  # One arena: a thread's own arena serves a block larger than its heap (64 MiB) with a fresh
  # mmap whatever M_MMAP_MAX says, and XLA's worker threads allocate a step's temporaries.
  return all(mallopt(param, value) for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)))


def enable(*, flags: bool = True, tuning: bool = True, compilation_cache: bool = True,
           onednn: bool | str = "auto", malloc: bool = True,
           cache_dir: str | os.PathLike | None = None,
           tuning_budget_s: float = tuning_lib.DEFAULT_BUDGET_S,
           verbose: bool = True) -> Status:
  """Turns on jaxcnn's CPU acceleration (see the module docstring); call it before JAX computes.

  Args:
    flags: add the measured XLA CPU flags to ``XLA_FLAGS`` (only before JAX's first
      computation: XLA reads them once, when JAX starts).
    tuning: measure and use per-shape conv formulations (:mod:`jaxcnn.cpu.tuning`).
    compilation_cache: switch on JAX's persistent compilation cache in ``cache_dir/xla``.
    onednn: ``'auto'``: the oneDNN extension when it is installed and available; ``True``: the
      same, and say so when it is not; ``False``: leave it off.
    malloc: :func:`keep_freed_memory` (glibc only).
    cache_dir: where the caches go (default ``$JAXCNN_CACHE_DIR``, else ``~/.cache/jaxcnn``).
    tuning_budget_s: total seconds this process may spend measuring conv formulations.
    verbose: print the one line saying what was turned on.

  Returns:
    :class:`Status`. Calling it again is harmless: what is on stays on.

  >>> import jaxcnn.cpu
  >>> jaxcnn.cpu.enable()  # doctest: +SKIP
  jaxcnn.cpu: on: XLA flags (YNNPACK fusions off), conv tuning (at most 30 s of measuring), ...
  """
  global _status
  for value, name in ((flags, "flags"), (tuning, "tuning"),
                      (compilation_cache, "compilation_cache"), (malloc, "malloc"),
                      (verbose, "verbose")):
    _checks.boolean(value, name)
  if not (isinstance(onednn, bool) or onednn == "auto"):  # 1 == True: compare types first
    _checks.choice(onednn, "onednn", ("True", "False", "'auto'"))
  tuning_budget_s = _checks.number(tuning_budget_s, "tuning_budget_s", 0.0, fix="seconds")
  root = tuning_lib.default_cache_dir() if cache_dir is None else pathlib.Path(cache_dir)
  root = root.expanduser()
  previous = _status or Status(platform="")
  platform = _platform()
  if platform != "cpu":
    _status = dataclasses.replace(previous, platform=platform,
                                  notes=(f"not a CPU backend ({platform}): nothing to do",))
  else:
    notes: list[str] = []
    added = previous.xla_flags
    if flags:
      rec = flags_lib.recommended()
      wanted = tuple(f for f in rec.flags if f not in added)
      if rec.note:
        notes.append(rec.note)
      if wanted and flags_lib.backends_started():
        notes.append("XLA flags not applied: JAX already started; call jaxcnn.cpu.enable() "
                     "before the first computation")
      elif wanted:
        added += flags_lib.add_to_environment(wanted)
        kept = [f for f in wanted if f not in added]
        if kept:
          notes.append(f"kept your XLA_FLAGS setting of {', '.join(f.split('=')[0] for f in kept)}")
    if tuning:
      tuning_lib.enable(budget_s=float(tuning_budget_s), cache_path=root / "tuning.json")
    cache = previous.compilation_cache
    if compilation_cache:
      cache, note = _compilation_cache(root / "xla")
      notes += [note] if note else []
    active, note = _onednn(onednn)
    notes += [note] if note else []
    kept_memory = previous.keep_freed_memory or (malloc and keep_freed_memory())
    t = tuning_lib.stats()
    _status = Status(platform="cpu", xla_flags=added, tuning=t.enabled,
                     tuning_budget_s=t.budget_s if t.enabled else 0.0, compilation_cache=cache,
                     onednn=active or previous.onednn, keep_freed_memory=kept_memory,
                     notes=tuple(notes))
  if verbose:
    print(_status.line(), flush=True)
  return status()


def status() -> Status:
  """What is on now: the last :func:`enable`'s record with the tuning's totals so far.

  Before any :func:`enable`, everything is off (and JAX is not started to find the platform).
  """
  if _status is None:
    return Status(platform=_platform())
  t = tuning_lib.stats()
  return dataclasses.replace(_status, tuning=t.enabled, tuning_measured=t.measured,
                             tuning_seconds=t.spent_s)
