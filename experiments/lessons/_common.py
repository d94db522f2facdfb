"""Glue shared by the lesson scripts, and nothing general: the photo, figure saving, the gallery,
the trained-checkpoint cache and the tiny synthetic data that ``--quick`` runs on.

Anything a learner or researcher would reuse outside the lessons (feature maps, attributions,
image grids) belongs in :mod:`jaxcnn.inspect` / :mod:`jaxcnn.plots`; the small drawing helpers
here only lay out what a lesson prints, until those land.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Caption = tuple[str, str]


# ------------------------------------------------------------------------------------------------
# The photo

def load_photo(size: int | None = None) -> np.ndarray:
  """Grace Hopper, the sample photo bundled with matplotlib (no download), as grayscale uint8.

  Returns ``[H, W]`` uint8 (512 x 600 as shipped; ``size`` resizes the shorter side to ``size``
  pixels, keeping the aspect ratio, to keep quick runs fast).
  """
  from matplotlib import cbook  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
  img = Image.open(path).convert("L")
  if size is not None:
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
  return np.asarray(img, np.uint8)


def load_photo_rgb(height: int, width: int) -> np.ndarray:
  """The same photo in colour, cropped about its centre to the aspect ratio ``width / height``
  and resized (bilinear) to exactly ``[height, width, 3]`` uint8: a stand-in for a notebook's
  own photo whose shapes the lesson must reproduce."""
  from matplotlib import cbook  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  img = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
  w, h = img.size
  if w * height > h * width:  # too wide: keep the full height, crop the sides
    cw, ch = round(h * width / height), h
  else:                       # too tall: keep the full width, crop top and bottom
    cw, ch = w, round(w * height / width)
  left, top = (w - cw) // 2, (h - ch) // 2
  img = img.crop((left, top, left + cw, top + ch)).resize((width, height), Image.BILINEAR)
  return np.asarray(img, np.uint8)


# ------------------------------------------------------------------------------------------------
# Figures and the gallery

def new_figure(width: float, height: float) -> Figure:
  """A pyplot-free figure (Agg canvas) with constrained layout."""
  fig = Figure(figsize=(width, height), layout="constrained")
  FigureCanvasAgg(fig)
  return fig


def save(fig: Figure, out: pathlib.Path, name: str, caption: str,
         figures: list[Caption], *, dpi: int = 100) -> None:
  """Writes ``fig`` to ``out/name`` and records ``(name, caption)`` for the gallery."""
  out.mkdir(parents=True, exist_ok=True)
  FigureCanvasAgg(fig)
  fig.savefig(out / name, dpi=dpi)
  figures.append((name, caption))


def write_gallery(out: pathlib.Path, title: str, figures: Sequence[Caption],
                  results: Mapping[str, Any], *, header: str = "") -> pathlib.Path:
  """``out/index.md``: the lesson's title, its numbers as a table and each figure with a caption
  saying what to look at."""
  lines = [f"# {title}", ""]
  if header:
    lines += [header, ""]
  if results:
    lines += ["| result | value |", "| --- | ---: |"]
    for k, v in results.items():
      lines.append(f"| `{k}` | {_fmt(v)} |")
    lines.append("")
  for name, caption in figures:
    lines += [f"## {name}", "", caption, "", f"![{name}]({name})", ""]
  path = out / "index.md"
  path.write_text("\n".join(lines))
  return path


def _fmt(v: Any) -> str:
  if isinstance(v, bool):
    return str(v)
  if isinstance(v, int):
    return f"{v:,}"
  if isinstance(v, float):
    return f"{v:.6g}"
  return str(v)


def show_array(name: str, a: Any) -> str:
  """``name = [..]`` with integers printed as integers (what numpy's print shows)."""
  a = np.asarray(a)
  if a.dtype.kind == "f" and np.all(a == np.round(a)):
    a = a.astype(np.int64)
  body = np.array2string(a, separator=" ")
  return f"{name} = {body}" if "\n" not in body else f"{name} =\n{body}"


def image_panel(ax, img: np.ndarray, title: str, *, cmap: str = "gray",
                diverging: bool = False, colorbar_fig: Figure | None = None,
                vmin: float | None = None, vmax: float | None = None) -> None:
  """One image on ``ax`` with a title; ``diverging`` centres a red-blue map on 0, otherwise
  ``vmin``/``vmax`` fix the colour scale (default: the image's own range)."""
  img = np.asarray(img, np.float32)
  if diverging:
    lim = float(np.max(np.abs(img))) or 1.0
    im = ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
  else:
    im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
  ax.set_title(title, fontsize=9)
  ax.set_xticks([])
  ax.set_yticks([])
  if colorbar_fig is not None:
    colorbar_fig.colorbar(im, ax=ax, shrink=0.8)


def annotate(ax, img: np.ndarray, fmt: str = "{:.3g}", *, skip_zero: bool = False,
             fontsize: int = 9) -> None:
  """Writes each cell's value on a :func:`image_panel`, white on the dark cells and black on
  the light ones (read from the colours actually drawn), so every number stays readable."""
  img = np.asarray(img, np.float32)
  drawn = ax.get_images()[-1]
  rgba = drawn.cmap(drawn.norm(img))
  luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
  for (i, j), v in np.ndenumerate(img):
    if skip_zero and v == 0:
      continue
    ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize,
            color="white" if luminance[i, j] < 0.5 else "black")


