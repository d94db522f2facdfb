"""Any tfds image-classification dataset by name (jaxcnn.data._tfds_any), on
``tfds.testing.mock_data``: metadata, cached statistics, both loaders, a variable-size dataset.
tfds' data sources need no TensorFlow, so these run wherever tensorflow-datasets is installed."""

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.data import _folder, _tfds_any
from jaxcnn.train import config as config_lib

tfds = pytest.importorskip("tensorflow_datasets", reason="needs tensorflow-datasets")

# name: (classes, image shape with image_size=None, channels)
CASES = {"cifar100": (100, (32, 32, 3)), "fashion_mnist": (10, (28, 28, 1)),
         "imagenette": (10, None)}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXCNN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_info_from_metadata_and_cached_statistics(name, monkeypatch):
  classes, shape = CASES[name]
  size = 24 if shape is None else None
  with tfds.testing.mock_data(num_examples=12):
    info = data.dataset_info(name, image_size=size)
    assert info.num_classes == classes and len(info.class_names) == classes
    assert info.image_shape == (shape or (24, 24, 3))
    assert len(info.mean) == info.image_shape[-1] and min(info.std) > 0
    # Computed once: a second call reads the cache.
    monkeypatch.setattr(_tfds_any, "chunked_mean_std",
                        lambda *a, **k: pytest.fail("statistics recomputed"))
    assert data.dataset_info(name, image_size=size).mean == info.mean


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("kind", ["device", "host"])
def test_loaders_yield_normalised_batches(name, kind):
  classes, shape = CASES[name]
  size = 20 if shape is None else None
  with tfds.testing.mock_data(num_examples=12):
    train = data.make_dataset_loader(name, "train[:75%]", 4, train=True, kind=kind,
                                     image_size=size, seed=0)
    val = data.make_dataset_loader(name, "train[75%:]", 4, train=False, kind=kind,
                                   image_size=size)
    assert (train.num_examples, val.num_examples) == (9, 3)
    batch = next(iter(train.epoch(0)))
    want = (4, *(shape or (20, 20, 3)))
    assert batch["image"].shape == want and np.asarray(batch["label"]).max() < classes
    assert train.class_names == val.class_names and len(train.class_names) == classes
    assert sum(np.asarray(b["mask"]).sum() for b in val.epoch(0)) == 3


def test_variable_size_dataset_needs_image_size():
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(ValueError, match=r"'imagenette' has images of varying size.*image_size"):
      data.dataset_info("imagenette")


def test_host_loader_resizes_with_random_resized_crop():
  with tfds.testing.mock_data(num_examples=8):
    loader = data.make_dataset_loader("oxford_flowers102", "train", 4, train=True, kind="host",
                                      image_size=16, augment=("random_resized_crop", "flip"))
    a = [np.asarray(b["image"]) for b in loader.epoch(0)]
    b = [np.asarray(b["image"]) for b in loader.epoch(0, start_step=1)]
    assert a[0].shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(a[1], b[0])


def test_unknown_names_fail_with_the_closest_tfds_names():
  with pytest.raises(ValueError, match=r"`data.name` \(='imagenet'\).*'imagenette'"):
    config_lib.validate({"data": {"name": "imagenet"}})
  with pytest.raises(ValueError, match="did you mean .*'cifar100'"):
    _tfds_any.check_name("cifar101")
  config_lib.validate({"data": {"name": "cifar100", "image_size": 32}})


def test_not_image_classification_is_named():
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(ValueError, match="not image classification"):
      _tfds_any.tfds_meta("imdb_reviews")


def test_default_spec_keeps_the_datasets_channels():
  meta = _tfds_any.TfdsMeta("x", "image", "label", ("a", "b"), (28, 28, 1), {}, "1.0.0")
  assert _tfds_any.default_spec(meta).color_mode == "grayscale"
  assert _tfds_any.default_spec(meta, 32, "rgb").channels == 3
  assert isinstance(_tfds_any.default_spec(meta), _folder.ImageSpec)
