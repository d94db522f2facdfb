"""Looking inside a model: its summary, every layer's output, and what the output depends on.

* :func:`summary`: the Keras-like table (layer, output shape, parameters, MACs), traced
  abstractly (it needs Flax and the layers, which :mod:`jaxcnn.shapes` stays free of).
* :func:`feature_maps`: every layer's output by its explicit Flax name (``'Conv_0'``,
  ``'layers_2'``, ``'Block_0/Conv_1'``), plus ``'<layer>/pre_activation'`` for a ``Conv`` or
  ``Dense`` with a fused activation.
* attributions, each ``[B, ...]`` for a batch ``x`` and a target class (an int or ``[B]``
  ints), always of the *logit* (not the probability, whose gradient also depends on the
  other classes): :func:`saliency`, :func:`smoothgrad`, :func:`integrated_gradients`,
  :func:`guided_backprop` (guided backprop or deconvnet ReLUs, via ``jax.custom_vjp``),
  :func:`grad_cam` at any named layer, :func:`occlusion` (patches batched with ``vmap``);
* :func:`maximize_activation`: an input that maximises a logit or a channel of a layer
  (gradient ascent with jitter and a smoothness prior, pixel or Fourier parameterisation);
* :func:`dead_relu_fraction`: the share of ReLU units that output 0 on a whole batch.

Models are called as ``model.apply(variables, x, train=train)`` (every jaxcnn model and
:class:`jaxcnn.layers.Sequential`); layers are found with ``flax.linen.intercept_methods``, so
the model needs no change and no ``sow``. Every function also takes a Flax NNX module as
``model``, with ``variables=None`` for the module's own (or variables in the Linen layout of
:mod:`jaxcnn.nnx`): a :class:`jaxcnn.nnx.Model` is inspected as its Linen model, any other
module through :func:`jaxcnn.nnx.linen_view`, its :mod:`jaxcnn.nnx` layers named by attribute
path (``'conv1'``, ``'block/conv'``).

>>> import jax, jax.numpy as jnp
>>> from jaxcnn.models import get_model
>>> model = get_model('tutorial_cnn')
>>> variables = model.init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))
>>> maps = feature_maps(model, variables, jnp.ones((2, 32, 32, 3)))
>>> list(maps)[:4]
['Conv_0/pre_activation', 'Conv_0', 'MaxPool_0', 'Conv_1/pre_activation']
>>> maps['Conv_1'].shape
(2, 13, 13, 64)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxcnn import _checks
from jaxcnn import layers as L
from jaxcnn.layers import Layer

Array = jax.Array

__all__ = [
    "Summary", "SummaryRow", "summary", "feature_maps", "saliency", "smoothgrad",
    "integrated_gradients", "guided_backprop", "guided_relu", "deconv_relu", "grad_cam",
    "occlusion", "maximize_activation", "Visualization", "dead_relu_fraction", "layer_names",
]


# ------------------------------------------------------------------------------------------------
# NNX modules: seen as Linen (their Linen twin, or jaxcnn.nnx.linen_view), and their layers'
# calls intercepted by jaxcnn.nnx's interceptor, whose context carries the layer's path.

def _linen_face(model: Any, variables: Any) -> tuple[Any, Any]:
  """``(model, variables)`` to call as Linen; an NNX module's own variables when None."""
  nnx = sys.modules.get("flax.nnx")
  if nnx is None or not isinstance(model, nnx.Module):
    return model, variables
  from jaxcnn import nnx as jnnx  # pylint: disable=g-import-not-at-top
  if isinstance(model, jnnx.Model):
    return model.linen_module, (jnnx.to_linen_variables(model) if variables is None
                                else variables)
  view = jnnx.linen_view(model)
  return view, (view.variables if variables is None else variables)


@contextlib.contextmanager
def _intercepting(model: Any, interceptor: Callable[..., Any]):
  with contextlib.ExitStack() as stack:
    stack.enter_context(nn.intercept_methods(interceptor))
    if not isinstance(model, nn.Module) and hasattr(model, "intercept_methods"):
      stack.enter_context(model.intercept_methods(interceptor))
    yield


def _path(module: Any, context: Any) -> tuple[str, ...]:
  path = getattr(context, "path", None)
  return tuple(module.path) if path is None else tuple(path)


def _kind(module: Any) -> type:
  """The Linen layer class of a layer (an NNX twin names its Linen class)."""
  return getattr(module, "linen_type", type(module))


def _name(model: Any) -> str:
  return getattr(model, "model_name", None) or type(model).__name__


# ------------------------------------------------------------------------------------------------
# Model summary.

# Collections that hold no model state (Flax's `sow` outputs) and are left out of the counts.
_NON_STATE_COLLECTIONS = ("intermediates",)


