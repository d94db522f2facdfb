"""Loaders for any dataset: a folder of your own images, any tfds image-classification
dataset, or cifar10/mnist through the streaming host loader.

A dataset is named by ``name`` and ``image_folder`` together (:func:`dataset_kind`):
  * ``'cifar10'`` / ``'mnist'``: the built-in datasets (with ``image_folder``: a class-per-folder
    copy of them, its folders checked against their classes);
  * any other name with ``image_folder``: that folder of images (``name='folder'`` by
    convention; the name is only a label), read as Keras reads one (:mod:`._folder`);
  * any other name without ``image_folder``: a tfds dataset (:mod:`._tfds_any`).

Two loaders serve them: ``'device'`` decodes the split once into memory (cached as ``.npz``
for folders) and batches it on the accelerator (:class:`jaxcnn.data.DeviceLoader`); ``'host'``
streams from the files or records with bounded memory (:class:`jaxcnn.data.HostLoader`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxcnn import _checks
from jaxcnn.data import _folder
from jaxcnn.data._folder import FolderFiles, ImageSpec
from jaxcnn.data._info import DATASETS, DatasetInfo
from jaxcnn.data._split import parse_split, resolve_split, shard_range

FOLDER = "folder"
LOADER_KINDS = ("device", "host")


def dataset_kind(name: str, image_folder: Any = None) -> str:
  """``'builtin'`` (cifar10, mnist), ``'folder'`` (any other name with ``image_folder``) or
  ``'tfds'`` (any other name).

  >>> dataset_kind('cifar10'), dataset_kind('folder', 'photos'), dataset_kind('cifar100')
  ('builtin', 'folder', 'tfds')
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"`name` (={name!r}) must be a dataset name: cifar10, mnist, 'folder' "
                     "(with `image_folder`) or a tfds dataset")
  if name in DATASETS:
    return "builtin"
  if image_folder is not None:
    return "folder"
  if name == FOLDER:
    raise ValueError("`name` (='folder') needs `image_folder`: the folder of "
                     "`<class>/<image>` folders to read")
  return "tfds"


def _spec(image_size: Any, color_mode: str, crop_to_aspect_ratio: bool,
          interpolation: str) -> ImageSpec:
  size = None if image_size in (None, 0) else image_size
  return ImageSpec(size, "rgb" if color_mode in (None, "auto") else color_mode,
                   crop_to_aspect_ratio, interpolation)


def folder_files(image_folder: Any, split: str = "train", *, validation_split: float = 0.0,
                 subset: str = "training", seed: int = 0) -> FolderFiles:
  """The files of one split of a folder of images.

  With ``validation_split > 0``: Keras's ``subset`` (``'training'`` or ``'validation'``) of the
  files under ``image_folder/<split name>`` (or ``image_folder`` itself when it has no such
  folder), drawn with ``seed``; the slice of ``split`` is not used. Without: the slice of
  ``split`` (``'train[:80%]'``) of the files in class-interleaved order
  (:func:`_folder.interleave`), so every slice holds every class in proportion.
  """
  spec = parse_split(split)
  files = _folder.scan_folder(image_folder, split=spec.name)
  if validation_split:
    return _folder.split_files(files, validation_split, subset, seed)
  files = _folder.interleave(files)
  try:
    start, stop = resolve_split(split, len(files))
  except ValueError as e:
    raise ValueError(f"{e}; a folder of {len(files)} images: set `validation_split` (e.g. 0.2) "
                     f"or slices such as '{spec.name}[:80%]' and '{spec.name}[80%:]'") from None
  return dataclasses.replace(files, files=files.files[start:stop],
                             labels=files.labels[start:stop])


def _first_size(files: FolderFiles) -> tuple[int, int]:
  img = _folder.open_image(files.files[0], files.files[0])
  return img.height, img.width


