"""Tests for jaxcnn.layers: shapes agree with jaxcnn.shapes, values equal the functional ops,
rng and batch-statistics plumbing, mixed precision, MAC counts and error messages."""

import inspect
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import functional as F
from jaxcnn import layers as L
from jaxcnn import shapes

# 'rbg' keys: the same semantics as the default threefry keys, but their random-bits op compiles
# in about a tenth of the time on CPU, which is most of what these small tests cost.
KEY = jax.random.key(0, impl="rbg")


def _key(seed):
  return jax.random.key(seed, impl="rbg")


def _rand(shape, seed=0, dtype=np.float32):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def _numpy_variables(module, x, seed=0, **kwargs):
  """Variables of `module` filled from numpy (no compiled random init: keeps the tests fast)."""
  rng = np.random.default_rng(seed)
  shapes_tree = jax.eval_shape(lambda k, x: module.init(k, x, **kwargs), KEY, x)
  return {col: jax.tree_util.tree_map(
      lambda s: jnp.asarray(rng.uniform(0.5, 1.5, s.shape) if col == "batch_stats"
                            else 0.3 * rng.standard_normal(s.shape), s.dtype), tree)
          for col, tree in shapes_tree.items()}


def _abstract_apply(layer, input_shape, **kwargs):
  """(output ShapeDtypeStruct, variables) of `layer` on `input_shape`, without computing."""
  return jax.eval_shape(
      lambda x: layer.init_with_output({"params": KEY, "dropout": KEY}, x, **kwargs),
      jax.ShapeDtypeStruct(input_shape, jnp.float32))


# ------------------------------------------------------------------------------- shape agreement

CONV_CASES = [
    # input_shape, kernel, stride, padding, dilation
    ((2, 9, 3), 3, 1, "VALID", 1),
    ((2, 9, 3), 4, 2, "SAME", 1),
    ((1, 10, 2), 3, 3, "FULL", 2),
    ((2, 8, 7, 3), 3, 1, "VALID", 1),
    ((2, 8, 7, 3), (3, 2), (2, 1), "SAME", 1),
    ((1, 9, 9, 2), 3, 2, 1, (2, 1)),
    ((1, 9, 9, 2), (3, 3), 1, ((0, 1), (2, 0)), 1),
    ((1, 6, 5, 4, 2), 3, 1, "VALID", 1),
    ((1, 6, 5, 4, 2), (2, 3, 1), 2, "SAME", 1),
    ((1, 7, 7, 7, 1), 2, 1, "FULL", (1, 2, 1)),
]


@pytest.mark.parametrize("input_shape, kernel, stride, padding, dilation", CONV_CASES)
def test_conv_shape_matches_prediction(input_shape, kernel, stride, padding, dilation):
  layer = L.Conv(5, kernel, stride=stride, padding=padding, dilation=dilation)
  out, variables = _abstract_apply(layer, input_shape)
  expected = shapes.conv_output_shape(input_shape, kernel, 5, stride=stride, padding=padding,
                                      dilation=dilation)
  assert out.shape == expected
  n = len(input_shape) - 2
  k = shapes.normalize_tuple(kernel, n, "kernel_size")
  assert variables["params"]["kernel"].shape == (*k, input_shape[-1], 5)
  assert variables["params"]["bias"].shape == (5,)
  n_params = sum(math.prod(v.shape) for v in jax.tree_util.tree_leaves(variables))
  assert n_params == shapes.conv_param_count(kernel, input_shape[-1], 5, ndim=n)


POOL_CASES = [
    ((2, 9, 3), 2, None, "VALID"),
    ((2, 9, 3), 3, 2, "SAME"),
    ((2, 8, 7, 3), 2, None, "VALID"),
    ((2, 8, 7, 3), (3, 2), (2, 1), "SAME"),
    ((1, 9, 9, 2), 3, 2, 1),
    ((1, 6, 5, 4, 2), 2, None, "VALID"),
    ((1, 6, 5, 4, 2), (2, 3, 1), 2, "SAME"),
]
POOL_LAYERS = [
    lambda w, s, p: L.MaxPool(w, s, p),
    lambda w, s, p: L.AvgPool(w, s, p),
    lambda w, s, p: L.SumPool(w, s, p),
    lambda w, s, p: L.LpPool(2.0, w, s, p),
]


