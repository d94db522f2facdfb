"""Linen models of jaxcnn layers as NNX modules: one definition per architecture.

:func:`from_linen` turns a Linen model (every :mod:`jaxcnn.models` one, or your own built of
:mod:`jaxcnn.layers`) into a :class:`Model`: an ``nnx.Module`` whose attributes mirror the
Linen module tree (``model.BasicBlock_0._ConvBN_0.Conv_0`` is a :class:`jaxcnn.nnx.Conv`
owning its ``kernel``), so its NNX state has the Linen variables' paths and names.

How: the Linen model is traced once abstractly (``jax.eval_shape`` of its ``init``: no array
is made) to record which layer is called at which path on which input shape; each layer gets its
NNX twin (:mod:`jaxcnn.nnx._layers`) built with that input size; a layer with no twin (a Linen
layer subclass with its own ``__call__``, such as the speed net's ``WhiteningConv``, or any other
Linen module that owns variables) is carried as a :class:`LinenLayer` holding its variables as
NNX variables. The forward pass is the Linen model's own code: :meth:`Model.__call__` runs the
Linen ``apply`` with every layer call routed (``flax.linen.intercept_methods``) to the NNX layer
at the same path. So the architecture is written once, in Linen, and the NNX model computes
exactly what it computes; the routing runs while tracing only, so a jitted step costs the same.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from jaxcnn import layers as L
from jaxcnn import models
from jaxcnn.nnx import _compat
from jaxcnn.nnx import _layers
from jaxcnn.nnx import _state

Path = tuple[str, ...]

# The input a zoo model is built for when get_model is given none: the zoo's 32x32 RGB images,
# and MNIST's 28x28 for the MLP (its parameter count depends on the input size).
DEFAULT_INPUT_SHAPE = (1, 32, 32, 3)
INPUT_SHAPES = {"mlp": (1, 28, 28, 1)}

# Attributes of Model, Submodule and LinenLayer that a Linen submodule name must not shadow.
def default_input_shape(name: str) -> tuple[int, ...]:
  """The input :func:`get_model` builds the zoo model ``name`` for when given none."""
  return INPUT_SHAPES.get(name, DEFAULT_INPUT_SHAPE)


_RESERVED = frozenset({"linen_module", "input_shape", "linen_layout", "model_rngs",
                       "linen_type_name", "variable_names", "deterministic",
                       "use_running_average", "takes_train"})


class Submodule(nnx.Module):
  """The NNX counterpart of a Linen submodule that owns no variables itself (a residual block,
  say): a container whose attributes are its layers, named as in Linen."""

  def __init__(self, linen_type_name: str):
    self.linen_type_name = linen_type_name


class LinenLayer(nnx.Module):
  """A Linen layer with no NNX twin, holding its variables as NNX variables (named as in
  Linen) and computing with the Linen layer's own code.

  Modes as the jaxcnn NNX layers: a ``train=None`` call runs in train mode unless
  ``model.eval()`` set ``use_running_average``."""

  def __init__(self, module: nn.Module, variables: Mapping[str, Mapping[str, Any]]):
    self.linen_module = module
    names = []
    for collection, tree in variables.items():
      for name, value in tree.items():
        if isinstance(value, Mapping):
          raise ValueError(f"cannot carry the Linen module {type(module).__name__} into NNX: "
                           f"it owns variables ({collection}/{name}/...) and has submodules; "
                           "build it of jaxcnn layers")
        if name in _RESERVED or hasattr(type(self), name):
          raise ValueError(f"cannot carry the Linen module {type(module).__name__} into NNX: "
                           f"its variable {name!r} shadows an NNX module attribute")
        setattr(self, name, _state.variable_type(collection)(value))
        names.append((collection, name))
    self.variable_names = tuple(names)
    self.deterministic = False
    self.use_running_average = False

  def __call__(self, *args: Any, dropout_key: jax.Array | None = None, **kwargs: Any) -> Any:
    if "train" in kwargs and kwargs["train"] is None:
      kwargs["train"] = not self.use_running_average
    variables: dict[str, dict[str, Any]] = {}
    for collection, name in self.variable_names:
      variables.setdefault(collection, {})[name] = _compat.get_value(getattr(self, name))
    mutable = [c for c in variables if c != "params"] or False
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    out = self.linen_module.apply(variables, *args, rngs=rngs, mutable=mutable, **kwargs)
    if mutable:
      out, updates = out
      for collection, tree in updates.items():
        for name, value in tree.items():
          _compat.set_value(getattr(self, name), value)
    return out


def _abstract(tree: Any) -> Any:
  return jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype) if hasattr(a, "shape") else a, tree)


def _call_kwargs(module: nn.Module, train: bool | None) -> dict[str, Any]:
  """``{'train': train}`` if the module's ``__call__`` takes ``train``, else nothing."""
  return {"train": train} if _takes_train(type(module)) else {}


