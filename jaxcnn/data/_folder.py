"""A folder of your own images, read as Keras's ``image_dataset_from_directory`` reads it.

Layout: ``directory/<class>/<image>`` (files may sit in sub-folders of a class folder), or
``directory/<split>/<class>/<image>`` with ``split=`` naming the split folder. Images may have any
size and any of the formats in :data:`IMAGE_FORMATS`; each is converted to ``color_mode`` and
resized to ``image_size``.

Keras's semantics, kept exactly:
  * class names are the sorted sub-folder names; label ``i`` is ``class_names[i]``;
  * files are listed class by class, each class folder walked in sorted order;
  * ``validation_split`` shuffles that list with ``numpy.random.RandomState(seed).shuffle`` and
    keeps the last ``int(validation_split * n)`` files for ``subset='validation'``, the rest for
    ``'training'``: the two never overlap, and a folder of Keras's formats (jpg, jpeg, png, bmp,
    gif) splits into the same files as Keras's with the same seed;
  * resizing is PIL's ``img.resize(size, resample, box=crop_box)``, as ``keras.utils.load_img``:
    ``interpolation='bilinear'`` by default; ``crop_to_aspect_ratio=True`` first takes the
    largest centred window of the target aspect ratio (``crop_h = min(h, w * th // tw)``,
    ``crop_w = min(w, h * tw // th)``), so nothing is stretched; the default stretches. PIL's
    bilinear filter widens with the scale factor when it shrinks an image (it antialiases), where
    TensorFlow's ``tf.image.resize`` (Keras's tf.data route) samples 2x2 pixels.

Unlike Keras, a file that is not an image (by extension, or one that PIL cannot open) is skipped,
and all skipped files are reported in one warning naming the first few; hidden files (``.name``)
are ignored. A class folder without images is an error naming it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import json
import logging
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxcnn import _checks
from jaxcnn.data._info import DatasetNotFoundError, compute_mean_std

log = logging.getLogger(__name__)

IMAGE_FORMATS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
COLOR_MODES = {"rgb": ("RGB", 3), "grayscale": ("L", 1)}
# Keras's interpolation names -> PIL's filters (Keras's 'area' is PIL's box filter).
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3")
SUBSETS = ("training", "validation", "both")
STATS_IMAGES = 10_000  # normalisation statistics use at most this many training images
_CACHE_VERSION = "1"
_SHOWN = 3  # skipped files named in the warning


def _pil_filter(interpolation: str) -> int:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST,
          "bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX,
          "lanczos3": Image.Resampling.LANCZOS}[interpolation]


@dataclasses.dataclass(frozen=True)
class ImageSpec:
  """How every image becomes an array: ``[height, width, channels]`` uint8.

  ``size``: ``(height, width)``, or None to keep each image's own size (then all must agree).
  """
  size: tuple[int, int] | None = (256, 256)
  color_mode: str = "rgb"
  crop_to_aspect_ratio: bool = False
  interpolation: str = "bilinear"

  def __post_init__(self):
    if self.size is not None:
      object.__setattr__(self, "size", image_size_pair(self.size))
    _checks.choice(self.color_mode, "color_mode", tuple(COLOR_MODES))
    _checks.choice(self.interpolation, "interpolation", INTERPOLATIONS)
    _checks.boolean(self.crop_to_aspect_ratio, "crop_to_aspect_ratio")

  @property
  def channels(self) -> int:
    return COLOR_MODES[self.color_mode][1]

  @property
  def pil_mode(self) -> str:
    return COLOR_MODES[self.color_mode][0]

  def key(self) -> str:
    return f"{self.size}-{self.color_mode}-{self.crop_to_aspect_ratio}-{self.interpolation}"


def image_size_pair(size: Any, name: str = "image_size") -> tuple[int, int]:
  """``160`` -> ``(160, 160)``; ``(h, w)`` -> ``(h, w)``; both positive ints."""
  if _checks.is_int(size):
    size = (size, size)
  return _checks.int_tuple(size, name, n=2, low=1)


def crop_box(width: int, height: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
  """Keras's ``crop_to_aspect_ratio`` window ``(left, upper, right, lower)`` of a
  ``width x height`` image for a target ``size = (height, width)``: the largest centred window
  of the target's aspect ratio.

  >>> crop_box(400, 200, (100, 100))
  (100, 0, 300, 200)
  """
  th, tw = size
  crop_h = max(min(height, (width * th) // tw), 1)
  crop_w = max(min(width, (height * tw) // th), 1)
  top, left = (height - crop_h) // 2, (width - crop_w) // 2
  return left, top, left + crop_w, top + crop_h


def open_image(data: bytes | str, name: str):
  """A PIL image of ``data`` (bytes, or a path), or a ValueError naming ``name``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    if not isinstance(data, bytes):
      with open(data, "rb") as f:  # read whole: PIL keeps a multi-frame file (GIF) open
        data = f.read()
    img = Image.open(io.BytesIO(data))
    img.load()
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"cannot decode image file {name!r}: {type(e).__name__}: {e}") from None
  return img


