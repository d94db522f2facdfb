"""tfds split syntax (``train``, ``train[:45000]``, ``train[90%:]``) for any source, and
contiguous per-process shards.

tfds parses the split itself for tfds sources; the same syntax is parsed here for class-per-folder
copies and in-memory arrays, with tfds's rounding for percentages (nearest example), so that
``train[:90%]`` means the same number of examples everywhere.
"""

from __future__ import annotations

import dataclasses
import re

from jaxcnn import _checks

_SPLIT_RE = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*(?:\[\s*([-+]?\d+%?)?\s*:\s*([-+]?\d+%?)?\s*\])?\s*$")


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """A parsed split: ``name[start:stop]``; each bound is ``(value, is_percent)`` or None."""

  name: str
  start: tuple[int, bool] | None
  stop: tuple[int, bool] | None


def parse_split(split: str) -> SplitSpec:
  """Parses one tfds-style split string.

  Supported: ``'train'``, ``'train[:45000]'``, ``'train[45000:]'``, ``'train[-5000:]'``,
  ``'train[:90%]'``, ``'train[10%:20%]'``. (No ``+`` concatenation and no shard syntax.)

  Raises:
    ValueError: naming the string, when it is malformed.

  Example:
    >>> parse_split('train[:90%]')
    SplitSpec(name='train', start=None, stop=(90, True))

  .. autoclass:: jaxcnn.data._split.SplitSpec
  """
  if not isinstance(split, str):
    raise ValueError(f"`split` (={split!r}) must be a string like 'train' or 'train[:45000]'")
  m = _SPLIT_RE.match(split)
  if m is None:
    raise ValueError(
        f"malformed `split` (={split!r}); expected tfds split syntax such as 'train', "
        "'train[:45000]', 'train[45000:]', 'train[:90%]' or 'train[90%:]'")
  name, lo, hi = m.groups()

  def bound(text):
    if text is None:
      return None
    pct = text.endswith("%")
    value = int(text.rstrip("%"))
    if pct and not -100 <= value <= 100:
      raise ValueError(f"malformed `split` (={split!r}): percentage {text} is outside [-100%, 100%]")
    return value, pct

  return SplitSpec(name, bound(lo), bound(hi))


def resolve_split(split: str, num_examples: int) -> tuple[int, int]:
  """``[start, stop)`` indices that ``split`` selects from a base split of ``num_examples``.

  Percentages round to the nearest example, as tfds does (``round(pct * n / 100)``).

  Raises:
    ValueError: malformed string, a bound beyond the split, or an empty selection.

  Example:
    >>> resolve_split('train[45000:]', 50000)
    (45000, 50000)
    >>> resolve_split('train[:90%]', 50000)
    (0, 45000)
  """
  spec = parse_split(split)

  def absolute(b, default):
    if b is None:
      return default
    value, pct = b
    if pct:
      value = int(round(value * num_examples / 100.0))
    elif abs(value) > num_examples:
      raise ValueError(
          f"`split` (={split!r}) asks for index {value}, but {spec.name!r} has only "
          f"{num_examples} examples")
    return value + num_examples if value < 0 else value

  start = absolute(spec.start, 0)
  stop = absolute(spec.stop, num_examples)
  if stop <= start:
    raise ValueError(f"`split` (={split!r}) selects no examples out of {num_examples}")
  return start, stop


def shard_range(start: int, stop: int, process_index: int, process_count: int, *,
                drop_remainder: bool = False) -> tuple[int, int]:
  """This process's contiguous shard of ``[start, stop)``.

  With ``drop_remainder=False`` the shards are disjoint, cover the range, and differ in size by
  at most one (``tfds.split_for_jax_process(..., drop_remainder=False)``). With
  ``drop_remainder=True`` every shard has exactly ``n // process_count`` examples and the last
  ``n % process_count`` are left out: what multi-host training needs, since every process must run
  the same number of steps or the collectives wait forever.

  Example:
    >>> [shard_range(0, 10, i, 3) for i in range(3)]
    [(0, 3), (3, 6), (6, 10)]
    >>> [shard_range(0, 10, i, 3, drop_remainder=True) for i in range(3)]
    [(0, 3), (3, 6), (6, 9)]
  """
  process_count = _checks.positive_int(process_count, "process_count")
  if not 0 <= process_index < process_count:
    raise ValueError(
        f"`process_index` (={process_index}) must be in [0, process_count={process_count})")
  n = stop - start
  if n < process_count:
    raise ValueError(
        f"the split has {n} examples, fewer than `process_count` (={process_count})")
  if drop_remainder:
    size = n // process_count
    return start + process_index * size, start + (process_index + 1) * size
  lo = start + process_index * n // process_count
  hi = start + (process_index + 1) * n // process_count
  return lo, hi


def check_splits_disjoint(name: str | None, train_split: str, eval_split: str,
                          num_examples: int | None = None) -> None:
  """Raises ``ValueError`` when the eval split shares examples with the train split.

  Both are tfds split strings; only slices of the same base split can overlap. The sizes come
  from ``num_examples`` or, for a known dataset, its documented split sizes; without either,
  percent slices are compared as fractions (absolute ones cannot be compared and pass).

  Example:
    >>> check_splits_disjoint('cifar10', 'train[:45000]', 'train[45000:]')
    >>> check_splits_disjoint('cifar10', 'train[:90%]', 'train[-10000:]')
    Traceback (most recent call last):
    ...
    ValueError: `eval_split` (='train[-10000:]') overlaps `train_split` (='train[:90%]') in 5000 examples (40000..44999 of 'train'); evaluating on training images overstates accuracy: make them disjoint, e.g. 'train[:45000]' and 'train[45000:]'
  """
  a, b = parse_split(train_split), parse_split(eval_split)
  if a.name != b.name:
    return
  if num_examples is None and name is not None:
    from jaxcnn.data._info import DATASETS  # pylint: disable=g-import-not-at-top
    info = DATASETS.get(name)
    num_examples = info and {"train": info.num_train, "test": info.num_test}.get(a.name)
  if num_examples is None:
    if any(bound is not None and not bound[1] for bound in (a.start, a.stop, b.start, b.stop)):
      return
    num_examples = 10_000  # percent bounds only: any size shows whether the fractions overlap
  (t0, t1), (e0, e1) = (resolve_split(train_split, num_examples),
                        resolve_split(eval_split, num_examples))
  lo, hi = max(t0, e0), min(t1, e1)
  if lo < hi:
    raise ValueError(
        f"`eval_split` (={eval_split!r}) overlaps `train_split` (={train_split!r}) in "
        f"{hi - lo} examples ({lo}..{hi - 1} of {a.name!r}); evaluating on training images "
        f"overstates accuracy: make them disjoint, e.g. '{a.name}[:45000]' and "
        f"'{a.name}[45000:]'")
