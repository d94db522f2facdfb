"""An NNX module's state as Linen-layout variables, and back.

The layout: ``{collection: {attribute path as nested dicts: array}}``, the collection named by
the variable's type (``nnx.Param`` -> ``'params'``, ``nnx.BatchStat`` -> ``'batch_stats'``,
others by Flax's own name for the type). Random-number state (``nnx.RngState``: stream keys and
counters) is not a variable collection: the engine derives every key from its seed and step.
For a model made by :mod:`jaxcnn.nnx` from a Linen one these are exactly the Linen model's
variables, path for path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx import variablelib

from jaxcnn.nnx import _compat

Path = tuple[str, ...]


def collection_name(variable_type: type) -> str | None:
  """The Linen collection of an NNX variable type; None for random-number state."""
  if issubclass(variable_type, nnx.RngState):
    return None
  if issubclass(variable_type, nnx.Param):
    return "params"
  if issubclass(variable_type, nnx.BatchStat):
    return "batch_stats"
  try:
    return variablelib.variable_name_from_type(variable_type)
  except ValueError:
    return variable_type.__name__


def variable_type(collection: str) -> type:
  """The NNX variable type of a Linen collection."""
  if collection == "params":
    return nnx.Param
  if collection == "batch_stats":
    return nnx.BatchStat
  return variablelib.variable_type_from_name(collection, allow_register=True)


def _path_str(path: Path) -> str:
  return "/".join(str(p) for p in path)


def _nested_set(tree: dict[str, Any], path: Path, value: Any) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(str(key), {})
  tree[str(path[-1])] = value


def _nested_get(tree: Any, path: Path) -> Any:
  for key in path:
    if not isinstance(tree, Mapping) or str(key) not in tree:
      raise KeyError(path)
    tree = tree[str(key)]
  return tree


def flat_variables(variables: Mapping[str, Any]) -> dict[tuple[str, Path], Any]:
  """``{(collection, path): array}`` of Linen-layout variables."""
  out = {}
  for collection, tree in variables.items():
    leaves = jax.tree_util.tree_leaves_with_path(
        tree, is_leaf=lambda v: not isinstance(v, Mapping))
    for keys, leaf in leaves:
      out[(str(collection), tuple(str(getattr(k, "key", k)) for k in keys))] = leaf
  return out


def module_variables(module: nnx.Module) -> dict[str, dict[str, Any]]:
  """``{'params': {...}, 'batch_stats': {...}, ...}``: the module's variables by attribute path
  (plain nested dicts of arrays; random-number state left out)."""
  _, state = nnx.split(module)
  out: dict[str, dict[str, Any]] = {}
  for path, var in _compat.flat_state(state).items():
    collection = collection_name(type(var))
    if collection is not None:
      _nested_set(out.setdefault(collection, {}), path, _compat.get_value(var))
  return out


def _describe(value: Any) -> str:
  return f"{jnp.dtype(value.dtype).name}{list(np.shape(value))}"


def as_variables(source: Any) -> Mapping[str, Any]:
  """Linen-layout variables from a variables dict, a ``TrainState`` (its evaluation variables:
  the averaged ones under EMA), or anything with a ``.state`` holding one (``History``,
  ``TrainResult``)."""
  if hasattr(source, "eval_variables"):
    return source.eval_variables
  if hasattr(source, "state") and hasattr(source.state, "eval_variables"):
    return source.state.eval_variables
  if isinstance(source, Mapping) and "params" in source:
    return source
  raise ValueError(f"expected Linen variables ({{'params': ...}}), a TrainState or what fit / "
                   f"train_and_evaluate returned, got {type(source).__name__}")


def update_module(module: nnx.Module, source: Any) -> nnx.Module:
  """Writes ``source``'s values into ``module`` in place and returns it.

  ``source``: Linen-layout variables, a :class:`~jaxcnn.train.TrainState`, or a
  :class:`~jaxcnn.train.History` / :class:`~jaxcnn.train.TrainResult` (their state's evaluation
  variables). Every variable of the module must be given, with its shape and dtype kind, and
  nothing else: a mismatch is one line naming the first variable that differs.
  """
  variables = as_variables(source)
  given = flat_variables(variables)
  _, state = nnx.split(module)
  flat = _compat.flat_state(state)
  new, wanted = {}, set()
  for path, var in flat.items():
    collection = collection_name(type(var))
    if collection is None:
      new[path] = var
      continue
    wanted.add((collection, path))
    where = f"{collection}/{_path_str(path)}"
    if (collection, path) not in given:
      raise ValueError(f"the variables have no {where!r}, which the module has "
                       f"({_describe(_compat.get_value(var))}); they were made for another "
                       "model (or other model arguments)")
    old, value = _compat.get_value(var), given[(collection, path)]
    if tuple(np.shape(value)) != tuple(np.shape(old)):
      raise ValueError(f"{where!r} is {_describe(value)} in the variables but "
                       f"{_describe(old)} in the module; they were made for another model (or "
                       "other model arguments, or another input shape)")
    # A copy: the module must not share buffers with a state the engine may donate.
    new[path] = type(var)(jnp.array(value, dtype=old.dtype, copy=True), **var.get_metadata())
  extra = sorted(set(given) - wanted)
  if extra:
    collection, path = extra[0]
    raise ValueError(f"the variables hold {collection}/{_path_str(path)!r}, which the module "
                     "does not have; they were made for another model")
  nnx.update(module, _compat.state_from_flat(new))
  return module