def _takes_train(cls: type) -> bool:
  return "train" in inspect.signature(cls.__call__).parameters


def _discover(module: nn.Module, input_shape: Sequence[int], dtype: Any
              ) -> tuple[list[tuple[Path, nn.Module, tuple, dict]], Any]:
  """Every submodule's first call (path, bound module, abstract args and kwargs), in call
  order, and the abstract Linen variables, from one abstract ``init``."""
  calls: list[tuple[Path, nn.Module, tuple, dict]] = []
  seen: set[Path] = set()

  def interceptor(next_fun, args, kwargs, context):
    path = tuple(context.module.path)
    if context.method_name == "__call__" and path and path not in seen:
      seen.add(path)
      calls.append((path, context.module, _abstract(args), _abstract(kwargs)))
    return next_fun(*args, **kwargs)

  def init(x):
    key = jax.random.key(0)
    with nn.intercept_methods(interceptor):
      return module.init({"params": key, "dropout": key}, x, **_call_kwargs(module, False))

  variables = jax.eval_shape(init, jax.ShapeDtypeStruct(tuple(input_shape), dtype))
  return calls, variables


def _fields(module: nn.Module) -> dict[str, Any]:
  return {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
          if f.name not in ("parent", "name")}


def _owns_variables(variables: Mapping[str, Any], path: Path) -> bool:
  """Whether some collection holds an array directly under ``path`` (not in a submodule)."""
  for tree in variables.values():
    try:
      node = _state._nested_get(tree, path)  # pylint: disable=protected-access
    except KeyError:
      continue
    if isinstance(node, Mapping) and any(not isinstance(v, Mapping) for v in node.values()):
      return True
  return False


def _zeros(args: Any) -> Any:
  return jax.tree.map(
      lambda a: jnp.zeros(a.shape, a.dtype) if isinstance(a, jax.ShapeDtypeStruct) else a, args)


def _layout(variables: Mapping[str, Any]) -> tuple[tuple[str, Path, tuple[int, ...], str], ...]:
  """The Linen variables' names, shapes and dtypes, hashable (a static attribute of Model)."""
  return tuple(sorted((c, p, tuple(v.shape), jnp.dtype(v.dtype).name)
                      for (c, p), v in _state.flat_variables(variables).items()))


def _check_shape(input_shape: Any) -> tuple[int, ...]:
  shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
  if not shape or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape):
    raise ValueError(f"`input_shape` (={input_shape!r}) must be a sequence of positive ints "
                     "(the batch included, e.g. (1, 32, 32, 3))")
  return shape


def _build_leaf(module: nn.Module, path: Path, args: tuple, kwargs: dict,
                rngs: nnx.Rngs) -> nnx.Module:
  twin = _layers.TWINS.get(type(module))
  x = args[0] if args else next(iter(kwargs.values()))
  if twin is not None:
    try:
      return twin.from_linen(_fields(module), tuple(x.shape), rngs=rngs)
    except ValueError as e:
      raise ValueError(f"{'/'.join(path)}: {e}") from None
  unbound = module.clone(parent=None)
  call_kwargs = {k: (False if k == "train" else v) for k, v in kwargs.items()}
  variables = unbound.init({"params": rngs.params(), "dropout": rngs.params()}, *_zeros(args),
                           **_zeros(call_kwargs))
  return LinenLayer(unbound, dict(variables))


