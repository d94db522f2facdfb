"""Tests of the airbench94 speed recipe (jaxcnn.speedrun, experiments/configs/speedrun.py).

Layers: the whitening layer against a numpy eigendecomposition of loop-built patches; the TTA
against a hand-built weighted average of the 6 views; airbench's Muon and PyTorch's coupled
Nesterov SGD against numpy transcriptions of their PyTorch code; the parameter groups; and one
tiny speedrun (random data, width 1/16, 2 steps) end to end: deterministic for a seed, the
whitening kernel unchanged by training, no compilation inside the timed region.
"""

import math
import pathlib
import runpy
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import speedrun as speedrun_config
from jaxcnn import data as data_lib
from jaxcnn import speedrun
from jaxcnn.data import augment as augment_lib
from jaxcnn.models import SpeedNet, whitening_kernel


def _patches_np(images: np.ndarray, k: int) -> np.ndarray:
  """Every k x k window as a row, flattened (kh, kw, c): a plain loop, independent of the
  library's vectorised version."""
  n, h, w, c = images.shape
  rows = []
  for b in range(n):
    for i in range(h - k + 1):
      for j in range(w - k + 1):
        rows.append(images[b, i:i + k, j:j + k, :].reshape(-1))
  return np.asarray(rows, np.float64)


def _correlated_images(seed: int = 0, n: int = 24, size: int = 8) -> np.ndarray:
  """Images with strongly correlated neighbouring pixels and channels (as natural images)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, size + 1, size + 1, 3))
  x = x[:, 1:, 1:] + 0.8 * x[:, :-1, 1:] + 0.6 * x[:, 1:, :-1]  # spatial correlation
  mix = np.array([[1.0, 0.7, 0.5], [0.0, 1.0, 0.6], [0.0, 0.0, 1.0]])
  return (x @ mix + 0.3).astype(np.float32)  # channel correlation and a non-zero mean


# -- whitening ---------------------------------------------------------------------------------


def test_whitening_kernel_whitens_patch_second_moments():
  images = _correlated_images()
  p = _patches_np(images, 2)
  eps = 5e-4
  kernel = np.asarray(whitening_kernel(jnp.asarray(images), eps=eps), np.float64)
  assert kernel.shape == (2, 2, 3, 24)
  half = kernel.reshape(12, 24)[:, :12]
  np.testing.assert_allclose(kernel.reshape(12, 24)[:, 12:], -half, atol=0)  # then the negation
  responses = p @ half
  second = responses.T @ responses / len(p)
  lam = np.linalg.eigvalsh(p.T @ p / len(p))  # ascending, as the kernel's filters
  # Exactly diag(lam / (lam + eps)) ...
  np.testing.assert_allclose(second, np.diag(lam / (lam + eps)), atol=2e-4)
  # ... which is the identity within eps / lam_min (the patch covariance is whitened).
  assert lam.min() > 100 * eps
  np.testing.assert_allclose(second, np.eye(12), atol=1.5 * eps / lam.min())


def test_whitening_kernel_with_vanishing_eps_is_exactly_whitening():
  images = _correlated_images(seed=1)
  p = _patches_np(images, 2)
  half = np.asarray(whitening_kernel(jnp.asarray(images), eps=0.0), np.float64).reshape(12, 24)
  r = p @ half[:, :12]
  np.testing.assert_allclose(r.T @ r / len(p), np.eye(12), atol=2e-3)


# -- test-time augmentation --------------------------------------------------------------------


def test_tta_is_the_weighted_mean_of_airbench_six_views():
  rng = np.random.default_rng(0)
  images = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
  w = rng.normal(size=(6 * 6 * 2, 4)).astype(np.float32)
  f_np = lambda x: np.tanh(x.reshape(len(x), -1) @ w)  # position-dependent, non-linear
  apply = lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ jnp.asarray(w))
  flip = lambda x: x[:, :, ::-1, :]
  padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  t1, t2 = padded[:, 0:6, 0:6, :], padded[:, 2:8, 2:8, :]  # airbench's two translations
  level1 = lambda x: 0.5 * f_np(x) + 0.5 * f_np(flip(x))
  expected = 0.5 * level1(images) + 0.5 * (0.5 * level1(t1) + 0.5 * level1(t2))
  got = speedrun.tta_logits(apply, jnp.asarray(images), level=2)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(speedrun.tta_logits(apply, jnp.asarray(images), 1)),
                             level1(images), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(speedrun.tta_logits(apply, jnp.asarray(images), 0)),
                             f_np(images), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match=r"`tta_level` \(=3\) must be 0, 1 or 2"):
    speedrun.tta_logits(apply, jnp.asarray(images), 3)


# -- augmentation ------------------------------------------------------------------------------


def test_augmentation_is_the_engines_alternating_flip_then_reflect_translate():
  cfg = speedrun_config.get_config()
  spec = speedrun.augment_spec(cfg.data)
  assert spec == (("alternating_flip", {}), ("crop", {"padding": 2, "mode": "reflect"}))
  # Without the translation: every image is mirrored in exactly one of two consecutive epochs.
  aug = augment_lib.make_augment(speedrun.augment_spec({"flip": True, "translate": 0}), seed=3)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 4, 4, 1)), jnp.float32)
  idx = jnp.arange(64)
  mirrored = lambda e: np.asarray(jnp.all(aug(jax.random.key(0), x, idx, e) != x, axis=(1, 2, 3)))
  m0, m1, m2 = mirrored(0), mirrored(1), mirrored(2)
  assert np.all(m0 != m1) and np.all(m0 == m2)
  assert 16 < m0.sum() < 48  # a random half in epoch 0


# -- optimisers against transcriptions of airbench's PyTorch code --------------------------


def _ns_torch_layout(g_oihw: np.ndarray, steps: int) -> np.ndarray:
  """airbench's zeropower_via_newtonschulz5 on g.reshape(len(g), -1), in float64."""
  a, b, c = 3.4445, -4.7750, 2.0315
  x = g_oihw.reshape(len(g_oihw), -1).astype(np.float64)
  x = x / (np.linalg.norm(x) + 1e-7)
  transposed = x.shape[0] > x.shape[1]
  if transposed:
    x = x.T
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  return (x.T if transposed else x).reshape(g_oihw.shape)


