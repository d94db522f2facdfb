"""Lesson 5, the TensorFlow tutorial notebook "Convolutional Neural Network (CNN)" on CIFAR-10:
its Keras Sequential CNN with a Dense(512) head, trained for 10 epochs, its accuracy curve, its
evaluation and its "I think this is a ..." prediction.

    python -m experiments.lessons cifar10_cnn --image-folder ../shared/data/cifar10_jpeg_train.tar.gz
    python -m experiments.lessons cifar10_cnn --quick

The notebook's net is jaxcnn's ``tutorial_cnn_512`` (Conv 32-64-64, 3x3, relu, 2x2 max
pooling, Flatten, Dense(512, relu), Dense(10): 586,250 parameters, Keras' count exactly; its
softmax is in the loss), trained as the notebook does: Adam (Keras' default learning rate
1e-3), sparse categorical cross-entropy, batch 32 (Keras' default), 10 epochs, pixels scaled to
[0, 1] (``train_images / 255.0``). The data differs where it must: the notebook trains on the
50,000 training images and validates on the 10,000 test images; the offline CIFAR-10 copy
(JPEG, about quality 75) holds the training split only, so this lesson trains on
``train[:45000]`` and validates on ``train[45000:]`` (5,000 images). The trained parameters
are cached under ``~/.cache/jaxcnn/lessons`` keyed by this config. ``--quick``: 2 epochs on 512
synthetic images.

Cell by cell:

* ``plt.imshow(train_images[1]); print(train_labels[1])`` -> ``[9]`` (a truck): the official
  second training image, found in the copy by its class and rank (asserted: label 9);
* the 5x5 grid of ``train_images[0..24]`` with class names: the official first 25 images;
* ``model.summary()`` of the convolutional base (56,320 parameters, last output (None, 4, 4,
  64)) and of the whole net (586,250), named ``tutorial_cnn_512`` (the notebook's Keras
  ``sequential``), asserted. The notebook's prose says the (3, 3, 64) output flattens to 576:
  that sentence comes from the tutorial's MNIST version (28x28x1 inputs); its own code, on
  32x32x3, gives (4, 4, 64) -> 1024, which the lesson prints, together with the 28x28x1 case
  that does give 576;
* ``model.fit(..., epochs=10, validation_data=...)``: each epoch's loss and accuracy;
* the accuracy plot (``accuracy``, ``val_accuracy``, y from 0.5 to 1, legend lower right);
* ``model.evaluate`` and ``print(test_acc)`` (here on the validation split): measured, not
  asserted (another split; Keras' random initialisation cannot be reproduced in JAX);
* ``I think this is a <class>`` for a random image (the notebook's ``random.randrange`` is
  unseeded; here the index comes from ``--seed``), drawn with its true class.

Beyond the notebook: the confusion matrix, each class's accuracy and the misclassified images.
"""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np

from experiments.lessons import _common
from jaxcnn import functional as F
from jaxcnn import inspect, metrics, plots
from jaxcnn import layers as L
from jaxcnn.models import get_model

TITLE = "The CIFAR-10 CNN: the TensorFlow tutorial's net trained, curves, 'I think this is a ...'"
LESSON = 5
TRAINS = True
CLASSES = _common.CIFAR10_CLASSES
MODEL = "tutorial_cnn_512"


def config(quick: bool, seed: int, image_folder: str | None) -> dict:
  return _common.cifar_config("cifar10_tf_tutorial_cnn", MODEL, 10, quick, seed, image_folder)


def trained(quick: bool, seed: int, image_folder: str | None):
  """``(model, params, history, (x_val, y_val), (x_train, y_train), was_cached)``; images are
  float32 in [0, 1], the net's input."""
  return _common.trained_cifar_net(config(quick, seed, image_folder), quick, seed, image_folder)


