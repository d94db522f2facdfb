"""Lesson 9, stride, padding, 1x1 convs and global pooling: four ways to shrink a CIFAR-10 net.

    python -m experiments.lessons stride_padding [--quick] \\
        [--image-folder ../shared/data/cifar10_jpeg_train.tar.gz]

Four nets, one table (shapes, parameters, MACs, validation accuracy):

* ``pooled``: the Keras tutorial CNN (``tutorial_cnn``): 3x3 convs, 2x2 max pooling, Flatten;
* ``stridenet``: no pooling, stride-2 3x3 convs with ``'SAME'`` padding (32 -> 16 -> 8 -> 4);
* ``stridenet_gap``: the same with a global-average-pooling head instead of Flatten;
* ``pooled_1x1``: the tutorial CNN with a 1x1 conv shrinking 64 channels to 16 before Flatten.

Full run: each net trained with Adam 1e-3, batch 64, for 3 epochs on ``train[:45000]`` of the
CIFAR-10 JPEG copy, validated on ``train[45000:]``; ``--quick``: 1 epoch on 256 synthetic
images. The printed shapes and parameter counts are exact (asserted); the accuracies are what
the run measured (not asserted: a short run on a CPU).

Measured (full run, seed 0, 2026-12-01, 2-core AMD EPYC, 263 s with the machine partly shared;
``python -m experiments.lessons stride_padding --image-folder ../shared/data/cifar10_jpeg_train.tar.gz``):

    net              params       MACs  last feature map    val acc
    pooled          122,570  4,548,608  (4, 4, 64)           0.6696
    stridenet       113,738  2,600,960  (4, 4, 128)          0.6554
    stridenet_gap    94,538  2,581,760  (128,)               0.5538
    pooled_1x1       74,458  4,515,840  (4, 4, 16)           0.6442

Strided convs instead of pooling cost 1.4 points for 43% fewer MACs; the 1x1 conv removes 39% of
the parameters for 2.5 points; the global-average-pool head, with 17% fewer parameters than
StrideNet, is 10 points behind after 3 epochs: averaging away where a feature fired leaves the
10-way head little to work with this early in training (one seed, a short run: a trend to
check, not a ranking).
"""

from __future__ import annotations

import pathlib

import numpy as np

from experiments.lessons import _common
from jaxcnn import layers as L
from jaxcnn import inspect
from jaxcnn.models import get_model

TITLE = "Stride, padding, 1x1 convs and global pooling: shapes, parameters and accuracy"
LESSON = 9
TRAINS = True


def nets() -> dict:
  pooled_1x1 = L.Sequential([
      L.Conv(32, 3, activation="relu"), L.MaxPool(2),
      L.Conv(64, 3, activation="relu"), L.MaxPool(2),
      L.Conv(64, 3, activation="relu"),
      L.Conv(16, 1, activation="relu"),      # 1x1: 64 -> 16 channels, same 4x4 grid
      L.Flatten(), L.Dense(64, activation="relu"), L.Dense(10)])
  return {
      "pooled": get_model("tutorial_cnn"),
      "stridenet": get_model("stridenet"),
      "stridenet_gap": get_model("stridenet", head="gap"),
      "pooled_1x1": pooled_1x1,
  }


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Prints the table and draws accuracy against parameters into ``out``."""
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  if not quick and image_folder is None:
    print("note: no --image-folder; CIFAR-10 comes from tfds (needs a download or a prepared "
          "copy)")
  train_xy = _common.load_split("cifar10", "train[:45000]", image_folder=image_folder,
                                quick=quick, quick_size=256, seed=seed)
  val_xy = _common.load_split("cifar10", "train[45000:]", image_folder=image_folder,
                              quick=quick, quick_size=128, seed=seed)
  epochs = 1 if quick else 3
  rows = []
  for name, model in nets().items():
    s = inspect.summary(model, (1, 32, 32, 3), print_fn=None)
    convs = [r for r in s.rows if r.layer_type in ("Conv", "MaxPool", "GlobalAvgPool")]
    last_map = convs[-1].output_shape if convs else ()
    hist = _common.train(model, train_xy, val_xy, epochs=epochs, batch_size=64, seed=seed)
    acc = float(hist["val_accuracy"][-1])
    rows.append((name, s.total_params, s.total_macs, last_map, acc))
    results[f"{name}_params"] = s.total_params
    results[f"{name}_val_accuracy"] = acc
  # Parameter counts by hand, K*F*F*D_in + K per conv and in*out + out per dense layer:
  convs_pooled = (3 * 3 * 3 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (3 * 3 * 64 * 64 + 64)
  convs_stride = (3 * 3 * 3 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (3 * 3 * 64 * 128 + 128)
  expected = {
      "pooled": convs_pooled + (4 * 4 * 64 * 64 + 64) + (64 * 10 + 10),         # 122,570
      "stridenet": convs_stride + (4 * 4 * 128 * 10 + 10),                      # 113,738
      "stridenet_gap": convs_stride + (128 * 10 + 10),                          # 94,538
      "pooled_1x1": convs_pooled + (64 * 16 + 16) + (4 * 4 * 16 * 64 + 64) + (64 * 10 + 10),
  }
  for name, params, *_ in rows:
    assert params == expected[name], (name, params)
  data = ("synthetic images (quick)" if quick else
          "CIFAR-10 (JPEG copy): trained on train[:45000], validated on train[45000:]")
  print(f"{'net':14} {'params':>8} {'MACs':>10}  {'last feature map':18} "
        f"{'val acc':>8}   ({epochs} epoch(s); {data})")
  for name, params, macs, last_map, acc in rows:
    print(f"{name:14} {params:8,} {macs:10,}  {str(last_map[1:]):18} {acc:8.4f}")
  plot_accuracy_vs_params(rows, epochs, data, out, figures)
  results["epochs"] = epochs
  return {"figures": figures, "results": results}


def plot_accuracy_vs_params(rows, epochs: int, data: str, out: pathlib.Path,
                            figures: list) -> None:
  """Validation accuracy against parameters, one marker per net (area: MACs per image)."""
  import matplotlib.ticker as mticker  # pylint: disable=g-import-not-at-top
  fig = _common.new_figure(7.5, 4.5)
  ax = fig.subplots()
  for name, params, macs, _, acc in rows:
    ax.scatter(params, 100 * acc, s=macs / 4e4, alpha=0.7)
    ax.annotate(f"{name}\n{macs / 1e6:.2f}M MACs/image", (params, 100 * acc),
                textcoords="offset points", xytext=(9, 4), fontsize=9)
  ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v / 1e3:,.0f}k"))
  ax.set_xlabel("parameters")
  ax.set_ylabel("validation accuracy (%)")
  ax.set_title(f"after {epochs} epoch(s) of Adam, one seed (marker area: MACs per image)\n{data}",
               fontsize=10)
  ax.grid(True, alpha=0.3)
  ax.margins(x=0.3, y=0.2)
  _common.save(fig, out, "params_vs_accuracy.png",
               "Each net's validation accuracy against its parameter count (marker area: MACs "
               "per image). Strided convs replace pooling at a lower compute cost; a global "
               "average pool or a 1x1 conv in front of the dense head removes most of the "
               "head's weights. Compare how much accuracy each saving costs.", figures)