@pytest.mark.parametrize("input_shape, window, stride, padding", POOL_CASES)
def test_pool_shapes_match_prediction(input_shape, window, stride, padding):
  expected = shapes.pool_output_shape(input_shape, window, stride=stride, padding=padding)
  for make in POOL_LAYERS:
    out, variables = _abstract_apply(make(window, stride, padding), input_shape)
    assert out.shape == expected
    assert not jax.tree_util.tree_leaves(variables)


@pytest.mark.parametrize("input_shape", [(2, 5, 3), (2, 4, 5, 3), (2, 3, 4, 5, 3)])
def test_shape_only_layers(input_shape):
  batch, channels = input_shape[0], input_shape[-1]
  for layer, expected in [
      (L.GlobalAvgPool(), (batch, channels)),
      (L.GlobalMaxPool(), (batch, channels)),
      (L.Flatten(), (batch, math.prod(input_shape[1:]))),
      (L.Dense(7), (*input_shape[:-1], 7)),
      (L.Dropout(0.5), input_shape),
      (L.ChannelDropout(0.5), input_shape),
      (L.BatchNorm(), input_shape),
      (L.Activation("relu"), input_shape),
  ]:
    for train in (False, True):
      out, _ = _abstract_apply(layer, input_shape, train=train)
      assert out.shape == expected, (layer, train)


# ------------------------------------------------------------------- values equal functional ops

