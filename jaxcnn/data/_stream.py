"""A streaming loader for data bigger than memory: read, decode, resize and augment on host
threads, a few batches ahead, and normalise on the device.

:class:`HostLoader` reads examples by index from a random-access source (files of a folder, a
tfds ``data_source`` (ArrayRecord), or arrays): nothing but the batches in flight is held, so its
memory is about ``(prefetch + 1) * batch_size`` output images plus one full-size decoded
image per thread, whatever the dataset's size.

Order and augmentation are a pure function of ``(seed, epoch, step)``:
  * epoch ``e`` visits the examples in ``permutation(N)`` drawn from ``(seed, e)``;
  * global batch ``s`` (``B = batch_size * process_count`` examples) holds positions
    ``[s*B, (s+1)*B)`` of that order; process ``p`` makes rows ``[p*b, (p+1)*b)`` of it
    (``b = batch_size``), so the processes' shards, stacked, are exactly the one-process batch;
  * each example's augmentation draws from ``(seed, e, position)`` alone, so a row is
    augmented the same whichever process makes it;
  * hence ``epoch(e, start_step=s)`` yields exactly batches ``s, s+1, ...`` of ``epoch(e)``.

Host augmentations (``augment=``, names or ``(name, kwargs)`` pairs, applied in this order):
  * ``'random_resized_crop'``: torchvision's ``RandomResizedCrop`` (``scale=(0.08, 1.0)``,
    ``ratio=(3/4, 4/3)``, 10 tries, then a centred crop of the clamped ratio), resized to
    ``image_size`` with the loader's interpolation: the ImageNet recipe's crop;
  * ``'flip'``: left-right with probability ``prob`` (0.5);
  * ``'crop'``: ``padding`` (4) zero pixels on each side, then a random window of the image's
    size (the CIFAR recipe's translation).
Without ``'random_resized_crop'`` (and for evaluation) each image is resized as Keras resizes it
(:func:`jaxcnn.data._folder.to_array`).

Why threads of our own and not grain or tf.data: decoding and resizing happen inside PIL, which
releases the GIL, so a thread pool scales over the host's cores without the copies between
processes; and the contract above (shards that are slices of the one-process batch, per-example
keys) is a few lines over a random-access source, where grain's samplers shard the *records*
between processes and tf.data's ``shuffle`` is not random access.
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import _checks
from jaxcnn.data._folder import FolderFiles, ImageSpec, open_image, to_array

HOST_AUGMENTS = ("random_resized_crop", "flip", "crop")
# Domain tags: the permutation and the augmentations draw from separate streams.
_PERM, _AUG = 0x9E3779B9, 0x7F4A7C15


# -------------------------------------------------------------------------------- sources

class FileSource:
  """Examples of a folder: ``load(i)`` opens ``files.files[i]`` with PIL."""

  def __init__(self, files: FolderFiles):
    self.files = files

  def __len__(self) -> int:
    return len(self.files)

  def load(self, i: int):
    path = self.files.files[i]
    return open_image(path, path), int(self.files.labels[i])


class ArraySource:
  """Examples of in-memory arrays ``{'image': uint8 [N, H, W, C], 'label': [N]}``."""

  def __init__(self, arrays: dict[str, np.ndarray]):
    self.images, self.labels = arrays["image"], np.asarray(arrays["label"], np.int32)
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise ValueError(f"`arrays['image']` must be uint8 [N, H, W, C], got "
                       f"{self.images.dtype} {self.images.shape}")

  def __len__(self) -> int:
    return len(self.labels)

  def load(self, i: int):
    return array_image(self.images[i]), int(self.labels[i])


def array_image(x: np.ndarray):
  """uint8 ``[H, W, C]`` (C = 1, 3 or 4) -> a PIL image."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  x = np.asarray(x, np.uint8)
  return Image.fromarray(x[..., 0] if x.ndim == 3 and x.shape[-1] == 1 else x)