class SummaryRow(NamedTuple):
  """One jaxcnn layer call: its module path, class, output shape (batch included), the number
  of variables it owns (params and batch statistics), its multiply-accumulates and its input
  shape."""
  name: str
  layer_type: str
  output_shape: tuple[int, ...]
  params: int
  macs: int
  input_shape: tuple[int, ...] = ()


def _fmt_bytes(n: int) -> str:
  for unit in ("B", "KB", "MB", "GB"):
    if n < 1024 or unit == "GB":
      return f"{n:.2f} {unit}"
    n /= 1024
  raise AssertionError("unreachable")


@dataclasses.dataclass(frozen=True)
class Summary:
  """What :func:`summary` returns; ``str(summary)`` is the text table.

  ``total_params`` counts every variable (trainable ``params`` plus non-trainable state such as
  BatchNorm's running ``mean``/``var``, as Keras does); ``trainable_params`` the ``params``
  collection only. ``total_macs`` is for the batch in ``input_shape`` (use a batch of 1 for the
  per-example count); see :mod:`jaxcnn.layers` for the MAC convention.
  """
  model_name: str
  input_shape: tuple[int, ...]
  rows: tuple[SummaryRow, ...]
  total_params: int
  trainable_params: int
  total_macs: int
  total_bytes: int = 0
  trainable_bytes: int = 0

  @property
  def non_trainable_params(self) -> int:
    return self.total_params - self.trainable_params

  def __repr__(self) -> str:
    # Short, so that a notebook cell ending in `summary(...)` shows the printed table and this
    # one line, not the dataclass with every row.
    return (f"<Summary of {self.model_name} on {self.input_shape}: {self.total_params:,} "
            f"params, {self.total_macs:,} MACs; print(summary) for the table>")

  def __str__(self) -> str:
    header = ("Layer (type)", "Output shape", "Params", "MACs")
    body = [(f"{r.name or '(model)'} ({r.layer_type})" if r.layer_type else r.name,
             str(r.output_shape) if r.output_shape else "", f"{r.params:,}", f"{r.macs:,}")
            for r in self.rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(4)]

    def fmt(line: Sequence[str]) -> str:
      return "  ".join([line[0].ljust(widths[0]), line[1].ljust(widths[1]),
                        line[2].rjust(widths[2]), line[3].rjust(widths[3])])

    rule = sum(widths) + 6
    non_trainable_bytes = self.total_bytes - self.trainable_bytes
    lines = [
        f'Model: "{self.model_name}"   input {self.input_shape}',
        "=" * rule, fmt(header), "=" * rule,
        *(fmt(line) for line in body),
        "=" * rule,
        f"Total params: {self.total_params:,} ({_fmt_bytes(self.total_bytes)})",
        f"Trainable params: {self.trainable_params:,} ({_fmt_bytes(self.trainable_bytes)})",
        f"Non-trainable params: {self.non_trainable_params:,} "
        f"({_fmt_bytes(non_trainable_bytes)})",
        f"Total MACs: {self.total_macs:,} (batch of {self.input_shape[0]})",
        "-" * rule,
    ]
    return "\n".join(lines)


def _subtree(tree: Any, path: Sequence[str]) -> Any:
  for key in path:
    if not isinstance(tree, Mapping) or key not in tree:
      return None
    tree = tree[key]
  return tree


