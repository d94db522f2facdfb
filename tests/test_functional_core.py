"""Dense, flatten, activations, softmax, losses: numpy references, gradients, errors."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
from jax.test_util import check_grads

from jaxcnn.functional import _core
from jaxcnn.functional._core import (
    ACTIVATIONS, cross_entropy, dense, elu, flatten, gelu, get_activation, leaky_relu,
    log_softmax, mse, relu, sigmoid, softmax, tanh)

RTOL = 1e-5


def assert_close(actual, expected, rtol=RTOL, atol=None):
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  assert actual.shape == expected.shape
  if atol is None:
    atol = rtol * max(np.abs(expected).max(initial=0.0), 1e-30)
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.fixture
def x():
  return np.random.default_rng(0).normal(scale=3.0, size=(4, 7)).astype(np.float32)


def test_activations_match_numpy(x):
  xd = x.astype(np.float64)
  sig = 1 / (1 + np.exp(-xd))
  phi = 0.5 * (1 + scipy.special.erf(xd / np.sqrt(2)))
  gelu_tanh = 0.5 * xd * (1 + np.tanh(np.sqrt(2 / np.pi) * (xd + 0.044715 * xd ** 3)))
  cases = {
      "relu": (relu(x), np.maximum(xd, 0)),
      "leaky_relu": (leaky_relu(x), np.where(xd >= 0, xd, 0.01 * xd)),
      "leaky_relu_0.2": (leaky_relu(x, 0.2), np.where(xd >= 0, xd, 0.2 * xd)),
      "elu": (elu(x), np.where(xd > 0, xd, np.expm1(xd))),
      "elu_2": (elu(x, 2.0), np.where(xd > 0, xd, 2.0 * np.expm1(xd))),
      "gelu": (gelu(x), xd * phi),
      "gelu_tanh": (gelu(x, approximate=True), gelu_tanh),
      "sigmoid": (sigmoid(x), sig),
      "tanh": (tanh(x), np.tanh(xd)),
  }
  for name, (actual, expected) in cases.items():
    assert actual.shape == x.shape and actual.dtype == jnp.float32, name
    # Elementwise relative error (small values too), with a float32-epsilon floor.
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=RTOL, atol=1e-7,
                               err_msg=name)


def test_softmax_and_log_softmax(x):
  xd = x.astype(np.float64)
  e = np.exp(xd - xd.max(-1, keepdims=True))
  ref = e / e.sum(-1, keepdims=True)
  p = softmax(x)
  assert_close(p, ref)
  assert_close(p.sum(-1), np.ones(4))
  assert_close(softmax(x, axis=0), np.exp(xd) / np.exp(xd).sum(0, keepdims=True))
  assert_close(log_softmax(x), np.log(ref))
  assert_close(log_softmax(x, axis=0), xd - scipy.special.logsumexp(xd, axis=0, keepdims=True))


def test_log_softmax_is_stable_for_large_logits():
  z = jnp.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0]])
  out = np.asarray(log_softmax(z))
  assert np.isfinite(out).all()
  np.testing.assert_allclose(out[0], [0.0, -1000.0, -2000.0], rtol=1e-6)
  np.testing.assert_allclose(out[1], -np.log(3) * np.ones(3), rtol=1e-6)
  assert np.isfinite(np.asarray(softmax(z))).all()


def numpy_cross_entropy(logits, labels, eps=0.0):
  logits = logits.astype(np.float64)
  k = logits.shape[-1]
  logp = logits - scipy.special.logsumexp(logits, axis=-1, keepdims=True)
  target = (1 - eps) * np.eye(k)[labels] + eps / k
  return -(target * logp).sum(-1)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_cross_entropy_matches_numpy_and_optax(eps):
  rng = np.random.default_rng(1)
  logits = rng.normal(scale=2.0, size=(16, 10)).astype(np.float32)
  labels = rng.integers(0, 10, size=16).astype(np.int32)
  loss = cross_entropy(logits, labels, label_smoothing=eps)
  assert loss.shape == (16,) and loss.dtype == jnp.float32
  assert_close(loss, numpy_cross_entropy(logits, labels, eps))
  smoothed = optax.smooth_labels(jax.nn.one_hot(labels, 10), eps)
  assert_close(loss, optax.softmax_cross_entropy(logits, smoothed))
  if eps == 0.0:
    assert_close(loss, optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def test_cross_entropy_large_logits_and_bf16():
  logits = jnp.array([[1000.0, 0.0], [0.0, 1000.0]])
  np.testing.assert_allclose(cross_entropy(logits, jnp.array([0, 0])), [0.0, 1000.0])
  loss = cross_entropy(logits.astype(jnp.bfloat16), jnp.array([0, 0]))
  assert loss.dtype == jnp.float32  # losses are computed in at least float32


def test_cross_entropy_errors():
  logits = jnp.zeros((3, 4))
  with pytest.raises(ValueError, match=r"\[0, 4\).*\[4, -1\]"):
    cross_entropy(logits, jnp.array([0, 4, -1]))
  with pytest.raises(ValueError, match=r"shapes"):
    cross_entropy(logits, jnp.array([0, 1]))
  with pytest.raises(ValueError, match=r"integer"):
    cross_entropy(logits, jnp.array([0.0, 1.0, 2.0]))
  for eps in (-0.1, 1.0, 2.0):
    with pytest.raises(ValueError, match=r"`label_smoothing`"):
      cross_entropy(logits, jnp.array([0, 1, 2]), label_smoothing=eps)
  with pytest.raises(ValueError, match=r"^`label_smoothing` \(='0\.1'\) .* not a str$"):
    cross_entropy(logits, jnp.array([0, 1, 2]), label_smoothing="0.1")
  # A lone [K] row with a scalar label gave a scalar loss (a batch mean then took it as is).
  with pytest.raises(ValueError, match=r"`logits` \[B, K\], got shape \(4,\).*logits\[None\]"):
    cross_entropy(jnp.zeros(4), 3)
  assert cross_entropy(jnp.zeros((1, 4)), jnp.array([3])).shape == (1,)
  # Under jit the values are unknown: an out-of-range label gives nan, never a silent number.
  out = jax.jit(cross_entropy)(logits, jnp.array([0, 4, -1]))
  assert np.isfinite(out[0]) and np.isnan(out[1:]).all()


def test_mse():
  rng = np.random.default_rng(2)
  pred = rng.normal(size=(5, 3, 4)).astype(np.float32)
  target = rng.normal(size=(5, 3, 4)).astype(np.float32)
  assert_close(mse(pred, target), ((pred.astype(np.float64) - target) ** 2).mean(axis=(1, 2)))
  assert_close(mse(pred[:, 0, 0], target[:, 0, 0]),
               (pred[:, 0, 0].astype(np.float64) - target[:, 0, 0]) ** 2)
  with pytest.raises(ValueError, match=r"\(5, 3, 4\) and \(5, 12\)"):
    mse(pred, target.reshape(5, 12))


def test_dense_and_flatten():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(2, 3, 5)).astype(np.float32)
  w = rng.normal(size=(5, 4)).astype(np.float32)
  b = rng.normal(size=(4,)).astype(np.float32)
  assert_close(dense(x, w, b), x.astype(np.float64) @ w + b)
  assert_close(dense(x[0], w), x[0].astype(np.float64) @ w)
  with pytest.raises(ValueError, match=r"\(2, 3, 5\).*\(4, 4\)"):
    dense(x, w[:4])
  with pytest.raises(ValueError, match=r"\[in, out\]"):
    dense(x, w[None])
  with pytest.raises(ValueError, match=r"\(4,\)"):
    dense(x, w, b[:3])
  assert flatten(jnp.zeros((2, 4, 4, 3))).shape == (2, 48)
  assert flatten(jnp.zeros((2, 7))).shape == (2, 7)
  assert flatten(jnp.zeros((0, 3, 2))).shape == (0, 6)
  np.testing.assert_array_equal(flatten(x), x.reshape(2, -1))


def test_gradients():
  rng = np.random.default_rng(4)
  with jax.enable_x64(True):
    logits = jnp.asarray(rng.normal(size=(6, 5)))
    labels = jnp.asarray(rng.integers(0, 5, size=6))
    check_grads(jax.jit(lambda z: cross_entropy(z, labels, label_smoothing=0.1)), (logits,),
                order=1, modes=("fwd", "rev"))
    x, w, b = (jnp.asarray(rng.normal(size=s)) for s in ((3, 4), (4, 2), (2,)))
    check_grads(jax.jit(dense), (x, w, b), order=1, modes=("fwd", "rev"))
  # The gradient of the mean loss w.r.t. logits is (softmax - target) / B.
  logits = rng.normal(size=(4, 3)).astype(np.float32)
  labels = np.array([0, 2, 1, 2])
  g = jax.grad(lambda z: cross_entropy(z, labels).mean())(logits)
  assert_close(g, (np.asarray(softmax(logits)) - np.eye(3)[labels]) / 4)


def test_get_activation():
  assert get_activation("relu") is relu
  assert get_activation("GELU") is gelu
  assert get_activation(None)(jnp.array(-2.0)) == -2.0
  fn = lambda z: z * 2
  assert get_activation(fn) is fn
  assert set(ACTIVATIONS) >= {"relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax",
                              "log_softmax", "linear"}
  with pytest.raises(ValueError, match=r"'swishy'.*'relu'"):
    get_activation("swishy")
  with pytest.raises(ValueError, match=r"3"):
    get_activation(3)


def test_docstring_examples():
  assert doctest.testmod(_core, raise_on_error=False).failed == 0


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2])
def test_leaky_relu_derivative_at_zero_is_the_slope(slope):
  # PyTorch's convention: at exactly 0 the negative side's slope; slope 0 agrees with relu.
  grad = jax.grad(lambda x: leaky_relu(x, slope))
  assert float(grad(0.0)) == pytest.approx(slope)
  assert float(grad(1e-3)) == 1.0 and float(grad(-1e-3)) == pytest.approx(slope)
  assert float(leaky_relu(0.0, slope)) == 0.0
  if slope == 0.0:
    xs = jnp.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(jax.vmap(grad)(xs), jax.vmap(jax.grad(relu))(xs))


@pytest.mark.parametrize("fn, name", [(leaky_relu, "negative_slope"), (elu, "alpha")])
def test_activation_parameter_given_as_a_string_names_it(fn, name):
  # Before: leaky_relu raised "Only integer scalar arrays can be converted to a scalar index"
  # and elu jax's multi-line "Error interpreting argument ... as an abstract array".
  with pytest.raises(ValueError, match=rf"^{fn.__name__} `{name}` \(='0\.1'\) must be a number"):
    fn(jnp.ones(3), "0.1")
  x = jnp.array([-2.0, 3.0])
  # Arrays (a learnable slope) and numpy scalars still work, under jit too.
  assert_close(fn(x, jnp.asarray(0.5)), fn(x, 0.5))
  assert_close(jax.jit(fn)(x, 0.5), fn(x, np.float32(0.5)))