class RecordSource:
  """Examples ``[start, stop)`` of a random-access record source (``tfds.data_source``):
  ``source[i]`` is a dict holding an image (uint8 ``[H, W, C]``) and an integer label."""

  def __init__(self, source: Any, start: int, stop: int, *, image_key: str = "image",
               label_key: str = "label"):
    self.source, self.start, self.stop = source, start, stop
    self.image_key, self.label_key = image_key, label_key

  def __len__(self) -> int:
    return self.stop - self.start

  def load(self, i: int):
    record = self.source[self.start + i]
    return array_image(record[self.image_key]), int(record[self.label_key])


# -------------------------------------------------------------------------------- augmentation

def random_resized_crop_box(rng: np.random.Generator, width: int, height: int,
                            scale: Sequence[float] = (0.08, 1.0),
                            ratio: Sequence[float] = (3 / 4, 4 / 3)
                            ) -> tuple[int, int, int, int]:
  """torchvision's ``RandomResizedCrop.get_params`` -> the window ``(left, upper, right,
  lower)``: area ``scale`` of the image, aspect ratio log-uniform in ``ratio``; 10 tries, then
  the whole image cropped to the nearest allowed ratio, centred.

  >>> random_resized_crop_box(np.random.default_rng(0), 100, 100, scale=(1, 1), ratio=(1, 1))
  (0, 0, 100, 100)
  """
  area = width * height
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return left, top, left + w, top + h
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    h, w = height, int(round(height * max(ratio)))
  else:
    w, h = width, height
  top, left = (height - h) // 2, (width - w) // 2
  return left, top, left + w, top + h


def _pad_crop(rng: np.random.Generator, x: np.ndarray, padding: int) -> np.ndarray:
  h, w, _ = x.shape
  dy, dx = rng.integers(0, 2 * padding + 1, size=2)
  padded = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
  return padded[dy:dy + h, dx:dx + w]


