"""Lesson 1, a photo through the layers (the course's PyTorch notebook), with jaxcnn ops.

    python -m experiments.lessons photo_walk [--quick] [--seed N]

Matplotlib's bundled Grace Hopper photo (no download), grayscale, normalised as
``(x - 128) / 128``, walked through every stage of a small CNN with *random* weights (seeded):
a conv layer 1 -> 5 kernels (3x3, padding 1), ReLU, 2x2 max pooling, channel dropout p=0.25,
flatten, a dense layer to 4 outputs and softmax. Each stage is the pure op of
:mod:`jaxcnn.functional`, so the walk reads like the notebook. No training; about 3 s on a 2-core
CPU (the full run uses the photo at 512x600, ``--quick`` at 150x128). It prints the five
kernels' weights, each stage's shape and value range, the 4x4 top-left corner of the ReLU output
beside the 2x2 corner of the pooled output (each pooled value is the max of its 2x2 block,
asserted), which feature maps dropout zeroed and the scale 1/(1 - 0.25) of the kept ones, and
the four softmax probabilities with their sum (1 within 1e-6, asserted).

Then the same walk with a *trained* net: lesson 5's CIFAR-10 tutorial CNN (its cached
parameters; trained first, as lesson 5 would, if the cache has none for this seed and data) on
validation image 0. Every stage, from :func:`jaxcnn.inspect.feature_maps` (the conv and dense
outputs before their ReLU included), is printed and drawn with its shape and value range, down
to the softmax (sum 1 within 1e-5, asserted). ``--image-folder`` selects the real CIFAR-10 copy
for that half (``--quick``: the quick synthetic net of lesson 5).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from experiments.lessons import _common
from jaxcnn import functional as F

TITLE = "A photo through the layers: conv, ReLU, max pool, dropout, dense, softmax"
LESSON = 1
TRAINS = True


def _stage(name: str, x, width: int = 16) -> str:
  x = np.asarray(x)
  return f"{name:{width}} shape {str(tuple(x.shape)):20} range [{x.min():+.3f}, {x.max():+.3f}]"


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Walks the photo through random layers, printing and drawing each stage into ``out``."""
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  k_conv, k_drop, k_dense = jax.random.split(jax.random.key(seed), 3)

  photo = _common.load_photo(128 if quick else None)
  x = jnp.asarray((photo.astype(np.float32) - 128.0) / 128.0).reshape(1, *photo.shape, 1)
  print(_stage("input", x))

  # Conv 1 -> 5, 3x3, padding 1 (PyTorch's default init range, U(-1/3, 1/3) for fan-in 9).
  w = jax.random.uniform(k_conv, (3, 3, 1, 5), minval=-1 / 3, maxval=1 / 3)
  b = jnp.zeros((5,))
  conv = F.conv(x, w, b, padding=1)
  assert conv.shape == (1, *photo.shape, 5)
  print(_stage("conv 1->5, 3x3", conv))
  for i in range(5):
    print(f"  kernel {i}: {np.array2string(np.asarray(w[:, :, 0, i]), precision=3)}"
          .replace("\n", "\n            "))

  relu = F.relu(conv)
  print(_stage("relu", relu))
  pooled = F.max_pool(relu, 2)
  print(_stage("max pool 2x2", pooled))
  corner_in = np.asarray(relu[0, :4, :4, 0])
  corner_out = np.asarray(pooled[0, :2, :2, 0])
  hand = corner_in.reshape(2, 2, 2, 2).max(axis=(1, 3))
  np.testing.assert_array_equal(corner_out, hand)
  print("  4x4 corner of relu (map 0)      2x2 corner of the pool")
  for r in range(4):
    left = " ".join(f"{v:6.3f}" for v in corner_in[r])
    right = " ".join(f"{v:6.3f}" for v in corner_out[r]) if r < 2 else ""
    print(f"  {left}     {right}")

  # Channel dropout p=0.25: the first draw (from the seed) that drops at least one of the five
  # maps, so that the picture shows what dropping a whole map means.
  for attempt in range(100):
    key = jax.random.fold_in(k_drop, attempt)
    dropped = F.channel_dropout(key, pooled, 0.25)
    zero = [i for i in range(5) if bool(jnp.all(dropped[0, :, :, i] == 0))
            and not bool(jnp.all(pooled[0, :, :, i] == 0))]
    if zero:
      break
  kept = [i for i in range(5) if i not in zero]
  scale = float(dropped[0, :, :, kept[0]].max() / pooled[0, :, :, kept[0]].max())
  np.testing.assert_allclose(scale, 1 / 0.75, rtol=1e-5)
  print(_stage("channel dropout", dropped) + f"  maps zeroed {zero}, kept ones x{scale:.4f}")

  flat = F.flatten(dropped)
  print(_stage("flatten", flat))
  wd = jax.random.normal(k_dense, (flat.shape[1], 4)) / np.sqrt(flat.shape[1])
  logits = F.dense(flat, wd, jnp.zeros((4,)))
  probs = F.softmax(logits)
  total = float(jnp.sum(probs))
  assert abs(total - 1.0) < 1e-6, total
  print(_stage("dense -> 4", logits))
  print(f"softmax          {np.array2string(np.asarray(probs[0]), precision=4)}  "
        f"sum = {total:.6f}")
  results.update(input_h=photo.shape[0], input_w=photo.shape[1], conv_channels=5,
                 pooled_h=int(pooled.shape[1]), pooled_w=int(pooled.shape[2]),
                 flat_features=int(flat.shape[1]), dropped_maps=len(zero),
                 dropout_scale=scale, softmax_sum=total,
                 softmax_max=float(jnp.max(probs)))

  # Figure 1: the photo and the five conv outputs.
  fig = _common.new_figure(13, 4.6)
  axes = fig.subplots(2, 6, height_ratios=[1, 0.45])
  _common.image_panel(axes[0, 0], x[0, :, :, 0], f"photo {photo.shape[0]}x{photo.shape[1]}\n"
                      "(x - 128) / 128")
  axes[1, 0].axis("off")
  for i in range(5):
    _common.image_panel(axes[0, i + 1], conv[0, :, :, i], f"conv output {i}\n(red +, blue -)",
                        diverging=True)
    kern = np.asarray(w[:, :, 0, i])
    _common.image_panel(axes[1, i + 1], kern, f"kernel {i}", diverging=True)
    _common.annotate(axes[1, i + 1], kern, "{:.2f}", fontsize=7)
  _common.save(fig, out, "conv_outputs.png",
               "The photo through five random 3x3 kernels (bottom row, weights written in). "
               "Random kernels mostly pass the brightness through, scaled (weights summing "
               "positive) or inverted (summing negative, like kernel 2), with some edges "
               "emphasised where the weights change sign across the kernel. Red and blue are "
               "positive and negative responses.", figures)

  # Figure 2: relu, pool (with the corners), dropout.
  fig = _common.new_figure(13, 7.2)
  axes = fig.subplots(3, 5)
  for i in range(5):
    _common.image_panel(axes[0, i], relu[0, :, :, i], f"relu(conv {i})", cmap="magma")
    _common.image_panel(axes[1, i], pooled[0, :, :, i],
                        f"max pool 2x2 -> {pooled.shape[1]}x{pooled.shape[2]}", cmap="magma")
    _common.image_panel(axes[2, i], dropped[0, :, :, i],
                        "dropped (all zero)" if i in zero else f"kept, x{scale:.2f}",
                        cmap="magma")
  _common.save(fig, out, "relu_pool_dropout.png",
               "Row 1: ReLU keeps only the positive (red) part of each conv output. Row 2: 2x2 "
               "max pooling halves the resolution and keeps each block's strongest response. "
               "Row 3: channel dropout (p = 0.25, training mode) zeroes whole feature maps and "
               "scales the kept ones by 1/(1 - 0.25).", figures)

  # Figure 3: the 4x4 -> 2x2 corner, and the softmax bar chart.
  fig = _common.new_figure(11, 3.6)
  a0, a1, a2 = fig.subplots(1, 3, width_ratios=[1.6, 0.9, 1.6])
  for ax, img, title in ((a0, corner_in, "relu, map 0: top-left 4x4"),
                         (a1, corner_out, "max pool: top-left 2x2")):
    _common.image_panel(ax, img, title, diverging=True)
    _common.annotate(ax, img, "{:.3f}")
  a0.axhline(1.5, color="k", lw=2)
  a0.axvline(1.5, color="k", lw=2)
  p = np.asarray(probs[0])
  a2.bar(range(4), p, color="#3465a4")
  for i, v in enumerate(p):
    a2.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=9)
  a2.set_xticks(range(4), [f"output {i}" for i in range(4)])
  a2.set_ylim(0, 1)
  a2.set_title(f"softmax of the 4 dense outputs (sum {total:.6f})", fontsize=10)
  _common.save(fig, out, "pool_corner_softmax.png",
               "Left: each value of the pooled 2x2 corner is the largest value of its 2x2 block "
               "(blocks marked). Right: the dense layer's four outputs after softmax: positive "
               "and summing to 1. The weights are random, so the 'prediction' means nothing "
               "yet; training is what makes it mean something.", figures)
  trained_walk(out, figures, results, quick=quick, image_folder=image_folder, seed=seed)
  return {"figures": figures, "results": results}


