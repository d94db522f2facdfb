"""Plots for training and for the lessons, drawn with matplotlib's Agg canvas (no display, no
pyplot global state).

Every function returns a matplotlib :class:`~matplotlib.figure.Figure` (a notebook shows it
inline) and writes a PNG only when given ``path``, atomically (to a temporary file, then
rename), so a viewer refreshing the image while training runs never reads half a PNG.

* :func:`plot_curves`: loss and accuracy per epoch, from the loop's records or ``fit``'s History;
  :func:`plot_metric`: one metric, train and validation, as Keras' ``history`` is usually drawn;
* :func:`plot_confusion`: a confusion matrix with class names;
* :func:`image_grid`: images with titles; :func:`feature_map_grid`: the channels of one
  feature map; :func:`filter_grid`: conv kernels (RGB first-layer filters as colour images);
* :func:`attribution_overlay`: attribution maps over their image;
* :func:`model_diagram`: a box per layer with its input and output shapes (like Keras'
  ``plot_model(show_shapes=True)``).

>>> fig = plot_curves([{'epoch': 1, 'train_loss': 1.0, 'eval_loss': 1.1,
...                     'train_accuracy': 0.5, 'eval_accuracy': 0.45}], '/tmp/curves.png')
>>> type(fig).__name__
'Figure'
"""

from __future__ import annotations

import math
import os
import pathlib
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from jaxcnn import _checks


def _save(fig: Figure, path: str | os.PathLike | None) -> Figure:
  """Attaches an Agg canvas (so ``fig`` renders without pyplot) and writes ``path`` if given."""
  FigureCanvasAgg(fig)
  if path is not None:
    path = pathlib.Path(path).expanduser()
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    try:
      fig.savefig(tmp, dpi=100)
      os.replace(tmp, path)
    except OSError as e:  # a full disk: no half-written temporary left, and the file named
      tmp.unlink(missing_ok=True)
      e.filename = str(path)
      raise
  return fig


# Keras-like History keys (`fit`) -> the loop's record keys.
_KERAS_KEYS = {"loss": "train_loss", "accuracy": "train_accuracy", "val_loss": "eval_loss",
               "val_accuracy": "eval_accuracy"}


def _records(history: Any) -> list[Mapping[str, Any]]:
  """The loop's per-epoch records from either accepted form (see :func:`plot_curves`)."""
  if isinstance(history, Mapping):  # fit's History: {'loss': [...], 'val_loss': [...], ...}
    history = getattr(history, "history", history)
    lengths = {len(v) for v in history.values() if isinstance(v, Sequence)}
    n = max(lengths, default=0)
    records = []
    for e in range(n):
      r: dict[str, Any] = {"epoch": e + 1}
      for key, value in history.items():
        if isinstance(value, Sequence) and e < len(value):
          r[_KERAS_KEYS.get(key, key)] = value[e]
      records.append(r)
    return records
  if not isinstance(history, Iterable) or isinstance(history, (str, bytes)):
    # e.g. fit's ``history.state`` (a TrainState): name the type, not a repr of every weight.
    raise ValueError(f"`history` (a {type(history).__name__}) must be fit's History or the "
                     "metrics.jsonl records (a list of dicts with an 'epoch' key)")
  records = list(history)
  for i, r in enumerate(records):
    if not isinstance(r, Mapping) or "epoch" not in r:
      raise ValueError(f"`history` record {i} (={r!r}) must be a mapping with an 'epoch' key "
                       "(metrics.jsonl records), or pass fit's History dict of lists")
  return records


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
  xs, ys = [], []
  for r in history:
    v = r.get(key)
    if v is not None:
      xs.append(r["epoch"])
      ys.append(float(v))
  return xs, ys


