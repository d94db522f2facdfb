"""The engine's hooks: optimiser values and helpers, averagers, collections, loss/logits hooks,
BatchNorm under every parallel mode, and the speed-run recipe end to end through the public API.

Everything runs on tiny models defined here from ``jaxcnn.layers`` (or plain Flax) so each test
compiles in seconds.
"""

import functools
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from jaxcnn import layers as L
from jaxcnn import models
from jaxcnn.train import (
    AXIS_NAME, Checkpointer, Parallel, create_train_state, ema, eval_step, evaluate, fit,
    lookahead, loop, register_optimizer, run, train_and_evaluate, train_step, tta_logits,
    validate)
from jaxcnn.train.keras import ArrayLoader
from jaxcnn.train.optim import (OPTIMIZERS, muon, newton_schulz, param_labels, partition,
                                sgd_nesterov)
from jaxcnn.train.state import default_init


def _batch(n=16, seed=0, hw=6, c=3):
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(n, hw, hw, c)).astype(np.float32),
          "label": rng.integers(0, 10, n).astype(np.int32)}


def _leaves_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


class BNNet(nn.Module):
  """Conv(no bias) - BatchNorm - relu - global average - Dense(10), from ``jaxcnn.layers``."""
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = L.Conv(6, 3, use_bias=False, padding="SAME", name="conv")(x)
    x = L.BatchNorm(momentum=0.8, axis_name=self.axis_name, name="bn")(x, train=train)
    x = L.GlobalAvgPool()(jax.nn.relu(x))
    return L.Dense(10, name="head")(x)


# -- optimisers ---------------------------------------------------------------------------------

def test_muon_update_is_the_direct_newton_schulz_and_near_orthogonal():
  g = jax.random.normal(jax.random.key(0), (3, 3, 4, 8))  # [kh, kw, C_in, C_out]: 36 x 8
  tx = muon(1.0, beta=0.0)  # no momentum: the update is -NS(g)
  upd, _ = tx.update({"k": g}, tx.init({"k": g}))
  np.testing.assert_allclose(upd["k"], -newton_schulz(g), atol=1e-5)
  s = np.linalg.svd(np.asarray(upd["k"]).reshape(36, 8), compute_uv=False)
  assert 0.6 < s.min() and s.max() < 1.25, s  # quintic NS: roughly [0.7, 1.2], not exactly 1
  s_g = np.linalg.svd(np.asarray(g).reshape(36, 8), compute_uv=False)
  assert s_g.max() / s_g.min() > 1.5  # the input was far from orthogonal
  # A wide kernel (rows < columns) is orthogonalised in its own orientation too.
  g2 = jax.random.normal(jax.random.key(1), (1, 1, 4, 16))
  upd2, _ = tx.update({"k": g2}, tx.init({"k": g2}))
  np.testing.assert_allclose(upd2["k"], -newton_schulz(g2), atol=1e-5)


def test_param_labels_partition_frozen_and_lr_scale():
  model = BNNet()
  variables = model.init(jax.random.key(0), jnp.ones((1, 6, 6, 3)))
  labels = param_labels(variables, frozen=["conv"], head="head")
  assert labels == {"conv": {"kernel": "frozen"}, "bn": {"scale": "batchnorm",
                                                         "bias": "batchnorm"},
                    "head": {"kernel": "head", "bias": "head"}}
  assert param_labels(variables["params"])["conv"]["kernel"] == "kernel"
  params = variables["params"]
  grads = jax.tree.map(jnp.ones_like, params)
  tx = partition({"batchnorm": optax.sgd(1.0), "head": optax.sgd(1.0)}, labels,
                 lr_scale={"head": 0.5})
  upd, _ = tx.update(grads, tx.init(params), params)
  assert not np.any(upd["conv"]["kernel"])  # frozen: set_to_zero by default
  np.testing.assert_array_equal(upd["bn"]["scale"], -1.0)
  np.testing.assert_array_equal(upd["head"]["kernel"], -0.5)
  with pytest.raises(ValueError, match=r"no transformation for the parameter group\(s\) "
                                       r"\['batchnorm'\]"):
    partition({"head": optax.sgd(1.0)}, labels)
  with pytest.raises(ValueError, match="`lr_scale` names the group 'kernel'"):
    partition({"head": optax.sgd(1.0), "batchnorm": optax.sgd(1.0)}, labels,
              lr_scale={"kernel": 2.0})


