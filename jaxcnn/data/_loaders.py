"""Batch loaders with one interface: ``loader.epoch(epoch, start_step) -> Iterator[dict]``.

Order, augmentation and shuffling are a pure function of ``(seed, epoch, step)``:
  * the epoch key is ``fold_in(key(seed), epoch)``, split into a permutation key and an
    augmentation root; step ``s`` augments with ``fold_in(aug_root, s)``;
  * so ``epoch(e, start_step=s)`` yields exactly the batches ``s, s+1, ...`` of ``epoch(e)``:
    exact resume after a checkpoint.

Processes: a loader of process ``p`` of ``N`` (``process_index``, ``process_count``) yields rows
``[p * B, (p + 1) * B)`` of each *global* batch of ``N * B`` examples (``B``: its
``batch_size``), where the global batches are those of one process with batch size ``N * B``:
same permutation of the whole split, and each example augmented as it would be there (the
augmentation draws for the global batch and keeps the process's rows; see
:mod:`jaxcnn.data.augment`, ``rows``). Concatenating the N processes' batches gives the
one-process batch, so a run on N processes trains on the same batches as on one. Each process
holds the whole split (the device loader on its device, the stream loader in tf.data's cache),
since a permutation sends any example to any process; per step it gathers, augments and
normalises only its own rows. With one process (the default) nothing changes.

The augmentation is called as ``augment(key, images, index, epoch, rows=...)`` (``index``: each
example's position in the split), so position-dependent augmentations such as
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


def _epoch_keys(seed: int, epoch: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(permutation key, augmentation root) of an epoch (the same on every process)."""
  perm_key, aug_root = jax.random.split(jax.random.fold_in(jax.random.key(seed), epoch))
  return perm_key, aug_root


def _check_processes(process_index: Any, process_count: Any) -> tuple[int, int]:
  process_count = _checks.positive_int(process_count, "process_count")
  process_index = _checks.positive_int(process_index, "process_index", low=0)
  if process_index >= process_count:
    raise ValueError(f"`process_index` (={process_index}) must be smaller than `process_count` "
                     f"(={process_count})")
  return process_index, process_count


def _rows(batch_size: int, process_index: int, process_count: int) -> tuple[int, int] | None:
  """The augmentation's ``rows``: this process's place in the global batch (None: one process)."""
  if process_count == 1:
    return None
  return process_index * batch_size, process_count * batch_size


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


def _check_batch(batch_size: Any, num_examples: int, drop_remainder: bool,
                 process_count: int = 1) -> tuple[int, int]:
  """``(batch_size, steps_per_epoch)``: steps of global batches of ``batch_size *
  process_count`` examples."""
  batch_size = _checks.positive_int(batch_size, "batch_size")
  whole = batch_size * process_count
  if drop_remainder and whole > num_examples:
    what = (f"`batch_size` (={batch_size})" if process_count == 1 else
            f"the global batch ({process_count} processes x `batch_size` {batch_size} = {whole})")
    raise ValueError(
        f"{what} is larger than the split ({num_examples} examples): with drop_remainder=True "
        "an epoch would have no batch")
  return batch_size, (num_examples // whole if drop_remainder
                      else math.ceil(num_examples / whole))


def _check_start(start_step: int, steps: int) -> None:
  if not _checks.is_int(start_step) or not 0 <= start_step <= steps:
    raise ValueError(f"`start_step` (={start_step}) must be in [0, steps_per_epoch={steps}]")