def plot_curves(history: Any, path: str | os.PathLike | None = None) -> Figure:
  """Loss (left) and accuracy (right) per epoch, train and eval.

  Args:
    history: the loop's ``metrics.jsonl`` records (dicts with ``epoch`` and any of
      ``train_loss, eval_loss, train_accuracy, eval_accuracy``; missing or None values are
      skipped), or a Keras-like History from :func:`jaxcnn.train.fit` (``{'loss': [...],
      'accuracy': [...], 'val_loss': [...], 'val_accuracy': [...]}``, epochs counted from 1).
    path: the PNG to write, or None.

  Returns:
    the Figure.
  """
  history = _records(history)
  fig = Figure(figsize=(10, 4), layout="constrained")
  for ax, what in zip(fig.subplots(1, 2), ("loss", "accuracy")):
    for split, style in (("train", "o-"), ("eval", "s--")):
      xs, ys = _series(history, f"{split}_{what}")
      if xs:
        ax.plot(xs, ys, style, label=split)
    ax.set_xlabel("epoch")
    ax.set_ylabel(what)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.grid(True, alpha=0.3)
    if ax.has_data():
      ax.legend()
  return _save(fig, path)


def plot_metric(history: Any, metric: str = "accuracy", path: str | os.PathLike | None = None,
                *, ylim: tuple[float, float] | None = None, legend_loc: str = "best",
                title: str | None = None) -> Figure:
  """One metric per epoch, train and validation, labelled with Keras' names (``accuracy``,
  ``val_accuracy``), as a Keras notebook draws ``history.history``.

  Args:
    history: as in :func:`plot_curves` (``fit``'s History or the loop's records).
    metric: ``'accuracy'`` or ``'loss'`` (any key the history has).
    ylim: the y range, e.g. ``(0.5, 1)``; widened to show every point if one falls outside.
    legend_loc: matplotlib's legend location, e.g. ``'lower right'``.

  >>> fig = plot_metric({'accuracy': [0.5, 0.7], 'val_accuracy': [0.55, 0.6]}, ylim=(0.5, 1))
  >>> [l.get_label() for l in fig.axes[0].get_lines()]
  ['accuracy', 'val_accuracy']
  """
  records = _records(history)
  fig = Figure(figsize=(6.4, 4.2), layout="constrained")
  ax = fig.subplots()
  values = []
  for split, label, style in (("train", metric, "o-"), ("eval", f"val_{metric}", "s--")):
    xs, ys = _series(records, f"{split}_{metric}")
    if xs:
      ax.plot(xs, ys, style, label=label)
      values += ys
  if not values:
    raise ValueError(f"`history` has no {metric!r} values (keys: train_/eval_{metric}, or "
                     f"Keras' {metric!r}/'val_{metric}')")
  ax.set_xlabel("Epoch")
  ax.set_ylabel(metric.capitalize())
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  if ylim is not None:
    lo, hi = min(ylim[0], min(values)), max(ylim[1], max(values))
    pad = 0.02 * (hi - lo) if (lo, hi) != tuple(ylim) else 0.0
    ax.set_ylim(lo - (pad if lo < ylim[0] else 0.0), hi + (pad if hi > ylim[1] else 0.0))
  ax.grid(True, alpha=0.3)
  ax.legend(loc=legend_loc)
  if title:
    ax.set_title(title, fontsize=10)
  return _save(fig, path)


def plot_confusion(matrix: Any, class_names: Sequence[str] | None = None,
                   path: str | os.PathLike | None = None, *, title: str = "confusion matrix",
                   normalize: bool = True) -> Figure:
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
  return _save(fig, path)


# ------------------------------------------------------------------------------------------------
# Lesson plots: images, feature maps, filters, attributions, model diagrams.

def _grid(n: int, ncols: int | None) -> tuple[int, int]:
  ncols = _checks.positive_int(ncols, "ncols", optional=True)
  ncols = min(n, ncols or math.ceil(math.sqrt(n)))
  return math.ceil(n / ncols), ncols


