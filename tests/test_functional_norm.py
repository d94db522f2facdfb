"""batch_norm: train/eval semantics, the running-stat update, and pmap equivalence."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.functional import _norm
from jaxcnn.functional._norm import batch_norm


def make(shape=(8, 5, 5, 3), seed=0):
  rng = np.random.default_rng(seed)
  c = shape[-1]
  x = (rng.normal(size=shape) * 3 + 2).astype(np.float32)
  scale = rng.uniform(0.5, 2.0, size=c).astype(np.float32)
  bias = rng.normal(size=c).astype(np.float32)
  mean = rng.normal(size=c).astype(np.float32)
  var = rng.uniform(0.5, 2.0, size=c).astype(np.float32)
  return x, scale, bias, mean, var


@pytest.mark.parametrize("shape", [(64, 3), (8, 5, 5, 3), (4, 3, 4, 5, 3)])
def test_train_mode_normalises_per_channel(shape):
  x, _, _, mean, var = make(shape)
  y, _ = batch_norm(x, None, None, mean, var, train=True, epsilon=0.0)
  axes = tuple(range(len(shape) - 1))
  np.testing.assert_allclose(np.asarray(y).mean(axis=axes), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(y, np.float64).var(axis=axes), 1.0, rtol=1e-5)


def test_train_mode_output_and_running_stats_exact():
  x, scale, bias, mean, var = make()
  momentum, eps = 0.8, 1e-3
  y, (new_mean, new_var) = batch_norm(x, scale, bias, mean, var, train=True, momentum=momentum,
                                      epsilon=eps)
  xd = x.astype(np.float64)
  bm, bv = xd.mean(axis=(0, 1, 2)), xd.var(axis=(0, 1, 2))  # biased variance (ddof=0)
  np.testing.assert_allclose(y, (xd - bm) / np.sqrt(bv + eps) * scale + bias, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(new_mean, momentum * mean + (1 - momentum) * bm, rtol=1e-5)
  np.testing.assert_allclose(new_var, momentum * var + (1 - momentum) * bv, rtol=1e-5)
  assert new_mean.dtype == new_var.dtype == jnp.float32


def test_train_mode_large_mean_is_stable():
  # |mean| >> std: E[x^2] - E[x]^2 alone would cancel catastrophically in float32.
  rng = np.random.default_rng(1)
  x = (1e4 + rng.normal(size=(256, 2))).astype(np.float32)
  mean = np.full(2, 1e4, np.float32)
  _, (_, new_var) = batch_norm(x, None, None, mean, np.ones(2, np.float32), train=True,
                               momentum=0.0)
  np.testing.assert_allclose(new_var, x.astype(np.float64).var(axis=0), rtol=1e-3)


def test_eval_mode_uses_running_stats_unchanged():
  x, scale, bias, mean, var = make()
  y, (m, v) = batch_norm(x, scale, bias, mean, var, train=False)
  assert m is mean and v is var
  np.testing.assert_allclose(y, (x.astype(np.float64) - mean) / np.sqrt(var + 1e-5) * scale +
                             bias, rtol=1e-5, atol=1e-5)


def test_bfloat16_input_keeps_dtype():
  x, scale, bias, mean, var = make()
  y, (m, _) = batch_norm(jnp.asarray(x, jnp.bfloat16), scale, bias, mean, var, train=True)
  assert y.dtype == jnp.bfloat16 and m.dtype == jnp.float32


def test_axis_name_under_pmap_equals_global_batch():
  n = jax.local_device_count()
  assert n == 8, "conftest should provide 8 CPU devices"
  x, scale, bias, mean, var = make((n * 4, 3, 3, 2), seed=2)
  y_ref, (m_ref, v_ref) = batch_norm(x, scale, bias, mean, var, train=True)
  f = jax.pmap(lambda x: batch_norm(x, scale, bias, mean, var, train=True, axis_name="batch"),
               axis_name="batch")
  y, (m, v) = f(x.reshape(n, 4, 3, 3, 2))
  np.testing.assert_allclose(np.asarray(y).reshape(x.shape), y_ref, rtol=1e-5, atol=1e-5)
  for i in range(n):  # every device holds the same, global, running statistics
    # atol: momentum * old + (1 - momentum) * batch may cancel to near 0.
    np.testing.assert_allclose(m[i], m_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v[i], v_ref, rtol=1e-5, atol=1e-6)


def test_gradients_flow_through_batch_statistics():
  x, scale, bias, mean, var = make((6, 2))
  g = jax.jit(jax.grad(
      lambda x: batch_norm(x, scale, bias, mean, var, train=True)[0][:, 0].sum()))(x)
  # sum over the batch of a normalised channel is constant (= B * bias), so the gradient is 0.
  np.testing.assert_allclose(g, 0.0, atol=1e-5)


def test_errors():
  x, scale, bias, mean, var = make()
  with pytest.raises(ValueError, match=r"`scale`.*\(3,\).*\(2,\)"):
    batch_norm(x, scale[:2], bias, mean, var, train=True)
  with pytest.raises(ValueError, match=r"rank"):
    batch_norm(x[0, 0, 0], scale, bias, mean, var, train=True)
  with pytest.raises(ValueError, match=r"`momentum`"):
    batch_norm(x, scale, bias, mean, var, train=True, momentum=1.5)


def test_docstring_examples():
  assert doctest.testmod(_norm, raise_on_error=False).failed == 0


@pytest.mark.parametrize("ratio, rtol", [(100.0, 1e-5), (1000.0, 1e-4)])
def test_train_mode_far_from_zero_matches_float64(ratio, rtol):
  # A fresh layer (running mean 0) on inputs with |mean|/std = ratio: the moments are taken in
  # two passes, so the output keeps float32 precision (a one-pass variance about the running
  # mean had relative error 5.6e-4 at 100 and 5.6e-2 at 1000).
  rng = np.random.default_rng(7)
  std = 0.5
  x = (ratio * std + std * rng.normal(size=(32, 6, 6, 4))).astype(np.float32)
  scale = rng.uniform(0.5, 2.0, size=4).astype(np.float32)
  bias = rng.normal(size=4).astype(np.float32)
  eps = 1e-5
  y, (new_mean, new_var) = batch_norm(x, scale, bias, np.zeros(4, np.float32),
                                      np.ones(4, np.float32), train=True, momentum=0.0,
                                      epsilon=eps)
  xd = x.astype(np.float64)
  bm, bv = xd.mean(axis=(0, 1, 2)), xd.var(axis=(0, 1, 2))
  ref = (xd - bm) / np.sqrt(bv + eps) * scale + bias
  rel = np.max(np.abs(np.asarray(y, np.float64) - ref)) / np.max(np.abs(ref))
  assert rel < rtol, rel
  np.testing.assert_allclose(new_var, bv, rtol=rtol)
  np.testing.assert_allclose(new_mean, bm, rtol=1e-6)


def test_two_pass_moments_under_axis_name_match_one_device():
  rng = np.random.default_rng(3)
  x = (300.0 + rng.normal(size=(8, 3))).astype(np.float32)
  zeros, ones = np.zeros(3, np.float32), np.ones(3, np.float32)
  y, (m, v) = batch_norm(x, None, None, zeros, ones, train=True)
  y2, (m2, v2) = jax.vmap(
      lambda xs: batch_norm(xs, None, None, zeros, ones, train=True, axis_name="d"),
      axis_name="d")(x.reshape(2, 4, 3))
  np.testing.assert_allclose(np.asarray(y2).reshape(8, 3), y, rtol=1e-5, atol=1e-5)
  for a, b in ((m2[0], m), (m2[1], m), (v2[0], v), (v2[1], v)):
    np.testing.assert_allclose(a, b, rtol=1e-5)