def summary(
    model: Any,
    input_shape: Sequence[int],
    *,
    print_fn: Callable[[str], Any] | None = print,
    input_dtype: Any = "float32",
    name: str | None = None,
    **call_kwargs: Any,
) -> Summary:
  """Keras-like summary of a Flax model built from :mod:`jaxcnn.layers`.

  (It is here, not in :mod:`jaxcnn.shapes`, which sits below the layers in the import graph.)

  The model is initialised under ``jax.eval_shape``, so no parameter is materialised and no
  FLOP is spent; every call of a jaxcnn layer (``Sequential`` members and layers created inside
  ``@nn.compact`` models alike) is caught with ``flax.linen.intercept_methods`` to record its
  input and output shapes. A layer made of other jaxcnn layers is one row (the outermost call).
  Variables not owned by any jaxcnn layer (e.g. a stock ``flax.linen.Dense``) appear as one
  ``(other variables)`` row, so the rows always add up to ``total_params``.

  Args:
    model: an unbound ``flax.linen.Module`` with ``__call__(x, **call_kwargs)``, or an NNX
      module.
    input_shape: ``[B, *spatial, C]`` (batch included; MACs are for this batch).
    print_fn: called with the table; ``None`` prints nothing.
    input_dtype: dtype of the traced input.
    name: the model's name in the table's first line (``Model: "tutorial_cnn_512"``), e.g. the
      name it was built by with :func:`jaxcnn.models.get_model`; default: its class name (two
      models of one class, such as ``tutorial_cnn`` and ``tutorial_cnn_512``, both
      ``TutorialCNN``).
    **call_kwargs: passed to the model call, e.g. ``train=True``.

  Returns:
    a :class:`Summary`; ``str(summary)`` is the table that was printed.

  >>> from jaxcnn.models import get_model
  >>> s = summary(get_model('tutorial_cnn'), (1, 32, 32, 3), print_fn=None)
  >>> s.total_params, s.rows[0].output_shape
  (122570, (1, 30, 30, 32))
  """
  shape = tuple(input_shape)
  if not shape or any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in shape):
    raise ValueError(f"`input_shape` (={input_shape!r}) must be a sequence of positive ints")
  if name is not None and (not isinstance(name, str) or not name):
    raise ValueError(f"`name` (={name!r}) must be a non-empty string or None")
  model, _ = _linen_face(model, None)
  default_name = _name(model)

  calls: list[tuple[tuple[str, ...], str, tuple[int, ...], int, tuple[int, ...]]] = []
  open_layers: list[Any] = []

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name != "__call__" or not issubclass(_kind(module), Layer):
      return next_fun(*args, **kwargs)
    open_layers.append(module)
    try:
      out = next_fun(*args, **kwargs)
    finally:
      open_layers.pop()
    if not open_layers:  # only the outermost jaxcnn layer of a nest is a row
      x = args[0] if args else kwargs["x"]
      in_shape, out_shape = tuple(x.shape), tuple(out.shape)
      calls.append((_path(module, context), type(module).__name__, out_shape,
                    int(module.macs(in_shape, out_shape)), in_shape))
    return out

  def init(x):
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    with _intercepting(model, interceptor):
      return model.init(rngs, x, **call_kwargs)

  variables = jax.eval_shape(init, jax.ShapeDtypeStruct(shape, input_dtype))
  state = {c: v for c, v in variables.items() if c not in _NON_STATE_COLLECTIONS}

  def count(tree: Any) -> tuple[int, int]:
    leaves = jax.tree_util.tree_leaves(tree)
    return (sum(math.prod(leaf.shape) for leaf in leaves),
            sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in leaves))

  total_params, total_bytes = count(state)
  trainable_params, trainable_bytes = count(state.get("params", {}))

  rows, seen = [], set()
  for path, layer_type, out_shape, macs, in_shape in calls:
    # A module called twice shares its weights: count them on the first call only.
    params = 0 if path in seen else sum(count(_subtree(t, path))[0] for t in state.values())
    seen.add(path)
    rows.append(SummaryRow("/".join(path), layer_type, out_shape, params, macs, in_shape))
  other = total_params - sum(r.params for r in rows)
  if other:
    rows.append(SummaryRow("(other variables)", "", (), other, 0))

  result = Summary(
      model_name=name or default_name, input_shape=shape, rows=tuple(rows),
      total_params=total_params, trainable_params=trainable_params,
      total_macs=sum(r.macs for r in rows), total_bytes=total_bytes,
      trainable_bytes=trainable_bytes)
  if print_fn is not None:
    print_fn(str(result))
  return result


# ------------------------------------------------------------------------------------------------
# Feature maps: one interceptor that names every module call and can tap or modify one of them.

def _is_relu(activation: Any) -> bool:
  return L._is_relu(activation)  # pylint: disable=protected-access


@jax.custom_vjp
def guided_relu(x: Array) -> Array:
  """``relu(x)`` whose backward pass lets through only positive gradients at positive inputs
  (Springenberg et al. 2015, guided backpropagation): ``g * (x > 0) * (g > 0)``."""
  return jax.nn.relu(x)


def _guided_fwd(x):
  return jax.nn.relu(x), x


def _guided_bwd(x, g):
  return (jnp.where((x > 0) & (g > 0), g, jnp.zeros_like(g)),)


guided_relu.defvjp(_guided_fwd, _guided_bwd)


@jax.custom_vjp
def deconv_relu(x: Array) -> Array:
  """``relu(x)`` whose backward pass is ``relu(g)``, ignoring the forward input (Zeiler &
  Fergus 2014, the deconvnet's "unpooling through a ReLU")."""
  return jax.nn.relu(x)


def _deconv_fwd(x):
  return jax.nn.relu(x), None


def _deconv_bwd(_, g):
  return (jax.nn.relu(g),)


deconv_relu.defvjp(_deconv_fwd, _deconv_bwd)


PRE_ACTIVATION = "pre_activation"


