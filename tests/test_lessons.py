"""The lessons (experiments/lessons): each runs with ``quick=True``, prints and returns the
lecture's numbers (asserted here exactly), and writes non-blank figures and an ``index.md``.

Every lesson is run once per test session (a module-scoped cache), then each test looks at one
part of what it returned.
"""

import contextlib
import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from experiments import lessons as lessons_pkg

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_quick(tmp_path_factory):
  cache: dict = {}

  def get(name: str) -> tuple[dict, pathlib.Path, str]:
    """``(returned dict, output folder, what it printed)`` of ``name`` run quick, once."""
    if name not in cache:
      out = tmp_path_factory.mktemp(name)
      printed = io.StringIO()
      with contextlib.redirect_stdout(printed):
        result = lessons_pkg.run_lesson(name, out, quick=True)
      cache[name] = (result, out, printed.getvalue())
    return cache[name]

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

def test_conv_by_hand_prints_the_lecture_results(run_quick):
  result, out, printed = run_quick("conv_by_hand")
  r = result["results"]
  assert r["two_d_sum"] == 15
  assert r["convolve2d_ones_sum"] == 32  # 12 border ones + 9 twos + ... of the 5x5 full result
  assert r["dense_weights_1000x1000"] == 10 ** 12
  assert r["conv3x3_64_params"] == 640
  assert r["patches_vs_conv_max_abs_diff"] < 1e-4
  assert r["pool_max_sum"] == 12 and r["pool_sum_sum"] == 9 and r["pool_L1_sum"] == 27
  np.testing.assert_allclose(r["pool_L2_sum"], np.sqrt(21) + np.sqrt(14) + 3 + np.sqrt(27),
                             rtol=1e-6)
  for line in ("[-1  0 -1  2 -1  1]", "[-1  0 -1  2 -1]", "[ 0 -1  2 -1]", "[-3  2  2  2  1]",
               "[[4, 4], [4, 3]], sum 15", "[[1 1 1 1 0]\n [1 2 2 2 1]", "1e+12"):
    assert line in printed, line
  _check_figures(result, out)


# ---------------------------------------------------------------------------------- lesson 3

def test_shapes_answers_the_quizzes(run_quick):
  result, out, printed = run_quick("shapes")
  r = result["results"]
  assert r["quiz_flatten_28x28"] == 784
  assert (r["quiz_130_final_h"], r["quiz_130_final_c"]) == (16, 20)
  assert r["quiz_pool_by_4_out"] == 32
  assert r["tutorial_cnn_params"] == 122_570
  assert r["tutorial_cnn_512_params"] == 586_250
  assert r["output_size_cases_checked"] == 324 and r["param_count_cases_checked"] == 48
  assert r["padding_table_rows"] == 12
  assert "MaxPool(2, 2)                -> (16, 16, 20)" in printed
  assert "Total params: 122,570" in printed and "Total params: 586,250" in printed
  _check_figures(result, out)


# ---------------------------------------------------------------------------------- lesson 4

def test_edge_filters_finds_the_horizontal_edge_kernel(run_quick):
  result, out, printed = run_quick("edge_filters")
  r = result["results"]
  assert r["quiz_answer_is_a"] is True
  assert r["quiz_a_horizontal"] > 0 and r["quiz_a_vertical"] == 0
  assert r["quiz_b_horizontal"] == 0 and r["quiz_b_vertical"] > 0
  assert 0.3 < r["uint8_negative_edges_lost_fraction"] < 0.7
  assert r["edge_top_row_zeros"] > 2 * r["edge_top_row_extend"]
  assert "-> kernel a (Sobel-y)" in printed
  _check_figures(result, out)


# ---------------------------------------------------------------------------------- lesson 1

