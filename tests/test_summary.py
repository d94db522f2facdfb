"""Tests for jaxcnn.inspect.summary (imported through its old home, jaxcnn.shapes) and the demo."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from jaxcnn import layers as L
from jaxcnn import models
from jaxcnn.inspect import Summary, SummaryRow, summary

# Keras' model.summary() of the tutorial CNN on 32x32x3, batch dim left out.
KERAS_TUTORIAL_SHAPES = [(30, 30, 32), (15, 15, 32), (13, 13, 64), (6, 6, 64), (4, 4, 64),
                         (1024,), (64,), (10,)]
KERAS_TUTORIAL_PARAMS = [896, 0, 18_496, 0, 36_928, 0, 65_600, 650]


def _tree_count(model, input_shape, collection=None):
  variables = jax.eval_shape(model.init, jax.random.key(0),
                             jax.ShapeDtypeStruct(input_shape, jnp.float32))
  if collection is not None:
    variables = variables[collection]
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(variables))


def test_tutorial_cnn_matches_keras_table():
  printed = []
  s = summary(models.get_model("tutorial_cnn"), (1, 32, 32, 3), print_fn=printed.append)
  assert isinstance(s, Summary) and all(isinstance(r, SummaryRow) for r in s.rows)
  assert [r.output_shape[1:] for r in s.rows] == KERAS_TUTORIAL_SHAPES
  assert all(r.output_shape[0] == 1 for r in s.rows)
  assert [r.params for r in s.rows] == KERAS_TUTORIAL_PARAMS
  assert [r.layer_type for r in s.rows] == [
      "Conv", "MaxPool", "Conv", "MaxPool", "Conv", "Flatten", "Dense", "Dense"]
  assert s.total_params == s.trainable_params == 122_570
  assert s.total_params == _tree_count(models.get_model("tutorial_cnn"), (1, 32, 32, 3))
  # MACs: 30*30*9*3*32 + 13*13*9*32*64 + 4*4*9*64*64 + 1024*64 + 64*10
  macs = [777_600, 0, 3_115_008, 0, 589_824, 0, 65_536, 640]
  assert [r.macs for r in s.rows] == macs and s.total_macs == sum(macs)
  text = str(s)
  assert printed == [text]
  for fragment in ("Total params: 122,570", "Trainable params: 122,570",
                   "Non-trainable params: 0", f"Total MACs: {sum(macs):,}", "(1, 30, 30, 32)",
                   "Conv_0 (Conv)"):
    assert fragment in text


def test_macs_scale_with_batch_and_nothing_is_computed():
  s1 = summary(models.get_model("tutorial_cnn_512"), (1, 32, 32, 3), print_fn=None)
  s4 = summary(models.get_model("tutorial_cnn_512"), (4, 32, 32, 3), print_fn=None)
  assert s4.total_macs == 4 * s1.total_macs
  assert s1.total_params == s4.total_params == 586_250


@pytest.mark.parametrize("name, input_shape", [("mlp", (2, 28, 28, 1)),
                                               ("stridenet", (1, 32, 32, 3))])
def test_totals_equal_param_tree(name, input_shape):
  model = models.get_model(name)
  s = summary(model, input_shape, print_fn=None, train=True)  # train: dropout rng is supplied
  assert s.total_params == _tree_count(model, input_shape)
  assert sum(r.params for r in s.rows) == s.total_params
  if name == "stridenet":
    assert [r.output_shape for r in s.rows][:3] == [(1, 16, 16, 32), (1, 8, 8, 64),
                                                    (1, 4, 4, 128)]
  else:
    assert [r.layer_type for r in s.rows] == ["Flatten", "Dense", "Dropout", "Dense", "Dropout",
                                              "Dense"]


class _Block(nn.Module):
  """A compact module mixing a Sequential, a jaxcnn layer and a stock Flax layer."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = L.Sequential([L.Conv(4, 3, padding="SAME", use_bias=False), L.BatchNorm()])(
        x, train=train)
    x = L.GlobalAvgPool()(x)
    return nn.Dense(3)(x)  # not a jaxcnn layer: lands in "(other variables)"


def test_compact_model_batchnorm_and_foreign_layers():
  s = summary(_Block(), (2, 5, 5, 3), print_fn=None)
  # Layers created inside a compact method belong to it (Flax), even when a Sequential runs them.
  assert [r.name for r in s.rows] == ["Conv_0", "BatchNorm_0", "GlobalAvgPool_0",
                                      "(other variables)"]
  assert [r.params for r in s.rows] == [3 * 3 * 3 * 4, 4 * 4, 0, 4 * 3 + 3]
  assert s.total_params == _tree_count(_Block(), (2, 5, 5, 3))
  assert s.trainable_params == _tree_count(_Block(), (2, 5, 5, 3), "params")
  assert s.non_trainable_params == 8  # BatchNorm's running mean and var, as in Keras
  assert s.rows[0].macs == 2 * 25 * 27 * 4
  assert "Non-trainable params: 8" in str(s)


def test_nested_sequential_rows_and_shared_layer():
  shared = L.Dense(4)
  net = L.Sequential([L.Sequential([L.Flatten(), shared]), L.Activation("relu"), shared])
  s = summary(net, (3, 2, 2), print_fn=None)
  names = [r.name for r in s.rows]
  assert names[0] == "layers_0/layers_0" and names[2] == "layers_1"
  assert names[1] == names[3]  # one module, called twice
  assert [r.output_shape for r in s.rows] == [(3, 4), (3, 4), (3, 4), (3, 4)]
  # the shared Dense is counted once in params and twice in MACs
  assert [r.params for r in s.rows] == [0, 20, 0, 0]
  assert s.total_params == 20 and s.total_macs == 2 * 3 * 16


def test_summary_of_a_single_layer_and_bad_shape():
  s = summary(L.Conv(8, 3), (1, 10, 3), print_fn=None)
  assert s.rows == (SummaryRow("", "Conv", (1, 8, 8), 3 * 3 * 8 + 8, 8 * 3 * 3 * 8, (1, 10, 3)),)
  with pytest.raises(ValueError, match=r"input_shape"):
    summary(L.Conv(8, 3), (1, 0, 3), print_fn=None)


def test_demo_runs(capsys):
  from experiments import demo
  err = demo.main([])
  out = capsys.readouterr().out
  assert "Total params: 122,570" in out and "max abs error" in out
  assert err < 1e-4
