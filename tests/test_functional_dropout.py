"""Dropout and channel dropout: statistics, determinism, identity cases and errors."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.functional import _dropout
from jaxcnn.functional._dropout import channel_dropout, dropout


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_kept_fraction_and_mean(rate):
  n = 200_000
  x = jnp.asarray(np.random.default_rng(0).uniform(1.0, 2.0, size=(n,)).astype(np.float32))
  y = np.asarray(dropout(jax.random.key(0), x, rate))
  kept = y != 0
  # Binomial(n, 1-rate): 5 standard deviations.
  assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)
  np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / (1 - rate), rtol=1e-6)
  # Inverted scaling preserves the mean: E[y] = E[x] within the sampling error of the mask.
  # Given x, y_i - x_i has variance x_i^2 * rate / (1 - rate).
  xn = np.asarray(x, np.float64)
  std_of_mean = np.sqrt((xn ** 2).sum() * rate / (1 - rate)) / n
  assert abs(y.mean() - xn.mean()) < 5 * std_of_mean


def test_same_key_same_mask_different_keys_differ():
  x = jnp.ones((64, 32))
  a = dropout(jax.random.key(1), x, 0.5)
  np.testing.assert_array_equal(a, dropout(jax.random.key(1), x, 0.5))
  assert (np.asarray(a) != np.asarray(dropout(jax.random.key(2), x, 0.5))).any()
  # Legacy uint32 keys work too.
  np.testing.assert_array_equal(dropout(jax.random.PRNGKey(3), x, 0.5),
                                dropout(jax.random.PRNGKey(3), x, 0.5))


def test_identity_cases():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32))
  key = jax.random.key(0)
  for fn in (dropout, channel_dropout):
    xx = x[:, :, None]
    assert fn(key, xx, 0.5, deterministic=True) is xx
    assert fn(key, xx, 0.0) is xx
    assert fn(key, xx, 0) is xx


def test_dtype_and_jit():
  x = jnp.ones((8, 4, 4, 3), jnp.bfloat16)
  for fn in (dropout, channel_dropout):
    y = jax.jit(lambda k, x: fn(k, x, 0.5))(jax.random.key(0), x)
    assert y.dtype == jnp.bfloat16 and y.shape == x.shape
    assert set(np.unique(np.asarray(y, np.float32)).tolist()) <= {0.0, 2.0}


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.5x", True])
def test_rate_outside_range_raises(rate):
  for fn in (dropout, channel_dropout):
    with pytest.raises(ValueError, match=r"`rate`"):
      fn(jax.random.key(0), jnp.ones((2, 3, 4)), rate)
    with pytest.raises(ValueError, match=r"`rate`"):  # checked even when deterministic
      fn(jax.random.key(0), jnp.ones((2, 3, 4)), rate, deterministic=True)


@pytest.mark.parametrize("rate", ["0.5", "0.1", None, np.array([0.5])])
def test_rate_given_as_a_string_or_array_is_refused_not_converted(rate):
  # Before, float('0.5') quietly accepted a rate read from a config file as text.
  for fn in (dropout, channel_dropout):
    with pytest.raises(ValueError, match=r"^`rate` \(=.*\) must be a float in \[0, 1\), not a "):
      fn(jax.random.key(0), jnp.ones((2, 3, 4)), rate)


def test_numpy_scalar_rates_are_accepted():
  for rate in (np.float32(0.5), np.float64(0.5), np.array(0.5), 0):
    assert dropout(jax.random.key(0), jnp.ones((2, 3, 4)), rate).shape == (2, 3, 4)


def test_traced_rate_raises():
  with pytest.raises(ValueError, match=r"`rate`"):
    jax.jit(lambda r: dropout(jax.random.key(0), jnp.ones(3), r))(0.5)


@pytest.mark.parametrize("shape", [(16, 10, 8), (16, 5, 6, 8), (8, 3, 4, 5, 8)])
def test_channel_dropout_zeroes_whole_channels(shape):
  rate = 0.5
  x = np.random.default_rng(2).uniform(1.0, 2.0, size=shape).astype(np.float32)
  y = np.asarray(channel_dropout(jax.random.key(4), x, rate))
  spatial = tuple(range(1, len(shape) - 1))
  zero = (y == 0).all(axis=spatial)  # [B, C]
  scaled = np.isclose(y, x / (1 - rate), rtol=1e-6).all(axis=spatial)
  assert (zero ^ scaled).all(), "each [b, ..., c] map must be all-zero or all-scaled"
  assert 0 < zero.mean() < 1


def test_channel_dropout_kept_fraction():
  rate, b, c = 0.3, 500, 200
  y = np.asarray(channel_dropout(jax.random.key(5), jnp.ones((b, 2, 2, c)), rate))
  kept = (y[:, 0, 0, :] != 0).mean()
  assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / (b * c))
  # Masks differ across examples and across channels (not one mask broadcast over the batch).
  mask = y[:, 0, 0, :] != 0
  assert (mask != mask[:1]).any() and (mask != mask[:, :1]).any()


def test_channel_dropout_needs_spatial_dims():
  with pytest.raises(ValueError, match=r"rank"):
    channel_dropout(jax.random.key(0), jnp.ones((4, 8)), 0.5)


def test_docstring_examples():
  assert doctest.testmod(_dropout, raise_on_error=False).failed == 0
