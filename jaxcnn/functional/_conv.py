"""Convolutions: cross-correlation (``conv``), true convolution (``convolve``) and im2col.

Layout is channels-last: ``x: [B, *spatial, C_in]`` with 1, 2 or 3 spatial dimensions (the
rank of ``x`` picks which), kernels ``w: [*kernel_size, C_in // groups, C_out]``, outputs
``[B, *spatial_out, C_out]``. Stride, dilation and padding are resolved by
:mod:`jaxcnn.shapes`, so ``shapes.conv_output_shape`` predicts exactly the shape returned here.

All argument checking looks only at static shapes and Python values, so every function here
works unchanged under ``jax.jit`` (with the keyword arguments static) and ``jax.grad``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn import _checks, shapes
from jaxcnn.functional import _conv_fast, _ynn_guard
from jaxcnn.functional._core import get_activation
from jaxcnn.shapes import IntOrSeq, PaddingLike

Array = jax.Array
ArrayLike = Any  # jax.Array, np.ndarray or anything jnp.asarray accepts.

_LAYOUTS = {1: "[B, W, C]", 2: "[B, H, W, C]", 3: "[B, D, H, W, C]"}


def _spatial_rank(x: ArrayLike, name: str = "x") -> int:
  """Number of spatial dimensions of a channels-last input; raises for a rank other than 3-5."""
  return _checks.rank(x, (3, 4, 5), name) - 2


def _check_conv_args(x: ArrayLike, w: ArrayLike, b: ArrayLike | None, groups: int) -> int:
  """Validates the shapes of a convolution's operands; returns the number of spatial dims."""
  n = _spatial_rank(x)
  x_shape, w_shape = jnp.shape(x), jnp.shape(w)
  if len(w_shape) != len(x_shape):
    raise ValueError(
        f"`w` must have rank {len(x_shape)} ([*kernel_size, C_in // groups, C_out]) to match "
        f"`x` of shape {x_shape}, got shape {w_shape} (rank {len(w_shape)})")
  c_in, c_out = x_shape[-1], w_shape[-1]
  hint = _checks.channels_last_hint(x_shape)
  groups = _checks.groups(c_in, None, groups, fix=hint)
  if w_shape[-2] * groups != c_in:
    raise ValueError(_checks.with_fix(
        f"`w.shape[-2]` (={w_shape[-2]}) times `groups` (={groups}) must equal the input "
        f"channels `x.shape[-1]` (={c_in}); `w` has shape {w_shape}, `x` has shape {x_shape}",
        hint))
  _checks.groups(None, c_out, groups, out_from="w.shape[-1]")
  if b is not None and tuple(jnp.shape(b)) != (c_out,):
    raise ValueError(f"bias `b` must have shape ({c_out},) = [C_out], got {jnp.shape(b)}")
  return n


def _resolve(
    x_shape: tuple[int, ...],
    kernel_size: IntOrSeq,
    stride: IntOrSeq,
    padding: PaddingLike,
    dilation: IntOrSeq,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...],
           tuple[int, ...]]:
  """Normalises (kernel_size, stride, dilation) and resolves padding through :mod:`shapes`."""
  n = len(x_shape) - 2
  k = shapes.normalize_tuple(kernel_size, n, "kernel_size")
  s = shapes.normalize_tuple(stride, n, "stride")
  d = shapes.normalize_tuple(dilation, n, "dilation")
  out, pads = shapes.spatial_output_size(x_shape[1:-1], k, s, padding, d, what="kernel")
  return k, s, d, pads, out


# The CPU convolution backend while one is active (jaxcnn.cpu.onednn installs it), else None:
# ``backend(x, w, b, *, stride, padding, dilation, groups, precision, activation)`` with
# resolved geometry (``padding`` as (lo, hi) pairs) and ``activation`` a callable or None;
# it returns ``activation(conv(x, w) + b)``, or None to leave the convolution to the XLA path.
_cpu_conv_backend = None


def set_cpu_conv_backend(backend) -> None:
  """Installs (or, with ``None``, removes) the CPU convolution backend used by :func:`conv`."""
  global _cpu_conv_backend
  _cpu_conv_backend = backend