class DeviceLoader:
  """The whole split held on the device as uint8; shuffle, augment and normalise inside jit.

  One compiled function makes every batch: gather ``B`` indices of the epoch's permutation,
  augment with the step's key, normalise. Nothing goes back to the host, and nothing recompiles
  across steps or epochs (the epoch and step are traced scalars).

  Args:
    arrays: ``{'image': uint8 [N, H, W, C], 'label': int [N]}``: the whole split (e.g. from
      :func:`load_arrays`), on every process.
    batch_size: examples per batch of this process (the global batch is ``batch_size *
      process_count``).
    shuffle: permute each epoch (train); else the stored order (eval).
    seed: the data seed.
    augment: a spec for :func:`jaxcnn.data.augment.make_augment` (None for eval).
    mean, std: per-channel statistics in [0, 1] units (``DATASETS[name].mean``).
    drop_remainder: drop the last partial batch (train); if False the last batch is padded and
      batches carry ``'mask': float32 [B]`` (1 real, 0 padding) so eval sees every example once.
    dtype: dtype of the normalised images.
    sharding: optional ``jax.sharding.NamedSharding`` for the batches (batch axis sharded); the
      split is then replicated over that sharding's mesh. Single-process only.
    process_index, process_count: this process's rows of each global batch (module
      docstring; :func:`make_loader` passes ``jax.process_index()``, ``jax.process_count()``).

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
               sharding: jax.sharding.Sharding | None = None, process_index: int = 0,
               process_count: int = 1):
    images, labels = arrays["image"], np.asarray(arrays["label"])
    if images.ndim != 4 or images.dtype != np.uint8:
      raise ValueError(
          f"`arrays['image']` must be uint8 [N, H, W, C], got {images.dtype} {tuple(images.shape)}")
    if labels.shape != images.shape[:1]:
      raise ValueError(
          f"`arrays['label']` shape {labels.shape} does not match {images.shape[0]} images")
    self.process_index, self.process_count = _check_processes(process_index, process_count)
    self.num_examples = int(images.shape[0])
    self.batch_size, self.steps_per_epoch = _check_batch(batch_size, self.num_examples,
                                                         drop_remainder, self.process_count)
    self.image_shape = tuple(images.shape[1:])
    self.mean, self.std = _check_stats(mean, std, images.shape[-1])
    self.shuffle, self.seed, self.drop_remainder = bool(shuffle), int(seed), bool(drop_remainder)
    self.dtype = dtype
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
    n = self.num_examples
    padded = self.steps_per_epoch * self.batch_size * self.process_count
    if self.shuffle:
      order = jax.random.permutation(_epoch_keys(self.seed, epoch)[0], n)
    else:
      order = jnp.arange(n)
    if padded > n:
      order = jnp.concatenate([order, jnp.zeros((padded - n,), order.dtype)])
    return order[:padded].astype(jnp.int32)

  def _batch(self, images: jax.Array, labels: jax.Array, order: jax.Array, epoch: jax.Array,
             step: jax.Array) -> Batch:
    b = self.batch_size
    # This process's rows of the global batch `step` (module docstring).
    first = step * b * self.process_count + self.process_index * b
    idx = jax.lax.dynamic_slice(order, (first,), (b,))
    x = jnp.take(images, idx, axis=0)
    y = jnp.take(labels, idx, axis=0)
    aug_root = _epoch_keys(self.seed, epoch)[1]
    x = self._augment(jax.random.fold_in(aug_root, step), x, idx, epoch,
                      rows=_rows(b, self.process_index, self.process_count))
    out = {"image": normalize(x, self.mean, self.std, self.dtype), "label": y}
    if not self.drop_remainder:
      out["mask"] = (first + jnp.arange(b) < self.num_examples).astype(jnp.float32)
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
    procs = (f", process {self.process_index} of {self.process_count}"
             if self.process_count > 1 else "")
    return (f"DeviceLoader(num_examples={self.num_examples}, batch_size={self.batch_size}, "
            f"steps_per_epoch={self.steps_per_epoch}, shuffle={self.shuffle}{procs})")


class StreamLoader:
  """A tf.data stream (shuffle with a seed, batch, prefetch) on the host; augmentation and
  normalisation run in one jitted function on the device, with the same keys as DeviceLoader.

  Args:
    source: ``{'image', 'label'}`` arrays, or a ``tf.data.Dataset`` of single examples
      ``{'image': uint8 [H, W, C], 'label': int32}`` (see :meth:`from_tfds`): the whole split,
      on every process.
    num_examples: examples in ``source`` (needed only for a dataset of unknown cardinality).
    shuffle_buffer: tf.data shuffle buffer (default: the whole split: a true permutation).
    Others: as :class:`DeviceLoader`, ``process_index`` and ``process_count`` included (each
      process streams the global batches and keeps its rows of them).
  """

  def __init__(self, source: Any, batch_size: int, *, shuffle: bool, seed: int,
               augment: Any = None, mean: Sequence[float], std: Sequence[float],
               drop_remainder: bool = True, dtype: Any = jnp.float32,
               num_examples: int | None = None, shuffle_buffer: int | None = None,
               cache: bool = True, process_index: int = 0, process_count: int = 1):
    self.process_index, self.process_count = _check_processes(process_index, process_count)
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
                                                         drop_remainder, self.process_count)
    self.mean, self.std = _check_stats(mean, std, self.image_shape[-1])
    self.shuffle, self.seed, self.drop_remainder = bool(shuffle), int(seed), bool(drop_remainder)
    self.dtype = dtype
    self.shuffle_buffer = int(shuffle_buffer or self.num_examples)
    self._augment = augment_lib.make_augment(augment, seed=self.seed)
    self._process_fn = jax.jit(self._process)

  @classmethod
  def from_tfds(cls, name: str, split: str, batch_size: int, *, data_dir: str | None = None,
                download: bool = True, process_index: int | None = None,
                process_count: int | None = None, **kwargs) -> "StreamLoader":
    """Streams this process's rows of the global batches of ``tfds.load(name, split)``
    (``process_index``, ``process_count``: as :class:`DeviceLoader`; default: this process of
    ``jax.process_count()``); mean/std default to ``DATASETS[name]``.

    Example:
      >>> loader = StreamLoader.from_tfds('cifar10', 'train[:45000]', 128, shuffle=True, seed=0,
      ...                                 augment=('crop', 'flip'))  # doctest: +SKIP
    """
    info = get_info(name)
    process_index, process_count = resolve_process(process_index, process_count)
    # The whole split on every process: the global permutation reaches every example.
    ds, n = tfds_dataset(name, split, data_dir=data_dir, download=download, process_index=0,
                         process_count=1)
    kwargs.setdefault("mean", info.mean)
    kwargs.setdefault("std", info.std)
    return cls(ds, batch_size, num_examples=n, process_index=process_index,
               process_count=process_count, **kwargs)

  def _process(self, images: jax.Array, labels: jax.Array, index: jax.Array, mask: jax.Array,
               epoch: jax.Array, step: jax.Array) -> Batch:
    aug_root = _epoch_keys(self.seed, epoch)[1]
    x = self._augment(jax.random.fold_in(aug_root, step), images, index, epoch,
                      rows=_rows(self.batch_size, self.process_index, self.process_count))
    out = {"image": normalize(x, self.mean, self.std, self.dtype), "label": labels}
    if not self.drop_remainder:
      out["mask"] = mask
    return out

  def _dataset(self, epoch: int, start_step: int):
    tf = import_tf()
    ds = self._ds
    if self.shuffle:
      # A per-epoch op seed makes the order a pure function of (seed, epoch).
      op_seed = (self.seed * 1_000_003 + epoch) % (2**31 - 1)
      ds = ds.shuffle(self.shuffle_buffer, seed=op_seed, reshuffle_each_iteration=False)
    b = self.batch_size
    ds = ds.batch(b * self.process_count, drop_remainder=self.drop_remainder)
    if self.process_count > 1:  # this process's rows of each global batch (module docstring)
      lo = self.process_index * b
      ds = ds.map(lambda batch: {k: v[lo:lo + b] for k, v in batch.items()})
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
    procs = (f", process {self.process_index} of {self.process_count}"
             if self.process_count > 1 else "")
    return (f"StreamLoader(num_examples={self.num_examples}, batch_size={self.batch_size}, "
            f"steps_per_epoch={self.steps_per_epoch}, shuffle={self.shuffle}{procs})")


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
    batch_size: examples per batch of this process; the global batch is ``batch_size *
      process_count``.
    process_index, process_count: which rows of each global batch this loader yields
      (default: ``jax.process_index()`` of ``jax.process_count()``; the module docstring). The
      whole split is loaded on every process.
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
  process_index, process_count = _check_processes(
      *resolve_process(process_index, process_count))
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
                       download=download, process_index=0, process_count=1, cache=cache,
                       cache_dir=cache_dir, source=source)
  if mean is None or std is None:
    mean, std = compute_mean_std(arrays["image"])
  if kind == "stream":
    return StreamLoader(arrays, batch_size, mean=mean, std=std, process_index=process_index,
                        process_count=process_count, **common)
  return DeviceLoader(arrays, batch_size, mean=mean, std=std, sharding=sharding,
                      process_index=process_index, process_count=process_count, **common)
