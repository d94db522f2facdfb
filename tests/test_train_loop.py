"""Tests of ``train_and_evaluate``: the configs end to end on mocked tfds data, exact resume,
early stopping, the NaN guard and config validation.

Except for the per-config tests (which go through the real data path under
``tfds.testing.mock_data``), the loaders are replaced by tiny in-memory ``ArrayLoader``s and the
model is a 16-unit MLP, so each run compiles in seconds.
"""

import json

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxcnn.configs import cifar10_tutorial, mnist_mlp
from jaxcnn.train import Checkpointer, NonFiniteError, evaluate, fit, loop, predict, run
from jaxcnn.train import create_train_state, train_and_evaluate, train_step, validate
from jaxcnn.train.keras import ArrayLoader

RECORD_KEYS = {"epoch", "step", "train_loss", "train_accuracy", "eval_loss", "eval_accuracy",
               "eval_top5", "epoch_seconds", "train_images_per_sec"}


@pytest.mark.slow
@pytest.mark.parametrize("module,parallel", [(cifar10_tutorial, "none"), (mnist_mlp, "none"),
                                             (mnist_mlp, "mesh")],
                         ids=["cifar10", "mnist", "mnist-mesh"])
def test_config_trains_end_to_end_on_mock_data(module, parallel, tmp_path):
  config = module.get_config()
  config.parallel = parallel  # mesh: 8 faked devices, batches made sharded by the loader
  if config.model == "mlp":
    config.model_kwargs.hidden = (32,)
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 3
  config.log_every_steps = 2
  # mock_data serves num_examples random images for any split (slicing is not applied).
  with tfds.testing.mock_data(num_examples=16):
    result = train_and_evaluate(config, tmp_path)
  assert [r["step"] for r in result.history] == [2, 3]  # 2 steps per epoch, 3 steps in all
  assert int(result.state.step) == 3
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  records = [json.loads(line) for line in lines]
  assert len(records) == 2 and RECORD_KEYS <= set(records[0])
  assert "compile_seconds" in records[0] and "compile_seconds" not in records[1]
  assert json.loads((tmp_path / "config.json").read_text())["model"] == config.model
  assert "Total params" in (tmp_path / "summary.txt").read_text()
  for name in ("curves.png", "confusion.png"):
    assert (tmp_path / name).stat().st_size > 1000
  assert Checkpointer(tmp_path / "checkpoints").latest_step() == 3


# -- tiny in-memory runs -------------------------------------------------------------------------

def _arrays(n, seed, label=None):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, n).astype(np.int32) if label is None else np.full(n, label, np.int32)
  return x, y


def _tiny_config(**overrides):
  config = mnist_mlp.get_config()
  config.model_kwargs.hidden = (16,)
  config.model_kwargs.dropout = 0.3  # dropout on: resume must replay the same masks
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_epochs = 3
  config.patience = 0
  config.log_every_steps = 100
  config.progress = False
  for key, value in overrides.items():
    config[key] = value
  return config


class _CrashingLoader:
  """Wraps a loader; raises when asked for the batch of global step ``crash_at``."""

  def __init__(self, inner, crash_at):
    self.inner, self.crash_at = inner, crash_at
    self.batch_size, self.steps_per_epoch = inner.batch_size, inner.steps_per_epoch
    self.num_examples = inner.num_examples

  def epoch(self, epoch, start_step=0):
    for i, batch in enumerate(self.inner.epoch(epoch, start_step), start_step):
      if epoch * self.steps_per_epoch + i == self.crash_at:
        raise KeyboardInterrupt("simulated interruption")
      yield batch


class _NanAtStep(_CrashingLoader):
  """Yields a NaN image in the batch of global step ``crash_at`` instead of raising."""

  def epoch(self, epoch, start_step=0):
    for i, batch in enumerate(self.inner.epoch(epoch, start_step), start_step):
      if epoch * self.steps_per_epoch + i == self.crash_at:
        batch = dict(batch, image=np.full_like(batch["image"], np.nan))
      yield batch


def _use_loaders(monkeypatch, train, evaluation):
  monkeypatch.setattr(run, "make_loaders", lambda config, info, **kw: (train, evaluation))


def _train_loader(seed=0, label=None):
  x, y = _arrays(24, 1, label)  # 24 examples / batch 8 = 3 steps per epoch
  return ArrayLoader(x, y, 8, shuffle=True, seed=seed, drop_remainder=True)


def _eval_loader(label=None):
  x, y = _arrays(12, 2, label)  # 12 examples: the last batch is padded and masked
  return ArrayLoader(x, y, 8)


