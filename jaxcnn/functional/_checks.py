"""The one place where hyper-parameters of the ops and layers are checked, before any tracing.

A hyper-parameter given as a string (``rate='0.5'``, from a config file or a command line) would
otherwise be converted silently (``float('0.5')``) or fail deep inside JAX with a message that
does not name it. These checks raise one line in the house style, naming the parameter, its
value and the fix: ``` `rate` (='0.5') must be a float in [0, 1), not a str ```.

``where`` (optional) prefixes the message with the op or layer (``Dropout `rate` (=...)``).
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _prefix(where: str) -> str:
  return f"{where} " if where else ""


def _kind(value: Any) -> str:
  return type(value).__name__


def is_real_number(value: Any) -> bool:
  """A Python/numpy real scalar (``0.5``, ``np.float32(0.5)``, a 0-d float array); not a bool,
  a string or a traced value."""
  if isinstance(value, (bool, np.bool_, str, bytes, jax.core.Tracer)):
    return False
  if isinstance(value, numbers.Real):
    return True
  return (isinstance(value, np.ndarray) and value.ndim == 0
          and np.issubdtype(value.dtype, np.number) and not np.iscomplexobj(value))


def static_float(value: Any, name: str, low: float | None = None, high: float | None = None,
                 *, high_closed: bool = False, where: str = "") -> float:
  """``value`` as a Python float, or one line naming ``name``: ``low <= value < high``.

  ``high_closed=True`` allows ``value == high``; ``None`` bounds are open-ended.

  >>> static_float(0.5, 'rate', 0.0, 1.0)
  0.5
  >>> static_float('0.5', 'rate', 0.0, 1.0)
  Traceback (most recent call last):
  ...
  ValueError: `rate` (='0.5') must be a float in [0, 1), not a str
  """
  if low is not None and high is not None:
    want = f"a float in [{low:g}, {high:g}{']' if high_closed else ')'}"
  elif low is not None:
    want = f"a float >= {low:g}"
  else:
    want = "a float"
  if not is_real_number(value):
    fix = ("; pass a Python float to the op (static), not a traced array"
           if isinstance(value, jax.core.Tracer) else "")
    raise ValueError(f"{_prefix(where)}`{name}` (={value!r}) must be {want}, not a "
                     f"{_kind(value)}{fix}")
  v = float(value)
  too_high = high is not None and (v > high if high_closed else v >= high)
  if v != v or (low is not None and v < low) or too_high:  # v != v: nan
    raise ValueError(f"{_prefix(where)}`{name}` (={value!r}) must be {want}")
  return v


def real_param(value: Any, name: str, *, where: str = "") -> Any:
  """Checks a numeric parameter that may also be an array (a learnable slope, a traced value):
  a real number or an array of a real dtype passes unchanged; a string, a bool or ``None`` raises.

  >>> real_param(0.1, 'negative_slope')
  0.1
  >>> real_param('0.1', 'negative_slope')
  Traceback (most recent call last):
  ...
  ValueError: `negative_slope` (='0.1') must be a number or a float array, not a str
  """
  if is_real_number(value):
    return value
  dtype = getattr(value, "dtype", None)
  if dtype is not None and (jnp.issubdtype(dtype, jnp.floating)
                            or jnp.issubdtype(dtype, jnp.integer)):
    return value
  raise ValueError(f"{_prefix(where)}`{name}` (={value!r}) must be a number or a float array, "
                   f"not a {_kind(value)}")