def test_sgd_nesterov_with_decoupled_weight_decay_by_hand():
  lr, mu, wd = 0.1, 0.9, 0.01
  tx = sgd_nesterov(lr, momentum=mu, weight_decay=wd)
  p, state = jnp.array([1.0, -2.0]), None
  state = tx.init(p)
  m = np.zeros(2)
  want = np.array([1.0, -2.0])
  for g in ([0.5, 0.5], [1.0, -1.0], [0.0, 2.0]):
    g = np.array(g)
    m = mu * m + g  # optax.trace: m <- mu m + g; nesterov step g + mu m
    want_update = -lr * ((g + mu * m) + wd * want)  # decay bypasses the momentum buffer
    upd, state = tx.update(jnp.asarray(g, jnp.float32), state, p)
    np.testing.assert_allclose(upd, want_update, rtol=1e-6)
    p = optax.apply_updates(p, upd)
    want = want + want_update


def test_optimizer_registry_names_a_new_optimizer_for_configs():
  @register_optimizer("test_lion")
  def _lion(config, schedule):
    return optax.lion(schedule)
  try:
    from jaxcnn.train import make_optimizer
    tx = make_optimizer(validate({"optimizer": "test_lion", "learning_rate": 0.1}))
    assert isinstance(tx, optax.GradientTransformation)
    with pytest.raises(ValueError, match="already registered"):
      register_optimizer("test_lion")(_lion)
  finally:
    del OPTIMIZERS["test_lion"]


# -- averagers ----------------------------------------------------------------------------------

def test_ema_with_warmup_and_every_k_matches_a_hand_sequence():
  avg = ema(0.9, warmup=True, every=2)
  state = avg.init({"params": {"w": jnp.zeros(())}})
  want, n = 0.0, 0
  for t, live in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]):
    _, state = avg.update({"params": {"w": jnp.float32(live)}}, state, jnp.int32(t))
    if (t + 1) % 2 == 0:
      n += 1
      d = min(0.9, (1 + n) / (10 + n))  # 2/11, 3/12, 4/13
      want = d * want + (1 - d) * live
    assert float(state["params"]["w"]) == pytest.approx(want, rel=1e-6), t


def test_lookahead_averager_matches_a_hand_sequence():
  avg = lookahead(every=2, alpha=0.5)
  slow = avg.init({"params": {"w": jnp.zeros(())}})
  fast_in = [1.0, 3.0, 4.0, 8.0]  # what the optimiser produced after each step
  got_live, got_slow = [], []
  for t, f in enumerate(fast_in):
    live, slow = avg.update({"params": {"w": jnp.float32(f)}}, slow, jnp.int32(t))
    got_live.append(float(live["params"]["w"]))
    got_slow.append(float(slow["params"]["w"]))
  # t=0: no sync (live 1, slow 0); t=1: slow = 0 + .5 (3 - 0) = 1.5, live reset to 1.5;
  # t=2: live 4, slow 1.5; t=3: slow = 1.5 + .5 (8 - 1.5) = 4.75 = live.
  assert got_live == [1.0, 1.5, 4.0, 4.75] and got_slow == [0.0, 1.5, 1.5, 4.75]