def _add_bias(y: Array, b: ArrayLike | None) -> Array:
  if b is None:
    return y
  # Explicit reshape: the test config forbids implicit rank promotion.
  return y + jnp.asarray(b).astype(y.dtype).reshape((1,) * (y.ndim - 1) + (y.shape[-1],))


def conv(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrSeq = 1,
    padding: PaddingLike = "VALID",
    dilation: IntOrSeq = 1,
    groups: int = 1,
    precision: lax.PrecisionLike = None,
    activation: Any = None,
) -> Array:
  """N-D convolution layer op (cross-correlation, as in every deep-learning framework).

  ``y[b, o..., co] = sum_{k..., ci} x_pad[b, o*stride + k*dilation ..., ci] * w[k..., ci, co]
  (+ b[co])``, summing ``ci`` over the input channels of ``co``'s group. The kernel is *not*
  flipped; see :func:`convolve` for the flipped (mathematical) convolution.

  Args:
    x: ``[B, W, C_in]``, ``[B, H, W, C_in]`` or ``[B, D, H, W, C_in]``; the rank picks 1/2/3-D.
    w: ``[*kernel_size, C_in // groups, C_out]``.
    b: optional bias ``[C_out]``, added in the output dtype.
    stride: int or one int per spatial dimension, each >= 1.
    padding: ``'VALID'``, ``'SAME'``, ``'FULL'``, an int, or per-dimension ints / ``(lo, hi)``
      pairs (see :mod:`jaxcnn.shapes`).
    dilation: kernel (atrous) dilation, int or per dimension, each >= 1.
    groups: feature groups; ``C_in`` and ``C_out`` must be divisible by it
      (``groups == C_in`` is a depthwise convolution).
    precision: passed to ``lax.conv_general_dilated`` unchanged (``None``: backend default).
    activation: ``None``, a name from ``ACTIVATIONS`` or a callable, applied after the bias:
      the result is ``activation(conv(x, w, b))``. While the oneDNN CPU extension is active
      (:mod:`jaxcnn.cpu.onednn`) it is fused into the convolution where oneDNN can.

  Returns:
    ``[B, *spatial_out, C_out]`` with ``spatial_out`` as given by
    ``shapes.conv_output_shape``, in the promoted dtype of ``x`` and ``w``.

  >>> x = jnp.arange(16.).reshape(1, 4, 4, 1); w = jnp.ones((3, 3, 1, 1))
  >>> conv(x, w)[0, :, :, 0].tolist()
  [[45.0, 54.0], [81.0, 90.0]]
  """
  n = _check_conv_args(x, w, b, groups)
  act = None if activation is None else get_activation(activation)
  x, w = jnp.asarray(x), jnp.asarray(w)
  _, s, d, pads, _ = _resolve(x.shape, w.shape[:n], stride, padding, dilation)
  dtype = jnp.result_type(x, w)
  x, w = x.astype(dtype), w.astype(dtype)
  if _cpu_conv_backend is not None:
    y = _cpu_conv_backend(x, w, b, stride=s, padding=pads, dilation=d, groups=groups,
                          precision=precision, activation=act)
    if y is not None:
      return y
  # After jaxcnn.cpu.enable(), on CPU each part (forward, input gradient, kernel gradient) may
  # use a faster exact formulation, measured once per shape and cached (jaxcnn.cpu.tuning).
  spec = _conv_fast.ConvSpec(n, tuple(s), tuple(tuple(p) for p in pads), tuple(d), groups,
                             tuple(precision) if isinstance(precision, list) else precision)
  tuned = _conv_fast.choose(x.shape, w.shape, dtype, spec)
  if tuned is not None:
    y = _conv_fast.conv_tuned(x, w, tuned)
    y = y if b is None else _conv_fast.bias_add(y, jnp.asarray(b).astype(y.dtype))
  else:
    y = _add_bias(_conv_fast.xla_conv(x, w, spec), b)
  return y if act is None else act(y)


