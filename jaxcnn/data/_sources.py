"""Where the pixels come from: tfds (tf.data) or a class-per-folder copy (directory or tarball).

All readers return the same thing: ``{'image': uint8 [N, H, W, C], 'label': int32 [N]}``.
TensorFlow is imported lazily, only by the tfds route, and is hidden from every GPU/TPU first so
that JAX keeps the accelerators.
"""

from __future__ import annotations

import bz2
import concurrent.futures
import dataclasses
import gzip
import hashlib
import io
import logging
import lzma
import os
import pathlib
import tarfile
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxcnn import _checks
from jaxcnn._errors import brief
from jaxcnn.data._info import DatasetInfo, DatasetNotFoundError, get_info
from jaxcnn.data._split import parse_split, resolve_split, shard_range

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_CACHE_VERSION = "2"  # 2: keyed by every file's size and mtime
SOURCES = ("auto", "tfds", "download", "folder")

log = logging.getLogger(__name__)

# Kept short: it ends many one-line errors that already name a path (the sweep's limit is 400
# characters a line). The README's "no internet" section has the long version.
_LOCAL_COPY_HINT = (
    "For a local copy set `image_folder` to a `root/<split>/<class>/<image>` folder or tarball, "
    "or `data_dir` to a prepared tfds directory.")


def default_cache_dir() -> pathlib.Path:
  """``$JAXCNN_CACHE_DIR``, else ``~/.cache/jaxcnn``: where decoded folder copies are cached."""
  return pathlib.Path(os.environ.get("JAXCNN_CACHE_DIR", "~/.cache/jaxcnn")).expanduser()


def resolve_process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  """Fills in ``jax.process_index()`` / ``jax.process_count()`` for the Nones."""
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  return int(process_index), int(process_count)


# ---------------------------------------------------------------------------------------------
# TensorFlow / tfds
# ---------------------------------------------------------------------------------------------

TF_INSTALL_HINT = "pip install 'jaxcnn[tf]'"


class TensorFlowMissingError(ImportError):
  """A route that needs TensorFlow (tfds, tf.data) was asked for where it is not installed."""


def import_tf():
  """Imports TensorFlow with every GPU and TPU hidden from it (JAX owns the accelerators).

  Raises:
    TensorFlowMissingError: TensorFlow is not installed (one line: how to install it, and the
      TensorFlow-free sources).
  """
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise TensorFlowMissingError(
        f"the tfds/tf.data route needs TensorFlow: `{TF_INSTALL_HINT}` (the CPU build, which "
        "cannot take the TPU/GPU from JAX). Or skip TensorFlow: `source='download'` "
        "(`--config.data.source=download`) fetches the official archives. " + _LOCAL_COPY_HINT
    ) from None
  for kind in ("GPU", "TPU"):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError):  # already initialised, or no such device type
      pass
  return tf


def import_tfds():
  """``tensorflow_datasets``, after :func:`import_tf` (tfds' loading needs TensorFlow)."""
  import_tf()
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise TensorFlowMissingError(
        f"the tfds route needs tensorflow-datasets: `{TF_INSTALL_HINT}`, or "
        "`source='download'` (no TensorFlow)") from None
  return tfds


