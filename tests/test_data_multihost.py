"""Process ``p`` of ``N`` yields rows ``[p*B, (p+1)*B)`` of the one-process global batch.

Loaders are built with ``process_index`` / ``process_count`` set by hand (no processes are
started): for every loader kind that takes them, concatenating the N processes' batches must
give exactly the batch of one process with the global batch size: same permutation, same
augmentation of every example, same eval masks, for any epoch and any resume step.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.data import DeviceLoader, StreamLoader, make_loader
from jaxcnn.data import _loaders

N_EXAMPLES = 44  # not a multiple of the global eval batch: the last one is padded


def _arrays(n=N_EXAMPLES, hw=8):
  rng = np.random.default_rng(0)
  # Labels are the example indices: they show the order. Random images show the augmentation.
  return {"image": rng.integers(0, 256, (n, hw, hw, 3), dtype=np.uint8),
          "label": np.arange(n, dtype=np.int32)}


_AUGMENT = ("alternating_flip", "crop", "flip", "cutout")


@functools.lru_cache(maxsize=None)
def _cached(cls, batch_size, process_index, process_count, shuffle, augment, drop_remainder):
  """Loaders are reused across epochs (each compiles its batch function once)."""
  return _loader(cls, batch_size, process_index, process_count, shuffle=shuffle, augment=augment,
                 drop_remainder=drop_remainder)


def _loader(cls, batch_size, process_index=0, process_count=1, **kwargs):
  kwargs = {**dict(shuffle=True, seed=3, augment=_AUGMENT, mean=(0.5,) * 3, std=(0.25,) * 3),
            **kwargs}
  if process_count > 1:
    kwargs.update(process_index=process_index, process_count=process_count)
  return cls(_arrays(), batch_size, **kwargs)


def _batches(loader, epoch, start_step=0):
  return [jax.device_get(b) for b in loader.epoch(epoch, start_step)]


def _assert_shards_make_the_whole(cls, count, epochs, *, shuffle=True, augment=_AUGMENT,
                                  drop_remainder=True):
  """For each ``(epoch, start_step)``: the shards of ``count`` processes, concatenated, equal
  the one-process batches of the same global size (8); returns the last epoch's batches."""
  global_batch = 8
  make = lambda *args: _cached(cls, *args, shuffle, augment, drop_remainder)
  whole = make(global_batch, 0, 1)
  shards = [make(global_batch // count, p, count) for p in range(count)]
  assert {s.steps_per_epoch for s in shards} == {whole.steps_per_epoch}
  for epoch, start_step in epochs:
    want = _batches(whole, epoch, start_step)
    got = [_batches(s, epoch, start_step) for s in shards]
    assert all(len(g) == len(want) for g in got)
    for step, batch in enumerate(want):
      for key in batch:
        joined = np.concatenate([g[step][key] for g in got])
        np.testing.assert_array_equal(joined, batch[key],
                                      err_msg=f"epoch {epoch}, step {start_step + step}, {key!r}")
  return want


def test_device_loader_shards_are_rows_of_the_one_process_batch():
  want = _assert_shards_make_the_whole(DeviceLoader, 2, [(0, 0), (1, 0), (3, 2)])
  # Shuffled and augmented for real (a test of nothing would also pass the equality).
  labels = np.concatenate([b["label"] for b in want])
  assert not np.array_equal(labels, np.sort(labels))


def test_device_loader_shards_of_four_processes():
  _assert_shards_make_the_whole(DeviceLoader, 4, [(1, 1)])


def test_device_eval_loader_shards_pad_and_mask_as_one_process():
  want = _assert_shards_make_the_whole(DeviceLoader, 4, [(0, 0)], shuffle=False, augment=None,
                                       drop_remainder=False)
  assert len(want) == 6 and want[-1]["mask"].sum() == N_EXAMPLES - 5 * 8


def test_a_custom_augmentation_without_rows_gets_its_rows_of_the_whole_batch():
  def shift(key, images):  # one random draw per example, knows nothing of processes
    return jnp.roll(images, jax.random.randint(key, (images.shape[0],), 0, 4)[0], axis=2)

  _assert_shards_make_the_whole(DeviceLoader, 2, [(1, 0)], augment=shift)


@pytest.mark.tf
@pytest.mark.parametrize("train", [True, False])
def test_stream_loader_shards_are_rows_of_the_one_process_batch(train):
  kwargs = {} if train else dict(shuffle=False, augment=None, drop_remainder=False)
  want = _assert_shards_make_the_whole(StreamLoader, 2, [(1, 1 if train else 0)], **kwargs)
  if not train:
    assert want[-1]["mask"].sum() == N_EXAMPLES - 5 * 8


def test_one_process_keys_are_the_seed_and_epoch_alone():
  # One process draws what the loaders always drew: fold_in(key(seed), epoch), split into
  # (permutation, augmentation root); recorded runs and their checkpoints depend on it.
  got = _batches(_loader(DeviceLoader, 4, augment=None), 3)
  perm_key, _ = jax.random.split(jax.random.fold_in(jax.random.key(3), 3))
  want = np.asarray(jax.random.permutation(perm_key, N_EXAMPLES))[:len(got) * 4]
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in got]), want)


@pytest.mark.parametrize("given,expected", [((None, None), (0, 1)), ((1, 2), (1, 2))])
def test_make_loader_loads_the_whole_split_and_passes_the_processes(monkeypatch, given,
                                                                   expected):
  seen = {}

  def fake_load_arrays(name, split, *, process_index, process_count, **kwargs):
    seen.update(process_index=process_index, process_count=process_count)
    return _arrays()

  monkeypatch.setattr(_loaders, "load_arrays", fake_load_arrays)
  loader = make_loader(None, "train", 4, train=True, seed=0, augment=("flip",),
                       image_folder="unused", process_index=given[0], process_count=given[1])
  assert isinstance(loader, DeviceLoader)
  assert seen == {"process_index": 0, "process_count": 1}  # every process holds the split
  assert (loader.process_index, loader.process_count) == expected
  assert loader.steps_per_epoch == N_EXAMPLES // (4 * expected[1])


@pytest.mark.parametrize("index,count,match", [
    (-1, 2, r"`process_index` \(=-1\) must be an int >= 0"),
    (1.5, 2, r"`process_index` \(=1.5\)"),
    (2, 2, r"`process_index` \(=2\) must be smaller than `process_count` \(=2\)"),
    (0, 0, r"`process_count` \(=0\) must be an int >= 1"),
])
def test_bad_processes_are_named(index, count, match):
  with pytest.raises(ValueError, match=match):
    DeviceLoader(_arrays(), 4, shuffle=True, seed=0, mean=(0.5,) * 3, std=(0.25,) * 3,
                 process_index=index, process_count=count)


def test_a_global_batch_larger_than_the_split_is_named():
  with pytest.raises(ValueError, match=r"global batch \(4 processes x `batch_size` 16 = 64\)"):
    _loader(DeviceLoader, 16, 0, 4)