def _conv_nd(n: int, name: str):
  def fn(
      x: ArrayLike,
      w: ArrayLike,
      b: ArrayLike | None = None,
      *,
      stride: IntOrSeq = 1,
      padding: PaddingLike = "VALID",
      dilation: IntOrSeq = 1,
      groups: int = 1,
      precision: lax.PrecisionLike = None,
      activation: Any = None,
  ) -> Array:
    _checks.rank(x, n + 2, where=f"`{name}`", fix="use `conv` for any spatial rank")
    return conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                precision=precision, activation=activation)

  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = (
      f"{n}-D :func:`conv`: ``x: {_LAYOUTS[n]}``, ``w: [*kernel_size ({n}), C_in // groups, "
      f"C_out]``.\n\n  Same keyword arguments as :func:`conv`; raises ``ValueError`` for an "
      f"input of another rank.\n  ")
  return fn


conv1d = _conv_nd(1, "conv1d")
conv2d = _conv_nd(2, "conv2d")
conv3d = _conv_nd(3, "conv3d")


def convolve(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrSeq = 1,
    padding: PaddingLike = "VALID",
    dilation: IntOrSeq = 1,
    groups: int = 1,
    precision: lax.PrecisionLike = None,
) -> Array:
  """True (mathematical) convolution: :func:`conv` with every spatial kernel axis flipped.

  Convolution vs cross-correlation. Deep-learning "convolution" layers (``conv`` here,
  ``Conv2D`` in Keras, ``nn.Conv2d`` in PyTorch) compute a *cross-correlation*: the kernel
  slides over the input as it is, ``y[i] = sum_k x[i + k] w[k]``. The convolution of signal
  processing flips the kernel first, ``y[i] = sum_k x[i - k] w[k]``. For a learned kernel the
  difference does not matter (the network simply learns the flipped kernel), but it does when a
  fixed kernel is applied, and it is why ``np.convolve`` / ``scipy.signal.convolve2d`` agree
  with this function while ``np.correlate`` / ``scipy.signal.correlate2d`` agree with ``conv``.
  Convolution is commutative and associative; cross-correlation is not.

  Worked example, ``x = [1, 2, 3]``, ``w = [1, 0, -1]``, one ``'VALID'`` output:
  cross-correlation ``1*1 + 2*0 + 3*(-1) = -2``; convolution uses ``[-1, 0, 1]`` and gives
  ``1*(-1) + 2*0 + 3*1 = 2`` (``np.convolve([1, 2, 3], [1, 0, -1], 'valid') == [2]``).

  Arguments, shapes and result are as for :func:`conv`; only the kernel's spatial axes are
  reversed (not its channel axes), so strides, padding, dilation and groups keep their meaning.

  >>> x = jnp.array([1., 2., 3.]).reshape(1, 3, 1); w = jnp.array([1., 0., -1.]).reshape(3, 1, 1)
  >>> float(conv(x, w)[0, 0, 0]), float(convolve(x, w)[0, 0, 0])
  (-2.0, 2.0)
  """
  n = _check_conv_args(x, w, b, groups)
  w = jnp.flip(jnp.asarray(w), axis=tuple(range(n)))
  return conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
              precision=precision)


