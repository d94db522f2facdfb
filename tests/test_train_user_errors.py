"""User mistakes in the training API (``fit``, ``evaluate``, ``predict``, ``train_and_evaluate``)
get one clear line, or are handled: labels, uint8 images, a model by name, bad epochs / batch
sizes, a shared workdir, a diverged run."""

import subprocess
import sys
import time

import numpy as np
import pytest

from jaxcnn import models
from jaxcnn.train import NonFiniteError, evaluate, fit, predict, run
from jaxcnn.train.keras import ArrayLoader
from jaxcnn.train import train_and_evaluate
from jaxcnn.train.keras import check_labels


def _arrays(n, seed):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, 28, 28, 1)).astype(np.float32),
          rng.integers(0, 10, n).astype(np.int32))


def _mlp():
  return models.get_model("mlp", hidden=(16,))


def test_out_of_range_and_fractional_labels_are_named_with_their_index():
  x, y = _arrays(16, 0)
  y_bad = y.copy()
  y_bad[5] = 10
  with pytest.raises(ValueError, match=r"label 10 at index 5 is out of range: .*\[0, 10\)"):
    fit(_mlp(), (x, y_bad), epochs=1, batch_size=8, verbose=0)
  with pytest.raises(ValueError, match=r"label -1 at index 0 is out of range"):
    check_labels(np.array([-1, 0]))
  with pytest.raises(ValueError, match=r"label 2.5 at index 1 is not a whole number"):
    fit(_mlp(), (x, np.r_[0.0, 2.5, np.zeros(14)]), epochs=1, batch_size=8, verbose=0)
  h = fit(_mlp(), (x, y.astype(np.float64)), epochs=1, batch_size=8, verbose=0)  # 3.0 is fine
  with pytest.raises(ValueError, match=r"label 10 at index 5 is out of range"):
    evaluate(h.state, (x, y_bad), batch_size=8)


def test_uint8_images_are_scaled_to_unit_range_everywhere():
  rng = np.random.default_rng(0)
  x8 = rng.integers(0, 256, (16, 28, 28, 1)).astype(np.uint8)
  y = rng.integers(0, 10, 16)
  h8 = fit(_mlp(), (x8, y), epochs=2, batch_size=8, verbose=0)
  hf = fit(_mlp(), (x8.astype(np.float32) / 255, y), epochs=2, batch_size=8, verbose=0)
  # Exact: fit scales uint8 in numpy exactly as here, so both runs see the same bits.
  assert h8["loss"] == hf["loss"]
  np.testing.assert_array_equal(predict(h8.state, x8, batch_size=8),
                                predict(h8.state, x8.astype(np.float32) / 255, batch_size=8))


def test_a_model_given_by_name_and_bad_epochs_or_batch_sizes():
  x, y = _arrays(16, 0)
  h = fit("mlp", (x, y), epochs=1, batch_size=8, verbose=0)
  assert predict(h.state, x[:3]).shape == (3, 10)
  for epochs in (0, -1, 1.5):
    with pytest.raises(ValueError, match=rf"`epochs` \(={epochs}\) must be an int >= 1"):
      fit(_mlp(), (x, y), epochs=epochs, verbose=0)
  with pytest.raises(ValueError, match=r"`batch_size` \(=0\) must be an int >= 1"):
    predict(h.state, x, batch_size=0)


def _tiny_config(**overrides):
  from jaxcnn.configs import mnist_mlp
  config = mnist_mlp.get_config()
  config.model_kwargs.hidden = (16,)
  config.batch_size = config.eval_batch_size = 8
  config.num_epochs = 2
  config.patience = 0
  config.log_every_steps = 100
  config.progress = False
  config.plots = False
  for key, value in overrides.items():
    config[key] = value
  return config


def _use_arrays(monkeypatch, train):
  monkeypatch.setattr(run, "make_loaders",
                      lambda config, info, **kw: (train, ArrayLoader(*_arrays(8, 2), 8)))


def test_a_second_run_on_a_busy_workdir_is_refused_naming_the_first(tmp_path, monkeypatch):
  holder = subprocess.Popen(
      [sys.executable, "-c",
       "import sys, time; from jaxcnn.train.run import WorkdirLock\n"
       f"with WorkdirLock({str(tmp_path)!r}):\n  print('locked', flush=True); time.sleep(30)"],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    _use_arrays(monkeypatch, ArrayLoader(*_arrays(16, 1), 8, shuffle=True, drop_remainder=True))
    with pytest.raises(ValueError, match=rf"is in use by process {holder.pid} on .*; wait for "
                                         "that run to end, or use another --workdir"):
      train_and_evaluate(_tiny_config(), tmp_path)
    assert holder.poll() is None  # the first is unharmed
    assert not (tmp_path / "checkpoints").exists()
  finally:
    holder.kill()
    holder.wait()
  # Once the holder is gone (killed: the OS releases the lock), the workdir is free again.
  result = train_and_evaluate(_tiny_config(), tmp_path)
  assert int(result.state.step) == 4


from tests.test_train_loop import _NanAtStep  # noqa: E402  (a NaN batch at a step)


def test_a_diverged_run_names_its_checkpoint_and_resumes_with_a_smaller_rate(tmp_path,
                                                                             monkeypatch):
  train = ArrayLoader(*_arrays(24, 1), 8, shuffle=True, drop_remainder=True)  # 3 steps/epoch
  _use_arrays(monkeypatch, _NanAtStep(train, crash_at=1))
  with pytest.raises(NonFiniteError, match=r"step 1 .*no checkpoint was saved before it"):
    train_and_evaluate(_tiny_config(), tmp_path / "early")

  _use_arrays(monkeypatch, _NanAtStep(train, crash_at=4))
  config = _tiny_config(learning_rate=0.1)
  with pytest.raises(NonFiniteError, match=r"last good checkpoint: step 3 in .*re-run with a "
                                           r"smaller `learning_rate`"):
    train_and_evaluate(config, tmp_path / "late")
  _use_arrays(monkeypatch, train)
  config.learning_rate = 0.01
  result = train_and_evaluate(config, tmp_path / "late")  # resumes step 3 at the new rate
  assert int(result.state.step) == 6 and [r["epoch"] for r in result.history] == [1, 2]


def test_evaluate_and_predict_take_the_state_or_the_history_never_the_model():
  import numpy as np
  from jaxcnn import layers as L
  from jaxcnn.train import evaluate, fit, predict
  x = np.random.default_rng(0).random((16, 4, 4, 1), np.float32)
  y = np.arange(16) % 2
  model = L.Sequential([L.Flatten(), L.Dense(2)])
  history = fit(model, (x, y), epochs=1, batch_size=8, verbose=0)
  np.testing.assert_array_equal(predict(history, x), predict(history.state, x))
  assert evaluate(history, (x, y))["count"] == 16
  with pytest.raises(TypeError, match=r"`state` \(=a Sequential\) must be the TrainState"):
    predict(model, x)
  with pytest.raises(TypeError, match=r"`model` \(=the class Dense\) must be a module instance"):
    fit(L.Dense, (x, y), epochs=1, verbose=0)
