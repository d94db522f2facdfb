"""Lesson 3, shapes and parameters: the course notes' formulas, examples and quizzes, the layer
definitions of the Keras notebook, and the summaries and ``plot_model`` diagrams of both Keras
notebooks' nets, answered by code.

    python -m experiments.lessons shapes [--quick]

No data, no training; quick and full runs are the same: every shape comes from
``jax.eval_shape`` (nothing is computed). It prints and checks:

* the notes' formulas, in their notation: the output size ``((W_in - F + 2P) / S) + 1``
  against the output width of ``jaxcnn.functional.conv`` over a sweep
  (W_in 5..16, F 1/3/5, P 0..2, S 1..3: 324 cases where the window fits, flooring as the layers
  do), and the parameter count ``(K * F*F * D_in) + K`` against a ``jaxcnn.layers.Conv``'s (24
  cases);
* the notes' PyTorch examples, ``nn.Conv2d(1, 16, 2, stride=2)`` (80 parameters) and
  ``nn.Conv2d(16, 32, 3, padding=1)`` (4,640), and their ``nn.Sequential`` feature extractor,
  layer by layer on a 28x28 grayscale (MNIST) image: 14x14x16, 7x7x16, 7x7x32, 3x3x32;
* the notes' quizzes: a 28x28 image flattens to 784 inputs; a max pool that down-samples by 4
  is ``nn.MaxPool2d(4, 4)`` or ``nn.MaxPool2d(2, 4)`` (both 128 -> 32); 130x130x3 through
  ``Conv2d(3, 10, 3)``, ``MaxPool2d(4, 4)``, ``Conv2d(10, 20, 5, padding=2)``,
  ``MaxPool2d(2, 2)``: 128, 32, 32, 16, depth 20, ``16*16*20`` = 5,120 values;
* the notes' glossary pictures, by shape (their values are not in the text): a 3x3 filter over a
  5x5 input takes 9 positions (a 3x3 output); a 2x2 pool with stride 1 over a 3x3 matrix takes
  4 (a 2x2 output);
* the Keras notebook's layer definitions on a CIFAR-sized input: ``Conv1D/2D/3D(64, 3)``,
  ``Conv2D(64, (3, 3), strides=3)`` with ``padding='same'`` and ``'valid'``, ``MaxPooling2D``,
  ``AveragePooling2D``, ``GlobalAveragePooling2D`` and a 1x1 convolution shrinking the
  channels: the shapes Keras gives (asserted);
* the summaries of both Keras notebooks' nets, each under its own name: ``tutorial_cnn_512``
  (the TensorFlow tutorial's ``sequential``, Dense(512) head: 586,250 parameters; its
  convolutional base 56,320) and ``tutorial_cnn`` (the "Convolutional networks" notebook's
  ``model``, Dense(64) head: 122,570), Keras' counts exactly; and a diagram of each (a box per
  layer with its input and output shapes, like Keras' ``plot_model(show_shapes=True)``).
"""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp

from experiments.lessons import _common
from jaxcnn import functional as F
from jaxcnn import layers as L
from jaxcnn import inspect, plots, shapes
from jaxcnn.models import get_model

TITLE = "Shapes and parameters: the notes' formulas, examples and quizzes, the Keras nets"
LESSON = 3


def _out_shape(module, input_shape) -> tuple[int, ...]:
  """Output shape of ``module`` on an input of ``input_shape``, without computing anything."""
  return inspect.summary(module, tuple(input_shape), print_fn=None).rows[-1].output_shape


def _param_count(module, input_shape) -> int:
  variables = jax.eval_shape(lambda x: module.init(jax.random.key(0), x),
                             jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32))
  return sum(math.prod(v.shape) for v in jax.tree_util.tree_leaves(variables))


def _walk(layers, labels, input_shape) -> list[tuple[str, tuple[int, ...], int]]:
  """``[(label, output shape, parameters)]`` of a ``Sequential`` of ``layers``, one row each."""
  s = inspect.summary(L.Sequential(layers), tuple(input_shape), print_fn=None)
  rows = [r for r in s.rows if r.layer_type]
  assert len(rows) == len(labels), (rows, labels)
  return [(label, r.output_shape, r.params) for label, r in zip(labels, rows)]


