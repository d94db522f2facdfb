"""fit's callbacks: on_best exactly at new validation minima, on_epoch_end with each epoch's
state and Keras-named logs, on_train_begin with the initial state; SaveBest writes the best
epoch's variables atomically and loads them back."""

import jax
import numpy as np
import optax
import pytest

from jaxcnn import layers as L
from jaxcnn.train import Callback, SaveBest, evaluate, fit


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 4, 4, 1)).astype(np.float32)
  y = (x.mean((1, 2, 3)) > 0).astype(np.int32)
  return x, y


class Recorder(Callback):

  def __init__(self):
    self.calls = []

  def on_train_begin(self, state):
    self.calls.append(("begin", int(state.step)))

  def on_best(self, epoch, val_loss, state):
    self.calls.append(("best", epoch, val_loss, int(state.step)))

  def on_epoch_end(self, epoch, logs, state):
    self.calls.append(("end", epoch, dict(logs), int(state.step)))


def test_hooks_are_called_in_order_with_each_epochs_state():
  x, y = _data()
  rec = Recorder()
  h = fit(L.Sequential([L.Flatten(), L.Dense(2)]), (x, y), validation_data=(x[:32], y[:32]),
          epochs=4, batch_size=16, optimizer=optax.sgd(0.5), verbose=0, callbacks=[rec])
  assert rec.calls[0] == ("begin", 0)
  ends = [c for c in rec.calls if c[0] == "end"]
  assert [(c[1], c[3]) for c in ends] == [(1, 4), (2, 8), (3, 12), (4, 16)]
  for i, c in enumerate(ends):
    assert c[2]["loss"] == h["loss"][i] and c[2]["val_loss"] == h["val_loss"][i]
    assert set(c[2]) == {"loss", "accuracy", "val_loss", "val_accuracy", "val_top5"}
  running = np.minimum.accumulate(h["val_loss"])
  want = [("best", e + 1, v, 4 * (e + 1)) for e, v in enumerate(h["val_loss"])
          if e == 0 or v < running[e - 1]]
  assert [c for c in rec.calls if c[0] == "best"] == want
  # on_best of an epoch comes right before that epoch's on_epoch_end
  for c in want:
    i = rec.calls.index(c)
    assert rec.calls[i + 1][:2] == ("end", c[1])


def test_save_best_holds_the_best_epochs_variables(tmp_path):
  x, y = _data()
  save = SaveBest(tmp_path / "best.msgpack")
  h = fit(L.Sequential([L.Conv(4, 3), L.BatchNorm(), L.Flatten(), L.Dense(2)]), (x, y),
          validation_data=(x[:32], y[:32]), epochs=5, batch_size=16,
          optimizer=optax.sgd(0.3), verbose=0, callbacks=[save])
  best_epoch, best_loss = save.saves[-1]
  assert best_loss == min(h["val_loss"]) and best_epoch == int(np.argmin(h["val_loss"])) + 1
  assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed over the target
  restored = SaveBest.load(save.path, h.state)
  assert set(restored.collections) == {"batch_stats"}
  np.testing.assert_allclose(evaluate(restored, (x[:32], y[:32]))["loss"], best_loss, rtol=1e-5)


def test_callbacks_must_be_callback_objects():
  x, y = _data()
  with pytest.raises(TypeError, match="`callbacks` holds a function"):
    fit(L.Sequential([L.Flatten(), L.Dense(2)]), (x, y), epochs=1, batch_size=16, verbose=0,
        callbacks=[lambda *a: None])


def test_save_best_load_refuses_an_averaged_state(tmp_path):
  x, y = _data()
  save = SaveBest(tmp_path / "best.msgpack")
  h = fit(L.Sequential([L.Flatten(), L.Dense(2)]), (x, y), validation_data=(x, y), epochs=1,
          batch_size=16, verbose=0, ema=0.9, callbacks=[save])
  with pytest.raises(ValueError, match="averager or lookahead"):
    SaveBest.load(save.path, h.state)
  import flax.serialization
  variables = flax.serialization.msgpack_restore(save.path.read_bytes())
  for got, want in zip(jax.tree.leaves(variables["params"]),
                       jax.tree.leaves(jax.device_get(h.state.eval_variables["params"]))):
    np.testing.assert_array_equal(got, want)  # the averaged (evaluated) params


def test_states_given_to_callbacks_stay_valid_after_later_steps():
  x, y = _data()
  kept = []

  class Keep(Callback):
    def on_train_begin(self, state):
      kept.append(state)

    def on_epoch_end(self, epoch, logs, state):
      kept.append(state)

  fit(L.Sequential([L.Flatten(), L.Dense(2)]), (x, y), epochs=3, batch_size=16,
      optimizer=optax.sgd(0.5), verbose=0, callbacks=[Keep()])
  kernels = [np.concatenate([np.ravel(l) for l in jax.tree.leaves(s.params)]) for s in kept]
  assert [int(s.step) for s in kept] == [0, 4, 8, 12]
  assert all(not np.array_equal(a, b) for a, b in zip(kernels, kernels[1:]))