@pytest.mark.parametrize("shape", [(3, 3, 4, 6), (3, 3, 8, 2)])  # wide and tall matrices
def test_airbench_muon_two_steps_match_a_transcription(shape):
  rng = np.random.default_rng(1)
  p0 = rng.normal(size=shape).astype(np.float32)
  grads = [rng.normal(size=shape).astype(np.float32) for _ in range(2)]
  lr, m = 0.24, 0.6
  tx = speedrun.airbench_muon(lr, momentum=m, ns_steps=3, ns_dtype=jnp.float32)
  params = {"k": jnp.asarray(p0)}
  state = tx.init(params)
  to_oihw = lambda k: np.transpose(k, (3, 2, 0, 1))
  p_ref, buf = to_oihw(p0).astype(np.float64), np.zeros_like(to_oihw(p0), np.float64)
  for g in grads:
    upd, state = tx.update({"k": jnp.asarray(g)}, state, params)
    params = optax.apply_updates(params, upd)
    buf = m * buf + to_oihw(g)
    eff = to_oihw(g) + m * buf
    p_ref = p_ref * (len(p_ref) ** 0.5 / np.linalg.norm(p_ref))
    p_ref = p_ref - lr * _ns_torch_layout(eff, 3)
  np.testing.assert_allclose(to_oihw(np.asarray(params["k"])), p_ref, rtol=2e-4, atol=2e-5)


def test_airbench_muon_needs_params():
  tx = speedrun.airbench_muon(0.1)
  p = {"k": jnp.ones((3, 3, 2, 2))}
  with pytest.raises(ValueError, match="call tx.update"):
    tx.update(p, tx.init(p))


def test_sgd_coupled_matches_pytorch_sgd_nesterov():
  lr, m, wd = 0.1, 0.85, 0.05
  tx = speedrun.sgd_coupled(lr, m, wd)
  p = np.array([1.0, -2.0, 0.5])
  params = jnp.asarray(p, jnp.float32)
  state = tx.init(params)
  buf = np.zeros(3)
  for g in (np.array([0.3, 0.1, -0.2]), np.array([-0.1, 0.4, 0.2])):
    upd, state = tx.update(jnp.asarray(g, jnp.float32), state, params)
    params = optax.apply_updates(params, upd)
    d = g + wd * p  # torch.optim.SGD: d_p = grad + weight_decay * p
    buf = m * buf + d
    p = p - lr * (d + m * buf)
  np.testing.assert_allclose(np.asarray(params), p, rtol=1e-6)