def has_tensorflow() -> bool:
  """Whether TensorFlow and tfds can be imported (without importing them)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  for module in ("tensorflow", "tensorflow_datasets"):
    if module in sys.modules:
      if sys.modules[module] is None:  # import blocked (as the TF-free tests do)
        return False
      continue
    try:
      if importlib.util.find_spec(module) is None:
        return False
    except (ImportError, ValueError):
      return False
  return True


# Where tfds downloads each dataset from: probed (one TCP connection) before tfds.load may
# download, because tfds retries an unreachable host for minutes before it gives up.
_TFDS_HOSTS = {"cifar10": "www.cs.toronto.edu", "mnist": "storage.googleapis.com"}


def _tfds_is_mocked(tfds) -> bool:
  """Inside ``tfds.testing.mock_data`` nothing is downloaded, so there is nothing to probe."""
  prepare = tfds.core.DatasetBuilder.download_and_prepare
  return getattr(prepare, "__module__", "").startswith("tensorflow_datasets.testing")


def check_online(host: str, *, timeout: float = 10.0) -> None:
  """Raises ``OSError`` unless a TCP connection to ``host:443`` opens within ``timeout``."""
  import socket  # pylint: disable=g-import-not-at-top
  with socket.create_connection((host, 443), timeout=timeout):
    pass


def tfds_dataset(name: str, split: str, *, data_dir: str | None = None, download: bool = True,
                 process_index: int | None = None, process_count: int | None = None):
  """``tfds.load`` of this process's shard, unshuffled; returns ``(tf.data.Dataset, num_examples)``.

  The dataset yields single examples ``{'image': uint8 [H, W, C], 'label': int32 []}``.
  """
  get_info(name)
  parse_split(split)  # a clear ValueError before tfds's own
  process_index, process_count = resolve_process(process_index, process_count)
  tf = import_tf()
  tfds = import_tfds()
  if process_count > 1:
    # Equal shards: every process must run the same number of steps (see shard_range).
    split = tfds.split_for_jax_process(split, process_index=process_index,
                                       process_count=process_count, drop_remainder=True)
  if data_dir is not None:
    data_dir = os.path.expanduser(os.fspath(data_dir))
    if not os.path.isdir(data_dir):
      # tfds would create the (perhaps mistyped) tree and then try to download into it.
      raise DatasetNotFoundError(
          f"cannot load {name!r}: `data_dir` (={data_dir!r}) does not exist; it must be a tfds "
          f"data directory (create it first to let tfds download into it). {_LOCAL_COPY_HINT}")
  tried = f"tfds.load({name!r}, data_dir={data_dir!r}, download={download})"
  if download and not _tfds_is_mocked(tfds) and not tfds.builder(
      name, data_dir=data_dir).is_prepared():
    host = _TFDS_HOSTS.get(name)
    try:
      if host:
        check_online(host)
    except OSError as e:
      # Fail in seconds: tfds itself retries for about 3.5 minutes before giving up.
      raise DatasetNotFoundError(
          f"dataset {name!r} is not prepared in {data_dir or '~/tensorflow_datasets'!r} and "
          f"cannot be downloaded: {host} is unreachable ({brief(e, 120)}). "
          f"{_LOCAL_COPY_HINT}") from None
  try:
    ds = tfds.load(name, split=split, data_dir=data_dir, download=download, shuffle_files=False)
  except Exception as e:  # pylint: disable=broad-except
    # tfds fails with anything from AssertionError to network errors; the user needs to know
    # what was tried and what to do, not TF's traceback.
    raise DatasetNotFoundError(
        f"dataset {name!r} (split {split!r}) is neither prepared nor downloadable: tried "
        f"{tried} -> {brief(e)}. {_LOCAL_COPY_HINT}") from None
  ds = ds.map(lambda ex: {"image": ex["image"], "label": tf.cast(ex["label"], tf.int32)})
  n = int(ds.cardinality())
  if n < 0:
    n = int(ds.reduce(0, lambda count, _: count + 1))
  return ds, n


def _tfds_arrays(name, split, *, data_dir, download, process_index, process_count):
  ds, n = tfds_dataset(name, split, data_dir=data_dir, download=download,
                       process_index=process_index, process_count=process_count)
  # ds.batch(-1)-style single-element loading crashes under tfds.testing.mock_data; chunks do not.
  images, labels = [], []
  for batch in ds.batch(8192).as_numpy_iterator():
    images.append(batch["image"])
    labels.append(batch["label"])
  return {"image": np.concatenate(images).astype(np.uint8, copy=False),
          "label": np.concatenate(labels).astype(np.int32, copy=False)}


# ---------------------------------------------------------------------------------------------
# Class-per-folder copies: a directory `root/<split>/<class>/<image>` or a tarball of one
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class FolderListing:
  """The files of one split of a class-per-folder copy, in canonical order.

  Canonical order interleaves the classes: files sort within their class folder, and the classes
  are merged by each file's fractional rank ``(rank + 0.5) / class_size`` (ties by label). A
  balanced 10-class split is then round-robin (example ``k`` has label ``k % 10``), and for any
  split every contiguous slice (``train[45000:]``) holds the classes in their overall
  proportions, the same on every machine. Labels index the sorted class-folder names.
  """

  root: str
  split: str
  class_names: tuple[str, ...]
  files: list[str]  # file paths, or member names inside the tarball
  labels: np.ndarray  # int32 [N]
  is_tar: bool


def _is_image(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def _is_tar(path: str) -> bool:
  return path.lower().endswith(TAR_SUFFIXES)


def _canonical(root: str, split: str, per_class: dict[str, list[str]], is_tar: bool,
               empty: Sequence[str]) -> FolderListing:
  if empty:
    raise ValueError(f"empty class folder {empty[0]!r} (no image files) in {root!r}")
  if not per_class:
    raise DatasetNotFoundError(
        f"split folder {split!r} of {root!r} holds no class folders with images; expected "
        f"`{split}/<class>/<image>`. {_LOCAL_COPY_HINT}")
  class_names = tuple(sorted(per_class))
  keyed = []
  for label, cls in enumerate(class_names):
    files = sorted(per_class[cls])
    for rank, f in enumerate(files):
      # The file's place in its class, as a fraction: sorting by it spreads every class evenly
      # over the split, so any contiguous slice holds the classes in their overall proportions.
      keyed.append(((2 * rank + 1) / (2 * len(files)), label, f))
  keyed.sort(key=lambda t: (t[0], t[1]))
  files = [f for _, _, f in keyed]
  labels = np.asarray([label for _, label, _ in keyed], np.int32)
  return FolderListing(root, split, class_names, files, labels, is_tar)


def _decompress(path: str) -> bytes:
  with open(path, "rb") as f:
    head = f.read(6)
  if head[:2] == b"\x1f\x8b":
    opener = gzip.open
  elif head[:3] == b"BZh":
    opener = bz2.open
  elif head == b"\xfd7zXZ\x00":
    opener = lzma.open
  else:
    opener = open
  with opener(path, "rb") as f:
    return f.read()


def _fast_tar_members(raw: bytes):
  """``(name, is_dir, offset, size)`` of each member of an uncompressed tar, or None when the
  archive uses features this parser skips (pax / GNU long names): then tarfile reads it.

  tarfile builds a TarInfo per member (about 4 s for CIFAR's 50,000); slicing the 512-byte
  headers directly takes 0.3 s.
  """
  members, off, n = [], 0, len(raw)
  try:
    while off + 512 <= n:
      h = raw[off:off + 512]
      if h[0] == 0:
        break
      kind = h[156:157]
      if kind not in (b"0", b"\x00", b"5", b"1", b"2", b"7"):
        return None
      name = h[0:100].split(b"\x00", 1)[0]
      if h[257:262] == b"ustar":
        prefix = h[345:500].split(b"\x00", 1)[0]
        if prefix:
          name = prefix + b"/" + name
      size_field = h[124:136]
      if size_field[0] & 0x80:
        return None  # base-256 size: a > 8 GB member, let tarfile handle it
      size = int(size_field.split(b"\x00", 1)[0].strip() or b"0", 8)
      if kind in (b"0", b"\x00", b"7", b"5"):
        members.append((name.decode("utf-8", "surrogateescape"), kind == b"5", off + 512, size))
      off += 512 + (size + 511) // 512 * 512
  except (ValueError, IndexError):
    return None
  return members


def _tar_members(path: str):
  """``(members, raw)``: member tuples as in :func:`_fast_tar_members`, and the tar bytes."""
  try:
    raw = _decompress(path)
    members = _fast_tar_members(raw)
    if members is None:
      members = []
      with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for m in tar:
          if m.isfile() or m.isdir():
            members.append((m.name, m.isdir(), m.offset_data, m.size))
  except (tarfile.TarError, OSError, EOFError, lzma.LZMAError) as e:
    raise ValueError(f"cannot read tarball {path!r}: {type(e).__name__}: {e}") from None
  return members, raw


def _scan_tar(path: str, split: str):
  """The listing of one split of a tarball and ``read(member_name) -> bytes``."""
  members, raw = _tar_members(path)
  per_class: dict[str, list[str]] = {}
  dirs: set[str] = set()
  where: dict[str, tuple[int, int]] = {}
  splits_seen: set[str] = set()
  for name, is_dir, offset, size in members:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if is_dir:
      if len(parts) >= 2 and parts[-2] == split:
        dirs.add(parts[-1])
      continue
    if len(parts) < 3:
      continue
    splits_seen.add(parts[-3])
    if parts[-3] != split or not _is_image(parts[-1]):
      continue
    per_class.setdefault(parts[-2], []).append(name)
    where[name] = (offset, size)
  if not per_class and not dirs:
    raise DatasetNotFoundError(
        f"tarball {path!r} has no `{split}/<class>/<image>` members (splits seen: "
        f"{sorted(splits_seen)}). {_LOCAL_COPY_HINT}")
  empty = sorted(f"{split}/{d}" for d in dirs if d not in per_class)

  def read(name: str) -> bytes:
    offset, size = where[name]
    return raw[offset:offset + size]

  return _canonical(path, split, per_class, True, empty), read


def _check_root(root: str) -> str:
  root = os.path.expanduser(os.fspath(root))
  if not os.path.exists(root):
    raise DatasetNotFoundError(f"`image_folder` (={root!r}) does not exist. {_LOCAL_COPY_HINT}")
  return root


def list_image_folder(root: str | os.PathLike, split: str = "train") -> FolderListing:
  """Lists one split of a class-per-folder copy without decoding anything.

  Args:
    root: a directory holding ``<split>/<class>/<image>`` or a tarball of that layout
      (``.tar``, ``.tar.gz``, ``.tgz``, ...; read in place, never unpacked).
    split: the split's folder name (``'train'``), without any ``[...]`` slice.

  Returns:
    the split's files and labels in canonical order, as the class below.

  Raises:
    DatasetNotFoundError: the root or its split folder is missing.
    ValueError: a class folder has no images (naming it).

  Example:
    >>> listing = list_image_folder('../shared/data/cifar10_jpeg_train.tar.gz')  # doctest: +SKIP
    >>> len(listing.files), listing.class_names[:2]  # doctest: +SKIP
    (50000, ('airplane', 'automobile'))

  .. autoclass:: jaxcnn.data._sources.FolderListing
  """
  root = _check_root(root)
  if os.path.isfile(root):
    if not _is_tar(root):
      raise ValueError(f"`image_folder` (={root!r}) is a file but not a tarball {TAR_SUFFIXES}")
    return _scan_tar(root, split)[0]
  split_dir = os.path.join(root, split)
  if not os.path.isdir(split_dir):
    found = sorted(e.name for e in os.scandir(root) if e.is_dir())
    parent, base = os.path.split(os.path.normpath(root))
    fix = (f"that is the {split!r} folder itself: point at its parent {parent!r}"
           if base == split else _LOCAL_COPY_HINT)
    shown = found if len(found) <= 12 else found[:12] + ["..."]
    raise DatasetNotFoundError(
        f"no split folder {split!r} in `image_folder` (={root!r}); found {shown}. {fix}")
  per_class, empty = {}, []
  for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
    if not entry.is_dir():
      continue
    files = [os.path.join(entry.path, f.name) for f in os.scandir(entry.path)
             if f.is_file() and _is_image(f.name)]
    if files:
      per_class[entry.name] = files
    else:
      empty.append(entry.path)
  return _canonical(root, split, per_class, False, empty)


def _decode_one(data: bytes, name: str, mode: str) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(io.BytesIO(data)) as img:
      arr = np.asarray(img.convert(mode), dtype=np.uint8)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"cannot decode image file {name!r}: {type(e).__name__}: {e}") from None
  return arr[..., None] if arr.ndim == 2 else arr


def _pil_mode(channels: int | None, first: bytes, first_name: str) -> str:
  if channels is None:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    try:
      with Image.open(io.BytesIO(first)) as img:
        channels = 1 if img.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"cannot decode image file {first_name!r}: {type(e).__name__}: {e}") from None
  if channels not in (1, 3):
    raise ValueError(f"images must have 1 or 3 channels, got {channels}")
  return "L" if channels == 1 else "RGB"


def decode_images(names: Sequence[str], read, channels: int | None = None,
                  num_threads: int | None = None) -> np.ndarray:
  """Decodes ``names`` (bytes from ``read(name)``) with PIL on a thread pool -> uint8 [N, H, W, C].

  All images must share one shape; a file that fails to decode or differs is named in the error.
  """
  if not names:
    raise ValueError("no image files to decode")
  first = read(names[0])
  mode = _pil_mode(channels, first, names[0])
  ref = _decode_one(first, names[0], mode)
  out = np.empty((len(names),) + ref.shape, np.uint8)

  def work(lo: int, hi: int) -> None:
    for i in range(lo, hi):
      arr = _decode_one(read(names[i]), names[i], mode)
      if arr.shape != ref.shape:
        raise ValueError(
            f"image file {names[i]!r} has shape {arr.shape}, but {names[0]!r} has {ref.shape}; "
            "all images of a split must share one size")
      out[i] = arr

  chunk = 512
  threads = num_threads or min(16, 2 * (os.cpu_count() or 1))
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    futures = [pool.submit(work, lo, min(lo + chunk, len(names)))
               for lo in range(0, len(names), chunk)]
    for f in futures:
      f.result()
  return out


def _read_file(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def _cache_key(root: str, split: str, channels: int | None, listing: FolderListing | None) -> str:
  """What the decoded arrays depend on: the path, split, channels and, for a directory, every
  image file's name, size and modification time (a file overwritten in place changes its own
  mtime, not its folder's), so a cache is never served for pixels that changed."""
  st = os.stat(root)
  h = hashlib.sha1()
  for part in (_CACHE_VERSION, os.path.abspath(root), split, str(channels), str(st.st_mtime_ns),
               str(st.st_size)):
    h.update(part.encode() + b"\n")
  if listing is not None:
    for f in listing.files:
      fst = os.stat(f)
      h.update(f"{os.path.relpath(f, root)}\0{fst.st_size}\0{fst.st_mtime_ns}\n".encode())
  return h.hexdigest()[:16]


_warned_unwritable: set[str] = set()


def _save_cache(path: pathlib.Path, **arrays: Any) -> None:
  """:func:`_atomic_savez`, or a warning (once per cache directory) when it cannot be written:
  a read-only or full cache makes the run slower, not impossible."""
  try:
    _atomic_savez(path, **arrays)
  except OSError as e:
    where = str(path.parent)
    if where not in _warned_unwritable:
      _warned_unwritable.add(where)
      log.warning("cannot write the decoded-image cache in %s (%s); running uncached (set "
                  "$JAXCNN_CACHE_DIR to a writable directory to keep it)", where, brief(e, 120))


def _atomic_savez(path: pathlib.Path, **arrays: Any) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)  # readers see the old file or the whole new one, never half of it
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def read_image_folder(root: str | os.PathLike, split: str = "train", *,
                      channels: int | None = None, cache: bool = True,
                      cache_dir: str | os.PathLike | None = None) -> tuple[dict[str, np.ndarray],
                                                                           tuple[str, ...]]:
  """Decodes a whole split of a class-per-folder copy (directory or tarball), in canonical order.

  With ``cache=True`` the decoded arrays are kept in ``cache_dir`` (default
  :func:`default_cache_dir`) as an ``.npz`` keyed by the path, split and modification times, so
  the second read of 50,000 CIFAR JPEGs is a file load.

  Returns:
    ``({'image': uint8 [N, H, W, C], 'label': int32 [N]}, class_names)``.
  """
  root = _check_root(root)
  is_tar = os.path.isfile(root)
  if is_tar and not _is_tar(root):
    raise ValueError(f"`image_folder` (={root!r}) is a file but not a tarball {TAR_SUFFIXES}")
  listing = None if is_tar else list_image_folder(root, split)
  cache_path = None
  if cache:
    key = _cache_key(root, split, channels, listing)
    stem = os.path.basename(os.path.normpath(root)).split(".")[0] or "root"
    cache_path = (pathlib.Path(cache_dir or default_cache_dir()).expanduser()
                  / f"{stem}-{split}-{key}.npz")
    if cache_path.exists():
      try:
        with np.load(cache_path) as z:
          return ({"image": z["image"], "label": z["label"]},
                  tuple(str(c) for c in z["class_names"]))
      except Exception:  # pylint: disable=broad-except
        pass  # a damaged cache is rebuilt below
  if is_tar:
    listing, read = _scan_tar(root, split)
    images = decode_images(listing.files, read, channels)
  else:
    images = decode_images(listing.files, _read_file, channels)
  arrays = {"image": images, "label": listing.labels}
  if cache_path is not None:
    _save_cache(cache_path, image=images, label=listing.labels,
                class_names=np.asarray(listing.class_names))
  return arrays, listing.class_names


