"""XLA CPU flags and JAX's compilation cache: what makes the course's CNNs train fast on a CPU.

XLA reads ``XLA_FLAGS`` once, when JAX starts its backends. ``import jaxcnn`` therefore applies
:func:`recommended_cpu_flags` itself when JAX's backends have not started yet (the usual
notebook order: imports first), and ``experiments/train.py`` does so explicitly
(``--noxla_cpu_tuning`` to skip). When JAX already ran a computation, nothing is changed (the
flags would silently do nothing): import jaxcnn before computing.

Opt-outs (environment variables, read at ``import jaxcnn``):

* ``JAXCNN_XLA_FLAGS=0``: leave ``XLA_FLAGS`` alone.
* ``JAXCNN_COMPILATION_CACHE=0``: do not switch on JAX's persistent compilation cache.

A flag the user set (by name) in ``XLA_FLAGS`` always wins.

What and why (measured on 2-core CPUs; numbers and commands in BENCHMARKS.md):

* ``--xla_cpu_experimental_ynn_fusion_type=`` (empty: no YNNPACK fusions). jaxlib 0.10's CPU
  backend hands convolutions to YNNPACK, which computes a convolution's *weight* gradient (a
  convolution with a window as large as the feature map) several times slower than XLA's own
  Eigen convolution. With it off, the tutorial CNN's Adam step at batch 32 went from 22.5 ms to
  13.2 ms on an AMD EPYC (PyTorch: 11.0 ms channels-last); the issue-12 Intel Xeon numbers were
  taken with it off as well.

Flags are chosen per jaxlib version *and* CPU vendor (:data:`FLAG_TABLE`): the flags are
experimental, XLA aborts on flags it does not know, and a flag measured on one vendor's CPU is
not assumed to help another's. Elsewhere nothing is changed. GPU and TPU runs are unaffected.

The persistent compilation cache (:func:`enable_compilation_cache`) keeps compiled programs in
``$JAXCNN_CACHE_DIR/xla`` (``~/.cache/jaxcnn/xla``), so a second run of the same model skips
the 1-1.5 s first-step compilation; only programs that took at least
:data:`CACHE_MIN_COMPILE_SECONDS` to compile are stored.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import platform
import sys

YNNPACK_OFF = "--xla_cpu_experimental_ynn_fusion_type="
# (jaxlib version prefix, CPU vendor id from /proc/cpuinfo, flags), first match wins.
FLAG_TABLE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("0.10.", "AuthenticAMD", (YNNPACK_OFF,)),  # measured: BENCHMARKS.md, AMD EPYC
    ("0.10.", "GenuineIntel", (YNNPACK_OFF,)),  # measured: issue 12, Intel Xeon
)
RECOMMENDED_CPU_FLAGS = (YNNPACK_OFF,)  # the flags for the hosts measured so far
TESTED_JAXLIB = tuple(sorted({row[0] for row in FLAG_TABLE}))
CACHE_MIN_COMPILE_SECONDS = 0.3

# What ``import jaxcnn`` did: flags added to XLA_FLAGS, and the compilation cache folder.
APPLIED_AT_IMPORT: tuple[str, ...] = ()
COMPILATION_CACHE_DIR: str | None = None


def _cpuinfo_field(name: str) -> str:
  """The first ``name : value`` of /proc/cpuinfo (``''`` where it is absent)."""
  try:
    with open("/proc/cpuinfo") as f:
      return next((l.split(":", 1)[1].strip() for l in f if l.startswith(name)), "")
  except OSError:
    return ""


def cpu_vendor() -> str:
  """``'GenuineIntel'``, ``'AuthenticAMD'``, ... (``''`` where /proc/cpuinfo is absent)."""
  return _cpuinfo_field("vendor_id")


def cpu_model() -> str:
  """The CPU's model name, e.g. ``'AMD EPYC'``, for benchmark headers and the tuning cache."""
  return (_cpuinfo_field("model name") or platform.processor() or platform.machine()
          or "unknown")


def recommended_cpu_flags(jaxlib_version: str | None = None,
                          vendor: str | None = None) -> tuple[str, ...]:
  """The flags to add for this jaxlib and CPU vendor (``()`` when they were not measured)."""
  if jaxlib_version is None:
    try:
      jaxlib_version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
      return ()
  vendor = cpu_vendor() if vendor is None else vendor
  for prefix, row_vendor, flags in FLAG_TABLE:
    if jaxlib_version.startswith(prefix) and vendor == row_vendor:
      return flags
  return ()


def backends_started() -> bool:
  """Whether JAX has started its backends (after which XLA_FLAGS is no longer read)."""
  if "jax" not in sys.modules:
    return False
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  return bool(getattr(xla_bridge, "_backends", None))


def apply_recommended_cpu_flags() -> tuple[str, ...]:
  """Adds :func:`recommended_cpu_flags` to ``$XLA_FLAGS``; returns the flags added.

  A flag the user already set (by name) is left as the user set it. Raises ``RuntimeError`` when
  JAX's backends are already running, since the flags would then silently do nothing.
  """
  if backends_started():
    raise RuntimeError("apply_recommended_cpu_flags() must run before JAX's first computation: "
                       "XLA reads XLA_FLAGS once, at backend start-up")
  current = os.environ.get("XLA_FLAGS", "")
  added = tuple(f for f in recommended_cpu_flags() if f.split("=")[0] not in current)
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
  return added


def remove_import_flags() -> tuple[str, ...]:
  """Takes the flags ``import jaxcnn`` added back out of ``$XLA_FLAGS`` (before JAX starts).

  For entry points with an opt-out flag (``experiments/train.py --noxla_cpu_tuning``). Returns
  the flags removed; raises ``RuntimeError`` when JAX's backends are already running.
  """
  global APPLIED_AT_IMPORT
  if backends_started():
    raise RuntimeError("remove_import_flags() must run before JAX's first computation")
  removed, APPLIED_AT_IMPORT = APPLIED_AT_IMPORT, ()
  if removed:
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if f not in removed]
    os.environ["XLA_FLAGS"] = " ".join(kept)
  return removed


def enable_compilation_cache(path: str | os.PathLike | None = None,
                             min_compile_seconds: float = CACHE_MIN_COMPILE_SECONDS) -> str | None:
  """Points JAX's persistent compilation cache at ``path`` (default ``$JAXCNN_CACHE_DIR/xla``).

  Returns the folder, or ``None`` when the user already set ``jax_compilation_cache_dir`` (kept).
  """
  import jax  # pylint: disable=g-import-not-at-top
  if jax.config.jax_compilation_cache_dir:
    return None
  if path is None:
    root = pathlib.Path(os.environ.get("JAXCNN_CACHE_DIR", "~/.cache/jaxcnn")).expanduser()
    path = root / "xla"
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
  return str(path)


def _env_off(name: str) -> bool:
  return os.environ.get(name, "1").strip().lower() in ("0", "false", "no", "off")


def apply_at_import() -> None:
  """What ``import jaxcnn`` runs: the CPU flags (if JAX has not started) and the cache."""
  global APPLIED_AT_IMPORT, COMPILATION_CACHE_DIR
  if not _env_off("JAXCNN_XLA_FLAGS") and not backends_started():
    APPLIED_AT_IMPORT = apply_recommended_cpu_flags()
  if not _env_off("JAXCNN_COMPILATION_CACHE"):
    COMPILATION_CACHE_DIR = enable_compilation_cache()
