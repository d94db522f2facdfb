"""Lesson 5b, the Keras notebook "Convolutional networks": its CIFAR-10 CNN (a functional Keras
model with a Dense(64) head) trained for 5 epochs, its curves, and its trained filters and
feature maps drawn layer by layer as the notebook draws them.

    python -m experiments.lessons filters_and_maps --image-folder ../shared/data/cifar10_jpeg_train.tar.gz
    python -m experiments.lessons filters_and_maps --quick

The notebook's net is jaxcnn's ``tutorial_cnn`` (Conv 32-64-64, 3x3, relu, 2x2 max pooling,
Flatten, Dense(64, relu), Dense(10): 122,570 parameters, Keras' count exactly; the final softmax
is in the loss), trained as the notebook does: Adam (Keras' default learning rate 1e-3), batch
32 (Keras' default), 5 epochs, pixels scaled to [0, 1] (``images / 255.0``). The data differs
where it must: the notebook trains on all 50,000 training images and validates on the 10,000
test images; the offline CIFAR-10 copy (JPEG, about quality 75) holds the training split only,
so this lesson trains on ``train[:45000]`` and validates on ``train[45000:]`` (5,000 images).
The trained parameters are cached under ``~/.cache/jaxcnn/lessons`` keyed by this config;
lessons 1 (``photo_walk``) and 10 (``what_cnns_learn``) reuse this net. ``--quick``: 2 epochs
on 512 synthetic images.

Cell by cell (the notebook prints or draws; the lesson prints or draws the same, beside it):

* ``train_images.shape, train_labels.shape``: the notebook's ``((50000, 32, 32, 3), (50000,
  1))`` beside this split's (45,000 images; labels a flat vector), ``test_images.shape``
  likewise; ``train_images[0]`` (the official first training image, a frog, found in the copy
  by its class and rank; its pixels are the JPEG copy's, about 30 dB PSNR from the original,
  so not bit-equal).
* the 5x5 grid of ``train_images[0..24]`` with class names: the official first 25 images
  (frog, truck, truck, deer, automobile, ...), the same pictures as the notebook's.
* ``model.summary()`` (named ``tutorial_cnn``; the notebook's is Keras' ``model``) and
  ``plot_model(model, show_shapes=True)``: shapes (None, 30, 30, 32) ... (None, 10), 122,570
  parameters (asserted).
* the accuracy and loss curves (``accuracy``/``val_accuracy``, ``loss``/``val_loss``) and
  ``accuracy: xx.xx%`` from the evaluation; these are measured, not asserted (another split,
  another random initialisation: PyTorch's or Keras' seeds cannot be reproduced in JAX).
* ``model.layers`` and ``model.layers[1].get_weights()[0].shape`` = ``(3, 3, 3, 32)``: jaxcnn
  stores conv kernels in the same ``[kh, kw, C_in, C_out]`` layout (asserted);
* the trained filters of the three conv layers, input channel 0 (red) of each in grey, in the
  notebook's grids (8 rows x 4 columns, then 8 x 8 and 8 x 8);
* ``model_short``: the three conv layers' outputs, (None, 30, 30, 32), (None, 13, 13, 64),
  (None, 4, 4, 64), 56,320 parameters (asserted);
* ``train_images[7]`` (the official eighth image, a horse) and its feature maps after each conv
  layer (after ReLU, as Keras' ``Conv2D(activation='relu')`` outputs them), in grey, in the
  notebook's grids (8 x 4, 8 x 8, 8 x 8).
"""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np

from experiments.lessons import _common
from jaxcnn import functional as F
from jaxcnn import inspect, metrics, plots

TITLE = "The Keras CIFAR-10 CNN's trained filters and feature maps, layer by layer"
LESSON = 5.5
TRAINS = True
CLASSES = _common.CIFAR10_CLASSES
MODEL = "tutorial_cnn"
# model.layers of the notebook's Keras model (index 0 is its InputLayer) -> jaxcnn's layer names.
KERAS_LAYERS = ("input_layer", "Conv_0", "MaxPool_0", "Conv_1", "MaxPool_1", "Conv_2",
                "Flatten_0", "Dense_0", "Dense_1")
CONV_LAYER_INDEX = (1, 3, 5)  # the notebook's conv_layer_index
GRIDS = {1: (8, 4), 3: (8, 8), 5: (8, 8)}  # (rows, columns) of its filter and map figures


