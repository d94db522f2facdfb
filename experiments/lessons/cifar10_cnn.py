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

Measured (full run on the JPEG copy, seed 0, 1 run): 973 s on a 2-core CPU shared with another
lesson run and other users (405-665 training images/s). Validation accuracy 69.12% after 10
epochs (loss 1.0274; training accuracy 82.8%); the validation loss was lowest after epoch 5
(0.8400, accuracy 70.5%) and rose from there while the training loss kept falling: the net
overfits from about epoch 6. Per class from 48.6% (cat) to 82.8% (automobile); 1,544 of 5,000
validation images misclassified. The README's row for the same recipe through
``experiments.train`` measured 68.9%.
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from experiments.lessons import _common
from jaxcnn import inspect, metrics, plots
from jaxcnn.models import get_model

TITLE = "The CIFAR-10 CNN: train the tutorial net, curves, filters, feature maps, mistakes"
LESSON = 5
TRAINS = True
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


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  model, params, history, (x_val, y_val), (x_train, y_train), cached = trained(
      quick, seed, image_folder)
  print(f"tutorial_cnn: {'loaded the cached' if cached else 'trained a'} net "
        f"({len(history['loss'])} epochs, {len(x_train):,} training images)")

  fig = plots.image_grid(_common.denormalise(x_train[:25], "cifar10"),
                         [CLASSES[int(y)] for y in y_train[:25]], ncols=5)
  _common.save(fig, out, "train_grid.png",
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

  # Trained filters, one figure per conv layer: layer 1 as RGB images, deeper layers as
  # filter x input-channel panels.
  convs = [k for k in sorted(params) if k.startswith("Conv")]
  for n, name in enumerate(convs):
    k = np.asarray(params[name]["kernel"])  # [3, 3, C_in, C_out]
    fig = plots.filter_grid(k, max_filters=32 if k.shape[2] == 3 else 12, max_channels=8,
                            ncols=8 if k.shape[2] == 3 else None,
                            title=f"{name} kernel {tuple(k.shape)}")
    _common.save(fig, out, f"filters_{name}.png",
                 "The trained 3x3 filters of the first conv layer as colour images (grey = 0). "
                 "After 10 epochs of Adam from a random start only some show a clear colour or "
                 "a light-dark edge; most still look like noise, because the first layer moves "
                 "little from its initial values (lesson 11 shows the change per epoch)."
                 if n == 0 else
                 f"{name}'s trained filters, one row per filter and one column per input "
                 "channel (red +, blue -). Deeper filters combine the previous layer's maps, "
                 "so they are hard to read directly: the next lessons look at what they "
                 "respond to instead.", figures)

  maps = inspect.feature_maps(model, {"params": params}, x_val[i:i + 1])
  fig = plots.image_grid(_common.denormalise(x_val[i:i + 1], "cifar10"),
                         [f"validation image {i}: {CLASSES[y_val[i]]}"], cell=2.6)
  _common.save(fig, out, "feature_maps_image.png",
               "The validation image whose feature maps follow.", figures)
  for name in convs:
    m = np.asarray(maps[name][0])
    fig = plots.feature_map_grid(m, max_maps=32, ncols=8,
                                 title=f"{name} output (after ReLU) for the {CLASSES[y_val[i]]}")
    _common.save(fig, out, f"feature_maps_{name}.png",
                 f"The {CLASSES[y_val[i]]}'s feature maps after {name} (first 32 channels, "
                 "each on its own scale; 'const' marks a map that is 0 everywhere). "
                 + ("The first layer's maps still look like the image (edges, colours)."
                    if name == convs[0] else "Each deeper layer is smaller and more abstract."),
                 figures)

  wrong = np.flatnonzero(pred != y_val)
  results["misclassified"] = int(len(wrong))
  print(f"misclassified: {len(wrong):,} of {len(y_val):,}")
  shown = wrong[:20]
  if len(shown):
    fig = plots.image_grid(_common.denormalise(x_val[shown], "cifar10"),
                           [f"{CLASSES[y_val[j]]}\n-> {CLASSES[pred[j]]}" for j in shown],
                           ncols=5)
    _common.save(fig, out, "misclassified.png",
                 "The first misclassified validation images (up to 20), 'true -> predicted'. "
                 "Many mistakes are understandable (an odd viewpoint, clutter, a similar class).",
                 figures)
  results["epochs"] = len(history["loss"])
  return {"figures": figures, "results": results}
