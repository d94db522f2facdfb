"""XLA CPU flags that make the course's CNNs train faster on CPU, for entry points to apply.

XLA reads ``XLA_FLAGS`` once, when JAX starts its backends, so flags can only be set by the
program's entry point before the first computation; library code never sets them on its own.
``experiments/train.py`` calls :func:`apply_recommended_cpu_flags` first thing (``--xla_cpu_tuning``
turns it off).

What and why (measured on a 2-core CPU, numbers and command in BENCHMARKS.md):

* ``--xla_cpu_experimental_ynn_fusion_type=`` (empty: no YNNPACK fusions). jaxlib 0.10's CPU
  backend hands convolutions to YNNPACK, which computes a convolution's *weight* gradient (a
  convolution with a window as large as the feature map) several times slower than XLA's own
  Eigen convolution. With it off, the tutorial CNN's Adam step at batch 32 went from 22.5 ms to
  13.2 ms (PyTorch CPU: 11.0 ms channels-last, 14.9 ms NCHW).

The flag is experimental, and XLA aborts on flags it does not know, so it is only applied for
the jaxlib versions it was measured on (:data:`TESTED_JAXLIB`); elsewhere nothing is changed.
It only concerns the CPU backend: GPU and TPU runs are unaffected.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

RECOMMENDED_CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)
TESTED_JAXLIB = ("0.10.",)  # version prefixes the flags were measured on


def recommended_cpu_flags(jaxlib_version: str | None = None) -> tuple[str, ...]:
  """The flags to add for this jaxlib (``()`` when it is not a version they were tested on)."""
  if jaxlib_version is None:
    try:
      jaxlib_version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
      return ()
  return RECOMMENDED_CPU_FLAGS if jaxlib_version.startswith(TESTED_JAXLIB) else ()


def apply_recommended_cpu_flags() -> tuple[str, ...]:
  """Adds :func:`recommended_cpu_flags` to ``$XLA_FLAGS``; returns the flags added.

  A flag the user already set (by name) is left as the user set it. Raises ``RuntimeError`` when
  JAX's backends are already running, since the flags would then silently do nothing.
  """
  if "jax" in sys.modules:
    from jax._src import xla_bridge  # the only way to ask whether backends exist yet
    if getattr(xla_bridge, "_backends", None):
      raise RuntimeError("apply_recommended_cpu_flags() must run before JAX's first computation: "
                         "XLA reads XLA_FLAGS once, at backend start-up")
  current = os.environ.get("XLA_FLAGS", "")
  added = tuple(f for f in recommended_cpu_flags() if f.split("=")[0] not in current)
  if added:
    os.environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
  return added