def to_array(img, spec: ImageSpec, box: tuple[float, float, float, float] | None = None,
             size: tuple[int, int] | None = None) -> np.ndarray:
  """``img`` (PIL) converted to ``spec.color_mode`` and resized -> uint8 ``[H, W, C]``.

  ``box``: resize this window of the image instead (a random crop); else Keras's window
  (:func:`crop_box` with ``crop_to_aspect_ratio``, or the whole image). ``size``: the output
  ``(height, width)`` (default ``spec.size``).
  """
  if img.mode != spec.pil_mode:
    if img.mode == "P" and "transparency" in img.info:
      img = img.convert("RGBA")  # a palette's transparency needs RGBA first (PIL warns)
    img = img.convert(spec.pil_mode)
  size = size or spec.size
  if size is not None:
    if box is None and spec.crop_to_aspect_ratio:
      box = crop_box(img.width, img.height, size)
    if box is not None or (img.height, img.width) != tuple(size):
      img = img.resize((size[1], size[0]), _pil_filter(spec.interpolation), box=box)
  arr = np.asarray(img, dtype=np.uint8)
  return arr[..., None] if arr.ndim == 2 else arr


# -------------------------------------------------------------------------------- listing

@dataclasses.dataclass(frozen=True)
class FolderFiles:
  """Image files of a class-per-folder directory with their labels.

  Attributes:
    root: the folder holding the class folders.
    class_names: the sorted class-folder names.
    files: paths, class by class, each class folder walked in sorted order (Keras's order), or
      for a ``validation_split`` subset, the subset's files in the shuffled order.
    labels: ``int32 [N]``, indices into ``class_names``.
    skipped: files that are not readable images (left out).
  """
  root: str
  class_names: tuple[str, ...]
  files: tuple[str, ...]
  labels: np.ndarray
  skipped: tuple[str, ...] = ()

  def __len__(self) -> int:
    return len(self.files)

  def fingerprint(self) -> str:
    """A hash of every file's path, size and modification time (and label): what decoded
    copies and statistics depend on."""
    h = hashlib.sha1(_CACHE_VERSION.encode())
    for f, label in zip(self.files, self.labels.tolist()):
      st = os.stat(f)
      h.update(f"{f}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _readable(path: str) -> bool:
  """Whether PIL recognises the file's header (cheap: the pixels are not decoded)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as img:
      return img.width > 0 and img.height > 0
  except Exception:  # pylint: disable=broad-except
    return False


def _walk(folder: str) -> list[str]:
  """Every non-hidden file under ``folder``, walked in sorted order (as Keras)."""
  out = []
  for root, dirs, files in sorted(os.walk(folder), key=lambda t: t[0]):
    dirs[:] = [d for d in dirs if not d.startswith(".")]
    out.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
  return out


def _class_root(directory: str, split: str | None) -> str:
  if not os.path.exists(directory):
    raise DatasetNotFoundError(f"image folder `directory` (={directory!r}) does not exist")
  if not os.path.isdir(directory):
    raise ValueError(f"image folder `directory` (={directory!r}) is not a directory; expected "
                     "`<class>/<image>` folders inside it")
  if split is not None and os.path.isdir(os.path.join(directory, split)):
    return os.path.join(directory, split)
  return directory


_scans: dict[tuple, FolderFiles] = {}


def scan_folder(directory: str | os.PathLike, *, split: str | None = None,
                verify: bool = True, num_threads: int | None = None) -> FolderFiles:
  """Lists the images of ``directory/<class>/...`` (or ``directory/<split>/<class>/...``).

  Args:
    directory: the folder of class folders, or of split folders when ``split`` is given.
    split: a split folder's name (``'train'``); used when ``directory/<split>`` exists, else
      ``directory`` itself holds the class folders.
    verify: open each file's header with PIL, skipping files it cannot read (else only the
      extension decides).

  Raises:
    DatasetNotFoundError: ``directory`` does not exist or holds no class folder.
    ValueError: a class folder without images (named), or images directly in ``directory``
      (point at its parent).

  Example:
    >>> files = scan_folder('photos')  # doctest: +SKIP
    >>> files.class_names, len(files)  # doctest: +SKIP
    (('cat', 'dog'), 1200)
  """
  directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
  root = _class_root(directory, split)
  # Remembered while the folder and its class folders keep their modification times: a run
  # lists its folder for its statistics, train and eval loaders once.
  try:
    key = (root, verify, os.stat(root).st_mtime_ns,
           tuple((e.name, e.stat().st_mtime_ns) for e in os.scandir(root) if e.is_dir()))
  except OSError:
    key = None
  if key is not None and key in _scans:
    return _scans[key]
  files = _scan(root, verify, num_threads)
  if key is not None:
    _scans[key] = files
  return files


def _scan(root: str, verify: bool, num_threads: int | None) -> FolderFiles:
  entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
  class_dirs = [e for e in entries if os.path.isdir(os.path.join(root, e))]
  loose = [e for e in entries if e.lower().endswith(IMAGE_FORMATS)
           and os.path.isfile(os.path.join(root, e))]
  if not class_dirs:
    if loose:
      raise ValueError(f"image folder {root!r} holds images ({loose[0]!r}, ...) but no class "
                       "folders; expected `<class>/<image>`: point at the folder above the "
                       "class folders")
    raise DatasetNotFoundError(f"image folder {root!r} holds no class folders; expected "
                               "`<class>/<image>` (or `<split>/<class>/<image>` with a split)")
  per_class: list[list[str]] = []
  skipped: list[str] = []
  candidates: list[str] = []
  for cls in class_dirs:
    files = _walk(os.path.join(root, cls))
    skipped.extend(f for f in files if not f.lower().endswith(IMAGE_FORMATS))
    per_class.append([f for f in files if f.lower().endswith(IMAGE_FORMATS)])
    candidates.extend(per_class[-1])
  if verify and candidates:
    threads = num_threads or min(16, 2 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
      ok = dict(zip(candidates, pool.map(_readable, candidates, chunksize=64)))
    skipped.extend(f for f in candidates if not ok[f])
    per_class = [[f for f in files if ok[f]] for files in per_class]
  for cls, files in zip(class_dirs, per_class):
    if not files:
      raise ValueError(f"class folder {os.path.join(root, cls)!r} holds no readable image "
                       f"({', '.join(IMAGE_FORMATS)}); add images or remove the folder")
  if skipped:
    skipped.sort()
    shown = ", ".join(repr(os.path.relpath(f, root)) for f in skipped[:_SHOWN])
    more = f" and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
    log.warning("skipped %d file(s) in %s that are not readable images: %s%s", len(skipped),
                root, shown, more)
  files = tuple(f for group in per_class for f in group)
  labels = np.concatenate([np.full(len(g), i, np.int32) for i, g in enumerate(per_class)])
  return FolderFiles(root, tuple(class_dirs), files, labels, tuple(skipped))


def check_split_args(validation_split: Any, subset: Any, seed: Any) -> tuple[float | None,
                                                                            str | None]:
  """Keras's rules: both or neither of ``validation_split`` and ``subset``; a seed with them."""
  if validation_split in (None, 0, 0.0):
    if subset is not None:
      raise ValueError(f"`subset` (={subset!r}) needs `validation_split` (a fraction in (0, 1))")
    return None, None
  validation_split = _checks.number(validation_split, "validation_split", 0.0, 1.0,
                                    low_closed=False, high_closed=False)
  if subset is None:
    raise ValueError(f"`validation_split` (={validation_split}) needs `subset` "
                     f"({', '.join(map(repr, SUBSETS))})")
  _checks.choice(subset, "subset", SUBSETS)
  if seed is None:
    raise ValueError(f"`validation_split` (={validation_split}) needs a `seed`, so that the "
                     "training and validation subsets are drawn from the same shuffle and "
                     "never overlap")
  return validation_split, subset


