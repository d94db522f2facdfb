"""Argument checks, written once: each returns the value (normalised) or raises one line naming
the parameter, its value and what it must be (house style:
``` `batch_size` (=0) must be an int >= 1 ```)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any


def is_number(value: Any) -> bool:
  """A real number, not a bool (``True`` would otherwise pass as a learning rate of 1)."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(value: Any, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"`{name}` (={value!r}) must be an int")
  return int(value)


def positive_int(value: Any, name: str, *, low: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
    raise ValueError(f"`{name}` (={value!r}) must be an int >= {low}")
  return int(value)


def number(value: Any, name: str, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_closed: bool = False) -> float:
  if low is not None and high is not None:
    want = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
            f"{']' if high_closed else ')'}")
  elif low is not None:
    want = "a positive number" if (low == 0 and low_open) else f"a number >= {low:g}"
  else:
    want = "a number"
  if not is_number(value):
    raise ValueError(f"`{name}` (={value!r}) must be {want}")
  v = float(value)
  bad = v != v or (low is not None and (v <= low if low_open else v < low)) or (
      high is not None and (v > high if high_closed else v >= high))
  if bad:
    raise ValueError(f"`{name}` (={value!r}) must be {want}")
  return v


def boolean(value: Any, name: str) -> bool:
  if not isinstance(value, bool):
    raise ValueError(f"`{name}` (={value!r}) must be True or False")
  return value


def choice(value: Any, name: str, choices: Sequence[str]) -> Any:
  if value not in choices:
    raise ValueError(f"unknown `{name}` (={value!r}); known: {', '.join(choices)}")
  return value