class _Tap:
  """A ``flax.linen.intercept_methods`` interceptor.

  Names each submodule call by its path (``'Block_0/Conv_1'``; a module called again gets
  ``'#1'``, ``'#2'``, ...), records its output (and the input of a fused activation as
  ``'<name>/pre_activation'``) when ``record``; adds ``delta`` to the output named ``target``;
  and replaces ReLU activations with ``relu`` when given.
  """

  def __init__(self, *, record: bool = True, target: str | None = None,
               delta: Array | None = None, relu: Callable[[Array], Array] | None = None):
    self.record, self.target, self.delta, self.relu = record, target, delta, relu
    self.maps: dict[str, Array] = {}
    self.tapped: Array | None = None
    self._counts: dict[str, int] = {}
    self._stack: list[tuple[Any, str]] = []

  def _output(self, name: str, y: Any) -> Any:
    if name == self.target:
      if self.delta is not None:
        y = y + self.delta
      self.tapped = y
    if self.record and isinstance(y, jax.Array):
      self.maps[name] = y
    return y

  def __call__(self, next_fun, args, kwargs, context):
    module, method = context.module, context.method_name
    path = _path(module, context) if method == "__call__" else ()
    if path:
      base = "/".join(path)
      n = self._counts.get(base, 0)
      self._counts[base] = n + 1
      name = base if n == 0 else f"{base}#{n}"
      self._stack.append((module, name))
      try:
        y = next_fun(*args, **kwargs)
      finally:
        self._stack.pop()
      return self._output(name, y)
    if method == "activate" and self._stack and self._stack[-1][0] is module:
      y = args[0] if args else kwargs["y"]
      if issubclass(_kind(module), (L.Conv, L.Dense)) and module.activation is not None:
        y = self._output(f"{self._stack[-1][1]}/{PRE_ACTIVATION}", y)
      if self.relu is not None and _is_relu(module.activation):
        return self.relu(y)
      return next_fun(y)
    return next_fun(*args, **kwargs)


def _apply(model: nn.Module, variables: Mapping[str, Any], x: Array, tap: _Tap, *,
           train: bool = False, rngs: Mapping[str, Any] | None = None) -> Array:
  """``model.apply(variables, x, train=train)`` under ``tap``; in train mode the batch
  statistics are mutable (and their updates dropped: inspection changes no state)."""
  model, variables = _linen_face(model, variables)
  with _intercepting(model, tap):
    if train:
      out, _ = model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])
      return out
    return model.apply(variables, x, train=False, rngs=rngs)


def feature_maps(model: nn.Module, variables: Mapping[str, Any], x: Array, train: bool = False,
                 *, rngs: Mapping[str, Any] | None = None) -> dict[str, Array]:
  """Every submodule's output for the batch ``x``, keyed by its explicit Flax name.

  Keys, in the order the outputs are computed: the module path joined by ``/`` (``'Conv_0'``
  in a ``@nn.compact`` model, ``'layers_3'`` in :class:`~jaxcnn.layers.Sequential`,
  ``'Block_0/Conv_1'`` inside a block; a module called twice gives ``'name'`` then
  ``'name#1'``), and ``'<name>/pre_activation'`` (the conv or dense output before its fused
  activation, e.g. ``Conv(32, 3, activation='relu')``) just before ``'<name>'``. Plain
  functions in a ``Sequential`` (``jax.nn.relu``) are not modules and have no entry; the
  model's own output is what ``model.apply`` returns.

  Args:
    model: a Flax module called as ``model.apply(variables, x, train=...)``.
    variables: its variables (``params`` and, with BatchNorm, ``batch_stats``).
    x: ``[B, *spatial, C]``.
    train: run in train mode (batch statistics, dropout; pass ``rngs={'dropout': key}``).
      The updated batch statistics are discarded.
    rngs: rng streams for ``apply``.

  Returns:
    ``{name: array}`` with each array's batch axis first.

  >>> import jax, jax.numpy as jnp
  >>> from jaxcnn import layers as L
  >>> net = L.Sequential([L.Conv(4, 3, activation='relu'), L.Flatten(), L.Dense(2)])
  >>> v = net.init(jax.random.key(0), jnp.ones((1, 5, 5, 1)))
  >>> {k: m.shape for k, m in feature_maps(net, v, jnp.ones((1, 5, 5, 1))).items()}
  {'layers_0/pre_activation': (1, 3, 3, 4), 'layers_0': (1, 3, 3, 4), 'layers_1': (1, 36), \
'layers_2': (1, 2)}
  """
  tap = _Tap()
  _apply(model, variables, jnp.asarray(x), tap, train=train, rngs=rngs)
  return tap.maps


def layer_names(model: nn.Module, variables: Mapping[str, Any], x: Array) -> list[str]:
  """The keys :func:`feature_maps` returns for ``x`` (traced abstractly: no FLOP spent)."""
  tap = _Tap()

  def run(v, x):
    _apply(model, v, x, tap)
    return jnp.zeros(())

  jax.eval_shape(run, variables, jnp.asarray(x))
  return list(tap.maps)