@pytest.mark.parametrize("input_shape, kw", [
    ((2, 9, 4), dict(kernel_size=3, stride=2, padding="SAME", groups=2)),
    ((2, 7, 6, 4), dict(kernel_size=(3, 2), dilation=(1, 2), padding=1)),
    ((1, 5, 4, 4, 2), dict(kernel_size=2, stride=(1, 2, 1))),
])
def test_conv_equals_functional(input_shape, kw):
  layer = L.Conv(6, activation="relu", **kw)
  x = _rand(input_shape)
  variables = _numpy_variables(layer, x)
  params = variables["params"]
  conv_kw = {k: v for k, v in kw.items() if k != "kernel_size"}
  y, expected = jax.jit(lambda v, x: (
      layer.apply(v, x), F.relu(F.conv(x, v["params"]["kernel"], v["params"]["bias"],
                                       **conv_kw))))(variables, x)
  np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
  groups = kw.get("groups", 1)
  assert params["kernel"].shape[-2:] == (input_shape[-1] // groups, 6)


def test_dense_equals_functional():
  x = _rand((3, 20))
  layer = L.Dense(30, activation="tanh")
  variables = _numpy_variables(layer, x)
  p = variables["params"]
  np.testing.assert_allclose(layer.apply(variables, x),
                             F.tanh(F.dense(x, p["kernel"], p["bias"])), rtol=1e-6)


def test_default_init_is_keras_glorot_uniform_and_zero_bias():
  conv, dense = L.Conv(16, 3), L.Dense(30)
  conv_p, dense_p = jax.jit(lambda k: (conv.init(k, jnp.ones((1, 5, 5, 4)))["params"],
                                       dense.init(k, jnp.ones((1, 20)))["params"]))(KEY)
  # glorot_uniform: |w| <= sqrt(6 / (fan_in + fan_out)), with fan_in = prod(k) * C_in and
  # fan_out = prod(k) * C_out for a conv kernel, as in Keras.
  for kernel, bias, limit in [(conv_p["kernel"], conv_p["bias"], math.sqrt(6 / (9 * 4 + 9 * 16))),
                              (dense_p["kernel"], dense_p["bias"], math.sqrt(6 / (20 + 30)))]:
    assert kernel.dtype == jnp.float32
    assert 0.9 * limit < float(jnp.max(jnp.abs(kernel))) <= limit
    assert not np.any(bias)


def test_pools_equal_functional():
  x = _rand((2, 7, 6, 3))
  for layer, expected in [
      (L.MaxPool(2), F.max_pool(x, 2)),
      (L.AvgPool(3, 2, "SAME", count_include_pad=False),
       F.avg_pool(x, 3, 2, "SAME", count_include_pad=False)),
      (L.SumPool((2, 3), 1), F.sum_pool(x, (2, 3), 1)),
      (L.LpPool(3.0, 2), F.lp_pool(x, 3.0, 2)),
      (L.GlobalAvgPool(), F.global_avg_pool(x)),
      (L.GlobalMaxPool(), F.global_max_pool(x)),
      (L.Flatten(), F.flatten(x)),
      (L.Activation("leaky_relu"), F.leaky_relu(x)),
      (L.Activation(jnp.abs), jnp.abs(x)),
  ]:
    np.testing.assert_allclose(layer.apply({}, x), expected, rtol=1e-6, err_msg=repr(layer))


# ------------------------------------------------------------------------------------ dropout

@pytest.mark.parametrize("cls", [L.Dropout, L.ChannelDropout])
def test_dropout_rng_and_train_flag(cls):
  x = jnp.ones((4, 5, 5, 8))
  layer = cls(0.5)
  # eval: identity, and no 'dropout' rng is needed
  assert layer.apply({}, x) is x
  apply = jax.jit(lambda key: layer.apply({}, x, train=True, rngs={"dropout": key}))
  y1, y1b, y2 = apply(_key(1)), apply(_key(1)), apply(_key(2))
  np.testing.assert_array_equal(y1, y1b)
  assert not np.array_equal(y1, y2)
  assert set(np.unique(np.asarray(y1))) <= {0.0, 2.0}  # inverted scaling 1 / (1 - rate)
  if cls is L.ChannelDropout:  # whole feature maps are dropped
    per_map = np.asarray(y1).reshape(4, 25, 8)
    assert np.all(per_map.min(axis=1) == per_map.max(axis=1))
  with pytest.raises(Exception, match="dropout"):  # the rng stream is required in train mode
    jax.eval_shape(lambda x: layer.apply({}, x, train=True), x)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rate_out_of_range(rate):
  with pytest.raises(ValueError, match=r"rate.*\(=" + str(rate).replace(".", r"\.")):
    L.Dropout(rate).apply({}, jnp.ones((2, 3)))


# --------------------------------------------------------------------------------- batch norm

def test_batch_norm_train_updates_stats_eval_does_not():
  x = _rand((8, 3, 3, 4)) * 2.0 + 1.0
  bn = L.BatchNorm(momentum=0.8)
  init_vars = jax.eval_shape(lambda k, x: bn.init(k, x, train=True), KEY, x)
  assert set(init_vars["params"]) == {"scale", "bias"}
  assert set(init_vars["batch_stats"]) == {"mean", "var"}
  variables = _numpy_variables(bn, x, train=True)
  p, stats = variables["params"], variables["batch_stats"]

  @jax.jit
  def run(variables, x):
    train = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    evaluation = bn.apply(variables, x, train=False, mutable=["batch_stats"])
    ref_train = F.batch_norm(x, p["scale"], p["bias"], stats["mean"], stats["var"], train=True,
                             momentum=0.8)
    ref_eval = F.batch_norm(x, p["scale"], p["bias"], stats["mean"], stats["var"], train=False)
    fresh = bn.init(KEY, x, train=True)["batch_stats"]  # init does not update the stats
    return train, evaluation, ref_train, ref_eval, fresh

  ((y, updates), (y_eval, eval_updates), (ref_y, (ref_mean, ref_var)), (ref_y_eval, _),
   fresh) = run(variables, x)
  np.testing.assert_array_equal(fresh["mean"], np.zeros(4))
  np.testing.assert_array_equal(fresh["var"], np.ones(4))
  np.testing.assert_allclose(y, ref_y, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(updates["batch_stats"]["mean"], ref_mean, rtol=1e-6)
  np.testing.assert_allclose(updates["batch_stats"]["var"], ref_var, rtol=1e-6)
  assert not np.allclose(updates["batch_stats"]["mean"], stats["mean"])
  # eval mode: the running stats are used and left as they are
  np.testing.assert_array_equal(eval_updates["batch_stats"]["mean"], stats["mean"])
  np.testing.assert_array_equal(eval_updates["batch_stats"]["var"], stats["var"])
  np.testing.assert_allclose(y_eval, ref_y_eval, rtol=1e-6, atol=1e-6)
  shape = (1, 1, 1, 4)
  by_hand = ((x - stats["mean"].reshape(shape)) / jnp.sqrt(stats["var"].reshape(shape) + 1e-5)
             * p["scale"].reshape(shape) + p["bias"].reshape(shape))
  np.testing.assert_allclose(y_eval, by_hand, rtol=1e-5, atol=1e-5)


def test_batch_norm_axis_name_uses_global_batch_moments():
  # 2 "devices" x 4 examples under vmap(axis_name=...) equal one batch of 8 without it.
  x = _rand((8, 3), seed=2) * 3.0 + 2.0
  variables = _numpy_variables(L.BatchNorm(), x)
  split = L.BatchNorm(axis_name="devices")
  run = jax.jit(lambda v, x: (
      L.BatchNorm().apply(v, x, train=True, mutable=["batch_stats"]),
      jax.vmap(lambda xs: split.apply(v, xs, train=True, mutable=["batch_stats"]),
               axis_name="devices")(x.reshape(2, 4, 3))))
  (y, stats), (y_split, stats_split) = run(variables, x)
  np.testing.assert_allclose(y_split.reshape(8, 3), y, rtol=1e-5, atol=1e-5)
  for name in ("mean", "var"):
    np.testing.assert_allclose(stats_split["batch_stats"][name][0], stats["batch_stats"][name],
                               rtol=1e-5)
    np.testing.assert_allclose(stats_split["batch_stats"][name][1], stats["batch_stats"][name],
                               rtol=1e-5)


# ------------------------------------------------------------------------------ mixed precision

def test_bf16_compute_keeps_float32_params():
  x = _rand((2, 8, 8, 3))

  def net(dtype):
    return L.Sequential([L.Conv(4, 3, activation="relu", dtype=dtype), L.BatchNorm(dtype=dtype),
                         L.MaxPool(2), L.Flatten(), L.Dense(5, dtype=dtype)])

  abstract = jax.eval_shape(net(jnp.bfloat16).init, KEY, x)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(abstract)} == {jnp.dtype("float32")}
  variables = _numpy_variables(net(jnp.bfloat16), x)
  y, y32 = jax.jit(lambda v, x: (net(jnp.bfloat16).apply(v, x), net(None).apply(v, x)))(
      variables, x)
  assert y.dtype == jnp.bfloat16 and y.shape == (2, 5) and y32.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(y, np.float32), y32, rtol=0.05, atol=0.05)


