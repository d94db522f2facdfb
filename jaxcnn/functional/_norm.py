"""Batch normalisation as a pure function: the running statistics go in and come out."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn import _checks

__all__ = ["batch_norm"]


def batch_norm(
    x: jax.Array,
    scale: jax.Array | None,
    bias: jax.Array | None,
    mean: jax.Array,
    var: jax.Array,
    *,
    train: bool,
    momentum: float = 0.9,
    epsilon: float = 1e-5,
    axis_name: str | None = None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """Normalises each channel (the last axis) and returns the updated running statistics.

  Statistics are taken over every axis but the last: batch and spatial positions for a conv
  feature map ``[B, *spatial, C]``, the batch for ``[B, C]``.

  * ``train=True``: normalise with the batch mean and the **biased** batch variance (divided by
    the number of values ``n``, not ``n - 1``; as Flax and Keras, whereas PyTorch stores the
    unbiased one in its running variance), and return running statistics updated as
    ``momentum * old + (1 - momentum) * batch``. The moments are taken in two passes (mean,
    then mean squared deviation), so inputs far from zero keep their precision. With
    ``axis_name`` (inside ``pmap`` or ``shard_map``) each pass is ``lax.pmean``-ed over that
    axis, so every device uses the statistics of the global batch (equal per-device batch
    sizes).
  * ``train=False``: normalise with the running ``mean`` and ``var``, which are returned
    unchanged.

  ``y = (x - mu) / sqrt(sigma2 + epsilon) * scale + bias``. Statistics and normalisation are
  computed in at least float32 (bfloat16 activations are upcast), and ``y`` has ``x``'s dtype.

  Args:
    x: ``[..., C]`` with at least 2 dims.
    scale: ``[C]`` or ``None`` (no scaling).
    bias: ``[C]`` or ``None`` (no shift).
    mean: ``[C]`` running mean.
    var: ``[C]`` running (biased) variance.
    train: use and update batch statistics (``True``) or use the running ones.
    momentum: weight of the *old* running statistics, in ``[0, 1]`` (Flax's and Keras'
      convention; PyTorch's ``momentum`` is the weight of the batch, i.e. ``1 - momentum``).
    epsilon: added to the variance before the square root.
    axis_name: the device axis to average the batch moments over, or ``None``.

  Returns:
    ``(y, (new_mean, new_var))``: ``y`` of ``x``'s shape and dtype, the statistics ``[C]``.

  >>> import jax.numpy as jnp
  >>> x = jnp.array([[1.], [3.]])
  >>> y, (m, v) = batch_norm(x, None, None, jnp.zeros(1), jnp.ones(1), train=True, epsilon=0.)
  >>> y[:, 0].tolist(), m.tolist(), v.tolist()
  ([-1.0, 1.0], [0.20000000298023224], [1.0])
  """
  x = jnp.asarray(x)
  _checks.min_rank(x, 2, where="batch_norm")
  channels = x.shape[-1]
  for name, value in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var)):
    if value is not None and jnp.shape(value) != (channels,):
      raise ValueError(
          f"batch_norm: `{name}` must have shape ({channels},) for x of shape "
          f"{tuple(x.shape)}, got {tuple(jnp.shape(value))}")
  # Checked, not converted: a traced momentum or epsilon (an argument of a jitted step) passes.
  _checks.static_float(momentum, "momentum", 0.0, 1.0, high_closed=True, allow_traced=True,
                       where="batch_norm")
  _checks.static_float(epsilon, "epsilon", 0.0, allow_traced=True, where="batch_norm")

  compute_dtype = jnp.promote_types(x.dtype, jnp.float32)
  xc = x.astype(compute_dtype)
  as_row = lambda v: jnp.asarray(v, compute_dtype).reshape((1,) * (x.ndim - 1) + (channels,))

  if train:
    axes = tuple(range(x.ndim - 1))
    # Two passes (Welford-free, as PyTorch does): the mean first, then the mean of the squared
    # deviations from it. A one-pass E[x^2] - E[x]^2 (even about the running mean, which is far
    # from the batch mean on a fresh layer) cancels catastrophically when |mean| >> std. The
    # second pass also returns E[d], a rounding-level correction to the mean and the variance
    # (Chan, Golub & LeVeque's corrected two-pass algorithm). Under `axis_name` each pass is one
    # `pmean`, so every device uses the global batch's moments.
    mu0 = jnp.mean(xc, axis=axes)
    if axis_name is not None:
      mu0 = lax.pmean(mu0, axis_name)
    d = xc - as_row(mu0)
    moments = jnp.stack([jnp.mean(d, axis=axes), jnp.mean(jnp.square(d), axis=axes)])
    if axis_name is not None:
      moments = lax.pmean(moments, axis_name)
    mean_d, mean_d2 = moments[0], moments[1]
    batch_mean = mu0 + mean_d
    batch_var = jnp.maximum(mean_d2 - jnp.square(mean_d), 0.0)
    mu, sigma2 = batch_mean, batch_var
    new_mean = momentum * mean + (1.0 - momentum) * batch_mean.astype(jnp.result_type(mean))
    new_var = momentum * var + (1.0 - momentum) * batch_var.astype(jnp.result_type(var))
  else:
    mu, sigma2 = jnp.asarray(mean, compute_dtype), jnp.asarray(var, compute_dtype)
    new_mean, new_var = mean, var

  y = (xc - as_row(mu)) * as_row(lax.rsqrt(sigma2 + epsilon))
  if scale is not None:
    y = y * as_row(scale)
  if bias is not None:
    y = y + as_row(bias)
  return y.astype(x.dtype), (new_mean, new_var)