def _displayable(img: Any) -> np.ndarray:
  """``[H, W]`` or ``[H, W, 3]`` for imshow: uint8 as is, floats in [0, 1] as is, other floats
  rescaled to [0, 1] by their own min and max; one channel squeezed."""
  a = np.asarray(img)
  if a.ndim == 3 and a.shape[-1] == 1:
    a = a[..., 0]
  if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
    raise ValueError(f"an image must be [H, W], [H, W, 1] or [H, W, 3], got shape {a.shape}")
  if a.dtype == np.uint8:
    return a
  a = a.astype(np.float64)
  lo, hi = float(np.min(a)), float(np.max(a))
  if lo < 0.0 or hi > 1.0:
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
  return a


def _off(ax) -> None:
  ax.set_xticks([])
  ax.set_yticks([])


def _suptitle(fig: Figure, text: str, fontsize: float = 10) -> None:
  """``fig.suptitle`` wrapped to the figure's width, so a narrow grid never cuts its title."""
  width_in = fig.get_size_inches()[0]
  chars = max(20, int(width_in * 130 / fontsize))  # about 0.55 em a character on average
  lines = [textwrap.fill(line, chars) for line in str(text).splitlines() or [""]]
  fig.suptitle("\n".join(lines), fontsize=fontsize)


def image_grid(images: Any, titles: Sequence[str] | None = None, ncols: int | None = None,
               cmap: str | None = None, path: str | os.PathLike | None = None, *,
               suptitle: str | None = None, cell: float = 1.8) -> Figure:
  """A grid of images with optional titles (e.g. a 5x5 of CIFAR-10 with class names).

  Args:
    images: ``[N, H, W]``, ``[N, H, W, 1]``, ``[N, H, W, 3]`` or a sequence of such images.
      uint8 is shown as is; floats in ``[0, 1]`` as is; other floats (normalised inputs)
      rescaled per image to ``[0, 1]`` by their min and max.
    titles: one string per image (a wrong count raises).
    ncols: columns (default ``ceil(sqrt(N))``).
    cmap: colormap for one-channel images (default ``'gray'``).
    path: the PNG to write, or None.
    suptitle: a title over the grid.
    cell: inches per image.

  >>> fig = image_grid(np.random.rand(4, 8, 8, 3), titles=['a', 'b', 'c', 'd'])
  >>> len(fig.axes)
  4
  """
  imgs = [_displayable(i) for i in images]
  n = len(imgs)
  if n == 0:
    raise ValueError("`images` is empty")
  if titles is not None and len(titles) != n:
    raise ValueError(f"`titles` has {len(titles)} entries for {n} images")
  rows, cols = _grid(n, ncols)
  extra = 0.35 if titles is not None else 0.0
  fig = Figure(figsize=(cols * cell, rows * (cell + extra) + (0.4 if suptitle else 0)),
               layout="constrained")
  axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
  for i, ax in enumerate(axes):
    if i >= n:
      ax.axis("off")
      continue
    img = imgs[i]
    ax.imshow(img, cmap=(cmap or "gray") if img.ndim == 2 else None,
              vmin=None if img.dtype == np.uint8 or img.ndim == 3 else 0.0,
              vmax=None if img.dtype == np.uint8 or img.ndim == 3 else 1.0,
              interpolation="nearest")
    _off(ax)
    if titles is not None:
      ax.set_title(str(titles[i]), fontsize=9)
  if suptitle:
    _suptitle(fig, suptitle, 12)
  return _save(fig, path)