# ------------------------------------------------------------------------------------------------
# Trained checkpoints, cached by config

def cache_root() -> pathlib.Path:
  """``$JAXCNN_LESSONS_CACHE`` or ``~/.cache/jaxcnn/lessons``."""
  env = os.environ.get("JAXCNN_LESSONS_CACHE")
  return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "jaxcnn" / "lessons"


def config_key(config: Mapping[str, Any]) -> str:
  """A short stable hash of a JSON-able config (the cache key of a trained net)."""
  blob = json.dumps(config, sort_keys=True, default=str).encode()
  return hashlib.sha256(blob).hexdigest()[:16]


def cached_train(config: Mapping[str, Any], train_fn, *, cache: pathlib.Path | None = None):
  """Trains once per config: returns ``(params, history)`` from the cache, or calls
  ``train_fn() -> (params, history)`` and stores its result under ``cache/<key>.npz``.

  ``params`` is a nested dict of arrays; ``history`` a dict of per-epoch lists of floats.
  """
  import flax  # pylint: disable=g-import-not-at-top

  cache = cache_root() if cache is None else cache
  path = cache / f"{config.get('name', 'net')}-{config_key(config)}.npz"
  if path.exists():
    with np.load(path, allow_pickle=False) as f:
      flat = {k[2:]: f[k] for k in f.files if k.startswith("p/")}
      history = json.loads(str(f["history"]))
    return flax.traverse_util.unflatten_dict(flat, sep="/"), history, True
  params, history = train_fn()
  flat = flax.traverse_util.flatten_dict(params, sep="/")
  cache.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.stem + ".tmp.npz")
  np.savez(tmp, history=json.dumps(history), config=json.dumps(dict(config), default=str),
           **{f"p/{k}": np.asarray(v) for k, v in flat.items()})
  os.replace(tmp, path)
  return params, history, False


# ------------------------------------------------------------------------------------------------
# Data: the real copies, or tiny synthetic stand-ins for --quick

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
# The labels of the first 25 images of the official CIFAR-10 training set (data_batch_1, the
# order of Keras' `datasets.cifar10.load_data()`): the notebooks' train_images[0..24].
CIFAR10_FIRST_LABELS = (6, 9, 9, 4, 1, 1, 2, 7, 8, 3, 4, 7, 7, 2, 9, 9, 9, 3, 2, 6, 4, 3, 6, 6, 2)