def _leaves_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.slow
def test_resume_after_interruption_equals_straight_run(tmp_path, monkeypatch):
  config = _tiny_config(num_train_steps=8, checkpoint_every_steps=2)  # epochs of 3, 3, 2 steps
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  straight = train_and_evaluate(config, tmp_path / "straight")

  # Interrupted mid-epoch 2 (after step 5; the last checkpoint is step 4), then the same command.
  _use_loaders(monkeypatch, _CrashingLoader(_train_loader(), crash_at=5), _eval_loader())
  with pytest.raises(KeyboardInterrupt):
    train_and_evaluate(config, tmp_path / "resumed")
  assert Checkpointer(tmp_path / "resumed" / "checkpoints").latest_step() == 4
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  traces = []

  def counted(*args, **kwargs):
    traces.append(1)  # once per compilation
    return train_step(*args, **kwargs)

  monkeypatch.setattr(loop, "train_step", counted)
  resumed = train_and_evaluate(config, tmp_path / "resumed")
  assert len(traces) == 1  # the restored state has the types the step returns: one compile

  assert int(resumed.state.step) == int(straight.state.step) == 8
  assert _leaves_equal(resumed.state.params, straight.state.params)
  assert _leaves_equal(resumed.state.opt_state, straight.state.opt_state)
  lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
  records = [json.loads(line) for line in lines]
  assert [r["epoch"] for r in records] == [1, 2, 3]  # appended once each, in order
  for got, want in zip(records, straight.history):
    for key in ("step", "train_loss", "train_accuracy", "eval_loss", "eval_accuracy"):
      assert got[key] == pytest.approx(want[key], rel=1e-6), key

  # Re-running a finished run changes nothing.
  again = train_and_evaluate(config, tmp_path / "resumed")
  assert _leaves_equal(again.state.params, straight.state.params)
  assert len((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()) == 3


def test_early_stopping_restores_the_best_epoch(tmp_path, monkeypatch):
  # Train labels are all 0 and eval labels all 1: the better the model fits the training set,
  # the worse its eval loss, so epoch 1 is the best and patience runs out after epoch 3.
  config = _tiny_config(num_epochs=10, patience=2, learning_rate=1e-2)
  evaluation = _eval_loader(label=1)
  _use_loaders(monkeypatch, _train_loader(label=0), evaluation)
  result = train_and_evaluate(config, tmp_path)
  assert result.stopped_early and result.best_epoch == 1
  assert [r["epoch"] for r in result.history] == [1, 2, 3]
  losses = [r["eval_loss"] for r in result.history]
  assert losses[0] < losses[1] < losses[2]
  assert int(result.state.step) == 3  # the state of epoch 1, not of epoch 3
  assert evaluate(result.state, evaluation)["loss"] == pytest.approx(losses[0], rel=1e-5)


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch):
  config = _tiny_config(checkpoint_every_steps=2)
  _use_loaders(monkeypatch, _NanAtStep(_train_loader(), crash_at=5), _eval_loader())
  with pytest.raises(NonFiniteError, match=r"train step 5\b.*checkpoint: step 4") as info:
    train_and_evaluate(config, tmp_path)
  assert isinstance(info.value, FloatingPointError) and info.value.step == 5
  ckpt = Checkpointer(tmp_path / "checkpoints")
  assert ckpt.latest_step() == 4  # the NaN state (step 6) was never saved
  template = create_train_state(run.make_model(config, 10), jax.random.PRNGKey(0),
                                (1, 28, 28, 1), loop.optim.make_optimizer(validate(config)))
  state, meta = ckpt.restore(template)
  assert int(state.step) == 4 and meta["step"] == 4
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))


@pytest.mark.parametrize("key,value,match", [
    ("optimizer", "rmsprop", "'rmsprop'"),
    ("model", "resnet9000", "'resnet9000'"),
    ("learning_rate", -0.1, "-0.1"),
    ("parallel", "dp", "'dp'"),
    ("batch_size", 12, r"\(=12\).*\(=8\)"),  # with parallel='mesh' on 8 devices
    ("dtype", "float8", "'float8'"),
    ("data.name", "imagenet", "'imagenet'"),
    ("data.normalize", "zscore", "'zscore'"),
    ("ema", 1.0, r"\(=1.0\)"),
])
def test_bad_config_values_fail_before_any_data_is_read(key, value, match, tmp_path,
                                                        monkeypatch):
  def no_data(*args, **kwargs):
    raise AssertionError("data was loaded before the config was validated")

  monkeypatch.setattr(run, "make_loaders", no_data)
  config = _tiny_config(parallel="mesh")
  if key.startswith("data."):
    config.data[key[5:]] = value
  else:
    config[key] = value
  with pytest.raises(ValueError, match=match):
    train_and_evaluate(config, tmp_path)


