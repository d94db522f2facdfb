"""Flax NNX layers over :mod:`jaxcnn.functional`: the twins of :mod:`jaxcnn.layers`.

Each layer has the name, the arguments, the checks, the initialisers and the arithmetic of its
Linen twin (the checks are the Linen class's own ``check``; the arithmetic is the same
functional op), so a twin given the same arrays returns the same output.

What differs is what NNX asks for:

* **Eager shapes.** A layer with parameters takes its input size first (``Conv(in_features,
  features, kernel_size, ...)``, ``Dense(in_features, features)``, ``BatchNorm(num_features)``)
  and an ``rngs`` (``nnx.Rngs``), and owns its arrays from construction on, as ``nnx.Conv`` and
  ``nnx.Linear`` do: an NNX module is its state, so ``nnx.split``, ``nnx.state`` and
  ``nnx.Optimizer`` need every array before the first call. (A layer that waits for a sample
  input would have no state to split or optimise until then.) An int ``kernel_size`` means a 2-D
  convolution, the images of this library; a tuple gives the rank (``(5,)`` 1-D,
  ``(3, 3, 3)`` 3-D).
* **Modes.** ``model.train()`` / ``model.eval()`` set ``deterministic`` (:class:`Dropout`,
  :class:`ChannelDropout`) and ``use_running_average`` (:class:`BatchNorm`) on every layer, as
  for ``nnx.Dropout`` and ``nnx.BatchNorm``; a new layer is in train mode. Every layer is also
  called as its Linen twin is, ``layer(x, train=...)``: ``train=True``/``False`` overrides the
  mode for that call, ``train=None`` (the default) keeps it. ``train=True`` is Linen's
  ``train=True``: dropout on, BatchNorm on batch moments and updating its running ones (in
  place: NNX statistics are always writable).
* **Dropout keys** come from the ``rngs`` the layer was built with (``Dropout(0.5,
  rngs=rngs)``: a fork of its ``'dropout'`` stream, else of ``'default'``), or from the call
  (``rngs=`` a key, a stream or an ``nnx.Rngs``).

Variable names are the Linen ones (``kernel``, ``bias``, ``scale``, ``mean``, ``var``), so the
NNX state of a layer and the Linen variables of its twin have the same paths.

>>> from flax import nnx
>>> import jax.numpy as jnp
>>> conv = Conv(3, 8, 3, activation='relu', rngs=nnx.Rngs(0))
>>> conv(jnp.ones((2, 32, 32, 3))).shape
(2, 30, 30, 8)
>>> conv.kernel.shape
(3, 3, 3, 8)
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Union

import jax
import jax.numpy as jnp
from flax import nnx
from flax.linen.dtypes import promote_dtype

from jaxcnn import functional as F
from jaxcnn import _checks
from jaxcnn import layers as L
from jaxcnn import shapes
from jaxcnn.nnx import _compat

Array = jax.Array
Dtype = Any
Initializer = Callable[..., Array]
ActivationLike = Union[str, Callable[[Array], Array], None]


# ---------------------------------------------------------------- interception (for inspect)
# jaxcnn.inspect records every layer's output (feature maps, the summary's rows) by intercepting
# layer calls. Linen has flax.linen.intercept_methods; for these layers the same interceptor
# signature is served by the wrapper below, active only inside `intercept_methods`.

class CallContext(NamedTuple):
  """What an interceptor gets besides the call: the layer, the method, the layer's path."""
  module: Any
  method_name: str
  path: tuple[str, ...]


_TAP: contextvars.ContextVar[Any] = contextvars.ContextVar("jaxcnn_nnx_tap", default=None)


@contextlib.contextmanager
def intercept_methods(interceptor: Callable[..., Any],
                      paths: Mapping[int, tuple[str, ...]]) -> Iterator[None]:
  """Calls ``interceptor(next_fun, args, kwargs, context)`` for every ``__call__`` and
  ``activate`` of a jaxcnn NNX layer inside the block (``flax.linen.intercept_methods``'
  contract); ``paths`` maps ``id(layer)`` to its attribute path in the model."""
  token = _TAP.set((interceptor, paths))
  try:
    yield
  finally:
    _TAP.reset(token)