def test_optax_lookahead_trains_through_the_step_and_evaluates_the_slow_weights():
  inner = optax.sgd(0.1)
  tx = optax.lookahead(inner, sync_period=2, slow_step_size=0.5)
  state = create_train_state(BNNet(), jax.random.PRNGKey(0), (1, 6, 6, 3), tx)
  assert isinstance(state.params, optax.LookaheadParams)
  step = jax.jit(train_step)
  ref = create_train_state(BNNet(), jax.random.PRNGKey(0), (1, 6, 6, 3), inner)
  fast, slow = ref.params, ref.params
  for i in range(4):
    b = _batch(seed=i)
    state, m = step(state, b)
    # By hand: an SGD step on the fast weights, then every 2nd step slow += .5 (fast - slow)
    # and fast restarts from slow.
    g = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
        ref.apply_fn({"params": p, **state.collections}, b["image"], train=True,
                     mutable=["batch_stats"])[0], b["label"]).mean())(fast)
    fast = jax.tree.map(lambda p, g: p - 0.1 * g, fast, g)
    if i % 2 == 1:
      slow = jax.tree.map(lambda s, f: s + 0.5 * (f - s), slow, fast)
      fast = slow
    assert float(m["finite"]) == 1.0
  for a, b in zip(jax.tree.leaves(state.params.fast), jax.tree.leaves(fast)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  for a, b in zip(jax.tree.leaves(state.params.slow), jax.tree.leaves(slow)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert state.eval_variables["params"] is state.params.slow


def test_ema_averages_batch_stats_with_the_params_for_eval():
  state = create_train_state(BNNet(), jax.random.PRNGKey(0), (1, 6, 6, 3), optax.sgd(0.1),
                             averager=ema(0.5))
  new, _ = jax.jit(train_step)(state, _batch())
  for coll in ("params", "batch_stats"):
    want = jax.tree.map(lambda a, b: 0.5 * a + 0.5 * b, state.variables[coll],
                        new.variables[coll])
    for a, b in zip(jax.tree.leaves(new.eval_variables[coll]), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-6)


# -- collections and hooks ----------------------------------------------------------------------

class Counting(nn.Module):
  """Dense head, plus a mutable 'counter' collection and a read-only 'consts' one."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    count = self.variable("counter", "n", jnp.zeros, (), jnp.float32)
    scale = self.variable("consts", "scale", jnp.ones, (), jnp.float32)
    if train and not self.is_initializing():
      count.value = count.value + 1.0
    return nn.Dense(10)(x.reshape(x.shape[0], -1) * scale.value)


def test_every_collection_is_carried_and_only_mutable_ones_are_updated():
  state = create_train_state(Counting(), jax.random.PRNGKey(0), (1, 6, 6, 3), optax.sgd(0.1),
                             mutable=("counter",))
  assert set(state.collections) == {"counter", "consts"}
  step = jax.jit(train_step)
  for i in range(3):
    state, _ = step(state, _batch(seed=i))
  assert float(state.collections["counter"]["n"]) == 3.0
  assert float(state.collections["consts"]["scale"]) == 1.0
  with pytest.raises(ValueError, match=r"`mutable` names collection\(s\) \['batch_stats'\]"):
    create_train_state(Counting(), jax.random.PRNGKey(0), (1, 6, 6, 3), optax.sgd(0.1),
                       mutable=("batch_stats",))


def test_loss_fn_hook_replaces_the_loss():
  state = create_train_state(Counting(), jax.random.PRNGKey(0), (1, 6, 6, 3), optax.sgd(0.1),
                             mutable=("counter",))
  b = _batch()
  sq = lambda logits, batch: jnp.sum(logits ** 2, axis=-1)  # per-example [B]
  _, m = jax.jit(functools.partial(train_step, loss_fn=sq))(state, b)
  logits = state.apply_fn(state.variables, b["image"])
  assert float(m["loss"]) == pytest.approx(float(jnp.mean(jnp.sum(logits ** 2, -1))), rel=1e-5)


def test_tta_logits_averages_flipped_and_shifted_views_by_hand():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 5, 1)), jnp.float32)
  apply = lambda v: v[:, 0, :, 0]  # the first row as "logits": sees flips and shifts exactly
  got = tta_logits(apply, x, flip=True, shifts=((1, 0),))
  shifted = jnp.concatenate([x[:, :1], x[:, :-1]], axis=1)  # down by one, edge repeated
  views = [x, shifted, x[:, :, ::-1], shifted[:, :, ::-1]]
  np.testing.assert_allclose(got, np.mean([apply(v) for v in views], axis=0), rtol=1e-6)
  state = create_train_state(BNNet(), jax.random.PRNGKey(0), (1, 6, 6, 3), optax.sgd(0.1))
  b = _batch()
  sums = jax.jit(functools.partial(eval_step, logits_fn=functools.partial(tta_logits)))(state, b)
  ev = evaluate(state, (b["image"], b["label"]), batch_size=8,
                logits_fn=functools.partial(tta_logits))
  assert ev["loss"] == pytest.approx(float(sums["loss"]) / 16, rel=1e-5)
  plain = evaluate(state, (b["image"], b["label"]), batch_size=8)
  assert ev["loss"] != pytest.approx(plain["loss"], rel=1e-6)  # the hook did change the logits


# -- BatchNorm through the step under every parallel mode ---------------------------------------

@pytest.mark.parametrize("mode", ["pmap", "mesh"])
def test_batchnorm_net_with_ema_trains_and_evaluates_alike_under_every_mode(mode):
  def run(mode):
    model = BNNet(axis_name=AXIS_NAME if mode == "pmap" else None)
    state = create_train_state(model, jax.random.PRNGKey(0), (1, 6, 6, 3), optax.sgd(0.1),
                               averager=ema(0.5))
    par = Parallel(mode)
    step, ev = par.compile_train(train_step), par.compile_eval(eval_step)
    state = par.put_state(state)
    for i in range(3):
      state, _ = step(state, par.put_batch(_batch(seed=i)))
    sums = par.metrics_to_host(ev(state, par.put_batch(_batch(seed=9))))
    return jax.device_get(par.get_state(state)), sums

  ref, ref_sums = run("none")
  got, sums = run(mode)
  for coll in ("batch_stats",):
    for a, b in zip(jax.tree.leaves(ref.collections[coll]), jax.tree.leaves(got.collections[coll])):
      np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(ref.avg_state[coll]), jax.tree.leaves(got.avg_state[coll])):
      np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  assert float(sums["loss"]) == pytest.approx(float(ref_sums["loss"]), rel=1e-4)
  assert not np.allclose(ref.collections["batch_stats"]["bn"]["mean"], 0.0)  # it did update


def test_make_model_gives_pmap_runs_the_axis_name(monkeypatch):
  seen = {}
  real = models.get_model
  monkeypatch.setattr(models, "get_model", lambda *a, **k: seen.update(k) or real(*a, **k))
  config = {"model": "mlp", "parallel": "pmap"}
  run.make_model(config, 10)
  assert seen["axis_name"] == AXIS_NAME
  config["parallel"] = "mesh"
  run.make_model(config, 10)
  assert seen["axis_name"] is None


# -- the loop: fit and train_and_evaluate share it; the test split -------------------------------

def _arrays(n, seed, label=None):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, n).astype(np.int32) if label is None else np.full(n, label, np.int32)
  return x, y


def _tiny_config(**overrides):
  from jaxcnn.configs import mnist_mlp
  config = mnist_mlp.get_config()
  config.model_kwargs.hidden = (16,)
  config.model_kwargs.dropout = 0.3
  config.batch_size = config.eval_batch_size = 8
  config.num_epochs = 3
  config.patience = 0
  config.log_every_steps = 100
  config.progress = False
  config.plots = False
  for key, value in overrides.items():
    config[key] = value
  return config


def _untimed(records):
  return [{k: v for k, v in r.items() if not k.endswith(("_seconds", "_per_sec"))}
          for r in records]


def test_fit_and_train_and_evaluate_give_identical_histories(tmp_path, monkeypatch):
  # min_delta large: epoch 2 cannot improve enough, so both stop after epoch 2 with
  # patience 1 (fit used to ignore early_stopping_min_delta).
  config = _tiny_config(num_epochs=4, patience=1, early_stopping_min_delta=10.0,
                        learning_rate=1e-2)
  train = ArrayLoader(*_arrays(24, 1), 8, shuffle=True, seed=0, drop_remainder=True)
  evaluation = ArrayLoader(*_arrays(12, 2), 8)
  monkeypatch.setattr(run, "make_loaders", lambda config, info, **kw: (train, evaluation))
  result = train_and_evaluate(config, tmp_path)
  history = fit(run.make_model(config, 10), train, validation_data=evaluation, config=config,
                verbose=0)
  assert [r["epoch"] for r in result.history] == [1, 2] and result.stopped_early
  # Exact: one engine, the same compiled steps on the same batches from the same seed.
  assert _untimed(history.records) == _untimed(result.history)
  assert history["val_loss"] == [r["eval_loss"] for r in result.history]
  assert _leaves_equal(history.state.params, result.state.params)  # both restored epoch 1
  with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['learning_rat'\]"):
    fit(run.make_model(config, 10), train, learning_rat=0.1)


def test_eval_every_k_epochs_and_no_plots_or_epoch_checkpoints(tmp_path, monkeypatch):
  config = _tiny_config(num_epochs=5, eval_every_epochs=2, checkpoint_every_epoch=False,
                        checkpoint_every_steps=0)
  train = ArrayLoader(*_arrays(24, 1), 8, shuffle=True, seed=0, drop_remainder=True)
  monkeypatch.setattr(run, "make_loaders",
                      lambda config, info, **kw: (train, ArrayLoader(*_arrays(12, 2), 8)))
  result = train_and_evaluate(config, tmp_path)
  evaluated = [r["epoch"] for r in result.history if r["eval_loss"] is not None]
  assert evaluated == [2, 4, 5]  # every 2nd epoch, and the last
  assert not (tmp_path / "curves.png").exists()
  ckpt = Checkpointer(tmp_path / "checkpoints")
  assert ckpt.latest.all_steps() == [15]  # only the end of the run
  ckpt.close()


def test_test_split_is_evaluated_once_from_the_restored_best_model(tmp_path, monkeypatch):
  # Train labels all 0, eval labels all 1: epoch 1 is the best; patience 1 stops at epoch 2.
  config = _tiny_config(num_epochs=5, patience=1, learning_rate=1e-2)
  config.data.test_split = "test"
  test_x, test_y = _arrays(12, 3, label=1)
  train = ArrayLoader(*_arrays(24, 1, label=0), 8, shuffle=True, seed=0, drop_remainder=True)
  monkeypatch.setattr(run, "make_loaders",
                      lambda config, info, **kw: (train, ArrayLoader(*_arrays(12, 2, 1), 8)))
  built = []
  monkeypatch.setattr(run, "make_test_loader",
                      lambda config, info, **kw: built.append(1) or ArrayLoader(test_x, test_y, 8))
  result = train_and_evaluate(config, tmp_path)
  assert result.best_epoch == 1 and [r["epoch"] for r in result.history] == [1, 2]
  saved = json.loads((tmp_path / "test_metrics.json").read_text())
  assert saved["step"] == 3 == int(result.state.step)  # epoch 1's state, not epoch 2's
  want = evaluate(result.state, (test_x, test_y), batch_size=8)
  assert saved["test_accuracy"] == pytest.approx(want["accuracy"])
  assert saved["test_loss"] == pytest.approx(want["loss"], rel=1e-5)
  assert np.sum(saved["test_confusion"]) == 12 and len(built) == 1
  assert result.test_metrics["test_loss"] == saved["test_loss"]
  assert not any("test" in k for r in result.history for k in r)  # never seen in training


# -- the speed-run recipe through the public API ------------------------------------------------

class RecipeNet(nn.Module):
  """A frozen 2x2 whitening conv (set from data) - conv - BatchNorm - relu - pool - head."""
  num_classes: int = 10
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = L.Conv(12, 2, use_bias=False, name="whiten")(x)
    x = L.Conv(8, 3, use_bias=False, padding="SAME", name="conv")(x)
    x = L.BatchNorm(momentum=0.6, axis_name=self.axis_name, name="bn")(x, train=train)
    x = L.GlobalAvgPool()(jax.nn.relu(x))
    return L.Dense(self.num_classes, name="head")(x)


def _recipe_net(*, num_classes, dtype, axis_name=None):
  del dtype
  return RecipeNet(num_classes, axis_name)


def whitening_init(model, key, batch):
  """``default_init``, then the whitening conv's kernel from the batch's 2x2 patch covariance:
  its 12 filters are the covariance's eigenvectors scaled by ``1 / sqrt(eigenvalue)``."""
  variables = default_init(model, key, batch)
  x = np.asarray(batch["image"], np.float64)
  patches = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2))  # [B,H',W',C,2,2]
  patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)  # rows in (dy, dx, c) order
  eigenvalues, vectors = np.linalg.eigh(np.cov(patches, rowvar=False))
  kernel = (vectors / np.sqrt(eigenvalues + 1e-2)).reshape(2, 2, 3, 12)
  params = dict(variables["params"])
  params["whiten"] = {"kernel": jnp.asarray(kernel, jnp.float32)}
  return {**variables, "params": params}


