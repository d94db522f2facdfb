"""Shape and parameter arithmetic for convolutions and pooling.

Everything here is plain Python on integers: no arrays are touched, so these functions can be
used to plan a network before any parameter exists, and the functional ops in
:mod:`jaxcnn.functional` use the same functions to resolve their arguments. That is what makes
"the shape ``conv_output_shape`` predicts is the shape ``conv`` returns" true by construction,
and the tests check it against the ops anyway.

Layout: channels-last everywhere, ``[B, *spatial, C]`` with 1, 2 or 3 spatial dimensions.

The output length of one spatial dimension is the textbook formula::

    out = floor((n + pad_lo + pad_hi - dilation * (k - 1) - 1) / stride) + 1

which for ``dilation=1`` and symmetric padding ``p`` is the course's ``(W - F + 2P) / S + 1``.

Padding may be given as:

  * ``'VALID'``: no padding;
  * ``'SAME'``: pad so that ``out = ceil(n / stride)``; when the total is odd the extra cell goes
    at the end (``hi``), as in TensorFlow, ``jax.lax`` and Keras;
  * ``'FULL'``: ``dilation * (k - 1)`` on both sides, so every partial overlap is computed
    (``np.convolve(..., 'full')``);
  * an ``int`` ``p``: ``p`` on both sides of every spatial dimension;
  * a sequence with one entry per spatial dimension, each an ``int`` or a ``(lo, hi)`` pair.

Strings are case-insensitive. The Keras-like model table is :func:`jaxcnn.inspect.summary`: it
needs Flax and the layers, and this module stays free of both, at the bottom of the import
graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Union

from jaxcnn import _checks

IntOrSeq = Union[int, Sequence[int]]
PaddingLike = Union[str, int, Sequence[Union[int, tuple[int, int]]]]

PADDING_STRINGS = ("VALID", "SAME", "FULL")


_is_int = _checks.is_int  # Python and NumPy integers (np.int64 from np.arange sweeps), not bools


def normalize_tuple(value: IntOrSeq, n: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
  """Returns ``value`` as a tuple of ``n`` ints, each ``>= minimum``.

  >>> normalize_tuple(2, 3, 'stride')
  (2, 2, 2)
  """
  return _checks.int_tuple(value, name, n=n, low=minimum)


def effective_kernel_size(kernel_size: int, dilation: int) -> int:
  """The span of a dilated kernel: ``dilation * (k - 1) + 1``."""
  return dilation * (kernel_size - 1) + 1


def resolve_padding(
    padding: PaddingLike,
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int] | None = None,
) -> tuple[tuple[int, int], ...]:
  """Turns any accepted ``padding`` into explicit ``(lo, hi)`` pairs, one per spatial dim.

  ``input_size``, ``kernel_size``, ``stride`` and ``dilation`` are already-normalised tuples
  of the spatial dimensions only.

  >>> resolve_padding('SAME', (5,), (3,), (2,))
  ((1, 1),)
  >>> resolve_padding('SAME', (4,), (3,), (2,))   # odd total: the extra cell goes last
  ((0, 1),)
  """
  n = len(input_size)
  if dilation is None:
    dilation = (1,) * n
  k_eff = [effective_kernel_size(k, d) for k, d in zip(kernel_size, dilation)]
  if isinstance(padding, str):
    mode = padding.upper()
    if mode == "VALID":
      return ((0, 0),) * n
    if mode == "FULL":
      return tuple((k - 1, k - 1) for k in k_eff)
    if mode == "SAME":
      pads = []
      for size, k, s in zip(input_size, k_eff, stride):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
      return tuple(pads)
    raise ValueError(
        f"unknown padding {padding!r}: expected one of {PADDING_STRINGS}, an int, or "
        "per-dimension (lo, hi) pairs")
  if isinstance(padding, bool):
    raise ValueError(f"padding must be a string, an int or (lo, hi) pairs, got {padding!r}")
  if _is_int(padding):
    if padding < 0:
      raise ValueError(f"padding (={padding}) must be >= 0")
    return ((int(padding), int(padding)),) * n
  try:
    entries = list(padding)
  except TypeError:
    raise ValueError(
        f"padding must be a string, an int or (lo, hi) pairs, got {padding!r}") from None
  if len(entries) != n:
    raise ValueError(
        f"padding {padding!r} must have one entry per spatial dimension ({n}), "
        f"got {len(entries)}")
  pads = []
  for entry in entries:
    if _is_int(entry):
      pair = (entry, entry)
    else:
      try:
        pair = tuple(entry)
      except TypeError:
        raise ValueError(f"padding entry {entry!r} in {padding!r} is not an int or a (lo, hi) "
                         "pair") from None
      if len(pair) != 2 or not all(_is_int(p) for p in pair):
        raise ValueError(f"padding entry {entry!r} in {padding!r} is not an int or a (lo, hi) "
                         "pair")
    if min(pair) < 0:
      raise ValueError(f"padding {padding!r} has a negative entry {entry!r}")
    pads.append((int(pair[0]), int(pair[1])))
  return tuple(pads)


def output_size(n: int, k: int, stride: int, pad: tuple[int, int], dilation: int = 1) -> int:
  """Output length of one spatial dimension (may be <= 0 when the window does not fit)."""
  return (n + pad[0] + pad[1] - effective_kernel_size(k, dilation)) // stride + 1


def spatial_output_size(
    input_size: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: PaddingLike,
    dilation: Sequence[int] | None = None,
    *,
    what: str = "kernel",
) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
  """Resolves padding and returns ``(output spatial size, padding pairs)``.

  Raises ``ValueError`` naming the dimension when the (dilated) window is larger than the
  padded input, i.e. when an output dimension would be empty.
  """
  n = len(input_size)
  if dilation is None:
    dilation = (1,) * n
  pads = resolve_padding(padding, input_size, kernel_size, stride, dilation)
  out = []
  for i, (size, k, s, p, d) in enumerate(zip(input_size, kernel_size, stride, pads, dilation)):
    o = output_size(size, k, s, p, d)
    if o <= 0:
      span = effective_kernel_size(k, d)
      raise ValueError(
          f"{what} of size {k}" + (f" (dilated span {span})" if d > 1 else "") +
          f" is larger than the padded input {size + p[0] + p[1]} "
          f"(size {size}, padding {p}) in spatial dimension {i}")
    out.append(o)
  return tuple(out), pads


def _split_input_shape(input_shape: Sequence[int], what: str) -> tuple[int, tuple[int, ...], int]:
  shape = tuple(input_shape)
  _checks.rank(shape, (3, 4, 5), "input_shape", where=what, is_shape=True)
  if any((not _is_int(d)) or d <= 0 for d in shape[1:]):
    raise ValueError(f"{what}: input shape {shape} has a non-positive or non-int dimension")
  return shape[0], shape[1:-1], shape[-1]


def conv_output_shape(
    input_shape: Sequence[int],
    kernel_size: IntOrSeq,
    features: int,
    *,
    stride: IntOrSeq = 1,
    padding: PaddingLike = "VALID",
    dilation: IntOrSeq = 1,
) -> tuple[int, ...]:
  """Output shape ``[B, *spatial_out, features]`` of a convolution on ``input_shape``.

  >>> conv_output_shape((1, 130, 130, 3), 3, 10)
  (1, 128, 128, 10)
  >>> conv_output_shape((1, 32, 32, 10), 5, 20, padding=2)
  (1, 32, 32, 20)
  """
  batch, spatial, _ = _split_input_shape(input_shape, "conv_output_shape")
  n = len(spatial)
  k = normalize_tuple(kernel_size, n, "kernel_size")
  s = normalize_tuple(stride, n, "stride")
  d = normalize_tuple(dilation, n, "dilation")
  out, _ = spatial_output_size(spatial, k, s, padding, d, what="kernel")
  return (batch, *out, features)


def pool_output_shape(
    input_shape: Sequence[int],
    window: IntOrSeq,
    *,
    stride: IntOrSeq | None = None,
    padding: PaddingLike = "VALID",
) -> tuple[int, ...]:
  """Output shape of a pooling layer; ``stride`` defaults to the window, as in Keras/PyTorch.

  >>> pool_output_shape((1, 128, 128, 10), 4)
  (1, 32, 32, 10)
  """
  batch, spatial, channels = _split_input_shape(input_shape, "pool_output_shape")
  n = len(spatial)
  w = normalize_tuple(window, n, "window")
  s = w if stride is None else normalize_tuple(stride, n, "stride")
  out, _ = spatial_output_size(spatial, w, s, padding, what="pooling window")
  return (batch, *out, channels)


def conv_param_count(
    kernel_size: Sequence[int] | int,
    in_channels: int,
    features: int,
    *,
    groups: int = 1,
    use_bias: bool = True,
    ndim: int = 2,
) -> int:
  """Number of parameters of a convolution: ``prod(k) * C_in / groups * C_out (+ C_out)``.

  The course's formula ``K * F * F * D_in + K`` (K filters of size F x F over D_in channels) is
  the 2-D, ``groups=1`` case. An int ``kernel_size`` means the same size in ``ndim`` dims.

  >>> conv_param_count(3, 3, 32)       # Keras Conv2D(32, 3) on RGB
  896
  """
  k = normalize_tuple(kernel_size, ndim if _is_int(kernel_size) else len(kernel_size),
                      "kernel_size")
  groups = _checks.groups(in_channels, features, groups, out_name="features")
  return math.prod(k) * (in_channels // groups) * features + (features if use_bias else 0)
