"""The oneDNN CPU extension (jaxcnn.cpu.onednn) against XLA's convolution.

Every comparison is against an independent reference built from ``lax.conv_general_dilated``
(values, and gradients through ``jax.vjp`` of that reference), and every test that means to
exercise the extension also checks, with the library's call counters, that it ran. Tests that
need the built extension skip with the reason :func:`onednn.available` gives where it cannot
be built (no oneDNN wheels, no compiler, not Linux x86-64).
"""

import contextlib
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import optax
import pytest
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcnn import functional as F
from jaxcnn import inspect as jinspect
from jaxcnn import layers as L
from jaxcnn import models, shapes
from jaxcnn.cpu import onednn
from jaxcnn.cpu.onednn import _build

OK, WHY = onednn.available()
needs_onednn = pytest.mark.skipif(not OK, reason=f"oneDNN extension unavailable: {WHY}")


@contextlib.contextmanager
def extension(on: bool):
  """The extension on (or off) inside the block; the state before it is restored after."""
  was = onednn.is_active()
  if on:
    onednn.activate()
  else:
    onednn.deactivate()
  try:
    yield
  finally:
    if was:
      onednn.activate()
    else:
      onednn.deactivate()


def calls() -> int:
  return onednn.stats().get("calls", 0)


def rand(shape, seed, dtype=jnp.float32, scale=1.0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype)


def reference(x, w, b, *, stride, padding, dilation, groups, activation):
  """act(conv(x, w) + b) with lax only (padding as lax takes it)."""
  y = lax.conv_general_dilated(x, w, stride, padding, rhs_dilation=dilation,
                               dimension_numbers=("NHWC", "HWIO", "NHWC"),
                               feature_group_count=groups)
  if b is not None:
    y = y + b.reshape(1, 1, 1, -1)
  return F.get_activation(activation)(y)


def assert_close(got, want, rtol=1e-5):
  """Relative to the largest magnitude of ``want`` (float32 summation-order differences)."""
  got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
  assert got.shape == want.shape and got.dtype == want.dtype
  scale = max(float(np.max(np.abs(want))), 1e-30)
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def value_and_grads(fn, x, w, b, seed=7):
  """``fn(x, w, b)`` and its VJP with a random cotangent, jitted."""
  def run(x, w, b):
    y, vjp = jax.vjp(fn, x, w, b)
    return y, vjp(rand(y.shape, seed, y.dtype))
  return jax.jit(run)(x, w, b)


# (x shape, kernel [KH, KW], C_out, stride, padding, dilation, groups)
SWEEP = [
    ((2, 9, 9, 4), (3, 3), 6, (1, 1), "VALID", (1, 1), 1),
    ((3, 10, 10, 5), (3, 3), 8, (2, 2), "SAME", (1, 1), 1),
    ((2, 13, 11, 6), (3, 3), 8, (2, 1), ((1, 2), (0, 3)), (1, 2), 2),
    ((1, 7, 9, 3), (3, 3), 4, (1, 1), "FULL", (2, 2), 1),
    ((2, 8, 8, 8), (3, 3), 8, (1, 1), 1, (1, 1), 8),          # depthwise
    ((2, 8, 8, 8), (3, 3), 16, (2, 2), ((0, 1), (0, 1)), (1, 1), 8),  # depthwise x2
    ((1, 6, 6, 16), (1, 1), 32, (1, 1), "VALID", (1, 1), 1),   # batch 1, 1x1
    ((4, 10, 10, 16), (1, 1), 8, (2, 2), "VALID", (1, 1), 4),
    ((2, 12, 12, 3), (7, 7), 5, (2, 2), 3, (1, 1), 1),         # 7x7 stem
    ((3, 5, 7, 2), (2, 3), 3, (3, 2), ((2, 0), (1, 1)), (1, 1), 1),  # odd everything
]


@needs_onednn
@pytest.mark.parametrize("case", SWEEP, ids=[f"case{i}" for i in range(len(SWEEP))])
@pytest.mark.parametrize("bias,activation", [(True, "relu"), (False, None)])
def test_values_and_gradients_equal_xla(case, bias, activation):
  shape, k, c_out, stride, padding, dilation, groups = case
  x = rand(shape, 0)
  w = rand((*k, shape[-1] // groups, c_out), 1, scale=0.3)
  b = rand((c_out,), 2)
  kw = dict(stride=stride, dilation=dilation, groups=groups)
  _, pads = shapes.spatial_output_size(shape[1:-1], k, stride, padding, dilation, what="kernel")
  ref = lambda x, w, b: reference(x, w, b if bias else None, padding=pads,  # noqa: E731
                                  activation=activation, **kw)
  fn = lambda x, w, b: F.conv(x, w, b if bias else None, padding=padding,  # noqa: E731
                              activation=activation, **kw)
  want = value_and_grads(ref, x, w, b)
  with extension(True):
    n0 = calls()
    got = jax.block_until_ready(value_and_grads(fn, x, w, b))
    assert calls() - n0 == 3, "forward, input gradient and kernel gradient on oneDNN"
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert_close(g, r)


@needs_onednn
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu",
                                        "linear", "softmax", F.relu, lambda y: y * y])