def _folder_arrays(name, split, *, image_folder, process_index, process_count, cache, cache_dir):
  info: DatasetInfo | None = None if name is None else get_info(name)
  spec = parse_split(split)
  process_index, process_count = resolve_process(process_index, process_count)
  channels = info.image_shape[-1] if info else None
  root = _check_root(image_folder)
  if cache:
    arrays, class_names = read_image_folder(root, spec.name, channels=channels, cache=True,
                                            cache_dir=cache_dir)
    n = arrays["label"].shape[0]
  else:
    if os.path.isfile(root):
      listing, read = _scan_tar(root, spec.name)
    else:
      listing, read = list_image_folder(root, spec.name), _read_file
    class_names, n = listing.class_names, len(listing.files)
  if info is not None and tuple(class_names) != tuple(info.class_names):
    # Labels index the sorted folder names: other folders would silently mislabel every image.
    raise ValueError(
        f"the class folders of {str(root)!r} ({', '.join(class_names)}) are not the classes of "
        f"{name!r} ({', '.join(info.class_names)}), so the labels would be wrong; rename the "
        "folders, or pass name=None for other data")
  start, stop = resolve_split(split, n)
  lo, hi = shard_range(start, stop, process_index, process_count, drop_remainder=True)
  if cache:
    out = {"image": arrays["image"][lo:hi], "label": arrays["label"][lo:hi]}
  else:
    out = {"image": decode_images(listing.files[lo:hi], read, channels),
           "label": listing.labels[lo:hi]}
  if info is not None and out["image"].shape[1:] != info.image_shape:
    raise ValueError(
        f"images in {root!r} have shape {out['image'].shape[1:]}, expected {name!r}'s "
        f"{info.image_shape}")
  return out