def split_files(files: FolderFiles, validation_split: float, subset: str,
                seed: int) -> FolderFiles:
  """The ``'training'`` or ``'validation'`` subset, as Keras draws it (module docstring).

  >>> import numpy as np
  >>> f = FolderFiles('r', ('a', 'b'), tuple('0123456789'), np.arange(10) % 2)
  >>> t, v = (split_files(f, 0.2, s, seed=1) for s in ('training', 'validation'))
  >>> len(t), len(v), sorted(set(t.files) | set(v.files)) == list(f.files)
  (8, 2, True)
  """
  n = len(files)
  num_val = int(validation_split * n)
  if num_val == 0 or num_val == n:
    raise ValueError(f"`validation_split` (={validation_split}) of {n} images leaves "
                     f"{'no validation' if num_val == 0 else 'no training'} image")
  paths = np.array(files.files, dtype=object)
  labels = files.labels.copy()
  np.random.RandomState(seed).shuffle(paths)
  np.random.RandomState(seed).shuffle(labels)
  keep = slice(None, n - num_val) if subset == "training" else slice(n - num_val, None)
  return dataclasses.replace(files, files=tuple(paths[keep].tolist()), labels=labels[keep])


# -------------------------------------------------------------------------------- decoding

def _threads(num_threads: int | None) -> int:
  return num_threads or min(16, 2 * (os.cpu_count() or 1))


