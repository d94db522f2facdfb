"""The lessons (experiments/lessons): each runs with ``quick=True``, prints and returns the
course notebooks' numbers, and writes non-blank figures and an ``index.md``.

Where a notebook printed a value (or its code fixes one: a shape, a parameter count), the test
writes it as the notebook has it and asserts the lesson shows it: the course's lecture cells
(``NOTEBOOK_002``), the Keras summaries, the notes' quizzes.

Every lesson is run once per test session (a module-scoped cache, with one trained-net cache
for the module, so the lessons that share a net train it once), then each test looks at one
part of what it returned.
"""

import contextlib
import io
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from experiments import lessons as lessons_pkg

ROOT = pathlib.Path(__file__).resolve().parents[1]

# What the lecture notebook "Convolutional Neural Networks" (numpy/scipy) printed, verbatim:
# (its input as the cell writes it, its printed output).
NOTEBOOK_002 = {
    "In [7] full": "[-1  0 -1  2 -1  1]",
    "In [7] same": "[-1  0 -1  2 -1]",
    "In [7] valid": "[ 0 -1  2 -1]",
    "In [20] ones": ("[[1. 1. 1. 1.]\n [1. 1. 1. 1.]\n [1. 1. 1. 1.]\n [1. 1. 1. 1.]]\n"
                     "[[1 0]\n [0 1]]"),
    "In [20] full": ("[[1. 1. 1. 1. 0.]\n [1. 2. 2. 2. 1.]\n [1. 2. 2. 2. 1.]\n [1. 2. 2. 2. 1.]\n"
                     " [0. 1. 1. 1. 1.]]"),
    "In [42] g_": "[-1, 0, 1]",
    "In [42] same": "array([-3,  2,  2,  2,  1])",
    "In [49] f, g_": "[[1 2 1]\n [2 1 1]\n [1 1 1]] [[1.  0.5]\n [0.5 1. ]]",
    "In [49] c": "[[4. 4.]\n [4. 3.]]",
    "In [49] sum": "15.0",
    "In [52] I, F": "[[1 0 2]\n [3 1 0]\n [0 0 4]]\n[[1 0]\n [0 1]]",
}


@contextlib.contextmanager
def _lessons_cache(path: pathlib.Path):
  """``$JAXCNN_LESSONS_CACHE`` set to ``path`` inside the block, restored after it."""
  before = os.environ.get("JAXCNN_LESSONS_CACHE")
  os.environ["JAXCNN_LESSONS_CACHE"] = str(path)
  try:
    yield
  finally:
    if before is None:
      del os.environ["JAXCNN_LESSONS_CACHE"]
    else:
      os.environ["JAXCNN_LESSONS_CACHE"] = before


@pytest.fixture(scope="module")
def run_quick(tmp_path_factory):
  cache: dict = {}
  nets = tmp_path_factory.mktemp("trained_nets")  # one lesson cache for the whole module

  def get(name: str) -> tuple[dict, pathlib.Path, str]:
    """``(returned dict, output folder, what it printed)`` of ``name`` run quick, once."""
    if name not in cache:
      out = tmp_path_factory.mktemp(name)
      printed = io.StringIO()
      with _lessons_cache(nets), contextlib.redirect_stdout(printed):
        result = lessons_pkg.run_lesson(name, out, quick=True)
      cache[name] = (result, out, printed.getvalue())
    return cache[name]

  get.nets = nets
  return get


def _check_figures(result: dict, out: pathlib.Path) -> None:
  assert result["figures"], "a lesson draws at least one figure"
  index = (out / "index.md").read_text()
  for name, caption in result["figures"]:
    assert name.endswith(".png") and len(caption) > 40, (name, caption)
    assert f"![{name}]({name})" in index and caption in index
    img = np.asarray(Image.open(out / name).convert("L"), np.float32)
    h, w = img.shape
    assert 150 <= h <= 2500 and 150 <= w <= 2500, (name, img.shape)
    assert img.std() > 5, f"{name} looks blank (std {img.std():.1f})"


