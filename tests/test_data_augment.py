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
