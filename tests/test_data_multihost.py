"""Each process of a multi-process run draws its own shuffling and augmentation.

The loaders fold the process index into their keys when it is positive; process 0 keeps the
single-process keys, so single-process results are unchanged.
"""

import jax
import numpy as np
import pytest

from jaxcnn.data import DeviceLoader, StreamLoader, make_loader
from jaxcnn.data import _loaders


def _arrays(n=32, hw=8):
  rng = np.random.default_rng(0)
  # Labels are the example indices: they show the order. Random images show the augmentation.
  return {"image": rng.integers(0, 256, (n, hw, hw, 3), dtype=np.uint8),
          "label": np.arange(n, dtype=np.int32)}


def _epoch(loader_cls, process_index=None, epoch=0, **kwargs):
  kwargs = {**dict(shuffle=True, seed=0, augment=("crop", "flip"), mean=(0.5,) * 3,
                  std=(0.25,) * 3), **kwargs}
  if process_index is not None:
    kwargs["process_index"] = process_index
  loader = loader_cls(_arrays(), 8, **kwargs)
  return [jax.device_get(b) for b in loader.epoch(epoch)]


def _labels(batches):
  return np.concatenate([b["label"] for b in batches])


def _images(batches):
  return np.concatenate([b["image"] for b in batches])


def test_device_loader_processes_differ_and_each_is_reproducible():
  p0, p0_again, p1 = _epoch(DeviceLoader, 0), _epoch(DeviceLoader, 0), _epoch(DeviceLoader, 1)
  np.testing.assert_array_equal(_labels(p0), _labels(p0_again))
  np.testing.assert_array_equal(_images(p0), _images(p0_again))
  np.testing.assert_array_equal(_images(p1), _images(_epoch(DeviceLoader, 1)))
  assert not np.array_equal(_labels(p0), _labels(p1))  # another order
  # Another augmentation of the very same examples: undo the order, compare.
  order0, order1 = np.argsort(_labels(p0)), np.argsort(_labels(p1))
  assert not np.allclose(_images(p0)[order0], _images(p1)[order1])
  assert sorted(_labels(p1)) == list(range(32))  # still a permutation of the shard


def test_device_loader_without_shuffle_differs_only_in_augmentation():
  p0, p1 = _epoch(DeviceLoader, 0, shuffle=False), _epoch(DeviceLoader, 1, shuffle=False)
  np.testing.assert_array_equal(_labels(p0), _labels(p1))
  assert not np.allclose(_images(p0), _images(p1))


def test_process_zero_keeps_the_single_process_keys():
  # The default is process 0, and process 0 uses the keys of the loaders before multi-process
  # keys existed: fold_in(key(seed), epoch), split into (permutation, augmentation root).
  default, p0 = _epoch(DeviceLoader, epoch=3), _epoch(DeviceLoader, 0, epoch=3)
  np.testing.assert_array_equal(_images(default), _images(p0))
  perm_key, _ = jax.random.split(jax.random.fold_in(jax.random.key(0), 3))
  np.testing.assert_array_equal(_labels(p0), np.asarray(jax.random.permutation(perm_key, 32)))


def test_stream_loader_processes_differ():
  pytest.importorskip("tensorflow")
  p0, p1 = _epoch(StreamLoader, 0), _epoch(StreamLoader, 1)
  np.testing.assert_array_equal(_images(p0), _images(_epoch(StreamLoader, 0)))
  assert not np.array_equal(_labels(p0), _labels(p1))
  assert not np.allclose(_images(p0)[np.argsort(_labels(p0))],
                         _images(p1)[np.argsort(_labels(p1))])


@pytest.mark.parametrize("given,expected", [(None, 0), (1, 1)])
def test_make_loader_passes_the_resolved_process_index(monkeypatch, given, expected):
  seen = {}

  def fake_load_arrays(name, split, *, process_index, process_count, **kwargs):
    seen.update(process_index=process_index, process_count=process_count)
    return _arrays()

  monkeypatch.setattr(_loaders, "load_arrays", fake_load_arrays)
  loader = make_loader(None, "train", 8, train=True, seed=0, augment=("flip",),
                       image_folder="unused", process_index=given,
                       process_count=None if given is None else 2)
  assert isinstance(loader, DeviceLoader)
  assert loader.process_index == expected == seen["process_index"]


@pytest.mark.parametrize("bad", [-1, 1.5, "1"])
def test_bad_process_index_is_named(bad):
  with pytest.raises(ValueError, match="process_index"):
    DeviceLoader(_arrays(), 8, shuffle=True, seed=0, mean=(0.5,) * 3, std=(0.25,) * 3,
                 process_index=bad)
