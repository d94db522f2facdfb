"""Any tfds image-classification dataset by name, through ``tfds.data_source`` (no TensorFlow).

``tfds.data_source(name, split)`` reads a dataset prepared in the ArrayRecord format by index,
decoding each example on access; it needs ``tensorflow-datasets`` but not TensorFlow (preparing
some datasets does). What a dataset is comes from its own metadata
(``tfds.builder(name).info``): the class names of its label feature, its image shape (``None``
sides for datasets of varying size, which then need an ``image_size``), its split sizes.
Normalisation statistics are computed once from the training split (at most
:data:`jaxcnn.data._folder.STATS_IMAGES` evenly spaced images) and cached under
``$JAXCNN_CACHE_DIR/stats``. Split slices (``'train[:90%]'``) are resolved here, with tfds's
rounding (:func:`jaxcnn.data.resolve_split`).

``cifar10`` and ``mnist`` keep their own routes (:func:`jaxcnn.data.load_arrays`: tfds via
tf.data, or the official archives without TensorFlow); this module serves every other name.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
from typing import Any

import numpy as np

from jaxcnn._errors import brief
from jaxcnn.data._folder import (ImageSpec, cached_stats, chunked_mean_std, sample_indices,
                                 to_array)
from jaxcnn.data._info import DatasetInfo, DatasetNotFoundError
from jaxcnn.data._split import parse_split, resolve_split
from jaxcnn.data._stream import RecordSource

# What tfds downloads from when a dataset is not prepared: probed first (one TCP connection),
# because tfds retries an unreachable host for minutes before it gives up.
_PROBE_HOST = "storage.googleapis.com"


def import_tfds_any():
  """``tensorflow_datasets``; TensorFlow, where installed, is first hidden from every GPU/TPU.

  Raises:
    TensorFlowMissingError: tensorflow-datasets is not installed.
  """
  from jaxcnn.data._sources import (TensorFlowMissingError, has_tensorflow,  # pylint: disable=g-import-not-at-top
                                    import_tf)
  if has_tensorflow():
    import_tf()
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise TensorFlowMissingError(
        "datasets other than cifar10/mnist come from tfds: `pip install tensorflow-datasets` "
        "(TensorFlow is not needed to read them); or use a folder of images "
        "(`image_folder=`)") from None
  return tfds


def check_name(name: str, key: str = "name") -> None:
  """Raises a one-line ValueError unless ``name`` is a registered tfds dataset (with the
  closest names); ``key`` is the argument's name in the message."""
  tfds = import_tfds_any()
  known = tfds.list_builders(with_community_datasets=False)
  base = name.split(":", 1)[0].split("/", 1)[0]
  if base not in known:
    close = difflib.get_close_matches(base, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown dataset `{key}` (={name!r}): not cifar10, mnist or 'folder', nor "
                     f"a tfds dataset{hint}")


@dataclasses.dataclass(frozen=True)
class TfdsMeta:
  """A tfds dataset's facts from its metadata: feature keys, classes, image shape, splits."""
  name: str
  image_key: str
  label_key: str
  class_names: tuple[str, ...]
  image_shape: tuple[int | None, ...]
  splits: dict[str, int]
  version: str


def tfds_meta(name: str, *, data_dir: str | None = None) -> TfdsMeta:
  """Reads ``tfds.builder(name).info``; raises a one-line ValueError for a dataset that is not
  image classification (no image feature, no class-label feature)."""
  tfds = import_tfds_any()
  check_name(name)
  try:
    info = tfds.builder(name, data_dir=data_dir).info
  except Exception as e:  # pylint: disable=broad-except
    raise DatasetNotFoundError(f"cannot read tfds dataset {name!r}'s metadata: {brief(e)}") from None
  features = info.features
  keys = tuple(info.supervised_keys or ())[:2]
  image_key, label_key = keys if len(keys) == 2 else ("image", "label")
  image = features[image_key] if image_key in features else None
  label = features[label_key] if label_key in features else None
  if image is None or not hasattr(image, "shape") or len(image.shape) != 3:
    raise ValueError(f"tfds dataset {name!r} has no image feature {image_key!r} of rank 3 (its "
                     f"features: {', '.join(features.keys())}); it is not image classification")
  if label is None or not getattr(label, "names", None):
    raise ValueError(f"tfds dataset {name!r} has no class-label feature {label_key!r}; it is "
                     "not image classification")
  splits = {k: int(v.num_examples) for k, v in info.splits.items()}
  return TfdsMeta(name, image_key, label_key, tuple(label.names), tuple(image.shape), splits,
                  str(info.version))


def _is_mocked(tfds) -> bool:
  from jaxcnn.data._sources import _tfds_is_mocked  # pylint: disable=g-import-not-at-top
  return _tfds_is_mocked(tfds)