def patches(
    x: ArrayLike,
    kernel_size: IntOrSeq,
    *,
    stride: IntOrSeq = 1,
    padding: PaddingLike = "VALID",
    dilation: IntOrSeq = 1,
) -> Array:
  """Extracts every receptive field of a convolution (im2col).

  Args:
    x: ``[B, *spatial, C]`` with 1, 2 or 3 spatial dimensions.
    kernel_size, stride, padding, dilation: as for :func:`conv`.

  Returns:
    ``[B, *spatial_out, prod(kernel_size) * C]``: the patch under each output position,
    flattened in the order ``(kernel positions..., C)``, i.e. the row-major order of a kernel
    ``w: [*kernel_size, C, C_out]``. Hence
    ``patches(x, k) @ w.reshape(-1, C_out) == conv(x, w)`` (for ``groups=1``).
    (``lax.conv_general_dilated_patches`` orders channel-major and computes the patches with a
    one-hot convolution; here they are strided slices of the padded input, which is exact for
    every dtype and costs no multiplications.)

  >>> x = jnp.arange(16.).reshape(1, 4, 4, 1)
  >>> patches(x, 3).shape
  (1, 2, 2, 9)
  >>> patches(x, 3)[0, 0, 0].tolist()
  [0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 9.0, 10.0]
  """
  n = _spatial_rank(x)
  x = jnp.asarray(x)
  k, s, d, pads, out = _resolve(x.shape, kernel_size, stride, padding, dilation)
  xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  batch, channels = x.shape[0], x.shape[-1]
  slices = []
  for offset in itertools.product(*(range(ki) for ki in k)):
    start = tuple(o * di for o, di in zip(offset, d))
    limit = tuple(st + (o - 1) * si + 1 for st, o, si in zip(start, out, s))
    slices.append(lax.slice(xp, (0, *start, 0), (batch, *limit, channels), (1, *s, 1)))
  stacked = jnp.stack(slices, axis=n + 1)  # [B, *out, prod(k), C]
  return stacked.reshape((batch, *out, math.prod(k) * channels))


def conv_via_patches(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride: IntOrSeq = 1,
    padding: PaddingLike = "VALID",
    dilation: IntOrSeq = 1,
    groups: int = 1,
    precision: lax.PrecisionLike = None,
) -> Array:
  """:func:`conv` computed as one matrix product of :func:`patches` with the kernel.

  The "patch classifier" view of a conv layer: cut the input into every patch the kernel can
  see, flatten each into a vector of ``prod(kernel_size) * C_in`` numbers, and apply the *same*
  dense layer (``C_out`` linear units, i.e. the kernel reshaped to
  ``[prod(kernel_size) * C_in, C_out]``) to every patch. A convolution is a dense layer shared
  over positions; weight sharing and locality are all that distinguish it from an MLP.
  This is also how many libraries used to implement convolutions (im2col + GEMM).

  Arguments, shapes and result are as for :func:`conv` (``groups > 1`` multiplies each group's
  slice of the patch by its own block of the kernel).

  >>> x = jnp.arange(16.).reshape(1, 4, 4, 1); w = jnp.ones((3, 3, 1, 1))
  >>> conv_via_patches(x, w)[0, :, :, 0].tolist()
  [[45.0, 54.0], [81.0, 90.0]]
  """
  n = _check_conv_args(x, w, b, groups)
  x, w = jnp.asarray(x), jnp.asarray(w)
  dtype = jnp.result_type(x, w)
  x, w = x.astype(dtype), w.astype(dtype)
  k = w.shape[:n]
  c_in, c_out = x.shape[-1], w.shape[-1]
  p = patches(x, k, stride=stride, padding=padding, dilation=dilation)
  # bfloat16 on an affected XLA CPU: the product kept out of the fusions around it, with the
  # same values (jaxcnn.functional._ynn_guard).
  p, w = _ynn_guard.isolate(p, w)
  if groups == 1:
    y = jnp.dot(p, w.reshape(-1, c_out), precision=precision)
  else:
    # Split the channel axis of patch and kernel into (group, channel-in-group).
    kk = math.prod(k)
    p = p.reshape(p.shape[:-1] + (kk, groups, c_in // groups))
    wg = w.reshape(kk, c_in // groups, groups, c_out // groups)
    y = jnp.einsum("...kgc,kcgo->...go", p, wg, precision=precision)
    y = y.reshape(y.shape[:-2] + (c_out,))
  return _add_bias(_ynn_guard.isolate(y)[0], b)


def _patches_formulation(x, w, spec: _conv_fast.ConvSpec):
  return conv_via_patches(x, w, stride=spec.stride, padding=spec.pads, dilation=spec.dilation,
                          groups=spec.groups, precision=spec.precision)


# The tuner's im2col formulation is this module's conv_via_patches; registering it here keeps
# the import graph one-way (_conv -> _conv_fast).
_conv_fast.register_formulation("patches", _patches_formulation)