def dataset_info(name: str, *, image_folder: Any = None, image_size: Any = None,
                 color_mode: str = "auto", crop_to_aspect_ratio: bool = False,
                 interpolation: str = "bilinear", train_split: str = "train",
                 validation_split: float = 0.0, seed: int = 0, data_dir: str | None = None,
                 download: bool = True, cache_dir: str | os.PathLike | None = None
                 ) -> DatasetInfo:
  """What a dataset is (:class:`DatasetInfo`): classes, image shape and the normalisation
  statistics of its training split, for any dataset :func:`dataset_kind` knows.

  Built-in names return ``DATASETS[name]``. For a folder the classes are its sorted folder
  names and the statistics those of its training files; for a tfds dataset both come from
  its metadata and training split. Statistics are cached under ``$JAXCNN_CACHE_DIR/stats``.

  Example:
    >>> dataset_info('folder', image_folder='photos', image_size=128,
    ...              validation_split=0.2).class_names  # doctest: +SKIP
    ('cat', 'dog')
  """
  kind = dataset_kind(name, image_folder)
  if kind == "builtin":
    info = DATASETS[name]
    if image_size not in (None, 0) and _folder.image_size_pair(image_size) != info.image_shape[:2]:
      raise ValueError(f"`image_size` (={image_size!r}) resizes folders and tfds datasets; "
                       f"{name!r} has its own size {info.image_shape[:2]}")
    return info
  if kind == "folder":
    spec = _spec(image_size, color_mode, crop_to_aspect_ratio, interpolation)
    files = folder_files(image_folder, train_split, validation_split=validation_split,
                         subset="training", seed=seed)
    size = spec.size or _first_size(files)
    mean, std = _folder.folder_stats(files, spec, cache_dir=cache_dir)
    return DatasetInfo(name=name, num_classes=len(files.class_names),
                       image_shape=(*size, spec.channels), class_names=files.class_names,
                       mean=mean, std=std, num_train=len(files), num_test=0)
  from jaxcnn.data import _tfds_any  # pylint: disable=g-import-not-at-top
  meta = _tfds_any.tfds_meta(name, data_dir=data_dir)
  spec = _tfds_any.default_spec(meta, None if image_size in (None, 0) else image_size,
                                None if color_mode in (None, "auto") else color_mode,
                                crop_to_aspect_ratio, interpolation)
  return _tfds_any.tfds_info(name, spec, train_split=train_split, data_dir=data_dir,
                             download=download, cache_dir=cache_dir)


def _listing_files(listing: Any) -> FolderFiles:
  return FolderFiles(listing.root, tuple(listing.class_names), tuple(listing.files),
                     np.asarray(listing.labels, np.int32))


