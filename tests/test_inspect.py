"""Tests for jaxcnn.inspect: feature maps against the layers applied by hand, the summary's new
home, and each attribution against a hand computation or its defining property."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import functional as F
from jaxcnn import inspect as I
from jaxcnn import layers as L
from jaxcnn import shapes
from jaxcnn.models import get_model

KEY = jax.random.key(0, impl="rbg")


def _rand(shape, seed=0, scale=1.0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
                     * scale)


@pytest.fixture(scope="module")
def cnn():
  model = get_model("tutorial_cnn")
  x = _rand((2, 32, 32, 3), seed=1)
  variables = model.init(KEY, x[:1])
  return model, variables, x


# ------------------------------------------------------------------------------ feature maps

def test_feature_maps_equal_the_layers_applied_by_hand(cnn):
  model, variables, x = cnn
  p = variables["params"]
  maps = I.feature_maps(model, variables, x)
  assert list(maps) == [
      "Conv_0/pre_activation", "Conv_0", "MaxPool_0", "Conv_1/pre_activation", "Conv_1",
      "MaxPool_1", "Conv_2/pre_activation", "Conv_2", "Flatten_0", "Dense_0/pre_activation",
      "Dense_0", "Dense_1"]
  conv = lambda name, h: F.conv(h, p[name]["kernel"], p[name]["bias"])
  dense = lambda name, h: F.dense(h, p[name]["kernel"], p[name]["bias"])
  h = x
  for i in range(3):
    pre = conv(f"Conv_{i}", h)
    np.testing.assert_allclose(maps[f"Conv_{i}/pre_activation"], pre, rtol=1e-5, atol=1e-5)
    h = jnp.maximum(pre, 0)
    np.testing.assert_allclose(maps[f"Conv_{i}"], h, rtol=1e-5, atol=1e-5)
    if i < 2:
      h = F.max_pool(h, 2)
      np.testing.assert_allclose(maps[f"MaxPool_{i}"], h, rtol=1e-5, atol=1e-5)
  h = h.reshape(2, -1)
  np.testing.assert_allclose(maps["Flatten_0"], h, rtol=1e-5, atol=1e-5)
  pre = dense("Dense_0", h)
  np.testing.assert_allclose(maps["Dense_0/pre_activation"], pre, rtol=1e-5, atol=1e-5)
  logits = dense("Dense_1", jnp.maximum(pre, 0))
  np.testing.assert_allclose(maps["Dense_1"], logits, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(model.apply(variables, x), logits, rtol=1e-4, atol=1e-4)
  assert I.layer_names(model, variables, x) == list(maps)


def test_feature_maps_sequential_names_shared_module_and_train_mode():
  net = L.Sequential([L.Dense(3, activation="tanh"), L.BatchNorm(), jax.nn.relu, L.Dropout(0.5),
                      L.Dense(3)])
  x = _rand((4, 3))
  v = net.init(KEY, x)
  maps = I.feature_maps(net, v, x)
  assert list(maps) == ["layers_0/pre_activation", "layers_0", "layers_1", "layers_3",
                        "layers_4"]
  np.testing.assert_allclose(maps["layers_0"], jnp.tanh(maps["layers_0/pre_activation"]),
                             rtol=1e-6)
  np.testing.assert_array_equal(maps["layers_3"], jnp.maximum(maps["layers_1"], 0))
  # train mode: batch moments and dropout, statistics left unchanged
  train_maps = I.feature_maps(net, v, x, train=True, rngs={"dropout": KEY})
  np.testing.assert_allclose(np.asarray(train_maps["layers_1"]).mean(0), 0.0, atol=1e-5)
  assert np.mean(np.asarray(train_maps["layers_3"]) == 0) > 0.3

  class Reuse(L.Layer):  # one module called twice: 'd', then 'd#1'
    def setup(self):
      self.d = L.Dense(2)

    def __call__(self, x, train=False):
      return self.d(self.d(x))

  r = Reuse()
  xr = _rand((1, 2))
  vr = r.init(KEY, xr)
  assert list(I.feature_maps(r, vr, xr)) == ["d", "d#1"]


def test_summary_moved_to_inspect_with_a_short_repr(cnn):
  model, _, _ = cnn
  assert not hasattr(shapes, "summary")  # below the layers in the import graph: no alias back up
  s = I.summary(model, (1, 32, 32, 3), print_fn=None)
  assert repr(s).count("\n") == 0 and len(repr(s)) < 120 and "122,570 params" in repr(s)
  assert s.rows[0].input_shape == (1, 32, 32, 3)
  assert s.rows[2].input_shape == (1, 15, 15, 32) and s.rows[2].output_shape == (1, 13, 13, 64)


def test_shapes_module_no_longer_imports_layers():
  import subprocess
  import sys
  code = ("import sys, jaxcnn.shapes; "
          "print('jaxcnn.layers' in sys.modules, 'flax' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------------------ attributions

def _linear():
  net = L.Sequential([L.Flatten(), L.Dense(5)])
  x = _rand((3, 4, 4, 2), seed=2)
  return net, net.init(KEY, x[:1]), x


def test_saliency_of_a_linear_model_is_its_weights():
  net, v, x = _linear()
  target = jnp.array([0, 3, 4])
  s = I.saliency(net, v, x, target)
  kernel = v["params"]["layers_1"]["kernel"]
  for b in range(3):
    np.testing.assert_allclose(s[b].reshape(-1), kernel[:, int(target[b])], rtol=1e-6)
  # SmoothGrad of a linear model is the same, whatever the noise
  sg = I.smoothgrad(net, v, x, target, key=KEY, num_samples=4, noise_level=0.5)
  np.testing.assert_allclose(sg, s, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match=r"`target` \(=\[7\]\) must be in \[0, 5\)"):
    I.saliency(net, v, x, jnp.array([7]))


def test_smoothgrad_averages_noisy_saliencies():
  model = L.Sequential([L.Conv(4, 3, activation="relu"), L.Flatten(), L.Dense(3)])
  x = _rand((2, 6, 6, 2), seed=8)
  v = model.init(KEY, x[:1])
  key = jax.random.key(3)
  sg = I.smoothgrad(model, v, x, 2, key=key, num_samples=3, noise_level=0.1, batch_size=2)
  axes = (1, 2, 3)
  sigma = 0.1 * (x.max(axis=axes, keepdims=True) - x.min(axis=axes, keepdims=True))
  by_hand = np.mean([I.saliency(model, v, x + sigma * jax.random.normal(k, x.shape), 2)
                     for k in jax.random.split(key, 3)], axis=0)
  np.testing.assert_allclose(sg, by_hand, rtol=1e-4, atol=1e-6)


def test_integrated_gradients_completeness():
  # smooth activations and average pooling: the trapezoid rule converges as 1 / steps^2
  net = L.Sequential([L.Conv(4, 3, activation="gelu"), L.AvgPool(2), L.Flatten(),
                      L.Dense(8, activation="tanh"), L.Dense(3)])
  x = _rand((2, 8, 8, 1), seed=4)
  v = net.init(KEY, x[:1])
  baseline = jnp.full_like(x, 0.1)
  attr = I.integrated_gradients(net, v, x, jnp.array([1, 2]), baseline=baseline, steps=128)
  logits, logits0 = net.apply(v, x), net.apply(v, baseline)
  for b, t in enumerate((1, 2)):
    gap = float(logits[b, t] - logits0[b, t])
    assert abs(gap) > 0.05
    assert abs(float(attr[b].sum()) - gap) < 1e-3 * max(1.0, abs(gap))


def test_guided_backprop_and_deconvnet_by_hand():
  net = L.Sequential([L.Dense(6, activation="relu"), L.Dense(4)])
  x = _rand((3, 5), seed=5)
  v = net.init(KEY, x)
  p = v["params"]
  w1, b1, w2 = p["layers_0"]["kernel"], p["layers_0"]["bias"], p["layers_1"]["kernel"]
  z = x @ w1 + b1[None]
  g_h = jnp.broadcast_to(w2[:, 1], z.shape)
  guided = jnp.where((z > 0) & (g_h > 0), g_h, 0.0) @ w1.T
  deconv = jnp.maximum(g_h, 0.0) @ w1.T
  plain = jnp.where(z > 0, g_h, 0.0) @ w1.T
  np.testing.assert_allclose(I.guided_backprop(net, v, x, 1), guided, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(I.guided_backprop(net, v, x, 1, mode="deconvnet"), deconv,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(I.saliency(net, v, x, 1), plain, rtol=1e-5, atol=1e-6)
  assert not np.allclose(guided, plain) and not np.allclose(deconv, plain)
  # the swapped ReLU changes gradients only: forward values are relu's
  np.testing.assert_array_equal(I.guided_relu(z), jax.nn.relu(z))
  np.testing.assert_array_equal(I.deconv_relu(z), jax.nn.relu(z))


def test_deconvnet_routes_each_pool_window_to_one_switch():
  # After a ReLU every all-negative window is a tie of zeros. The deconvnet sends each window's
  # signal to one cell (its switch: the first maximum in row-major order), never g/4 per cell.
  x = jnp.asarray(np.random.default_rng(9).integers(-2, 2, (2, 4, 2, 3)), jnp.float32)
  head = [L.Flatten(), L.Dense(5)]
  nets = {"non-overlapping path": L.Sequential([L.Activation("relu"), L.MaxPool(2), *head]),
          # the same windows (one column of outputs) through lax.reduce_window
          "window path": L.Sequential([L.Activation("relu"), L.MaxPool(2, stride=(2, 3)), *head])}
  v = nets["non-overlapping path"].init(KEY, x)
  maps = jax.jit(lambda x: {k: I.guided_backprop(net, v, x, 3, mode="deconvnet")
                            for k, net in nets.items()})(x)
  # by hand: the dense weights of logit 3 at the pool output, each put at its window's switch
  g = np.asarray(v["params"]["layers_3"]["kernel"][:, 3]).reshape(2, 3)  # [rows, C]
  r = np.maximum(np.asarray(x), 0).reshape(2, 2, 2, 2, 3).transpose(0, 1, 4, 2, 3)
  switch = np.argmax(r.reshape(2, 2, 3, 4), axis=-1)  # numpy's argmax: the first maximum
  onehot = np.eye(4)[switch] * g[None, :, :, None]  # [B, 2, C, 4]
  by_hand = np.maximum(onehot.reshape(2, 2, 3, 2, 2).transpose(0, 1, 3, 4, 2), 0)
  by_hand = by_hand.reshape(2, 4, 2, 3)
  assert (r.reshape(2, 2, 3, 4).max(-1) == 0).any()  # the batch has tied windows
  for name, m in maps.items():
    np.testing.assert_array_equal(m, by_hand.astype(np.float32), err_msg=name)


def test_grad_cam_equals_the_hand_computed_map(cnn):
  model, v, x = cnn
  p = v["params"]
  a = I.feature_maps(model, v, x)["Conv_2"]  # [2, 4, 4, 64]

  def head(a):  # the layers after Conv_2, applied by hand
    h = jnp.maximum(F.dense(a.reshape(2, -1), p["Dense_0"]["kernel"], p["Dense_0"]["bias"]), 0)
    return F.dense(h, p["Dense_1"]["kernel"], p["Dense_1"]["bias"])

  g = jax.grad(lambda a: head(a)[:, 7].sum())(a)
  by_hand = jnp.maximum(jnp.einsum("bhwc,bc->bhw", a, g.mean(axis=(1, 2))), 0)
  cam = I.grad_cam(model, v, x, "Conv_2", 7, resize=False)
  np.testing.assert_allclose(cam, by_hand, rtol=1e-4, atol=1e-6)
  assert I.grad_cam(model, v, x, "Conv_1", 7).shape == (2, 32, 32)
  with pytest.raises(ValueError, match="no layer named 'Conv_9'"):
    I.grad_cam(model, v, x, "Conv_9", 7)
  with pytest.raises(ValueError, match=r"\[B, h, w, C\] at 'Dense_0'"):
    I.grad_cam(model, v, x, "Dense_0", 7)


def test_occlusion_of_ignored_pixels_is_zero_and_matches_a_loop():
  # A linear model whose weights on the right half of the image are 0 ignores it.
  net = L.Sequential([L.Flatten(), L.Dense(3)])
  x = _rand((2, 8, 8, 1), seed=6)
  v = net.init(KEY, x[:1])
  kernel = v["params"]["layers_1"]["kernel"].reshape(8, 8, 1, 3).at[:, 4:].set(0.0)
  v = {"params": {"layers_1": {**v["params"]["layers_1"], "kernel": kernel.reshape(64, 3)}}}
  occ = I.occlusion(net, v, x, 2, patch=4, stride=2, value=0.5, batch_size=3)
  assert occ.shape == (2, 3, 3)
  # Exact: the unoccluded logit comes from the same chunked program as the occluded ones, and
  # the ignored pixels meet only exact-zero weights, so the two logits are the same float ops.
  np.testing.assert_array_equal(occ[:, :, 2], 0.0)  # patches in columns 4..7
  assert np.all(np.abs(np.asarray(occ[:, :, 0])) > 0)
  for b, i, j in ((0, 1, 0), (1, 2, 1)):
    occluded = x.at[b, 2 * i:2 * i + 4, 2 * j:2 * j + 4].set(0.5)
    drop = net.apply(v, x)[b, 2] - net.apply(v, occluded)[b, 2]
    np.testing.assert_allclose(occ[b, i, j], drop, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch_size", [None, 4])  # one at a time; 5 chunks of 4 (3 padding)
def test_occlusion_of_pixels_a_conv_net_ignores_is_exactly_zero(batch_size):
  # Conv 3x3 VALID on 8 columns: output columns 0..2 see input columns 0..4 only. With the
  # dense weights of output columns 3..5 zeroed, input columns 5..7 cannot reach the logit.
  net = L.Sequential([L.Conv(4, 3, activation="relu"), L.Flatten(), L.Dense(3)])
  x = _rand((2, 8, 8, 1), seed=8)
  v = net.init(KEY, x[:1])
  kernel = v["params"]["layers_2"]["kernel"].reshape(6, 6, 4, 3).at[:, 3:].set(0.0)
  v = {"params": {**v["params"], "layers_2": {**v["params"]["layers_2"],
                                               "kernel": kernel.reshape(-1, 3)}}}
  occ = I.occlusion(net, v, x, 1, patch=2, stride=2, value=3.0, batch_size=batch_size)
  assert occ.shape == (2, 4, 4)
  np.testing.assert_array_equal(occ[:, :, 3], 0.0)  # patches in columns 6..7
  assert np.all(np.abs(np.asarray(occ[:, :, 0])) > 0)


def test_occlusion_rejects_a_bad_batch_size():
  net = L.Sequential([L.Flatten(), L.Dense(3)])
  x = jnp.ones((1, 4, 4, 1))
  v = net.init(KEY, x)
  for bad in (0, 2.0, True):
    with pytest.raises(ValueError, match=r"`batch_size` \(=.*\) must be an int >= 1 or None"):
      I.occlusion(net, v, x, 0, patch=2, batch_size=bad)


# ------------------------------------------------------------------ activation maximisation

@pytest.mark.parametrize("parameterization", ["pixel", "fourier"])
def test_maximize_activation_increases_the_objective(parameterization):
  net = L.Sequential([L.Conv(4, 3, activation="relu"), L.MaxPool(2), L.Flatten(), L.Dense(3)])
  v = net.init(KEY, jnp.ones((1, 12, 12, 3)))
  vis = I.maximize_activation(net, v, (12, 12, 3), channel=1, key=jax.random.key(0), steps=20,
                              learning_rate=0.1, parameterization=parameterization)
  obj = np.asarray(vis.objective)
  assert obj.shape == (21,) and obj[-1] > obj[0] + 0.1, obj
  assert vis.image.shape == (12, 12, 3)
  assert 0.0 <= float(vis.image.min()) and float(vis.image.max()) <= 1.0
  # seeded: the same key gives the same image; a layer channel works too
  again = I.maximize_activation(net, v, (12, 12, 3), channel=1, key=jax.random.key(0),
                                steps=20, learning_rate=0.1, parameterization=parameterization)
  np.testing.assert_array_equal(again.image, vis.image)
  # a layer's channel; before its ReLU, so that a unit dead at the start still has a gradient
  by_layer = I.maximize_activation(net, v, (12, 12, 3), channel=2,
                                   layer="layers_0/pre_activation",
                                   key=jax.random.key(1), steps=20, learning_rate=0.1,
                                   parameterization=parameterization)
  assert by_layer.objective[-1] > by_layer.objective[0]


def test_dead_relu_fraction():
  net = L.Sequential([L.Dense(4, activation="relu"), L.Dense(2, activation="tanh")])
  x = _rand((16, 3), seed=7)
  v = net.init(KEY, x)
  bias = jnp.array([-100.0, -100.0, 0.0, 0.0])  # two units can never fire on this batch
  v = {"params": {**v["params"], "layers_0": {**v["params"]["layers_0"], "bias": bias}}}
  maps = I.feature_maps(net, v, x)
  assert I.dead_relu_fraction(maps) == {"layers_0": 0.5}  # the tanh layer is not counted
  assert I.dead_relu_fraction(maps, ["layers_0"]) == {"layers_0": 0.5}