def summaries(results: dict) -> None:
  """The notebook's two ``model.summary()`` calls, and the 576 of its prose."""
  base = L.Sequential([L.Conv(32, 3, activation="relu"), L.MaxPool(2),
                       L.Conv(64, 3, activation="relu"), L.MaxPool(2),
                       L.Conv(64, 3, activation="relu")])
  s = inspect.summary(base, (1, 32, 32, 3), name=f"{MODEL} (convolutional base)")
  assert s.total_params == 56_320 and s.rows[-1].output_shape == (1, 4, 4, 64), s
  full = inspect.summary(get_model(MODEL), (1, 32, 32, 3), name=MODEL)
  assert full.total_params == 586_250, full.total_params
  flat = next(r for r in full.rows if r.layer_type == "Flatten")
  mnist = inspect.summary(base, (1, 28, 28, 1), print_fn=None)
  print(f"the notebook's prose: '(3, 3, 64) outputs were flattened into vectors of shape (576)'"
        f"; its code on 32x32x3 gives {s.rows[-1].output_shape[1:]} -> {flat.output_shape[1]} "
        f"(above); (3, 3, 64) -> 576 is the tutorial's MNIST version, 28x28x1 inputs: "
        f"{mnist.rows[-1].output_shape[1:]}")
  assert flat.output_shape == (1, 1024) and mnist.rows[-1].output_shape == (1, 3, 3, 64)
  results["base_params"] = s.total_params
  results["params"] = full.total_params


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  model, params, history, (x_val, y_val), (x_train, y_train), cached = trained(
      quick, seed, image_folder)
  cfg = config(quick, seed, image_folder)
  data = "synthetic images (quick)" if quick else "the CIFAR-10 JPEG copy"

  # --- plt.imshow(train_images[1]); print(train_labels[1]); the 5x5 grid
  order = _common.official_order(25, quick=quick)
  labels25 = [int(y_train[i]) for i in order]
  if not quick:  # the copy's class folders and ranks put the official images where expected
    assert tuple(labels25) == _common.CIFAR10_FIRST_LABELS, labels25
  print(f"print(train_labels[1]) -> [{labels25[1]}]   ({CLASSES[labels25[1]]}; the notebook "
        "prints [9], a truck)")
  results["train_labels_1"] = labels25[1]
  fig = plots.image_grid(x_train[order[1]][None],
                         [f"train_images[1]: label [{labels25[1]}], {CLASSES[labels25[1]]}"],
                         cell=3.2)
  _common.save(fig, out, "train_image_1.png",
               "plt.imshow(train_images[1]): the official second training image, label 9, "
               "a truck" + (" (here a synthetic stand-in: --quick)" if quick else "") + ".",
               figures)
  fig = plots.image_grid(x_train[order], [CLASSES[y] for y in labels25], ncols=5, cell=1.9)
  _common.save(fig, out, "train_grid.png",
               "The notebook's 5x5 grid: train_images[0..24] with their class names, the "
               "official first 25 training images (frog, truck, truck, deer, automobile, ...)"
               + (" (here synthetic stand-ins: --quick)" if quick else "")
               + ". At 32x32 pixels even a person needs a moment for some of them.", figures)

  # --- model.summary() twice
  summaries(results)

  # --- compile and fit
  print(f"model.fit(train_images, train_labels, epochs={cfg['epochs']}, validation_data=...): "
        f"{'loaded the cached' if cached else 'trained a'} net ({len(x_train):,} training "
        f"images of {data}, Adam {cfg['learning_rate']}, batch {cfg['batch_size']})")
  for e, (a, va, l, vl) in enumerate(zip(history["accuracy"], history["val_accuracy"],
                                         history["loss"], history["val_loss"]), 1):
    print(f"  Epoch {e}/{cfg['epochs']}: loss {l:.4f} - accuracy {a:.4f} - val_loss {vl:.4f} - "
          f"val_accuracy {va:.4f}")
  fig = plots.plot_metric(history, "accuracy", ylim=(0.5, 1), legend_loc="lower right",
                          title=f"{MODEL}, {data}")
  _common.save(fig, out, "accuracy.png",
               "The notebook's plot: accuracy and val_accuracy per epoch, y from 0.5 to 1 "
               "(widened only if a value falls outside), legend lower right. Where "
               "val_accuracy levels off while accuracy keeps rising, the net has started to "
               "overfit.", figures)

  # --- evaluate; print(test_acc)
  logits = _common.logits(model, params, x_val)
  pred = logits.argmax(-1)
  loss = float(jnp.mean(F.cross_entropy(jnp.asarray(logits), jnp.asarray(y_val))))
  acc = float(np.mean(pred == y_val))
  np.testing.assert_allclose(acc, history["val_accuracy"][-1], atol=2e-3)
  print(f"test_loss, test_acc = model.evaluate(...) -> loss: {loss:.4f} - accuracy: {acc:.4f}"
        f"   (the validation split: the copy has no test split)")
  print(f"print(test_acc) -> {acc}")
  results.update(val_accuracy=acc, val_loss=loss, train_accuracy=history["accuracy"][-1])

  # --- "I think this is a ..."
  i = int(np.random.default_rng(seed).integers(len(x_val) - 1))  # random.randrange(n - 1)
  print(f"iEvalIx = {i}: I think this is a {CLASSES[pred[i]]}   (it is a {CLASSES[y_val[i]]})")
  fig = plots.image_grid(x_val[i][None], [f"I think this is a {CLASSES[pred[i]]}\n"
                                          f"(validation image {i}: a {CLASSES[y_val[i]]})"],
                         cell=3.2)
  fig.axes[0].title.set_color("#2a7d2a" if pred[i] == y_val[i] else "#c00000")
  _common.save(fig, out, "i_think_this_is_a.png",
               "The notebook's last cell: a random image and the net's answer, 'I think this "
               "is a ...' (green when right, red when wrong).", figures)
  results["i_think_index"] = i
  results["i_think_class"] = CLASSES[int(pred[i])]

  # --- beyond the notebook: per class, confusion, mistakes
  conf = np.asarray(metrics.confusion_matrix(np.asarray(y_val), pred, 10))
  plots.plot_confusion(conf, CLASSES, out / "confusion.png",
                       title="validation confusion matrix")
  figures.append(("confusion.png", "Beyond the notebook: rows are the true class, columns the "
                  "prediction; the diagonal is each class's accuracy. Look for the bright "
                  "off-diagonal cells: cat/dog and automobile/truck are the classic confusions."))
  per_class = metrics.per_class_accuracy(conf)
  print("per-class accuracy: " + ", ".join(f"{c} {a:.2f}" for c, a in zip(CLASSES, per_class)))
  for c, a in zip(CLASSES, per_class):
    results[f"accuracy_{c}"] = float(a)
  wrong = np.flatnonzero(pred != y_val)
  results["misclassified"] = int(len(wrong))
  print(f"misclassified: {len(wrong):,} of {len(y_val):,}")
  shown = wrong[:20]
  if len(shown):
    fig = plots.image_grid(x_val[shown],
                           [f"{CLASSES[y_val[j]]}\n-> {CLASSES[pred[j]]}" for j in shown],
                           ncols=5)
    _common.save(fig, out, "misclassified.png",
                 "Beyond the notebook: the first misclassified validation images (up to 20), "
                 "'true -> predicted'. Many mistakes are understandable (an odd viewpoint, "
                 "clutter, a similar class).", figures)
  results["epochs"] = len(history["loss"])
  return {"figures": figures, "results": results}