class Model(nnx.Module):
  """An NNX module that is a Linen model of jaxcnn layers (see the module docstring): made by
  :func:`from_linen` or :func:`get_model`.

  ``model(x)`` runs in the mode ``model.train()`` / ``model.eval()`` set (a new model is in
  train mode, as NNX modules are); ``model(x, train=False)`` overrides it for one call, as the
  Linen ``train`` argument. Dropout keys come from the model's ``'dropout'`` stream (a fork of the
  ``rngs`` it was made with), or from ``rngs=`` (a key) for one call; the masks are those the
  Linen model draws with that key.

  Attributes: ``linen_module`` (the Linen definition), ``input_shape`` (what it was built for),
  and one attribute per Linen submodule, named as in Linen.
  """

  def __init__(self, linen_module: nn.Module, input_shape: Sequence[int], *,
               rngs: nnx.Rngs, input_dtype: Any = jnp.float32):
    if not isinstance(linen_module, nn.Module):
      raise ValueError(f"`linen_module` (={linen_module!r}) must be a flax.linen.Module")
    if not isinstance(rngs, nnx.Rngs):
      raise ValueError(f"`rngs` (={rngs!r}) must be an nnx.Rngs, e.g. nnx.Rngs(0)")
    shape = _check_shape(input_shape)
    self.linen_module = linen_module
    self.input_shape = shape
    self.takes_train = _takes_train(type(linen_module))
    calls, variables = _discover(linen_module, shape, input_dtype)
    self.linen_layout = _layout(variables)
    kinds = {path: type(m).__name__ for path, m, _, _ in calls}
    leaves: list[Path] = []
    has_dropout = False
    for path, module, args, kwargs in calls:
      if any(path[:i] in leaves for i in range(1, len(path))):
        continue  # inside a layer carried whole
      if not (isinstance(module, L.Layer) or _owns_variables(variables, path)):
        continue
      parent = self
      for i, name in enumerate(path):
        if name in _RESERVED or hasattr(type(parent), name):
          raise ValueError(f"the Linen submodule {'/'.join(path[:i + 1])!r} is named {name!r}, "
                           "which an NNX module reserves; give it another name")
        if i == len(path) - 1:
          leaf = _build_leaf(module, path, args, kwargs, rngs)
          setattr(parent, name, leaf)
          has_dropout |= isinstance(leaf, (_layers._DropoutBase, LinenLayer))  # pylint: disable=protected-access
        else:
          if not hasattr(parent, name):
            setattr(parent, name, Submodule(kinds.get(path[:i + 1], "Module")))
          parent = getattr(parent, name)
      leaves.append(path)
    self.model_rngs = _layers._dropout_stream(rngs, "Model") if has_dropout else None  # pylint: disable=protected-access
    if _layout(_state.module_variables(self)) != self.linen_layout:
      raise AssertionError(f"the NNX layers of {type(linen_module).__name__} do not hold its "
                           "Linen variables")

  def _layers(self) -> list[nnx.Module]:
    return [node for _, node in nnx.iter_graph(self)
            if isinstance(node, (_layers.Layer, LinenLayer))]

  def _needs_key(self, train: bool | None) -> bool:
    for node in self._layers():
      if isinstance(node, _layers._DropoutBase) and node.is_active(train):  # pylint: disable=protected-access
        return True
      if isinstance(node, LinenLayer) and train is not False:
        return True
    return False

  def __call__(self, x: jax.Array, train: bool | None = None, *, rngs: Any = None) -> Any:
    key = None
    if rngs is not None:
      key = rngs() if isinstance(rngs, nnx.RngStream) else rngs
      if isinstance(rngs, nnx.Rngs):
        key = _layers._dropout_stream(rngs, "Model")()  # pylint: disable=protected-access
    elif self.model_rngs is not None and self._needs_key(train):
      key = self.model_rngs()
    call_kwargs = {"train": train} if self.takes_train else {}
    with nn.intercept_methods(_router(self)):
      return self.linen_module.apply({}, x, rngs=None if key is None else {"dropout": key},
                                     **call_kwargs)

  def check_layout(self, variables: Mapping[str, Any], what: str = "the variables") -> None:
    """Raises one line unless ``variables`` have the Linen model's names, shapes and dtypes;
    ``what`` names them in the message."""
    have = {(c, p): _shown(s, d) for c, p, s, d in _layout(variables)}
    want = {(c, p): _shown(s, d) for c, p, s, d in self.linen_layout}
    for key in sorted(have.keys() | want.keys()):
      if have.get(key) != want.get(key):
        c, p = key
        raise ValueError(
            f"{c}/{'/'.join(p)} is {have.get(key, 'absent')} in {what} but "
            f"{want.get(key, 'absent')} in the Linen model {type(self.linen_module).__name__} "
            f"built for input {self.input_shape}")