# ------------------------------------------------------------------------------------------------
# Attributions. Every one is of the logit of `target` (an int, or [B] ints, one per example).

def _target_logits(logits: Array, target: Any) -> Array:
  """``logits[b, target_b]`` for each ``b``: ``[B]``."""
  if logits.ndim != 2:
    raise ValueError(f"attributions need logits [B, K], the model returned shape "
                     f"{tuple(logits.shape)}")
  target = jnp.asarray(target)
  if not jnp.issubdtype(target.dtype, jnp.integer) or target.ndim > 1:
    raise ValueError(f"`target` must be an int class index or [B] ints, got {target!r}")
  if not isinstance(target, jax.core.Tracer):
    bad = np.asarray(target)
    if bad.size and (bad.min() < 0 or bad.max() >= logits.shape[1]):
      raise ValueError(f"`target` (={bad.tolist()}) must be in [0, {logits.shape[1]})")
  target = jnp.broadcast_to(target, logits.shape[:1])
  return jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]


def _logit_sum(model, variables, target, tap_factory=lambda: _Tap(record=False)):
  """``x -> sum_b logit_b(target_b)``: its gradient is every example's own input gradient
  (in eval mode examples do not interact)."""

  def f(x):
    return jnp.sum(_target_logits(_apply(model, variables, x, tap_factory()), target))

  return f


def saliency(model: nn.Module, variables: Mapping[str, Any], x: Array, target: Any) -> Array:
  """Gradient of the target logit with respect to the input (Simonyan et al. 2014).

  Returns ``[B, *spatial, C]``, like ``x``; plot ``abs(...).max(-1)`` for the usual map. For a
  linear model ``x -> W x`` it is exactly the weight row of the target class.

  >>> import jax, jax.numpy as jnp
  >>> from jaxcnn import layers as L
  >>> net = L.Sequential([L.Flatten(), L.Dense(3)])
  >>> v = net.init(jax.random.key(0), jnp.ones((1, 2, 2, 1)))
  >>> s = saliency(net, v, jnp.ones((1, 2, 2, 1)), 1)
  >>> bool(jnp.allclose(s.reshape(-1), v['params']['layers_1']['kernel'][:, 1]))
  True
  """
  x = jnp.asarray(x)
  return jax.grad(_logit_sum(model, variables, target))(x)


def smoothgrad(model: nn.Module, variables: Mapping[str, Any], x: Array, target: Any, *,
               key: Array, num_samples: int = 32, noise_level: float = 0.15,
               batch_size: int | None = 8) -> Array:
  """SmoothGrad (Smilkov et al. 2017): the saliency averaged over ``num_samples`` noisy copies
  of ``x``, noise ``N(0, sigma^2)`` with ``sigma = noise_level * (max - min)`` of each example.

  The samples are mapped ``batch_size`` at a time (``lax.map``, vmapped inside). Returns
  ``[B, *spatial, C]``.
  """
  num_samples = _checks.positive_int(num_samples, "num_samples")
  x = jnp.asarray(x)
  axes = tuple(range(1, x.ndim))
  sigma = noise_level * (jnp.max(x, axis=axes, keepdims=True)
                         - jnp.min(x, axis=axes, keepdims=True))
  grad = jax.grad(_logit_sum(model, variables, target))

  def one(k):
    return grad(x + sigma * jax.random.normal(k, x.shape, x.dtype))

  grads = lax.map(one, jax.random.split(key, num_samples), batch_size=batch_size)
  return jnp.mean(grads, axis=0)


def integrated_gradients(model: nn.Module, variables: Mapping[str, Any], x: Array, target: Any,
                         *, baseline: Array | None = None, steps: int = 64,
                         batch_size: int | None = 16) -> Array:
  """Integrated gradients (Sundararajan et al. 2017) from ``baseline`` (zeros) to ``x``.

  ``(x - x0) * integral_0^1 grad f(x0 + a (x - x0)) da``, the integral by the trapezoid rule on
  ``steps`` intervals. Completeness: the attributions of an example sum to
  ``f(x) - f(x0)`` up to the quadrature error, which falls as ``steps`` grows (check it with
  ``attr.sum() - (logit(x) - logit(x0))``). Returns ``[B, *spatial, C]``.
  """
  steps = _checks.positive_int(steps, "steps")
  x = jnp.asarray(x)
  x0 = jnp.zeros_like(x) if baseline is None else jnp.broadcast_to(baseline, x.shape)
  grad = jax.grad(_logit_sum(model, variables, target))
  alphas = jnp.linspace(0.0, 1.0, steps + 1, dtype=x.dtype)
  weights = jnp.full((steps + 1,), 1.0 / steps, x.dtype).at[0].mul(0.5).at[-1].mul(0.5)
  grads = lax.map(lambda a: grad(x0 + a * (x - x0)), alphas, batch_size=batch_size)
  return (x - x0) * jnp.tensordot(weights, grads, axes=1)


