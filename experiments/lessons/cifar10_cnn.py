"""Lesson 5, the CIFAR-10 CNN (the TensorFlow tutorial and the Keras filters notebook).

    python -m experiments.lessons cifar10_cnn --image-folder ../shared/data/cifar10_jpeg_train.tar.gz
    python -m experiments.lessons cifar10_cnn --quick

The Keras tutorial CNN (``tutorial_cnn``, 122,570 parameters) trained as the tutorial does
(Adam 1e-3, batch 32, 10 epochs, no augmentation) on ``train[:45000]`` of the CIFAR-10 JPEG copy,
validated on ``train[45000:]`` (5,000 images, 500 per class). The trained parameters are cached
under ``~/.cache/jaxcnn/lessons`` keyed by this config, so later runs (and the lessons that reuse
this net) do not retrain. ``--quick``: 2 epochs on 512 synthetic images, in seconds.

Prints the final validation accuracy and loss, "I think this is a <class>" for one random
validation image, the per-class accuracy and the number of misclassified images; draws a 5x5
grid of training images with class names, the loss and accuracy curves (train and validation),
the trained filters of every conv layer, the feature maps of every conv layer for one image, the
confusion matrix and a grid of misclassified images.

Measured (full run): not yet in this revision; the README's course-recipe row (68.9% validation
accuracy after 10 epochs, same recipe through ``experiments.train``) is the reference.
"""

from __future__ import annotations

import pathlib

import flax.linen as nn
import jax
import numpy as np

from experiments.lessons import _common
from jaxcnn import layers as L
from jaxcnn import metrics, plots
from jaxcnn.models import get_model

TITLE = "The CIFAR-10 CNN: train the tutorial net, curves, filters, feature maps, mistakes"
LESSON = 5
CLASSES = _common.CIFAR10_CLASSES


def config(quick: bool, seed: int, image_folder: str | None) -> dict:
  return {"name": "cifar10_tutorial_cnn", "model": "tutorial_cnn", "epochs": 2 if quick else 10,
          "batch_size": 32, "learning_rate": 1e-3, "seed": seed, "quick": quick,
          "train_split": "train[:45000]", "val_split": "train[45000:]",
          "data": "synthetic" if quick else str(image_folder or "tfds")}


def trained(quick: bool, seed: int, image_folder: str | None):
  """``(model, params, history, (x_val, y_val), (x_train, y_train), was_cached)``."""
  cfg = config(quick, seed, image_folder)
  train_xy = _common.load_split("cifar10", cfg["train_split"], image_folder=image_folder,
                                quick=quick, seed=seed)
  val_xy = _common.load_split("cifar10", cfg["val_split"], image_folder=image_folder,
                              quick=quick, quick_size=256, seed=seed)
  model = get_model(cfg["model"])

  def train_fn():
    h = _common.train(model, train_xy, val_xy, epochs=cfg["epochs"],
                      batch_size=cfg["batch_size"], seed=seed,
                      learning_rate=cfg["learning_rate"], verbose=0 if quick else 1)
    return jax.device_get(h.state.params), {k: [float(v) for v in vs] for k, vs in h.items()}

  params, history, cached = _common.cached_train(cfg, train_fn)
  return model, params, history, val_xy, train_xy, cached


def image_grid(images, titles, out, name, caption, figures, *, cols: int = 5, colours=None):
  """Local stand-in for ``jaxcnn.plots.image_grid``: images with a title each."""
  rows = -(-len(images) // cols)
  fig = _common.new_figure(1.9 * cols, 2.0 * rows)
  axes = np.atleast_2d(fig.subplots(rows, cols))
  for i, ax in enumerate(axes.ravel()):
    ax.axis("off")
    if i < len(images):
      img = images[i]
      ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray",
                interpolation="nearest")
      ax.set_title(titles[i], fontsize=9, color="black" if colours is None else colours[i])
  _common.save(fig, out, name, caption, figures)