def tfds_source(name: str, split: str, *, data_dir: str | None = None, download: bool = True,
                meta: TfdsMeta | None = None) -> RecordSource:
  """The examples of ``split`` (tfds split syntax) as a random-access :class:`RecordSource`.

  Raises:
    DatasetNotFoundError: not prepared and not downloadable (offline: within seconds).
  """
  tfds = import_tfds_any()
  meta = meta or tfds_meta(name, data_dir=data_dir)
  spec = parse_split(split)
  if data_dir is not None and not os.path.isdir(os.path.expanduser(data_dir)):
    raise DatasetNotFoundError(f"`data_dir` (={data_dir!r}) does not exist; it must be a tfds "
                               "data directory")
  if not _is_mocked(tfds) and not tfds.builder(name, data_dir=data_dir).is_prepared():
    if not download:
      raise DatasetNotFoundError(f"tfds dataset {name!r} is not prepared in "
                                 f"{data_dir or '~/tensorflow_datasets'!r} and download=False")
    from jaxcnn.data._sources import check_online  # pylint: disable=g-import-not-at-top
    try:
      check_online(_PROBE_HOST)
    except OSError as e:
      raise DatasetNotFoundError(
          f"tfds dataset {name!r} is not prepared in {data_dir or '~/tensorflow_datasets'!r} "
          f"and cannot be downloaded: {_PROBE_HOST} is unreachable ({brief(e, 120)}); prepare it "
          "where there is a network, or use a folder of images (`image_folder=`)") from None
  try:
    source = tfds.data_source(name, split=spec.name, data_dir=data_dir, download=download)
  except Exception as e:  # pylint: disable=broad-except
    raise DatasetNotFoundError(
        f"cannot read tfds dataset {name!r} (split {spec.name!r}) as a data source: {brief(e)}; "
        "it must be prepared in the ArrayRecord format: tfds.builder(name)."
        "download_and_prepare(file_format='array_record')") from None
  start, stop = resolve_split(split, len(source))
  return RecordSource(source, start, stop, image_key=meta.image_key, label_key=meta.label_key)


def default_spec(meta: TfdsMeta, image_size: Any = None, color_mode: str | None = None,
                 crop_to_aspect_ratio: bool = False,
                 interpolation: str = "bilinear") -> ImageSpec:
  """The :class:`ImageSpec` of a tfds dataset: its own size unless ``image_size`` is given
  (required when its images vary in size), its own channels unless ``color_mode`` is given."""
  h, w, c = meta.image_shape
  if image_size is None and (h is None or w is None):
    raise ValueError(f"tfds dataset {meta.name!r} has images of varying size "
                     f"({meta.image_shape}): set `image_size` (e.g. 160) to resize them")
  if color_mode is None:
    color_mode = "grayscale" if c == 1 else "rgb"
  return ImageSpec(image_size, color_mode, crop_to_aspect_ratio, interpolation)


def _read(source: RecordSource, indices: Any, spec: ImageSpec,
          num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  import concurrent.futures  # pylint: disable=g-import-not-at-top
  indices = list(indices)
  first, _ = source.load(indices[0])
  first = to_array(first, spec)
  images = np.empty((len(indices),) + first.shape, np.uint8)
  labels = np.empty((len(indices),), np.int32)

  def work(k: int) -> None:
    img, label = source.load(indices[k])
    x = to_array(img, spec)
    if x.shape != first.shape:
      raise ValueError(f"example {indices[k]} has shape {x.shape}, the first {first.shape}; "
                       "set `image_size` to resize them all")
    images[k], labels[k] = x, label

  threads = num_threads or min(16, 2 * (os.cpu_count() or 1))
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    for _ in pool.map(work, range(len(indices)), chunksize=32):
      pass
  return images, labels


def tfds_stats(name: str, spec: ImageSpec, *, train_split: str = "train",
               data_dir: str | None = None, download: bool = True,
               cache_dir: str | os.PathLike | None = None, meta: TfdsMeta | None = None
               ) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and std of ``train_split`` resized as ``spec``, cached (module
  docstring)."""
  meta = meta or tfds_meta(name, data_dir=data_dir)
  key = hashlib.sha1(f"{name}|{meta.version}|{data_dir}|{train_split}|{spec.key()}".encode())
  safe = name.replace("/", "_").replace(":", "_")

  def compute():
    source = tfds_source(name, train_split, data_dir=data_dir, download=download, meta=meta)
    return chunked_mean_std(lambda chunk: _read(source, chunk, spec)[0],
                            sample_indices(len(source)))

  return cached_stats(f"tfds-{safe}-{key.hexdigest()[:12]}", compute, cache_dir)


def tfds_info(name: str, spec: ImageSpec, *, train_split: str = "train",
              data_dir: str | None = None, download: bool = True,
              cache_dir: str | os.PathLike | None = None,
              mean_std: tuple[Any, Any] | None = None) -> DatasetInfo:
  """A :class:`DatasetInfo` for a tfds dataset: classes and splits from its metadata, the
  image shape of ``spec``, and the training split's statistics (unless ``mean_std`` is
  given)."""
  meta = tfds_meta(name, data_dir=data_dir)
  if mean_std is None:
    mean_std = tfds_stats(name, spec, train_split=train_split, data_dir=data_dir,
                          download=download, cache_dir=cache_dir, meta=meta)
  h, w, _ = meta.image_shape
  shape = (*(spec.size or (h, w)), spec.channels)
  return DatasetInfo(name=name, num_classes=len(meta.class_names), image_shape=shape,
                     class_names=meta.class_names, mean=tuple(mean_std[0]),
                     std=tuple(mean_std[1]), num_train=meta.splits.get("train", 0),
                     num_test=meta.splits.get("test", 0))


def tfds_arrays(name: str, split: str, spec: ImageSpec, *, data_dir: str | None = None,
                download: bool = True, process_index: int = 0, process_count: int = 1,
                num_threads: int | None = None) -> dict[str, np.ndarray]:
  """This process's shard of ``split`` decoded into memory: ``{'image': uint8 [N, H, W, C],
  'label': int32 [N]}`` (shards as :func:`jaxcnn.data.load_arrays`)."""
  from jaxcnn.data._split import shard_range  # pylint: disable=g-import-not-at-top
  source = tfds_source(name, split, data_dir=data_dir, download=download)
  lo, hi = shard_range(0, len(source), process_index, process_count, drop_remainder=True)
  images, labels = _read(source, range(lo, hi), spec, num_threads)
  return {"image": images, "label": labels}

