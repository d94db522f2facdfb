"""Keeps bfloat16 matrix products on XLA CPU out of a YNNPACK fusion that some jaxlibs miscompile.

XLA's CPU backend hands fused subgraphs to YNNPACK. In jaxlib 0.11.2 to 0.12.1 (the newest
measured), a **bfloat16** fusion whose root is a reduction, and in which one broadcast constant
feeds two elementwise ops, returns garbage (NaN, inf or values near 3e38) once that broadcast has
4096 elements or more. The commonest such constant is the zero of ``relu = max(x, 0)``: XLA
merges the zeros of two same-shaped ReLUs into one broadcast. A conv layer meets it when YNNPACK
fuses ``relu -> conv -> bias/BatchNorm -> relu -> max-pool`` into one fusion (the two ReLUs of a
``C -> C`` conv have the same shape), a dense layer likewise: the jitted bfloat16 forward pass
of VGG, ResNet-18, ResNet-9 or a Wide ResNet is then NaN. Measured correct: jaxlib 0.7.2,
0.10.2 (which fuses the same graph), 0.11.0, 0.11.1; float32 and float16 on every version.
``tests/test_functional_ynn_guard.py`` keeps the reproduction in plain JAX.

:func:`isolate` wraps the operands and the result of a convolution or a matrix product in
``lax.optimization_barrier`` where the bug can bite (CPU backend, bfloat16, an affected
jaxlib), so XLA cannot fuse the product with the ops around it and the ReLUs before and after
it never share a fusion through it. A barrier is the identity (and so is its derivative): the
values are exactly those of the same product without it; what it costs is the fusion of the
neighbouring elementwise ops into the product (``experiments/benchmarks/bench_bf16_guard.py`` measures
it). Elsewhere :func:`isolate` returns its arguments unchanged and the compiled program is the
same as without it. It guards jaxcnn's own products only: other bfloat16 code can still meet
the bug (two ReLUs and a reduction with no product between them suffice).
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
from jax import lax

# The jaxlib releases whose XLA CPU miscompiles the fusion, as [first, end): measured affected
# 0.11.2, 0.12.0, 0.12.1; correct 0.7.2, 0.10.2, 0.11.0, 0.11.1. ``None``: no fixed release
# measured yet (tests/test_functional_ynn_guard.py fails the day one is: then set it).
AFFECTED_JAXLIB = ((0, 11, 2), None)


def _version_tuple(version: str) -> tuple[int, ...]:
  m = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
  if m is None:
    raise ValueError(f"cannot read a jaxlib version from {version!r}")
  return tuple(int(g) for g in m.groups())


def jaxlib_affected(version: str | None = None) -> bool:
  """Whether jaxlib ``version`` (default: the installed one) has the YNNPACK bfloat16 bug.

  >>> jaxlib_affected("0.10.2"), jaxlib_affected("0.12.1")
  (False, True)
  """
  if version is None:
    import jaxlib  # pylint: disable=g-import-not-at-top
    version = jaxlib.__version__
  v = _version_tuple(version)
  first, end = AFFECTED_JAXLIB
  return v >= first and (end is None or v < end)


@functools.lru_cache(maxsize=None)
def _installed_jaxlib_affected() -> bool:
  return jaxlib_affected()


def needs_isolation(dtype) -> bool:
  """Whether a product computed in ``dtype`` must be kept out of YNNPACK's fusions here:
  bfloat16 on the CPU backend of an affected jaxlib."""
  return (jnp.dtype(dtype) == jnp.bfloat16 and _installed_jaxlib_affected()
          and jax.default_backend() == "cpu")


def isolate(*arrays, dtype=None):
  """``arrays`` behind one ``lax.optimization_barrier`` where :func:`needs_isolation` holds for
  ``dtype`` (default: the first array's), else ``arrays`` unchanged; always a tuple."""
  if not needs_isolation(arrays[0].dtype if dtype is None else dtype):
    return arrays
  return tuple(lax.optimization_barrier(arrays))
