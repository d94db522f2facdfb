"""Training plots, drawn with matplotlib's Agg canvas (no display, no pyplot global state).

* :func:`plot_curves`: train and eval loss and accuracy per epoch (``curves.png``);
* :func:`plot_confusion`: a confusion matrix with class names (``confusion.png``).

Both write atomically (to a temporary file, then rename), so a viewer refreshing the image while
training runs never reads half a PNG.

>>> plot_curves([{'epoch': 1, 'train_loss': 1.0, 'eval_loss': 1.1,
...               'train_accuracy': 0.5, 'eval_accuracy': 0.45}], '/tmp/curves.png')
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | os.PathLike) -> None:
  path = pathlib.Path(path)
  tmp = path.with_name(path.stem + ".tmp" + path.suffix)
  FigureCanvasAgg(fig)
  fig.savefig(tmp, dpi=100)
  os.replace(tmp, path)


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
  xs, ys = [], []
  for r in history:
    v = r.get(key)
    if v is not None:
      xs.append(r["epoch"])
      ys.append(float(v))
  return xs, ys


def plot_curves(history: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> None:
  """Loss (left) and accuracy (right) per epoch, train and eval, from ``metrics.jsonl`` records.

  Args:
    history: records with ``epoch`` and any of ``train_loss, eval_loss, train_accuracy,
      eval_accuracy`` (missing or None values are skipped).
    path: the PNG to write.
  """
  fig = Figure(figsize=(10, 4), layout="constrained")
  for ax, what in zip(fig.subplots(1, 2), ("loss", "accuracy")):
    for split, style in (("train", "o-"), ("eval", "s--")):
      xs, ys = _series(history, f"{split}_{what}")
      if xs:
        ax.plot(xs, ys, style, label=split)
    ax.set_xlabel("epoch")
    ax.set_ylabel(what)
    ax.grid(True, alpha=0.3)
    if ax.has_data():
      ax.legend()
  _save(fig, path)


def plot_confusion(matrix: Any, class_names: Sequence[str] | None,
                   path: str | os.PathLike, *, title: str = "confusion matrix",
                   normalize: bool = True) -> None:
  """A ``[K, K]`` confusion matrix (row = true class, column = predicted) as a heat map.

  With ``normalize`` each row is divided by its count (per-class recall on the diagonal); the
  cells show the raw counts when ``K <= 20``.
  """
  m = np.asarray(matrix, dtype=np.float64)
  if m.ndim != 2 or m.shape[0] != m.shape[1]:
    raise ValueError(f"`matrix` must be square [K, K], got shape {m.shape}")
  k = m.shape[0]
  names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
  if len(names) != k:
    raise ValueError(f"`class_names` has {len(names)} names for a {k}x{k} matrix")
  shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
  size = max(4.0, 0.5 * k + 2)
  fig = Figure(figsize=(size + 1, size), layout="constrained")
  ax = fig.subplots()
  im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
  fig.colorbar(im, ax=ax, label="fraction of true class" if normalize else "count")
  ax.set_xticks(range(k), names, rotation=45, ha="right")
  ax.set_yticks(range(k), names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  total = m.sum()
  acc = np.trace(m) / total if total else float("nan")
  ax.set_title(f"{title} (accuracy {acc:.3f})")
  if k <= 20:
    for i in range(k):
      for j in range(k):
        ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black")
  _save(fig, path)