def make_host_augment(spec: Any) -> list[tuple[str, dict[str, Any]]]:
  """``('random_resized_crop', 'flip')`` or ``[(name, kwargs), ...]`` -> checked steps.

  >>> make_host_augment(('flip', ('crop', {'padding': 2})))
  [('flip', {'prob': 0.5}), ('crop', {'padding': 2})]
  """
  if spec is None or spec == ():
    return []
  if isinstance(spec, str):
    spec = (spec,)
  defaults = {"random_resized_crop": {"scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3)},
              "flip": {"prob": 0.5}, "crop": {"padding": 4}}
  steps = []
  for item in spec:
    name, kwargs = (item, {}) if isinstance(item, str) else (item[0], dict(item[1]))
    _checks.choice(name, "augment", HOST_AUGMENTS, where="host loader",
                   fix="the host loader augments on the host: these names only")
    unknown = set(kwargs) - set(defaults[name])
    if unknown:
      raise ValueError(f"host augmentation {name!r} takes {sorted(defaults[name])}, not "
                       f"{sorted(unknown)}")
    kw = {**defaults[name], **kwargs}
    if name == "random_resized_crop":
      lo, hi = (float(v) for v in kw["scale"])
      if not 0 < lo <= hi <= 1:
        raise ValueError(f"`scale` (={kw['scale']!r}) must satisfy 0 < low <= high <= 1")
      rlo, rhi = (float(v) for v in kw["ratio"])
      if not 0 < rlo <= rhi:
        raise ValueError(f"`ratio` (={kw['ratio']!r}) must satisfy 0 < low <= high")
      kw = {"scale": (lo, hi), "ratio": (rlo, rhi)}
    elif name == "flip":
      kw["prob"] = _checks.number(kw["prob"], "prob", 0.0, 1.0, high_closed=True)
    else:
      kw["padding"] = _checks.positive_int(kw["padding"], "padding", low=0)
    steps.append((name, kw))
  return steps


def transform(img, spec: ImageSpec, steps: Sequence[tuple[str, dict[str, Any]]],
              rng: np.random.Generator | None) -> np.ndarray:
  """One example: the crop (random-resized or Keras's resize), then flip and pad-crop."""
  box = None
  for name, kw in steps:
    if name == "random_resized_crop":
      box = random_resized_crop_box(rng, img.width, img.height, **kw)
  x = to_array(img, spec, box=box)
  for name, kw in steps:
    if name == "flip" and rng.random() < kw["prob"]:
      x = x[:, ::-1]
    elif name == "crop" and kw["padding"]:
      x = _pad_crop(rng, x, kw["padding"])
  return x


# -------------------------------------------------------------------------------- the loader

def _normalize(x: jax.Array, mean: jax.Array, std: jax.Array, dtype: Any) -> jax.Array:
  return ((x.astype(jnp.float32) * (1.0 / 255.0) - mean) / std).astype(dtype)


class HostLoader:
  """Batches made on host threads from a random-access source (module docstring).

  Args:
    source: a random-access source: files of a folder, tfds records or arrays (anything
      with ``__len__`` and ``load(i) -> (PIL.Image, label)``).
    batch_size: this process's examples per batch (``global batch / process_count``).
    spec: the output image (:class:`jaxcnn.data._folder.ImageSpec`; ``size`` required).
    shuffle: a new permutation each epoch (train); else the stored order (eval).
    seed: the data seed.
    augment: host augmentations (module docstring), or None.
    mean, std: per-channel statistics in [0, 1] units.
    drop_remainder: drop the last partial global batch (train); else pad it and add
      ``'mask': float32 [b]`` (eval: every example once).
    dtype: dtype of the normalised images.
    process_index, process_count: this process's rows of every global batch (defaults:
      ``jax.process_index()``, ``jax.process_count()``).
    num_threads: decoding threads (default: ``min(16, 2 * cpus)``).
    prefetch: batches prepared ahead of the one being consumed.

  Batches: ``{'image': dtype [b, H, W, C], 'label': int32 [b]}`` (+ ``'mask'``).

  Example:
    >>> arrays = {'image': np.zeros((10, 8, 8, 3), np.uint8), 'label': np.arange(10)}
    >>> loader = HostLoader(ArraySource(arrays), 4, spec=ImageSpec((6, 6)), shuffle=True,
    ...                     seed=0, augment=('flip',), mean=(0.5,) * 3, std=(0.25,) * 3,
    ...                     process_index=0, process_count=1)
    >>> [b['image'].shape for b in loader.epoch(0)]
    [(4, 6, 6, 3), (4, 6, 6, 3)]
  """

  def __init__(self, source: Any, batch_size: int, *, spec: ImageSpec, shuffle: bool,
               seed: int, augment: Any = None, mean: Sequence[float], std: Sequence[float],
               drop_remainder: bool = True, dtype: Any = jnp.float32,
               process_index: int | None = None, process_count: int | None = None,
               num_threads: int | None = None, prefetch: int = 2):
    from jaxcnn.data._loaders import _check_stats  # pylint: disable=g-import-not-at-top
    from jaxcnn.data._sources import resolve_process  # pylint: disable=g-import-not-at-top
    if spec.size is None:
      raise ValueError("the host loader needs an `image_size` (every batch has one shape)")
    self.source, self.spec = source, spec
    self.process_index, self.process_count = resolve_process(process_index, process_count)
    self.batch_size = _checks.positive_int(batch_size, "batch_size")
    self.global_batch = self.batch_size * self.process_count
    self.num_examples = len(source)
    self.shuffle, self.seed = bool(shuffle), _checks.positive_int(seed, "seed", low=0)
    self.drop_remainder = bool(drop_remainder)
    if self.drop_remainder and self.global_batch > self.num_examples:
      raise ValueError(f"the global batch (={self.global_batch}) is larger than the split "
                       f"({self.num_examples} examples): an epoch would have no batch")
    self.steps_per_epoch = (self.num_examples // self.global_batch if self.drop_remainder
                            else math.ceil(self.num_examples / self.global_batch))
    self.image_shape = (*spec.size, spec.channels)
    self.mean, self.std = _check_stats(mean, std, spec.channels)
    self.dtype = dtype
    self.augment = make_host_augment(augment)
    self.num_threads = _checks.positive_int(num_threads or min(16, 2 * (os.cpu_count() or 1)),
                                            "num_threads")
    self.prefetch = _checks.positive_int(prefetch, "prefetch", low=0)
    self.class_names: tuple[str, ...] | None = None
    mean_a = np.asarray(self.mean, np.float32).reshape(1, 1, 1, -1)
    std_a = np.asarray(self.std, np.float32).reshape(1, 1, 1, -1)
    self._normalize = jax.jit(lambda x: _normalize(x, mean_a, std_a, self.dtype))

  def order(self, epoch: int) -> np.ndarray:
    """The example indices of ``epoch`` in visiting order (``int64 [N]``)."""
    if not self.shuffle:
      return np.arange(self.num_examples)
    return np.random.default_rng([_PERM, self.seed, int(epoch)]).permutation(self.num_examples)

  def rows(self, step: int) -> range:
    """Positions (in the epoch's order) of this process's rows of global batch ``step``."""
    lo = step * self.global_batch + self.process_index * self.batch_size
    return range(lo, lo + self.batch_size)

  def _fill(self, images: np.ndarray, labels: np.ndarray, row: int, order: np.ndarray,
            epoch: int, position: int) -> None:
    index = int(order[position])
    img, label = self.source.load(index)
    rng = (np.random.default_rng([_AUG, self.seed, int(epoch), position]) if self.augment
           else None)
    x = transform(img, self.spec, self.augment, rng)
    if x.shape != self.image_shape:
      raise ValueError(f"example {index} became {x.shape}, expected {self.image_shape}")
    images[row], labels[row] = x, label

  def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
    """Yields batches ``start_step, ..., steps_per_epoch - 1`` of ``epoch``."""
    from jaxcnn.data._loaders import _check_start  # pylint: disable=g-import-not-at-top
    _check_start(start_step, self.steps_per_epoch)
    order = self.order(epoch)
    n, b = self.num_examples, self.batch_size
    pool = concurrent.futures.ThreadPoolExecutor(self.num_threads)
    pending: collections.deque = collections.deque()

    def submit(step: int) -> None:
      images = np.zeros((b, *self.image_shape), np.uint8)
      labels = np.zeros((b,), np.int32)
      positions = [p for p in self.rows(step) if p < n]
      mask = np.zeros((b,), np.float32)
      mask[:len(positions)] = 1.0
      futures = [pool.submit(self._fill, images, labels, r, order, epoch, p)
                 for r, p in enumerate(positions)]
      pending.append((images, labels, mask, futures))

    try:
      next_step = start_step
      while next_step < min(self.steps_per_epoch, start_step + self.prefetch + 1):
        submit(next_step)
        next_step += 1
      while pending:
        images, labels, mask, futures = pending.popleft()
        for f in futures:
          f.result()
        batch = {"image": self._normalize(images), "label": jnp.asarray(labels)}
        if not self.drop_remainder:
          batch["mask"] = jnp.asarray(mask)
        yield batch
        # Submitted once the consumer is done with this batch: `prefetch` batches are made
        # while it works on one, and no more are held.
        if next_step < self.steps_per_epoch:
          submit(next_step)
          next_step += 1
    finally:
      pool.shutdown(wait=True, cancel_futures=True)

  def __repr__(self) -> str:
    return (f"HostLoader(num_examples={self.num_examples}, batch_size={self.batch_size}, "
            f"steps_per_epoch={self.steps_per_epoch}, shuffle={self.shuffle}, "
            f"image_shape={self.image_shape})")

