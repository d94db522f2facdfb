"""What we know about each dataset: shapes, class names and normalisation statistics."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from jaxcnn import _checks


class DatasetNotFoundError(FileNotFoundError):
  """The data is neither on disk nor downloadable; the message says what was tried."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static facts about a dataset.

  Attributes:
    name: the tfds name, e.g. ``'cifar10'``.
    num_classes: number of labels.
    image_shape: ``(H, W, C)`` of one image.
    class_names: label ``i`` is ``class_names[i]``; also the sorted class-folder names of a
      class-per-folder copy.
    mean, std: per-channel statistics of the *training split* in [0, 1] pixel units, so that
      ``normalized = (x / 255 - mean) / std``.
    num_train: number of images in the official training split.
    num_test: number of images in the official test split.
  """

  name: str
  num_classes: int
  image_shape: tuple[int, int, int]
  class_names: tuple[str, ...]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  num_train: int
  num_test: int


# Mean/std of the official training splits, the values every CIFAR/MNIST reference uses:
# CIFAR-10 std here is the per-pixel std over all training pixels (0.2470, ...), not the often
# copied (0.2023, 0.1994, 0.2010), which is a mean of per-image stds.
DATASETS: Mapping[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        name="cifar10",
        num_classes=10,
        image_shape=(32, 32, 3),
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                     "ship", "truck"),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        num_train=50_000,
        num_test=10_000,
    ),
    "mnist": DatasetInfo(
        name="mnist",
        num_classes=10,
        image_shape=(28, 28, 1),
        class_names=tuple(str(i) for i in range(10)),
        mean=(0.1307,),
        std=(0.3081,),
        num_train=60_000,
        num_test=10_000,
    ),
}


def get_info(name: str) -> DatasetInfo:
  """Returns ``DATASETS[name]``, or raises a ValueError listing the known names.

  Example:
    >>> get_info('cifar10').image_shape
    (32, 32, 3)
  """
  _checks.choice(name, "name", sorted(DATASETS), where="dataset",
                 fix="for other data use a class-per-folder copy (`image_folder=`)")
  return DATASETS[name]


def compute_mean_std(images: np.ndarray, *, chunk: int = 4096) -> tuple[tuple[float, ...],
                                                                         tuple[float, ...]]:
  """Per-channel mean and std of ``images`` in [0, 1] units (for data without documented stats).

  Args:
    images: ``[N, H, W, C]`` uint8 in [0, 255] (or float in the same 0..255 units).
    chunk: images summed at a time, to bound memory on large splits.

  Returns:
    ``(mean, std)``, two tuples of C floats, ready for ``DeviceLoader(mean=, std=)``.

  Example:
    >>> mean, std = compute_mean_std(np.full((2, 4, 4, 3), 255, np.uint8))
    >>> mean, std
    ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[0] == 0:
    raise ValueError(f"`images` must be a non-empty [N, H, W, C] array, got shape {images.shape}")
  c = images.shape[-1]
  total = np.zeros(c, np.float64)
  total_sq = np.zeros(c, np.float64)
  for i in range(0, images.shape[0], chunk):
    x = images[i:i + chunk].astype(np.float64).reshape(-1, c) / 255.0
    total += x.sum(0)
    total_sq += (x * x).sum(0)
  n = images.size // c
  mean = total / n
  std = np.sqrt(np.maximum(total_sq / n - mean * mean, 0.0))
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)