def feature_map_grid(maps: Any, *, max_maps: int = 64, ncols: int | None = None,
                     cmap: str = "viridis", title: str | None = None,
                     path: str | os.PathLike | None = None, cell: float = 1.2) -> Figure:
  """The channels of one feature map, one panel each, e.g. a conv layer's output for one image.

  Each channel has its own colour scale (dark = its minimum, bright = its maximum), so weak
  channels stay visible; the title gives the shape and the overall value range, and a channel
  that is constant (a dead ReLU: all 0) is marked ``const``.

  Args:
    maps: ``[H, W, C]`` (or ``[1, H, W, C]``, from :func:`jaxcnn.inspect.feature_maps`).
    max_maps: show the first ``max_maps`` channels.
  """
  m = np.asarray(maps, dtype=np.float64)
  if m.ndim == 4 and m.shape[0] == 1:
    m = m[0]
  if m.ndim != 3:
    raise ValueError(f"`maps` must be one feature map [H, W, C] (or [1, H, W, C]), got shape "
                     f"{np.shape(maps)}; index one example, e.g. maps[0]")
  c = m.shape[-1]
  n = min(c, max_maps)
  rows, cols = _grid(n, ncols)
  fig = Figure(figsize=(cols * cell, rows * (cell + 0.25) + 0.5), layout="constrained")
  axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
  for i, ax in enumerate(axes):
    ax.axis("off") if i >= n else _off(ax)
    if i >= n:
      continue
    ch = m[..., i]
    const = float(ch.max() - ch.min()) == 0.0
    ax.imshow(ch, cmap=cmap, interpolation="nearest")
    ax.set_title(f"{i}" + (" const" if const else ""), fontsize=8)
  shown = f"first {n} of {c} channels" if n < c else f"{c} channels"
  head = f"{title}: " if title else ""
  _suptitle(fig, f"{head}{m.shape[0]}x{m.shape[1]}, {shown}, values "
               f"[{m.min():.3g}, {m.max():.3g}] (each panel its own scale)", fontsize=10)
  return _save(fig, path)


def _numbered_panels(n: int, ncols: int | None, draw: Callable[[Any, int], Any]) -> Figure:
  """A grid of ``n`` panels titled 0..n-1, ``draw(ax, i)`` filling panel ``i``; the grid's
  spare cells blank."""
  rows, cols = _grid(n, ncols)
  fig = Figure(figsize=(cols * 1.0, rows * 1.15 + 0.5), layout="constrained")
  for i, ax in enumerate(fig.subplots(rows, cols, squeeze=False).reshape(-1)):
    if i >= n:
      ax.axis("off")
      continue
    draw(ax, i)
    _off(ax)
    ax.set_title(str(i), fontsize=8)
  return fig


