"""Tests of the train/eval steps, the optimisers and the parallel modes on tiny models.

The models here are defined in the test (plain Flax), so these tests exercise only
``jaxcnn.train``; the full loop on real models and mocked data is in test_train_loop.py.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxcnn import train
from jaxcnn.train import Parallel, create_train_state, eval_step, train_step
from jaxcnn.train.steps import AXIS_NAME, dropout_key


class Tiny(nn.Module):
  """Conv - [BatchNorm] - relu - flatten - [Dropout] - Dense(10)."""
  bn: bool = False
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(4, (3, 3), use_bias=not self.bn)(x)
    if self.bn:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    x = nn.relu(x).reshape(x.shape[0], -1)
    if self.dropout:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(10)(x)


def _batch(n=16, seed=0, hw=6):
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(n, hw, hw, 3)).astype(np.float32),
          "label": rng.integers(0, 10, n).astype(np.int32)}


def _state(model=None, tx=None, seed=0, ema=0.0):
  return create_train_state(model or Tiny(), jax.random.PRNGKey(seed), (1, 6, 6, 3),
                            tx or optax.adam(1e-2), ema=ema)


def _run(mode, model, tx, batches, *, runs=1, **static):
  """Compiles the step once, runs it over ``batches`` from ``runs`` fresh states.

  Returns (canonical final state, host metrics, number of traces) of the last run.
  """
  traces = []

  def counted(state, batch, **kw):
    traces.append(1)  # runs only while tracing, i.e. once per compilation
    return train_step(state, batch, **kw)

  par = Parallel(mode)
  step = par.compile_train(counted, **static)
  for _ in range(runs):
    state = par.put_state(_state(model, tx))
    metrics = []
    for b in batches:
      state, m = step(state, par.put_batch(b))
      metrics.append(par.metrics_to_host(m))
    results = jax.device_get(par.get_state(state)), metrics, len(traces)
    yield results


def _run1(*args, **kwargs):
  return next(_run(*args, **kwargs))


def _max_diff(a, b):
  return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))


def test_loss_falls_on_a_fixed_batch():
  batch = _batch()
  _, metrics, _ = _run1("none", Tiny(), optax.adam(1e-2), [batch] * 10)
  losses = [float(m["loss"]) for m in metrics]
  assert losses[-1] < 0.7 * losses[0], losses
  assert all(float(m["finite"]) == 1.0 for m in metrics)
  for key in ("accuracy", "grad_norm", "param_norm", "update_norm"):
    assert np.isfinite(metrics[-1][key]) and metrics[-1][key] >= 0


def test_same_seed_same_metrics_and_no_recompilation():
  batches = [_batch(seed=i) for i in range(4)]
  # One compilation, two runs from fresh states of the same seed.
  (s1, m1, _), (s2, m2, traces) = _run("none", Tiny(bn=True, dropout=0.3), optax.adam(1e-2),
                                       batches, runs=2)
  assert traces == 1  # the state a step returns has the exact types of the one it was given
  for a, b in zip(m1, m2):
    assert a == b
  assert _max_diff(s1.params, s2.params) == 0.0
  assert int(s1.step) == 4
  assert s1.batch_stats  # running statistics were updated
  assert _max_diff(s1.batch_stats, _state(Tiny(bn=True)).batch_stats) > 0


def test_dropout_key_depends_on_step():
  # Same batch, same params: dropout masks of step 0 and 1 differ, so do the losses.
  state = _state(Tiny(dropout=0.5), optax.sgd(0.0))
  f = jax.jit(train_step)
  _, m0 = f(state, _batch())
  _, m1 = f(state.replace(step=jnp.ones((), jnp.int32)), _batch())
  assert float(m0["loss"]) != float(m1["loss"])


@functools.lru_cache(maxsize=None)
def _reference():
  batches = [_batch(n=16, seed=i) for i in range(3)]
  return _run1("none", Tiny(), optax.adam(1e-2), batches, label_smoothing=0.1)


@pytest.mark.parametrize("mode", ["pmap", "mesh"])
def test_parallel_modes_match_single_device(mode):
  assert jax.device_count() == 8
  batches = [_batch(n=16, seed=i) for i in range(3)]
  ref, mref, _ = _reference()
  got, mgot, traces = _run1(mode, Tiny(), optax.adam(1e-2), batches, label_smoothing=0.1)
  assert traces == 1
  assert _max_diff(ref.params, got.params) < 1e-5
  assert _max_diff(ref.opt_state, got.opt_state) < 1e-5
  np.testing.assert_allclose(mgot[-1]["loss"], mref[-1]["loss"], rtol=1e-5)
  np.testing.assert_allclose(mgot[-1]["grad_norm"], mref[-1]["grad_norm"], rtol=1e-4)


def test_mesh_matches_single_device_with_batchnorm_and_dropout():
  # Under 'mesh' the program is the global-batch one: BatchNorm moments and dropout masks
  # (threefry-partitionable keys) are those of a single device. SGD, because Adam turns
  # float-summation noise in near-zero gradients into full-size steps.
  batches = [_batch(n=16, seed=i) for i in range(3)]
  model = Tiny(bn=True, dropout=0.3)
  ref, _, _ = _run1("none", model, optax.sgd(0.1, momentum=0.9), batches)
  got, _, _ = _run1("mesh", model, optax.sgd(0.1, momentum=0.9), batches)
  assert _max_diff(ref.params, got.params) < 1e-5
  assert _max_diff(ref.batch_stats, got.batch_stats) < 1e-5


def test_dropout_key_folds_step_and_device_index():
  rng = jax.random.PRNGKey(0)
  n = jax.local_device_count()
  keys = jax.pmap(lambda r: dropout_key(r, jnp.int32(3), AXIS_NAME), axis_name=AXIS_NAME)(
      jnp.stack([rng] * n))
  keys = np.asarray(jax.random.key_data(keys)).reshape(n, -1)
  assert len({k.tobytes() for k in keys}) == n  # every device its own key
  for i in range(n):
    expected = jax.random.fold_in(jax.random.fold_in(rng, 3), i)
    np.testing.assert_array_equal(keys[i], np.asarray(jax.random.key_data(expected)).ravel())
  np.testing.assert_array_equal(jax.random.key_data(dropout_key(rng, 3)),
                                jax.random.key_data(jax.random.fold_in(rng, 3)))


def test_pmap_folds_device_index_and_averages_batch_stats():
  par = Parallel("pmap")
  state = par.put_state(_state(Tiny(bn=True, dropout=0.5), optax.sgd(0.1)))
  state, _ = par.compile_train(train_step)(state, par.put_batch(_batch(n=16)))
  stats = jax.device_get(state.batch_stats)
  # Replicas of the running statistics stay identical (pmean-ed every step: one all-reduce
  # result, delivered to every device).
  for leaf in jax.tree.leaves(stats):
    np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[:1], leaf.shape))


def test_pmap_devices_draw_different_dropout_masks():
  # Every device gets the same 2 examples. Were the masks the same on every device (no device
  # index in the key), the averaged gradient would be the one device's gradient, and the pmap
  # step would equal the single-device step on those 2 examples.
  model, tx = Tiny(dropout=0.5), optax.sgd(1.0)
  two = _batch(n=2)
  n = jax.local_device_count()
  tiled = {k: np.concatenate([v] * n) for k, v in two.items()}
  got, _, _ = _run1("pmap", model, tx, [tiled])
  ref, _, _ = _run1("none", model, tx, [two])
  assert _max_diff(ref.params, got.params) > 1e-3


def test_eval_step_masks_padding_and_counts_confusion():
  state = _state()
  batch = _batch(n=10)
  padded = {k: np.concatenate([v, np.zeros((6,) + v.shape[1:], v.dtype)])
            for k, v in batch.items()}
  padded["mask"] = np.concatenate([np.ones(10, np.float32), np.zeros(6, np.float32)])
  full = jax.device_get(jax.jit(eval_step)(state, batch))
  masked = jax.device_get(jax.jit(eval_step)(state, padded))
  for k in full:
    np.testing.assert_allclose(full[k], masked[k], rtol=1e-6)
  assert full["count"] == 10 and full["confusion"].sum() == 10
  logits = state.apply_fn({"params": state.params}, batch["image"])
  assert full["accuracy"] == np.sum(np.argmax(logits, -1) == batch["label"])
  np.testing.assert_array_equal(full["confusion"].sum(axis=1),
                                np.bincount(batch["label"], minlength=10))


def test_ema_params_track_params_and_are_used_for_eval():
  state = _state(ema=0.5)
  new, _ = jax.jit(train_step)(state, _batch())
  expected = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, state.params, new.params)
  assert _max_diff(new.ema_params, expected) < 1e-7
  assert new.eval_variables["params"] is new.ema_params


def test_non_finite_flag():
  batch = _batch()
  batch["image"][0, 0, 0, 0] = np.nan
  _, m = jax.jit(train_step)(_state(), batch)
  assert float(m["finite"]) == 0.0


@pytest.mark.parametrize("name,extra", [
    ("adam", {}), ("adamw", {"weight_decay": 1e-2}),
    ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "grad_clip_norm": 1.0}),
])
@pytest.mark.parametrize("schedule", train.optim.SCHEDULES)
def test_optimizers_and_schedules(name, extra, schedule):
  config = train.validate(dict(optimizer=name, learning_rate=0.1, schedule=schedule, **extra))
  sched = train.optim.make_schedule(config, total_steps=100, steps_per_epoch=10)
  lrs = [float(sched(s)) for s in (0, 50, 99)]
  assert all(0 <= lr <= 0.1 + 1e-6 for lr in lrs)
  if schedule == "constant":
    assert lrs == pytest.approx([0.1] * 3)
  tx = train.make_optimizer(config, total_steps=100, steps_per_epoch=10)
  params = {"w": jnp.ones((3, 2)), "b": jnp.ones((2,))}
  updates, _ = tx.update({"w": jnp.ones((3, 2)), "b": jnp.zeros((2,))}, tx.init(params), params)
  assert np.all(np.isfinite(np.asarray(updates["w"])))
  if extra.get("weight_decay"):
    # Weight decay touches kernels only: the zero bias gradient stays a zero update.
    np.testing.assert_array_equal(np.asarray(updates["b"]), 0.0)


@pytest.mark.parametrize("key,value,match", [
    ("optimizer", "rmsprop", "rmsprop"),
    ("learning_rate", -0.1, "-0.1"),
    ("schedule", "linear", "linear"),
    ("weight_decay", -1.0, "-1.0"),
])
def test_bad_optimizer_values(key, value, match):
  config = ml_collections.ConfigDict(dict(optimizer="adam", learning_rate=1e-3))
  config[key] = value
  with pytest.raises(ValueError, match=match):
    train.make_optimizer(train.validate(config))


def test_parallel_errors_name_the_values():
  with pytest.raises(ValueError, match="'dp'"):
    Parallel("dp")
  with pytest.raises(ValueError, match=r"\(=12\).*\(=8\)"):
    train.parallel.check_batch_size(12, "mesh")
  train.parallel.check_batch_size(12, "none")


_TWO_PROCESS_WORKER = '''
import sys
import jax
jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
pid, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)
import flax.linen as nn
import numpy as np
import optax
from jaxcnn.train import Parallel, create_train_state, eval_step, train_step

class Linear(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(10)(x)


model = Linear()
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 6)).astype(np.float32)
y = rng.integers(0, 10, 16).astype(np.int32)
own = {"image": x[8 * pid:8 * pid + 8], "label": y[8 * pid:8 * pid + 8]}
par = Parallel("pmap")
state = create_train_state(model, jax.random.PRNGKey(0), (1, 6), optax.sgd(1.0))
new = par.get_state(par.compile_train(train_step)(par.put_state(state), par.put_batch(own))[0])
sums = par.metrics_to_host(par.compile_eval(eval_step)(par.put_state(state), par.put_batch(own)))
# The reference: one device, the global batch (no collectives).
ref = jax.jit(train_step)(state, {"image": x, "label": y})[0]
diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
           for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(ref.params)))
np.savez(out, count=sums["count"], diff=diff)
'''


@pytest.mark.slow
def test_pmap_collectives_span_processes(tmp_path):
  # Two processes x 2 CPU devices. With `jax.pmap(devices=jax.local_devices())` the psum/pmean
  # would run per process: count 8 instead of 16, and each process would step with its own
  # half-batch gradient.
  import os
  import pathlib
  import socket
  import subprocess
  import sys

  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  script = tmp_path / "worker.py"
  script.write_text(_TWO_PROCESS_WORKER)
  root = pathlib.Path(__file__).resolve().parents[1]
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
  env.pop("XLA_FLAGS", None)
  procs = [subprocess.Popen([sys.executable, str(script), str(i), str(port),
                             str(tmp_path / f"out{i}.npz")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  try:
    logs = [p.communicate(timeout=240)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  for i, p in enumerate(procs):
    assert p.returncode == 0, logs[i][-3000:]
  for i in range(2):
    out = np.load(tmp_path / f"out{i}.npz")
    assert float(out["count"]) == 16.0
    assert float(out["diff"]) < 1e-5