def _shown(shape: tuple[int, ...], dtype: str) -> str:
  return f"{dtype}{list(shape)}"


_SIGNATURES: dict[type, inspect.Signature] = {}


def _bind(module: nn.Module, args: tuple, kwargs: dict) -> inspect.BoundArguments:
  cls = type(module)
  if cls not in _SIGNATURES:
    _SIGNATURES[cls] = inspect.signature(cls.__call__)
  bound = _SIGNATURES[cls].bind(module, *args, **kwargs)
  bound.apply_defaults()
  return bound


def _resolve(root: nnx.Module, path: Path) -> Any:
  node = root
  for name in path:
    node = getattr(node, name, None)
    if node is None:
      return None
  return node


def _router(root: Model):
  """The interceptor that sends each Linen layer call to the NNX layer at the same path."""

  def intercept(next_fun, args, kwargs, context):
    module = context.module
    node = (_resolve(root, tuple(module.path))
            if context.method_name == "__call__" and module.path else None)
    if node is None or isinstance(node, Submodule):
      return next_fun(*args, **kwargs)
    if isinstance(node, LinenLayer):
      key = module.make_rng("dropout") if module.has_rng("dropout") else None
      return node(*args, dropout_key=key, **kwargs)
    bound = _bind(module, args, kwargs)
    x = list(bound.arguments.values())[1]
    train = bound.arguments.get("train")
    if not isinstance(node, (_layers.Layer, _layers.Sequential)):
      return node(x)  # a module put in place of the layer by hand
    if (isinstance(node, _layers._DropoutBase) and node.is_active(train)  # pylint: disable=protected-access
        and module.has_rng("dropout")):
      # The key the Linen layer would draw at this path: the masks equal the Linen model's.
      return node(x, train=train, rngs=module.make_rng("dropout"))
    return node(x, train=train)

  return intercept


def from_linen(linen_module: nn.Module, input_shape: Sequence[int], *, rngs: nnx.Rngs,
               variables: Mapping[str, Any] | None = None,
               input_dtype: Any = jnp.float32) -> Model:
  """The NNX :class:`Model` of a Linen model built of jaxcnn layers.

  Args:
    linen_module: an unbound Linen module (a :mod:`jaxcnn.models` model, a
      :class:`jaxcnn.layers.Sequential`, your own ``@nn.compact`` model).
    input_shape: ``[B, H, W, C]`` it is built for (the layer sizes follow from it, as for the
      Linen ``init``).
    rngs: the parameters are the Linen model's ``init`` with a key drawn from its ``'params'``
      (else ``'default'``) stream (one compiled init, not one per layer); its ``'dropout'``
      (else ``'default'``, else ``'params'``) stream seeds the model's dropout stream.
    variables: Linen variables to hold instead (``{'params': ..., 'batch_stats': ...}``, e.g. a
      Linen run's); their names and shapes must be the model's.

  The model is built abstractly (``nnx.eval_shape``: no parameter is drawn twice) and then
  given the variables.

  >>> from flax import nnx
  >>> from jaxcnn.models import get_model as linen_model
  >>> model = from_linen(linen_model('tutorial_cnn'), (1, 32, 32, 3), rngs=nnx.Rngs(0))
  >>> model.Conv_0.kernel.shape
  (3, 3, 3, 32)
  """
  if not isinstance(rngs, nnx.Rngs):
    raise ValueError(f"`rngs` (={rngs!r}) must be an nnx.Rngs, e.g. nnx.Rngs(0)")
  if not isinstance(linen_module, nn.Module):
    raise ValueError(f"`linen_module` (={linen_module!r}) must be a flax.linen.Module")
  _check_shape(input_shape)
  abstract = nnx.eval_shape(
      lambda: Model(linen_module, input_shape, rngs=nnx.Rngs(0), input_dtype=input_dtype))
  if variables is None:
    key = rngs.params()
    x = jnp.zeros(abstract.input_shape, input_dtype)
    variables = jax.jit(lambda k, x: linen_module.init(
        {"params": k, "dropout": k}, x, **_call_kwargs(linen_module, False)))(key, x)
  else:
    abstract.check_layout(variables)
  return _with_variables(abstract, variables, rngs)