def filter_grid(kernel: Any, *, max_filters: int | None = None, max_channels: int = 8,
                ncols: int | None = None, title: str | None = None,
                path: str | os.PathLike | None = None, channel: int | None = None) -> Figure:
  """Conv kernels ``[kh, kw, C_in, C_out]`` as pictures.

  * ``channel=c``: one grey panel per filter showing its input channel ``c``
    (``kernel[:, :, c, i]``), each panel on its own scale (dark = its smallest weight, light =
    its largest), up to ``max_filters`` (64): what Keras notebooks draw with
    ``plt.imshow(filters[:, :, 0, i], cmap='gray')``.
  * ``C_in == 3`` (a first layer on RGB): each filter is one colour image, the weights mapped
    to ``0.5 + w / (2 max|w|)`` over the whole kernel (grey = 0), so filters are comparable;
    up to ``max_filters`` (64) of them.
  * otherwise: one row per filter (up to ``max_filters``, 16) and one column per input channel
    (up to ``max_channels``), on a diverging colormap symmetric about 0 shared by all panels
    (red positive, blue negative), with a colour bar.
  """
  k = np.asarray(kernel, dtype=np.float64)
  if k.ndim != 4:
    raise ValueError(f"`kernel` must be a 2-D conv kernel [kh, kw, C_in, C_out], got shape "
                     f"{k.shape}")
  kh, kw, cin, cout = k.shape
  vmax = float(np.max(np.abs(k))) or 1.0
  head = f"{title}: " if title else ""
  if channel is not None:
    if not isinstance(channel, int) or isinstance(channel, bool) or not 0 <= channel < cin:
      raise ValueError(f"`channel` (={channel!r}) must be an input channel of the kernel, an "
                       f"int in [0, {cin})")
    n = min(cout, max_filters or 64)
    fig = _numbered_panels(n, ncols, lambda ax, i: ax.imshow(
        k[:, :, channel, i], cmap="gray", interpolation="nearest"))
    _suptitle(fig, f"{head}{n} of {cout} filters {kh}x{kw}, input channel {channel} (each its "
                 "own scale: dark = lowest weight)", fontsize=10)
    return _save(fig, path)
  if cin == 3:
    n = min(cout, max_filters or 64)
    fig = _numbered_panels(n, ncols, lambda ax, i: ax.imshow(
        np.clip(0.5 + k[..., i] / (2 * vmax), 0, 1), interpolation="nearest"))
    _suptitle(fig, f"{head}{n} of {cout} RGB filters {kh}x{kw} (grey = 0, |w| max {vmax:.3g})",
                 fontsize=10)
    return _save(fig, path)
  nf, nc = min(cout, max_filters or 16), min(cin, max_channels)
  fig = Figure(figsize=(nc * 0.9 + 1.2, nf * 0.9 + 0.6), layout="constrained")
  axes = fig.subplots(nf, nc, squeeze=False)
  im = None
  for f in range(nf):
    for c in range(nc):
      ax = axes[f, c]
      im = ax.imshow(k[:, :, c, f], cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                     interpolation="nearest")
      _off(ax)
      if f == 0:
        ax.set_title(f"in {c}", fontsize=8)
      if c == 0:
        ax.set_ylabel(f"filter {f}", fontsize=8)
  fig.colorbar(im, ax=axes, shrink=0.6, label="weight")
  _suptitle(fig, f"{head}{nf} of {cout} filters x {nc} of {cin} input channels, {kh}x{kw}",
               fontsize=10)
  return _save(fig, path)


def attribution_overlay(image: Any, attributions: Any, *, titles: Sequence[str] | None = None,
                        cmap: str = "inferno", alpha: float = 0.6,
                        path: str | os.PathLike | None = None,
                        suptitle: str | None = None) -> Figure:
  """The image, then each attribution map drawn over it.

  Args:
    image: ``[H, W]`` or ``[H, W, C]`` (shown as in :func:`image_grid`).
    attributions: one map or a ``{name: map}`` dict (names become titles). A map is
      ``[h, w]`` at any resolution (a Grad-CAM or occlusion grid is stretched over the image)
      or ``[H, W, C]`` (an input gradient: reduced to ``max_c |a|``). Each map is scaled by its
      own maximum of ``|a|``, so the colours show where, not how much.
    titles: names when ``attributions`` is not a dict.
  """
  img = _displayable(image)
  if isinstance(attributions, Mapping):
    names, maps = list(attributions), list(attributions.values())
  else:
    maps = [attributions] if np.ndim(attributions) in (2, 3) else list(attributions)
    names = list(titles) if titles is not None else [f"attribution {i}" for i in
                                                     range(len(maps))]
  if len(names) != len(maps):
    raise ValueError(f"`titles` has {len(names)} entries for {len(maps)} maps")
  h, w = img.shape[:2]
  fig = Figure(figsize=(2.6 * (len(maps) + 1), 2.9 + (0.3 if suptitle else 0)),
               layout="constrained")
  axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
  axes[0].imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
  axes[0].set_title("image", fontsize=9)
  _off(axes[0])
  for ax, name, a in zip(axes[1:], names, maps):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
      a = np.max(np.abs(a), axis=-1)
    if a.ndim != 2:
      raise ValueError(f"attribution {name!r} must be [h, w] or [H, W, C], got shape {a.shape}")
    a = np.abs(a)
    a = a / (a.max() or 1.0)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    ax.imshow(a, cmap=cmap, alpha=alpha, extent=(-0.5, w - 0.5, h - 0.5, -0.5), vmin=0, vmax=1,
              interpolation="bilinear" if a.shape != (h, w) else "nearest")
    ax.set_title(str(name), fontsize=9)
    _off(ax)
  if suptitle:
    fig.suptitle(suptitle)
  return _save(fig, path)


