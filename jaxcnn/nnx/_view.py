"""An NNX module seen as a pure Linen-signature function: what the training engine and
:mod:`jaxcnn.inspect` call.

:func:`linen_view` splits the module once into its graph definition and its variables (the
Linen layout of :mod:`jaxcnn.nnx._state`); :meth:`LinenView.apply` has ``flax.linen.Module.apply``'s
signature, ``apply(variables, x, train=False, rngs=None, mutable=False)``, and inside it merges
the graph with the given variables, sets the mode (``module.train()`` for ``train=True``, else
``module.eval()``), calls the module and, for the ``mutable`` collections, splits the updated
values back out. It is pure: the module the view was made from is never touched. So the very
:func:`jaxcnn.train.train_step` that trains a Linen model trains an NNX one (a
:class:`~jaxcnn.train.TrainState` whose ``apply_fn`` is ``view.apply`` and whose ``params`` and
``collections`` are the module's variables), and the merge and split happen while the step is
traced, not at every step.

Dropout keys: the step's key (``rngs={'dropout': key}``) reseeds the module's random streams
(stream ``i`` in graph order gets ``fold_in(key, i)``), so every mask is a function of the
engine's seed and step, as for a Linen model; a :class:`~jaxcnn.nnx.Model` made from a Linen
model takes the key itself and draws the Linen model's masks.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxcnn.nnx import _compat
from jaxcnn.nnx import _convert
from jaxcnn.nnx import _layers
from jaxcnn.nnx import _state


def _reseed(module: nnx.Module, key: jax.Array) -> None:
  streams = [node for _, node in nnx.iter_graph(module) if isinstance(node, nnx.RngStream)]
  for i, stream in enumerate(streams):
    old = _compat.get_value(stream.key)
    new = jax.random.fold_in(key, i)
    typed_old = jnp.issubdtype(old.dtype, jax.dtypes.prng_key)
    if typed_old and not jnp.issubdtype(new.dtype, jax.dtypes.prng_key):
      new = jax.random.wrap_key_data(new)
    elif not typed_old and jnp.issubdtype(new.dtype, jax.dtypes.prng_key):
      new = jax.random.key_data(new)
    _compat.set_value(stream.key, new)
    _compat.set_value(stream.count, jnp.zeros_like(_compat.get_value(stream.count)))


class LinenView:
  """``init`` / ``apply`` with the Linen signatures over an NNX module (see the module
  docstring). ``variables`` are the module's variables when the view was made (or, for a view
  from :func:`linen_view`, the module's current ones).

  Args:
    module (flax.nnx.Module): the NNX module to view; the view holds it by weak reference.
  """

  def __init__(self, module: nnx.Module):
    self.graphdef, state = nnx.split(module)
    self.model_name = type(module).__name__
    self._module = weakref.ref(module)
    flat = _compat.flat_state(state)
    self._leaves = {path: (type(var), var.get_metadata(), _state.collection_name(type(var)))
                    for path, var in flat.items()}
    # Random-number state is not a variable collection: carried here, reseeded per call.
    self._fixed = {path: _compat.get_value(var) for path, var in flat.items()
                   if self._leaves[path][2] is None}
    self._variables = _state.module_variables(module)
    self._interceptor: Callable[..., Any] | None = None

  @property
  def variables(self) -> dict[str, Any]:
    module = self._module()
    return self._variables if module is None else _state.module_variables(module)

  def merge(self, variables: Mapping[str, Any]) -> nnx.Module:
    """A new module: the view's graph holding ``variables`` (Linen layout)."""
    flat = {}
    for path, (var_type, metadata, collection) in self._leaves.items():
      if collection is None:
        value = self._fixed[path]
      else:
        try:
          value = _state._nested_get(variables[collection], path)  # pylint: disable=protected-access
        except KeyError:
          where = "/".join(str(p) for p in path)
          raise ValueError(f"{self.model_name}: the variables have no {collection}/{where}; pass "
                           "all the variables (params and batch_stats), made for this "
                           "model") from None
      flat[path] = var_type(value, **metadata)
    return nnx.merge(self.graphdef, _compat.state_from_flat(flat))

  @contextlib.contextmanager
  def intercept_methods(self, interceptor: Callable[..., Any]) -> Iterator[None]:
    """Inside the block, every jaxcnn NNX layer call of :meth:`apply` goes through
    ``interceptor`` (``flax.linen.intercept_methods``' contract; the context carries the
    layer's attribute path)."""
    previous, self._interceptor = self._interceptor, interceptor
    try:
      yield
    finally:
      self._interceptor = previous

  def apply(self, variables: Mapping[str, Any], x: Any, train: bool = False,
            rngs: Mapping[str, jax.Array] | None = None, mutable: Any = False,
            **kwargs: Any) -> Any:
    """``flax.linen.Module.apply`` for the NNX module: the output, and with ``mutable`` (a
    list of collections, or True for all) ``(output, {collection: updated variables})``."""
    module = self.merge(variables)
    if train:
      module.train()
    else:
      module.eval()
    key = (rngs or {}).get("dropout")
    if key is not None:
      if isinstance(module, _convert.Model):
        kwargs["rngs"] = key
      else:
        _reseed(module, key)
    if self._interceptor is None:
      out = module(x, **kwargs)
    else:
      paths = {id(node): tuple(str(p) for p in path)
               for path, node in nnx.iter_graph(module) if isinstance(node, nnx.Module)}
      with _layers.intercept_methods(self._interceptor, paths):
        out = module(x, **kwargs)
    if mutable is False or mutable is None:
      return out
    updated = _state.module_variables(module)
    keep = [c for c in updated if c != "params"] if mutable is True else list(mutable)
    return out, {c: updated[c] for c in keep if c in updated}

  def init(self, rngs: Any, x: Any, train: bool = False, **kwargs: Any) -> dict[str, Any]:
    """A copy of the module's variables (an NNX module is initialised when it is made, so
    ``rngs`` are not used); runs the module on ``x`` once, so a bad input fails here, as a Linen
    ``init`` would."""
    del rngs
    variables = self.variables
    self.apply(variables, x, train=train, mutable=True, **kwargs)
    # Copies: the engine donates the state it makes of them, and the module keeps its own.
    return jax.tree.map(lambda a: jnp.array(a, copy=True), variables)


_VIEWS: "weakref.WeakKeyDictionary[nnx.Module, LinenView]" = weakref.WeakKeyDictionary()


def linen_view(module: nnx.Module) -> LinenView:
  """The :class:`LinenView` of ``module``: one per module while its graph is unchanged, so
  repeated ``evaluate`` / ``predict`` calls on it compile once."""
  if not isinstance(module, nnx.Module):
    raise ValueError(f"expected an nnx.Module, got {type(module).__name__}")
  view = _VIEWS.get(module)
  if view is None or view.graphdef != nnx.graphdef(module):
    view = LinenView(module)
    _VIEWS[module] = view
  return view
