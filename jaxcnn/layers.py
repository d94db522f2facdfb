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

MAC convention (used by :func:`jaxcnn.inspect.summary`): ``layer.macs(input_shape,
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

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from jaxcnn import _checks, shapes
from jaxcnn import functional as F

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


# ---------------------------------------------------------------- hyper-parameter checks
# Run when a layer is constructed (``Conv(0, 3)`` fails on that line, not deep inside JAX) and
# phrased as `` Conv `features` (=0) must be an int >= 1 `` (jaxcnn._checks).

def _check_ints(layer: str, name: str, value: Any) -> None:
  """An int >= 1, or a non-empty sequence of them (one per spatial dimension, whose number is
  known only when the layer sees its input)."""
  if _checks.is_int(value):
    _checks.positive_int(value, name, where=layer)
  else:
    _checks.int_tuple(value, name, where=layer)


def _check_activation(layer: str, activation: Any) -> None:
  try:
    F.get_activation(activation)
  except ValueError as e:
    raise ValueError(f"{layer}: {e}") from None


def _methods_intercepted() -> bool:
  """Whether a ``flax.linen.intercept_methods`` interceptor is installed (True if flax no longer
  says: then a layer calls its ``activate`` method, which is always correct)."""
  from flax.linen import module as _module  # pylint: disable=g-import-not-at-top
  return bool(getattr(_module, "_global_interceptor_stack", True))


def _check_padding(layer: str, padding: Any) -> None:
  if isinstance(padding, str):
    if padding.upper() not in shapes.PADDING_STRINGS:
      raise ValueError(
          f"{layer} `padding` (={padding!r}) must be one of {shapes.PADDING_STRINGS}, an int "
          "or per-dimension (lo, hi) pairs")
  elif isinstance(padding, bool) or (_checks.is_int(padding) and padding < 0):
    raise ValueError(f"{layer} `padding` (={padding!r}) must be a string, an int >= 0 or "
                     "per-dimension (lo, hi) pairs")


_PARAMS_FIX = ("pass all of what init returned (`variables`, a dict with a 'params' key), not "
               "variables['params']")
_STATS_FIX = ("pass all of what init returned (params and batch_stats), not only "
              "{'params': ...}")


def _is_relu(activation: ActivationLike) -> bool:
  """True for the activations guided backprop and the dead-unit count treat as a ReLU."""
  if isinstance(activation, str):
    return activation.lower() == "relu"
  return activation is F.relu or activation is jax.nn.relu


class Layer(nn.Module):
  """Base class of the jaxcnn layers: what :func:`jaxcnn.inspect.summary` reports as a row.

  Subclasses check their hyper-parameters when constructed (:meth:`check`), and errors raised
  by the functional op for a bad input are re-raised with the layer's name and path (``Conv
  'Conv_2': kernel of size 3 is larger than the padded input 2 ...``).
  """

  def __post_init__(self) -> None:
    self.check()
    super().__post_init__()

  @nn.nowrap
  def check(self) -> None:
    """Raises ``ValueError`` naming the layer and the bad hyper-parameter; no-op by default."""

  @nn.nowrap
  def label(self) -> str:
    """``"Conv 'Block_0/Conv_1'"`` when bound inside a model, else the class name."""
    path = "/".join(self.path) if self.scope is not None else ""
    return f"{type(self).__name__} '{path}'" if path else type(self).__name__

  @nn.nowrap
  def _require(self, collection: str, name: str, fix: str) -> None:
    """Raises one line when ``apply`` was given variables without ``collection``/``name``.

    Flax would raise ``ScopeCollectionNotFound`` (a multi-line message with a link); the usual
    cause is ``apply(variables['params'], x)`` or ``apply({'params': ...}, x)`` on a model with
    batch statistics."""
    if (self.is_initializing() or self.is_mutable_collection(collection)
        or self.has_variable(collection, name)):
      return
    raise ValueError(f"{self.label()} found no {collection!r} entry {name!r} in the variables it "
                     f"was applied with: {fix}")

  @nn.nowrap
  def _dropout_key(self) -> Array:
    """The ``'dropout'`` key, or one line (Flax's ``InvalidRngError`` names no fix)."""
    if not self.has_rng("dropout"):
      raise ValueError(
          f"{self.label()} with train=True needs a 'dropout' rng: call apply(..., train=True, "
          "rngs={'dropout': key}), or pass train=False to evaluate")
    return self.make_rng("dropout")

  @nn.nowrap
  def _check_param_shape(self, name: str, want: tuple, x: Array, what: str) -> None:
    """One line instead of Flax's ``ScopeParamShapeError`` when ``x`` does not fit the parameter
    ``name`` made at ``init`` (an MLP made for 28x28x1 applied to 32x32x3, say)."""
    if self.is_initializing() or not self.has_variable("params", name):
      return
    have = tuple(self.get_variable("params", name).shape)
    if have != tuple(want):
      raise ValueError(_checks.with_fix(
          f"{self.label()} got x of shape {tuple(x.shape)} ({what}), but its {name!r} has shape "
          f"{have} from init, which needs {want}; apply the model to inputs shaped like the ones "
          "it was initialised with", _checks.channels_last_hint(x.shape)))

  @nn.nowrap
  @contextlib.contextmanager
  def _named_errors(self, x: Array | None = None) -> Iterator[None]:
    """Prefixes a ``ValueError`` with the layer's name; for an input ``x`` that looks NCHW,
    appends how to make it channels-last."""
    try:
      yield
    except ValueError as e:
      message = str(e)
      if x is not None and _checks.CHANNELS_LAST_HINT not in message:
        message = _checks.with_fix(message, _checks.channels_last_hint(jnp.shape(x)))
      raise ValueError(f"{self.label()}: {message}") from None

  def activate(self, y: Array) -> Array:
    """Applies this layer's fused ``activation`` (if it has one) to the pre-activation ``y``.

    A separate (Flax-wrapped) method so that :mod:`jaxcnn.inspect` can intercept it: its input
    is the ``'<layer>/pre_activation'`` feature map, and guided backprop swaps the ReLU.
    """
    activation = getattr(self, "activation", None)
    return y if activation is None else F.get_activation(activation)(y)

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

  @nn.nowrap
  def check(self) -> None:
    _checks.positive_int(self.features, "features", where="Conv")
    _check_ints("Conv", "kernel_size", self.kernel_size)
    _check_ints("Conv", "stride", self.stride)
    _check_ints("Conv", "dilation", self.dilation)
    _checks.groups(None, self.features, self.groups, out_name="features", where="Conv")
    _check_padding("Conv", self.padding)
    _check_activation("Conv", self.activation)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    with self._named_errors(x):
      n = _checks.rank(x, (3, 4, 5)) - 2
      k = shapes.normalize_tuple(self.kernel_size, n, "kernel_size")
      in_channels = x.shape[-1]
      _checks.groups(in_channels, None, self.groups)
      # Checked before any parameter is created: the op's shape check names the layer.
      shapes.conv_output_shape(x.shape, k, self.features, stride=self.stride,
                               padding=self.padding, dilation=self.dilation)
    shape = (*k, in_channels // self.groups, self.features)
    self._require("params", "kernel", _PARAMS_FIX)
    self._check_param_shape("kernel", shape, x, f"{in_channels} input channels")
    kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    # The op applies the activation itself (fused into the convolution while the oneDNN CPU
    # extension is active), unless a method interceptor (jaxcnn.inspect) must see `activate`.
    fuse = self.activation is not None and not _methods_intercepted()
    with self._named_errors(x):
      y = F.conv(x, kernel, bias, stride=self.stride, padding=self.padding,
                 dilation=self.dilation, groups=self.groups, precision=self.precision,
                 activation=self.activation if fuse else None)
    return y if fuse else self.activate(y)

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

  @nn.nowrap
  def check(self) -> None:
    _checks.positive_int(self.features, "features", where="Dense")
    _check_activation("Dense", self.activation)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    _checks.min_rank(x, 2, where=self.label(), layout="[B, ..., features]")
    self._require("params", "kernel", _PARAMS_FIX)
    self._check_param_shape("kernel", (x.shape[-1], self.features), x,
                            f"{x.shape[-1]} input features")
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    return self.activate(F.dense(x, kernel, bias, precision=self.precision))

  @nn.nowrap
  def macs(self, input_shape: Shape, output_shape: Shape) -> int:
    return math.prod(input_shape[:-1]) * input_shape[-1] * output_shape[-1]


class _Pool(Layer):
  """Shared fields of the windowed pooling layers; ``stride=None`` means the window."""
  window: Union[int, Sequence[int]]
  stride: Union[int, Sequence[int], None] = None
  padding: shapes.PaddingLike = "VALID"

  @nn.nowrap
  def check(self) -> None:
    name = type(self).__name__
    _check_ints(name, "window", self.window)
    if self.stride is not None:
      _check_ints(name, "stride", self.stride)
    _check_padding(name, self.padding)


class MaxPool(_Pool):
  """Max pooling; padded cells never win (they count as -inf).

  ``x: [B, *spatial, C]`` -> ``[B, *spatial_out, C]``.

  >>> MaxPool(2).apply({}, jnp.ones((1, 32, 32, 3))).shape
  (1, 16, 16, 3)
  """

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    with self._named_errors(x):
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
    with self._named_errors(x):
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
    with self._named_errors(x):
      return F.sum_pool(x, self.window, stride=self.stride, padding=self.padding)


class LpPool(Layer):
  """Power-average pooling ``(sum |x|^p)^(1/p)`` over each window (p=1: sum of ``|x|``; p->inf: max).

  >>> LpPool(2.0, 2).apply({}, jnp.ones((1, 4, 4, 1)))[0, 0, 0, 0]
  Array(2., dtype=float32)
  """
  p: float
  window: Union[int, Sequence[int]]
  stride: Union[int, Sequence[int], None] = None
  padding: shapes.PaddingLike = "VALID"

  @nn.nowrap
  def check(self) -> None:
    _checks.number(self.p, "p", 1.0, where="LpPool")
    _Pool.check(self)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    with self._named_errors(x):
      return F.lp_pool(x, self.p, self.window, stride=self.stride, padding=self.padding)


class GlobalAvgPool(Layer):
  """Mean over all spatial dimensions: ``[B, *spatial, C]`` -> ``[B, C]``."""

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    with self._named_errors():
      return F.global_avg_pool(x)


class GlobalMaxPool(Layer):
  """Max over all spatial dimensions: ``[B, *spatial, C]`` -> ``[B, C]``."""

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    with self._named_errors():
      return F.global_max_pool(x)


class Dropout(Layer):
  """Inverted dropout: zeroes each element with probability ``rate`` and scales the rest by
  ``1 / (1 - rate)`` when ``train=True``; the identity when ``train=False``.

  Draws its key from the ``'dropout'`` rng stream:
  ``model.apply(variables, x, train=True, rngs={'dropout': key})``.
  """
  rate: float

  @nn.nowrap
  def check(self) -> None:
    _checks.rate(self.rate, where="Dropout")

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    if not train or self.rate == 0.0:
      return x
    return F.dropout(self._dropout_key(), x, self.rate)


class ChannelDropout(Layer):
  """Drops whole feature maps (PyTorch's Dropout2d / Keras' SpatialDropout): the mask is
  ``[B, 1, ..., 1, C]``. Same rng stream and train/eval behaviour as :class:`Dropout`."""
  rate: float

  @nn.nowrap
  def check(self) -> None:
    _checks.rate(self.rate, where="ChannelDropout")

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    if not train or self.rate == 0.0:
      return x
    return F.channel_dropout(self._dropout_key(), x, self.rate)


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

  @property
  def activation(self) -> Union[str, Callable[[Array], Array]]:
    """The same as ``fn``: what :meth:`Layer.activate` applies."""
    return self.fn

  @nn.nowrap
  def check(self) -> None:
    if self.fn is None:
      raise ValueError("Activation `fn` (=None) must be an activation name or a callable")
    _check_activation("Activation", self.fn)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    del train
    return self.activate(x)


class BatchNorm(Layer):
  """Batch normalisation over all axes but the last (channels).

  ``train=True`` normalises with the batch moments (two-pass, biased variance) and stores the
  updated running moments ``new = momentum * old + (1 - momentum) * batch``; this needs the
  ``'batch_stats'`` collection to be mutable, ``apply(..., train=True,
  mutable=['batch_stats'])``, and raises otherwise (as Flax's BatchNorm does: a silent skip
  would train with statistics that never move). ``train=False`` normalises with the running
  moments. ``axis_name`` averages the batch moments across devices (``lax.pmean``) inside
  ``pmap``/``shard_map``. The moments are computed in at least float32 whatever ``dtype``.

  **Momentum convention** (Flax's and Keras'): ``momentum`` is the weight of the *old* running
  statistics. PyTorch's ``nn.BatchNorm2d(momentum=m)`` is the weight of the *batch*, so it is
  ``BatchNorm(momentum=1 - m)`` here; PyTorch's default 0.1 is 0.9 here (the default). PyTorch
  also stores the unbiased (``n - 1``) batch variance in its running variance; here, as in
  Flax and Keras, the biased one. Example, the speed-record nets' BatchNorm (airbench:
  ``nn.BatchNorm2d(C, momentum=0.4, eps=1e-12)`` with the weight frozen at 1), new stats =
  0.6 * old + 0.4 * batch::

      BatchNorm(momentum=0.6, epsilon=1e-12, use_scale=False)

  **A frozen scale**: ``use_scale=False`` is a scale fixed at 1 that is not a parameter (what
  PyTorch's ``weight.requires_grad = False`` at its initial value 1 computes); ``use_bias=False``
  likewise drops the shift. To freeze a scale at another value, keep it a parameter and leave
  it out of the optimiser (``optax.multi_transform`` / ``optax.set_to_zero``).

  Variables: params ``'scale'``, ``'bias'`` ``[C]`` (when used); batch_stats ``'mean'``
  (zeros) and ``'var'`` (ones) ``[C]``.

  >>> bn = BatchNorm(momentum=0.6, epsilon=1e-12, use_scale=False)
  >>> v = bn.init(jax.random.key(0), jnp.ones((4, 3)))
  >>> list(v['params']), list(v['batch_stats'])
  (['bias'], ['mean', 'var'])
  >>> y, updates = bn.apply(v, jnp.arange(12.).reshape(4, 3), train=True,
  ...                       mutable=['batch_stats'])
  >>> updates['batch_stats']['mean'].tolist()   # 0.6 * 0 + 0.4 * [4.5, 5.5, 6.5]
  [1.8000000715255737, 2.200000047683716, 2.6000001430511475]
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

  @nn.nowrap
  def check(self) -> None:
    _checks.static_float(self.momentum, "momentum", 0.0, 1.0, high_closed=True,
                         where="BatchNorm", fix="it weighs the old running statistics "
                         "(PyTorch's momentum=0.1 is 0.9 here)")
    _checks.static_float(self.epsilon, "epsilon", 0.0, where="BatchNorm")

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    _checks.min_rank(x, 2, where=self.label())
    if train and not self.is_initializing() and not self.is_mutable_collection("batch_stats"):
      raise ValueError(
          f"{self.label()} in train mode updates 'batch_stats', which is immutable here: call "
          "apply(..., train=True, mutable=['batch_stats']), or pass train=False to use the "
          "running statistics")
    channels = x.shape[-1]
    self._require("batch_stats", "mean", _STATS_FIX)
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
    # As in flax.linen.BatchNorm, init returns the initial statistics (not updated ones).
    if train and not self.is_initializing():
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

  def __post_init__(self) -> None:
    for i, layer in enumerate(self.layers or ()):
      if not callable(layer):
        raise ValueError(f"Sequential `layers[{i}]` (={layer!r}) must be a layer or a callable "
                         "x -> y")
    super().__post_init__()

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
