"""Measure-once, cache-forever choices between exact formulations of an op (CPU tuning).

Some ops have several formulations that compute the same numbers (up to float32 summation
order) at very different speeds depending on the shape and the host: a convolution's kernel
gradient as XLA's convolution or as im2col + one matrix product, for example. This module times
the candidates once per (host, shape), keeps the winner in a JSON file, and answers later
questions from that file, so that a choice is deterministic given the cache.

The switch, ``$JAXCNN_TUNING`` or :func:`set_mode` (the call wins over the variable):

* ``'on'`` (default): use the cached choice; on a miss, measure and store it.
* ``'cached'``: use the cached choice; on a miss, use the plain formulation (never measure).
* ``'off'``: always the plain formulation (for a convolution: ``lax.conv_general_dilated``).

The cache is ``$JAXCNN_CACHE_DIR/tuning.json`` (``~/.cache/jaxcnn/tuning.json`` by default;
:func:`set_cache_path` moves it). Entries are grouped by :func:`host_key` (backend, CPU model,
jax/jaxlib versions, ``XLA_FLAGS``), because a choice measured under other flags or on another
CPU does not carry over. Tuning only runs on the CPU backend; elsewhere the plain path is used.

>>> from jaxcnn import _tuning
>>> _tuning.set_mode('off'); _tuning.get_mode()
'off'
>>> _tuning.set_mode(None)  # back to $JAXCNN_TUNING (default 'on')
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

MODES = ("on", "cached", "off")
CACHE_VERSION = 1

_lock = threading.RLock()
_mode_override: str | None = None
_cache_path_override: pathlib.Path | None = None
_memory: dict[str, dict[str, Any]] | None = None  # the loaded cache file, per host key
_memory_path: pathlib.Path | None = None


def get_mode() -> str:
  """The active mode: :func:`set_mode`'s value, else ``$JAXCNN_TUNING``, else ``'on'``."""
  mode = _mode_override or os.environ.get("JAXCNN_TUNING", "on").strip().lower() or "on"
  if mode not in MODES:
    raise ValueError(f"`JAXCNN_TUNING` (={mode!r}) must be one of {', '.join(MODES)}")
  return mode


def set_mode(mode: str | None) -> None:
  """Sets the tuning mode for this process (``None``: back to ``$JAXCNN_TUNING``).

  Affects functions traced afterwards; a function already jitted keeps the formulation it was
  traced with (clear it with ``jax.clear_caches()``).
  """
  global _mode_override
  if mode is not None and mode not in MODES:
    raise ValueError(f"tuning mode (={mode!r}) must be one of {', '.join(MODES)} or None")
  _mode_override = mode


def cache_path() -> pathlib.Path:
  """Where the choices are kept: ``$JAXCNN_CACHE_DIR/tuning.json`` unless :func:`set_cache_path`."""
  if _cache_path_override is not None:
    return _cache_path_override
  root = pathlib.Path(os.environ.get("JAXCNN_CACHE_DIR", "~/.cache/jaxcnn")).expanduser()
  return root / "tuning.json"


def set_cache_path(path: str | os.PathLike | None) -> None:
  """Uses ``path`` as the cache file for this process (``None``: the default location)."""
  global _cache_path_override, _memory
  with _lock:
    _cache_path_override = None if path is None else pathlib.Path(path)
    _memory = None


def host_key() -> str:
  """What a measurement depends on besides the shape: backend, CPU, versions, XLA_FLAGS."""
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  from jaxcnn import xla_flags  # pylint: disable=g-import-not-at-top  (jax-free)
  return (f"{jax.default_backend()}|{xla_flags.cpu_model()}|{os.cpu_count()} cores|"
          f"jax {jax.__version__}|"
          f"jaxlib {jaxlib.__version__}|XLA_FLAGS={os.environ.get('XLA_FLAGS', '').strip()}")


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
  """The cached entry for ``op`` at ``key`` on this host, or ``None``."""
  with _lock:
    return _load().get(host_key(), {}).get(f"{op}|{key}")


def store(op: str, key: str, entry: Mapping[str, Any]) -> None:
  """Records ``entry`` and rewrites the cache file atomically (merging what others wrote)."""
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
  concrete arrays even when a convolution asks for its choice while being traced.
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
