"""The one family of argument checks: the checks of hyper-parameters, options, config values and
input ranks that recur across jaxcnn are written here once, and run before any tracing
(``tests/test_checks.py`` fails on a hand-written copy elsewhere).

Each check returns the normalised value (``positive_int(np.int64(3), 'k')`` is the Python int
``3``) or raises one ``ValueError`` line in the house style, naming the parameter, its value and
what it must be::

    `batch_size` (=0) must be an int >= 1
    `rate` (='0.5') must be a float in [0, 1), not a str
    unknown `data.loader` (='fast'); known: device, stream
    `in_channels` (=3) must be divisible by `groups` (=2)
    conv expects `x` of shape [B, W, C], [B, H, W, C] or [B, D, H, W, C], got shape (4, 4) (rank 2)

``name`` is what the user wrote: an argument (``'rate'``) or a config key (``'data.loader'``).
``where`` (optional) names the layer or op: ``Dropout `rate` (=...) ...``. ``fix`` (optional)
is appended after ``'; '``.

Values that are never accepted as ints or numbers: bools (``True`` is an ``int`` in Python, so
``Conv(True, 3)`` would otherwise build a 1-channel conv) and strings (``'0.5'`` from a command
line is refused, not converted). NumPy scalars (``np.int64`` from ``np.arange``, ``np.float32``)
are accepted and returned as Python values. A traced value (inside ``jax.jit``) is refused with
the fix of passing it as a static Python value, unless the check says it may be traced.

This module imports no JAX (:mod:`jaxcnn.shapes` uses it): a value can only be a tracer when
JAX is already imported, so :func:`is_tracer` looks JAX up in ``sys.modules``.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

# Channels-last layouts by rank (1, 2 and 3 spatial dimensions).
LAYOUTS = {3: "[B, W, C]", 4: "[B, H, W, C]", 5: "[B, D, H, W, C]"}
CHANNELS_LAST_HINT = ("jaxcnn is channels-last: [B, H, W, C]; for an NCHW array use "
                      "x.transpose(0, 2, 3, 1)")


# ------------------------------------------------------------------------------ predicates

def is_tracer(value: Any) -> bool:
  """True for a JAX tracer (a value inside ``jit``/``grad``/``vmap``)."""
  jax = sys.modules.get("jax")
  return jax is not None and isinstance(value, jax.core.Tracer)


def is_int(value: Any) -> bool:
  """A Python or NumPy integer; not a bool, a float or a string."""
  return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real_number(value: Any) -> bool:
  """A Python/NumPy real scalar (``0.5``, ``2``, ``np.float32(0.5)``, a 0-d real array); not a
  bool, a string or a traced value."""
  if isinstance(value, (bool, np.bool_, str, bytes)) or is_tracer(value):
    return False
  if isinstance(value, numbers.Real):
    return True
  return (isinstance(value, np.ndarray) and value.ndim == 0
          and np.issubdtype(value.dtype, np.number) and not np.iscomplexobj(value))


def _is_real_array_scalar(value: Any) -> bool:
  """A 0-d array of a real dtype (``jnp.float32(0.9)``), not a tracer."""
  dtype = getattr(value, "dtype", None)
  if dtype is None or is_tracer(value) or np.ndim(value) != 0:
    return False
  return getattr(dtype, "kind", None) in ("f", "i", "u") or "float" in str(dtype)  # bfloat16


# ------------------------------------------------------------------------------ message parts

def _prefix(where: str) -> str:
  return f"{where} " if where else ""


def _suffix(fix: str) -> str:
  return f"; {fix}" if fix else ""


def _kind(value: Any) -> str:
  return type(value).__name__


def _join(choices: Collection[Any]) -> str:
  return ", ".join(str(c) for c in choices)


def _or(items: Sequence[Any]) -> str:
  """``'a'``, ``'a or b'``, ``'a, b or c'``."""
  items = [str(i) for i in items]
  return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


# ------------------------------------------------------------------------------ ints

def positive_int(value: Any, name: str, *, low: int = 1, optional: bool = False,
                 where: str = "", fix: str = "") -> int | None:
  """``value`` as a Python int ``>= low``; with ``optional=True`` ``None`` passes too.

  >>> positive_int(np.int64(3), 'k')
  3
  >>> positive_int(True, 'batch_size')
  Traceback (most recent call last):
  ...
  ValueError: `batch_size` (=True) must be an int >= 1
  """
  if optional and value is None:
    return None
  if is_int(value) and value >= low:
    return int(value)
  want = f"an int >= {low}" + (" or None" if optional else "")
  if is_tracer(value) and not fix:
    fix = "pass a Python int (static), not a traced array"
  raise ValueError(f"{_prefix(where)}`{name}` (={value!r}) must be {want}{_suffix(fix)}")


def int_tuple(value: Any, name: str, *, n: int | None = None, low: int = 1,
              where: str = "") -> tuple[int, ...]:
  """An int or a non-empty sequence of ints, each ``>= low``, as a tuple of Python ints.

  With ``n`` (the number of spatial dimensions) an int is repeated ``n`` times and a sequence
  must have ``n`` entries; without it the sequence keeps its length (a layer checks its
  ``kernel_size`` before it knows the input's rank).

  >>> int_tuple(2, 'stride', n=3)
  (2, 2, 2)
  >>> int_tuple((3, 0), 'kernel_size')
  Traceback (most recent call last):
  ...
  ValueError: `kernel_size` (=(3, 0)) must be >= 1
  """
  head = f"{_prefix(where)}`{name}` (={value!r}) must"
  if is_int(value):
    out = (value,) * (n or 1)
  elif isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
    out = None
  else:
    try:
      out = tuple(value)
    except TypeError:
      out = None
    if out is not None and not all(is_int(v) for v in out):
      out = None
  if out is None or not out:
    raise ValueError(f"{_prefix(where)}`{name}` must be an int or a sequence of ints, got "
                     f"{value!r}")
  if n is not None and len(out) != n:
    raise ValueError(f"{head} have one entry per spatial dimension ({n})")
  if any(v < low for v in out):
    raise ValueError(f"{head} be >= {low}")
  return tuple(int(v) for v in out)


def divisible(value: int, name: str, divisor: int, divisor_name: str, *, where: str = "",
              fix: str = "") -> None:
  """Raises unless ``divisor`` divides ``value``; ``divisor_name`` is written as given
  (``'`groups`'``, ``'the number of devices'``).

  >>> divisible(12, 'batch_size', 8, 'the number of devices')
  Traceback (most recent call last):
  ...
  ValueError: `batch_size` (=12) must be divisible by the number of devices (=8)
  """
  if value % divisor:
    raise ValueError(f"{_prefix(where)}`{name}` (={value}) must be divisible by {divisor_name} "
                     f"(={divisor}){_suffix(fix)}")


def groups(c_in: int | None, c_out: int | None, groups: Any, *, in_name: str = "in_channels",
           out_name: str = "out_channels", out_from: str = "", where: str = "",
           fix: str = "") -> int:
  """The feature-group count of a convolution: an int >= 1 that divides the input channels
  ``c_in`` and the output channels ``c_out`` (``None``: not known yet, not checked).
  ``out_from`` names where ``c_out`` was read (``'w.shape[-1]'``), for the message.

  >>> groups(3, 8, 2, out_name='features')
  Traceback (most recent call last):
  ...
  ValueError: `in_channels` (=3) and `features` (=8) must be divisible by `groups` (=2)
  """
  g = positive_int(groups, "groups", where=where)
  out_shown = f"{out_from}={c_out}" if out_from else f"{c_out}"
  known = [(n, c, shown) for n, c, shown in ((in_name, c_in, f"{c_in}"),
                                             (out_name, c_out, out_shown)) if c is not None]
  if any(c % g for _, c, _ in known):  # the rule is for both counts: name every known one
    named = " and ".join(f"`{n}` (={shown})" for n, _, shown in known)
    raise ValueError(f"{_prefix(where)}{named} must be divisible by `groups` (={g})"
                     f"{_suffix(fix)}")
  return g


# ------------------------------------------------------------------------------ floats

def _real(value: Any, name: str, low: float | None, high: float | None, *, low_closed: bool,
          high_closed: bool, allow_traced: bool, where: str, fix: str, noun: str) -> Any:
  if allow_traced and is_tracer(value):
    return value
  if allow_traced and _is_real_array_scalar(value):  # a concrete 0-d jax.Array
    value = float(value)
  if low is not None and high is not None:
    want = (f"a {noun} in {'[' if low_closed else '('}{low:g}, {high:g}"
            f"{']' if high_closed else ')'}")
  elif low is not None:
    want = f"a {noun} {'>=' if low_closed else '>'} {low:g}"
  elif high is not None:
    want = f"a {noun} {'<=' if high_closed else '<'} {high:g}"
  else:
    want = f"a {noun}"
  head = f"{_prefix(where)}`{name}` (={value!r}) must be {want}"
  if not is_real_number(value):
    if is_tracer(value) and not fix:
      fix = f"pass a Python {noun} (static), not a traced array"
    raise ValueError(f"{head}, not a {_kind(value)}{_suffix(fix)}")
  v = float(value)
  too_low = low is not None and (v < low if low_closed else v <= low)
  too_high = high is not None and (v > high if high_closed else v >= high)
  if v != v or too_low or too_high:  # v != v: nan
    raise ValueError(f"{head}{_suffix(fix)}")
  return v


def static_float(value: Any, name: str, low: float | None = None, high: float | None = None,
                 *, low_closed: bool = True, high_closed: bool = False,
                 allow_traced: bool = False, where: str = "", fix: str = "") -> float:
  """``value`` as a Python float in the range ``low .. high`` (``None``: open-ended); the low
  end is included and the high end is not unless ``low_closed``/``high_closed`` say otherwise.

  For an op's or a layer's hyper-parameter: static under ``jit``, so a traced value is refused
  unless ``allow_traced`` (then it is returned unchecked).

  >>> static_float(0.5, 'rate', 0.0, 1.0)
  0.5
  >>> static_float('0.5', 'rate', 0.0, 1.0)
  Traceback (most recent call last):
  ...
  ValueError: `rate` (='0.5') must be a float in [0, 1), not a str
  """
  return _real(value, name, low, high, low_closed=low_closed, high_closed=high_closed,
               allow_traced=allow_traced, where=where, fix=fix, noun="float")


def number(value: Any, name: str, low: float | None = None, high: float | None = None, *,
           low_closed: bool = True, high_closed: bool = False, allow_traced: bool = False,
           where: str = "", fix: str = "") -> float:
  """:func:`static_float` worded "a number", for values where an int reads as naturally as a
  float (a learning rate, an L^p exponent, a config's ``weight_decay``).

  >>> number(-0.1, 'learning_rate', 0.0, low_closed=False)
  Traceback (most recent call last):
  ...
  ValueError: `learning_rate` (=-0.1) must be a number > 0
  """
  return _real(value, name, low, high, low_closed=low_closed, high_closed=high_closed,
               allow_traced=allow_traced, where=where, fix=fix, noun="number")


def rate(value: Any, name: str = "rate", *, where: str = "") -> float:
  """A probability of dropping or mixing, a float in ``[0, 1)`` (dropout, label smoothing, an
  EMA decay).

  >>> rate(1.0, where='Dropout')
  Traceback (most recent call last):
  ...
  ValueError: Dropout `rate` (=1.0) must be a float in [0, 1)
  """
  return static_float(value, name, 0.0, 1.0, where=where)


def real_param(value: Any, name: str, *, where: str = "") -> Any:
  """A numeric parameter that may also be an array (a learnable slope, a traced value): a real
  number or an array of a real dtype passes unchanged; a string, a bool or ``None`` raises.

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
  if dtype is not None:
    jnp = sys.modules.get("jax.numpy")
    # jax.numpy's issubdtype also knows bfloat16 (NumPy does not); an array with a dtype and no
    # JAX imported is a NumPy array, for which NumPy's answer is the same.
    issubdtype = jnp.issubdtype if jnp is not None else np.issubdtype
    if issubdtype(dtype, np.floating) or issubdtype(dtype, np.integer):
      return value
  raise ValueError(f"{_prefix(where)}`{name}` (={value!r}) must be a number or a float array, "
                   f"not a {_kind(value)}")


# ------------------------------------------------------------------------------ options

def choice(value: Any, name: str, choices: Collection[Any], *, where: str = "",
           fix: str = "") -> Any:
  """``value`` if it is one of ``choices`` (listed in their order in the message).

  >>> choice('fast', 'data.loader', ('device', 'stream'))
  Traceback (most recent call last):
  ...
  ValueError: unknown `data.loader` (='fast'); known: device, stream
  """
  try:
    ok = value in choices
  except TypeError:  # an unhashable value looked up in a dict or a set
    ok = False
  if ok:
    return value
  raise ValueError(f"unknown {_prefix(where)}`{name}` (={value!r}); known: {_join(choices)}"
                   f"{_suffix(fix)}")


def boolean(value: Any, name: str, *, where: str = "") -> bool:
  """``value`` as a Python bool; ``1``, ``'true'`` and ``None`` raise.

  >>> boolean('False', 'plots')
  Traceback (most recent call last):
  ...
  ValueError: `plots` (='False') must be True or False
  """
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  raise ValueError(f"{_prefix(where)}`{name}` (={value!r}) must be True or False")


# ------------------------------------------------------------------------------ shapes

def _shape(x: Any, is_shape: bool) -> tuple[Any, ...]:
  return tuple(x) if is_shape else tuple(np.shape(x))


def looks_nchw(shape: Sequence[int]) -> bool:
  """True for a 4-D shape that reads as an image batch ``[B, C, H, W]``: axis 1 is 1 or 3 (gray
  or RGB) and both later axes are larger than an image's channel count (``(8, 3, 32, 32)``,
  ``(8, 1, 28, 28)``; not a 1x1 feature map ``(8, 1, 1, 32)``)."""
  shape = tuple(shape)
  return (len(shape) == 4 and shape[1] in (1, 3)
          and all(is_int(d) and d > 4 for d in shape[2:]))


def channels_last_hint(shape: Sequence[int]) -> str:
  """:data:`CHANNELS_LAST_HINT` when ``shape`` looks NCHW (:func:`looks_nchw`), else ``''``:
  the ``fix`` of an error about an input's shape or channels."""
  return CHANNELS_LAST_HINT if looks_nchw(shape) else ""


def with_fix(message: str, fix: str) -> str:
  """``message`` with ``'; ' + fix`` appended when ``fix`` is not empty."""
  return f"{message}{_suffix(fix)}"


def _rank_error(shape: tuple, want: str, name: str, where: str, fix: str,
                is_shape: bool) -> ValueError:
  if where:
    head = f"{where} expects `{name}` {'to be' if is_shape else 'of shape'} {want}"
  else:
    head = f"`{name}` must be {want}"
  got = f"{shape}" if is_shape else f"shape {shape}"
  return ValueError(f"{head}, got {got} (rank {len(shape)}){_suffix(fix)}"
                    f"{_suffix(channels_last_hint(shape))}")


def rank(x: Any, ranks: int | Sequence[int], name: str = "x", *, where: str = "",
         layouts: str | None = None, fix: str = "", is_shape: bool = False) -> int:
  """The rank of ``x`` (an array, or with ``is_shape`` a shape tuple) if it is one of
  ``ranks``. The message names the channels-last layouts (``layouts``, or those of
  :data:`LAYOUTS`) and, for an input that looks NCHW, how to transpose it.

  >>> rank(np.zeros((4, 4)), (3, 4, 5), where='conv')
  Traceback (most recent call last):
  ...
  ValueError: conv expects `x` of shape [B, W, C], [B, H, W, C] or [B, D, H, W, C], got shape (4, 4) (rank 2)
  """
  ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
  shape = _shape(x, is_shape)
  if len(shape) in ranks:
    return len(shape)
  want = layouts or _or([LAYOUTS.get(r, f"rank {r}") for r in ranks])
  raise _rank_error(shape, want, name, where, fix, is_shape)


def min_rank(x: Any, low: int, name: str = "x", *, where: str = "",
             layout: str = "[B, ..., C]", fix: str = "", is_shape: bool = False) -> int:
  """The rank of ``x`` if it is at least ``low`` (``[B, *spatial, C]`` for dropout over
  feature maps, ``[B, ..., C]`` for batch norm).

  >>> min_rank(np.zeros((4, 4)), 3, where='channel_dropout', layout='[B, *spatial, C]')
  Traceback (most recent call last):
  ...
  ValueError: channel_dropout expects `x` of shape [B, *spatial, C] (rank >= 3), got shape (4, 4) (rank 2)
  """
  shape = _shape(x, is_shape)
  if len(shape) >= low:
    return len(shape)
  raise _rank_error(shape, f"{layout} (rank >= {low})", name, where, fix, is_shape)