def formulas(results: dict) -> None:
  """The notes' two formulas against real layers."""
  checked = 0
  for w in range(5, 17):
    for f in (1, 3, 5):
      for p in (0, 1, 2):
        for s in (1, 2, 3):
          if w - f + 2 * p < 0:
            continue
          want = (w - f + 2 * p) // s + 1            # ((W_in - F + 2P) / S) + 1, floored
          y = jax.eval_shape(lambda x, k, s=s, p=p: F.conv(x, k, stride=s, padding=p),
                             jax.ShapeDtypeStruct((1, w, 1), jnp.float32),
                             jax.ShapeDtypeStruct((f, 1, 2), jnp.float32))
          assert y.shape[1] == want, (w, f, p, s, y.shape, want)
          checked += 1
  print(f"output size ((W_in - F + 2P) / S) + 1 (floored) equals jaxcnn.functional.conv's "
        f"output width in all {checked} cases (W_in 5..16, F 1/3/5, P 0..2, S 1..3)")
  params = 0
  for k in (4, 32):
    for f in (1, 3, 5):
      for d_in in (1, 3, 8, 64):
        want = (k * f * f * d_in) + k                # (K * F*F * D_in) + K
        got = _param_count(L.Conv(k, f), (1, 8, 8, d_in))
        assert got == want == shapes.conv_param_count(f, d_in, k), (k, f, d_in, got)
        params += 1
  print(f"parameters (K * F*F * D_in) + K equal a jaxcnn Conv layer's count in all {params} "
        "cases (K 4/32, F 1/3/5, D_in 1/3/8/64)")
  results["output_size_cases_checked"] = checked
  results["param_count_cases_checked"] = params


def notes_examples(results: dict) -> None:
  """The notes' "Convolutional Layers in PyTorch" examples, on a 28x28 grayscale image."""
  ex1 = _param_count(L.Conv(16, 2, stride=2), (1, 28, 28, 1))
  ex2 = _param_count(L.Conv(32, 3, padding=1), (1, 14, 14, 16))
  assert (ex1, ex2) == (16 * 2 * 2 * 1 + 16, 32 * 3 * 3 * 16 + 32) == (80, 4640)
  print(f"example #1 nn.Conv2d(1, 16, 2, stride=2): {ex1} parameters; example #2 "
        f"nn.Conv2d(16, 32, 3, padding=1): {ex2:,}")
  labels = ["nn.Conv2d(1, 16, 2, stride=2)", "nn.MaxPool2d(2, 2)", "nn.ReLU(True)",
            "nn.Conv2d(16, 32, 3, padding=1)", "nn.MaxPool2d(2, 2)", "nn.ReLU(True)"]
  layers = [L.Conv(16, 2, stride=2), L.MaxPool(2, stride=2), L.Activation("relu"),
            L.Conv(32, 3, padding=1), L.MaxPool(2, stride=2), L.Activation("relu")]
  print("the notes' nn.Sequential features on a 28x28 grayscale image (NHWC; PyTorch's NCHW "
        "puts the channels first):")
  rows = _walk(layers, labels, (1, 28, 28, 1))
  for label, shape, n in rows:
    print(f"  {label:32} -> {str(shape[1:]):14} {n:>6,} parameters")
  assert [r[1][1:] for r in rows] == [(14, 14, 16), (7, 7, 16), (7, 7, 16), (7, 7, 32),
                                      (3, 3, 32), (3, 3, 32)]
  results["example1_params"], results["example2_params"] = ex1, ex2
  results["features_out"] = str(rows[-1][1][1:])


def quizzes(results: dict) -> None:
  """The notes' quizzes Q1, Q4 and Q5."""
  flat = _out_shape(L.Flatten(), (1, 28, 28, 1))
  assert flat == (1, 784)
  print(f"Q1: a 28x28 image flattens to {flat[1]} entries (28*28*1)")
  results["q1_flatten_28x28"] = flat[1]

  for label, layer in (("nn.MaxPool2d(4, 4)", L.MaxPool(4, stride=4)),
                       ("nn.MaxPool2d(2, 4)", L.MaxPool(2, stride=4))):
    by4 = _out_shape(layer, (1, 128, 128, 10))
    assert by4 == (1, 32, 32, 10), (label, by4)
    print(f"Q4: {label}: 128x128x10 -> {by4[1]}x{by4[2]}x{by4[3]} (down-sampled by 4)")
  print("    kernel 4, stride 4 sees every pixel once; kernel 2, stride 4 skips 3 pixels in 4 "
        "along each axis")
  results["q4_pool_by_4_out"] = 32

  labels = ["nn.Conv2d(3, 10, 3)", "nn.MaxPool2d(4, 4)", "nn.Conv2d(10, 20, 5, padding=2)",
            "nn.MaxPool2d(2, 2)"]
  layers = [L.Conv(10, 3), L.MaxPool(4, stride=4), L.Conv(20, 5, padding=2),
            L.MaxPool(2, stride=2)]
  print("Q5: input 130x130x3")
  rows = _walk(layers, labels, (1, 130, 130, 3))
  for label, shape, n in rows:
    print(f"  {label:32} -> {str(shape[1:]):14} {n:>6,} parameters")
  final = rows[-1][1]
  assert [r[1][1] for r in rows] == [128, 32, 32, 16] and final == (1, 16, 16, 20), rows
  values = math.prod(final[1:])
  print(f"  depth of the final output: {final[3]}; x-y size: {final[1]}; values left: "
        f"16*16*20 = {values:,}")
  results["q5_final_xy"], results["q5_depth"], results["q5_values"] = final[1], final[3], values


