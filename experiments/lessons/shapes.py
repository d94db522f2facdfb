"""Lesson 3, shapes and parameters: the course's formulas and quizzes, answered by code.

    python -m experiments.lessons shapes [--quick]

No data, no training; quick and full runs are the same (about 4 s on a 2-core CPU; every shape
comes from ``jax.eval_shape``, so no FLOP is spent). It prints and checks:

* ``(W - F + 2P) / S + 1`` against the output width of a real ``jaxcnn.layers.Conv`` over a sweep
  (W 5..16, F 1/3/5, P 0..2, S 1..3: 324 cases where the window fits, flooring as the layers do),
  and ``K*F*F*D_in + K`` against the layer's parameter count (48 cases);
* the quizzes: a 28x28 image flattens to 784 inputs; 130x130x3 through Conv(3->10, 3),
  MaxPool(4, 4), Conv(10->20, 5, padding 2), MaxPool(2, 2) gives 16x16x20 (shape after every
  layer printed); a max-pool that downsamples by 4 is ``MaxPool(4)`` (window 4, stride 4);
* stride and ``'SAME'``/``'VALID'`` padding for 1-D, 2-D and 3-D convs;
* the summaries of both Keras tutorial nets: 122,570 parameters (Dense(64) head) and 586,250
  (Dense(512) head), Keras' counts exactly; and a diagram of each (a box per layer with its input
  and output shapes, like Keras' ``plot_model(show_shapes=True)``).
"""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from experiments.lessons import _common
from jaxcnn import layers as L
from jaxcnn import inspect, plots, shapes
from jaxcnn.models import get_model

TITLE = "Shapes and parameters: the formulas checked on real layers, the quizzes answered"
LESSON = 3


def _out_shape(module, input_shape) -> tuple[int, ...]:
  """Output shape of ``module`` on zeros of ``input_shape``, without computing anything."""
  def f(x):
    y, _ = module.init_with_output(jax.random.key(0), x)
    return y
  return tuple(jax.eval_shape(f, jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)).shape)


def _param_count(module, input_shape) -> int:
  variables = jax.eval_shape(lambda x: module.init(jax.random.key(0), x),
                             jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32))
  return sum(math.prod(v.shape) for v in jax.tree_util.tree_leaves(variables))


def formula_sweep(results: dict) -> None:
  checked = 0
  for w in range(5, 17):
    for f in (1, 3, 5):
      for p in (0, 1, 2):
        for s in (1, 2, 3):
          if w - f + 2 * p < 0:
            continue
          want = (w - f + 2 * p) // s + 1
          got = _out_shape(L.Conv(2, (1, f), stride=(1, s), padding=((0, 0), (p, p))),
                           (1, 1, w, 1))[2]
          assert got == want, (w, f, p, s, got, want)
          checked += 1
  print(f"(W - F + 2P) / S + 1 (floored) equals a real Conv layer's output width in all "
        f"{checked} cases (W 5..16, F 1/3/5, P 0..2, S 1..3)")
  params = 0
  for k in (1, 4, 16, 32):
    for f in (1, 3, 5):
      for d_in in (1, 3, 8, 64):
        want = k * f * f * d_in + k
        got = _param_count(L.Conv(k, f), (1, 8, 8, d_in))
        assert got == want == shapes.conv_param_count(f, d_in, k), (k, f, d_in, got)
        params += 1
  print(f"K*F*F*D_in + K equals the layer's parameter count in all {params} cases "
        "(K 1/4/16/32, F 1/3/5, D_in 1/3/8/64)")
  results["output_size_cases_checked"] = checked
  results["param_count_cases_checked"] = params


def quizzes(results: dict) -> None:
  flat = _out_shape(L.Flatten(), (1, 28, 28, 1))
  assert flat == (1, 784)
  print(f"quiz 1: a 28x28 grayscale image flattens to {flat[1]} inputs")
  results["quiz_flatten_28x28"] = flat[1]

  net = [L.Conv(10, 3), L.MaxPool(4, stride=4), L.Conv(20, 5, padding=2), L.MaxPool(2, stride=2)]
  labels = ["Conv(3->10, 3)", "MaxPool(4, 4)", "Conv(10->20, 5, padding 2)", "MaxPool(2, 2)"]
  shape = (1, 130, 130, 3)
  print(f"quiz 2: input {shape[1:]}")
  for layer, label in zip(net, labels):
    shape = _out_shape(layer, shape)
    print(f"  {label:28} -> {shape[1:]}")
  assert shape == (1, 16, 16, 20), shape
  assert _out_shape(L.Sequential(net), (1, 130, 130, 3)) == shape
  results["quiz_130_final_h"], results["quiz_130_final_c"] = shape[1], shape[3]

  by4 = _out_shape(L.MaxPool(4), (1, 128, 128, 10))
  assert by4 == (1, 32, 32, 10)
  print(f"quiz 3: a max-pool that downsamples by 4 is MaxPool(4) (window 4, stride 4): "
        f"128x128x10 -> {by4[1]}x{by4[2]}x{by4[3]}")
  results["quiz_pool_by_4_out"] = by4[1]


def padding_table(results: dict) -> None:
  print("stride and padding, 1-D / 2-D / 3-D (kernel 3, 8 filters):")
  print(f"  {'input':18} {'stride':>6} {'padding':>8}  output")
  rows = 0
  for inp in ((1, 10, 1), (1, 10, 10, 1), (1, 10, 10, 10, 1)):
    for stride in (1, 2):
      for padding in ("VALID", "SAME"):
        got = _out_shape(L.Conv(8, 3, stride=stride, padding=padding), inp)
        assert got == shapes.conv_output_shape(inp, 3, 8, stride=stride, padding=padding)
        n = 10
        want = (n - 3) // stride + 1 if padding == "VALID" else -(-n // stride)
        assert got[1:-1] == (want,) * (len(inp) - 2), (inp, stride, padding, got)
        print(f"  {str(inp):18} {stride:>6} {padding:>8}  {got}")
        rows += 1
  results["padding_table_rows"] = rows


def keras_nets(out: pathlib.Path, figures: list, results: dict) -> None:
  for name, hidden, want in (("tutorial_cnn", 64, 122_570), ("tutorial_cnn_512", 512, 586_250)):
    s = inspect.summary(get_model(name), (1, 32, 32, 3))
    assert s.total_params == want, (name, s.total_params)
    results[f"{name}_params"] = s.total_params
    results[f"{name}_macs"] = s.total_macs
    fig = plots.model_diagram(get_model(name), (1, 32, 32, 3),
                              title=f"{name}: Keras tutorial CNN, Dense({hidden}) head, "
                                    f"{s.total_params:,} params")
    _common.save(fig, out, f"{name}_diagram.png",
                 f"`{name}` drawn like Keras' `plot_model(show_shapes=True)`: one box per layer "
                 f"with its input and output shape (the batch drawn as None, as Keras does). "
                 f"Follow the spatial size 32 -> 30 -> 15 -> 13 -> 6 -> 4; the printed summary "
                 f"shows that the Flatten -> Dense({hidden}) step holds "
                 f"{1024 * hidden + hidden:,} of the {s.total_params:,} parameters.", figures)


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Checks the formulas, answers the quizzes and draws both Keras nets into ``out``."""
  del quick, image_folder, seed  # shapes only
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  formula_sweep(results)
  quizzes(results)
  padding_table(results)
  keras_nets(out, figures, results)
  np.testing.assert_equal(results["tutorial_cnn_params"], 122_570)
  return {"figures": figures, "results": results}