def make_dataset_loader(name: str, split: str, batch_size: int, *, train: bool, seed: int = 0,
                        augment: Any = None, kind: str = "device", image_folder: Any = None,
                        image_size: Any = None, color_mode: str = "auto",
                        crop_to_aspect_ratio: bool = False, interpolation: str = "bilinear",
                        validation_split: float = 0.0, data_dir: str | None = None,
                        download: bool = True, mean: Sequence[float] | None = None,
                        std: Sequence[float] | None = None, dtype: Any = jnp.float32,
                        cache: bool = True, cache_dir: str | os.PathLike | None = None,
                        process_index: int | None = None, process_count: int | None = None,
                        sharding: Any = None, num_threads: int | None = None,
                        prefetch: int = 2) -> Any:
  """The train or eval loader of a split of any dataset (module docstring).

  ``train=True``: shuffled, augmented, last partial batch dropped; ``train=False``: stored
  order, every example once (last batch padded, with a ``'mask'``). With
  ``validation_split > 0`` (folders) the train loader reads the ``'training'`` subset and the
  eval loader the ``'validation'`` one.

  Args:
    kind: ``'device'`` (decode once into memory; ``augment`` is a
      :func:`jaxcnn.data.augment.make_augment` spec, run on the device) or ``'host'``
      (:class:`jaxcnn.data.HostLoader`: stream from files or records; ``augment`` is a host spec:
      ``'random_resized_crop'``, ``'flip'``, ``'crop'``).
    mean, std: default to the training split's (:func:`dataset_info`).
    Others: as :func:`dataset_info` and :func:`jaxcnn.data.make_loader`.

  The loader carries ``class_names``.
  """
  from jaxcnn.data._loaders import DeviceLoader  # pylint: disable=g-import-not-at-top
  from jaxcnn.data._sources import resolve_process  # pylint: disable=g-import-not-at-top
  from jaxcnn.data._stream import (ArraySource, FileSource,  # pylint: disable=g-import-not-at-top
                                   HostLoader)
  _checks.choice(kind, "kind", LOADER_KINDS, where="data loader",
                 fix="'stream' (tf.data) reads cifar10/mnist only: jaxcnn.data.make_loader")
  ds_kind = dataset_kind(name, image_folder)
  process_index, process_count = resolve_process(process_index, process_count)
  if mean is None or std is None:
    info = dataset_info(name, image_folder=image_folder, image_size=image_size,
                        color_mode=color_mode, crop_to_aspect_ratio=crop_to_aspect_ratio,
                        interpolation=interpolation, train_split=split if train else "train",
                        validation_split=validation_split, seed=seed, data_dir=data_dir,
                        download=download, cache_dir=cache_dir)
    mean, std = info.mean, info.std
  common = dict(shuffle=train, seed=seed, augment=augment if train else None,
                drop_remainder=train, dtype=dtype, mean=mean, std=std)
  subset = "training" if train else "validation"
  if ds_kind == "folder":
    spec = _spec(image_size, color_mode, crop_to_aspect_ratio, interpolation)
    files = folder_files(image_folder, split, validation_split=validation_split, subset=subset,
                         seed=seed)
    class_names = files.class_names
    if kind == "host":
      spec = spec if spec.size else dataclasses.replace(spec, size=_first_size(files))
      source: Any = FileSource(files)
    else:
      arrays = {"image": _folder.read_files(files, spec, cache=cache, cache_dir=cache_dir,
                                            num_threads=num_threads), "label": files.labels}
  elif ds_kind == "tfds":
    from jaxcnn.data import _tfds_any  # pylint: disable=g-import-not-at-top
    meta = _tfds_any.tfds_meta(name, data_dir=data_dir)
    spec = _tfds_any.default_spec(meta, None if image_size in (None, 0) else image_size,
                                  None if color_mode in (None, "auto") else color_mode,
                                  crop_to_aspect_ratio, interpolation)
    class_names = meta.class_names
    if kind == "host":
      if spec.size is None:
        spec = dataclasses.replace(spec, size=tuple(meta.image_shape[:2]))
      source = _tfds_any.tfds_source(name, split, data_dir=data_dir, download=download,
                                     meta=meta)
    else:
      arrays = _tfds_any.tfds_arrays(name, split, spec, data_dir=data_dir, download=download,
                                     num_threads=num_threads)
  else:
    from jaxcnn.data._sources import (_check_root, list_image_folder,  # pylint: disable=g-import-not-at-top
                                      load_arrays)
    info = DATASETS[name]
    class_names = info.class_names
    if kind == "device":
      raise ValueError(f"{name!r} with the device loader: use jaxcnn.data.make_loader")
    spec = ImageSpec(info.image_shape[:2], "grayscale" if info.image_shape[-1] == 1 else "rgb")
    if image_folder is not None and os.path.isdir(_check_root(image_folder)):
      listing = list_image_folder(image_folder, parse_split(split).name)
      if tuple(listing.class_names) != info.class_names:
        raise ValueError(f"the class folders of {str(image_folder)!r} are not the classes of "
                         f"{name!r}, so the labels would be wrong")
      files = _listing_files(listing)
      start, stop = resolve_split(split, len(files))
      source = FileSource(dataclasses.replace(files, files=files.files[start:stop],
                                              labels=files.labels[start:stop]))
    else:
      source = ArraySource(load_arrays(name, split, data_dir=data_dir, image_folder=image_folder,
                                       download=download, process_index=0, process_count=1,
                                       cache=cache, cache_dir=cache_dir))
  if kind == "host":
    loader = HostLoader(source, batch_size, spec=spec, process_index=process_index,
                        process_count=process_count, num_threads=num_threads,
                        prefetch=prefetch, **common)
  else:
    # The in-memory loader's process shards are contiguous slices of the split, as
    # jaxcnn.data.load_arrays makes them.
    lo, hi = shard_range(0, len(arrays["label"]), process_index, process_count,
                         drop_remainder=True)
    arrays = {k: v[lo:hi] for k, v in arrays.items()}
    loader = DeviceLoader(arrays, batch_size, sharding=sharding, process_index=process_index,
                          **common)
  loader.class_names = tuple(class_names)
  return loader