def guided_backprop(model: nn.Module, variables: Mapping[str, Any], x: Array, target: Any, *,
                    mode: str = "guided") -> Array:
  """The input gradient with every ReLU's backward pass replaced (``jax.custom_vjp``).

  ``mode='guided'``: ``guided_relu`` (guided backpropagation: a ReLU whose backward pass lets
  through only positive gradients at positive inputs); ``'deconvnet'``: ``deconv_relu`` (Zeiler
  & Fergus' deconvnet view: the backward pass is ``relu`` of the gradient). ReLUs are the fused
  ``'relu'`` activations of jaxcnn layers and ``Activation('relu')`` layers; a plain
  ``jax.nn.relu`` function in a ``Sequential`` is not a module and keeps its ordinary gradient.
  Max pools send each window's signal to one cell, its first maximum (the deconvnet's
  "switches"; see :func:`jaxcnn.functional.max_pool`), ties included. Returns
  ``[B, *spatial, C]``.
  """
  relus = {"guided": guided_relu, "deconvnet": deconv_relu}
  if mode not in relus:
    raise ValueError(f"`mode` (={mode!r}) must be 'guided' or 'deconvnet'")
  f = _logit_sum(model, variables, target,
                 lambda: _Tap(record=False, relu=relus[mode]))
  return jax.grad(f)(jnp.asarray(x))


def _layer_output(model, variables, x, layer: str) -> Array:
  maps = feature_maps(model, variables, x)
  if layer not in maps:
    raise ValueError(f"no layer named {layer!r} in {_name(model)}; layers: "
                     f"{', '.join(maps)}")
  return maps[layer]


def grad_cam(model: nn.Module, variables: Mapping[str, Any], x: Array, layer: str,
             target: Any, *, resize: bool = True) -> Array:
  """Grad-CAM (Selvaraju et al. 2017) at the named layer (a :func:`feature_maps` key).

  With ``A = layer output [B, h, w, C]`` and ``g = d logit / d A``: channel weights
  ``alpha_c = mean_{h,w} g``, map ``relu(sum_c alpha_c A_c)``. The gradient is taken by
  adding a zero ``delta`` to the layer's output and differentiating with respect to it, so any
  named layer works (a conv output, a pooling output, ``'Conv_2/pre_activation'``).

  Returns ``[B, H, W]`` resized bilinearly to ``x``'s spatial size (``resize=True``), else
  ``[B, h, w]``. Not normalised.
  """
  x = jnp.asarray(x)
  a = _layer_output(model, variables, x, layer)
  if a.ndim != 4:
    raise ValueError(f"grad_cam needs a 2-D feature map [B, h, w, C] at {layer!r}, got shape "
                     f"{tuple(a.shape)}")

  def f(delta):
    tap = _Tap(record=False, target=layer, delta=delta)
    return jnp.sum(_target_logits(_apply(model, variables, x, tap), target))

  g = jax.grad(f)(jnp.zeros_like(a))
  alpha = jnp.mean(g, axis=(1, 2))
  cam = jax.nn.relu(jnp.einsum("bhwc,bc->bhw", a, alpha))
  if resize and x.ndim == 4:
    cam = jax.image.resize(cam, (cam.shape[0], *x.shape[1:3]), "bilinear")
  return cam