def test_summed_cross_entropy_is_the_batch_sum():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(5, 10)), jnp.float32)
  labels = jnp.arange(5)
  losses = speedrun.summed_cross_entropy(0.2)(logits, {"label": labels})
  smoothed = optax.softmax_cross_entropy(logits, optax.smooth_labels(jax.nn.one_hot(labels, 10),
                                                                     0.2))
  np.testing.assert_allclose(float(losses.mean()), float(smoothed.sum()), rtol=1e-5)


def test_recipe_groups_and_whiten_bias_schedule():
  model = SpeedNet(width_mult=1 / 16)
  variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), train=False))(
      jax.random.key(0))
  labels = speedrun.recipe_labels(variables["params"])
  assert labels["whiten"] == {"kernel": "frozen", "bias": "bias"}
  assert labels["head"] == {"kernel": "head"}
  flat = {"/".join(str(k.key) for k in path): v
          for path, v in jax.tree_util.tree_leaves_with_path(labels)}
  assert sorted(set(flat.values())) == ["batchnorm", "bias", "frozen", "head", "kernel"]
  assert all(v == "kernel" for k, v in flat.items() if k.endswith("Conv_0/kernel"))
  assert all(v == "batchnorm" for k, v in flat.items() if "BatchNorm" in k)
  cfg = speedrun_config.get_config()
  steps_per_epoch = 2
  tx = speedrun.make_tx(cfg.recipe, 100, 10, steps_per_epoch)
  params = variables["params"]
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  whiten_steps = math.ceil(cfg.recipe.whiten_bias_epochs * steps_per_epoch)  # 6
  moved = []
  update = jax.jit(tx.update)
  for _ in range(8):
    upd, state = update(grads, state, params)
    assert float(jnp.abs(upd["whiten"]["kernel"]).max()) == 0.0  # frozen
    moved.append(float(jnp.abs(upd["whiten"]["bias"]).max()))
    params = optax.apply_updates(params, upd)
  assert all(v > 0 for v in moved[:whiten_steps]) and moved[whiten_steps:] == [0.0, 0.0]


# -- a tiny speedrun end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_runs():
  cfg = speedrun_config.get_config("tiny")
  rng = np.random.default_rng(0)
  train = {"image": rng.integers(0, 256, (128, 32, 32, 3), dtype=np.uint8),
           "label": rng.integers(0, 10, 128).astype(np.int32)}
  evaluation = {"image": rng.integers(0, 256, (70, 32, 32, 3), dtype=np.uint8),
                "label": rng.integers(0, 10, 70).astype(np.int32)}
  runner = speedrun.Speedrun(cfg, train, evaluation)
  first = runner.run(0)
  again = runner.run(0)
  other = runner.run(1)
  return cfg, train, runner, first, again, other