def conv_outputs(model, params, x):
  """Every Conv layer's output for ``x`` (local stand-in for ``jaxcnn.inspect.feature_maps``)."""
  _, state = model.apply({"params": params}, x, capture_intermediates=lambda m, _: isinstance(
      m, L.Conv), mutable=["intermediates"])
  inter = state["intermediates"]
  return {name: v["__call__"][0] for name, v in sorted(inter.items()) if "__call__" in v}


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  model, params, history, (x_val, y_val), (x_train, y_train), cached = trained(
      quick, seed, image_folder)
  print(f"tutorial_cnn: {'loaded the cached' if cached else 'trained a'} net "
        f"({len(history['loss'])} epochs, {len(x_train):,} training images)")

  image_grid([_common.denormalise(x, "cifar10") for x in x_train[:25]],
             [CLASSES[int(y)] for y in y_train[:25]], out, "train_grid.png",
             "The first 25 training images with their class names (5x5, as in the TensorFlow "
             "tutorial). At 32x32 pixels even a person needs a moment for some of them.",
             figures)

  records = [{"epoch": i + 1, "train_loss": history["loss"][i],
              "train_accuracy": history["accuracy"][i], "eval_loss": history["val_loss"][i],
              "eval_accuracy": history["val_accuracy"][i]} for i in range(len(history["loss"]))]
  plots.plot_curves(records, out / "curves.png")
  figures.append(("curves.png", "Loss (left) and accuracy (right) per epoch, train and "
                  "validation. Where the validation loss turns up while the training loss "
                  "keeps falling, the net has started to overfit."))

  apply = jax.jit(lambda p, x: model.apply({"params": p}, x))
  logits = np.concatenate([np.asarray(apply(params, x_val[i:i + 500]))
                           for i in range(0, len(x_val), 500)])
  pred = logits.argmax(-1)
  acc = float(np.mean(pred == y_val))
  print(f"validation accuracy {acc:.4f} (final epoch's val_loss "
        f"{history['val_loss'][-1]:.4f}, val_accuracy {history['val_accuracy'][-1]:.4f})")
  np.testing.assert_allclose(acc, history["val_accuracy"][-1], atol=2e-3)
  results["val_accuracy"] = acc
  results["val_loss"] = history["val_loss"][-1]
  results["train_accuracy"] = history["accuracy"][-1]

  i = int(np.random.default_rng(seed).integers(len(x_val)))
  print(f"validation image {i}: I think this is a {CLASSES[pred[i]]} "
        f"(it is a {CLASSES[y_val[i]]})")

  conf = np.asarray(metrics.confusion_matrix(np.asarray(y_val), pred, 10))
  plots.plot_confusion(conf, CLASSES, out / "confusion.png",
                       title="validation confusion matrix")
  figures.append(("confusion.png", "Rows are the true class, columns the prediction; the "
                  "diagonal is each class's accuracy. Look for the bright off-diagonal cells: "
                  "cat/dog and automobile/truck are the classic confusions."))
  per_class = conf.diagonal() / np.maximum(conf.sum(1), 1)
  print("per-class accuracy: " + ", ".join(f"{c} {a:.2f}" for c, a in zip(CLASSES, per_class)))
  for c, a in zip(CLASSES, per_class):
    results[f"accuracy_{c}"] = float(a)

  # Trained filters: layer 1 as RGB tiles, later layers their first input channel.
  convs = [k for k in sorted(params) if k.startswith("Conv")]
  fig = _common.new_figure(12, 2.0 * len(convs))
  subfigs = fig.subfigures(len(convs), 1)
  for sf, name in zip(np.atleast_1d(subfigs), convs):
    k = np.asarray(params[name]["kernel"])  # [3, 3, C_in, C_out]
    n = min(32, k.shape[-1])
    axes = sf.subplots(2, 16)
    for j, ax in enumerate(axes.ravel()):
      ax.axis("off")
      if j >= n:
        continue
      if k.shape[2] == 3:
        tile = k[:, :, :, j]
        tile = (tile - tile.min()) / (np.ptp(tile) or 1.0)
        ax.imshow(tile, interpolation="nearest")
      else:
        lim = np.abs(k[:, :, 0, j]).max() or 1.0
        ax.imshow(k[:, :, 0, j], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    what = "RGB, min-max scaled per filter" if k.shape[2] == 3 else \
        "input channel 0, red + / blue -"
    sf.suptitle(f"{name}: kernel {tuple(k.shape)}; first {n} filters ({what})", fontsize=10)
  _common.save(fig, out, "filters.png",
               "The trained 3x3 filters of every conv layer. The first layer's (in colour) are "
               "colour blobs and oriented edges; deeper layers' filters are harder to read "
               "directly, which is why the next lessons look at what they respond to.", figures)

  maps = conv_outputs(model, params, x_val[i:i + 1])
  fig = _common.new_figure(12, 1.9 * len(maps) + 0.4)
  subfigs = fig.subfigures(len(maps), 1)
  for sf, (name, m) in zip(np.atleast_1d(subfigs), maps.items()):
    m = np.asarray(m[0])
    axes = sf.subplots(1, 9)
    axes[0].imshow(_common.denormalise(x_val[i], "cifar10"))
    axes[0].set_title(CLASSES[y_val[i]], fontsize=9)
    for j, ax in enumerate(axes[1:]):
      ax.imshow(m[:, :, j], cmap="magma", interpolation="nearest")
      ax.set_title(f"map {j}", fontsize=8)
    for ax in axes:
      ax.axis("off")
    sf.suptitle(f"{name} output {m.shape} (after ReLU), first 8 maps", fontsize=10)
  _common.save(fig, out, "feature_maps.png",
               "One validation image's feature maps after each conv layer (first 8 of each). "
               "The first layer's maps still look like the image (edges, colours); each deeper "
               "layer is smaller and more abstract.", figures)

  wrong = np.flatnonzero(pred != y_val)
  results["misclassified"] = int(len(wrong))
  print(f"misclassified: {len(wrong):,} of {len(y_val):,}")
  shown = wrong[:20]
  if len(shown):
    image_grid([_common.denormalise(x_val[j], "cifar10") for j in shown],
               [f"{CLASSES[y_val[j]]}\n-> {CLASSES[pred[j]]}" for j in shown], out,
               "misclassified.png",
               "The first misclassified validation images (up to 20), 'true -> predicted'. Many "
               "mistakes are understandable (an odd viewpoint, clutter, a similar class).",
               figures, colours=["#a40000"] * len(shown))
  results["epochs"] = len(history["loss"])
  return {"figures": figures, "results": results}