def resolve_source(source: str, *, image_folder: Any = None, data_dir: Any = None) -> str:
  """The source :func:`load_arrays` reads: ``'folder'``, ``'tfds'`` or ``'download'``.

  ``'auto'``: the folder when ``image_folder`` is set; else tfds where TensorFlow is installed
  (or a tfds ``data_dir`` is given); else the official archives (``'download'``).

  >>> resolve_source('auto', image_folder='/data/cifar')
  'folder'
  """
  _checks.choice(source, "source", SOURCES, where="data")
  if source == "folder" and image_folder is None:
    raise ValueError("`source` (='folder') needs `image_folder` (a class-per-folder root or its "
                     "tarball)")
  if source in ("tfds", "download") and image_folder is not None:
    raise ValueError(f"`source` (={source!r}) and `image_folder` (={str(image_folder)!r}) "
                     "contradict each other; drop one")
  if source != "auto":
    return source
  if image_folder is not None:
    return "folder"
  import sys  # pylint: disable=g-import-not-at-top
  tfds = sys.modules.get("tensorflow_datasets")
  if data_dir is not None or has_tensorflow() or (tfds is not None and _tfds_is_mocked(tfds)):
    return "tfds"  # inside tfds.testing.mock_data the caller means tfds, whatever is installed
  return "download"