def _stream_seed(rngs: nnx.Rngs) -> jax.Array:
  """A key for the model's random streams: from ``rngs``' ``'dropout'`` stream, else
  ``'default'``, else ``'params'``."""
  for name in ("dropout", "params"):
    try:
      return rngs[name]()
    except (KeyError, AttributeError):
      continue
  raise ValueError("`rngs` has no 'dropout', 'default' or 'params' stream: pass nnx.Rngs(0)")


def _with_variables(abstract: Model, variables: Mapping[str, Any], rngs: nnx.Rngs) -> Model:
  """The abstract ``Model`` holding ``variables``, its random streams seeded from ``rngs``."""
  graphdef, state = nnx.split(abstract)
  given = _state.flat_variables(variables)
  seed = None
  flat = {}
  for i, (path, var) in enumerate(_compat.flat_state(state).items()):
    collection = _state.collection_name(type(var))
    old = _compat.get_value(var)
    if collection is not None:
      value = jnp.array(given[(collection, path)], old.dtype, copy=True)
    elif isinstance(var, nnx.RngKey):
      if seed is None:
        seed = _stream_seed(rngs)
      value = jax.random.fold_in(seed, i)
      if not jnp.issubdtype(old.dtype, jax.dtypes.prng_key):
        value = jax.random.key_data(value)
    else:
      value = jnp.zeros(old.shape, old.dtype)
    flat[path] = type(var)(value, **var.get_metadata())
  return nnx.merge(graphdef, _compat.state_from_flat(flat))


def get_model(name: str, *, rngs: nnx.Rngs, input_shape: Sequence[int] | None = None,
              num_classes: int = 10, dtype: Any = jnp.float32, axis_name: str | None = None,
              **kwargs: Any) -> Model:
  """The zoo model ``name`` as an NNX module (:func:`jaxcnn.models.get_model`'s arguments).

  ``input_shape``: what it is built for (default ``(1, 32, 32, 3)``; ``(1, 28, 28, 1)`` for
  ``'mlp'``). Its variables have the Linen model's names and shapes, so
  :func:`to_linen_variables` of it fit ``jaxcnn.models.get_model(name, ...)``.

  >>> from flax import nnx
  >>> model = get_model('resnet20', rngs=nnx.Rngs(0))
  >>> model.eval()
  >>> model(jnp.ones((2, 32, 32, 3))).shape
  (2, 10)
  """
  linen_module = models.get_model(name, num_classes=num_classes, dtype=dtype,
                                  axis_name=axis_name, **kwargs)
  shape = default_input_shape(name) if input_shape is None else input_shape
  return from_linen(linen_module, shape, rngs=rngs)


def to_linen_variables(module: nnx.Module) -> dict[str, dict[str, Any]]:
  """The variables of ``module`` as Linen variables (``{'params': ..., 'batch_stats': ...}``).

  For a :class:`Model` they are the variables of its Linen model (``model.linen_module.apply(
  to_linen_variables(model), x)`` computes what ``model(x)`` computes), checked name for name and
  shape for shape. For any other NNX module they are its variables by attribute path
  (what the training engine trains).
  """
  variables = _state.module_variables(module)
  if isinstance(module, Model):
    module.check_layout(variables, "this NNX model (changed after it was made, so it has no "
                        "Linen twin)")
  return variables


def from_linen_variables(name: str, variables: Mapping[str, Any], *,
                         rngs: nnx.Rngs | None = None, input_shape: Sequence[int] | None = None,
                         **kwargs: Any) -> Model:
  """The NNX zoo model ``name`` holding the Linen ``variables`` (what
  ``jaxcnn.models.get_model(name, **kwargs).init(...)`` or a Linen run returned).

  ``kwargs`` as for :func:`get_model` (the same ones the Linen model was made with);
  ``rngs`` seeds the dropout stream (default ``nnx.Rngs(0)``).
  """
  linen_module = models.get_model(name, **kwargs)
  shape = default_input_shape(name) if input_shape is None else input_shape
  return from_linen(linen_module, shape, rngs=nnx.Rngs(0) if rngs is None else rngs,
                    variables=variables)
