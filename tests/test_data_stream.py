"""HostLoader (jaxcnn.data._stream): pure in (seed, epoch, step), exact resume, per-process
shards that are slices of the one-process batch, bounded prefetch, torchvision's crop."""

import math
import threading
import time

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.data import _stream
from jaxcnn.data._folder import ImageSpec

N = 22


def _arrays(n=N, size=(12, 10)):
  rng = np.random.default_rng(0)
  return {"image": rng.integers(0, 256, (n, *size, 3), dtype=np.uint8),
          "label": np.arange(n) % 5}


def _loader(batch=4, *, shuffle=True, augment=("random_resized_crop", "flip"), p=0, count=1,
            seed=3, source=None, **kw):
  return data.HostLoader(source or _stream.ArraySource(_arrays()), batch,
                         spec=ImageSpec((8, 8)), shuffle=shuffle, seed=seed, augment=augment,
                         mean=(0.5,) * 3, std=(0.25,) * 3, drop_remainder=shuffle,
                         process_index=p, process_count=count, num_threads=3, **kw)


def _np(batches):
  return [{k: np.asarray(v) for k, v in b.items()} for b in batches]


def test_same_seed_same_batches_and_exact_resume():
  a, b = _np(_loader().epoch(1)), _np(_loader().epoch(1))
  assert len(a) == N // 4
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
  resumed = _np(_loader().epoch(1, start_step=3))
  assert len(resumed) == len(a) - 3
  for x, y in zip(a[3:], resumed):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
  other = _np(_loader().epoch(2))
  assert not np.array_equal(a[0]["image"], other[0]["image"])
  assert not np.array_equal(a[0]["image"], _np(_loader(seed=4).epoch(1))[0]["image"])


@pytest.mark.parametrize("count", [2, 4])
def test_process_shards_are_slices_of_the_one_process_batch(count):
  whole = _np(_loader(batch=4).epoch(0))
  shards = [_np(_loader(batch=4 // count, p=p, count=count).epoch(0)) for p in range(count)]
  assert all(len(s) == len(whole) for s in shards)
  for step, batch in enumerate(whole):
    for key in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([s[step][key] for s in shards]), batch[key])


def test_eval_sees_every_example_once_over_processes():
  seen = []
  for p in range(2):
    loader = _loader(batch=3, shuffle=False, augment=None, p=p, count=2)
    assert loader.steps_per_epoch == math.ceil(N / 6)
    for b in _np(loader.epoch(0)):
      seen.extend(b["label"][b["mask"] > 0].tolist())
  assert sorted(seen) == sorted((np.arange(N) % 5).tolist())


def test_prefetch_is_bounded():
  loads = []
  lock = threading.Lock()

  class Counting(_stream.ArraySource):
    def load(self, i):
      with lock:
        loads.append(i)
      return super().load(i)

  loader = _loader(batch=2, source=Counting(_arrays()), prefetch=1)
  it = loader.epoch(0)
  next(it)
  time.sleep(0.2)
  assert len(loads) <= 2 * 2  # the batch yielded and one ahead, no more
  it.close()


def test_eval_images_are_the_keras_resize():
  arrays = _arrays()
  loader = _loader(shuffle=False, augment=None)
  batch = _np(loader.epoch(0))[0]
  from PIL import Image
  want = np.asarray(Image.fromarray(arrays["image"][0]).resize((8, 8), Image.BILINEAR),
                    np.float32)
  np.testing.assert_allclose(batch["image"][0], (want / 255 - 0.5) / 0.25, atol=1e-5)


def test_random_resized_crop_box_follows_torchvision():
  rng = np.random.default_rng(0)
  areas, ratios = [], []
  for _ in range(400):
    l, t, r, b = _stream.random_resized_crop_box(rng, 200, 100)
    assert 0 <= l < r <= 200 and 0 <= t < b <= 100
    areas.append((r - l) * (b - t) / 20000)
    ratios.append((r - l) / (b - t))
  assert min(areas) >= 0.08 - 0.01 and max(areas) <= 1.0
  assert min(ratios) >= 3 / 4 - 0.05 and max(ratios) <= 4 / 3 + 0.05
  # No window of the ratio fits in 10 tries: torchvision's fallback, the whole height at the
  # largest allowed ratio, centred.
  assert _stream.random_resized_crop_box(rng, 400, 100, scale=(1, 1)) == (133, 0, 266, 100)
  assert _stream.random_resized_crop_box(rng, 100, 100, scale=(1, 1), ratio=(1, 1)) == (
      0, 0, 100, 100)


def test_host_augment_spec_is_checked():
  with pytest.raises(ValueError, match="'cutout'"):
    _stream.make_host_augment(("cutout",))
  with pytest.raises(ValueError, match="scale"):
    _stream.make_host_augment((("random_resized_crop", {"scale": (0.5, 2.0)}),))
  with pytest.raises(ValueError, match="takes"):
    _stream.make_host_augment((("flip", {"p": 0.5}),))


def test_a_batch_larger_than_the_split_is_an_error():
  with pytest.raises(ValueError, match="global batch"):
    _loader(batch=16, count=2)