# ---------------------------------------------------------------------------------- the runner

def test_discover_finds_the_lessons_in_course_order():
  found = lessons_pkg.discover()
  for name in ("conv_by_hand",):
    assert name in found
    assert isinstance(found[name].TITLE, str) and found[name].__doc__
  numbers = [getattr(m, "LESSON", 99) for m in found.values()]
  assert numbers == sorted(numbers)


def test_unknown_lesson_is_one_clear_error(tmp_path):
  with pytest.raises(ValueError, match=r"unknown lesson 'nope'; known lessons: .*conv_by_hand"):
    lessons_pkg.run_lesson("nope", tmp_path)


def test_cli_list_and_one_lesson(tmp_path):
  listed = subprocess.run([sys.executable, "-m", "experiments.lessons", "--list"], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=120)
  assert "conv_by_hand" in listed.stdout
  ran = subprocess.run([sys.executable, "-m", "experiments.lessons", "conv_by_hand", "--quick",
                        "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
  assert ran.returncode == 0, ran.stderr[-2000:]
  assert "[-1  0 -1  2 -1  1]" in ran.stdout
  assert (tmp_path / "conv_by_hand" / "index.md").exists()


def test_cli_unknown_lesson_is_one_line(capsys):
  from experiments.lessons.__main__ import main
  assert main(["nope"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "unknown lesson 'nope'; known lessons:" in err


# ---------------------------------------------------------------------------------- lesson 2

def test_conv_by_hand_prints_every_lecture_output(run_quick):
  result, out, printed = run_quick("conv_by_hand")
  for cell, text in NOTEBOOK_002.items():
    assert text in printed, (cell, text)
  # The results printed for jaxcnn, not only numpy's: each array appears twice (lecture, jaxcnn).
  for cell in ("In [7] full", "In [7] valid", "In [20] full", "In [49] c"):
    assert printed.count(NOTEBOOK_002[cell]) >= 2, cell
  r = result["results"]
  assert r["cell7_full"] == "[-1, 0, -1, 2, -1, 1]" and r["cell7_valid"] == "[0, -1, 2, -1]"
  assert r["cell42"] == "[-3, 2, 2, 2, 1]" and r["cell49"] == "[[4.0, 4.0], [4.0, 3.0]]"
  assert r["cell49_sum"] == 15.0 and r["cell20_full_2d_sum"] == 32.0
  # In [61]: the lecture's cell fails on a 2-D input; jaxcnn says why in one line.
  assert "RuntimeError: non-empty 3D or 4D (batch mode) tensor expected for input" in printed
  assert "got shape (3, 3) (rank 2)" in r["cell61_error"] and "\n" not in r["cell61_error"]
  assert r["cell61_pool"] == "[[3, 2], [3, 4]]" and r["I_filtered_by_F"] == "[[2, 0], [3, 5]]"
  assert r["dense_weights_1000x1000"] == 10 ** 12 and r["patch_11x11_weights"] == 121
  assert r["patches_vs_conv_max_abs_diff"] < 1e-4
  assert r["pool_max"] == "[[3.0, 2.0], [3.0, 4.0]]" and r["pool_sum"] == "[[5.0, 3.0], [4.0, 5.0]]"
  assert r["pool_average"] == "[[1.25, 0.75], [1.0, 1.25]]" and r["pool_L1"] == r["pool_sum"]
  _check_figures(result, out)


def test_the_lecture_values_recomputed_with_jaxcnn():
  """The lecture's printed arrays, from its inputs, with jaxcnn alone (no numpy/scipy)."""
  import jax.numpy as jnp
  from jaxcnn import functional as F
  x = jnp.asarray([1, 1, 2, 0, 1], jnp.float32).reshape(1, -1, 1)
  y = jnp.asarray([-1, 1], jnp.float32).reshape(-1, 1, 1)
  assert F.convolve(x, y, padding="FULL")[0, :, 0].tolist() == [-1, 0, -1, 2, -1, 1]
  assert F.convolve(x, y, padding=[(1, 0)])[0, :, 0].tolist() == [-1, 0, -1, 2, -1]
  assert F.convolve(x, y)[0, :, 0].tolist() == [0, -1, 2, -1]
  f = jnp.asarray([1, 3, -1, 1, -3], jnp.float32).reshape(1, -1, 1)
  g = jnp.asarray([1, 0, -1], jnp.float32).reshape(-1, 1, 1)
  assert F.convolve(f, g[::-1], padding="SAME")[0, :, 0].tolist() == [-3, 2, 2, 2, 1]
  assert F.conv(f, g, padding="SAME")[0, :, 0].tolist() == [-3, 2, 2, 2, 1]
  f2 = jnp.asarray([[1, 2, 1], [2, 1, 1], [1, 1, 1]], jnp.float32).reshape(1, 3, 3, 1)
  g2 = jnp.asarray([[1, 0.5], [0.5, 1]], jnp.float32).reshape(2, 2, 1, 1)
  c = F.convolve(f2, g2[::-1, ::-1])[0, :, :, 0]
  assert c.tolist() == [[4, 4], [4, 3]] and float(c.sum()) == 15.0
  ones = F.convolve(jnp.ones((1, 4, 4, 1)), jnp.eye(2).reshape(2, 2, 1, 1), padding="FULL")
  assert ones[0, :, :, 0].tolist() == [[1, 1, 1, 1, 0], [1, 2, 2, 2, 1], [1, 2, 2, 2, 1],
                                       [1, 2, 2, 2, 1], [0, 1, 1, 1, 1]]


# ---------------------------------------------------------------------------------- lesson 3

# Keras' model.summary() of the notebooks' nets (its output shapes, batch as None, and counts):
# the TensorFlow tutorial's conv base and full net, and the Keras notebook's model.
KERAS_SUMMARY_001_BASE = [((30, 30, 32), 896), ((15, 15, 32), 0), ((13, 13, 64), 18_496),
                          ((6, 6, 64), 0), ((4, 4, 64), 36_928)]
KERAS_SUMMARY_001 = KERAS_SUMMARY_001_BASE + [((1024,), 0), ((512,), 524_800), ((10,), 5_130)]
KERAS_SUMMARY_003 = KERAS_SUMMARY_001_BASE + [((1024,), 0), ((64,), 65_600), ((10,), 650)]


def test_shapes_answers_the_notes_and_matches_keras(run_quick):
  result, out, printed = run_quick("shapes")
  r = result["results"]
  assert r["q1_flatten_28x28"] == 784                                   # Q1: 784
  assert r["q4_pool_by_4_out"] == 32                                    # Q4: 128 / 4
  assert (r["q5_final_xy"], r["q5_depth"], r["q5_values"]) == (16, 20, 16 * 16 * 20)  # Q5
  for line in ("nn.Conv2d(3, 10, 3)              -> (128, 128, 10)",
               "nn.MaxPool2d(4, 4)               -> (32, 32, 10)",
               "nn.Conv2d(10, 20, 5, padding=2)  -> (32, 32, 20)",
               "nn.MaxPool2d(2, 2)               -> (16, 16, 20)",
               "nn.MaxPool2d(2, 4): 128x128x10 -> 32x32x10"):
    assert line in printed, line
  assert (r["example1_params"], r["example2_params"]) == (80, 4640)
  assert r["features_out"] == "(3, 3, 32)"
  assert (r["glossary_conv_positions"], r["glossary_pool_operations"]) == (9, 4)
  assert r["output_size_cases_checked"] == 324 and r["param_count_cases_checked"] == 24
  # The Keras notebook's layers as Keras builds them on these inputs.
  for line in ("Conv1D(64, 3)                                -> (30, 64)",
               "Conv2D(64, 3, strides=3, padding='same')     -> (11, 11, 64)",
               "Conv2D(64, 3, strides=3, padding='valid')    -> (10, 10, 64)",
               "Conv3D(64, 3, strides=3, padding='same')     -> (6, 6, 6, 64)",
               "Conv3D(64, 3, strides=3, padding='valid')    -> (5, 5, 5, 64)",
               "GlobalAveragePooling2D()                                     -> (3,)"):
    assert line in printed, line
  assert r["keras_layer_rows"] == 12
  # Both notebooks' summaries, each under its own name, with Keras' shapes and counts.
  assert r["conv_base_params"] == 56_320
  assert r["tutorial_cnn_512_params"] == 586_250 and r["tutorial_cnn_params"] == 122_570
  for name in ('"tutorial_cnn_512 (convolutional base)"', '"tutorial_cnn_512"', '"tutorial_cnn"'):
    assert f"Model: {name}" in printed, name
  assert "TutorialCNN" not in printed
  for shape, params in KERAS_SUMMARY_001 + KERAS_SUMMARY_003:
    assert any(str((1, *shape)) in line and f" {params:,} " in line
               for line in printed.splitlines()), (shape, params)
  _check_figures(result, out)


# ---------------------------------------------------------------------------------- lesson 4

def test_edge_filters_finds_the_horizontal_edge_kernel(run_quick):
  result, out, printed = run_quick("edge_filters")
  r = result["results"]
  assert r["quiz_answer_is_d"] is True  # the notes' Q3 answer: d
  assert r["quiz_d_horizontal"] > 0 and r["quiz_d_vertical"] == 0
  assert r["quiz_b_horizontal"] == 0 and r["quiz_b_vertical"] > 0
  assert r["quiz_a_horizontal"] > 0 and r["quiz_a_vertical"] > 0
  assert 0.3 < r["uint8_negative_edges_lost_fraction"] < 0.7
  assert r["edge_top_row_zeros"] > 2 * r["edge_top_row_extend"]
  assert "-> kernel d (Sobel-y" in printed
  _check_figures(result, out)


# ---------------------------------------------------------------------------------- lesson 1

def test_photo_walk_has_the_notebooks_shapes(run_quick):
  result, out, printed = run_quick("photo_walk")
  r = result["results"]
  # The notebook's nn.Linear(8750, 4) fixes (H // 2) * (W // 2) = 8750: the stand-in is 250x140.
  assert (r["photo_h"], r["photo_w"]) == (250, 140) and r["conv_n"] == 5
  assert (r["pooled_h"], r["pooled_w"]) == (125, 70) and r["flat_features"] == 8750
  assert abs(r["softmax_sum"] - 1) < 1e-6
  assert 1 <= r["dropped_rows"] < 125 and abs(r["dropout_scale"] - 4 / 3) < 1e-6
  for line in ("torch.Size([1, 5, 250, 140]); jaxcnn (NHWC) (1, 250, 140, 5)",
               "torch.Size([1, 125, 70]); jaxcnn (NHWC) (1, 125, 70, 1)",
               "output5.size() -> (8750,)", "output7.sum() -> 1.000000",
               "[p for p in model.parameters()] -> weight (5, 1, 3, 3)"):
    assert line in printed, line
  # The trained half: input, 3 x (pre-activation, ReLU), 2 pools, flatten, dense pre/post,
  # logits, softmax: 14 stages.
  assert r["trained_stages"] == 14 and abs(r["trained_softmax_sum"] - 1) < 1e-5
  for line in ("Conv_0/pre_activation  shape (1, 30, 30, 32)", "MaxPool_1              shape "
               "(1, 6, 6, 64)", "Flatten_0              shape (1, 1024)",
               "Dense_1                shape (1, 10)"):
    assert line in printed, line
  assert {n for n, _ in result["figures"]} == {
      "conv_outputs.png", "relu_outputs.png", "max_pool.png", "dropout.png", "softmax.png",
      "trained_walk.png"}
  _check_figures(result, out)


def test_photo_walk_equals_the_notebooks_pytorch_code():
  """The notebook's own PyTorch cells, given the lesson's photo and weights, compute the
  lesson's arrays: conv, pooling, the rows Dropout2d drops, Linear(8750, 4) and softmax."""
  torch = pytest.importorskip("torch")
  from experiments.lessons import photo_walk
  a = photo_walk.notebook_walk(seed=0)
  gray1 = torch.Tensor(np.array(a["gray1"], dtype=float))
  h, w = gray1.size()
  model = torch.nn.Conv2d(1, 5, kernel_size=3, stride=1, padding=1)
  model3 = torch.nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
  model6 = torch.nn.Linear(8750, 4)
  with torch.no_grad():
    model.weight.copy_(torch.from_numpy(np.transpose(a["kernel"], (3, 2, 0, 1)).copy()))
    model.bias.copy_(torch.from_numpy(a["bias"].copy()))
    model6.weight.copy_(torch.from_numpy(a["dense_w"].T.copy()))
    model6.bias.copy_(torch.from_numpy(a["dense_b"].copy()))
    output = model(gray1.reshape(1, 1, h, w))
    assert tuple(output.size()) == (1, 5, 250, 140)
    np.testing.assert_allclose(output.numpy()[0], np.transpose(a["output"][0], (2, 0, 1)),
                               atol=1e-5)
    output3 = model3(gray1.reshape(1, h, w))
    assert tuple(output3.size()) == (1, 125, 70)
    np.testing.assert_array_equal(output3.numpy()[0], a["output3"][0, :, :, 0])
    torch.manual_seed(0)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # PyTorch warns that it reads a 3-D input as (N, C, L)
      output4 = torch.nn.Dropout2d(p=0.25)(output3)[0].numpy()
    npo3 = output3.numpy()[0]
    for dropped in (output4, a["output4"]):  # PyTorch's draw and the lesson's: whole rows
      zero = (dropped == 0).all(axis=1)
      assert 0 < zero.sum() < 125
      np.testing.assert_allclose(dropped[~zero], npo3[~zero] / 0.75, rtol=1e-6)
    output5 = torch.from_numpy(a["output4"].copy()).reshape(1, -1)  # output4.view(1, -1)
    output7 = torch.nn.Softmax(dim=1)(model6(output5))
  np.testing.assert_allclose(output7.numpy(), a["output7"], rtol=1e-4, atol=1e-6)
  assert abs(float(output7.sum()) - 1) < 1e-6


# ---------------------------------------------------------------------------------- lesson 5b

def test_filters_and_maps_draws_what_the_keras_notebook_draws(run_quick):
  result, out, printed = run_quick("filters_and_maps")
  r = result["results"]
  assert r["params"] == 122_570 and r["model_short_params"] == 56_320
  assert r["conv0_kernel_shape"] == "(3, 3, 3, 32)"   # filters.shape, Keras' layout
  assert r["epochs"] == 2 and 0.0 <= r["val_accuracy"] <= 1.0
  for line in ("model.layers[1].get_weights()[0].shape -> (3, 3, 3, 32)",
               "Conv_0   (None, 30, 30, 32)        896", "Conv_1   (None, 13, 13, 64)     18,496",
               "Conv_2   (None, 4, 4, 64)       36,928", 'Model: "tutorial_cnn"',
               "((50000, 32, 32, 3), (50000, 1))", "accuracy: "):
    assert line in printed, line
  for index, shape in ((1, "(30, 30, 32)"), (3, "(13, 13, 64)"), (5, "(4, 4, 64)")):
    assert r[f"feature_maps_layer{index}_shape"] == shape
  assert {n for n, _ in result["figures"]} == {
      "train_grid.png", "plot_model.png", "accuracy.png", "loss.png", "filters_layer1.png",
      "filters_layer3.png", "filters_layer5.png", "train_image_7.png",
      "feature_maps_layer1.png", "feature_maps_layer3.png", "feature_maps_layer5.png"}
  _check_figures(result, out)


def test_official_order_places_the_notebooks_first_images():
  from experiments.lessons import _common
  order = _common.official_order(25, quick=False)
  # Canonical order interleaves the 10 classes round robin: image k has label k % 10.
  assert [int(i) % 10 for i in order] == list(_common.CIFAR10_FIRST_LABELS)
  assert order[:3].tolist() == [6, 9, 19]  # frog 0, truck 0, truck 1
  assert order[7] == 7  # train_images[7], the horse of the Keras notebook's feature maps
  assert len(set(order.tolist())) == 25
  with pytest.raises(ValueError, match=r"`n` \(=26\) must be in \[1, 25\]"):
    _common.official_order(26, quick=False)


# ---------------------------------------------------------------------------------- lesson 9

@pytest.mark.slow  # four nets compiled and trained: ~35 s of CPU
def test_stride_padding_table(run_quick):
  result, out, printed = run_quick("stride_padding")
  r = result["results"]
  assert r["pooled_params"] == 122_570 and r["stridenet_params"] == 113_738
  assert r["stridenet_gap_params"] == 94_538 and r["pooled_1x1_params"] == 74_458
  for name in ("pooled", "stridenet", "stridenet_gap", "pooled_1x1"):
    assert 0.0 <= r[f"{name}_val_accuracy"] <= 1.0
  _check_figures(result, out)


# ---------------------------------------------------------------------------------- lesson 5

@pytest.mark.slow  # trains the Dense(512) net's twice-compiled steps, draws six figures
def test_cifar10_cnn_quick(run_quick, tmp_path_factory):
  result, out, printed = run_quick("cifar10_cnn")
  r = result["results"]
  assert r["epochs"] == 2 and r["params"] == 586_250 and r["base_params"] == 56_320
  assert 0.0 <= r["val_accuracy"] <= 1.0
  assert abs(np.nanmean([r[f"accuracy_{c}"] for c in lessons_pkg.cifar10_cnn.CLASSES])
             - r["val_accuracy"]) < 0.1  # 256 synthetic images: classes nearly balanced
  for line in ("I think this is a ", "trained a net", 'Model: "tutorial_cnn_512"',
               "Total params: 586,250", "Total params: 56,320", "print(test_acc) -> ",
               "print(train_labels[1]) -> ["):
    assert line in printed, line
  assert {n for n, _ in result["figures"]} >= {
      "train_image_1.png", "train_grid.png", "accuracy.png", "i_think_this_is_a.png",
      "confusion.png"}
  _check_figures(result, out)
  # A second run loads the cached net instead of retraining.
  with _lessons_cache(run_quick.nets), contextlib.redirect_stdout(io.StringIO()) as again_out:
    again = lessons_pkg.run_lesson("cifar10_cnn", tmp_path_factory.mktemp("again"), quick=True)
  assert "loaded the cached net" in again_out.getvalue()
  assert again["results"]["val_accuracy"] == r["val_accuracy"]


# ---------------------------------------------------------------------------------- lesson 6

def test_mnist_mlp_saves_the_best_and_tests_it(run_quick):
  result, out, printed = run_quick("mnist_mlp")
  r = result["results"]
  assert r["params"] == 669_706 and r["epochs"] == 3
  assert r["saves"] >= 1 and printed.count("saving model to model_best.msgpack") == r["saves"]
  assert (out / "model_best.msgpack").stat().st_size > 669_706 * 4  # float32 params
  assert 1 <= r["best_epoch"] <= 3 and r["best_val_loss"] > 0
  assert r["test_count"] == 256  # the quick held-out split, never trained or validated on
  per_class = [r[f"test_accuracy_{c}"] for c in range(10)]
  assert all(0 <= a <= 1 for a in per_class)
  assert abs(np.mean(per_class) - r["test_accuracy"]) < 0.05  # classes nearly balanced
  assert printed.count("Test accuracy of ") == 10 and "Test accuracy (overall): " in printed
  assert "two evaluation-mode passes are identical" in printed  # the notes' model.eval()
  assert r["train_mode_max_logit_diff"] > 0
  assert "hidden layers (512, 512)" in printed  # the notes' quiz Q2: two hidden layers
  assert "loaded model_best.msgpack (epoch" in printed
  assert {n for n, _ in result["figures"]} >= {"curves.png", "predictions.png"}
  _check_figures(result, out)


# ---------------------------------------------------------------------------------- lesson 7

@pytest.mark.slow  # two nets trained and 66 shifted test sets: ~40 s of CPU
def test_mlp_vs_cnn_shift_table(run_quick):
  result, out, printed = run_quick("mlp_vs_cnn")
  r = result["results"]
  assert r["mlp_params"] == 669_706 and r["tutorial_cnn_params"] == 93_322
  for name in ("mlp", "tutorial_cnn"):
    for key in ("test_accuracy", "accuracy_shift4", "accuracy_shift8"):
      assert 0.0 <= r[f"{name}_{key}"] <= 1.0
  assert r["mlp_test_accuracy"] > 0.9  # the synthetic classes are easy when centred
  assert r["mlp_accuracy_shift8"] < r["mlp_test_accuracy"] - 0.3  # ... and shifting breaks it
  assert "shift px" in printed and printed.count("trained a net") == 2
  _check_figures(result, out)


def test_shift_and_affine_helpers_by_hand():
  from experiments.lessons import _common
  x = np.zeros((1, 5, 5, 1), np.float32)
  x[0, 2, 3, 0] = 1
  moved = _common.shift(x, 1, -2)
  assert moved[0, 3, 1, 0] == 1 and moved.sum() == 1
  assert _common.shift(x, 0, 2).sum() == 0  # pushed off the right edge, zero fill
  np.testing.assert_allclose(_common.affine(x, dx=1), _common.shift(x, 0, 1), atol=1e-6)
  turned = _common.affine(x, angle=90)  # counter-clockwise on screen: right of centre -> above
  assert turned[0, 1, 2, 0] == pytest.approx(1, abs=1e-5) and turned.sum() == pytest.approx(1)
  zoomed = _common.affine(x, scale=2.0, fill=0.5)[0, :, :, 0]
  assert zoomed[2, 4] == pytest.approx(1) and zoomed[2, 3] == pytest.approx(0.5)
  np.testing.assert_allclose(_common.affine(np.ones((1, 4, 4, 1)), dx=4, fill=0.25), 0.25)


# ---------------------------------------------------------------------------------- lesson 8

@pytest.mark.slow  # two nets trained, 50 transformed validation sets: ~45 s of CPU
def test_augmentation_compares_both_nets(run_quick):
  result, out, printed = run_quick("augmentation")
  r = result["results"]
  assert r["seeds"] == 1 and r["epochs"] == 2 and r["eval_images"] == 256
  for net in ("plain", "augmented"):
    for key in ("train_accuracy", "val_accuracy"):
      assert 0.0 <= r[f"{net}_{key}"] <= 1.0
    assert r[f"{net}_gap"] == pytest.approx(r[f"{net}_train_accuracy"] - r[f"{net}_val_accuracy"])
    for kind in ("translation", "rotation", "scale", "brightness", "occlusion"):
      assert 0.0 <= r[f"{net}_{kind}_worst"] <= r[f"{net}_val_accuracy"] + 1e-6, (net, kind)
  assert printed.count("trained a net") == 2
  assert {n for n, _ in result["figures"]} == {"augmented_samples.png", "gap_curves.png",
                                                "invariance.png", "transforms.png"}
  _check_figures(result, out)


def test_augmentation_transforms_by_hand():
  from experiments.lessons import augmentation
  x = np.full((3, 32, 32, 3), 0.5, np.float32)
  np.testing.assert_array_equal(augmentation.transform(x, "brightness", 0.7), 1.0)
  for kind in ("translation", "rotation", "occlusion"):
    np.testing.assert_array_equal(augmentation.transform(x, kind, 0), x)
  np.testing.assert_allclose(augmentation.transform(x, "scale", 1.0), x, atol=1e-6)
  occluded = augmentation.transform(np.zeros_like(x), "occlusion", 8, seed=1)
  assert [int((o[..., 0] == 0.5).sum()) for o in occluded] == [64, 64, 64]
  moved = augmentation.transform(x, "translation", 8)  # even images right, odd ones down
  assert (moved[0, :, :8] == 0).all() and (moved[0, :, 8:] == 0.5).all()
  assert (moved[1, :8] == 0).all() and (moved[1, 8:] == 0.5).all()
  with pytest.raises(ValueError, match="unknown transformation 'shear'"):
    augmentation.transform(x, "shear", 1)


# ---------------------------------------------------------------------------------- lesson 10

@pytest.mark.slow  # 14 activation maximisations and 8 attributions compiled: ~60 s of CPU
def test_what_cnns_learn(run_quick):
  result, out, printed = run_quick("what_cnns_learn")
  r = result["results"]
  assert r["filters_visualised"] == 3 * 2 * 2  # 3 conv layers x pixel/fourier x 2 filters
  assert r["filters_objective_increased"] == r["filters_visualised"]
  assert r["logit_airplane_gain"] > 0 and r["logit_automobile_gain"] > 0
  assert r["occlusion_positions"] == 14 * 14  # (32 - 6) // 2 + 1 per side
  assert r["ig_completeness_error"] < 0.5  # 64 trapezoid steps on logits of about 10
  assert printed.count(" -> ") >= 14 and "integrated gradients sum" in printed
  assert {n for n, _ in result["figures"]} == {"filters_maximised.png", "logits_maximised.png",
                                                "attributions_0.png"}
  _check_figures(result, out)


# ---------------------------------------------------------------------------------- lesson 11

@pytest.mark.slow  # trains 3 epochs with feature maps of 256 images per epoch: ~30 s loaded
def test_features_during_training_snapshots_every_epoch(run_quick):
  result, out, printed = run_quick("features_during_training")
  r = result["results"]
  assert r["epochs"] == 3 and r["snapshots"] == 4  # before training + after each epoch
  for name in ("Conv_0", "Conv_1", "Conv_2", "Dense_0"):
    assert 0.0 <= r[f"dead_{name}_first"] <= 1.0 and 0.0 <= r[f"dead_{name}_last"] <= 1.0
  assert r["conv0_change_first_epoch"] > 0  # training moved the first layer
  assert 0.0 <= r["val_accuracy"] <= 1.0
  assert printed.count("validation accuracy") == 4 and "epoch  0:" in printed
  assert {n for n, _ in result["figures"]} == {"filters_per_epoch.png",
                                                "feature_maps_per_epoch.png",
                                                "dead_relu_accuracy.png"}
  _check_figures(result, out)


def test_your_own_images_trains_on_a_made_folder_with_class_names(run_quick):
  result, out, printed = run_quick("your_own_images")
  _check_figures(result, out)
  r = result["results"]
  assert (r["images"], r["skipped_files"], r["classes"]) == (48, 1, 4)
  assert r["train_images"] + r["validation_images"] == 48 and r["validation_images"] == 9
  assert "('circle', 'square', 'star', 'triangle')" in printed
  assert "validation accuracy after 2 epochs" in printed
  formats = {p.suffix for p in (out / "my_images").rglob("*.*")}
  assert {".png", ".jpg", ".bmp", ".gif", ".webp", ".txt"} <= formats
