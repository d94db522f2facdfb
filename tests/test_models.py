"""Tests for jaxcnn.models: exact parameter counts (Keras' numbers), the registry, float32
logits under bfloat16 compute, and dropout plumbing."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import models

# 'rbg' keys: same semantics as the default threefry keys, but compile much faster on CPU.
KEY = jax.random.key(0, impl="rbg")


def _param_count(model, input_shape):
  variables = jax.eval_shape(model.init, KEY, jax.ShapeDtypeStruct(input_shape, jnp.float32))
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(variables))


def _numpy_params(model, x, seed=0):
  """Variables filled from numpy: no compiled random init, so the tests stay fast."""
  rng = np.random.default_rng(seed)
  abstract = jax.eval_shape(model.init, KEY, x)
  return jax.tree_util.tree_map(
      lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype), abstract)


def _conv(k, c_in, c_out):
  return k * k * c_in * c_out + c_out


def _dense(n_in, n_out):
  return n_in * n_out + n_out


@pytest.mark.parametrize("name, input_shape, expected", [
    ("tutorial_cnn", (1, 32, 32, 3), 122_570),       # Keras' tutorial, Dense(64) head
    ("tutorial_cnn_512", (1, 32, 32, 3), 586_250),   # the Dense(512) head
    ("mlp", (1, 28, 28, 1), 669_706),                # Keras' MNIST MLP
])
def test_keras_parameter_counts(name, input_shape, expected):
  assert _param_count(models.get_model(name), input_shape) == expected


def test_hand_counts_agree_with_keras_numbers():
  convs = _conv(3, 3, 32) + _conv(3, 32, 64) + _conv(3, 64, 64)
  assert convs + _dense(4 * 4 * 64, 64) + _dense(64, 10) == 122_570
  assert convs + _dense(4 * 4 * 64, 512) + _dense(512, 10) == 586_250
  assert _dense(784, 512) + _dense(512, 512) + _dense(512, 10) == 669_706


def test_stridenet_parameter_count():
  convs = _conv(3, 3, 32) + _conv(3, 32, 64) + _conv(3, 64, 128)
  # 32 -> 16 -> 8 -> 4 with stride 2 and SAME padding
  assert _param_count(models.get_model("stridenet"), (1, 32, 32, 3)) == (
      convs + _dense(4 * 4 * 128, 10))
  assert _param_count(models.get_model("stridenet", head="gap", num_classes=100),
                      (1, 32, 32, 3)) == convs + _dense(128, 100)
  with pytest.raises(ValueError, match="'avg'"):
    models.get_model("stridenet", head="avg")


def test_kwargs_reach_the_factory():
  model = models.get_model("mlp", num_classes=5, hidden=(32,), dropout=0.1)
  assert _param_count(model, (1, 4, 4, 2)) == _dense(32, 32) + _dense(32, 5)
  assert _param_count(models.get_model("tutorial_cnn", hidden=128, num_classes=3),
                      (1, 32, 32, 3)) == 56_320 + _dense(1024, 128) + _dense(128, 3)


def test_unknown_model_lists_known_names():
  with pytest.raises(ValueError, match="'resnet9000'") as info:
    models.get_model("resnet9000")
  for name in ("tutorial_cnn", "tutorial_cnn_512", "mlp", "stridenet"):
    assert name in str(info.value)
  assert set(models.MODELS) >= {"tutorial_cnn", "tutorial_cnn_512", "mlp", "stridenet"}


@pytest.mark.parametrize("num_classes", [2.5, "10", True, 0])
def test_num_classes_must_be_an_int(num_classes):
  # Before: 2.5 reached Dense and failed as "Dense `features` (=2.5)", not naming num_classes.
  with pytest.raises(ValueError,
                     match=rf"^`num_classes` \(={num_classes!r}\) must be an int >= 1$"):
    models.get_model("mlp", num_classes=num_classes)


@pytest.mark.parametrize("dtype, named", [
    ("float16", r"\(='float16'\) .* use 'bfloat16'$"), (jnp.float16, r"\(='float16'\)"),
    ("int32", r"\(='int32'\)"), ("bogus", r"\(='bogus'\)")])
def test_compute_dtype_is_one_the_models_support(dtype, named):
  # Before: float16 (no loss scaling, so gradients can silently flush to zero) was accepted.
  with pytest.raises(ValueError, match=r"^`dtype` " + named):
    models.get_model("tutorial_cnn", dtype=dtype)
  for ok in ("float32", "bfloat16", jnp.bfloat16, jnp.float32, np.dtype("float32")):
    assert models.get_model("tutorial_cnn", dtype=ok).dtype == ok


def test_register_adds_and_refuses_duplicates():
  @models.register("_test_tiny")
  def tiny(*, num_classes, dtype, axis_name=None):
    return models.MLP(num_classes=num_classes, hidden=(), dtype=dtype)

  try:
    assert _param_count(models.get_model("_test_tiny", num_classes=2), (1, 3)) == 8
    with pytest.raises(ValueError, match="already registered"):
      models.register("_test_tiny")(tiny)
  finally:
    del models.MODELS["_test_tiny"]


def test_bf16_logits_are_float32_and_params_float32():
  model = models.get_model("tutorial_cnn", dtype=jnp.bfloat16)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 32, 32, 3)), jnp.float32)
  abstract = jax.eval_shape(model.init, KEY, x)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(abstract)} == {jnp.dtype("float32")}
  variables = _numpy_params(model, x)
  ref_model = models.get_model("tutorial_cnn")
  logits, ref = jax.jit(lambda v, x: (model.apply(v, x), ref_model.apply(v, x)))(variables, x)
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32 and ref.dtype == jnp.float32
  np.testing.assert_allclose(logits, ref, rtol=0.05, atol=0.05)


def test_mlp_dropout_uses_the_dropout_rng():
  model = models.get_model("mlp", hidden=(64,), dropout=0.5)
  x = jnp.ones((2, 28, 28, 1))
  variables = _numpy_params(model, x)
  train = jax.jit(lambda key: model.apply(variables, x, train=True, rngs={"dropout": key}))
  key1, key2 = jax.random.key(1, impl="rbg"), jax.random.key(2, impl="rbg")
  y1, y1b, y2 = train(key1), train(key1), train(key2)
  assert y1.dtype == jnp.float32 and y1.shape == (2, 10)
  np.testing.assert_array_equal(y1, y1b)
  assert not np.allclose(y1, y2)
  # eval mode needs no rng and is deterministic
  assert model.apply(variables, x).shape == (2, 10)
