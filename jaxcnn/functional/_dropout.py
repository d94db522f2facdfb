"""Dropout with inverted scaling, element-wise and per feature map.

Inverted dropout: during training each kept value is divided by ``1 - rate``, so the expected
value of every activation is unchanged and nothing needs rescaling at test time, where dropout
is the identity (``deterministic=True``). Randomness only comes from the explicit ``key``: the
same key gives the same mask.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcnn import _checks

__all__ = ["dropout", "channel_dropout"]


def _check_rate(rate) -> float:
  """``rate`` is a static hyperparameter: validate it in Python, before any tracing (a string
  such as ``'0.5'`` from a config is refused, not converted)."""
  return _checks.rate(rate)


def _apply_mask(key: jax.Array, x: jax.Array, rate: float, mask_shape: tuple[int, ...]):
  keep = jax.random.bernoulli(key, 1.0 - rate, mask_shape)
  # mask_shape has x's rank, so this broadcast is explicit (size-1 dims only).
  scaled = x / (1.0 - rate)  # a weakly typed Python float: keeps x's float dtype
  return jnp.where(keep, scaled, jnp.zeros((), scaled.dtype))


def dropout(key: jax.Array, x: jax.Array, rate: float, *,
            deterministic: bool = False) -> jax.Array:
  """Zeroes each element with probability ``rate`` and scales the kept ones by ``1/(1-rate)``.

  Args:
    key: a ``jax.random`` key; the mask is a pure function of it.
    x: any shape, floating point.
    rate: probability of dropping an element, a Python float in ``[0, 1)``.
    deterministic: if ``True`` (evaluation), return ``x`` unchanged. ``rate=0`` does too.

  Returns:
    An array of ``x``'s shape and dtype.

  >>> import jax, jax.numpy as jnp
  >>> y = dropout(jax.random.key(0), jnp.ones((4,)), 0.5)
  >>> sorted(set(y.tolist())) <= [0.0, 2.0]
  True
  """
  rate = _check_rate(rate)
  if deterministic or rate == 0.0:
    return x
  x = jnp.asarray(x)
  return _apply_mask(key, x, rate, x.shape)


def channel_dropout(key: jax.Array, x: jax.Array, rate: float, *,
                    deterministic: bool = False) -> jax.Array:
  """Drops whole feature maps: each ``(example, channel)`` is kept or zeroed as a unit.

  The mask has shape ``[B, 1, ..., 1, C]`` and is broadcast over the spatial dims, as in
  PyTorch's ``Dropout1d/2d/3d`` and Keras' ``SpatialDropout``. Neighbouring pixels of a feature
  map are strongly correlated, so element-wise dropout barely regularises conv layers; dropping
  the whole map does. Kept maps are scaled by ``1/(1-rate)``.

  Args:
    key: a ``jax.random`` key.
    x: ``[B, *spatial, C]`` with at least one spatial dim (rank >= 3).
    rate: probability of dropping a feature map, a Python float in ``[0, 1)``.
    deterministic: if ``True``, return ``x`` unchanged. ``rate=0`` does too.

  >>> import jax, jax.numpy as jnp
  >>> y = channel_dropout(jax.random.key(0), jnp.ones((2, 4, 4, 8)), 0.5)
  >>> bool(((y == 0).all(axis=(1, 2)) | (y == 2).all(axis=(1, 2))).all())
  True
  """
  rate = _check_rate(rate)
  _checks.min_rank(x, 3, where="channel_dropout", layout="[B, *spatial, C]")
  if deterministic or rate == 0.0:
    return x
  x = jnp.asarray(x)
  mask_shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
  return _apply_mask(key, x, rate, mask_shape)
