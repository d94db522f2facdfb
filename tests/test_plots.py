"""Light tests of jaxcnn.plots: the PNGs are written, bad shapes are refused."""

import numpy as np
import pytest

from jaxcnn import plots


def test_curves_and_confusion_are_written(tmp_path):
  history = [{"epoch": e, "train_loss": 2.0 / e, "eval_loss": 2.1 / e,
              "train_accuracy": 0.3 * e, "eval_accuracy": None} for e in (1, 2, 3)]
  plots.plot_curves(history, tmp_path / "curves.png")
  cm = np.arange(9).reshape(3, 3)
  plots.plot_confusion(cm, ["a", "b", "c"], tmp_path / "confusion.png")
  for name in ("curves.png", "confusion.png"):
    data = (tmp_path / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
  assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "curves.png"]


def test_confusion_rejects_bad_shapes(tmp_path):
  with pytest.raises(ValueError, match=r"\(2, 3\)"):
    plots.plot_confusion(np.zeros((2, 3)), None, tmp_path / "c.png")
  with pytest.raises(ValueError, match="2 names"):
    plots.plot_confusion(np.zeros((3, 3)), ["a", "b"], tmp_path / "c.png")


from matplotlib.figure import Figure  # noqa: E402


def _png_ok(path, min_bytes=1000):
  data = path.read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes
  from PIL import Image
  with Image.open(path) as im:
    w, h = im.size
    assert 100 <= w <= 3000 and 100 <= h <= 3000, im.size
    arr = np.asarray(im.convert("L"))
  assert arr.std() > 5  # not blank


def test_every_plot_returns_a_figure_and_saves_only_with_a_path(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(6, 8, 8, 3)).astype(np.float32)
  made = {
      "curves": lambda p: plots.plot_curves([{"epoch": 1, "train_loss": 1.0}], p),
      "confusion": lambda p: plots.plot_confusion(np.eye(3) * 5 + 1, ["a", "b", "c"], p),
      "grid": lambda p: plots.image_grid(images, [f"i{i}" for i in range(6)], path=p),
      "gray": lambda p: plots.image_grid(rng.normal(size=(3, 8, 8)), ncols=3, path=p),
      "fmaps": lambda p: plots.feature_map_grid(rng.normal(size=(1, 6, 6, 10)), path=p),
      "rgb_filters": lambda p: plots.filter_grid(rng.normal(size=(3, 3, 3, 8)), path=p),
      "filters": lambda p: plots.filter_grid(rng.normal(size=(3, 3, 4, 5)), path=p),
      "overlay": lambda p: plots.attribution_overlay(
          images[0], {"a": rng.normal(size=(8, 8, 3)), "b": rng.uniform(size=(2, 2))}, path=p),
  }
  for name, make in made.items():
    assert isinstance(make(None), Figure), name
  assert list(tmp_path.iterdir()) == []
  for name, make in made.items():
    fig = make(tmp_path / f"{name}.png")
    assert isinstance(fig, Figure)
    _png_ok(tmp_path / f"{name}.png")


def test_plot_curves_accepts_fit_history_and_loop_records():
  from jaxcnn.train import History
  h = History(loss=[2.0, 1.0], accuracy=[0.3, 0.6], val_loss=[2.1, 1.4], val_accuracy=[0.2, 0.5])
  fig = plots.plot_curves(h)
  loss_ax, acc_ax = fig.axes
  assert [line.get_label() for line in loss_ax.get_lines()] == ["train", "eval"]
  np.testing.assert_array_equal(acc_ax.get_lines()[1].get_ydata(), [0.2, 0.5])
  np.testing.assert_array_equal(acc_ax.get_lines()[1].get_xdata(), [1, 2])
  with pytest.raises(ValueError, match=r"record 0 .* 'epoch'"):
    plots.plot_curves([{"loss": 1.0}])
  # Before: fit's `history.state` gave "'TrainState' object is not iterable" (no `history`).
  from jaxcnn.train import TrainState
  with pytest.raises(ValueError, match=r"^`history` \(a TrainState\) must be fit's History or "):
    plots.plot_curves(TrainState.__new__(TrainState))