def recipe_tx(params, total_steps, steps_per_epoch):
  """Muon on conv kernels, Nesterov SGD elsewhere (head at half the rate), whitening frozen,
  all under lookahead."""
  labels = param_labels(params, frozen=["whiten"], head="head")
  nesterov = sgd_nesterov(0.05, momentum=0.9, weight_decay=5e-4)
  inner = partition({"kernel": muon(0.05), "bias": nesterov, "head": nesterov}, labels,
                    lr_scale={"head": 0.5})
  return optax.lookahead(inner, sync_period=2, slow_step_size=0.5)


from tests.test_train_loop import _CrashingLoader  # noqa: E402  (raises KeyboardInterrupt at a step)


@pytest.mark.slow
def test_speed_run_recipe_trains_and_resumes_bit_exactly(tmp_path, monkeypatch):
  from jaxcnn.configs import cifar10_tutorial
  monkeypatch.setitem(models.MODELS, "test_recipe_net", _recipe_net)  # gone after the test
  config = cifar10_tutorial.get_config()
  config.model = "test_recipe_net"
  config.model_kwargs = {}  # the tutorial config's `hidden` is the tutorial net's
  config.batch_size = config.eval_batch_size = 8
  config.num_train_steps = 8  # 4 steps per epoch on 32 mock images: 2 epochs
  config.checkpoint_every_steps = 2
  config.log_every_steps = 2
  config.progress = False
  config.plots = False
  config.data.augment = "alternating_flip"
  config.data.train_split, config.data.eval_split = "train", "test"
  hooks = dict(tx=recipe_tx, init_fn=whitening_init,
               logits_fn=functools.partial(tta_logits, flip=True))
  real_make_loaders = run.make_loaders

  with tfds.testing.mock_data(num_examples=32):
    straight = train_and_evaluate(config, tmp_path / "straight", **hooks)

    def interrupted(config, info, **kw):
      train, evaluation = real_make_loaders(config, info, **kw)
      return _CrashingLoader(train, crash_at=5), evaluation
    monkeypatch.setattr(run, "make_loaders", interrupted)
    with pytest.raises(KeyboardInterrupt):
      train_and_evaluate(config, tmp_path / "resumed", **hooks)
    assert Checkpointer(tmp_path / "resumed" / "checkpoints").latest_step() == 4
    monkeypatch.setattr(run, "make_loaders", real_make_loaders)
    resumed = train_and_evaluate(config, tmp_path / "resumed", **hooks)

    # The initial state, built as the run builds it: the whitening kernel came from the data.
    cfg = validate(config)
    info = run.data_info(cfg)
    train, _ = run.make_loaders(cfg, info)
    settings = loop.LoopSettings.from_config(cfg, train.steps_per_epoch, 8, verbose=False)
    init = loop.init_state(run.make_model(cfg, 10), cfg, (1, 32, 32, 3), train,
                           settings, tx=recipe_tx, init_fn=whitening_init)

  assert int(straight.state.step) == int(resumed.state.step) == 8
  assert _leaves_equal(resumed.state.params, straight.state.params)  # bit-exact
  assert _leaves_equal(resumed.state.opt_state, straight.state.opt_state)
  assert _leaves_equal(resumed.state.collections, straight.state.collections)
  assert _untimed(resumed.history) == _untimed(straight.history)
  assert all(np.isfinite(r["eval_loss"]) for r in straight.history)

  p0, p1 = init.params, straight.state.params
  assert isinstance(p1, optax.LookaheadParams)
  for copy in (p1.fast, p1.slow):  # frozen: bit-identical in both lookahead copies
    np.testing.assert_array_equal(copy["whiten"]["kernel"], p0.fast["whiten"]["kernel"])
    assert not np.array_equal(copy["conv"]["kernel"], p0.fast["conv"]["kernel"])
    assert not np.array_equal(copy["head"]["kernel"], p0.fast["head"]["kernel"])
  default = default_init(run.make_model(config, 10), jax.random.PRNGKey(0),
                         {"image": jnp.zeros((1, 32, 32, 3))})
  assert not np.allclose(p0.fast["whiten"]["kernel"], default["params"]["whiten"]["kernel"])
  stats = straight.state.collections["batch_stats"]["bn"]
  assert not np.allclose(stats["mean"], 0.0)  # BatchNorm statistics were trained


def test_module_doctests():
  import doctest
  from jaxcnn.data import augment
  from jaxcnn.train import average, optim, state, steps
  for module in (optim, average, steps, state, augment):
    result = doctest.testmod(module, raise_on_error=False, verbose=False,
                             extraglobs={"jnp": jnp, "jax": jax, "optax": optax})
    assert result.failed == 0 and result.attempted > 0, module.__name__
