"""A convolution whose forward pass, input gradient and kernel gradient each use the fastest
exact formulation for their shape on this host (CPU), measured once and cached, after
:func:`jaxcnn.cpu.enable`.

Why: XLA CPU computes every part of a conv layer as a convolution, but a kernel gradient is a
convolution whose window is the whole feature map, and that is where XLA CPU (with or without
YNNPACK) is slowest; im2col + one matrix product (``patches(x)^T @ dy``) is the same sum in
another order, and often faster. Which one wins depends on the shape, the CPU and the XLA
flags, so it is measured rather than guessed (:mod:`jaxcnn.cpu.tuning`: only while a training
step is compiled, within a time budget; before ``jaxcnn.cpu.enable()`` never).

Formulations (each a bilinear function ``f(x, w)`` with the same value):

* ``'xla'``: ``lax.conv_general_dilated`` (:func:`xla_conv`, also the plain path of ``conv``); its
  gradients are XLA's transposed convolutions.
* ``'patches'``: :func:`jaxcnn.functional.patches` (strided slices, no arithmetic) and one
  ``dot``; its kernel gradient is one GEMM, its input gradient a GEMM and a col2im scatter-add.

``conv_tuned`` is a ``jax.custom_jvp``: the tangent is ``f_dx(dx, w) + f_dw(x, dw)``, so
reverse mode transposes ``f_dx`` for the input gradient and ``f_dw`` for the kernel gradient,
forward mode and higher orders work, and an unused input gradient (the first layer) is never
computed (symbolic zeros). Results differ from the plain path only in float32 summation order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn import _checks
from jaxcnn.cpu import tuning
from jaxcnn.functional import _ynn_guard

FORMULATIONS = ("xla", "patches")
PARTS = ("fwd", "dx", "dw")
OP = "conv"
# A formulation other than 'xla' must beat it by this factor to be chosen: a 5% difference is
# noise on a shared machine, and 'xla' is the plain path.
MARGIN = 0.9
# The measurement runs on at most this many examples: a conv's cost grows linearly with the
# batch, so the ranking holds, while measuring an evaluation batch of thousands (im2col of
# 2,000 CIFAR images at 16 channels is 1.2 GB; 3 parts x 2 formulations x 7 calls) took
# minutes and gigabytes before the first step of a speed run.
MEASURE_MAX_BATCH = 256


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """Static description of one convolution: resolved geometry and the chosen formulations."""
  n: int
  stride: tuple[int, ...]
  pads: tuple[tuple[int, int], ...]
  dilation: tuple[int, ...]
  groups: int
  precision: Any
  fwd: str = "xla"
  dx: str = "xla"
  dw: str = "xla"

  def with_choice(self, choice: dict[str, str]) -> "ConvSpec":
    return dataclasses.replace(self, **{p: choice[p] for p in PARTS})


# (input, kernel, output) layouts handed to lax: batch first, channels last, kernels [*k, I, O].
DIMENSION_NUMBERS = {
    1: ("NWC", "WIO", "NWC"),
    2: ("NHWC", "HWIO", "NHWC"),
    3: ("NDHWC", "DHWIO", "NDHWC"),
}


def xla_conv(x, w, spec: ConvSpec):
  """``lax.conv_general_dilated`` for ``spec``; in bfloat16 on an affected XLA CPU, kept out
  of the fusions around it (:mod:`jaxcnn.functional._ynn_guard`), with the same values."""
  x, w = _ynn_guard.isolate(x, w)
  y = lax.conv_general_dilated(
      x, w, window_strides=spec.stride, padding=spec.pads, rhs_dilation=spec.dilation,
      dimension_numbers=DIMENSION_NUMBERS[spec.n], feature_group_count=spec.groups,
      precision=spec.precision)
  return _ynn_guard.isolate(y)[0]


# name -> f(x, w, spec): "patches" (im2col + one matrix product) is registered by
# jaxcnn.functional._conv, which defines it, so this module never imports that one.
_FORMS = {"xla": xla_conv}


def register_formulation(name: str, fn) -> None:
  _checks.choice(name, "formulation", FORMULATIONS)
  _FORMS[name] = fn


def _is_zero(t) -> bool:
  return isinstance(t, jax.custom_derivatives.SymbolicZero)


def _conv_impl(x, w, spec):
  return _FORMS[spec.fwd](x, w, spec)


_conv = jax.custom_jvp(_conv_impl, nondiff_argnums=(2,))


def _conv_jvp(spec, primals, tangents):
  x, w = primals
  tx, tw = tangents
  y = _conv(x, w, spec)
  terms = []
  if not _is_zero(tx):
    terms.append(_FORMS[spec.dx](tx, w, spec))
  if not _is_zero(tw):
    terms.append(_FORMS[spec.dw](x, tw, spec))
  if not terms:
    return y, jnp.zeros_like(y)
  return y, terms[0] if len(terms) == 1 else terms[0] + terms[1]


_conv.defjvp(_conv_jvp, symbolic_zeros=True)


def shape_key(x_shape, w_shape, dtype, spec: ConvSpec) -> str:
  """The cache key of one convolution: shapes, dtype, geometry, precision."""
  return (f"x{tuple(x_shape)}|w{tuple(w_shape)}|{np.dtype(dtype).name}|s{spec.stride}|"
          f"p{spec.pads}|d{spec.dilation}|g{spec.groups}|{spec.precision}")


def measure(x_shape, w_shape, dtype, spec: ConvSpec, budget_s: float = 0.3) -> dict[str, Any]:
  """Times every formulation of each part on random arrays; returns the cache entry.

  ``{'fwd': name, 'dx': name, 'dw': name, 'ms': {'fwd': {name: ms}, ...}, 'batch': n}``: the
  batch is capped at :data:`MEASURE_MAX_BATCH` examples (``n``), times are for that batch.
  """
  rng = np.random.default_rng(0)
  x_shape = (min(int(x_shape[0]), MEASURE_MAX_BATCH), *x_shape[1:])
  x = jnp.asarray(rng.standard_normal(x_shape), dtype)
  w = jnp.asarray(rng.standard_normal(w_shape), dtype)
  g = jnp.asarray(rng.standard_normal(jax.eval_shape(lambda: xla_conv(x, w, spec)).shape), dtype)
  entry: dict[str, Any] = {"ms": {}, "batch": x_shape[0]}
  for part in PARTS:
    cands = {}
    for name in FORMULATIONS:
      f = _FORMS[name]
      if part == "fwd":
        fn = jax.jit(lambda x, w, f=f: f(x, w, spec))
        cands[name] = lambda fn=fn: fn(x, w)
      elif part == "dx":
        fn = jax.jit(lambda x, w, g, f=f: jax.vjp(lambda x: f(x, w, spec), x)[1](g)[0])
        cands[name] = lambda fn=fn: fn(x, w, g)
      else:
        fn = jax.jit(lambda x, w, g, f=f: jax.vjp(lambda w: f(x, w, spec), w)[1](g)[0])
        cands[name] = lambda fn=fn: fn(x, w, g)
    # The minimum over turns: other processes' load only ever adds time, so on a shared machine
    # the fastest of several alternated calls is the steadiest estimate of a formulation's cost.
    t = tuning.time_candidates(cands, budget_s=budget_s, min_reps=5, stat=min)
    best = min(t, key=t.get)
    entry[part] = best if t[best] < MARGIN * t["xla"] else "xla"
    entry["ms"][part] = {k: round(v * 1e3, 4) for k, v in t.items()}
  return entry


def choose(x_shape, w_shape, dtype, spec: ConvSpec) -> ConvSpec | None:
  """The spec with its formulations chosen, or ``None`` for the plain path.

  ``None`` when tuning is off (before ``jaxcnn.cpu.enable()``), the backend is not the CPU, or
  the cache has no entry for this shape and it cannot be measured now (outside a training
  step's trace, or past the measuring budget; see :func:`jaxcnn.cpu.tuning.choice`). A cached
  entry is used as it is: deterministic given the cache.
  """
  if not tuning.is_enabled() or jax.default_backend() != "cpu":
    return None
  entry = tuning.choice(OP, shape_key(x_shape, w_shape, dtype, spec),
                        lambda: measure(x_shape, w_shape, dtype, spec))
  if entry is None or not all(entry.get(p) in _FORMS for p in PARTS):
    return None  # nothing stored, or an entry written by another version: ignore it
  return spec.with_choice(entry)


def conv_tuned(x, w, spec: ConvSpec):
  """``x * w`` (no bias) with the formulations named in ``spec`` (see the module docstring)."""
  return _conv(x, w, spec)


def _bias_add_impl(y, b):
  return y + b.reshape((1,) * (y.ndim - 1) + (y.shape[-1],))


bias_add = jax.custom_jvp(_bias_add_impl)
bias_add.__doc__ = """``y + b`` over the channel axis, whose bias gradient is a matrix-vector product.

``y: [..., C]``, ``b: [C]``. The bias gradient ``sum over all positions of dy`` is a reduction over
the major axes of a ``[N, C]`` array, which XLA CPU runs 2-5x slower than the same sum written as
``ones[N] @ dy[N, C]`` (BENCHMARKS.md, section 1.3). The tangent is written as that outer product,
so reverse mode transposes it into the product. Same values up to float32 summation order.
"""


def _bias_add_jvp(primals, tangents):
  y, b = primals
  ty, tb = tangents
  out = _bias_add_impl(y, b)
  terms = [] if _is_zero(ty) else [ty]
  if not _is_zero(tb):
    n, c = math.prod(y.shape[:-1]), y.shape[-1]
    terms.append((jnp.ones((n, 1), tb.dtype) @ tb.reshape(1, c)).reshape(y.shape))
  if not terms:
    return out, jnp.zeros_like(out)
  return out, terms[0] if len(terms) == 1 else terms[0] + terms[1]


bias_add.defjvp(_bias_add_jvp, symbolic_zeros=True)