def glossary(results: dict) -> None:
  """The notes' glossary pictures (a 5x5 convolution, a 3x3 pooling), by shape."""
  conv = _out_shape(L.Conv(1, 3), (1, 5, 5, 1))
  pool = _out_shape(L.MaxPool(2, stride=1), (1, 3, 3, 1))
  assert conv == (1, 3, 3, 1) and pool == (1, 2, 2, 1)
  print(f"glossary: a 3x3 filter over a 5x5 input: {conv[1] * conv[2]} positions, output "
        f"{conv[1]}x{conv[2]}; a 2x2 max pool with stride 1 over a 3x3 matrix: "
        f"{pool[1] * pool[2]} pooling operations, output {pool[1]}x{pool[2]}")
  results["glossary_conv_positions"] = conv[1] * conv[2]
  results["glossary_pool_operations"] = pool[1] * pool[2]


def keras_layers(results: dict) -> None:
  """The Keras notebook's layer definitions, on CIFAR-sized inputs."""
  inputs = {1: (1, 32, 3), 2: (1, 32, 32, 3), 3: (1, 16, 16, 16, 3)}
  print("the Keras notebook's layers (input 32 long / 32x32 / 16x16x16, 3 channels):")
  rows = 0
  for d, shape in inputs.items():
    for stride, padding, keras_call in ((1, "VALID", f"Conv{d}D(64, 3)"),
                                        (3, "SAME", f"Conv{d}D(64, 3, strides=3, padding='same')"),
                                        (3, "VALID",
                                         f"Conv{d}D(64, 3, strides=3, padding='valid')")):
      got = _out_shape(L.Conv(64, 3, stride=stride, padding=padding), shape)
      assert got == shapes.conv_output_shape(shape, 3, 64, stride=stride, padding=padding)
      n = shape[1]
      want = (n - 3) // stride + 1 if padding == "VALID" else -(-n // stride)
      assert got[1:-1] == (want,) * d, (shape, stride, padding, got)
      print(f"  {keras_call:44} -> {got[1:]}")
      rows += 1
  for label, layer in (("MaxPooling2D(pool_size=(2, 2), strides=2, padding='valid')",
                        L.MaxPool(2, stride=2)),
                       ("AveragePooling2D(pool_size=(2, 2), strides=2, padding='valid')",
                        L.AvgPool(2, stride=2)),
                       ("GlobalAveragePooling2D()", L.GlobalAvgPool())):
    got = _out_shape(layer, (1, 32, 32, 3))
    print(f"  {label:60} -> {got[1:]}")
    rows += 1
  one = _out_shape(L.Conv(16, 1), (1, 4, 4, 64))
  assert one == (1, 4, 4, 16)
  print(f"  a 1x1 convolution, Conv2D(16, 1) on (4, 4, 64) -> {one[1:]}: the same grid, 64 "
        f"channels shrunk to 16 with {shapes.conv_param_count(1, 64, 16):,} parameters")
  results["keras_layer_rows"] = rows


def keras_nets(out: pathlib.Path, figures: list, results: dict) -> None:
  """Both Keras notebooks' nets: summary and diagram, each under its own name."""
  base = L.Sequential([L.Conv(32, 3, activation="relu"), L.MaxPool(2),
                       L.Conv(64, 3, activation="relu"), L.MaxPool(2),
                       L.Conv(64, 3, activation="relu")])
  s = inspect.summary(base, (1, 32, 32, 3), name="tutorial_cnn_512 (convolutional base)")
  assert s.total_params == 56_320
  results["conv_base_params"] = s.total_params
  for name, hidden, want, notebook in (
      ("tutorial_cnn_512", 512, 586_250, "the TensorFlow tutorial's 'sequential'"),
      ("tutorial_cnn", 64, 122_570, "the 'Convolutional networks' notebook's 'model'")):
    s = inspect.summary(get_model(name), (1, 32, 32, 3), name=name)
    assert s.total_params == want, (name, s.total_params)
    results[f"{name}_params"] = s.total_params
    results[f"{name}_macs"] = s.total_macs
    fig = plots.model_diagram(get_model(name), (1, 32, 32, 3), name=name,
                              title=f"{name}: {notebook}, Dense({hidden}) head, "
                                    f"{s.total_params:,} params")
    _common.save(fig, out, f"{name}_diagram.png",
                 f"`{name}` ({notebook}) drawn like Keras' `plot_model(show_shapes=True)`: one "
                 "box per layer with its input and output shape (the batch drawn as None, as "
                 "Keras does). Follow the spatial size 32 -> 30 -> 15 -> 13 -> 6 -> 4; the "
                 f"printed summary shows that the Flatten -> Dense({hidden}) step holds "
                 f"{1024 * hidden + hidden:,} of the {s.total_params:,} parameters.", figures)


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Checks the formulas, answers the quizzes and draws both Keras nets into ``out``."""
  del quick, image_folder, seed  # shapes only
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  formulas(results)
  notes_examples(results)
  quizzes(results)
  glossary(results)
  keras_layers(results)
  keras_nets(out, figures, results)
  return {"figures": figures, "results": results}
