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