def _tapped(method_name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
  @functools.wraps(fn)
  def wrapper(self, *args, **kwargs):
    active = _TAP.get()
    if active is None:
      return fn(self, *args, **kwargs)
    interceptor, paths = active
    return interceptor(functools.partial(fn, self), args, kwargs,
                       CallContext(self, method_name, paths.get(id(self), ())))
  wrapper.jaxcnn_tapped = True
  return wrapper


# ---------------------------------------------------------------- helpers

def _frozen(value: Any) -> Any:
  """Lists as tuples, recursively: static attributes of an NNX module must be hashable."""
  if isinstance(value, (list, tuple)):
    return tuple(_frozen(v) for v in value)
  return value


def _check_in(layer: str, name: str, value: Any) -> int:
  return _checks.positive_int(value, name, where=layer)


def _params_key(rngs: Any, layer: str) -> jax.Array:
  if not isinstance(rngs, nnx.Rngs):
    raise ValueError(f"{layer} `rngs` (={rngs!r}) must be an nnx.Rngs, e.g. nnx.Rngs(0)")
  return rngs.params()


def _dropout_stream(rngs: Any, layer: str) -> Any:
  """What a dropout layer keeps: a fork of the ``'dropout'`` (else ``'default'``) stream."""
  if rngs is None:
    return None
  if isinstance(rngs, nnx.Rngs):
    try:
      rngs = rngs["dropout"]
    except (KeyError, AttributeError):
      raise ValueError(f"{layer} `rngs` has no 'dropout' or 'default' stream: pass "
                       "nnx.Rngs(0) or nnx.Rngs(dropout=0)") from None
  if isinstance(rngs, nnx.RngStream):
    return rngs.fork()
  raise ValueError(f"{layer} `rngs` (={rngs!r}) must be an nnx.Rngs, an nnx.RngStream or None")


class Layer(nnx.Module):
  """Base class of the jaxcnn NNX layers: the checks, the name in errors, the fused activation
  and the MAC count are those of the Linen twin (``linen_type``)."""
  linen_type: ClassVar[type] = L.Layer

  def __init_subclass__(cls, **kwargs: Any) -> None:
    super().__init_subclass__(**kwargs)
    for name in ("__call__", "activate"):
      fn = cls.__dict__.get(name)
      if fn is not None and not getattr(fn, "jaxcnn_tapped", False):
        setattr(cls, name, _tapped(name, fn))

  @classmethod
  def from_linen(cls, fields: Mapping[str, Any], input_shape: Sequence[int], *,
                 rngs: nnx.Rngs) -> "Layer":
    """The twin of a Linen layer with these dataclass ``fields`` that is called on inputs of
    ``input_shape``."""
    del input_shape, rngs
    return cls(**fields)

  def check(self) -> None:
    """Raises ``ValueError`` naming the layer and the bad hyper-parameter (the Linen twin's
    check, so both APIs refuse the same values with the same words)."""
    self.linen_type.check(self)

  def label(self) -> str:
    return type(self).__name__

  @contextlib.contextmanager
  def _named_errors(self) -> Iterator[None]:
    try:
      yield
    except ValueError as e:
      raise ValueError(f"{self.label()}: {e}") from None

  def activate(self, y: Array) -> Array:
    """Applies the fused ``activation``, if any (intercepted by :mod:`jaxcnn.inspect`)."""
    activation = getattr(self, "activation", None)
    return y if activation is None else F.get_activation(activation)(y)

  def macs(self, input_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """Multiply-accumulates against weights (the :mod:`jaxcnn.layers` convention)."""
    return self.linen_type.macs(self, input_shape, output_shape)


Layer.activate = _tapped("activate", Layer.activate)


def _param(init: Initializer, key: jax.Array, shape: tuple[int, ...], dtype: Dtype) -> nnx.Param:
  return nnx.Param(init(key, shape, dtype))


class Conv(Layer):
  """N-D convolution (cross-correlation), the twin of :class:`jaxcnn.layers.Conv`.

  ``in_features``: input channels ``C_in``. ``kernel_size``: an int (a 2-D ``k x k`` kernel) or
  one int per spatial dimension (its length is the spatial rank). The rest as in
  :class:`jaxcnn.layers.Conv`. Params ``kernel [*kernel_size, C_in // groups, features]``,
  ``bias [features]``.

  ``x: [B, *spatial, C_in]`` -> ``[B, *spatial_out, features]``.
  """
  linen_type = L.Conv

  def __init__(self, in_features: int, features: int, kernel_size: Union[int, Sequence[int]],
               *, stride: Union[int, Sequence[int]] = 1, padding: shapes.PaddingLike = "VALID",
               dilation: Union[int, Sequence[int]] = 1, groups: int = 1,
               use_bias: bool = True, activation: ActivationLike = None,
               kernel_init: Initializer = L.default_kernel_init,
               bias_init: Initializer = L.default_bias_init, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, precision: Any = None, rngs: nnx.Rngs):
    self.in_features = _check_in("Conv", "in_features", in_features)
    self.features, self.groups = features, groups
    self.kernel_size = _frozen(kernel_size)
    self.stride, self.padding, self.dilation = _frozen(stride), _frozen(padding), _frozen(dilation)
    self.use_bias, self.activation = use_bias, activation
    self.kernel_init, self.bias_init = kernel_init, bias_init
    self.dtype, self.param_dtype, self.precision = dtype, param_dtype, precision
    self.check()
    if isinstance(self.kernel_size, int):
      self.kernel_size = (self.kernel_size,) * 2
    _checks.divisible(self.in_features, "in_features", groups, "`groups`", where="Conv")
    key = _params_key(rngs, "Conv")
    self.kernel = _param(kernel_init, key, (*self.kernel_size, self.in_features // groups,
                                             features), param_dtype)
    self.bias = (_param(bias_init, rngs.params(), (features,), param_dtype) if use_bias
                 else None)

  @classmethod
  def from_linen(cls, fields, input_shape, *, rngs):
    fields = dict(fields)
    n = len(input_shape) - 2
    fields["kernel_size"] = shapes.normalize_tuple(fields["kernel_size"], n, "kernel_size")
    return cls(input_shape[-1], rngs=rngs, **fields)

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    n = len(self.kernel_size)
    with self._named_errors():
      _checks.rank(x, n + 2, fix=f"this Conv was built for {n}-D inputs (kernel_size "
                                 f"{self.kernel_size})")
      if x.shape[-1] != self.in_features:
        raise ValueError(f"got x of shape {tuple(x.shape)} ({x.shape[-1]} input channels), but "
                         f"it was built for in_features={self.in_features}")
      shapes.conv_output_shape(x.shape, self.kernel_size, self.features, stride=self.stride,
                               padding=self.padding, dilation=self.dilation)
    kernel = _compat.get_value(self.kernel)
    bias = None if self.bias is None else _compat.get_value(self.bias)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    with self._named_errors():
      y = F.conv(x, kernel, bias, stride=self.stride, padding=self.padding,
                 dilation=self.dilation, groups=self.groups, precision=self.precision)
    return self.activate(y)


class Dense(Layer):
  """Fully connected layer on the last axis, the twin of :class:`jaxcnn.layers.Dense`.

  Params ``kernel [in_features, features]``, ``bias [features]``;
  ``x: [..., in_features]`` -> ``[..., features]``.
  """
  linen_type = L.Dense

  def __init__(self, in_features: int, features: int, *, activation: ActivationLike = None,
               use_bias: bool = True, kernel_init: Initializer = L.default_kernel_init,
               bias_init: Initializer = L.default_bias_init, dtype: Dtype | None = None,
               param_dtype: Dtype = jnp.float32, precision: Any = None, rngs: nnx.Rngs):
    self.in_features = _check_in("Dense", "in_features", in_features)
    self.features, self.activation, self.use_bias = features, activation, use_bias
    self.kernel_init, self.bias_init = kernel_init, bias_init
    self.dtype, self.param_dtype, self.precision = dtype, param_dtype, precision
    self.check()
    self.kernel = _param(kernel_init, _params_key(rngs, "Dense"), (self.in_features, features),
                         param_dtype)
    self.bias = (_param(bias_init, rngs.params(), (features,), param_dtype) if use_bias
                 else None)

  @classmethod
  def from_linen(cls, fields, input_shape, *, rngs):
    return cls(input_shape[-1], rngs=rngs, **fields)

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    if x.ndim < 2:
      raise ValueError(f"{self.label()} expects an input [B, ..., features], got shape "
                       f"{tuple(x.shape)}")
    if x.shape[-1] != self.in_features:
      raise ValueError(f"{self.label()} got x of shape {tuple(x.shape)} ({x.shape[-1]} input "
                       f"features), but it was built for in_features={self.in_features}")
    kernel = _compat.get_value(self.kernel)
    bias = None if self.bias is None else _compat.get_value(self.bias)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    return self.activate(F.dense(x, kernel, bias, precision=self.precision))


class _Pool(Layer):
  linen_type = L.MaxPool

  def __init__(self, window: Union[int, Sequence[int]],
               stride: Union[int, Sequence[int], None] = None,
               padding: shapes.PaddingLike = "VALID"):
    self.window, self.stride, self.padding = _frozen(window), _frozen(stride), _frozen(padding)
    self.check()


class MaxPool(_Pool):
  """Max pooling (padded cells never win), the twin of :class:`jaxcnn.layers.MaxPool`."""
  linen_type = L.MaxPool

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    with self._named_errors():
      return F.max_pool(x, self.window, stride=self.stride, padding=self.padding)


class AvgPool(_Pool):
  """Average pooling, the twin of :class:`jaxcnn.layers.AvgPool`."""
  linen_type = L.AvgPool

  def __init__(self, window: Union[int, Sequence[int]],
               stride: Union[int, Sequence[int], None] = None,
               padding: shapes.PaddingLike = "VALID", count_include_pad: bool = True):
    self.count_include_pad = count_include_pad
    super().__init__(window, stride, padding)

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    with self._named_errors():
      return F.avg_pool(x, self.window, stride=self.stride, padding=self.padding,
                        count_include_pad=self.count_include_pad)


class SumPool(_Pool):
  """Sum pooling, the twin of :class:`jaxcnn.layers.SumPool`."""
  linen_type = L.SumPool

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    with self._named_errors():
      return F.sum_pool(x, self.window, stride=self.stride, padding=self.padding)


class LpPool(Layer):
  """Power-average pooling, the twin of :class:`jaxcnn.layers.LpPool`."""
  linen_type = L.LpPool

  def __init__(self, p: float, window: Union[int, Sequence[int]],
               stride: Union[int, Sequence[int], None] = None,
               padding: shapes.PaddingLike = "VALID"):
    self.p = p
    self.window, self.stride, self.padding = _frozen(window), _frozen(stride), _frozen(padding)
    self.check()

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    with self._named_errors():
      return F.lp_pool(x, self.p, self.window, stride=self.stride, padding=self.padding)


class GlobalAvgPool(Layer):
  """Mean over all spatial dimensions: ``[B, *spatial, C]`` -> ``[B, C]``."""
  linen_type = L.GlobalAvgPool

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    with self._named_errors():
      return F.global_avg_pool(x)


class GlobalMaxPool(Layer):
  """Max over all spatial dimensions: ``[B, *spatial, C]`` -> ``[B, C]``."""
  linen_type = L.GlobalMaxPool

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    with self._named_errors():
      return F.global_max_pool(x)


class Flatten(Layer):
  """``[B, ...]`` -> ``[B, prod(...)]`` (row-major: channels vary fastest, as in Keras)."""
  linen_type = L.Flatten

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    return F.flatten(x)


class Activation(Layer):
  """An activation by name (``'relu'``, ``'gelu'``, ...) or any callable ``x -> y``."""
  linen_type = L.Activation

  def __init__(self, fn: Union[str, Callable[[Array], Array]]):
    self.fn = fn
    self.check()

  @property
  def activation(self) -> Union[str, Callable[[Array], Array]]:
    return self.fn

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    del train
    return self.activate(x)


class _DropoutBase(Layer):
  linen_type = L.Dropout

  def __init__(self, rate: float, *, deterministic: bool = False,
               rngs: nnx.Rngs | nnx.RngStream | None = None):
    self.rate, self.deterministic = rate, deterministic
    self.check()
    self.rngs = _dropout_stream(rngs, type(self).__name__)

  def is_active(self, train: bool | None) -> bool:
    """Whether a call with this ``train`` drops anything (``None``: the layer's mode)."""
    active = (not self.deterministic) if train is None else bool(train)
    return active and self.rate > 0.0

  def _key(self, rngs: Any) -> jax.Array:
    source = self.rngs if rngs is None else rngs
    if isinstance(source, nnx.Rngs):
      source = _dropout_stream(source, self.label())
    if isinstance(source, nnx.RngStream):
      return source()
    if isinstance(source, jax.Array):
      return source
    raise ValueError(
        f"{self.label()} in train mode needs a key: build it with {self.label()}(rate, "
        "rngs=nnx.Rngs(0)), pass rngs=key to the call, or call model.eval() (or train=False) "
        "to evaluate")

  def _drop(self, key: jax.Array, x: Array) -> Array:
    raise NotImplementedError

  def __call__(self, x: Array, train: bool | None = None, *, rngs: Any = None) -> Array:
    if not self.is_active(train):
      return x
    return self._drop(self._key(rngs), x)


class Dropout(_DropoutBase):
  """Inverted dropout, the twin of :class:`jaxcnn.layers.Dropout`: active in train mode
  (``model.train()``, ``deterministic=False``, or ``train=True``), the identity otherwise."""
  linen_type = L.Dropout

  def _drop(self, key: jax.Array, x: Array) -> Array:
    return F.dropout(key, x, self.rate)


class ChannelDropout(_DropoutBase):
  """Drops whole feature maps (mask ``[B, 1, ..., 1, C]``), the twin of
  :class:`jaxcnn.layers.ChannelDropout`."""
  linen_type = L.ChannelDropout

  def _drop(self, key: jax.Array, x: Array) -> Array:
    return F.channel_dropout(key, x, self.rate)


class BatchNorm(Layer):
  """Batch normalisation over all axes but the last, the twin of
  :class:`jaxcnn.layers.BatchNorm` (same momentum convention: the weight of the old running
  statistics).

  In train mode (``model.train()``, ``use_running_average=False``, or ``train=True``) it
  normalises with the batch moments and writes the new running moments into ``mean`` and
  ``var`` (``nnx.BatchStat``); in eval mode it normalises with them.

  Variables: ``scale``, ``bias`` (``nnx.Param``, when used), ``mean``, ``var``
  (``nnx.BatchStat``), all ``[num_features]``.
  """
  linen_type = L.BatchNorm

  def __init__(self, num_features: int, *, momentum: float = 0.9, epsilon: float = 1e-5,
               axis_name: str | None = None, use_scale: bool = True, use_bias: bool = True,
               scale_init: Initializer = jax.nn.initializers.ones,
               bias_init: Initializer = jax.nn.initializers.zeros,
               dtype: Dtype | None = None, param_dtype: Dtype = jnp.float32,
               use_running_average: bool = False, rngs: nnx.Rngs):
    self.num_features = _check_in("BatchNorm", "num_features", num_features)
    self.momentum, self.epsilon, self.axis_name = momentum, epsilon, axis_name
    self.use_scale, self.use_bias = use_scale, use_bias
    self.scale_init, self.bias_init = scale_init, bias_init
    self.dtype, self.param_dtype = dtype, param_dtype
    self.use_running_average = use_running_average
    self.check()
    c = self.num_features
    stats_dtype = jnp.promote_types(param_dtype, jnp.float32)
    self.mean = nnx.BatchStat(jnp.zeros((c,), stats_dtype))
    self.var = nnx.BatchStat(jnp.ones((c,), stats_dtype))
    key = _params_key(rngs, "BatchNorm")
    self.scale = _param(scale_init, key, (c,), param_dtype) if use_scale else None
    self.bias = _param(bias_init, rngs.params(), (c,), param_dtype) if use_bias else None

  @classmethod
  def from_linen(cls, fields, input_shape, *, rngs):
    return cls(input_shape[-1], rngs=rngs, **fields)

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    train = (not self.use_running_average) if train is None else bool(train)
    if x.ndim < 2:
      raise ValueError(f"{self.label()} expects an input [B, ..., C], got shape "
                       f"{tuple(x.shape)}")
    if x.shape[-1] != self.num_features:
      raise ValueError(f"{self.label()} got x of shape {tuple(x.shape)} ({x.shape[-1]} "
                       f"channels), but it was built for num_features={self.num_features}")
    scale = None if self.scale is None else _compat.get_value(self.scale)
    bias = None if self.bias is None else _compat.get_value(self.bias)
    mean, var = _compat.get_value(self.mean), _compat.get_value(self.var)
    x, scale, bias = promote_dtype(x, scale, bias, dtype=self.dtype)
    y, (new_mean, new_var) = F.batch_norm(
        x, scale, bias, mean, var, train=train, momentum=self.momentum, epsilon=self.epsilon,
        axis_name=self.axis_name)
    if train:
      _compat.set_value(self.mean, new_mean.astype(mean.dtype))
      _compat.set_value(self.var, new_var.astype(var.dtype))
    return y


class Sequential(nnx.Module):
  """Applies ``layers`` in order, passing ``train`` to the jaxcnn layers (and nested
  ``Sequential`` s); other callables (``jax.nn.relu``, an ``nnx.Linear``) are called as
  ``f(x)``. The layers are the attributes ``layers_0``, ``layers_1``, ..., the names of the
  Linen :class:`jaxcnn.layers.Sequential`, so both have the same variable paths.

  >>> from flax import nnx
  >>> rngs = nnx.Rngs(0)
  >>> net = Sequential([Dense(3, 4, activation='relu', rngs=rngs), Dropout(0.5, rngs=rngs),
  ...                   Dense(4, 2, rngs=rngs)])
  >>> net.eval()
  >>> net(jnp.ones((5, 3))).shape
  (5, 2)
  """

  def __init__(self, layers: Sequence[Callable[..., Any]]):
    layers = list(layers or ())
    if not layers:
      raise ValueError("Sequential needs at least one layer, got an empty `layers`")
    for i, layer in enumerate(layers):
      if not callable(layer):
        raise ValueError(f"Sequential `layers[{i}]` (={layer!r}) must be a layer or a callable "
                         "x -> y")
      setattr(self, f"layers_{i}", layer)
    self.num_layers = len(layers)

  def __call__(self, x: Array, train: bool | None = None) -> Array:
    for i in range(self.num_layers):
      layer = getattr(self, f"layers_{i}")
      x = layer(x, train=train) if isinstance(layer, (Layer, Sequential)) else layer(x)
    return x


Sequential.__call__ = _tapped("__call__", Sequential.__call__)  # a feature map, as in Linen


# The twin of each Linen layer class (exact types: a subclass with its own __call__, such as the
# speed net's WhiteningConv, has no twin and is carried as a Linen layer; see _convert.py).
TWINS: dict[type, type] = {
    L.Conv: Conv, L.Dense: Dense, L.MaxPool: MaxPool, L.AvgPool: AvgPool, L.SumPool: SumPool,
    L.LpPool: LpPool, L.GlobalAvgPool: GlobalAvgPool, L.GlobalMaxPool: GlobalMaxPool,
    L.Dropout: Dropout, L.ChannelDropout: ChannelDropout, L.Flatten: Flatten,
    L.Activation: Activation, L.BatchNorm: BatchNorm,
}