def test_every_activation_fused_or_applied_after(activation):
  x, w, b = rand((2, 7, 7, 4), 0), rand((3, 3, 4, 5), 1, scale=0.3), rand((5,), 2)
  ref = lambda x, w, b: reference(x, w, b, stride=(1, 1), padding=((1, 1), (1, 1)),  # noqa
                                  dilation=(1, 1), groups=1, activation=activation)
  fn = lambda x, w, b: F.conv(x, w, b, padding=1, activation=activation)  # noqa: E731
  want = value_and_grads(ref, x, w, b)
  with extension(True):
    n0 = calls()
    got = jax.block_until_ready(value_and_grads(fn, x, w, b))
    assert calls() > n0
    # Inference (no VJP): the fused forward alone.
    assert_close(jax.jit(fn)(x, w, b), want[0])
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert_close(g, r)


@needs_onednn
def test_check_grads_numerically():
  x, w, b = rand((2, 5, 5, 3), 0), rand((3, 3, 3, 4), 1, scale=0.5), rand((4,), 2)
  with extension(True):
    for act in ("tanh", "sigmoid", None):
      f = lambda x, w, b, act=act: F.conv(x, w, b, padding="SAME", activation=act)  # noqa
      jax.test_util.check_grads(f, (x, w, b), order=1, modes=["rev"], eps=1e-2, atol=2e-2,
                                rtol=2e-2)


def test_conv_activation_keyword_is_the_composition_bit_for_bit():
  # The XLA path (extension off): activation(conv(x, w, b)), exactly.
  x, w, b = rand((2, 8, 8, 3), 0), rand((3, 3, 3, 4), 1), rand((4,), 2)
  with extension(False) if OK else contextlib.nullcontext():
    for act in ("relu", "gelu", F.tanh, None):
      got = jax.jit(lambda x, w, b, act=act: F.conv(x, w, b, activation=act))(x, w, b)
      want = jax.jit(lambda x, w, b, act=act: F.get_activation(act)(F.conv(x, w, b)))(x, w, b)
      np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(F.conv2d(x, w, b, activation="relu"),
                                  F.relu(F.conv2d(x, w, b)))
  with pytest.raises(ValueError, match="unknown activation 'nope'"):
    F.conv(x, w, b, activation="nope")


@needs_onednn
def test_other_ranks_and_dtypes_take_the_xla_path():
  with extension(True):
    n0 = calls()
    x1, w1 = rand((2, 9, 3), 0), rand((3, 3, 4), 1)
    np.testing.assert_array_equal(jax.jit(F.conv)(x1, w1), F.conv(x1, w1))
    x3, w3 = rand((1, 4, 5, 5, 2), 0), rand((2, 2, 2, 2, 3), 1)
    jax.block_until_ready(jax.jit(F.conv)(x3, w3))
    x, w = rand((2, 6, 6, 3), 0, jnp.float16), rand((3, 3, 3, 4), 1, jnp.float16)
    jax.block_until_ready(jax.jit(F.conv)(x, w))
    x, w = rand((2, 6, 6, 3), 0), rand((3, 3, 3, 4), 1)
    jax.block_until_ready(F.conv(x[:0], w))  # an empty batch
    assert calls() == n0


@needs_onednn
def test_bfloat16_where_native_else_xla():
  x, w = rand((4, 8, 8, 16), 0, jnp.bfloat16), rand((3, 3, 16, 8), 1, jnp.bfloat16, 0.2)
  b = rand((8,), 2, jnp.bfloat16)
  kw = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
  # Gradients without an activation: bfloat16 rounding flips a few relu masks near zero.
  want = value_and_grads(lambda x, w, b: reference(x, w, b, activation=None, **kw), x, w, b)
  want_relu = reference(x, w, b, activation="relu", **kw)
  with extension(True):
    n0 = calls()
    got = jax.block_until_ready(value_and_grads(lambda x, w, b: F.conv(x, w, b, padding=1),
                                                x, w, b))
    got_relu = jax.jit(lambda x, w, b: F.conv(x, w, b, padding=1, activation="relu"))(x, w, b)
    assert calls() - n0 == (4 if onednn.info()["bfloat16"] else 0)
  for g, r in zip(jax.tree.leaves((got, got_relu)), jax.tree.leaves((want, want_relu))):
    assert g.dtype == jnp.bfloat16
    assert_close(g, r, rtol=2e-2)