def test_keras_like_fit_evaluate_predict():
  from jaxcnn import models
  x, y = _arrays(24, 1)
  xv, yv = _arrays(12, 2)
  history = fit(models.get_model("mlp", hidden=(16,)), (x, y), epochs=2, batch_size=8,
                validation_data=(xv, yv), verbose=0)
  assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "val_top5"}
  assert len(history["loss"]) == 2 and history.history is history
  assert int(history.state.step) == 6
  ev = evaluate(history.state, (xv, yv), batch_size=8)
  assert ev["count"] == 12 and ev["confusion"].sum() == 12
  assert ev["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-5)
  logits = predict(history.state, xv, batch_size=8)
  assert logits.shape == (12, 10)
  assert ev["accuracy"] == pytest.approx(np.mean(logits.argmax(-1) == yv))


@pytest.mark.slow
def test_parallel_modes_through_the_loop_match_single_device(tmp_path, monkeypatch):
  # End to end: placement, sharded checkpoints (saved and restored as the canonical state) and
  # masked eval under each mode. No dropout: under pmap each device draws its own mask.
  config = _tiny_config(num_train_steps=4, checkpoint_every_steps=2)
  config.model_kwargs.dropout = 0.0
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  ref = train_and_evaluate(config, tmp_path / "none")
  for mode in ("pmap", "mesh"):
    config.parallel = mode
    got = train_and_evaluate(config, tmp_path / mode)
    for a, b in zip(jax.tree.leaves(ref.state.params), jax.tree.leaves(got.state.params)):
      np.testing.assert_allclose(a, b, atol=1e-5, err_msg=mode)
    assert got.history[-1]["eval_loss"] == pytest.approx(ref.history[-1]["eval_loss"], rel=1e-5)
    resumed = train_and_evaluate(config, tmp_path / mode)  # restores the sharded checkpoint
    assert int(resumed.state.step) == 4


def test_bfloat16_compute_keeps_float32_params():
  import jax.numpy as jnp
  import optax
  from jaxcnn.train import create_train_state, train_step
  model = run.make_model(_tiny_config(dtype="bfloat16"), 10)
  state = create_train_state(model, jax.random.PRNGKey(0), (1, 28, 28, 1), optax.adam(1e-3))
  x, y = _arrays(8, 0)
  assert "bf16" in str(jax.make_jaxpr(lambda v: model.apply(v, x))(state.variables))
  new, m = jax.jit(train_step)(state, {"image": x, "label": y})
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(new.params))
  assert float(m["finite"]) == 1.0 and m["loss"].dtype == jnp.float32