def _download_arrays(name, split, *, cache_dir, process_index, process_count):
  from jaxcnn.data import _download  # pylint: disable=g-import-not-at-top
  spec = parse_split(split)
  process_index, process_count = resolve_process(process_index, process_count)
  whole = _download.download_arrays(name, spec.name, cache_dir or default_cache_dir())
  start, stop = resolve_split(split, whole["label"].shape[0])
  lo, hi = shard_range(start, stop, process_index, process_count, drop_remainder=True)
  return {"image": whole["image"][lo:hi], "label": whole["label"][lo:hi]}


def load_arrays(name: str | None, split: str, *, data_dir: str | None = None,
                image_folder: str | os.PathLike | None = None, download: bool = True,
                process_index: int | None = None, process_count: int | None = None,
                cache: bool = True, cache_dir: str | os.PathLike | None = None,
                source: str = "auto") -> dict[str, np.ndarray]:
  """Loads this process's shard of a split into host memory.

  Args:
    name: ``'cifar10'`` or ``'mnist'`` (see ``DATASETS``); ``None`` only with ``image_folder``
      for other data (then class names are the folder names).
    split: tfds split syntax: ``'train'``, ``'train[:45000]'``, ``'train[45000:]'``,
      ``'train[:90%]'``...
    data_dir: tfds data directory (a prepared copy is used as is; None = tfds's default). It
      must exist: a mistyped one is an error, never created.
    image_folder: a class-per-folder copy, ``root/<split>/<class>/<image>``, or a tarball of one.
      When set, tfds is not used (and TensorFlow is not imported).
    download: let tfds download when the data is not prepared (offline, the error comes within
      seconds, not after tfds' minutes of retries).
    process_index, process_count: this process's disjoint, contiguous shard of the split
      (defaults: ``jax.process_index()``, ``jax.process_count()``). Shards are equal, of
      ``n // process_count`` examples, so every process runs the same number of steps; the
      last ``n % process_count`` examples are left out (none with one process).
    cache, cache_dir: for ``image_folder``: keep the decoded split as an ``.npz`` (see
      :func:`read_image_folder`); a read-only cache runs uncached, with one warning. For
      ``source='download'``: the official files are kept in ``cache_dir/downloads``.
    source: ``'auto'`` (default: :func:`resolve_source`), ``'tfds'``, ``'download'`` (the
      official archives, no TensorFlow; see the module docstring) or ``'folder'``.

  Returns:
    ``{'image': np.uint8 [N, H, W, C], 'label': np.int32 [N]}``.

  Raises:
    DatasetNotFoundError: nothing found where pointed, and nothing could be downloaded (the
      message says what was tried and how to point at a local copy).
    TensorFlowMissingError: the tfds route without TensorFlow (an ``ImportError``).
    ValueError: unknown name or source, malformed split, corrupt image (named), empty class
      folder (named), checksum mismatch or damaged archive (named).

  Example:
    >>> val = load_arrays('cifar10', 'train[45000:]',
    ...                   image_folder='../shared/data/cifar10_jpeg_train.tar.gz')  # doctest: +SKIP
    >>> val['image'].shape  # doctest: +SKIP
    (5000, 32, 32, 3)
  """
  source = resolve_source(source, image_folder=image_folder, data_dir=data_dir)
  if source == "folder":
    return _folder_arrays(name, split, image_folder=image_folder, process_index=process_index,
                          process_count=process_count, cache=cache, cache_dir=cache_dir)
  if name is None:
    raise ValueError("`name` (=None) is only allowed with `image_folder`")
  get_info(name)
  if source == "download":
    return _download_arrays(name, split, cache_dir=cache_dir, process_index=process_index,
                            process_count=process_count)
  return _tfds_arrays(name, split, data_dir=data_dir, download=download,
                      process_index=process_index, process_count=process_count)
