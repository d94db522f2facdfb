"""Batch loaders with one interface: ``loader.epoch(epoch, start_step) -> Iterator[dict]``.

Order, augmentation and shuffling are a pure function of ``(seed, epoch, step)`` and the
process index:
  * the epoch key is ``fold_in(key(seed), epoch)``, split into a permutation key and an
    augmentation root; step ``s`` augments with ``fold_in(aug_root, s)``;
  * process ``p > 0`` of a multi-process run starts from ``fold_in(key(seed), p)`` instead of
    ``key(seed)``, so hosts do not draw the same crops, flips and shard order in lock step.
    Process 0 keeps the plain key: single-process runs (and their recorded results and
    checkpoints) are bit-identical to those of loaders that knew nothing of processes;
  * so ``epoch(e, start_step=s)`` yields exactly the batches ``s, s+1, ...`` of ``epoch(e)``:
    exact resume after a checkpoint.

The augmentation is called as ``augment(key, images, index, epoch)`` (``index``: each example's
position in this process's split), so position-dependent augmentations such as
:func:`jaxcnn.data.augment.alternating_flip` are pure in ``(seed, epoch, step)`` too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import _checks
from jaxcnn.data import augment as augment_lib
from jaxcnn.data._info import compute_mean_std, get_info
from jaxcnn.data._sources import (import_tf, load_arrays, resolve_process, resolve_source,
                                  tfds_dataset)

Batch = dict[str, jax.Array]


def _epoch_keys(seed: int, epoch: jax.Array,
                process_index: int = 0) -> tuple[jax.Array, jax.Array]:
  """(permutation key, augmentation root) of an epoch on process ``process_index``."""
  root = jax.random.key(seed)
  if process_index:  # a Python int: process 0 keeps the single-process keys (module docstring)
    root = jax.random.fold_in(root, process_index)
  perm_key, aug_root = jax.random.split(jax.random.fold_in(root, epoch))
  return perm_key, aug_root


def normalize(images: jax.Array, mean: Sequence[float], std: Sequence[float],
              dtype: Any = jnp.float32) -> jax.Array:
  """``(images / 255 - mean) / std`` per channel.

  Args:
    images: ``[B, H, W, C]`` uint8 (or float in 0..255).
    mean, std: C floats each, in [0, 1] units.

  Example:
    >>> normalize(jnp.full((1, 2, 2, 1), 255, jnp.uint8), (0.5,), (0.5,))[0, 0, 0, 0]
    Array(1., dtype=float32)
  """
  c = images.shape[-1]
  for name, value in (("mean", mean), ("std", std)):
    n = math.prod(np.shape(value))  # shapes are static, so this also holds under jit
    if n != c:
      shown = tuple(value) if isinstance(value, (list, tuple)) else value
      raise ValueError(f"`{name}` (={shown!r}) has {n} values for images with {c} "
                       f"channels (shape {tuple(images.shape)}); give one value per channel")
  mean = jnp.asarray(mean, jnp.float32).reshape(1, 1, 1, c)
  std = jnp.asarray(std, jnp.float32).reshape(1, 1, 1, c)
  x = images.astype(jnp.float32) * (1.0 / 255.0)
  return ((x - mean) / std).astype(dtype)


def _check_stats(mean, std, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
  mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
  if len(mean) != channels or len(std) != channels:
    raise ValueError(f"`mean` (={mean}) and `std` (={std}) need one value per channel ({channels})")
  if min(std) <= 0:
    raise ValueError(f"`std` (={std}) must be positive")
  return mean, std


def _check_batch(batch_size: Any, num_examples: int, drop_remainder: bool) -> tuple[int, int]:
  """``(batch_size, steps_per_epoch)``."""
  batch_size = _checks.positive_int(batch_size, "batch_size")
  if drop_remainder and batch_size > num_examples:
    raise ValueError(
        f"`batch_size` (={batch_size}) is larger than the split ({num_examples} examples on this "
        "process): with drop_remainder=True an epoch would have no batch")
  return batch_size, (num_examples // batch_size if drop_remainder
                      else math.ceil(num_examples / batch_size))


def _check_start(start_step: int, steps: int) -> None:
  if not _checks.is_int(start_step) or not 0 <= start_step <= steps:
    raise ValueError(f"`start_step` (={start_step}) must be in [0, steps_per_epoch={steps}]")


class DeviceLoader:
  """The whole split held on the device as uint8; shuffle, augment and normalise inside jit.

  One compiled function makes every batch: gather ``B`` indices of the epoch's permutation,
  augment with the step's key, normalise. Nothing goes back to the host, and nothing recompiles
  across steps or epochs (the epoch and step are traced scalars).

  Args:
    arrays: ``{'image': uint8 [N, H, W, C], 'label': int [N]}`` (e.g. from :func:`load_arrays`).
    batch_size: examples per batch (per process).
    shuffle: permute each epoch (train); else the stored order (eval).
    seed: the data seed.
    augment: a spec for :func:`jaxcnn.data.augment.make_augment` (None for eval).
    mean, std: per-channel statistics in [0, 1] units (``DATASETS[name].mean``).
    drop_remainder: drop the last partial batch (train); if False the last batch is padded and
      batches carry ``'mask': float32 [B]`` (1 real, 0 padding) so eval sees every example once.
    dtype: dtype of the normalised images.
    sharding: optional ``jax.sharding.NamedSharding`` for the batches (batch axis sharded); the
      split is then replicated over that sharding's mesh. Single-process only.
    process_index: this process's index (``jax.process_index()``; :func:`make_loader` passes
      it), folded into the shuffling and augmentation keys when positive, so each host draws
      its own; 0 gives the single-process keys.

  Example:
    >>> arrays = {'image': np.zeros((10, 8, 8, 3), np.uint8), 'label': np.arange(10)}
    >>> loader = DeviceLoader(arrays, 4, shuffle=True, seed=0, augment=('flip',),
    ...                       mean=(0.5,) * 3, std=(0.25,) * 3)
    >>> [b['image'].shape for b in loader.epoch(0)]
    [(4, 8, 8, 3), (4, 8, 8, 3)]
  """

  def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, *, shuffle: bool, seed: int,
               augment: Any = None, mean: Sequence[float], std: Sequence[float],
               drop_remainder: bool = True, dtype: Any = jnp.float32,
               sharding: jax.sharding.Sharding | None = None, process_index: int = 0):
    images, labels = arrays["image"], np.asarray(arrays["label"])
    if images.ndim != 4 or images.dtype != np.uint8:
      raise ValueError(
          f"`arrays['image']` must be uint8 [N, H, W, C], got {images.dtype} {tuple(images.shape)}")
    if labels.shape != images.shape[:1]:
      raise ValueError(
          f"`arrays['label']` shape {labels.shape} does not match {images.shape[0]} images")
    self.num_examples = int(images.shape[0])
    self.batch_size, self.steps_per_epoch = _check_batch(batch_size, self.num_examples,
                                                         drop_remainder)
    self.image_shape = tuple(images.shape[1:])
    self.mean, self.std = _check_stats(mean, std, images.shape[-1])
    self.shuffle, self.seed, self.drop_remainder = bool(shuffle), int(seed), bool(drop_remainder)
    self.dtype = dtype
    self.process_index = _checks.positive_int(process_index, "process_index", low=0)
    self._augment = augment_lib.make_augment(augment, seed=self.seed)

    data_sharding = None
    if sharding is not None:
      data_sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    self._images = jax.device_put(images, data_sharding)
    self._labels = jax.device_put(labels.astype(np.int32), data_sharding)
    out_shardings = None
    if sharding is not None:
      out_shardings = {"image": sharding, "label": sharding}
      if not drop_remainder:
        out_shardings["mask"] = sharding
    self._order_fn = jax.jit(self._order)
    # The split is an argument, not a closed-over constant: a 150 MB constant in the HLO would
    # slow compilation and copy the data again.
    self._batch_fn = jax.jit(self._batch, out_shardings=out_shardings)

  def _order(self, epoch: jax.Array) -> jax.Array:
    n, padded = self.num_examples, self.steps_per_epoch * self.batch_size
    if self.shuffle:
      order = jax.random.permutation(_epoch_keys(self.seed, epoch, self.process_index)[0], n)
    else:
      order = jnp.arange(n)
    if padded > n:
      order = jnp.concatenate([order, jnp.zeros((padded - n,), order.dtype)])
    return order[:padded].astype(jnp.int32)

  def _batch(self, images: jax.Array, labels: jax.Array, order: jax.Array, epoch: jax.Array,
             step: jax.Array) -> Batch:
    b = self.batch_size
    idx = jax.lax.dynamic_slice(order, (step * b,), (b,))
    x = jnp.take(images, idx, axis=0)
    y = jnp.take(labels, idx, axis=0)
    aug_root = _epoch_keys(self.seed, epoch, self.process_index)[1]
    x = self._augment(jax.random.fold_in(aug_root, step), x, idx, epoch)
    out = {"image": normalize(x, self.mean, self.std, self.dtype), "label": y}
    if not self.drop_remainder:
      out["mask"] = (step * b + jnp.arange(b) < self.num_examples).astype(jnp.float32)
    return out

  def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
    """Yields the batches ``start_step, ..., steps_per_epoch - 1`` of ``epoch``.

    Batches: ``{'image': dtype [B, H, W, C], 'label': int32 [B]}`` (+ ``'mask'``).
    """
    _check_start(start_step, self.steps_per_epoch)
    epoch_arr = np.int32(epoch)
    order = self._order_fn(epoch_arr)
    for step in range(start_step, self.steps_per_epoch):
      yield self._batch_fn(self._images, self._labels, order, epoch_arr, np.int32(step))

  def __repr__(self) -> str:
    return (f"DeviceLoader(num_examples={self.num_examples}, batch_size={self.batch_size}, "
            f"steps_per_epoch={self.steps_per_epoch}, shuffle={self.shuffle})")


class StreamLoader:
  """A tf.data stream (shuffle with a seed, batch, prefetch) on the host; augmentation and
  normalisation run in one jitted function on the device, with the same keys as DeviceLoader.

  Args:
    source: ``{'image', 'label'}`` arrays, or a ``tf.data.Dataset`` of single examples
      ``{'image': uint8 [H, W, C], 'label': int32}`` (see :meth:`from_tfds`).
    num_examples: examples in ``source`` (needed only for a dataset of unknown cardinality).
    shuffle_buffer: tf.data shuffle buffer (default: the whole split: a true permutation).
    Other arguments (``process_index`` included) as :class:`DeviceLoader`.
  """

  def __init__(self, source: Any, batch_size: int, *, shuffle: bool, seed: int,
               augment: Any = None, mean: Sequence[float], std: Sequence[float],
               drop_remainder: bool = True, dtype: Any = jnp.float32,
               num_examples: int | None = None, shuffle_buffer: int | None = None,
               cache: bool = True, process_index: int = 0):
    tf = import_tf()
    if isinstance(source, dict):
      images, labels = np.asarray(source["image"]), np.asarray(source["label"], np.int32)
      if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(
            f"`source['image']` must be uint8 [N, H, W, C], got {images.dtype} {images.shape}")
      num_examples = images.shape[0]
      ds = tf.data.Dataset.from_tensor_slices(
          {"image": images, "label": labels, "index": np.arange(num_examples, dtype=np.int32)})
    else:
      ds = source
      if num_examples is None:
        num_examples = int(ds.cardinality())
      if num_examples < 0:
        raise ValueError("`num_examples` is needed for a tf.data source of unknown cardinality")
      # Each example's position in the split, for position-dependent augmentations.
      ds = ds.enumerate().map(lambda i, ex: {**ex, "index": tf.cast(i, tf.int32)})
      if cache:
        ds = ds.cache()  # decode once; later epochs read memory
    self._ds = ds
    self.image_shape = tuple(ds.element_spec["image"].shape)
    self.num_examples = int(num_examples)
    self.batch_size, self.steps_per_epoch = _check_batch(batch_size, self.num_examples,
                                                         drop_remainder)
    self.mean, self.std = _check_stats(mean, std, self.image_shape[-1])
    self.shuffle, self.seed, self.drop_remainder = bool(shuffle), int(seed), bool(drop_remainder)
    self.dtype = dtype
    self.process_index = _checks.positive_int(process_index, "process_index", low=0)
    self.shuffle_buffer = int(shuffle_buffer or self.num_examples)
    self._augment = augment_lib.make_augment(augment, seed=self.seed)
    self._process_fn = jax.jit(self._process)

  @classmethod
  def from_tfds(cls, name: str, split: str, batch_size: int, *, data_dir: str | None = None,
                download: bool = True, process_index: int | None = None,
                process_count: int | None = None, **kwargs) -> "StreamLoader":
    """Streams this process's shard of ``tfds.load(name, split)``; mean/std default to
    ``DATASETS[name]``.

    Example:
      >>> loader = StreamLoader.from_tfds('cifar10', 'train[:45000]', 128, shuffle=True, seed=0,
      ...                                 augment=('crop', 'flip'))  # doctest: +SKIP
    """
    info = get_info(name)
    process_index, process_count = resolve_process(process_index, process_count)
    ds, n = tfds_dataset(name, split, data_dir=data_dir, download=download,
                         process_index=process_index, process_count=process_count)
    kwargs.setdefault("mean", info.mean)
    kwargs.setdefault("std", info.std)
    return cls(ds, batch_size, num_examples=n, process_index=process_index, **kwargs)

  def _process(self, images: jax.Array, labels: jax.Array, index: jax.Array, mask: jax.Array,
               epoch: jax.Array, step: jax.Array) -> Batch:
    aug_root = _epoch_keys(self.seed, epoch, self.process_index)[1]
    x = self._augment(jax.random.fold_in(aug_root, step), images, index, epoch)
    out = {"image": normalize(x, self.mean, self.std, self.dtype), "label": labels}
    if not self.drop_remainder:
      out["mask"] = mask
    return out

  def _dataset(self, epoch: int, start_step: int):
    tf = import_tf()
    ds = self._ds
    if self.shuffle:
      # A per-epoch op seed makes the order a pure function of (seed, epoch[, process]).
      op_seed = (self.seed * 1_000_003 + epoch) % (2**31 - 1)
      if self.process_index:  # as in _epoch_keys: process 0 keeps the single-process order
        op_seed = int(np.random.SeedSequence(
            [self.seed, epoch, self.process_index]).generate_state(1)[0]) % (2**31 - 1)
      ds = ds.shuffle(self.shuffle_buffer, seed=op_seed, reshuffle_each_iteration=False)
    ds = ds.batch(self.batch_size, drop_remainder=self.drop_remainder)
    if start_step:
      ds = ds.skip(start_step)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

  def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
    """Yields the batches ``start_step, ..., steps_per_epoch - 1`` of ``epoch`` (see DeviceLoader)."""
    _check_start(start_step, self.steps_per_epoch)
    b = self.batch_size
    epoch_arr = np.int32(epoch)
    for step, batch in enumerate(self._dataset(epoch, start_step).as_numpy_iterator(), start_step):
      images, labels = batch["image"], batch["label"].astype(np.int32)
      index = batch["index"].astype(np.int32)
      n = images.shape[0]
      mask = np.ones((b,), np.float32)
      if n < b:  # the last eval batch: pad to a fixed shape (no recompilation), mask the padding
        images = np.concatenate([images, np.zeros((b - n,) + images.shape[1:], images.dtype)])
        labels = np.concatenate([labels, np.zeros((b - n,), np.int32)])
        index = np.concatenate([index, np.zeros((b - n,), np.int32)])
        mask[n:] = 0.0
      yield self._process_fn(images, labels, index, mask, epoch_arr, np.int32(step))

  def __repr__(self) -> str:
    return (f"StreamLoader(num_examples={self.num_examples}, batch_size={self.batch_size}, "
            f"steps_per_epoch={self.steps_per_epoch}, shuffle={self.shuffle})")


def make_loader(name: str | None, split: str, batch_size: int, *, train: bool, seed: int = 0,
                augment: Any = None, kind: str = "device", data_dir: str | None = None,
                image_folder: str | os.PathLike | None = None, download: bool = True,
                process_index: int | None = None, process_count: int | None = None,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                dtype: Any = jnp.float32, cache: bool = True,
                cache_dir: str | os.PathLike | None = None,
                sharding: jax.sharding.Sharding | None = None,
                source: str = "auto") -> DeviceLoader | StreamLoader:
  """Builds the train or eval loader of a split.

  ``train=True``: shuffled, augmented with ``augment``, ``drop_remainder=True``.
  ``train=False``: stored order, no augmentation, last batch padded with a ``'mask'``.

  Args:
    kind: ``'device'`` (:class:`DeviceLoader`, the fast path) or ``'stream'``
      (:class:`StreamLoader`: tf.data straight from tfds, or over the folder's arrays).
    mean, std: default to ``DATASETS[name]``'s documented values; for ``name=None`` (other data)
      they are computed from the loaded split with :func:`compute_mean_std`; pass the training
      split's values explicitly for eval loaders of such data.
    process_index, process_count: this process's shard (:func:`load_arrays`); the resolved
      index also goes to the loader, which folds it into its shuffling and augmentation keys.
    source: where the pixels come from (:func:`load_arrays`): ``'auto'``, ``'tfds'``,
      ``'download'`` or ``'folder'``.
    Others: as :func:`load_arrays` and :class:`DeviceLoader`.

  Example:
    >>> train = make_loader('cifar10', 'train[:45000]', 256, train=True, seed=0,
    ...                     augment=('crop', 'flip'),
    ...                     image_folder='../shared/data/cifar10_jpeg_train.tar.gz')  # doctest: +SKIP
    >>> for batch in train.epoch(0): ...  # doctest: +SKIP
  """
  _checks.choice(kind, "kind", ("device", "stream"))
  info = get_info(name) if name is not None else None
  if mean is None or std is None:
    if info is not None:
      mean, std = info.mean, info.std
  process_index, process_count = resolve_process(process_index, process_count)
  common = dict(shuffle=train, seed=seed, augment=augment if train else None,
                drop_remainder=train, dtype=dtype)
  source = resolve_source(source, image_folder=image_folder, data_dir=data_dir)
  if kind == "stream" and source == "tfds":
    if name is None:
      raise ValueError("`name` (=None) is only allowed with `image_folder`")
    return StreamLoader.from_tfds(name, split, batch_size, data_dir=data_dir, download=download,
                                  process_index=process_index, process_count=process_count,
                                  mean=mean, std=std, **common)
  arrays = load_arrays(name, split, data_dir=data_dir, image_folder=image_folder,
                       download=download, process_index=process_index,
                       process_count=process_count, cache=cache, cache_dir=cache_dir,
                       source=source)
  if mean is None or std is None:
    mean, std = compute_mean_std(arrays["image"])
  if kind == "stream":
    return StreamLoader(arrays, batch_size, mean=mean, std=std, process_index=process_index,
                        **common)
  return DeviceLoader(arrays, batch_size, mean=mean, std=std, sharding=sharding,
                      process_index=process_index, **common)
