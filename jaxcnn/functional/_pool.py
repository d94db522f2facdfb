"""Pooling: max, average, sum, L^p and global pools, channels-last, 1-D/2-D/3-D.

The spatial rank is read from ``x.ndim`` (``[B, W, C]``, ``[B, H, W, C]`` or
``[B, D, H, W, C]``). ``window`` and ``stride`` are an int or one int per spatial dimension;
``stride`` defaults to the window (non-overlapping pooling, as in Keras and PyTorch). ``padding``
is anything :func:`jaxcnn.shapes.resolve_padding` accepts (``'VALID'``, ``'SAME'``, ``'FULL'``,
an int, per-dimension ints or ``(lo, hi)`` pairs), and the output shape is exactly
:func:`jaxcnn.shapes.pool_output_shape`.

How padded cells count:
  * ``max_pool``: padding is ``-inf``, so a padded cell never wins (a window lying entirely in
    padding, which only explicit padding of at least the window size can make, gives ``-inf``).
  * ``sum_pool`` and ``lp_pool``: padding is zero, so it adds nothing.
  * ``avg_pool(count_include_pad=True)`` (the default, as in PyTorch): padded cells are zeros that
    *do* count in the denominator, which is always ``prod(window)``.
    ``count_include_pad=False`` (Keras/TensorFlow ``'same'`` average pooling) divides by the
    number of real cells in each window (a window with none gives 0).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn import _checks, shapes
from jaxcnn.shapes import IntOrSeq, PaddingLike

__all__ = ["max_pool", "avg_pool", "sum_pool", "lp_pool", "global_avg_pool", "global_max_pool"]


def _check_rank(x: jax.Array, what: str) -> int:
  """Returns the number of spatial dims of ``x`` ([B, *spatial, C]) or raises."""
  return _checks.rank(x, (3, 4, 5), where=what) - 2


def _resolve(x: jax.Array, window: IntOrSeq, stride: IntOrSeq | None, padding: PaddingLike,
             what: str):
  """Normalises the pooling arguments with :mod:`jaxcnn.shapes`.

  Returns ``(window, stride, pads, out_spatial)`` over the spatial dims only.
  """
  n = _check_rank(x, what)
  w = shapes.normalize_tuple(window, n, "window")
  s = w if stride is None else shapes.normalize_tuple(stride, n, "stride")
  out, pads = shapes.spatial_output_size(x.shape[1:-1], w, s, padding, what="pooling window")
  return w, s, pads, out


def _reduce(x: jax.Array, init, op, w, s, pads) -> jax.Array:
  """Reduces each window with ``op`` (``lax.max`` or ``lax.add``), over the spatial dims only.

  Non-overlapping windows (``stride == window``, the usual 2x2 pool) are computed as a reshape
  followed by a reduction over the window axes. The values are those of ``lax.reduce_window``,
  but the gradient is much cheaper on CPU: XLA turns ``reduce_window``'s max backward
  (``select_and_scatter``) into index arrays and a serial scatter, which made the pools the
  largest cost of the tutorial CNN's train step (measurements in BENCHMARKS.md). Overlapping
  windows use ``lax.reduce_window``.

  The max of floats is differentiated with switches on both paths, by custom JVP rules whose
  transposes are elementwise selects (no ``select_and_scatter``): each window's derivative is
  that of one cell, the first maximal cell in row-major order (:func:`_max_to_one_cell`,
  :func:`_window_max`), in forward and reverse mode, whatever order XLA reduces a window in.
  """
  init = np.asarray(init, dtype=x.dtype)
  pads = tuple(tuple(p) for p in pads)
  if tuple(s) != tuple(w):
    if op is lax.max and jnp.issubdtype(x.dtype, jnp.inexact):
      return _window_max(x, init.item(), tuple(w), tuple(s), pads)
    return _reduce_window(x, init, op, w, s, pads)
  if any(p != (0, 0) for p in pads):
    x = lax.pad(x, init, ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))
  out = [n // k for n, k in zip(x.shape[1:-1], w)]
  x = x[(slice(None), *(slice(0, o * k) for o, k in zip(out, w)))]
  tiled = [d for o, k in zip(out, w) for d in (o, k)]
  x = x.reshape(x.shape[0], *tiled, x.shape[-1])
  window_axes = tuple(range(2, 2 + 2 * len(w), 2))
  if op is lax.max:
    return _max_to_one_cell(x, window_axes, sliced=True)
  return jnp.sum(x, axis=window_axes, dtype=x.dtype)


def _reduce_window(x: jax.Array, init, op, w, s, pads) -> jax.Array:
  return lax.reduce_window(x, init, op, window_dimensions=(1, *w, 1),
                           window_strides=(1, *s, 1), padding=((0, 0), *pads, (0, 0)))


def _window_cells(a: jax.Array, w, s, out):
  """Yields the cells of every window of ``a`` (padded already), one strided slice per offset
  in the window, in row-major order: slice ``k`` holds cell ``k`` of every window, aligned with
  the output ``[B, *out, C]``. Memory O(output) per slice; ``prod(window)`` slices."""
  batch, channels = a.shape[0], a.shape[-1]
  for offset in itertools.product(*(range(k) for k in w)):
    start = (0, *offset, 0)
    limit = (batch, *(o + (n - 1) * st + 1 for o, n, st in zip(offset, out, s)), channels)
    yield lax.slice(a, start, limit, (1, *s, 1))


def _max_to_one_cell(x: jax.Array, axes: tuple[int, ...], *, sliced: bool) -> jax.Array:
  """``jnp.max(x, axis=axes)``, differentiated with a switch: each window's derivative is that
  of one cell, the first maximal one in row-major order over ``axes`` (the index PyTorch's
  ``max_pool`` returns). ``jnp.max``'s own rule shares a tie equally instead.

  ``sliced``: find the switch with one slice per window cell, elementwise work only (small
  pooling windows: as fast as ``jnp.max``'s rule); else with one more reduction over ``axes``
  (global pools, whose window is every position)."""
  if not jnp.issubdtype(x.dtype, jnp.inexact):
    return jnp.max(x, axis=axes)  # no derivative to route
  return _max_switch(x, axes, sliced)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _max_switch(x: jax.Array, axes: tuple[int, ...], sliced: bool) -> jax.Array:
  del sliced
  return jnp.max(x, axis=axes)


@_max_switch.defjvp
def _max_switch_jvp(axes, sliced, primals, tangents):
  (x,), (t,) = primals, tangents
  window = [x.shape[a] for a in axes]
  cells = math.prod(window)
  # Each cell's row-major position inside its window (a small constant, 1 off the window axes).
  pos = np.arange(cells, dtype=np.int32).reshape(
      [x.shape[a] if a in axes else 1 for a in range(x.ndim)])
  y = jnp.max(x, axis=axes)
  if sliced:
    first = jnp.full(y.shape, cells, jnp.int32)
    offsets = list(itertools.product(*(range(k) for k in window)))
    for k in reversed(range(cells)):  # the last write is the first maximum
      cell = x
      for a, o in sorted(zip(axes, offsets[k]), reverse=True):
        cell = lax.index_in_dim(cell, o, axis=a, keepdims=False)
      first = jnp.where(cell == y, np.int32(k), first)
    first = jnp.expand_dims(first, axes)
  else:
    y_full = jnp.expand_dims(y, axes)
    first = jnp.min(jnp.where(x == y_full, pos, cells), axis=axes, keepdims=True)
  y_dot = jnp.sum(jnp.where(pos == first, t, jnp.zeros_like(t)), axis=axes)
  return y, y_dot


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3, 4))
def _window_max(x: jax.Array, init: float, w, s, pads) -> jax.Array:
  """Max pooling of float ``x`` over (overlapping) windows, padded with ``init``; the
  derivative of each window is that of its first maximal cell in row-major order."""
  return _reduce_window(x, np.asarray(init, x.dtype), lax.max, w, s, pads)


@_window_max.defjvp
def _window_max_jvp(init, w, s, pads, primals, tangents):
  (x,), (t,) = primals, tangents
  init = np.asarray(init, x.dtype)
  y = _reduce_window(x, init, lax.max, w, s, pads)
  config = ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0))
  out = y.shape[1:-1]
  cells = _window_cells(lax.pad(x, init, config), w, s, out)
  t_cells = _window_cells(lax.pad(t, np.zeros((), t.dtype), config), w, s, out)
  found = jnp.zeros(y.shape, bool)
  y_dot = jnp.zeros_like(y)
  for cell, t_cell in zip(cells, t_cells):  # row-major: the first maximum takes the window
    take = (cell == y) & ~found
    y_dot = jnp.where(take, t_cell, y_dot)
    found = found | take
  return y, y_dot


def _as_inexact(x) -> jax.Array:
  """Averages and norms of integer images are fractional: promote ints to the default float."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.inexact):
    x = x.astype(jnp.result_type(float))
  return x


def _lowest(dtype) -> np.ndarray:
  """The identity of ``max``: ``-inf`` for floats, the minimum for ints, False for bools."""
  dtype = np.dtype(dtype)
  if jnp.issubdtype(dtype, jnp.inexact):
    return np.asarray(-np.inf, dtype)
  if dtype == np.bool_:
    return np.asarray(False)
  return np.asarray(jnp.iinfo(dtype).min, dtype)


def max_pool(x: jax.Array, window: IntOrSeq, stride: IntOrSeq | None = None,
             padding: PaddingLike = "VALID") -> jax.Array:
  """Maximum over each window; padded cells are ``-inf`` and never win.

  Gradient: each window's gradient goes to one cell, its maximum; when several cells tie for
  the maximum, to the first of them in row-major order (the index PyTorch's ``max_pool2d``
  returns, and the "switch" of Zeiler & Fergus' deconvnet), for overlapping and non-overlapping
  windows alike. Overlapping windows add up the gradients their switches route to a shared
  cell.

  Args:
    x: ``[B, *spatial, C]`` with 1, 2 or 3 spatial dims.
    window: window size, an int or one per spatial dim.
    stride: step between windows; defaults to ``window``.
    padding: see :func:`jaxcnn.shapes.resolve_padding`.

  Returns:
    ``[B, *out, C]`` with ``out`` as :func:`jaxcnn.shapes.pool_output_shape` predicts.

  >>> import jax.numpy as jnp
  >>> x = jnp.arange(16.).reshape(1, 4, 4, 1)
  >>> max_pool(x, 2)[0, :, :, 0].tolist()
  [[5.0, 7.0], [13.0, 15.0]]
  """
  x = jnp.asarray(x)
  w, s, pads, _ = _resolve(x, window, stride, padding, "max_pool")
  return _reduce(x, _lowest(x.dtype), lax.max, w, s, pads)


def sum_pool(x: jax.Array, window: IntOrSeq, stride: IntOrSeq | None = None,
             padding: PaddingLike = "VALID") -> jax.Array:
  """Sum over each window; padded cells are zeros. Shapes as :func:`max_pool`.

  >>> import jax.numpy as jnp
  >>> sum_pool(jnp.ones((1, 4, 4, 1)), 2, padding='SAME')[0, :, :, 0].tolist()
  [[4.0, 4.0], [4.0, 4.0]]
  """
  x = jnp.asarray(x)
  w, s, pads, _ = _resolve(x, window, stride, padding, "sum_pool")
  return _reduce(x, 0, lax.add, w, s, pads)


def _real_cell_counts(size: Sequence[int], w, s, pads, out) -> np.ndarray:
  """Number of non-padding cells in each window, ``[*out]``; pure numpy, shapes only.

  The count factorises over dimensions, so it is an outer product of 1-D counts.
  """
  counts = np.ones((), np.int64)
  for n, k, st, (lo, _), o in zip(size, w, s, pads, out):
    start = np.arange(o) * st - lo  # first cell of each window, in unpadded coordinates
    c = np.minimum(start + k, n) - np.maximum(start, 0)
    counts = np.multiply.outer(counts, np.maximum(c, 0))
  return counts


def avg_pool(x: jax.Array, window: IntOrSeq, stride: IntOrSeq | None = None,
             padding: PaddingLike = "VALID", *, count_include_pad: bool = True) -> jax.Array:
  """Mean over each window. Shapes as :func:`max_pool`; integer inputs give floats.

  Args:
    x: ``[B, *spatial, C]``.
    window, stride, padding: as :func:`max_pool`.
    count_include_pad: ``True`` (default, PyTorch's default): padded cells are zeros that count
      in the denominator, which is always ``prod(window)``. ``False`` (Keras/TF ``'same'``):
      only real cells count, so border windows average their real cells only.

  >>> import jax.numpy as jnp
  >>> x = jnp.ones((1, 3, 3, 1))
  >>> avg_pool(x, 2, 1, padding=((0, 1), (0, 1)))[0, :, :, 0].tolist()[-1]
  [0.5, 0.5, 0.25]
  >>> avg_pool(x, 2, 1, padding=((0, 1), (0, 1)), count_include_pad=False)[0, -1, :, 0].tolist()
  [1.0, 1.0, 1.0]
  """
  x = _as_inexact(x)
  w, s, pads, out = _resolve(x, window, stride, padding, "avg_pool")
  total = _reduce(x, 0, lax.add, w, s, pads)
  if count_include_pad or all(p == (0, 0) for p in pads):
    return total / np.asarray(math.prod(w), x.dtype)
  counts = _real_cell_counts(x.shape[1:-1], w, s, pads, out)
  # A window entirely in padding has no real cell: define its average as 0, not 0/0.
  counts = np.maximum(counts, 1).astype(x.dtype)
  return total / jnp.asarray(counts)[None, ..., None]


def lp_pool(x: jax.Array, p: float, window: IntOrSeq, stride: IntOrSeq | None = None,
            padding: PaddingLike = "VALID") -> jax.Array:
  """L^p norm of each window, ``(sum |x|^p) ** (1/p)``, for any ``p >= 1``.

  ``p=1`` is ``sum_pool(|x|)``, ``p=2`` the Euclidean norm, and as ``p`` grows the result tends
  to ``max_pool(|x|)`` (``p=inf`` gives it exactly). Padding cells are zeros and add nothing.
  For numerical stability each window is scaled by its own maximum ``m`` of ``|x|``::

      (sum |x|^p) ** (1/p) = m * (sum (|x| / m)^p) ** (1/p)

  so every term is in ``[0, 1]`` and the inner sum in ``[1, prod(window)]``: large ``p`` (64,
  say) neither overflows nor underflows in float32. (PyTorch's ``LPPool`` is ``(sum x^p)^(1/p)``
  without the absolute value, which is only a norm for even ``p``.)

  Args:
    x: ``[B, *spatial, C]``.
    p: a Python number ``>= 1`` (or ``float('inf')``).
    window, stride, padding: as :func:`max_pool`.

  >>> import jax.numpy as jnp
  >>> x = jnp.array([3., -4.]).reshape(1, 2, 1)
  >>> float(lp_pool(x, 2, 2)[0, 0, 0])
  5.0
  """
  x = _as_inexact(x)
  p = _checks.number(p, "p", 1.0)
  w, s, pads, out = _resolve(x, window, stride, padding, "lp_pool")
  if math.isinf(p):
    return _reduce(jnp.abs(x), 0, lax.max, w, s, pads)
  return _lp_pool(x, p, w, s, pads, out)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _lp_pool(x, p: float, w, s, pads, out) -> jax.Array:
  # Jitted as one program: eagerly, the 2 * prod(window) slices would be as many dispatches.
  # Walk the window offsets with strided slices of the zero-padded |x|: each slice holds one
  # cell of every window, already aligned with the output, so the per-window scale m divides it
  # directly. Memory stays O(output); prod(window) slices is small for pooling windows.
  a = jnp.pad(jnp.abs(x), ((0, 0), *pads, (0, 0)))

  def cells():
    return _window_cells(a, w, s, out)

  # The result does not depend on m (it is homogeneous), so m needs no gradient.
  m = lax.stop_gradient(functools.reduce(jnp.maximum, cells()))
  empty = m == 0
  m_safe = jnp.where(empty, jnp.ones_like(m), m)
  power = int(p) if p.is_integer() else p  # integer powers are exact (lax.integer_pow)
  total = functools.reduce(jnp.add, ((c / m_safe) ** power for c in cells()))
  # total >= 1 wherever m > 0 (the maximum contributes 1); an all-zero window would give
  # d(total ** (1/p)) = inf at total = 0, so it is replaced before the root.
  total = jnp.where(empty, jnp.ones_like(total), total)
  return jnp.where(empty, jnp.zeros_like(m), m * total ** (1.0 / p))


def global_avg_pool(x: jax.Array) -> jax.Array:
  """Mean over all spatial dims: ``[B, *spatial, C] -> [B, C]``.

  >>> import jax.numpy as jnp
  >>> global_avg_pool(jnp.ones((2, 4, 4, 3))).shape
  (2, 3)
  """
  x = _as_inexact(x)
  n = _check_rank(x, "global_avg_pool")
  return jnp.mean(x, axis=tuple(range(1, n + 1)))


def global_max_pool(x: jax.Array) -> jax.Array:
  """Maximum over all spatial dims: ``[B, *spatial, C] -> [B, C]``. The gradient goes to one
  cell per example and channel, the first maximal one in row-major order (as :func:`max_pool`).

  >>> import jax.numpy as jnp
  >>> global_max_pool(jnp.arange(8.).reshape(1, 2, 2, 2)).tolist()
  [[6.0, 7.0]]
  """
  x = jnp.asarray(x)
  n = _check_rank(x, "global_max_pool")
  return _max_to_one_cell(x, tuple(range(1, n + 1)), sliced=False)