def trained_walk(out: pathlib.Path, figures: list, results: dict, *, quick: bool,
                 image_folder: str | None, seed: int) -> None:
  """The same walk through lesson 5's *trained* CIFAR-10 net (its cached parameters), on a
  validation image: every layer's output (:func:`jaxcnn.inspect.feature_maps`, pre-activations
  included) printed and drawn with its shape and value range."""
  from experiments.lessons import cifar10_cnn  # pylint: disable=g-import-not-at-top
  from jaxcnn import inspect  # pylint: disable=g-import-not-at-top

  model, params, history, (x_val, y_val), _, cached = cifar10_cnn.trained(quick, seed,
                                                                          image_folder)
  print(f"\nthe trained CIFAR-10 tutorial net of lesson 5 ({'cached' if cached else 'trained now'}"
        f", validation accuracy {history['val_accuracy'][-1]:.4f}) on validation image 0:")
  x = x_val[:1]
  maps = inspect.feature_maps(model, {"params": params}, x)
  stages = {"input (normalised)": np.asarray(x)}
  stages.update({k: np.asarray(v) for k, v in maps.items()})
  logits = stages[list(maps)[-1]]
  probs = np.asarray(F.softmax(jnp.asarray(logits)))
  stages["softmax"] = probs
  for name, v in stages.items():
    print(_stage(name, v, width=22))
  total = float(probs.sum())
  assert abs(total - 1.0) < 1e-5, total
  pred = int(probs.argmax())
  classes = cifar10_cnn.CLASSES
  print(f"softmax sums to {total:.6f}; top class {classes[pred]} ({probs[0, pred]:.3f}), "
        f"true class {classes[y_val[0]]}")
  results.update(trained_stages=len(stages), trained_softmax_sum=total,
                 trained_top_class=classes[pred], trained_true_class=classes[int(y_val[0])])

  spatial = [k for k, v in stages.items() if v.ndim == 4]
  flat = [k for k, v in stages.items() if v.ndim == 2]
  n_ch = 6
  fig = _common.new_figure(1.7 * (n_ch + 0.3), 1.75 * len(spatial) + 2.6)
  top, bottom = fig.subfigures(2, 1, height_ratios=[1.75 * len(spatial), 2.6])
  axes = top.subplots(len(spatial), n_ch, squeeze=False)
  for r, name in enumerate(spatial):
    v = stages[name][0]
    for j, ax in enumerate(axes[r]):
      ax.set_xticks([])
      ax.set_yticks([])
      if name.startswith("input"):
        if j == 0:
          ax.imshow(_common.denormalise(v, "cifar10"), interpolation="nearest")
          ax.set_title(f"{classes[y_val[0]]} (shown unnormalised)", fontsize=8)
        else:
          ax.axis("off")
        continue
      if j >= v.shape[-1]:
        ax.axis("off")
        continue
      if "pre_activation" in name:
        _common.image_panel(ax, v[:, :, j], f"ch {j}", diverging=True)
      else:
        ax.imshow(v[:, :, j], cmap="magma", interpolation="nearest")
        ax.set_title(f"ch {j}", fontsize=8)
    axes[r, 0].set_ylabel(name.replace("/pre_activation", "\nbefore ReLU"), fontsize=8)
    axes[r, -1].yaxis.set_label_position("right")
    axes[r, -1].set_ylabel(f"{tuple(v.shape)}\n[{v.min():.2f}, {v.max():.2f}]", fontsize=8,
                           rotation=0, ha="left", va="center")
  top.suptitle("a trained CIFAR-10 net, stage by stage: first 6 channels; right: shape "
               "(batch left out) and value range; red/blue: before ReLU", fontsize=10)
  axes = bottom.subplots(1, len(flat), squeeze=False)[0]
  for ax, name in zip(axes, flat):
    v = stages[name][0]
    if name == "softmax" or v.shape[0] == 10:
      ax.bar(range(10), v, color=["#c4601d" if i == pred else "#3465a4" for i in range(10)])
      ax.set_xticks(range(10), classes, rotation=60, fontsize=7)
    else:
      ax.plot(v, lw=0.6)
    ax.set_title(f"{name.replace('/pre_activation', ' before ReLU')} {tuple(v.shape)}\n"
                 f"[{v.min():.2f}, {v.max():.2f}]", fontsize=8)
    ax.tick_params(labelsize=7)
  _common.save(fig, out, "trained_walk.png",
               "The same walk with a trained net (lesson 5's) on a CIFAR-10 validation image, "
               "each stage with its shape and value range. Before each ReLU the maps are "
               "positive and negative (red/blue); after it only the positive part is left, and "
               "each pooling halves the size. The vectors at the bottom are the flattened "
               "features, the dense layers and the softmax, whose tallest (orange) bar is the "
               "net's answer.", figures)