@pytest.mark.parametrize("normalize,mean,std", [
    ("unit", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # x / 255, the Keras tutorial's scaling
    ("dataset", None, None),  # None: make_loader uses DATASETS' documented statistics
])
def test_data_normalize_reaches_the_loaders(normalize, mean, std, monkeypatch):
  from jaxcnn import data
  seen = []
  monkeypatch.setattr(data, "make_loader", lambda *a, **kw: seen.append(kw))
  config = _tiny_config()
  config.data.name = "cifar10"
  config.data.normalize = normalize
  run.make_loaders(validate(config), data.get_info("cifar10"))
  assert len(seen) == 2
  for kw in seen:
    assert kw.get("mean") == mean and kw.get("std") == std


def test_resuming_with_another_config_is_a_clear_error(tmp_path, monkeypatch):
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  train_and_evaluate(_tiny_config(num_train_steps=2), tmp_path)
  other = _tiny_config(num_train_steps=4)
  other.model_kwargs.hidden = (32,)
  with pytest.raises(ValueError, match=r"model_kwargs\.hidden: \[16\] -> \[32\]"):
    train_and_evaluate(other, tmp_path)
  # Without config.json to compare, a checkpoint that does not fit is still a short ValueError.
  (tmp_path / "config.json").unlink()
  with pytest.raises(ValueError, match=r"does not fit this config's model.*"
                                       r"\['Dense_0'\]\['bias'\] is float32\[16\] there, "
                                       r"float32\[32\] here"):
    train_and_evaluate(other, tmp_path)


def test_training_longer_resumes_from_the_checkpoint(tmp_path, monkeypatch):
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  train_and_evaluate(_tiny_config(num_train_steps=2), tmp_path)
  result = train_and_evaluate(_tiny_config(num_train_steps=3), tmp_path)  # allowed change
  assert int(result.state.step) == 3


def test_a_longer_run_under_a_schedule_is_not_resumed(tmp_path, monkeypatch):
  # The cosine curve depends on the total steps: resuming into a longer run would not be exact.
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  train_and_evaluate(_tiny_config(num_train_steps=2, schedule="cosine"), tmp_path)
  with pytest.raises(ValueError, match=r"num_train_steps: 2 -> 3"):
    train_and_evaluate(_tiny_config(num_train_steps=3, schedule="cosine"), tmp_path)


def test_switching_between_tfds_and_a_folder_copy_is_not_resumed(tmp_path, monkeypatch):
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  config = _tiny_config(num_train_steps=2)
  train_and_evaluate(config, tmp_path)
  config.data.image_folder = str(tmp_path)  # any existing path: validated before the check
  with pytest.raises(ValueError, match=r"data\.image_folder: None -> "):
    train_and_evaluate(config, tmp_path)


@pytest.mark.parametrize("key,value", [("learning_rate", True), ("weight_decay", "0.1")])
def test_optimizer_values_must_be_real_numbers(key, value):
  # Plain dicts (fit(), notebooks) are not type-checked by ConfigDict: a bool is not a rate of 1.
  config = {"optimizer": "adam", "learning_rate": 1e-3, key: value}
  with pytest.raises(ValueError, match=rf"`{key}` \(={value!r}\)"):
    validate(config)


def test_predict_compiles_once_for_any_number_of_images():
  from jaxcnn import models
  from jaxcnn.train import keras as keras_lib
  x, y = _arrays(8, 1)
  history = fit(models.get_model("mlp", hidden=(8,)), (x, y), epochs=1, batch_size=4, verbose=0)
  keras_lib._predict_jit.clear_cache()
  sizes = [predict(history.state, x[:n], batch_size=4).shape for n in (0, 1, 3, 4, 7)]
  assert sizes == [(0, 10), (1, 10), (3, 10), (4, 10), (7, 10)]
  assert keras_lib._predict_jit._cache_size() == 1


def test_schedules_by_hand():
  from jaxcnn.train import optim

  def lr(schedule, total, step, **kw):
    config = {"learning_rate": 0.1, "schedule": schedule, **kw}
    return float(optim.make_schedule(validate(config), total, 10)(step))

  assert lr("constant", 100, 99) == pytest.approx(0.1)
  assert lr("cosine", 100, 0) == pytest.approx(0.1) and lr("cosine", 100, 100) == 0.0
  assert lr("cosine", 100, 50) == pytest.approx(0.05)
  assert lr("warmup_cosine", 100, 0) == 0.0 and lr("warmup_cosine", 100, 10) == pytest.approx(0.1)
  assert lr("piecewise", 100, 49) == pytest.approx(0.1)
  assert lr("piecewise", 100, 50) == pytest.approx(0.01)
  assert lr("piecewise", 100, 75) == pytest.approx(0.001)
  # A run so short that both default boundaries fall on step 1: both decays still apply.
  assert lr("piecewise", 2, 1) == pytest.approx(0.001)
  assert lr("piecewise", 100, 30, lr_boundaries_epochs=(2, 3), lr_decay_factor=0.5) == \
      pytest.approx(0.025)


def test_mesh_mode_batches_come_out_of_the_loader_already_sharded():
  from jaxcnn import data
  from jaxcnn.train import parallel as parallel_lib
  par = parallel_lib.Parallel("mesh")
  config = _tiny_config(parallel="mesh")
  with tfds.testing.mock_data(num_examples=16):
    train, evaluation = run.make_loaders(validate(config), data.get_info("mnist"),
                                         batch_sharding=par.batch_sharding)
  for loader in (train, evaluation):
    batch = next(iter(loader.epoch(0)))
    assert batch["image"].sharding == par.batch_sharding  # no copy from device 0 needed
    assert len(batch["image"].sharding.device_set) == 8


def test_rerunning_a_finished_run_says_so_and_trains_nothing(tmp_path, monkeypatch, caplog):
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  first = train_and_evaluate(_tiny_config(num_epochs=1), tmp_path)
  with caplog.at_level("WARNING"):
    again = train_and_evaluate(_tiny_config(num_epochs=1), tmp_path)
  assert "already finished at step 3" in caplog.text and "resuming" not in caplog.text
  assert again.history == first.history and _leaves_equal(again.state.params, first.state.params)
