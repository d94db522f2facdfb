"""Measured choices between exact formulations of an op, for training on a CPU (off by default).

Some ops have several formulations that compute the same numbers (up to float32 summation
order) at very different speeds depending on the shape and the host: a convolution's kernel
gradient as XLA's convolution or as im2col + one matrix product, for example. This module keeps
the fastest one per (host, shape) in a JSON file, so that a choice is deterministic given the
file, and bounds what measuring may cost.

When it measures, and what it costs:

* Off until :func:`enable` (which :func:`jaxcnn.cpu.enable` calls): every op takes its plain
  formulation (for a convolution: ``lax.conv_general_dilated``) and no file is read or written.
* After :func:`enable`, a shape missing from the file is measured only while a training step is
  traced: inside :func:`measuring`, which ``jaxcnn.train``'s compiled train step enters
  (:func:`measured`). Elsewhere (evaluation, a model's init, any other jit) stored choices are
  used and a missing shape takes the plain formulation.
* Measuring time per process is bounded by ``budget_s``; past it, missing shapes take the
  plain formulation. :func:`report` says what was measured (the training loop prints it once,
  after the first step) and :func:`stats` says the totals.

The file is ``tuning.json`` in the cache folder (``$JAXCNN_CACHE_DIR``, else
``~/.cache/jaxcnn``). Entries are grouped by :func:`host_key` (backend, CPU model, jax/jaxlib
versions, ``XLA_FLAGS``): a choice measured under other flags or on another CPU does not carry
over. Only the CPU backend is tuned.

>>> from jaxcnn.cpu import tuning
>>> tuning.is_enabled()
False
>>> with tuning.measuring():
...   tuning.is_measuring()
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import pathlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

CACHE_VERSION = 1
DEFAULT_BUDGET_S = 30.0

_lock = threading.RLock()
_local = threading.local()  # .depth: how many measuring() scopes this thread is inside


@dataclasses.dataclass
class _State:
  enabled: bool = False
  budget_s: float = DEFAULT_BUDGET_S
  path: pathlib.Path | None = None
  spent_s: float = 0.0
  measured: list[str] = dataclasses.field(default_factory=list)  # op|key, in order
  skipped: set[str] = dataclasses.field(default_factory=set)  # misses past the budget
  reported: tuple[int, float, int] = (0, 0.0, 0)  # (measured, spent_s, skipped) at last report


_state = _State()
_memory: dict[str, dict[str, Any]] | None = None  # the loaded cache file, per host key
_memory_path: pathlib.Path | None = None


@dataclasses.dataclass(frozen=True)
class Stats:
  """What tuning has done in this process."""
  enabled: bool
  budget_s: float
  spent_s: float  # measuring time, seconds
  measured: int  # shapes measured
  skipped: int  # shapes a training step met after the budget was spent (plain path)
  cache_path: str | None


def default_cache_dir() -> pathlib.Path:
  """``$JAXCNN_CACHE_DIR``, else ``~/.cache/jaxcnn``: where jaxcnn keeps its caches."""
  return pathlib.Path(os.environ.get("JAXCNN_CACHE_DIR", "~/.cache/jaxcnn")).expanduser()


def enable(*, budget_s: float = DEFAULT_BUDGET_S,
           cache_path: str | os.PathLike | None = None) -> None:
  """Turns tuning on for this process (see the module docstring); :func:`jaxcnn.cpu.enable`
  calls it. ``budget_s``: total measuring seconds allowed, counting what was spent already.

  Affects functions traced afterwards: a function already jitted keeps its formulation.
  """
  global _memory
  with _lock:
    path = default_cache_dir() / "tuning.json" if cache_path is None else pathlib.Path(cache_path)
    if path != _state.path:
      _memory = None
    _state.enabled, _state.budget_s, _state.path = True, float(budget_s), path


def disable() -> None:
  """Turns tuning off: functions traced afterwards take the plain formulations."""
  with _lock:
    _state.enabled = False


def is_enabled() -> bool:
  return _state.enabled


def cache_path() -> pathlib.Path:
  """The file the choices are kept in (the default location until :func:`enable` says)."""
  return _state.path or default_cache_dir() / "tuning.json"


@contextlib.contextmanager
def measuring() -> Iterator[None]:
  """Within this scope (this thread), a traced op may measure a shape missing from the cache.

  Entered by the train step that ``jaxcnn.train`` compiles; enter it around your own train
  step's function (``jax.jit(measured(step))``) for the same behaviour. Nests.
  """
  _local.depth = getattr(_local, "depth", 0) + 1
  try:
    yield
  finally:
    _local.depth -= 1


def is_measuring() -> bool:
  """Whether this thread is inside :func:`measuring`."""
  return getattr(_local, "depth", 0) > 0


def measured(fn: Callable[..., Any]) -> Callable[..., Any]:
  """``fn`` running inside :func:`measuring`: wrap a train step before ``jax.jit`` so that its
  trace, and only its trace, may measure."""

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    with measuring():
      return fn(*args, **kwargs)

  return wrapper


def host_key() -> str:
  """What a measurement depends on besides the shape: backend, CPU, versions, XLA_FLAGS."""
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  from jaxcnn.cpu import flags  # pylint: disable=g-import-not-at-top
  return (f"{jax.default_backend()}|{flags.cpu_model()}|{os.cpu_count()} cores|"
          f"jax {jax.__version__}|jaxlib {jaxlib.__version__}|"
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '').strip()}")


def _load() -> dict[str, dict[str, Any]]:
  global _memory, _memory_path
  path = cache_path()
  if _memory is None or _memory_path != path:
    data: dict[str, Any] = {}
    try:
      data = json.loads(path.read_text())
    except (OSError, ValueError):
      pass
    if data.get("version") != CACHE_VERSION:
      data = {"version": CACHE_VERSION, "hosts": {}}
    _memory, _memory_path = data["hosts"], path
  return _memory


def lookup(op: str, key: str) -> dict[str, Any] | None:
  """The stored entry for ``op`` at ``key`` on this host (``None``: none, or tuning is off)."""
  if not _state.enabled:
    return None
  with _lock:
    return _load().get(host_key(), {}).get(f"{op}|{key}")


def store(op: str, key: str, entry: Mapping[str, Any]) -> None:
  """Records ``entry`` and rewrites the file atomically (keeping what other processes wrote).
  Does nothing while tuning is off."""
  if not _state.enabled:
    return
  with _lock:
    hosts = _load()
    hosts.setdefault(host_key(), {})[f"{op}|{key}"] = dict(entry)
    path = cache_path()
    try:
      on_disk = json.loads(path.read_text()).get("hosts", {})
    except (OSError, ValueError):
      on_disk = {}
    for h, entries in on_disk.items():  # keep entries another process stored meanwhile
      for k, v in entries.items():
        hosts.setdefault(h, {}).setdefault(k, v)
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      tmp = path.with_suffix(f".{os.getpid()}.tmp")
      tmp.write_text(json.dumps({"version": CACHE_VERSION, "hosts": hosts}, indent=1,
                                sort_keys=True) + "\n")
      os.replace(tmp, path)
    except OSError:
      pass  # a read-only home: the choice still holds for this process


def choice(op: str, key: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
  """The entry for ``op`` at ``key``: stored; else ``measure()``d now and stored, when inside
  :func:`measuring` with budget left; else ``None`` (take the plain formulation).

  ``measure`` runs in a fresh thread (:func:`run_outside_trace`), so it computes on concrete
  arrays even when called while a function is traced.
  """
  if not _state.enabled:
    return None
  entry = lookup(op, key)
  if entry is not None or not is_measuring():
    return entry
  name = f"{op}|{key}"
  with _lock:
    if _state.spent_s >= _state.budget_s:
      _state.skipped.add(name)
      return None
  t0 = time.perf_counter()  # not under the lock: the measuring thread may look choices up
  try:
    entry = run_outside_trace(measure)
  finally:
    with _lock:
      _state.spent_s += time.perf_counter() - t0
  with _lock:
    _state.measured.append(name)
  store(op, key, entry)
  return entry


def stats() -> Stats:
  """Totals for this process (see :class:`Stats`)."""
  with _lock:
    return Stats(_state.enabled, _state.budget_s, _state.spent_s, len(_state.measured),
                 len(_state.skipped), str(cache_path()) if _state.enabled else None)


def report() -> str | None:
  """One line on what was measured since the last report, or ``None`` when nothing was.

  ``'CPU conv tuning: 6 shapes measured in 4.1 s (cache: ~/.cache/jaxcnn/tuning.json)'``, plus
  the shapes left to the plain formulation once the budget was spent.
  """
  with _lock:
    n0, s0, k0 = _state.reported
    n, spent, k = len(_state.measured), _state.spent_s, len(_state.skipped)
    _state.reported = (n, spent, k)
    ops = sorted({name.split("|", 1)[0] for name in [*_state.measured[n0:], *_state.skipped]})
  if n == n0 and k == k0:
    return None
  line = (f"CPU {'/'.join(ops)} tuning: {n - n0} shape{'s' * (n - n0 != 1)} measured in "
          f"{spent - s0:.1f} s (cache: {cache_path()})")
  if k > k0:
    line += (f"; measuring budget ({_state.budget_s:g} s) spent: {k - k0} more "
             f"{'shapes take' if k - k0 != 1 else 'shape takes'} the plain path")
  return line


def time_candidates(candidates: Mapping[str, Callable[[], Any]], *, budget_s: float = 0.3,
                    max_reps: int = 15, min_reps: int = 3,
                    clock: Callable[[], float] = time.perf_counter,
                    stat: Callable[[list[float]], float] = statistics.median) -> dict[str, float]:
  """Seconds per call (``stat``: median, or ``min``) of each zero-argument, blocking candidate,
  timed in turns (ABAB).

  Each candidate is called once untimed (compilation), then timed in alternation so that load
  from other processes hits all alike; the number of rounds fits ``budget_s`` (at least
  ``min_reps``).
  ``clock``: ``time.perf_counter`` (wall) or ``time.process_time`` (CPU-seconds of the process).
  """
  import jax  # pylint: disable=g-import-not-at-top
  first = {}
  for name, fn in candidates.items():
    jax.block_until_ready(fn())
    t0 = clock()
    jax.block_until_ready(fn())
    first[name] = clock() - t0
  reps = int(max(min_reps, min(max_reps, budget_s / max(sum(first.values()), 1e-6))))
  times: dict[str, list[float]] = {name: [t] for name, t in first.items()}
  for _ in range(reps - 1):
    for name, fn in candidates.items():
      t0 = clock()
      jax.block_until_ready(fn())
      times[name].append(clock() - t0)
  return {name: float(stat(t)) for name, t in times.items()}


def run_outside_trace(fn: Callable[[], Any]) -> Any:
  """Runs ``fn`` in a fresh thread, i.e. outside any ``jit``/``grad`` trace of the caller.

  JAX's tracing state is thread-local, so the measurement's own computations run eagerly on
  concrete arrays even when an op asks for its choice while being traced.
  """
  box: dict[str, Any] = {}

  def target():
    try:
      box["value"] = fn()
    except BaseException as e:  # pylint: disable=broad-except
      box["error"] = e

  t = threading.Thread(target=target, name="jaxcnn-tuning")
  t.start()
  t.join()
  if "error" in box:
    raise box["error"]
  return box["value"]