def test_lesson_plots_refuse_bad_shapes():
  with pytest.raises(ValueError, match=r"\[H, W, C\].*maps\[0\]"):
    plots.feature_map_grid(np.zeros((2, 4, 4, 3)))
  with pytest.raises(ValueError, match=r"\[kh, kw, C_in, C_out\].*\(3, 3, 3\)"):
    plots.filter_grid(np.zeros((3, 3, 3)))
  with pytest.raises(ValueError, match="2 entries for 3 images"):
    plots.image_grid(np.zeros((3, 4, 4)), titles=["a", "b"])


def test_model_diagram_draws_a_box_per_layer_with_shapes(tmp_path):
  from jaxcnn.models import get_model
  fig = plots.model_diagram(get_model("tutorial_cnn"), (1, 32, 32, 3), path=tmp_path / "m.png")
  texts = [t.get_text() for t in fig.axes[0].texts]
  assert "Conv_0: Conv" in texts and "Dense_1: Dense" in texts and "input: InputLayer" in texts
  assert "(None, 30, 30, 32)" in texts and "(None, 1024)" in texts
  assert "122,570" in fig._suptitle.get_text()
  _png_ok(tmp_path / "m.png")


def test_epoch_axes_have_whole_number_ticks():
  """Two or three epochs must not be labelled 1.25, 1.5, ...: an epoch is a whole number."""
  h = {"loss": [2.0, 1.5, 1.0], "accuracy": [0.3, 0.5, 0.6], "val_loss": [2.1, 1.6, 1.4],
       "val_accuracy": [0.25, 0.45, 0.5]}
  for fig in (plots.plot_curves(h), plots.plot_metric(h, "loss")):
    for ax in fig.axes:
      fig.canvas.draw()
      ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
      assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_plot_metric_draws_keras_names_and_keeps_every_point_in_view():
  h = {"accuracy": [0.45, 0.7], "val_accuracy": [0.55, 0.65]}
  fig = plots.plot_metric(h, "accuracy", ylim=(0.5, 1), legend_loc="lower right")
  ax = fig.axes[0]
  assert [line.get_label() for line in ax.get_lines()] == ["accuracy", "val_accuracy"]
  lo, hi = ax.get_ylim()
  assert lo < 0.45 and hi == 1.0  # the notebook's [0.5, 1], widened to show 0.45
  assert plots.plot_metric(h, "accuracy", ylim=(0.4, 1)).axes[0].get_ylim() == (0.4, 1.0)
  with pytest.raises(ValueError, match="no 'loss' values"):
    plots.plot_metric(h, "loss")


def test_filter_grid_one_input_channel_per_filter_in_grey():
  k = np.arange(3 * 3 * 3 * 6, dtype=np.float32).reshape(3, 3, 3, 6)
  fig = plots.filter_grid(k, channel=0, ncols=3)
  images = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
  assert len(images) == 6 and images[0].get_cmap().name == "gray"
  np.testing.assert_array_equal(images[4].get_array(), k[:, :, 0, 4])
  with pytest.raises(ValueError, match=r"`channel` \(=3\) must be an input channel .*\[0, 3\)"):
    plots.filter_grid(k, channel=3)


def test_model_diagram_and_summary_carry_the_model_name():
  from jaxcnn import inspect
  from jaxcnn.models import get_model
  printed = []
  s = inspect.summary(get_model("tutorial_cnn_512"), (1, 32, 32, 3), print_fn=printed.append,
                      name="tutorial_cnn_512")
  assert s.model_name == "tutorial_cnn_512" and printed[0].startswith('Model: "tutorial_cnn_512"')
  assert inspect.summary(get_model("tutorial_cnn"), (1, 32, 32, 3),
                         print_fn=None).model_name == "TutorialCNN"
  fig = plots.model_diagram(get_model("tutorial_cnn"), (1, 32, 32, 3), name="tutorial_cnn")
  assert fig._suptitle.get_text() == "tutorial_cnn: 122,570 parameters"
  with pytest.raises(ValueError, match=r"`name` \(=''\) must be a non-empty string"):
    inspect.summary(get_model("tutorial_cnn"), (1, 32, 32, 3), print_fn=None, name="")