# ------------------------------------------------------------------------- Sequential and MACs

def test_sequential_passes_train_and_accepts_callables():
  net = L.Sequential([L.Dense(16), jax.nn.relu, L.Dropout(0.5), L.Dense(3)])
  x = jnp.ones((4, 6))
  variables = _numpy_variables(net, x)
  assert set(variables["params"]) == {"layers_0", "layers_3"}
  apply = jax.jit(net.apply, static_argnames="train")
  y_eval = apply(variables, x)
  y_tr1 = apply(variables, x, train=True, rngs={"dropout": _key(3)})
  y_tr2 = apply(variables, x, train=True, rngs={"dropout": _key(4)})
  assert y_eval.shape == y_tr1.shape == (4, 3)
  assert not np.allclose(y_tr1, y_tr2)
  with pytest.raises(ValueError, match="at least one layer"):
    jax.eval_shape(L.Sequential([]).init, KEY, x)


def test_macs_convention():
  # conv: B * prod(out spatial) * prod(k) * C_in / groups * C_out
  assert L.Conv(8, (3, 2), groups=2).macs((2, 10, 10, 4), (2, 8, 9, 8)) == 2 * 72 * 6 * 2 * 8
  assert L.Conv(32, 3).macs((1, 32, 32, 3), (1, 30, 30, 32)) == 777_600
  assert L.Conv(4, 3).macs((1, 9, 2), (1, 7, 4)) == 7 * 3 * 2 * 4
  # dense: in * out per example
  assert L.Dense(10).macs((5, 64), (5, 10)) == 5 * 640
  for layer in (L.MaxPool(2), L.AvgPool(2), L.Flatten(), L.Dropout(0.5), L.BatchNorm(),
                L.Activation("relu"), L.GlobalAvgPool()):
    assert layer.macs((1, 4, 4, 2), (1, 2, 2, 2)) == 0


# -------------------------------------------------------------------------------------- errors

def test_conv_bad_arguments_name_the_value():
  def init(layer, shape):
    return jax.eval_shape(layer.init, KEY, jax.ShapeDtypeStruct(shape, jnp.float32))

  with pytest.raises(ValueError, match=r"`in_channels` \(=3\).*`groups` \(=2\)"):
    init(L.Conv(4, 3, groups=2), (1, 5, 5, 3))
  with pytest.raises(ValueError, match=r"rank 2"):
    init(L.Conv(4, 3), (5, 3))
  with pytest.raises(ValueError, match="kernel_size"):
    init(L.Conv(4, (3, 3, 3)), (1, 5, 5, 3))
  with pytest.raises(ValueError, match="larger than the padded input"):
    jax.eval_shape(L.Conv(4, 7).init, KEY, jnp.ones((1, 5, 5, 3)))