@needs_onednn
def test_vmap_folds_examples_and_per_example_weights_use_xla():
  x, w, b = rand((3, 2, 7, 7, 4), 0), rand((3, 3, 4, 5), 1, scale=0.3), rand((5,), 2)
  ws = rand((3, 3, 3, 4, 5), 3, scale=0.3)
  f = lambda x, w, b: F.conv(x, w, b, padding=1, activation="relu")  # noqa: E731
  loss = lambda w, b, x: jnp.sum(jnp.sin(f(x, w, b)))  # noqa: E731
  with extension(False):
    want = (jax.vmap(f, (0, None, None))(x, w, b), jax.vmap(f, (0, 0, None))(x, ws, b),
            jax.vmap(jax.grad(loss, (0, 1, 2)), (None, None, 0))(w, b, x))
  with extension(True):
    n0 = calls()
    got = jax.block_until_ready((
        jax.jit(jax.vmap(f, (0, None, None)))(x, w, b),
        jax.jit(jax.vmap(f, (0, 0, None)))(x, ws, b),
        jax.jit(jax.vmap(jax.grad(loss, (0, 1, 2)), (None, None, 0)))(w, b, x)))
    # one folded forward; per-example grads: folded forward + input gradient, XLA kernel grads
    assert calls() - n0 == 3
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert_close(g, r)


def _loss(w, b, x):
  y = F.conv(x, w, b, padding=1, activation="relu")
  return jnp.sum(y * jnp.cos(y))


@needs_onednn
def test_mesh_partitions_the_batch():
  assert jax.device_count() == 8
  mesh = Mesh(np.array(jax.devices()), ("data",))
  x, w, b = rand((16, 8, 8, 4), 0), rand((3, 3, 4, 6), 1, scale=0.3), rand((6,), 2)
  shard = (NamedSharding(mesh, P()), NamedSharding(mesh, P()), NamedSharding(mesh, P("data")))
  step = lambda: jax.jit(jax.value_and_grad(_loss, (0, 1, 2)), in_shardings=shard)  # noqa
  with extension(False):
    want = step()(w, b, x)
  with extension(True):
    f = step()
    n0 = calls()
    got = jax.block_until_ready(f(w, b, x))
    assert calls() - n0 == 3 * 8  # every device runs its own 2 examples
    hlo = f.lower(w, b, x).compile().as_text()
  assert "f32[2,8,8,4]" in hlo and "all-gather" not in hlo
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert_close(g, r)


@needs_onednn
def test_pmap_runs_per_device():
  x, w, b = rand((8, 2, 8, 8, 4), 0), rand((3, 3, 4, 6), 1, scale=0.3), rand((6,), 2)
  step = lambda: jax.pmap(jax.value_and_grad(_loss, (0, 1, 2)), in_axes=(None, None, 0))  # noqa
  with extension(False):
    want = step()(w, b, x)
  with extension(True):
    n0 = calls()
    got = jax.block_until_ready(step()(w, b, x))
    assert calls() - n0 == 3 * 8
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert_close(g, r)


@needs_onednn
def test_shard_map_with_varying_operands_keeps_the_xla_path():
  try:
    from jax import shard_map
  except ImportError:  # jax < 0.8
    from jax.experimental.shard_map import shard_map
  mesh = Mesh(np.array(jax.devices()), ("data",))
  x, w, b = rand((16, 8, 8, 4), 0), rand((3, 3, 4, 6), 1, scale=0.3), rand((6,), 2)
  loss = lambda w, b, x: lax.psum(_loss(w, b, x), "data")  # noqa: E731
  step = lambda: jax.jit(shard_map(jax.grad(loss, (0, 1)), mesh=mesh,  # noqa: E731
                                   in_specs=(P(), P(), P("data")), out_specs=P()))
  with extension(False):
    want = step()(w, b, x)
  with extension(True):
    n0 = calls()
    got = jax.block_until_ready(step()(w, b, x))
    assert calls() == n0
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert_close(g, r)


