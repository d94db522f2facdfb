"""The real CIFAR-10 / MNIST copies in ../shared/data (skipped where absent).

Counting uses the listing (no decoding); only small slices are decoded, without the cache.
"""

import numpy as np
import pytest

from jaxcnn import data

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def cifar_tgz(shared_data_dir):
  return shared_data_dir / "cifar10_jpeg_train.tar.gz"


@pytest.fixture(scope="module")
def cifar_listing(cifar_tgz):
  return data.list_image_folder(cifar_tgz, "train")


def test_cifar10_train_counts_and_classes(cifar_listing):
  info = data.DATASETS["cifar10"]
  assert len(cifar_listing.files) == 50_000 == info.num_train
  assert cifar_listing.class_names == info.class_names  # folder order == label order
  np.testing.assert_array_equal(np.bincount(cifar_listing.labels), [5_000] * 10)
  for f, label in zip(cifar_listing.files[:20], cifar_listing.labels[:20]):
    assert f.split("/")[-2] == info.class_names[label]


def test_cifar10_pixels(cifar_tgz):
  arrays = data.load_arrays("cifar10", "train[-200:]", image_folder=cifar_tgz, cache=False)
  images = arrays["image"]
  assert images.shape == (200, 32, 32, 3) and images.dtype == np.uint8
  assert images.min() >= 0 and images.max() <= 255 and images.max() > 200 and images.std() > 20
  assert arrays["label"].dtype == np.int32
  np.testing.assert_array_equal(np.bincount(arrays["label"], minlength=10), [20] * 10)


def test_validation_slice_size_and_no_overlap(cifar_listing):
  n = len(cifar_listing.files)
  for train_split, val_split, size in (("train[:45000]", "train[45000:]", 5_000),
                                       ("train[:90%]", "train[90%:]", 5_000),
                                       ("train[:49000]", "train[-1000:]", 1_000)):
    t0, t1 = data.resolve_split(train_split, n)
    v0, v1 = data.resolve_split(val_split, n)
    train = set(cifar_listing.files[t0:t1])
    val = set(cifar_listing.files[v0:v1])
    assert len(val) == size and len(train) == n - size
    assert not train & val
    # class-balanced validation slice
    np.testing.assert_array_equal(np.bincount(cifar_listing.labels[v0:v1]), [size // 10] * 10)


def test_mnist_train(shared_data_dir):
  tgz = shared_data_dir / "mnist_png_train.tar.gz"
  listing = data.list_image_folder(tgz, "train")
  assert len(listing.files) == 60_000 and listing.class_names == data.DATASETS["mnist"].class_names
  arrays = data.load_arrays("mnist", "train[:100]", image_folder=tgz, cache=False)
  assert arrays["image"].shape == (100, 28, 28, 1) and arrays["image"].dtype == np.uint8
  assert arrays["image"].max() == 255 and arrays["image"].min() == 0