def official_order(n: int, *, quick: bool) -> np.ndarray:
  """Where the official training set's first ``n`` images (``n <= 25``) sit in a split loaded
  from ``train[...]`` starting at 0: ``int [n]`` indices.

  The JPEG copy keeps each class's images in their official order (``<class>/NNNN.jpg``, NNNN
  the rank within the class) and :mod:`jaxcnn.data` interleaves its 10 balanced classes round
  robin (image ``k`` has label ``k % 10``), so official image ``i`` (label ``y``, the ``r``-th
  of its class so far) is at ``10 r + y``. ``quick`` (synthetic data): the first ``n``.
  """
  if not 0 < n <= len(CIFAR10_FIRST_LABELS):
    raise ValueError(f"`n` (={n}) must be in [1, {len(CIFAR10_FIRST_LABELS)}]")
  if quick:
    return np.arange(n)
  seen: dict[int, int] = {}
  out = []
  for y in CIFAR10_FIRST_LABELS[:n]:
    out.append(10 * seen.get(y, 0) + y)
    seen[y] = seen.get(y, 0) + 1
  return np.asarray(out)


def load_cifar01(split: str, *, image_folder: str | None, quick: bool, quick_size: int = 512,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """A CIFAR-10 split scaled as the Keras notebooks scale it, ``images / 255.0``:
  ``(float32 [N, 32, 32, 3] in [0, 1], int32 [N])`` (see :func:`load_raw` for ``quick``)."""
  images, labels = load_raw("cifar10", split, image_folder=image_folder, quick=quick,
                            quick_size=quick_size, seed=seed)
  return (images.astype(np.float32) / 255.0), labels


def synthetic_images(n: int, shape: tuple[int, int, int], num_classes: int = 10,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Learnable stand-in data for quick runs: class ``c`` is a bright square at a position and
  colour set by ``c`` on noise. Returns ``(uint8 [n, *shape], int32 [n])``."""
  rng = np.random.default_rng(seed)
  h, w, c = shape
  labels = (np.arange(n) % num_classes).astype(np.int32)
  rng.shuffle(labels)
  images = rng.integers(0, 96, size=(n, h, w, c)).astype(np.float32)
  s = max(2, h // 4)
  for i, y in enumerate(labels):
    r, q = divmod(int(y), 4)
    top, left = (r * (h - s)) // 3, (q * (w - s)) // 3
    colour = 255 * np.array([(y + 1) % 2, (y // 2) % 2, 1][:c] if c == 3 else [1.0])
    images[i, top:top + s, left:left + s, :] = 0.5 * images[i, top:top + s, left:left + s, :] + \
        0.7 * colour
  return np.clip(images, 0, 255).astype(np.uint8), labels


def normalise(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
  """uint8 ``[N, H, W, C]`` -> float32 ``(x / 255 - mean) / std`` (numpy, as jaxcnn.data does)."""
  x = images.astype(np.float32) / 255.0
  return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def load_raw(name: str, split: str, *, image_folder: str | None, quick: bool,
             quick_size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """``(uint8 [N, H, W, C], int32 [N])`` of a split, through :mod:`jaxcnn.data`.

  ``quick``: ``quick_size`` synthetic images of the dataset's shape instead (no file read), a
  different draw per split (the training split ``train[:...]`` keeps ``seed``) so validation
  and test are not the training set.
  """
  from jaxcnn import data  # pylint: disable=g-import-not-at-top

  info = data.get_info(name)
  if quick:
    offset = 0 if split.startswith("train[:") else 1 + zlib.crc32(split.encode()) % 997
    return synthetic_images(quick_size, info.image_shape, info.num_classes, seed=seed + offset)
  arrays = data.load_arrays(name, split, image_folder=image_folder)
  return np.asarray(arrays["image"]), np.asarray(arrays["label"]).astype(np.int32)


def load_split(name: str, split: str, *, image_folder: str | None, quick: bool,
               quick_size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Normalised ``(float32 [N, H, W, C], int32 [N])`` of a split (see :func:`load_raw`)."""
  from jaxcnn import data  # pylint: disable=g-import-not-at-top

  info = data.get_info(name)
  images, labels = load_raw(name, split, image_folder=image_folder, quick=quick,
                            quick_size=quick_size, seed=seed)
  return normalise(images, info.mean, info.std), labels


def denormalise(x: np.ndarray, name: str) -> np.ndarray:
  """Inverse of :func:`load_split`'s normalisation, clipped to [0, 1] for drawing."""
  from jaxcnn import data  # pylint: disable=g-import-not-at-top

  info = data.get_info(name)
  img = np.asarray(x) * np.asarray(info.std, np.float32) + np.asarray(info.mean, np.float32)
  return np.clip(img, 0.0, 1.0)


def train(model, train_xy, val_xy, *, epochs: int, batch_size: int, seed: int,
          learning_rate: float = 1e-3, patience: int = 0, verbose: int = 0):
  """``jaxcnn.train.fit`` with the course's Adam; returns its ``History`` (``.state`` trained)."""
  from jaxcnn.train import fit  # pylint: disable=g-import-not-at-top

  return fit(model, train_xy, epochs=epochs, batch_size=batch_size, validation_data=val_xy,
             learning_rate=learning_rate, patience=patience, seed=seed, verbose=verbose)


def affine(images: np.ndarray, *, angle: float = 0.0, scale: float = 1.0, dy: float = 0.0,
           dx: float = 0.0, fill: float = 0.0) -> np.ndarray:
  """Rotates (degrees, counter-clockwise), scales and shifts (pixels) every image about its
  centre, bilinearly, filling uncovered pixels with ``fill``.

  ``images``: ``[N, H, W, C]`` floats (e.g. in [0, 1]); returns the same shape, float32.
  A small helper for the invariance measurements of lessons 7 and 8 (``jaxcnn.data.augment``
  has random, integer-shift augmentations only).
  """
  x = np.asarray(images, np.float32)
  _, h, w, _ = x.shape
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  t = -np.deg2rad(angle)  # rows grow downwards: a visual counter-clockwise turn
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  # Output pixel (y, x) samples the input at R(-t) (p - centre - shift) / scale + centre.
  py, px = yy - cy - dy, xx - cx - dx
  sy = (np.cos(t) * py - np.sin(t) * px) / scale + cy
  sx = (np.sin(t) * py + np.cos(t) * px) / scale + cx
  return np.asarray(_warp()(x, np.float32(sy), np.float32(sx), np.float32(fill)))


@functools.cache
def _warp():
  """``(images [N, H, W, C], sy [H, W], sx [H, W], fill) -> images`` bilinear, jitted once."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.scipy import ndimage  # pylint: disable=g-import-not-at-top

  def one(img, sy, sx, fill):  # [H, W]
    # cval must be static: warp (img - fill) with 0 outside, then add fill back.
    return ndimage.map_coordinates(img - fill, [sy, sx], order=1, mode="constant") + fill

  per_image = jax.vmap(one, in_axes=(2, None, None, None), out_axes=2)
  return jax.jit(jax.vmap(per_image, in_axes=(0, None, None, None)))


def logits(model, params, x: np.ndarray, *, batch_size: int = 500) -> np.ndarray:
  """``model.apply({'params': params}, x)`` in eval mode, ``batch_size`` images at a time
  (one compiled function; the last chunk padded): ``float32 [N, K]``."""
  import jax  # pylint: disable=g-import-not-at-top

  apply = _apply_fn(model)
  x = np.asarray(x, np.float32)
  out = []
  for i in range(0, len(x), batch_size):
    chunk = x[i:i + batch_size]
    pad = batch_size - len(chunk) if len(x) > batch_size else 0
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
    out.append(np.asarray(jax.device_get(apply(params, chunk)))[:batch_size - pad])
  return np.concatenate(out)


_APPLY: dict = {}


def _apply_fn(model):
  import jax  # pylint: disable=g-import-not-at-top

  if id(model) not in _APPLY:  # keyed by identity; the model is kept alive beside its fn
    _APPLY[id(model)] = (model, jax.jit(lambda p, x: model.apply({"params": p}, x)))
  return _APPLY[id(model)][1]


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """Moves ``[N, H, W, C]`` images by whole pixels (down ``dy``, right ``dx``; negative: up /
  left), filling the uncovered border with 0 (black, MNIST's background)."""
  out = np.zeros_like(images)
  h, w = images.shape[1:3]
  src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
  src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
  out[:, dst_y, dst_x] = images[:, src_y, src_x]
  return out


def train_cached(name: str, model_name: str, model, train_xy, val_xy, *, epochs: int,
                 batch_size: int, seed: int, quick: bool, image_folder: str | None,
                 learning_rate: float = 1e-3, augment=None, extra: Mapping[str, Any] = ()):
  """Trains ``model`` with :func:`train` once per config (see :func:`cached_train`) and returns
  ``(params, history, was_cached)``. ``train_xy`` may be a loader (e.g. an augmenting
  ``jaxcnn.data.DeviceLoader``); ``augment`` and ``extra`` only enter the cache key."""
  import jax  # pylint: disable=g-import-not-at-top

  cfg = {"name": name, "model": model_name, "epochs": epochs, "batch_size": batch_size,
         "learning_rate": learning_rate, "seed": seed, "quick": quick, "augment": augment,
         "data": "synthetic" if quick else str(image_folder or "tfds"), **dict(extra)}

  def train_fn():
    h = train(model, train_xy, val_xy, epochs=epochs, batch_size=batch_size, seed=seed,
              learning_rate=learning_rate, verbose=0 if quick else 1)
    return jax.device_get(h.state.params), {k: [float(v) for v in vs] for k, vs in h.items()}

  return cached_train(cfg, train_fn)


def thumbnail(src: str | os.PathLike, dest: str | os.PathLike, *, width: int = 240,
              max_bytes: int = 30_000) -> pathlib.Path:
  """A small PNG of figure ``src`` for the README's Lessons table: ``width`` pixels wide,
  palette-quantised, shrunk further until it is under ``max_bytes``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  dest = pathlib.Path(dest)
  dest.parent.mkdir(parents=True, exist_ok=True)
  img = Image.open(src).convert("RGB")
  while True:
    h = max(1, round(img.height * width / img.width))
    small = img.resize((width, h), Image.LANCZOS).quantize(colors=128)
    small.save(dest, optimize=True)
    if dest.stat().st_size <= max_bytes or width <= 80:
      return dest
    width = int(width * 0.85)


def cifar_config(name: str, model: str, epochs: int, quick: bool, seed: int,
                 image_folder: str | None) -> dict:
  """The cache key of a course CIFAR-10 net trained with Adam 1e-3, batch 32, on ``x / 255``
  (train[:45000], validation train[45000:]; two epochs on synthetic images with ``quick``)."""
  return {"name": name, "model": model, "epochs": 2 if quick else epochs, "batch_size": 32,
          "learning_rate": 1e-3, "seed": seed, "quick": quick, "inputs": "x / 255",
          "train_split": "train[:45000]", "val_split": "train[45000:]",
          "data": "synthetic" if quick else str(image_folder or "tfds")}


def trained_cifar_net(cfg: Mapping[str, Any], quick: bool, seed: int,
                      image_folder: str | None):
  """Trains (or loads from the cache) the net of :func:`cifar_config` ``cfg``; returns
  ``(model, params, history, (x_val, y_val), (x_train, y_train), was_cached)``, images float32
  in [0, 1], the net's input."""
  from jaxcnn.models import get_model  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  train_xy = load_cifar01(cfg["train_split"], image_folder=image_folder, quick=quick, seed=seed)
  val_xy = load_cifar01(cfg["val_split"], image_folder=image_folder, quick=quick,
                        quick_size=256, seed=seed)
  model = get_model(cfg["model"])

  def train_fn():
    h = train(model, train_xy, val_xy, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
              seed=seed, learning_rate=cfg["learning_rate"], verbose=0 if quick else 1)
    return jax.device_get(h.state.params), {k: [float(v) for v in vs] for k, vs in h.items()}

  params, history, cached = cached_train(cfg, train_fn)
  return model, params, history, val_xy, train_xy, cached