def test_layers_are_flax_modules_with_train_kwarg():
  for cls in (L.Conv, L.Dense, L.MaxPool, L.AvgPool, L.SumPool, L.LpPool, L.GlobalAvgPool,
              L.GlobalMaxPool, L.Dropout, L.ChannelDropout, L.Flatten, L.BatchNorm,
              L.Activation):
    assert issubclass(cls, L.Layer) and issubclass(cls, nn.Module)
    assert "train" in inspect.signature(cls.__call__).parameters


# ------------------------------------------------------------------- misuse gives one clear line

def test_batch_norm_train_mode_with_immutable_stats_raises_naming_the_fix():
  x = _rand((4, 3))
  net = L.Sequential([L.Dense(3), L.BatchNorm()])
  variables = net.init(KEY, x)
  with pytest.raises(ValueError, match=r"BatchNorm 'layers_1'.*mutable=\['batch_stats'\].*"
                                       r"train=False"):
    net.apply(variables, x, train=True)
  net.apply(variables, x, train=False)  # eval mode needs nothing mutable
  net.apply(variables, x, train=True, mutable=["batch_stats"])


def test_batch_norm_frozen_unit_scale_speednet_settings():
  # airbench's BatchNorm: PyTorch momentum 0.4 (batch weight) == 0.6 here (old weight),
  # eps 1e-12, weight fixed at 1 and not trained.
  x = _rand((16, 2, 2, 3)) * 2.0 + 5.0
  bn = L.BatchNorm(momentum=0.6, epsilon=1e-12, use_scale=False)
  variables = bn.init(KEY, x)
  assert set(variables["params"]) == {"bias"}
  y, upd = bn.apply(variables, x, train=True, mutable=["batch_stats"])
  xd = np.asarray(x, np.float64)
  bm, bv = xd.mean(axis=(0, 1, 2)), xd.var(axis=(0, 1, 2))
  np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.4 * bm, rtol=1e-5)
  np.testing.assert_allclose(upd["batch_stats"]["var"], 0.6 + 0.4 * bv, rtol=1e-5)
  np.testing.assert_allclose(y, (xd - bm) / np.sqrt(bv + 1e-12), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make, message", [
    (lambda: L.Conv(0, 3), r"^Conv `features` \(=0\) must be an int >= 1$"),
    (lambda: L.Conv(8.0, 3), r"^Conv `features` \(=8\.0\) must be an int >= 1$"),
    (lambda: L.Conv(8, 0), r"^Conv `kernel_size` \(=0\) must be an int >= 1"),
    (lambda: L.Conv(8, (3, -1)), r"^Conv `kernel_size` \(=\(3, -1\)\)"),
    (lambda: L.Conv(8, 3, stride=0), r"^Conv `stride` \(=0\)"),
    (lambda: L.Conv(8, 3, groups=0), r"^Conv `groups` \(=0\) must be an int >= 1$"),
    (lambda: L.Conv(8, 3, groups=3), r"^Conv `features` \(=8\) must be divisible by `groups`"),
    (lambda: L.Conv(8, 3, padding="same-ish"), r"^Conv `padding` \(='same-ish'\)"),
    (lambda: L.Conv(8, 3, activation="rleu"), r"^Conv: unknown activation 'rleu'"),
    (lambda: L.Dense(-5), r"^Dense `features` \(=-5\) must be an int >= 1$"),
    (lambda: L.Dense(True), r"^Dense `features` \(=True\) must be an int >= 1$"),
    (lambda: L.MaxPool(0), r"^MaxPool `window` \(=0\)"),
    (lambda: L.AvgPool(2, stride=0), r"^AvgPool `stride` \(=0\)"),
    (lambda: L.LpPool(0.5, 2), r"^LpPool `p` \(=0\.5\) must be a number >= 1$"),
    (lambda: L.Dropout("0.5"),
     r"^Dropout `rate` \(='0\.5'\) must be a float in \[0, 1\), not a str$"),
    (lambda: L.ChannelDropout(1.0), r"^ChannelDropout `rate` \(=1\.0\)"),
    (lambda: L.BatchNorm(momentum=1.5), r"^BatchNorm `momentum` \(=1\.5\)"),
    (lambda: L.BatchNorm(epsilon=-1.0), r"^BatchNorm `epsilon` \(=-1\.0\)"),
    (lambda: L.Activation("nope"), r"^Activation: unknown activation 'nope'"),
])
def test_bad_hyper_parameters_fail_at_construction_in_one_line(make, message):
  with pytest.raises(ValueError, match=message) as info:
    make()
  assert "\n" not in str(info.value)


