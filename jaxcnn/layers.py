"""Flax Linen layers over :mod:`jaxcnn.functional`.

Each layer is a thin wrapper: it owns the parameters (``self.param``) and the running statistics
(``self.variable('batch_stats', ...)``) and calls the pure op from :mod:`jaxcnn.functional`
for the arithmetic, so ``layer.apply(variables, x)`` equals the functional op on the same
arrays. ``init``/``apply`` stay pure; the only randomness is the ``'dropout'`` rng stream.

Layout is channels-last: ``[B, W, C]``, ``[B, H, W, C]`` or ``[B, D, H, W, C]``; the spatial rank
is read from ``x.ndim`` (an int ``kernel_size``/``window`` means that size in every spatial
dimension).

Every layer is called as ``layer(x, train=False)``; layers that do not use ``train`` accept and
ignore it, so any of them composes in :class:`Sequential`.

Precision: ``dtype`` is the compute dtype (e.g. ``jnp.bfloat16``), ``param_dtype`` the storage
dtype of the parameters (float32 by default). With ``dtype=None`` the computation runs in the
promoted dtype of the input and the parameters.

MAC convention (used by :func:`jaxcnn.shapes.summary`): ``layer.macs(input_shape,
output_shape)`` counts the multiply-accumulates against *weights* for the whole batch in
``input_shape``:

* ``Conv``: ``B * prod(out_spatial) * prod(kernel_size) * C_in / groups * C_out``;
* ``Dense``: ``prod(input_shape[:-1]) * in_features * features`` (``in * out`` per example);
* everything else (pooling, activations, dropout, flatten, batch norm): 0. Those ops cost
  O(size of the activation), not O(weights); batch norm folds into the preceding conv at
  inference. This is the convention of the usual "FLOPs of a CNN" tables (MACs of conv and
  linear layers); a summary on a batch of 1 gives the per-example count.

Example:

>>> import jax, jax.numpy as jnp
>>> from jaxcnn import layers as L
>>> net = L.Sequential([L.Conv(8, 3, activation='relu'), L.MaxPool(2), L.Flatten(), L.Dense(10)])
>>> variables = net.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))
>>> net.apply(variables, jnp.ones((2, 28, 28, 1))).shape
(2, 10)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from jaxcnn import functional as F
from jaxcnn import shapes

Array = jax.Array
Dtype = Any
Initializer = Callable[..., Array]
ActivationLike = Union[str, Callable[[Array], Array], None]
Shape = Sequence[int]

# The course recipes are Keras', so the defaults are Keras': glorot_uniform kernels and zero
# biases (Flax's own default is lecun_normal). With Keras' initialisation the tutorial nets
# train the way the course material shows. Flax's glorot_uniform uses fan_in = prod(k) * C_in
# and fan_out = prod(k) * C_out for a [*k, C_in, C_out] kernel, exactly as Keras does.
default_kernel_init = nn.initializers.glorot_uniform()
default_bias_init = nn.initializers.zeros_init()


def _spatial_rank(x: Array, layer: str) -> int:
  if x.ndim not in (3, 4, 5):
    raise ValueError(
        f"{layer} expects an input [B, *spatial, C] with 1, 2 or 3 spatial dimensions, got "
        f"shape {tuple(x.shape)} (rank {x.ndim})")
  return x.ndim - 2


def _activate(activation: ActivationLike, y: Array) -> Array:
  if activation is None:
    return y
  return F.get_activation(activation)(y)


class Layer(nn.Module):
  """Base class of the jaxcnn layers: what :func:`jaxcnn.shapes.summary` reports as a row."""

  @nn.nowrap
  def macs(self, input_shape: Shape, output_shape: Shape) -> int:
    """Multiply-accumulates against weights for this call (see the module docstring)."""
    del input_shape, output_shape
    return 0


class Conv(Layer):
  """N-D convolution (cross-correlation), 1/2/3-D by the rank of the input.

  Attributes:
    features: number of output channels ``C_out``.
    kernel_size: int (same size in every spatial dim) or one int per spatial dim.
    stride, padding, dilation, groups: as in :func:`jaxcnn.functional.conv`.
    use_bias: add a learned bias ``[C_out]``.
    activation: ``None``, a name from ``jaxcnn.functional.ACTIVATIONS`` or a callable,
      applied after the bias (Keras' ``Conv2D(..., activation='relu')``).
    kernel_init, bias_init: initialisers (Keras' glorot_uniform / zeros by default).
    dtype: compute dtype (``None``: promote input and params); param_dtype: storage dtype.
    precision: passed to ``lax.conv_general_dilated``.

  Params: ``'kernel'`` ``[*kernel_size, C_in // groups, features]``, ``'bias'`` ``[features]``.

  ``x: [B, *spatial, C_in]`` -> ``[B, *spatial_out, features]``.

  >>> conv = Conv(32, 3, activation='relu')
  >>> y, _ = conv.init_with_output(jax.random.key(0), jnp.ones((1, 32, 32, 3)))
  >>> y.shape
  (1, 30, 30, 32)
  """
  features: int
  kernel_size: Union[int, Sequence[int]]
  stride: Union[int, Sequence[int]] = 1
  padding: shapes.PaddingLike = "VALID"
  dilation: Union[int, Sequence[int]] = 1
  groups: int = 1
  use_bias: bool = True
  activation: ActivationLike = None
  kernel_init: Initializer = default_kernel_init
  bias_init: Initializer = default_bias_init
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    n = _spatial_rank(x, "Conv")
    k = shapes.normalize_tuple(self.kernel_size, n, "kernel_size")
    in_channels = x.shape[-1]
    if self.groups < 1 or in_channels % self.groups or self.features % self.groups:
      raise ValueError(
          f"`in_channels` (={in_channels}) and `features` (={self.features}) must be divisible "
          f"by `groups` (={self.groups})")
    kernel = self.param("kernel", self.kernel_init,
                        (*k, in_channels // self.groups, self.features), self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = F.conv(x, kernel, bias, stride=self.stride, padding=self.padding,
               dilation=self.dilation, groups=self.groups, precision=self.precision)
    return _activate(self.activation, y)

  @nn.nowrap
  def macs(self, input_shape: Shape, output_shape: Shape) -> int:
    n = len(input_shape) - 2
    k = shapes.normalize_tuple(self.kernel_size, n, "kernel_size")
    return (math.prod(output_shape[:-1]) * math.prod(k) * (input_shape[-1] // self.groups)
            * output_shape[-1])


class Dense(Layer):
  """Fully connected layer on the last axis: ``y = x @ kernel + bias``.

  Params: ``'kernel'`` ``[in_features, features]``, ``'bias'`` ``[features]``.
  ``x: [..., in_features]`` -> ``[..., features]``. Same conventions as :class:`Conv`.

  >>> y, _ = Dense(10).init_with_output(jax.random.key(0), jnp.ones((2, 64)))
  >>> y.shape
  (2, 10)
  """
  features: int
  activation: ActivationLike = None
  use_bias: bool = True
  kernel_init: Initializer = default_kernel_init
  bias_init: Initializer = default_bias_init
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    if x.ndim < 2:
      raise ValueError(f"Dense expects an input [B, ..., features], got shape {tuple(x.shape)}")
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    return _activate(self.activation, F.dense(x, kernel, bias, precision=self.precision))

  @nn.nowrap
  def macs(self, input_shape: Shape, output_shape: Shape) -> int:
    return math.prod(input_shape[:-1]) * input_shape[-1] * output_shape[-1]


class _Pool(Layer):
  """Shared fields of the windowed pooling layers; ``stride=None`` means the window."""
  window: Union[int, Sequence[int]]
  stride: Union[int, Sequence[int], None] = None
  padding: shapes.PaddingLike = "VALID"


class MaxPool(_Pool):
  """Max pooling; padded cells never win (they count as -inf).

  ``x: [B, *spatial, C]`` -> ``[B, *spatial_out, C]``.

  >>> MaxPool(2).apply({}, jnp.ones((1, 32, 32, 3))).shape
  (1, 16, 16, 3)
  """

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    return F.max_pool(x, self.window, stride=self.stride, padding=self.padding)


class AvgPool(_Pool):
  """Average pooling; ``count_include_pad`` as in :func:`jaxcnn.functional.avg_pool`.

  >>> AvgPool(2).apply({}, jnp.ones((1, 32, 32, 3))).shape
  (1, 16, 16, 3)
  """
  count_include_pad: bool = True

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    return F.avg_pool(x, self.window, stride=self.stride, padding=self.padding,
                      count_include_pad=self.count_include_pad)


class SumPool(_Pool):
  """Sum pooling (padded cells add 0).

  >>> SumPool(2).apply({}, jnp.ones((1, 4, 4, 1)))[0, 0, 0, 0]
  Array(4., dtype=float32)
  """

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    return F.sum_pool(x, self.window, stride=self.stride, padding=self.padding)


class LpPool(Layer):
  """Power-average pooling ``(sum |x|^p)^(1/p)`` over each window (p=1: sum of |x|; p->inf: max).

  >>> LpPool(2.0, 2).apply({}, jnp.ones((1, 4, 4, 1)))[0, 0, 0, 0]
  Array(2., dtype=float32)
  """
  p: float
  window: Union[int, Sequence[int]]
  stride: Union[int, Sequence[int], None] = None
  padding: shapes.PaddingLike = "VALID"

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    return F.lp_pool(x, self.p, self.window, stride=self.stride, padding=self.padding)


class GlobalAvgPool(Layer):
  """Mean over all spatial dimensions: ``[B, *spatial, C]`` -> ``[B, C]``."""

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    return F.global_avg_pool(x)


class GlobalMaxPool(Layer):
  """Max over all spatial dimensions: ``[B, *spatial, C]`` -> ``[B, C]``."""

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    return F.global_max_pool(x)


def _check_rate(rate: float, layer: str) -> None:
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"{layer} `rate` (={rate!r}) must be in [0, 1)")


class Dropout(Layer):
  """Inverted dropout: zeroes each element with probability ``rate`` and scales the rest by
  ``1 / (1 - rate)`` when ``train=True``; the identity when ``train=False``.

  Draws its key from the ``'dropout'`` rng stream:
  ``model.apply(variables, x, train=True, rngs={'dropout': key})``.
  """
  rate: float

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    _check_rate(self.rate, "Dropout")
    if not train or self.rate == 0.0:
      return x
    return F.dropout(self.make_rng("dropout"), x, self.rate)


class ChannelDropout(Layer):
  """Drops whole feature maps (PyTorch's Dropout2d / Keras' SpatialDropout): the mask is
  ``[B, 1, ..., 1, C]``. Same rng stream and train/eval behaviour as :class:`Dropout`."""
  rate: float

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    _check_rate(self.rate, "ChannelDropout")
    if not train or self.rate == 0.0:
      return x
    return F.channel_dropout(self.make_rng("dropout"), x, self.rate)


class Flatten(Layer):
  """``[B, ...]`` -> ``[B, prod(...)]`` (row-major, so channels vary fastest, as in Keras)."""

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    return F.flatten(x)


class Activation(Layer):
  """An activation by name (``'relu'``, ``'gelu'``, ...) or any callable ``x -> y``.

  >>> Activation('relu').apply({}, jnp.array([-1.0, 2.0]))
  Array([0., 2.], dtype=float32)
  """
  fn: Union[str, Callable[[Array], Array]]

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    return F.get_activation(self.fn)(x)


class BatchNorm(Layer):
  """Batch normalisation over all axes but the last (channels).

  ``train=True`` normalises with the batch moments and, when the ``'batch_stats'`` collection
  is mutable (``apply(..., mutable=['batch_stats'])``), stores the updated running moments
  ``new = momentum * old + (1 - momentum) * batch``; when it is not mutable the running
  statistics are left as they are (so a train-mode forward pass can be run read-only).
  ``train=False`` normalises with the running moments. ``axis_name`` averages the batch
  moments across devices (``lax.pmean``) inside ``pmap``/``shard_map``.

  The moments are computed in at least float32 whatever the compute ``dtype``.

  Variables: params ``'scale'``, ``'bias'`` ``[C]``; batch_stats ``'mean'`` (zeros) and
  ``'var'`` (ones) ``[C]``.
  """
  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: str | None = None
  use_scale: bool = True
  use_bias: bool = True
  scale_init: Initializer = nn.initializers.ones_init()
  bias_init: Initializer = nn.initializers.zeros_init()
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    channels = x.shape[-1]
    stats_dtype = jnp.promote_types(self.param_dtype, jnp.float32)
    ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,), stats_dtype)
    ra_var = self.variable("batch_stats", "var", jnp.ones, (channels,), stats_dtype)
    scale = (self.param("scale", self.scale_init, (channels,), self.param_dtype)
             if self.use_scale else None)
    bias = (self.param("bias", self.bias_init, (channels,), self.param_dtype)
            if self.use_bias else None)
    # The functional op computes the moments in at least float32 and returns x's dtype.
    x, scale, bias = promote_dtype(x, scale, bias, dtype=self.dtype)
    y, (new_mean, new_var) = F.batch_norm(
        x, scale, bias, ra_mean.value, ra_var.value, train=train, momentum=self.momentum,
        epsilon=self.epsilon, axis_name=self.axis_name)
    # As in flax.linen.BatchNorm, init returns the initial statistics. Unlike it, a train-mode
    # call with an immutable 'batch_stats' does not raise but just leaves them alone, so one
    # can run a training-mode forward pass (e.g. to inspect batch-normalised activations)
    # without writing state back.
    if train and not self.is_initializing() and self.is_mutable_collection("batch_stats"):
      ra_mean.value = new_mean.astype(stats_dtype)
      ra_var.value = new_var.astype(stats_dtype)
    return y


class Sequential(nn.Module):
  """Applies ``layers`` in order, passing ``train`` to every Flax module.

  Plain callables (``jax.nn.relu``) are allowed too and are called as ``f(x)``. Submodules are
  named ``layers_0``, ``layers_1``, ... in the variable tree.

  >>> net = Sequential([Dense(4, activation='relu'), Dropout(0.5), Dense(2)])
  >>> variables = net.init(jax.random.key(0), jnp.ones((1, 3)))
  >>> net.apply(variables, jnp.ones((5, 3)), train=True,
  ...           rngs={'dropout': jax.random.key(1)}).shape
  (5, 2)
  """
  layers: Sequence[Callable[..., Any]]

  def __call__(self, x: Array, train: bool = False) -> Array:
    if not self.layers:
      raise ValueError("Sequential needs at least one layer, got an empty `layers`")
    for layer in self.layers:
      x = layer(x, train=train) if isinstance(layer, nn.Module) else layer(x)
    return x


__all__ = [
    "Layer", "Conv", "Dense", "MaxPool", "AvgPool", "SumPool", "LpPool", "GlobalAvgPool",
    "GlobalMaxPool", "Dropout", "ChannelDropout", "Flatten", "Activation", "BatchNorm",
    "Sequential", "default_kernel_init", "default_bias_init",
]