def test_tiny_speedrun_runs_end_to_end_and_is_deterministic(tiny_runs):
  cfg, _, runner, first, again, other = tiny_runs
  assert first.steps == again.steps == cfg.num_train_steps == 2
  assert 0.0 <= first.accuracy <= 1.0 and first.seconds > 0
  assert first.seconds == pytest.approx(first.whiten_seconds + first.train_seconds
                                        + first.eval_seconds, rel=1e-6)
  assert first.accuracy == again.accuracy and first.train_loss == again.train_loss
  for a, b in zip(jax.tree.leaves(first.state.params), jax.tree.leaves(again.state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  differs = [not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
             zip(jax.tree.leaves(first.state.params), jax.tree.leaves(other.state.params))]
  assert any(differs)  # another seed: another init and data order
  s = speedrun.summarize([first, again, other], 0.5)
  assert s["runs"] == 3 and 0.0 <= s["fraction_at_target"] <= 1.0
  assert s["accuracy_mean"] == pytest.approx(np.mean([first.accuracy, again.accuracy,
                                                      other.accuracy]))


def test_tiny_speedrun_whitening_from_data_and_frozen_through_training(tiny_runs):
  cfg, train, runner, first, _, _ = tiny_runs
  n = cfg.recipe.whiten_images
  images = data_lib.normalize(jnp.asarray(train["image"][:n]), runner.mean, runner.std)
  expected = whitening_kernel(images, eps=cfg.recipe.whiten_eps)
  trained = first.state.params["whiten"]
  # From the data (the jitted init and this eager call differ in float rounding only) ... The
  # filters are eigenvectors of the patch covariance S, which for random images is close to
  # the identity: rounding rotates them inside near-degenerate eigenspaces (by ~1e-4 here), so
  # compare the basis-free K K^T = 2 (S + eps)^-1 instead of the filters one by one.
  def gram(kernel):
    k = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
    return k @ k.T

  np.testing.assert_allclose(gram(trained["kernel"]), gram(expected), rtol=2e-5, atol=2e-5)
  # ... and bit for bit the kernel the run's whitening init set: training left it alone.
  start = runner.init_state(0)
  whitened = runner._whiten({"params": start.params, **start.collections},
                            runner._whiten_images)
  np.testing.assert_array_equal(np.asarray(trained["kernel"]),
                                np.asarray(whitened["params"]["whiten"]["kernel"]))
  init = runner.init_state(0).params["whiten"]
  assert not np.allclose(np.asarray(init["kernel"]), np.asarray(expected))  # set by the run
  assert not np.array_equal(np.asarray(init["bias"]), np.asarray(trained["bias"]))  # trained


def test_tiny_speedrun_compiles_nothing_in_the_timed_region(tiny_runs):
  _, _, runner, _, _, _ = tiny_runs
  engine = runner._engine
  before = (engine.p_train._cache_size(), engine.p_eval._cache_size())
  runner.run(2)
  assert (engine.p_train._cache_size(), engine.p_eval._cache_size()) == before == (1, 1)


# -- the GPU comparison's airbench data patch (torch CPU, a handful of images) ----------------

AIRBENCH = (pathlib.Path(__file__).resolve().parents[1] / ".peers" / "airbench"
            / "airbench94_muon.py")


@pytest.mark.slow  # importing torch and airbench (torch.compile) takes ~10-50 s here
def test_airbench_patch_reads_the_npz(tmp_path, monkeypatch):
  if not AIRBENCH.is_file():
    pytest.skip(f"{AIRBENCH} is absent (fetched only for the GPU comparison; see "
                "experiments/gpu_speedrun_vs_airbench.sh)")
  torch = pytest.importorskip("torch")
  from experiments import gpu_airbench_npz
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
  y = rng.integers(0, 10, 30)
  npz = tmp_path / "mini.npz"
  np.savez(npz, x_train=x[:20], y_train=y[:20], x_eval=x[20:], y_eval=y[20:])
  patched = tmp_path / "airbench94_muon_npz.py"
  patched.write_text(gpu_airbench_npz.patch(AIRBENCH.read_text()))
  monkeypatch.setenv("AIRBENCH_NPZ", str(npz))
  monkeypatch.setattr(sys, "argv", [str(patched)])
  module = runpy.run_path(str(patched), run_name="airbench_under_test")
  train = module["CifarLoader"]("unused", train=True, batch_size=10, aug=dict(flip=True,
                                                                              translate=2))
  test = module["CifarLoader"]("unused", train=False, batch_size=10)
  assert test.labels.tolist() == y[20:].tolist() and train.labels.tolist() == y[:20].tolist()
  want = (np.transpose(x[20:], (0, 3, 1, 2)) / 255.0
          - np.array([0.4914, 0.4822, 0.4465]).reshape(1, 3, 1, 1)) / np.array(
              [0.2470, 0.2435, 0.2616]).reshape(1, 3, 1, 1)
  got = test.normalize(test.images).float().numpy()
  np.testing.assert_allclose(got, want, atol=5e-3)  # airbench holds the images in float16
  batches = [b for b, _ in train]
  assert len(batches) == 2 and tuple(batches[0].shape) == (10, 3, 32, 32)
  assert batches[0].dtype == torch.float16
  with pytest.raises(ValueError, match="differs from commit 096d14d"):
    gpu_airbench_npz.patch(AIRBENCH.read_text().replace("reduction=\"sum\"", "x")
                           .replace("torch.load(data_path", "load(data_path"))