@needs_onednn
def test_unused_input_gradient_is_not_computed_and_primitives_are_cached():
  x, w, b = rand((4, 9, 9, 3), 0), rand((3, 3, 3, 8), 1), rand((8,), 2)
  g = jax.jit(jax.grad(_loss, (0, 1)))  # the first layer: no input gradient
  with extension(True):
    jax.block_until_ready(g(w, b, x))
    before = onednn.stats()
    jax.block_until_ready(g(w, b, x))
    after = onednn.stats()
  assert after["calls"] - before["calls"] == 2  # forward and kernel gradient only
  assert after["primitives_created"] == before["primitives_created"]


@needs_onednn
def test_forward_mode_is_refused_while_active():
  x, w = rand((1, 5, 5, 2), 0), rand((3, 3, 2, 2), 1)
  with extension(True):
    with pytest.raises(TypeError, match="custom_vjp"):
      jax.jvp(lambda x: F.conv(x, w), (x,), (x,))


@needs_onednn
def test_layer_fuses_its_activation_and_inspection_still_sees_the_pre_activation():
  model = models.get_model("tutorial_cnn")
  x = rand((2, 32, 32, 3), 0)
  variables = model.init(jax.random.key(0), x)
  with extension(False):
    want = model.apply(variables, x)
    maps_off = jinspect.feature_maps(model, variables, x)
  with extension(True):
    n0 = calls()
    got = jax.block_until_ready(jax.jit(model.apply)(variables, x))
    assert calls() - n0 == 3
    maps_on = jinspect.feature_maps(model, variables, x)
  assert_close(got, want)
  assert "Conv_0/pre_activation" in maps_on
  assert set(maps_on) == set(maps_off)
  for name in maps_off:
    assert_close(maps_on[name], maps_off[name])


@needs_onednn
def test_tutorial_cnn_train_step_matches_the_xla_path():
  from jaxcnn.train import create_train_state, train_step
  rng = np.random.default_rng(0)
  batch = {"image": rng.standard_normal((16, 32, 32, 3)).astype(np.float32),
           "label": rng.integers(0, 10, 16).astype(np.int32)}

  def run():
    state = create_train_state(models.get_model("tutorial_cnn"), jax.random.PRNGKey(0),
                               (1, 32, 32, 3), optax.sgd(0.05, momentum=0.9))
    step = jax.jit(train_step)
    losses = []
    for _ in range(3):
      state, m = step(state, batch)
      losses.append(float(m["loss"]))
    return state.params, losses

  with extension(False):
    want_params, want_losses = run()
  with extension(True):
    n0 = calls()
    got_params, got_losses = run()
    assert calls() - n0 == 3 * 8  # per step: 3 forwards, 2 input and 3 kernel gradients
  np.testing.assert_allclose(got_losses, want_losses, rtol=1e-5)
  for g, r in zip(jax.tree.leaves(got_params), jax.tree.leaves(want_params)):
    assert_close(g, r, rtol=1e-4)


@needs_onednn
def test_activate_is_idempotent_and_says_what_it_did():
  with extension(True):
    line = onednn.activate()
    assert line == onednn.activate()
    assert line.startswith("jaxcnn.cpu: 2-D convolutions") and "oneDNN" in line
    assert "\n" not in line
    assert onednn.is_active() and onednn.info()["active"]
  with extension(False):
    assert not onednn.is_active()


def test_unavailable_reasons_are_one_line(monkeypatch):
  monkeypatch.setattr(_build.platform, "system", lambda: "Darwin")
  ok, why = onednn.available()
  assert not ok and why.startswith("the oneDNN extension needs Linux on x86-64 (this is Darwin")
  monkeypatch.undo()
  monkeypatch.setattr(_build, "WHEEL", "no-such-onednn-wheel")
  ok, why = onednn.available()
  assert not ok and "no-such-onednn-wheel" in why and "missing" in why and "jaxcnn[onednn]" in why
  monkeypatch.undo()
  if OK:
    monkeypatch.setattr(_build, "cache_root", lambda: _build.pathlib.Path("/nonexistent"))
    monkeypatch.setattr(_build.shutil, "which", lambda name: None)
    ok, why = onednn.available()
    assert not ok and why.startswith("no C++ compiler (g++) on PATH")


def test_import_builds_and_loads_nothing():
  code = ("import sys, jaxcnn.cpu.onednn as m; "
          "maps = open('/proc/self/maps').read() if sys.platform == 'linux' else ''; "
          "print('libdnnl' in maps, 'jaxcnn_onednn' in maps, 'jaxcnn.cpu.onednn._ops' in "
          "sys.modules, m.is_active(), m.info())")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=pathlib.Path(__file__).resolve().parents[1], timeout=300)
  assert out.returncode == 0, out.stderr
  assert out.stdout.split("\n")[-2] == "False False False False {}"
