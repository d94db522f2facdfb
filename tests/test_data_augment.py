"""jaxcnn.data.augment: shapes, exact geometry, determinism per key."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.data import augment

B, H, W, C = 6, 8, 8, 3


@pytest.fixture(scope="module")
def images():
  return jnp.asarray(np.random.default_rng(0).integers(1, 256, (B, H, W, C)), jnp.uint8)


OPS = {
    "crop": lambda k, x: augment.random_crop(k, x, padding=2),
    "crop_reflect": lambda k, x: augment.random_crop(k, x, padding=2, mode="reflect"),
    "flip": augment.random_flip,
    "cutout": lambda k, x: augment.cutout(k, x, size=3),
    "translate": lambda k, x: augment.random_translate(k, x, max_shift=2),
}


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32])
def test_shape_dtype_and_determinism(images, name, dtype):
  x = images.astype(dtype)
  out = OPS[name](jax.random.key(0), x)
  assert out.shape == x.shape and out.dtype == x.dtype
  np.testing.assert_array_equal(out, OPS[name](jax.random.key(0), x))
  assert not np.array_equal(out, OPS[name](jax.random.key(1), x))


def _padded(images, pad, mode):
  return np.pad(np.asarray(images), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_crop_is_a_translation_of_the_padded_image(images, mode):
  pad = 2
  out = np.asarray(augment.random_crop(jax.random.key(3), images, padding=pad, mode=mode))
  padded = _padded(images, pad, mode)
  offsets = set()
  for i in range(B):
    hits = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
            if np.array_equal(out[i], padded[i, dy:dy + H, dx:dx + W])]
    assert hits, f"example {i} is not a window of its padded image"
    offsets.add(hits[0])
  assert len(offsets) > 1  # per-example randomness


def test_translate_is_crop_with_padding_max_shift(images):
  k = jax.random.key(5)
  np.testing.assert_array_equal(augment.random_translate(k, images, max_shift=3),
                                augment.random_crop(k, images, padding=3))


def test_flip_is_an_exact_mirror(images):
  always = augment.random_flip(jax.random.key(0), images, prob=1.0)
  np.testing.assert_array_equal(always, np.asarray(images)[:, :, ::-1, :])
  out = np.asarray(augment.random_flip(jax.random.key(0), images))
  flipped = [np.array_equal(out[i], np.asarray(images)[i, :, ::-1]) for i in range(B)]
  kept = [np.array_equal(out[i], np.asarray(images)[i]) for i in range(B)]
  assert all(f or k for f, k in zip(flipped, kept))


def test_cutout_zeroes_at_most_one_square(images):
  out = np.asarray(augment.cutout(jax.random.key(0), images, size=3))
  changed = (out != np.asarray(images)).any(-1)
  assert (out[changed] == 0).all()
  for i in range(B):
    ys, xs = np.nonzero(changed[i])
    assert changed[i].sum() <= 9
    if ys.size:
      assert ys.max() - ys.min() < 3 and xs.max() - xs.min() < 3


def test_make_augment_spec_forms_and_jit(images):
  k = jax.random.key(2)
  a = augment.make_augment(("crop", "flip"))
  b = augment.make_augment([("random_crop", {"padding": 4}), ("random_flip", None)])
  c = augment.make_augment({"crop": {}, "flip": {}})
  # Crops and flips only move pixels (no arithmetic): jitted or not, exactly equal.
  np.testing.assert_array_equal(a(k, images), b(k, images))
  np.testing.assert_array_equal(jax.jit(c)(k, images), a(k, images))
  assert augment.make_augment(None)(k, images) is images
  assert augment.make_augment(())(k, images) is images
  assert augment.make_augment("flip")(k, images).shape == images.shape


def test_bad_specs_name_the_value(images):
  with pytest.raises(ValueError, match="'rotate'"):
    augment.make_augment(("crop", "rotate"))
  with pytest.raises(ValueError, match="'sideways'"):
    augment.random_crop(jax.random.key(0), images, mode="sideways")
  with pytest.raises(ValueError, match=r"\(6, 8, 8\)"):
    augment.random_flip(jax.random.key(0), images[..., 0])


# -- position-dependent augmentation ------------------------------------------------------------

def test_alternating_flip_flips_each_image_exactly_once_in_every_two_epochs(images):
  index = jnp.arange(B)
  flipped = []
  for epoch in range(4):
    out = augment.alternating_flip(None, images, index, epoch, seed=3)
    is_flipped = np.array([not np.array_equal(out[i], images[i]) for i in range(B)])
    for i in np.flatnonzero(is_flipped):
      np.testing.assert_array_equal(out[i], images[i, :, ::-1])
    flipped.append(is_flipped)
  for a, b in zip(flipped, flipped[1:]):
    np.testing.assert_array_equal(a, ~b)  # every pair of consecutive epochs: exactly once
  np.testing.assert_array_equal(flipped[0], flipped[2])  # a pure function of (index, epoch)
  # Epoch 0 is a random half: over many indices about half are flipped, and the seed matters.
  many = jnp.zeros((400, 1, 2, 1)).at[:, 0, 0, 0].set(1.0)
  first = augment.alternating_flip(None, many, jnp.arange(400), 0, seed=0)[:, 0, 1, 0]
  assert 150 < int(first.sum()) < 250
  other = augment.alternating_flip(None, many, jnp.arange(400), 0, seed=1)[:, 0, 1, 0]
  assert not np.array_equal(first, other)


def test_alternating_flip_needs_the_position():
  with pytest.raises(ValueError, match="`alternating_flip` needs the examples' `index`"):
    augment.make_augment("alternating_flip")(jax.random.key(0), jnp.zeros((2, 4, 4, 1)))


@pytest.mark.parametrize("kind", ["device", "stream"])
def test_loaders_give_the_augmentation_each_examples_index_and_the_epoch(kind):
  from jaxcnn.data._loaders import DeviceLoader, StreamLoader
  # Image i holds the value i in its left column only: a flip moves it to the right column.
  n = 12
  imgs = np.zeros((n, 2, 3, 1), np.uint8)
  imgs[:, :, 0, 0] = np.arange(n)[:, None] + 1
  arrays = {"image": imgs, "label": np.arange(n)}
  cls = DeviceLoader if kind == "device" else StreamLoader
  loader = cls(arrays, 4, shuffle=True, seed=5, augment=("alternating_flip",), mean=(0.0,),
               std=(1.0 / 255,))  # (x / 255 - 0) * 255: pixel values back
  seen = {}
  for epoch in range(3):
    for batch in loader.epoch(epoch):
      x = np.asarray(batch["image"])
      for img in x:
        value = int(round(img[:, :, 0].max()))
        seen.setdefault(value - 1, []).append(bool(img[0, 2, 0] > 0))
  assert sorted(seen) == list(range(n))
  for i, flips in seen.items():
    assert flips[0] != flips[1] and flips[1] != flips[2], (i, flips)
  # The loader's seed picks the half: the same as the pure function's for these indices.
  want = augment.alternating_flip(None, jnp.asarray(imgs), jnp.arange(n), 0, seed=5)
  assert [seen[i][0] for i in range(n)] == [bool(w[0, 2, 0] > 0) for w in np.asarray(want)]