def test_too_small_input_error_names_the_layer():
  net = L.Sequential([L.Conv(4, 3), L.MaxPool(2), L.Conv(4, 3)])
  with pytest.raises(ValueError, match=r"^Conv 'layers_2': kernel of size 3 is larger than the "
                                       r"padded input 2"):
    net.init(KEY, jnp.ones((1, 6, 6, 1)))
  with pytest.raises(ValueError, match=r"^MaxPool 'layers_1': pooling window"):
    L.Sequential([L.Conv(4, 3), L.MaxPool(4)]).init(KEY, jnp.ones((1, 5, 5, 1)))
  with pytest.raises(ValueError, match=r"^Conv 'layers_0': `in_channels` \(=3\) must be "
                                       r"divisible by `groups` \(=2\)"):
    L.Sequential([L.Conv(4, 3, groups=2)]).init(KEY, jnp.ones((1, 8, 8, 3)))


@pytest.mark.parametrize("cls", [L.Dropout, L.ChannelDropout])
def test_dropout_in_train_mode_without_an_rng_names_the_fix(cls):
  # Before: Flax's InvalidRngError "None needs PRNG for "dropout"" with a link.
  x = jnp.ones((2, 4, 4, 3))
  with pytest.raises(ValueError, match=rf"^{cls.__name__} with train=True needs a 'dropout' rng: "
                     r"call apply\(\.\.\., train=True, rngs=\{'dropout': key\}\)"):
    cls(0.5).apply({}, x, train=True)
  assert cls(0.5).apply({}, x, train=False) is x  # eval needs no rng


def test_applying_with_missing_collections_names_the_fix():
  # Before: Flax's ScopeCollectionNotFound (a link, and no word about what to pass).
  x = jnp.ones((2, 4, 4, 3))
  bn = L.BatchNorm()
  variables = bn.init(KEY, x)
  with pytest.raises(ValueError, match=r"^BatchNorm found no 'batch_stats' entry 'mean' .*"
                     r"\(params and batch_stats\)"):
    bn.apply({"params": variables["params"]}, x)
  net = L.Sequential([L.Flatten(), L.Dense(3)])
  variables = net.init(KEY, x)
  with pytest.raises(ValueError, match=r"^Dense 'layers_1' found no 'params' entry 'kernel' .*"
                     r"not variables\['params'\]"):
    net.apply(variables["params"], x)
  # train mode with mutable stats still creates what is missing, as Flax does.
  _, updates = bn.apply({"params": bn.init(KEY, x)["params"]}, x, train=True,
                        mutable=["batch_stats"])
  assert set(updates["batch_stats"]) == {"mean", "var"}


def test_input_that_does_not_fit_the_initialised_kernel_names_both_shapes():
  # Before: Flax's ScopeParamShapeError, which names neither the input nor the fix.
  conv = L.Sequential([L.Conv(4, 3)])
  variables = conv.init(KEY, jnp.ones((1, 8, 8, 3)))
  with pytest.raises(ValueError, match=r"^Conv 'layers_0' got x of shape \(1, 8, 8, 1\) \(1 input "
                     r"channels\), but its 'kernel' has shape \(3, 3, 3, 4\) from init, which "
                     r"needs \(3, 3, 1, 4\); apply the model to inputs shaped like"):
    conv.apply(variables, jnp.ones((1, 8, 8, 1)))
  dense = L.Sequential([L.Flatten(), L.Dense(2)])
  variables = dense.init(KEY, jnp.ones((1, 28, 28, 1)))
  with pytest.raises(ValueError, match=r"got x of shape \(1, 3072\) \(3072 input features\), but "
                     r"its 'kernel' has shape \(784, 2\)"):
    dense.apply(variables, jnp.ones((1, 32, 32, 3)))
  assert dense.apply(variables, jnp.ones((5, 28, 28, 1))).shape == (5, 2)  # batch size is free


def test_sequential_refuses_a_non_callable_at_construction():
  # Before: "'int' object is not callable" at the first call, naming neither the index nor 5.
  with pytest.raises(ValueError, match=r"^Sequential `layers\[1\]` \(=5\) must be a layer or a "
                     r"callable"):
    L.Sequential([L.Flatten(), 5])