def test_photo_walk_stages(run_quick, tmp_path_factory, monkeypatch):
  monkeypatch.setenv("JAXCNN_LESSONS_CACHE", str(tmp_path_factory.mktemp("cache")))
  result, out, printed = run_quick("photo_walk")
  r = result["results"]
  assert (r["input_h"], r["input_w"]) == (150, 128)  # 512x600 photo, shorter side to 128
  assert (r["pooled_h"], r["pooled_w"]) == (75, 64)
  assert r["flat_features"] == 75 * 64 * 5
  assert abs(r["softmax_sum"] - 1) < 1e-6
  assert r["dropped_maps"] >= 1 and abs(r["dropout_scale"] - 4 / 3) < 1e-5
  assert printed.count("kernel ") >= 5 and "sum = 1.000000" in printed
  # The trained half: input, 3 x (pre-activation, ReLU), 2 pools, flatten, dense pre/post,
  # logits, softmax: 14 stages.
  assert r["trained_stages"] == 14 and abs(r["trained_softmax_sum"] - 1) < 1e-5
  for line in ("Conv_0/pre_activation  shape (1, 30, 30, 32)", "MaxPool_1              shape "
               "(1, 6, 6, 64)", "Flatten_0              shape (1, 1024)",
               "Dense_1                shape (1, 10)"):
    assert line in printed, line
  assert "trained_walk.png" in [n for n, _ in result["figures"]]
  _check_figures(result, out)


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

@pytest.mark.slow  # trains twice-compiled steps and draws five figures: ~25 s of CPU
def test_cifar10_cnn_quick(run_quick, tmp_path_factory, monkeypatch):
  monkeypatch.setenv("JAXCNN_LESSONS_CACHE", str(tmp_path_factory.mktemp("cache")))
  result, out, printed = run_quick("cifar10_cnn")
  r = result["results"]
  assert r["epochs"] == 2
  assert 0.0 <= r["val_accuracy"] <= 1.0
  assert abs(np.mean([r[f"accuracy_{c}"] for c in lessons_pkg.cifar10_cnn.CLASSES])
             - r["val_accuracy"]) < 0.1  # 256 synthetic images: classes nearly balanced
  assert "I think this is a " in printed and "trained a net" in printed
  names = [n for n, _ in result["figures"]]
  for name in ("train_grid.png", "curves.png", "confusion.png", "filters_Conv_0.png",
               "filters_Conv_2.png", "feature_maps_Conv_0.png", "feature_maps_Conv_2.png"):
    assert name in names
  _check_figures(result, out)
  # A second run loads the cached net instead of retraining.
  again = lessons_pkg.run_lesson("cifar10_cnn", tmp_path_factory.mktemp("again"), quick=True)
  assert again["results"]["val_accuracy"] == r["val_accuracy"]


# ---------------------------------------------------------------------------------- lesson 6

def test_mnist_mlp_saves_the_best_and_tests_it(run_quick, tmp_path_factory, monkeypatch):
  monkeypatch.setenv("JAXCNN_LESSONS_CACHE", str(tmp_path_factory.mktemp("cache")))
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
  assert "loaded model_best.msgpack (epoch" in printed
  assert {n for n, _ in result["figures"]} >= {"curves.png", "predictions.png"}
  _check_figures(result, out)


# ---------------------------------------------------------------------------------- lesson 7

@pytest.mark.slow  # two nets trained and 66 shifted test sets: ~40 s of CPU
def test_mlp_vs_cnn_shift_table(run_quick, tmp_path_factory, monkeypatch):
  monkeypatch.setenv("JAXCNN_LESSONS_CACHE", str(tmp_path_factory.mktemp("cache")))
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
def test_augmentation_compares_both_nets(run_quick, tmp_path_factory, monkeypatch):
  monkeypatch.setenv("JAXCNN_LESSONS_CACHE", str(tmp_path_factory.mktemp("cache")))
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
def test_what_cnns_learn(run_quick, tmp_path_factory, monkeypatch):
  monkeypatch.setenv("JAXCNN_LESSONS_CACHE", str(tmp_path_factory.mktemp("cache")))
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
