"""TensorBoard scalars of a run, written without TensorFlow (``tensorboardX``).

What Keras's ``TensorBoard`` callback and PyTorch's ``SummaryWriter`` users look for first: one
point per epoch for every number of the loop's record (``metrics.jsonl``), grouped by what it
measures: ``train_loss`` -> ``train/loss``, ``eval_accuracy`` -> ``eval/accuracy``,
``test_accuracy`` -> ``test/accuracy``, and timings such as ``epoch_seconds`` under ``run/``;
the x axis is the optimizer step.

Exact on resume: the writer starts from the run's history (as ``metrics.jsonl`` does): it
replaces the folder's event files with one holding that history, so epochs that ran after the
last checkpoint (and were lost with it) are not drawn twice.

In a notebook::

    %load_ext tensorboard
    %tensorboard --logdir runs/my_run/tensorboard
"""

from __future__ import annotations

import numbers
import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

PREFIXES = ("train", "eval", "test")
NOT_SCALARS = ("epoch", "step")


def tag(key: str) -> str:
  """The TensorBoard tag of a record key: ``'eval_top5'`` -> ``'eval/top5'``.

  >>> tag('train_loss'), tag('epoch_seconds')
  ('train/loss', 'run/epoch_seconds')
  """
  head, _, rest = key.partition("_")
  return f"{head}/{rest}" if head in PREFIXES and rest else f"run/{key}"


class TensorBoardWriter:
  """Writes the loop's per-epoch records as TensorBoard scalars into ``logdir``.

  Args:
    logdir: the folder for the event file (created).
    history: the records already run (a resumed run's history); written first.
  """

  def __init__(self, logdir: str | os.PathLike, history: Iterable[Mapping[str, Any]] = ()):
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ImportError("TensorBoard logging (`tensorboard=True`) needs tensorboardX: "
                        "pip install tensorboardX") from None
    self.logdir = pathlib.Path(logdir)
    self.logdir.mkdir(parents=True, exist_ok=True)
    for old in self.logdir.glob("events.out.tfevents*"):
      old.unlink()  # the history below replaces them, so no epoch is drawn twice
    self._writer = SummaryWriter(str(self.logdir))
    for record in history:
      self.write(record)

  def write(self, record: Mapping[str, Any]) -> None:
    """One point per number of ``record`` at ``record['step']``, flushed to disk at once."""
    step = int(record["step"])
    for key, value in record.items():
      if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, numbers.Real):
        continue
      self._writer.add_scalar(tag(key), float(value), step)
    self._writer.flush()  # a notebook's TensorBoard shows an epoch as soon as it ends

  def close(self) -> None:
    self._writer.close()
