"""The few Flax NNX calls whose spelling differs between the supported Flax versions.

Flax 0.12 reads and writes a variable with ``get_value()`` / ``set_value()`` and warns on
``.value``; Flax 0.11 has only ``.value``. Everything else jaxcnn uses from ``flax.nnx``
(``split``, ``merge``, ``State``, ``iter_graph``, ``Module.train/eval``, ``Rngs``,
``RngStream.fork``, ``Variable.get_metadata``) is spelled the same from 0.11.2 to 0.12.12.
"""

from __future__ import annotations

from typing import Any

from flax import nnx


def get_value(variable: nnx.Variable) -> Any:
  """The array (or other value) a variable holds."""
  if hasattr(variable, "get_value"):
    return variable.get_value()
  return variable.value


def set_value(variable: nnx.Variable, value: Any) -> None:
  """Replaces the value a variable holds (any shape)."""
  if hasattr(variable, "set_value"):
    variable.set_value(value)
  else:
    variable.value = value


def flat_state(state: Any) -> dict[tuple[Any, ...], Any]:
  """``{path: variable}`` of an ``nnx.State`` (paths are tuples of attribute names)."""
  return dict(nnx.traversals.flatten_mapping(state))


def state_from_flat(flat: dict[tuple[Any, ...], Any]) -> nnx.State:
  return nnx.State(nnx.traversals.unflatten_mapping(flat))
