"""The compiled train step gives the same states with the state donated as without.

jaxlib 0.7.2's CPU backend (Colab's TPU runtime pins it) computed a different state from the
third donated Adam step of the MNIST MLP on; :func:`jaxcnn.train.parallel.donate_state` turns
donation off there. This test runs in both CI legs, so a jaxlib that gets it wrong fails here.
"""

import functools

import jax
import numpy as np
import optax
import pytest

from jaxcnn import train as T
from jaxcnn.models import get_model
from jaxcnn.train import parallel as parallel_lib
from jaxcnn.train import loop, train_step
from jaxcnn.train.keras import ArrayLoader


def _state_and_batches():
  rng = np.random.RandomState(0)
  x = rng.rand(512, 28, 28, 1).astype(np.float32)
  y = np.arange(512) % 10
  loader = ArrayLoader(x, y, 128, shuffle=True, drop_remainder=True)
  settings = loop.LoopSettings(steps_per_epoch=4, total_steps=8, num_epochs=2, images_per_step=128,
                            log_every=4)
  cfg = T.validate({"seed": 0, "ema": 0.0})
  state = loop.init_state(get_model("mlp"), cfg, (1, 28, 28, 1), loader, settings,
                       tx=optax.adam(1e-3))
  return state, [b for e in range(2) for b in loader.epoch(e)]


def _run(step, state, batches, par):
  st = par.put_state(jax.tree.map(lambda a: jax.numpy.array(a, copy=True), state))
  losses = []
  for b in batches:
    st, m = step(st, par.put_batch(b))
    losses.append(float(m["loss"]))
  return losses, jax.device_get(par.get_state(st).params)


def test_engine_step_equals_the_undonated_step():
  state, batches = _state_and_batches()
  par = T.Parallel("none")
  plain = jax.jit(functools.partial(train_step, axis_name=None, label_smoothing=0.0,
                                    loss_fn=None))
  want_losses, want_params = _run(plain, state, batches, par)
  got_losses, got_params = _run(par.compile_train(train_step, label_smoothing=0.0, loss_fn=None),
                                state, batches, par)
  np.testing.assert_allclose(got_losses, want_losses, rtol=1e-6)
  for g, w in zip(jax.tree.leaves(got_params), jax.tree.leaves(want_params)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("version,platform,want", [
    ((0, 7), "cpu", ()), ((0, 9), "cpu", ()), ((0, 10), "cpu", (0,)), ((1, 0), "cpu", (0,)),
    ((0, 7), "gpu", (0,)), ((0, 7), "tpu", (0,))])
def test_donation_is_off_only_on_old_cpu_jaxlibs(monkeypatch, version, platform, want):
  monkeypatch.setattr(parallel_lib, "_jaxlib_version", lambda: version)
  assert parallel_lib.donate_state(platform) == want