def decode_files(paths: Sequence[str], spec: ImageSpec, *,
                 num_threads: int | None = None) -> np.ndarray:
  """Decodes and resizes ``paths`` on a thread pool -> uint8 ``[N, H, W, C]``.

  With ``spec.size=None`` every image must have the first one's size (named otherwise).
  """
  if not paths:
    raise ValueError("no image files to decode")
  first = to_array(open_image(paths[0], paths[0]), spec)
  out = np.empty((len(paths),) + first.shape, np.uint8)
  out[0] = first

  def work(i: int) -> None:
    arr = to_array(open_image(paths[i], paths[i]), spec)
    if arr.shape != first.shape:
      raise ValueError(f"image file {paths[i]!r} has shape {arr.shape}, but {paths[0]!r} has "
                       f"{first.shape}; set `image_size` to resize them all")
    out[i] = arr

  with concurrent.futures.ThreadPoolExecutor(_threads(num_threads)) as pool:
    for _ in pool.map(work, range(1, len(paths)), chunksize=32):
      pass
  return out


def cache_dir_or_default(cache_dir: str | os.PathLike | None) -> pathlib.Path:
  from jaxcnn.data._sources import default_cache_dir  # pylint: disable=g-import-not-at-top
  return pathlib.Path(cache_dir or default_cache_dir()).expanduser()


def read_files(files: FolderFiles, spec: ImageSpec, *, cache: bool = True,
               cache_dir: str | os.PathLike | None = None,
               num_threads: int | None = None) -> np.ndarray:
  """:func:`decode_files` of ``files``, kept as an ``.npz`` under ``cache_dir/folders`` keyed
  by :meth:`FolderFiles.fingerprint` and ``spec`` (an unwritable cache warns once and runs)."""
  if not cache:
    return decode_files(files.files, spec, num_threads=num_threads)
  from jaxcnn.data._sources import _save_cache  # pylint: disable=g-import-not-at-top
  key = hashlib.sha1(f"{files.fingerprint()}|{spec.key()}".encode()).hexdigest()[:16]
  stem = os.path.basename(os.path.normpath(files.root)) or "root"
  path = cache_dir_or_default(cache_dir) / "folders" / f"{stem}-{key}.npz"
  if path.exists():
    try:
      with np.load(path) as z:
        return z["image"]
    except Exception:  # pylint: disable=broad-except
      pass  # a damaged cache is rebuilt
  images = decode_files(files.files, spec, num_threads=num_threads)
  _save_cache(path, image=images)
  return images