def model_diagram(model: Any, input_shape: Sequence[int], *,
                  path: str | os.PathLike | None = None, title: str | None = None,
                  name: str | None = None, **call_kwargs: Any) -> Figure:
  """A box per layer, top to bottom in call order, with its input and output shapes, like
  Keras' ``plot_model(model, show_shapes=True)``, for any model built from jaxcnn layers.

  The layers and shapes come from :func:`jaxcnn.inspect.summary` (an abstract trace: nothing
  is computed). Layers are drawn in the order they are called, joined by arrows; a model with
  branches (a residual block) is drawn as that sequence, with each box's shapes telling where
  the branches meet.

  Args:
    model: an unbound Flax module.
    input_shape: ``[B, *spatial, C]``, batch included as in :func:`jaxcnn.inspect.summary`
      (the batch is drawn as ``None``, as Keras does).
    title: the figure's title (default: the model's name and parameter count).
    name: the model's name in the default title (default: its class name), as
      :func:`jaxcnn.inspect.summary` takes it.
    **call_kwargs: passed to the model call (e.g. ``train=True``).
  """
  from jaxcnn import inspect as inspect_lib  # pylint: disable=g-import-not-at-top

  shape = tuple(input_shape)
  s = inspect_lib.summary(model, shape, print_fn=None, name=name, **call_kwargs)
  rows = [r for r in s.rows if r.layer_type]
  boxes = [("input", "InputLayer", None, shape)] + [
      (r.name, r.layer_type, r.input_shape, r.output_shape) for r in rows]
  fmt = lambda t: "(" + ", ".join("None" if i == 0 else str(d) for i, d in enumerate(t)) + ")"
  n = len(boxes)
  box_h, gap = 0.62, 0.38
  fig = Figure(figsize=(6.2, 0.6 + n * (box_h + gap) * 0.95), layout="constrained")
  ax = fig.subplots()
  ax.set_xlim(0, 10)
  ax.set_ylim(-(n * (box_h + gap)), 0.2)
  ax.axis("off")
  for i, (name, kind, in_shape, out_shape) in enumerate(boxes):
    top = -i * (box_h + gap)
    y = top - box_h
    ax.add_patch(Rectangle((0.2, y), 9.6, box_h, facecolor="#e8f0fb" if i else "#f3f3f3",
                           edgecolor="#345", linewidth=1.0))
    ax.plot([4.6, 4.6], [y, top], color="#345", linewidth=0.8)
    ax.plot([4.6, 9.8], [y + box_h / 2] * 2, color="#345", linewidth=0.8)
    ax.text(2.4, y + box_h / 2, f"{name}: {kind}", ha="center", va="center", fontsize=9)
    ax.text(4.75, y + 0.75 * box_h, "input:", ha="left", va="center", fontsize=8)
    ax.text(4.75, y + 0.25 * box_h, "output:", ha="left", va="center", fontsize=8)
    ax.text(6.0, y + 0.75 * box_h, fmt(in_shape if in_shape else out_shape), ha="left",
            va="center", fontsize=8, family="monospace")
    ax.text(6.0, y + 0.25 * box_h, fmt(out_shape), ha="left", va="center", fontsize=8,
            family="monospace")
    if i:
      ax.annotate("", xy=(5.0, top), xytext=(5.0, top + gap),
                  arrowprops=dict(arrowstyle="-|>", color="#345", linewidth=1.0))
  _suptitle(fig, title or f"{s.model_name}: {s.total_params:,} parameters", 10)
  return _save(fig, path)
