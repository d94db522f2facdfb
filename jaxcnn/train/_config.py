"""Reading config values: ``ml_collections.ConfigDict`` or plain dicts, optional keys allowed."""

from __future__ import annotations

from typing import Any


def cfg_get(config: Any, key: str, default: Any) -> Any:
  """``config[key]`` for a dotted ``key`` (``'data.loader'``), or ``default`` when absent.

  Works on ConfigDicts and plain mappings alike (``fit`` builds the latter); configs may omit
  optional keys.

  >>> cfg_get({'data': {'loader': 'device'}}, 'data.loader', None)
  'device'
  >>> cfg_get({'data': {}}, 'data.augment', '')
  ''
  """
  node = config
  for part in key.split("."):
    if node is None or part not in node:
      return default
    node = node[part]
  return node


def is_number(value: Any) -> bool:
  """A real number, not a bool (``True`` would otherwise pass as a learning rate of 1)."""
  return isinstance(value, (int, float)) and not isinstance(value, bool)
