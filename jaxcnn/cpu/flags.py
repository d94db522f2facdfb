"""XLA CPU flags measured per jaxlib version and CPU vendor, and the host facts they depend on.

Nothing here changes the process on import, and nothing here imports JAX at import time.
:func:`jaxcnn.cpu.enable` adds :func:`recommended` flags to ``XLA_FLAGS``; XLA reads that
variable once, when JAX starts its backends, so the flags only work when added before JAX's
first computation (:func:`backends_started`).

Why per jaxlib *and* vendor: the flags are experimental, XLA aborts on a flag it does not know
(``--xla_cpu_experimental_ynn_fusion_type`` is unknown to jaxlib 0.7.2), and a flag measured on
one vendor's CPU is not assumed to help another's. Each row of :data:`FLAG_TABLE` comes from one
command, ``python -m experiments.benchmarks.bench_cpu_flags``, which times candidate flag sets
on the train steps of the tutorial CNN and ResNet-20 and prints the row it recommends.

What the flags do (BENCHMARKS.md has the numbers and commands):

* ``--xla_cpu_experimental_ynn_fusion_type=`` (empty: no YNNPACK fusions). jaxlib 0.10's CPU
  backend hands convolutions to YNNPACK, which computes a convolution's *kernel* gradient (a
  convolution with a window as large as the feature map) several times slower than XLA's own
  Eigen convolution (BENCHMARKS.md, "CPU flags per jaxlib", has the step times and the
  command).
* ``--xla_cpu_use_fusion_emitters=false`` (jaxlib 0.7.2): XLA CPU compiles its fusions with the
  older loop emitters instead of the fusion emitters; the tutorial CNN's train step is 1.41x
  faster with it, ResNet-20's unchanged (0.98x).
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import re
import shutil
import sys
from typing import NamedTuple

YNNPACK_OFF = "--xla_cpu_experimental_ynn_fusion_type="
FUSION_EMITTERS_OFF = "--xla_cpu_use_fusion_emitters=false"

# (jaxlib version measured, CPU vendor id from /proc/cpuinfo, flags); see :func:`recommended`
# for how an unmeasured jaxlib is served. Re-measure a row with
# `python -m experiments.benchmarks.bench_cpu_flags`, which prints the row to paste here.
FLAG_TABLE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # Each row's measurement: BENCHMARKS.md, "CPU flags per jaxlib".
    ("0.7.2", "AuthenticAMD", (FUSION_EMITTERS_OFF,)),
    ("0.10.2", "AuthenticAMD", (YNNPACK_OFF,)),
    # The benchmark's pick for 0.12.1 is XLA's oneDNN custom calls (1.13x on the XLA conv path);
    # with jaxcnn's oneDNN extension, which enable() turns on where it is installed, the flag
    # made the cpu70 speed run slower, so the row stays empty (BENCHMARKS.md has both).
    ("0.12.1", "AuthenticAMD", ()),
)

# What each flag does, in the words :func:`jaxcnn.cpu.enable` prints.
DESCRIPTIONS = {
    YNNPACK_OFF: "YNNPACK fusions off",
    "--xla_cpu_multi_thread_eigen=false": "single-threaded Eigen",
    "--xla_cpu_experimental_onednn_custom_call=true": "oneDNN custom calls",
    "--xla_cpu_prefer_vector_width=512": "512-bit vectors",
    FUSION_EMITTERS_OFF: "fusion emitters off",
}


class Recommendation(NamedTuple):
  """The flags for one jaxlib and vendor, the table row they come from, and what to say."""
  flags: tuple[str, ...]
  measured_on: str | None  # the jaxlib version of the row used (None: no row)
  note: str | None  # one phrase when the row is not an exact match, else None


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


def machine_accelerator() -> str | None:
  """The accelerator this machine has, whatever JAX sees: ``'tpu'``, ``'gpu'`` or ``None``.

  TPU: a TPU VM exposes ``/dev/accel*`` (or ``/dev/vfio`` devices for newer chips) and Colab sets
  ``TPU_ACCELERATOR_TYPE`` / ``COLAB_TPU_ADDR``; GPU: ``/dev/nvidia0`` or ``nvidia-smi``.
  """
  if (os.environ.get("TPU_ACCELERATOR_TYPE") or os.environ.get("COLAB_TPU_ADDR")
      or glob.glob("/dev/accel*")):
    return "tpu"
  if os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi"):
    return "gpu"
  return None


def jaxlib_version() -> str | None:
  """The installed jaxlib's version (``None`` when jaxlib is not installed)."""
  try:
    return importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return None


def _major_minor(version: str) -> tuple[int, ...]:
  return tuple(int(p) for p in re.findall(r"\d+", version)[:2])


def _patch(version: str) -> int:
  parts = re.findall(r"\d+", version)
  return int(parts[2]) if len(parts) > 2 else 0


def recommended(version: str | None = None, vendor: str | None = None) -> Recommendation:
  """The :data:`FLAG_TABLE` flags for jaxlib ``version`` on ``vendor`` (default: this host).

  An exact row wins. A jaxlib without a row gets the row of the nearest measured patch release
  of the same major.minor version (flags do not appear or vanish within one), and the note
  says so; without one, no flags (an unknown flag would abort XLA), and the note says so too.

  >>> recommended('0.10.2', 'AuthenticAMD').flags
  ('--xla_cpu_experimental_ynn_fusion_type=',)
  >>> recommended('0.99.0', 'AuthenticAMD').flags
  ()
  """
  version = jaxlib_version() if version is None else version
  vendor = cpu_vendor() if vendor is None else vendor
  if version is None:
    return Recommendation((), None, "jaxlib is not installed")
  rows = [(v, flags) for v, row_vendor, flags in FLAG_TABLE if row_vendor == vendor]
  for v, flags in rows:
    if v == version:
      return Recommendation(flags, v, None)
  near = [(abs(_patch(v) - _patch(version)), v, flags) for v, flags in rows
          if _major_minor(v) == _major_minor(version)]
  if near:
    _, v, flags = min(near)
    return Recommendation(flags, v, f"jaxlib {version} not measured: flags of jaxlib {v}")
  measured = ", ".join(sorted({v for v, _ in rows}, key=_major_minor)) or "none"
  return Recommendation((), None, f"no XLA flags measured for jaxlib {version} on "
                                  f"{vendor or 'this CPU'} (measured: {measured})")


def describe(flag: str) -> str:
  """A flag in a few words (the flag itself where :data:`DESCRIPTIONS` has none)."""
  return DESCRIPTIONS.get(flag, flag)


def backends_started() -> bool:
  """Whether JAX has started its backends (after which ``XLA_FLAGS`` is no longer read)."""
  if "jax" not in sys.modules:
    return False
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  return bool(getattr(xla_bridge, "_backends", None))


def flag_names(xla_flags: str) -> set[str]:
  """The flag names set in an ``XLA_FLAGS`` value: ``'--a=1 --b'`` -> ``{'--a', '--b'}``."""
  return {token.split("=", 1)[0] for token in xla_flags.split()}


def add_to_environment(flags: tuple[str, ...]) -> tuple[str, ...]:
  """Appends ``flags`` to ``$XLA_FLAGS``, except those the user set (by name); returns the
  flags added. Raises ``RuntimeError`` once JAX's backends run (the flags would do nothing)."""
  if backends_started():
    raise RuntimeError("XLA flags must be added before JAX's first computation: XLA reads "
                       "XLA_FLAGS once, when its backends start")
  current = os.environ.get("XLA_FLAGS", "")
  taken = flag_names(current)
  added = tuple(f for f in flags if f.split("=", 1)[0] not in taken)
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
  return added
