"""Tests of jaxcnn.nnx: the NNX layers against their Linen twins (outputs, checks, modes), every
zoo model as an NNX module holding the Linen variables (logits and BatchNorm statistics equal),
checkpoints across the two APIs, the one engine training NNX modules (in place, on the Linen
model's trajectory, under train_and_evaluate), a hand-written nnx.Optimizer loop, and
jaxcnn.inspect / jaxcnn.plots on NNX modules."""

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxcnn import functional as F, inspect, layers as L, models, nnx as jnnx, plots
from jaxcnn.configs import mnist_mlp
from jaxcnn.train import (Checkpointer, create_train_state, evaluate, fit, predict, run,
                          train_and_evaluate, train_step)
from jaxcnn.train.keras import ArrayLoader

KEY = jax.random.key(0)


def _x(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _close(a, b, tol=1e-5):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=tol, atol=tol)


# -- layers: each equals its Linen twin on the same arrays ---------------------------------------

def _r():
  return nnx.Rngs(0)


LAYERS = {
    "conv2d": (lambda: jnnx.Conv(4, 6, 3, stride=2, padding="SAME", groups=2, activation="relu",
                                 rngs=_r()),
               L.Conv(6, 3, stride=2, padding="SAME", groups=2, activation="relu"), (2, 9, 9, 4)),
    "conv_dilated": (lambda: jnnx.Conv(3, 5, (3, 2), dilation=2, padding=((1, 2), (0, 1)),
                                       rngs=_r()),
                     L.Conv(5, (3, 2), dilation=2, padding=((1, 2), (0, 1))), (2, 8, 7, 3)),
    "conv1d": (lambda: jnnx.Conv(3, 4, (5,), use_bias=False, rngs=_r()),
               L.Conv(4, 5, use_bias=False), (2, 12, 3)),
    "conv3d": (lambda: jnnx.Conv(2, 3, (2, 3, 3), rngs=_r()), L.Conv(3, (2, 3, 3)),
               (1, 4, 6, 6, 2)),
    "dense": (lambda: jnnx.Dense(7, 3, activation="tanh", rngs=_r()),
              L.Dense(3, activation="tanh"), (4, 7)),
    "max_pool": (lambda: jnnx.MaxPool(3, 2, "SAME"), L.MaxPool(3, 2, "SAME"), (2, 7, 7, 2)),
    "avg_pool": (lambda: jnnx.AvgPool(2, padding=1, count_include_pad=False),
                 L.AvgPool(2, padding=1, count_include_pad=False), (2, 5, 5, 2)),
    "sum_pool": (lambda: jnnx.SumPool((2, 3)), L.SumPool((2, 3)), (1, 6, 6, 2)),
    "lp_pool": (lambda: jnnx.LpPool(3.0, 2), L.LpPool(3.0, 2), (1, 4, 4, 3)),
    "global_avg": (lambda: jnnx.GlobalAvgPool(), L.GlobalAvgPool(), (2, 5, 4, 3)),
    "global_max": (lambda: jnnx.GlobalMaxPool(), L.GlobalMaxPool(), (2, 5, 4, 3)),
    "flatten": (lambda: jnnx.Flatten(), L.Flatten(), (2, 3, 4, 5)),
    "activation": (lambda: jnnx.Activation("gelu"), L.Activation("gelu"), (3, 5)),
    "sequential": (lambda: jnnx.Sequential([jnnx.Conv(2, 4, 3, rngs=_r()), jax.nn.relu,
                                            jnnx.Flatten(), jnnx.Dense(36, 2, rngs=_r())]),
                   L.Sequential([L.Conv(4, 3), jax.nn.relu, L.Flatten(), L.Dense(2)]),
                   (2, 5, 5, 2)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_equals_its_linen_twin(name):
  make, twin, shape = LAYERS[name]
  layer, x = make(), _x(shape)
  variables = jnnx.module_variables(layer)
  want = twin.init(KEY, x)  # the twin's own variables have the same names and shapes
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, dict(want))
  np.testing.assert_allclose(layer(x), twin.apply(variables, x), rtol=1e-6, atol=1e-6)


def test_batchnorm_equals_its_twin_in_both_modes_and_updates_in_place():
  bn = jnnx.BatchNorm(3, momentum=0.6, epsilon=1e-3, use_scale=False, rngs=_r())
  twin = L.BatchNorm(momentum=0.6, epsilon=1e-3, use_scale=False)
  x = _x((8, 3)) * 3 + 1
  before = jnnx.module_variables(bn)
  y, updates = twin.apply(before, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(bn(x), y, rtol=1e-6)  # a new layer is in train mode
  _close(jnnx.module_variables(bn)["batch_stats"], updates["batch_stats"], 1e-6)
  bn.eval()
  after = jnnx.module_variables(bn)
  np.testing.assert_allclose(bn(x), twin.apply(after, x, train=False), rtol=1e-6)
  _close(jnnx.module_variables(bn), after, 0)  # eval mode leaves the statistics alone
  np.testing.assert_allclose(bn(x, train=True), y, rtol=1e-5, atol=1e-6)  # a per-call override
  assert bn.use_running_average  # ... that does not change the mode


@pytest.mark.parametrize("kind", ["Dropout", "ChannelDropout"])
def test_dropout_draws_the_twins_mask_and_follows_the_mode(kind):
  layer = getattr(jnnx, kind)(0.5, rngs=nnx.Rngs(dropout=1))
  op = {"Dropout": F.dropout, "ChannelDropout": F.channel_dropout}[kind]
  x = jnp.ones((4, 3, 3, 8))
  key = jax.random.key(7)
  # The functional op on the key given (the Linen layer draws its key from its scope; inside a
  # zoo model the NNX layer gets that very key: see the zoo tests).
  np.testing.assert_array_equal(layer(x, rngs=key), op(key, x, 0.5))
  a, b = layer(x), layer(x)  # its own stream: a new mask per call
  assert not np.array_equal(a, b) and float(jnp.min(a)) == 0.0
  layer.eval()
  np.testing.assert_array_equal(layer(x), x)
  bare = getattr(jnnx, kind)(0.5)
  with pytest.raises(ValueError, match=f"^{kind} in train mode needs a key"):
    bare(x)
  np.testing.assert_array_equal(bare(x, train=False), x)


@pytest.mark.parametrize("make_linen,make_nnx", [
    (lambda: L.Conv(0, 3), lambda: jnnx.Conv(3, 0, 3, rngs=_r())),
    (lambda: L.Conv(6, 3, groups=4), lambda: jnnx.Conv(4, 6, 3, groups=4, rngs=_r())),
    (lambda: L.Conv(4, 3, padding="same-ish"),
     lambda: jnnx.Conv(3, 4, 3, padding="same-ish", rngs=_r())),
    (lambda: L.Dense(4, activation="relux"),
     lambda: jnnx.Dense(3, 4, activation="relux", rngs=_r())),
    (lambda: L.MaxPool(0), lambda: jnnx.MaxPool(0)),
    (lambda: L.LpPool(0.5, 2), lambda: jnnx.LpPool(0.5, 2)),
    (lambda: L.Dropout(1.5), lambda: jnnx.Dropout(1.5)),
    (lambda: L.BatchNorm(momentum=2.0), lambda: jnnx.BatchNorm(3, momentum=2.0, rngs=_r())),
    (lambda: L.Activation(None), lambda: jnnx.Activation(None)),
], ids=["features", "groups", "padding", "activation", "window", "p", "rate", "momentum", "fn"])
def test_layers_refuse_what_the_linen_layers_refuse_in_the_same_words(make_linen, make_nnx):
  with pytest.raises(ValueError) as linen_error:
    make_linen()
  with pytest.raises(ValueError) as nnx_error:
    make_nnx()
  assert str(nnx_error.value) == str(linen_error.value)


def test_layer_input_errors_are_one_line():
  conv = jnnx.Conv(3, 4, 3, rngs=_r())
  with pytest.raises(ValueError, match=r"^Conv: got x of shape \(1, 8, 8, 1\) \(1 input "
                                       r"channels\), but it was built for in_features=3$"):
    conv(jnp.ones((1, 8, 8, 1)))
  with pytest.raises(ValueError, match=r"^Conv: `x` must be \[B, H, W, C\], got shape \(1, 8, 3\) "
                                       r"\(rank 3\); this Conv was built for 2-D inputs"):
    conv(jnp.ones((1, 8, 3)))
  with pytest.raises(ValueError, match=r"in_features=5$"):
    jnnx.Dense(5, 2, rngs=_r())(jnp.ones((2, 4)))
  with pytest.raises(ValueError, match=r"^Conv `in_features` \(=0\) must be an int >= 1$"):
    jnnx.Conv(0, 4, 3, rngs=_r())


def test_initialisers_are_the_linen_ones():
  conv = jnnx.Conv(3, 4, 3, rngs=_r())
  assert conv.kernel_init is L.default_kernel_init and conv.bias_init is L.default_bias_init
  ones = jnnx.Dense(5, 2, kernel_init=jax.nn.initializers.ones, rngs=_r())
  np.testing.assert_array_equal(ones.kernel[...], np.ones((5, 2)))
  # glorot_uniform: variance 2 / (fan_in + fan_out) = 2 / (9 * 64 + 9 * 64)
  big = jnnx.Conv(64, 64, 3, rngs=_r())
  assert float(jnp.var(big.kernel[...])) == pytest.approx(2 / (2 * 9 * 64), rel=0.05)


# -- the zoo: every model by name, the Linen variables both ways ---------------------------------

# A tiny member of every family (resnet32..110 are resnet20's factory at other depths, vgg13..19
# vgg11's class with more layers: tiny widths of each are here, the depths in test_models_zoo).
ZOO = {
    "tutorial_cnn": {}, "tutorial_cnn_512": {}, "mlp": {"hidden": (16,), "dropout": 0.5},
    "stridenet": {"features": (4, 8)}, "lenet5": {},
    "alexnet_cifar": {"width": 4, "hidden": 16, "dropout": 0.5}, "vgg11": {"width": 4},
    "vgg13": {"width": 2}, "vgg16": {"width": 2}, "vgg19": {"width": 2},
    "bn_cnn": {"widths": (4, 8)}, "resnet20": {"width": 2}, "resnet32": {"width": 2},
    "resnet44": {"width": 2}, "resnet56": {"width": 2}, "resnet110": {"width": 2},
    "cifar_resnet": {"depth": 8, "width": 4, "shortcut": "B"}, "resnet18": {"width": 2},
    "preact_resnet18": {"width": 4, "blocks": (1, 1)},
    "wide_resnet": {"depth": 10, "widen_factor": 1, "dropout": 0.3}, "resnet9": {"width": 2},
    "speednet": {"width_mult": 1 / 16, "depth": 3},
}
# One name per model class runs in the fast suite; the other names of the same class (deeper
# ResNets and VGGs, the tutorial CNN's wider head, ResNet-18, the Wide ResNet) run with the slow
# tests.
SLOW_ZOO = {"tutorial_cnn_512", "vgg13", "vgg16", "vgg19", "resnet32", "resnet44", "resnet56",
            "resnet110", "resnet18", "wide_resnet"}


# Families whose head pools globally run on 8x8 images (the same layers, a 16th of the work).
SMALL_INPUT = {"bn_cnn", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
               "cifar_resnet", "resnet18", "preact_resnet18", "wide_resnet", "resnet9"}


def test_the_zoo_table_names_every_registered_model():
  assert set(ZOO) == set(models.MODELS)


def _numpy_variables(linen, shape, seed=0):
  # Random variables drawn in numpy (no compiled init); var > 0 so eval mode is well defined.
  rng = np.random.default_rng(seed)
  abstract = jax.eval_shape(linen.init, KEY, jax.ShapeDtypeStruct(shape, jnp.float32))

  def fill(path, s):
    if "'var'" in jax.tree_util.keystr(path):
      return jnp.asarray(1 + rng.random(s.shape), s.dtype)
    fan_in = math.prod(s.shape[:-1]) or 1
    return jnp.asarray(rng.standard_normal(s.shape) / math.sqrt(fan_in), s.dtype)
  return jax.tree_util.tree_map_with_path(fill, abstract)


@pytest.mark.parametrize("name", [n if n not in SLOW_ZOO else pytest.param(n, marks=pytest.mark.slow)
                                  for n in ZOO])
def test_zoo_model_holds_the_linen_variables_and_computes_the_linen_logits(name):
  kwargs = ZOO[name]
  linen = models.get_model(name, **kwargs)
  shape = (1, 8, 8, 3) if name in SMALL_INPUT else jnnx.default_input_shape(name)
  variables = _numpy_variables(linen, shape)
  model = jnnx.from_linen_variables(name, variables, input_shape=shape, **kwargs)
  _close(jnnx.to_linen_variables(model), dict(variables), 0)
  x, key = _x((2, *shape[1:]), 1), jax.random.key(3)

  @nnx.jit
  def nnx_both(model, x):
    model.eval()
    evaluated = model(x)
    model.train()  # with a dropout key: the masks the Linen model draws with it
    return evaluated, model(x, rngs=key)

  @jax.jit
  def linen_both(v, x):
    return linen.apply(v, x), linen.apply(v, x, train=True, rngs={"dropout": key},
                                          mutable=["batch_stats"])

  evaluated, trained = nnx_both(model, x)
  want_eval, (want_train, updates) = linen_both(variables, x)
  _close(evaluated, want_eval)
  _close(trained, want_train)
  _close(jnnx.to_linen_variables(model).get("batch_stats", {}),
         dict(updates).get("batch_stats", {}))


def test_get_model_is_initialised_as_the_linen_model_and_counts_the_same():
  model = jnnx.get_model("tutorial_cnn", hidden=8, rngs=nnx.Rngs(params=0))
  linen = models.get_model("tutorial_cnn", hidden=8)
  assert isinstance(model.Conv_1, jnnx.Conv) and model.Conv_1.kernel.shape == (3, 3, 32, 64)
  count = sum(math.prod(a.shape) for a in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert count == inspect.summary(linen, (1, 32, 32, 3), print_fn=None).total_params
  # The parameters are the Linen init's with a key drawn from the 'params' stream.
  want = jax.jit(linen.init)({"params": nnx.Rngs(params=0).params(),
                             "dropout": jax.random.key(1)}, jnp.zeros((1, 32, 32, 3)))
  _close(jnnx.to_linen_variables(model), dict(want), 0)
  mlp = jnnx.get_model("mlp", hidden=(8,), rngs=nnx.Rngs(0))
  assert mlp.input_shape == (1, 28, 28, 1) and mlp.Dense_0.kernel.shape == (784, 8)


def test_nnx_eval_shape_split_and_the_mode_of_a_zoo_model():
  abstract = nnx.eval_shape(lambda: jnnx.get_model("resnet20", rngs=nnx.Rngs(0), width=2))
  stats = jax.tree.leaves(nnx.state(abstract, nnx.BatchStat))
  assert len(stats) == 2 * 19 and all(isinstance(s, jax.ShapeDtypeStruct) for s in stats)
  model = jnnx.get_model("bn_cnn", rngs=nnx.Rngs(0), widths=(4,))
  _, params, stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  assert set(jnnx.module_variables(model)) == {"params", "batch_stats"}
  assert len(jax.tree.leaves(stats)) == 2 and len(jax.tree.leaves(params)) == 5
  x = _x((4, 32, 32, 3))
  model(x)  # a new model is in train mode: its statistics move
  assert not np.allclose(model.BatchNorm_0.mean[...], 0)
  model.eval()
  assert model.BatchNorm_0.use_running_average
  np.testing.assert_array_equal(model(x), model(x))


def test_a_changed_model_or_other_arguments_are_refused_in_one_line():
  linen = models.get_model("bn_cnn", widths=(4,))
  variables = _numpy_variables(linen, (1, 32, 32, 3))
  with pytest.raises(ValueError, match=r"^batch_stats/BatchNorm_0/mean is float32\[4\] in the "
                                       r"variables but float32\[8\] in the Linen model BNCNN "
                                       r"built for input \(1, 32, 32, 3\)$"):
    jnnx.from_linen_variables("bn_cnn", variables, widths=(8,))
  model = jnnx.from_linen_variables("bn_cnn", variables, widths=(4,))
  model.Dense_0 = jnnx.Dense(4, 3, rngs=_r())
  with pytest.raises(ValueError, match=r"in this NNX model \(changed after it was made"):
    jnnx.to_linen_variables(model)
  with pytest.raises(ValueError, match=r"^the variables have no 'params/bias', which the module has \(float32\[2\]\)"):
    jnnx.update_module(jnnx.Dense(3, 2, rngs=_r()), {"params": {"kernel": np.ones((3, 2))}})
  with pytest.raises(ValueError, match=r"^`input_shape` \(=\(32, 0\)\) must be a sequence of "
                                       r"positive ints \(the batch included, e.g. \(1, 32, 32, 3\)\)$"):
    jnnx.from_linen(linen, (32, 0), rngs=_r())


def test_checkpoints_of_either_api_restore_into_the_other(tmp_path):
  shape = (1, 8, 8, 3)
  linen = models.get_model("bn_cnn", widths=(4,))
  model = jnnx.get_model("bn_cnn", widths=(4,), input_shape=shape, rngs=nnx.Rngs(1))
  tx = optax.adam(1e-3)
  linen_state = create_train_state(linen, jax.random.key(0), shape, tx)
  nnx_state = create_train_state(model, jax.random.key(5), shape, tx)
  assert jax.tree.structure(linen_state) != jax.tree.structure(nnx_state)  # other apply_fn
  assert (jax.tree.structure(linen_state.replace(apply_fn=None))
          == jax.tree.structure(nnx_state.replace(apply_fn=None)))
  x = _x((2, 8, 8, 3))
  for source, template, where in ((linen_state, nnx_state, "linen"),
                                  (nnx_state, linen_state, "nnx")):
    ckpt = Checkpointer(tmp_path / where, async_save=False)
    ckpt.save(1, source, {"from": where})
    restored, meta = ckpt.restore(template)
    ckpt.close()
    assert meta == {"from": where} and restored.apply_fn == template.apply_fn
    _close(restored.params, source.params, 0)
    _close(restored.opt_state, source.opt_state, 0)
    logits = jax.jit(lambda st: st.apply_fn(st.eval_variables, x, train=False))
    _close(logits(restored), logits(source))
  fresh = jnnx.get_model("bn_cnn", widths=(4,), input_shape=shape, rngs=nnx.Rngs(9))
  jnnx.update_module(fresh, linen_state)
  fresh.eval()
  _close(fresh(x), linen.apply(linen_state.variables, x))


# -- the engine ----------------------------------------------------------------------------------

class CNN(nnx.Module):
  """An NNX model written the NNX way, of jaxcnn.nnx layers."""

  def __init__(self, rngs):
    self.conv = jnnx.Conv(1, 8, 3, activation="relu", rngs=rngs)
    self.bn = jnnx.BatchNorm(8, rngs=rngs)
    self.pool = jnnx.MaxPool(2)
    self.flat = jnnx.Flatten()
    self.drop = jnnx.Dropout(0.2, rngs=rngs)
    self.head = jnnx.Dense(3 * 3 * 8, 4, rngs=rngs)

  def __call__(self, x):
    return self.head(self.drop(self.flat(self.pool(self.bn(self.conv(x))))))


def _data(n=64, shape=(8, 8, 1), classes=4, seed=0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % classes
  x = rng.normal(size=(n, *shape)).astype(np.float32) + y[:, None, None, None] * 0.5
  return x, y


def test_fit_trains_an_nnx_module_in_place_and_evaluate_predict_take_it():
  x, y = _data()
  model = CNN(nnx.Rngs(0))
  kernel = np.array(model.conv.kernel[...])
  history = fit(model, (x, y), epochs=4, batch_size=16, learning_rate=1e-2, verbose=0,
                validation_data=(x, y))
  assert history["loss"][-1] < history["loss"][0]
  assert not np.allclose(model.conv.kernel[...], kernel)  # trained in place ...
  assert not model.bn.use_running_average and not model.drop.deterministic  # ... mode untouched
  _close(jnnx.module_variables(model), dict(history.state.eval_variables), 0)
  assert evaluate(model, (x, y))["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-6)
  np.testing.assert_array_equal(predict(model, x[:5]), predict(history, x[:5]))
  model.eval()
  np.testing.assert_allclose(model(jnp.asarray(x[:5])), predict(history, x[:5]), rtol=1e-5,
                             atol=1e-5)
  # Dropout keys come from the engine's seed and step: the same run twice is the same run.
  again = fit(CNN(nnx.Rngs(0)), (x, y), epochs=4, batch_size=16, learning_rate=1e-2,
              verbose=0, validation_data=(x, y))
  assert again["loss"] == history["loss"]


@pytest.mark.parametrize("name,kwargs,shape", [
    ("mlp", {"hidden": (16,), "dropout": 0.3}, (8, 8, 1)),  # dropout: the same masks
    pytest.param("cifar_resnet", {"depth": 8, "width": 4}, (8, 8, 3),  # BatchNorm statistics
                 marks=pytest.mark.slow),
])
def test_the_nnx_twin_follows_the_linen_trajectory(name, kwargs, shape):
  x, y = _data(n=128, shape=shape, classes=10)
  linen = models.get_model(name, **kwargs)
  start = linen.init(jax.random.key(0), jnp.zeros((1, *shape)))
  twin = jnnx.from_linen_variables(name, start, input_shape=(1, *shape), **kwargs)
  common = dict(epochs=25, batch_size=16, optimizer="sgd", learning_rate=0.05, verbose=0)
  h_linen = fit(linen, (x, y), init_fn=lambda *_: start, **common)
  h_nnx = fit(twin, (x, y), **common)
  assert len(h_nnx["loss"]) * 8 == 200  # 200 steps
  np.testing.assert_allclose(h_nnx["loss"], h_linen["loss"], rtol=1e-5, atol=1e-6)
  _close(h_nnx.state.params, h_linen.state.params, 1e-4)


def _tiny_mlp_config(tmp_loaders, monkeypatch, **overrides):
  config = mnist_mlp.get_config()
  config.model_kwargs.hidden = (16,)
  config.model_kwargs.dropout = 0.3
  config.batch_size = config.eval_batch_size = 8
  config.num_epochs, config.patience, config.progress = 3, 0, False
  config.plots = False
  for key, value in overrides.items():
    config[key] = value
  monkeypatch.setattr(run, "make_loaders", lambda config, info, **kw: tmp_loaders())
  return config


def _loaders():
  x, y = _data(n=24, shape=(28, 28, 1), classes=10, seed=1)
  return (ArrayLoader(x, y, 8, shuffle=True, drop_remainder=True),
          ArrayLoader(*_data(n=12, shape=(28, 28, 1), classes=10, seed=2), 8))


def test_train_and_evaluate_with_model_api_nnx_continues_the_linen_run(tmp_path, monkeypatch):
  linen = train_and_evaluate(_tiny_mlp_config(_loaders, monkeypatch), tmp_path / "linen")
  # Two epochs with Linen, the third with NNX from the same workdir (the checkpoint is one):
  # the NNX epoch (dropout on) is the Linen run's third epoch.
  train_and_evaluate(_tiny_mlp_config(_loaders, monkeypatch, num_epochs=2), tmp_path / "both")
  both = train_and_evaluate(_tiny_mlp_config(_loaders, monkeypatch, model_api="nnx"),
                            tmp_path / "both")
  assert isinstance(both.state.apply_fn.__self__, jnnx.LinenView)
  assert [r["epoch"] for r in both.history] == [1, 2, 3]
  for a, b in zip(both.history, linen.history):
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
    assert a["eval_loss"] == pytest.approx(b["eval_loss"], rel=1e-6)
  _close(both.state.params, linen.state.params, 1e-6)
  model = jnnx.get_model("mlp", hidden=(16,), dropout=0.3, rngs=nnx.Rngs(0))
  jnnx.update_module(model, both)
  model.eval()
  x = _loaders()[1].x
  np.testing.assert_allclose(model(jnp.asarray(x)), predict(linen.state, x), rtol=1e-5,
                             atol=1e-5)


def test_a_hand_written_nnx_optimizer_loop_trains_jaxcnn_nnx_layers():
  x, y = _data()
  model = CNN(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, x, y):
    def loss_fn(model):
      return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss

  losses = [float(step(model, optimizer, x, y)) for _ in range(15)]
  assert losses[-1] < 0.7 * losses[0]
  assert not np.allclose(model.bn.mean[...], 0)  # statistics updated in train mode


def test_the_architectures_lesson_runs_its_models_as_nnx_modules():
  from experiments.lessons import architectures
  model = architectures.build_model("bn_cnn", {"widths": (4,)}, api="nnx")
  assert isinstance(model, jnnx.Model) and isinstance(model.Conv_0, jnnx.Conv)
  train, val = architectures._random_loaders(0, 16)
  r = architectures.train_for("bn_cnn", {"widths": (4,)}, train, val, budget_s=0.0, api="nnx")
  assert r["params"] == inspect.summary(models.get_model("bn_cnn", widths=(4,)),
                                        (1, 32, 32, 3), print_fn=None).trainable_params
  assert r["steps"] >= 1 and 0 <= r["val_accuracy"] <= 1
  with pytest.raises(ValueError, match=r"^`api` \(='keras'\) must be 'linen' or 'nnx'$"):
    architectures.build_model("bn_cnn", {}, api="keras")


def test_the_engine_step_is_the_same_program_for_a_linen_model_and_its_nnx_twin():
  # The NNX module is merged and split while the step is traced: the compiled step is the
  # Linen one (HLO equal but for source locations), so it cannot be slower.
  for name, kwargs in (("mlp", {"hidden": (8,), "dropout": 0.5}),
                       ("cifar_resnet", {"depth": 8, "width": 2})):
    shape = (1, 8, 8, 1) if name == "mlp" else (1, 8, 8, 3)
    linen = models.get_model(name, **kwargs)
    start = linen.init(jax.random.key(0), jnp.zeros(shape))
    twin = jnnx.from_linen_variables(name, start, input_shape=shape, **kwargs)
    tx = optax.adam(1e-3)
    states = [create_train_state(m, jax.random.key(1), shape, tx, init_fn=lambda *_: start)
              for m in (linen, twin)]
    batch = {"image": jnp.ones((4, *shape[1:])), "label": jnp.zeros((4,), jnp.int32)}
    step = jax.jit(functools.partial(train_step, axis_name=None))
    texts = [re.sub(r", metadata=\{[^}]*\}", "",
                    step.lower(s, batch).compiler_ir("hlo").as_hlo_text()) for s in states]
    assert texts[0] == texts[1], name


# -- inspect and plots ---------------------------------------------------------------------------

def test_inspect_reads_nnx_modules_by_attribute_path():
  model = CNN(nnx.Rngs(0))
  s = inspect.summary(model, (1, 8, 8, 1), print_fn=None)
  assert s.model_name == "CNN"
  assert [r.name for r in s.rows] == ["conv", "bn", "pool", "flat", "drop", "head"]
  assert s.trainable_params == 8 * 9 + 8 + 16 + 72 * 4 + 4 and s.total_params == s.trainable_params + 16
  assert s.rows[0].macs == 6 * 6 * 9 * 8
  x = _x((2, 8, 8, 1))
  maps = inspect.feature_maps(model, None, x)
  assert list(maps)[:3] == ["conv/pre_activation", "conv", "bn"]
  assert maps["pool"].shape == (2, 3, 3, 8)
  assert inspect.grad_cam(model, None, x, "conv", 1).shape == (2, 8, 8)
  model.eval()  # inspection runs in eval mode whatever the module's mode
  g = jax.grad(lambda z: model(z)[:, 1].sum())(x)
  model.train()
  np.testing.assert_allclose(inspect.saliency(model, None, x, 1), g, rtol=1e-5, atol=1e-6)


def test_inspect_and_plots_see_a_zoo_model_as_its_linen_model():
  model = jnnx.get_model("cifar_resnet", depth=8, width=4, input_shape=(1, 8, 8, 3),
                         rngs=nnx.Rngs(0))
  linen, variables = model.linen_module, jnnx.to_linen_variables(model)
  x = _x((2, 8, 8, 3))
  assert (str(inspect.summary(model, (1, 8, 8, 3), print_fn=None))
          == str(inspect.summary(linen, (1, 8, 8, 3), print_fn=None)))
  _close(jax.jit(lambda x: inspect.saliency(model, None, x, 3))(x),
         jax.jit(lambda x: inspect.saliency(linen, variables, x, 3))(x))
  maps = jax.jit(lambda x: inspect.feature_maps(model, None, x))(x)
  assert sorted(maps) == sorted(inspect.layer_names(linen, variables, x))  # jit sorts keys
  fig = plots.model_diagram(CNN(nnx.Rngs(0)), (1, 8, 8, 1))
  assert len(fig.axes[0].patches) == 7  # the input and six layers
  grid = plots.feature_map_grid(maps["_ConvBN_0/Conv_0"][0], max_maps=4)
  assert len(grid.axes) >= 4