def occlusion(model: nn.Module, variables: Mapping[str, Any], x: Array, target: Any, *,
              patch: int = 8, stride: int | None = None, value: float = 0.0,
              batch_size: int | None = 64) -> Array:
  """Occlusion sensitivity (Zeiler & Fergus 2014): the drop of the target logit when a
  ``patch x patch`` square is set to ``value``, at every position on a ``stride`` grid.

  All positions are evaluated with ``vmap`` (``lax.map`` over chunks of at most ``batch_size``
  positions; ``None``: one position at a time), not a Python loop. Returns ``[B, n_h, n_w]``
  with ``n = (size - patch) // stride + 1``; entry ``[b, i, j]`` is
  ``logit(x_b) - logit(x_b occluded at rows i*stride..., cols j*stride...)``, so a positive
  value marks evidence for the target. The unoccluded ``logit(x_b)`` is one more position of
  the same chunked program (a patch outside the image), and every chunk has the same size, so
  a patch the model ignores gives exactly 0, not the rounding difference between two
  differently shaped computations of the same logit.
  """
  x = jnp.asarray(x)
  _checks.rank(x, 4, where="occlusion")
  patch = _checks.positive_int(patch, "patch")
  stride = patch if stride is None else _checks.positive_int(stride, "stride")
  batch_size = _checks.positive_int(batch_size, "batch_size", optional=True)
  h, w = x.shape[1:3]
  if patch > min(h, w):
    raise ValueError(f"`patch` (={patch}) must fit in the image ({h}x{w})")
  rows = np.arange(0, h - patch + 1, stride)
  cols = np.arange(0, w - patch + 1, stride)
  grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
  # Position (h, w) occludes nothing: first, and as padding that makes every chunk full.
  n = len(grid) + 1
  chunks = 1 if batch_size is None else -(-n // batch_size)
  chunk = None if batch_size is None else -(-n // chunks)
  pad = 0 if batch_size is None else chunks * chunk - n
  nothing = np.array([[h, w]])
  pos = jnp.asarray(np.concatenate([nothing, grid, np.repeat(nothing, pad, axis=0)]))
  logit = lambda z: _target_logits(_apply(model, variables, z, _Tap(record=False)), target)
  ii = jnp.arange(h)[:, None]
  jj = jnp.arange(w)[None, :]

  def occluded_logit(p):
    inside = ((ii >= p[0]) & (ii < p[0] + patch) & (jj >= p[1]) & (jj < p[1] + patch))
    return logit(jnp.where(inside[None, :, :, None], jnp.asarray(value, x.dtype), x))

  logits = lax.map(occluded_logit, pos, batch_size=chunk)  # [1 + P + pad, B]
  drops = logits[0][None] - logits[1:n]
  return drops.T.reshape(x.shape[0], len(rows), len(cols))


# ------------------------------------------------------------------------------------------------
# Activation maximisation.

# The square root of ImageNet's colour covariance (Olah et al., "Feature Visualization", lucid),
# columns scaled to unit max norm: RGB = this @ decorrelated.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]],
                       np.float32)
_COLOR_SQRT = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


def _fourier_scale(h: int, w: int, decay: float) -> np.ndarray:
  fy = np.fft.fftfreq(h)[:, None]
  fx = np.fft.rfftfreq(w)[None, :]
  freq = np.sqrt(fx * fx + fy * fy)
  return (1.0 / np.maximum(freq, 1.0 / max(h, w)) ** decay).astype(np.float32)


def _total_variation(img: Array) -> Array:
  return (jnp.mean(jnp.square(img[1:, :, :] - img[:-1, :, :]))
          + jnp.mean(jnp.square(img[:, 1:, :] - img[:, :-1, :])))


@dataclasses.dataclass(frozen=True)
class Visualization:
  """What :func:`maximize_activation` returns: ``image [H, W, C]`` in ``[0, 1]`` and the
  objective (without the prior) before each step, ``objective [steps + 1]`` (the last entry is
  for the final image, un-jittered)."""
  image: Array
  objective: Array

  def __repr__(self) -> str:
    obj = np.asarray(self.objective)
    return (f"<Visualization {tuple(self.image.shape)}: objective {obj[0]:.3f} -> "
            f"{obj[-1]:.3f} in {len(obj) - 1} steps>")


def maximize_activation(model: nn.Module, variables: Mapping[str, Any],
                        input_shape: Sequence[int], *, channel: int, key: Array,
                        layer: str | None = None, steps: int = 128,
                        learning_rate: float = 0.05, jitter: int = 2,
                        smoothness: float = 1.0, parameterization: str = "pixel",
                        decorrelate: bool = True, decay: float = 1.0,
                        preprocess: Callable[[Array], Array] | None = None) -> Visualization:
  """An input image that maximises one unit, by gradient ascent (Erhan et al. 2009; Olah et al.
  2017, "Feature Visualization").

  The objective is the *logit* ``channel`` (``layer=None``), or the mean over positions of
  channel ``channel`` of the named layer's output (a :func:`feature_maps` key, e.g.
  ``'Conv_1/pre_activation'``; prefer the pre-activation of a ReLU layer, whose output has no
  gradient while the unit is off). Each of ``steps`` Adam steps maximises
  ``objective(jitter(image)) - smoothness * TV(image)``, where ``jitter`` rolls the image by up
  to ``jitter`` pixels each way (so the result does not rely on one pixel alignment) and
  ``TV`` is the mean squared difference of neighbouring pixels (the smoothness prior).

  Parameterisations (the image is ``sigmoid`` of the raw values, so it stays in ``[0, 1]``):
  ``'pixel'``: one free value per pixel; ``'fourier'``: the image is the inverse real FFT of
  a spectrum scaled by ``1 / freq ** decay`` (every frequency learns at a similar rate, which
  suppresses the high-frequency noise pixel ascent produces) and, for 3 channels with
  ``decorrelate``, mapped through the square root of the natural-image colour covariance.

  Args:
    model, variables: the network (eval mode).
    input_shape: ``[H, W, C]`` of one image.
    channel: the class (``layer=None``) or channel index.
    key: seeds the initial image and the jitter (same key, same image).
    layer: None for the logits, else a layer name.
    preprocess: maps the ``[1, H, W, C]`` image in ``[0, 1]`` to the model's input (e.g. the
      dataset normalisation); identity by default.

  Returns:
    a :class:`Visualization` (``image`` and the ``objective`` trajectory).
  """
  if parameterization not in ("pixel", "fourier"):
    raise ValueError(f"`parameterization` (={parameterization!r}) must be 'pixel' or "
                     "'fourier'")
  shape = tuple(input_shape)
  if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
    raise ValueError(f"`input_shape` (={input_shape!r}) must be [H, W, C] positive ints")
  h, w, c = shape
  preprocess = (lambda z: z) if preprocess is None else preprocess
  k_init, k_steps = jax.random.split(key)

  if parameterization == "pixel":
    raw0 = 0.01 * jax.random.normal(k_init, shape)

    def to_image(raw):
      return jax.nn.sigmoid(raw)
  else:
    # As lucid's `fft_image`: the sqrt(H W) factor makes the map unitary, so the learning rate
    # means about the same as for pixels; the / 4 keeps the initial image near grey.
    scale = jnp.asarray(_fourier_scale(h, w, decay) * np.sqrt(h * w))
    fh, fw = scale.shape
    raw0 = 0.01 * jax.random.normal(k_init, (2, c, fh, fw))

    def to_image(raw):
      spectrum = (raw[0] + 1j * raw[1]) * scale[None]
      img = jnp.fft.irfft2(spectrum, s=(h, w)).transpose(1, 2, 0) / 4.0  # [H, W, C]
      if decorrelate and c == 3:
        img = img @ jnp.asarray(_COLOR_SQRT).T
      return jax.nn.sigmoid(img)

  def objective(image):
    z = preprocess(image[None])
    if layer is None:
      out = _apply(model, variables, z, _Tap(record=False))
      return out[0, channel]
    tap = _Tap(record=False, target=layer)
    _apply(model, variables, z, tap)
    if tap.tapped is None:
      raise ValueError(f"no layer named {layer!r} in {_name(model)}")
    return jnp.mean(tap.tapped[0, ..., channel])

  def loss(raw, shift):
    image = to_image(raw)
    shifted = jnp.roll(image, shift, axis=(0, 1))
    value = objective(shifted)
    return -(value - smoothness * _total_variation(image)), value

  tx = optax.adam(learning_rate)

  def step(carry, k):
    raw, opt = carry
    shift = jax.random.randint(k, (2,), -jitter, jitter + 1)
    (_, value), g = jax.value_and_grad(loss, has_aux=True)(raw, shift)
    updates, opt = tx.update(g, opt, raw)
    return (optax.apply_updates(raw, updates), opt), value

  @jax.jit
  def run(raw0):
    (raw, _), values = lax.scan(step, (raw0, tx.init(raw0)), jax.random.split(k_steps, steps))
    image = to_image(raw)
    return image, jnp.concatenate([values, objective(image)[None]])

  image, values = run(raw0)
  return Visualization(image=image, objective=values)


# ------------------------------------------------------------------------------------------------
# Dead units.

def dead_relu_fraction(maps: Mapping[str, Array],
                       names: Sequence[str] | None = None) -> dict[str, float]:
  """The fraction of units (channels) of each ReLU layer that output 0 on every example and
  position of the batch the ``maps`` came from (:func:`feature_maps`).

  ``names``: the layers to count; by default every ``'<name>'`` with a
  ``'<name>/pre_activation'`` entry (a conv or dense with a fused activation) whose output is
  nonnegative, i.e. a ReLU. Pass ``names`` for ``Activation('relu')`` layers. A unit that is 0
  on one batch may fire on another: use a batch large enough to mean "dead".

  >>> import numpy as np
  >>> maps = {'c/pre_activation': np.array([[-1., 2.]]), 'c': np.array([[0., 2.]])}
  >>> dead_relu_fraction(maps)
  {'c': 0.5}
  """
  if names is None:
    names = [k for k in maps
             if f"{k}/{PRE_ACTIVATION}" in maps and float(jnp.min(maps[k])) >= 0.0]
  out = {}
  for name in names:
    if name not in maps:
      raise ValueError(f"no feature map named {name!r}; maps: {', '.join(maps)}")
    m = jnp.asarray(maps[name])
    alive = jnp.any(m.reshape(-1, m.shape[-1]) != 0, axis=0)
    out[name] = float(1.0 - jnp.mean(alive.astype(jnp.float32)))
  return out