def image_folder_dataset(directory: str | os.PathLike, *, image_size: Any = (256, 256),
                         color_mode: str = "rgb", batch_size: int = 32,
                         validation_split: float | None = None, subset: str | None = None,
                         seed: int | None = None, shuffle: bool = True,
                         interpolation: str = "bilinear", crop_to_aspect_ratio: bool = False,
                         augment: Any = None, loader: str = "device", split: str | None = None,
                         mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                         dtype: Any = jnp.float32, cache: bool = True,
                         cache_dir: str | os.PathLike | None = None,
                         process_index: int | None = None, process_count: int | None = None,
                         num_threads: int | None = None, prefetch: int = 2) -> Any:
  """A loader over a folder of your own images, as ``keras.utils.image_dataset_from_directory``.

  ``directory/<class>/<image>`` (any sizes; jpg, png, bmp, gif, webp, ...): class names are the
  sorted folder names, each image is converted to ``color_mode`` and resized to
  ``image_size``, and ``validation_split`` + ``subset`` + ``seed`` draw the same two disjoint
  subsets as Keras (:doc:`/data`). Files that are not readable images are skipped
  with one warning; a class folder without images is an error naming it.

  Args:
    directory: the folder of class folders (or of split folders, with ``split``).
    image_size: ``(height, width)`` or an int; None keeps the images' own size (one size).
    color_mode: ``'rgb'`` or ``'grayscale'``.
    batch_size: examples per batch (per process).
    validation_split, subset, seed: as Keras: a fraction in (0, 1), ``'training'``,
      ``'validation'`` or ``'both'`` (returns ``(train, validation)``), and the shuffle's seed
      (required with ``validation_split``; it also seeds the epochs' order and augmentation).
    shuffle: True: a training loader (a new order each epoch, augmented, the last partial
      batch dropped); False: an evaluation loader (a fixed order, every image once, the last
      batch padded with a ``'mask'``). The ``'validation'`` subset is always an evaluation
      loader.
    interpolation, crop_to_aspect_ratio: Keras's resize (default ``'bilinear'``, stretch).
    augment: for the training loader: a device spec (``('crop', 'flip')``,
      :func:`jaxcnn.data.augment.make_augment`) with ``loader='device'``, or host
      augmentations (``('random_resized_crop', 'flip')``) with ``loader='host'``.
    loader: ``'device'`` (decode once, cached under ``$JAXCNN_CACHE_DIR``; batches on the
      accelerator) or ``'host'`` (stream from disk with bounded memory: folders bigger than
      memory).
    split: a split folder's name (``directory/<split>/<class>/...``).
    mean, std: per-channel statistics in [0, 1] units; default: those of the training images
      (cached).

  Returns:
    A loader (``epoch(e, start_step)`` yields ``{'image': float32 [B, H, W, C] normalised,
    'label': int32 [B]}``), with ``class_names``, ``num_examples``, ``steps_per_epoch``; a
    ``(train, validation)`` pair for ``subset='both'``. Pass it to :func:`jaxcnn.train.fit`.

  Example:
    >>> train, val = image_folder_dataset('photos', image_size=(128, 128),
    ...                                   validation_split=0.2, subset='both',
    ...                                   seed=123)  # doctest: +SKIP
    >>> train.class_names  # doctest: +SKIP
    ('cats', 'dogs')
  """
  validation_split, subset = _folder.check_split_args(validation_split, subset, seed)
  seed = 0 if seed is None else _checks.positive_int(seed, "seed", low=0)
  _checks.boolean(shuffle, "shuffle")
  size = None if image_size is None else _folder.image_size_pair(image_size)
  name_split = split or "train"
  base = dict(image_folder=directory, image_size=size, color_mode=color_mode,
              crop_to_aspect_ratio=crop_to_aspect_ratio, interpolation=interpolation,
              validation_split=validation_split or 0.0, seed=seed, kind=loader, dtype=dtype,
              cache=cache, cache_dir=cache_dir, process_index=process_index,
              process_count=process_count, num_threads=num_threads, prefetch=prefetch)
  if mean is None or std is None:
    info = dataset_info(FOLDER, image_folder=directory, image_size=size, color_mode=color_mode,
                        crop_to_aspect_ratio=crop_to_aspect_ratio, interpolation=interpolation,
                        train_split=name_split, validation_split=validation_split or 0.0,
                        seed=seed, cache_dir=cache_dir)
    mean, std = info.mean, info.std
  make = lambda train: make_dataset_loader(FOLDER, name_split, batch_size, train=train,
                                           augment=augment, mean=mean, std=std, **base)
  if subset == "both":
    return make(True), make(False)
  if subset == "validation":
    return make(False)
  return make(bool(shuffle) if subset is None else True)