def cached_stats(key: str, compute: Callable[[], tuple[tuple[float, ...], tuple[float, ...]]],
                 cache_dir: str | os.PathLike | None = None
                 ) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """``compute()`` once per ``key``, kept in ``cache_dir/stats/<key>.json``."""
  path = cache_dir_or_default(cache_dir) / "stats" / f"{key}.json"
  try:
    saved = json.loads(path.read_text())
    return tuple(saved["mean"]), tuple(saved["std"])
  except (OSError, ValueError, KeyError):
    pass
  mean, std = compute()
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"mean": list(mean), "std": list(std)}))
    os.replace(tmp, path)
  except OSError as e:
    log.warning("cannot write normalisation statistics to %s (%s)", path, e)
  return mean, std


def sample_indices(n: int, limit: int = STATS_IMAGES) -> np.ndarray:
  """At most ``limit`` evenly spaced indices of ``range(n)`` (all of them when ``n <= limit``)."""
  if n <= limit:
    return np.arange(n)
  return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def folder_stats(files: FolderFiles, spec: ImageSpec, *,
                 cache_dir: str | os.PathLike | None = None,
                 images: np.ndarray | None = None, num_threads: int | None = None
                 ) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and std (in [0, 1] units) of the training files, resized as ``spec``.

  At most :data:`STATS_IMAGES` evenly spaced files are read (all of a smaller folder; the
  decoded ``images`` of all files when given); the result is cached under
  ``cache_dir/stats``.
  """
  key = "folder-" + hashlib.sha1(f"{files.fingerprint()}|{spec.key()}".encode()).hexdigest()[:16]

  def compute():
    idx = sample_indices(len(files))
    if images is not None and len(images) == len(files):
      return compute_mean_std(images[idx])
    return chunked_mean_std(
        lambda chunk: decode_files([files.files[i] for i in chunk], spec,
                                   num_threads=num_threads), idx)

  return cached_stats(key, compute, cache_dir)


def chunked_mean_std(decode: Callable[[np.ndarray], np.ndarray], indices: np.ndarray,
                     chunk: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """:func:`jaxcnn.data.compute_mean_std` of ``decode(indices)``, ``chunk`` images at a time,
  so the memory it needs does not grow with the number of images."""
  total = total_sq = None
  n = 0
  for lo in range(0, len(indices), chunk):
    x = decode(indices[lo:lo + chunk]).astype(np.float64)
    x = x.reshape(-1, x.shape[-1]) / 255.0
    s, sq = x.sum(0), (x * x).sum(0)
    total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
    n += x.shape[0]
  mean = total / n
  std = np.sqrt(np.maximum(total_sq / n - mean * mean, 0.0))
  return tuple(float(m) for m in mean), tuple(float(v) for v in std)


def interleave(files: FolderFiles) -> FolderFiles:
  """``files`` with the classes interleaved, each file placed by its rank within its class
  (``(rank + 0.5) / class_size``, ties by label): every contiguous slice (``train[:80%]``)
  then holds the classes in their overall proportions, as the folder copies of
  :func:`jaxcnn.data.list_image_folder` do."""
  counts = np.bincount(files.labels, minlength=len(files.class_names))
  rank = np.zeros(len(files), np.int64)
  seen = np.zeros(len(files.class_names), np.int64)
  for i, label in enumerate(files.labels.tolist()):
    rank[i] = seen[label]
    seen[label] += 1
  key = (2 * rank + 1) / (2 * counts[files.labels])
  order = np.lexsort((files.labels, key))
  return dataclasses.replace(files, files=tuple(files.files[i] for i in order),
                             labels=files.labels[order])