def config(quick: bool, seed: int, image_folder: str | None) -> dict:
  return _common.cifar_config("cifar10_keras_cnn", MODEL, 5, quick, seed, image_folder)


def trained(quick: bool, seed: int, image_folder: str | None):
  """``(model, params, history, (x_val, y_val), (x_train, y_train), was_cached)``; images are
  float32 in [0, 1], the net's input."""
  return _common.trained_cifar_net(config(quick, seed, image_folder), quick, seed, image_folder)


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Trains (or loads) the notebook's net and draws what the notebook draws."""
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  model, params, history, (x_val, y_val), (x_train, y_train), cached = trained(
      quick, seed, image_folder)
  cfg = config(quick, seed, image_folder)
  data = "synthetic images (quick)" if quick else "the CIFAR-10 JPEG copy"

  # --- shapes of the data
  print(f"train_images.shape, train_labels.shape -> notebook ((50000, 32, 32, 3), (50000, 1)); "
        f"here {x_train.shape}, {y_train.shape} ({cfg['train_split']} of {data})")
  print(f"test_images.shape, test_labels.shape   -> notebook ((10000, 32, 32, 3), (10000, 1)); "
        f"here the validation split {x_val.shape}, {y_val.shape} ({cfg['val_split']}: the copy "
        "has no test split)")
  order = _common.official_order(25, quick=quick)
  labels25 = [int(y_train[i]) for i in order]
  if not quick:  # the copy's class folders and ranks put the official images where expected
    assert tuple(labels25) == _common.CIFAR10_FIRST_LABELS, labels25
  first = x_train[order[0]]
  print(f"train_images[0] (the official first training image, a {CLASSES[labels25[0]]}; "
        f"{'synthetic' if quick else 'the JPEG copy'}'s pixels) ->")
  print(repr(first))
  results["train_images"] = len(x_train)
  results["first_label"] = labels25[0]

  fig = plots.image_grid(x_train[order], [CLASSES[y] for y in labels25], ncols=5, cell=1.9)
  _common.save(fig, out, "train_grid.png",
               "The notebook's 5x5 grid: train_images[0..24] with their class names, the "
               "official first 25 training images (frog, truck, truck, deer, automobile, ...)"
               + (" (here synthetic stand-ins: --quick)" if quick else "") + ".", figures)

  # --- model.summary(), plot_model
  s = inspect.summary(model, (1, 32, 32, 3), name=MODEL)
  assert s.total_params == 122_570, s.total_params
  results["params"] = s.total_params
  fig = plots.model_diagram(model, (1, 32, 32, 3), name=MODEL)
  _common.save(fig, out, "plot_model.png",
               "tf.keras.utils.plot_model(model, show_shapes=True), drawn by jaxcnn: one box per "
               "layer with its input and output shapes (batch as None). The notebook's first "
               "box is its InputLayer (None, 32, 32, 3); the last Dense has 10 outputs (Keras "
               "applies the softmax there, jaxcnn in the loss).", figures)

  # --- fit: the curves; evaluate
  print(f"model.fit(epochs={cfg['epochs']}, batch_size={cfg['batch_size']}, Adam "
        f"{cfg['learning_rate']}): {'loaded the cached' if cached else 'trained a'} net")
  for e, (a, va, l, vl) in enumerate(zip(history["accuracy"], history["val_accuracy"],
                                         history["loss"], history["val_loss"]), 1):
    print(f"  Epoch {e}/{cfg['epochs']}: loss {l:.4f} - accuracy {a:.4f} - val_loss {vl:.4f} - "
          f"val_accuracy {va:.4f}")
  fig = plots.plot_metric(history, "accuracy", legend_loc="lower right",
                          title=f"tutorial_cnn, {data}")
  _common.save(fig, out, "accuracy.png",
               "The notebook's accuracy plot: training (accuracy) and validation (val_accuracy) "
               "accuracy per epoch.", figures)
  fig = plots.plot_metric(history, "loss", legend_loc="upper right",
                          title=f"tutorial_cnn, {data}")
  _common.save(fig, out, "loss.png",
               "The notebook's loss plot: training and validation loss per epoch (legend "
               "upper right, where it hides no curve). Where val_loss stops falling while loss "
               "keeps falling, the net starts to overfit.", figures)
  logits = _common.logits(model, params, x_val)
  loss = float(jnp.mean(F.cross_entropy(jnp.asarray(logits), jnp.asarray(y_val))))
  accuracy = float(metrics.accuracy(jnp.asarray(logits), jnp.asarray(y_val)))
  np.testing.assert_allclose(accuracy, history["val_accuracy"][-1], atol=2e-3)
  print(f"result = model.evaluate(...) -> loss {loss:.4f}; print(f'accuracy: "
        f"{{result[1]*100:.2f}}%') -> accuracy: {accuracy * 100:.2f}%   (on the validation "
        "split; the notebook's is its 10,000 test images)")
  results["val_accuracy"] = accuracy
  results["val_loss"] = loss

  # --- model.layers; filters.shape
  print("model.layers -> " + ", ".join(f"[{i}] {n}" for i, n in enumerate(KERAS_LAYERS))
        + "   (Keras' indices; [0] is the notebook's InputLayer)")
  for index in CONV_LAYER_INDEX:
    name = KERAS_LAYERS[index]
    kernel = np.asarray(params[name]["kernel"])
    print(f"model.layers[{index}].get_weights()[0].shape -> {kernel.shape}   ({name}; Keras' "
          "layout (rows, cols, channels, filter count), the same in jaxcnn)")
    rows, cols = GRIDS[index]
    fig = plots.filter_grid(kernel, channel=0, max_filters=rows * cols, ncols=cols,
                            title=f"model.layers[{index}] = {name}")
    _common.save(fig, out, f"filters_layer{index}.png",
                 f"The notebook's filters figure for model.layers[{index}] ({name}): each "
                 f"filter's 3x3 weights on input channel 0 in grey ({rows} rows x {cols} "
                 "columns), each on its own scale, dark = its most negative weight. "
                 + ("Channel 0 is the red channel of the image; a few filters show a clear "
                    "light/dark split (an edge), most look noisy after 5 epochs."
                    if index == 1 else
                    "Channel 0 is the previous layer's first feature map: one slice of a 3x3 x "
                    f"{kernel.shape[2]} filter, hard to read on its own."), figures)
  results["conv0_kernel_shape"] = str(np.asarray(params["Conv_0"]["kernel"]).shape)
  assert np.asarray(params["Conv_0"]["kernel"]).shape == (3, 3, 3, 32)

  # --- model_short = Model(inputs, [layers 1, 3, 5 outputs]); its summary
  convs = [r for r in s.rows if r.name in ("Conv_0", "Conv_1", "Conv_2")]
  print('model_short.summary() -> the outputs of model.layers[1], [3], [5] (the notebook\'s '
        '"model_1"):')
  for r in convs:
    print(f"  {r.name:8} {str((None, *r.output_shape[1:])):20} {r.params:>8,}")
  short_params = sum(r.params for r in s.rows[:5])
  print(f"  Total params: {short_params:,}   (the three convs; pooling has none)")
  assert short_params == 56_320 and [r.output_shape[1:] for r in convs] == [
      (30, 30, 32), (13, 13, 64), (4, 4, 64)]
  results["model_short_params"] = short_params

  # --- train_images[7] and its feature maps
  i7 = int(_common.official_order(8, quick=quick)[7])
  img = x_train[i7]
  fig = plots.image_grid(img[None], [f"train_images[7]: a {CLASSES[int(y_train[i7])]}"],
                         cell=3.2)
  _common.save(fig, out, "train_image_7.png",
               "plt.imshow(train_images[7]): the image whose feature maps follow "
               + ("(a synthetic stand-in in --quick)." if quick else
                  "(the official eighth training image, a horse)."), figures)
  maps = inspect.feature_maps(model, {"params": params}, img[None])
  for index in CONV_LAYER_INDEX:
    name = KERAS_LAYERS[index]
    m = np.asarray(maps[name][0])
    rows, cols = GRIDS[index]
    fig = plots.feature_map_grid(m, max_maps=rows * cols, ncols=cols, cmap="gray",
                                 title=f"model.layers[{index}] ({name}) on train_images[7]")
    _common.save(fig, out, f"feature_maps_layer{index}.png",
                 f"The notebook's feature maps after model.layers[{index}] ({name}, after its "
                 f"ReLU), in grey, {rows} rows x {cols} columns, each map on its own scale "
                 "(black = 0; 'const' marks a map that is 0 everywhere). "
                 + ("The first layer's maps still look like the image: edges and colours."
                    if index == 1 else "Deeper maps are smaller and more abstract."), figures)
    results[f"feature_maps_layer{index}_shape"] = str(m.shape)
  results["epochs"] = len(history["loss"])
  return {"figures": figures, "results": results}

