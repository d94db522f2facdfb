"""Lesson 1, a photo through the layers: the course's PyTorch notebook "Convolutional Neural
Networks" (conv, ReLU, pooling, dropout, flatten, dense, softmax on a photo), cell by cell with
jaxcnn's pure ops, at the notebook's shapes.

    python -m experiments.lessons photo_walk [--quick] [--seed N]

The notebook reads ``zebra.jpg``, which is not available offline; the stand-in is matplotlib's
bundled Grace Hopper photo, cropped about its centre and resized to 250x140 (height x width) so
that every shape the notebook fixes comes out the same: its ``nn.Linear(8750, 4)`` takes the
2x2-max-pooled photo flattened, so ``(H // 2) * (W // 2)`` must be 8750 (125 x 70). Then, as the
notebook does: grayscale as ``(mean(RGB) - 128) / 128``; ``nn.Conv2d(1, 5, 3, stride=1,
padding=1)`` -> ``(1, 5, 250, 140)`` (NCHW; jaxcnn's NHWC ``(1, 250, 140, 5)``); ReLU;
``nn.MaxPool2d(2, 2)`` applied to the grayscale photo itself (the notebook pools ``gray1``, not
the conv output) -> ``(1, 125, 70)``; ``nn.Dropout2d(p=0.25)``; flatten -> 8750;
``nn.Linear(8750, 4)``; ``nn.Softmax(dim=1)``, whose four values sum to 1.

What is and is not comparable with the notebook's printed values:

* equal: every shape; the grayscale formula; each pooled value is the max of its 2x2 block
  (``gray1[:4, :4]`` beside ``npo3[:2, :2]``, asserted); kept values scaled by 1/(1 - 0.25);
  the softmax sums to 1 (asserted within 1e-6).
* not comparable: the pixel values (another photo); the conv kernels and bias, the dense
  weights and the dropout mask, which PyTorch draws from its unseeded generator (the notebook
  says so: re-running gives other kernels). jaxcnn draws them from ``--seed`` with PyTorch's
  default distributions (weights and biases uniform in +-1/sqrt(fan_in): +-1/3 for the 3x3
  conv, +-1/sqrt(8750) for the dense layer), so the same seed gives the same numbers and the
  ranges match the notebook's; the values themselves cannot.
* ``Dropout2d`` on the notebook's 3-D tensor ``(1, 125, 70)``: PyTorch reads it as
  ``(N, C, L)`` and drops whole *rows* of the pooled photo (each of the 125 rows is a
  "channel"), not single pixels as the notebook's prose says; jaxcnn's ``channel_dropout`` on the
  same layout does the same, and the figure shows the dropped rows.

No training in this part; quick and full runs are the same here (seconds).

Then, beyond the notebook, the same walk with a *trained* net: the Keras CIFAR-10 CNN of lesson
5b (``filters_and_maps``; its cached parameters, trained first if the cache has none for this
seed and data) on a validation image, every stage printed and drawn with its shape and value
range, down to the softmax (sum 1 within 1e-5, asserted). ``--image-folder`` selects the real
CIFAR-10 copy for that half (``--quick``: lesson 5b's quick synthetic net).
"""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments.lessons import _common
from jaxcnn import functional as F

TITLE = "A photo through the layers: conv, ReLU, max pool, dropout, dense, softmax"
LESSON = 1
PHOTO_HW = (250, 140)  # (H // 2) * (W // 2) = 8750, the notebook's nn.Linear(8750, 4)
N_KERNELS = 5          # the notebook's n = 5
CMAP = "bwr"           # the notebook's cmap
TRAINS = True


def _stage(name: str, x, width: int = 16) -> str:
  x = np.asarray(x)
  return f"{name:{width}} shape {str(tuple(x.shape)):20} range [{x.min():+.3f}, {x.max():+.3f}]"


def _torch_uniform(key, shape, fan_in: int) -> jax.Array:
  """PyTorch's default init distribution for Conv2d/Linear weights and biases:
  uniform in +-1/sqrt(fan_in)."""
  bound = 1.0 / math.sqrt(fan_in)
  return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


def _maps_figure(gray1: np.ndarray, maps: np.ndarray, what: str) -> Figure:
  """The notebook's grid: ``r = 2`` rows, ``c = 3`` columns; the photo (gray, vmin 0, vmax 1)
  then each map on 'bwr' from -1 to 1, as its cells draw them."""
  m = len(maps) + 1
  c = min(m, 3)
  r = int(math.ceil(m / c))
  fig = _common.new_figure(9.5, 6.6)
  axes = fig.subplots(r, c, sharex=True, sharey=True, squeeze=False)
  axes[0, 0].imshow(gray1, cmap="gray", vmin=0.0, vmax=1.0)
  axes[0, 0].set_title("gray1 (gray, vmin 0, vmax 1)", fontsize=9)
  im = None
  for i in range(1, m):
    ax = axes.reshape(-1)[i]
    im = ax.imshow(maps[i - 1], cmap=CMAP, vmin=-1.0, vmax=1.0)
    ax.set_title(f"{what}[{i - 1}] ({CMAP}, -1 to 1)", fontsize=9)
  fig.colorbar(im, ax=axes, shrink=0.6)
  return fig


def notebook_walk(seed: int = 0) -> dict[str, np.ndarray]:
  """Every array of the notebook's walk, computed with jaxcnn at the notebook's shapes:
  ``gray1 [250, 140]``, ``kernel [3, 3, 1, 5]``, ``bias [5]``, ``output [1, 250, 140, 5]``
  (NHWC), ``output3 [1, 125, 70, 1]``, ``output4 [125, 70]`` (after ``Dropout2d``),
  ``dense_w [8750, 4]``, ``dense_b [4]``, ``output6`` and ``output7 [1, 4]``. The random ones
  (weights, the dropout mask) are pure functions of ``seed``."""
  k_w, k_b, k_drop, k_dw, k_db = jax.random.split(jax.random.key(seed), 5)
  img1 = _common.load_photo_rgb(*PHOTO_HW)
  gray1 = (np.mean(img1[..., :3], -1) - 128) / 128.0   # the notebook's grayscale + normalise
  h, w = gray1.shape
  x = jnp.asarray(gray1, jnp.float32).reshape(1, h, w, 1)  # NHWC: one image, one channel
  fan_in = 1 * 3 * 3
  kernel = _torch_uniform(k_w, (3, 3, 1, N_KERNELS), fan_in)   # jaxcnn's [kh, kw, C_in, C_out]
  bias = _torch_uniform(k_b, (N_KERNELS,), fan_in)
  output = F.conv(x, kernel, bias, stride=1, padding=1)       # nn.Conv2d(1, n, 3, 1, 1)
  output3 = F.max_pool(x, 2, stride=2)                         # nn.MaxPool2d(2, 2) on gray1
  # nn.Dropout2d(p=0.25) on PyTorch's 3-D (1, 125, 70), read as (N, C, L): each row is a
  # channel. jaxcnn's channel_dropout on the same layout, NWC [1, 70, 125 rows].
  rows_as_channels = jnp.transpose(output3[..., 0], (0, 2, 1))
  dropped = F.channel_dropout(k_drop, rows_as_channels, 0.25)
  output4 = jnp.transpose(dropped, (0, 2, 1))[0]               # back to [125, 70]
  flat = F.flatten(output4.reshape(1, h // 2, w // 2, 1))      # output4.view(1, -1)
  dense_w = _torch_uniform(k_dw, (flat.shape[1], 4), flat.shape[1])  # nn.Linear(8750, 4)
  dense_b = _torch_uniform(k_db, (4,), flat.shape[1])
  output6 = F.dense(flat, dense_w, dense_b)
  output7 = F.softmax(output6, axis=1)                         # nn.Softmax(dim=1)
  arrays = dict(gray1=gray1, kernel=kernel, bias=bias, output=output, output3=output3,
                output4=output4, dense_w=dense_w, dense_b=dense_b, output6=output6,
                output7=output7)
  return {k: np.asarray(v) for k, v in arrays.items()}


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Walks the photo through the notebook's layers, printing and drawing each stage."""
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  a = notebook_walk(seed)

  # --- the photo: img1 = plt.imread('zebra.jpg'); gray1 = (np.mean(img1[..., :3], -1) - 128) / 128
  gray1 = a["gray1"]
  h, w = gray1.shape
  print("gray1 = (np.mean(img1[..., :3], -1) - 128) / 128  (stand-in photo, see the docstring):")
  print(repr(gray1))
  print(f"print(gray1.size()) -> {(h, w)}   (PyTorch prints torch.Size([{h}, {w}]))")

  # --- model = nn.Conv2d(1, n, kernel_size=3, stride=1, padding=1); output = model(gray1)
  kernel, bias, output = a["kernel"], a["bias"], a["output"]
  assert output.shape == (1, h, w, N_KERNELS), output.shape
  o = np.transpose(np.asarray(output[0]), (2, 0, 1))             # the notebook's o: [n, H, W]
  print(f"output.size() -> notebook (PyTorch, NCHW) torch.Size([1, {N_KERNELS}, {h}, {w}]); "
        f"jaxcnn (NHWC) {tuple(output.shape)}")
  print("o[0] ->")
  print(repr(o[0]))
  torch_layout = np.transpose(np.asarray(kernel), (3, 2, 0, 1))  # PyTorch's [C_out, C_in, kh, kw]
  print(f"[p for p in model.parameters()] -> weight {torch_layout.shape} (PyTorch's layout; "
        f"jaxcnn stores {tuple(kernel.shape)}), bias {tuple(bias.shape)}, drawn from "
        f"U(-1/3, 1/3) with seed {seed}:")
  print(np.array2string(torch_layout, precision=4))
  print(np.array2string(np.asarray(bias), precision=4))
  fig = _maps_figure(gray1, o, "o")
  _common.save(fig, out, "conv_outputs.png",
               "The notebook's first figure: the grayscale photo, then the five outputs of "
               "Conv2d(1, 5, 3, padding=1) with random kernels on its 'bwr' colour map from -1 "
               "(blue) to +1 (red), white at 0. Random kernels mostly pass the brightness "
               "through, scaled or inverted (red or blue versions of the photo), with some "
               "edges emphasised. The photo is drawn as the notebook draws it (vmin 0, so "
               "everything darker than mid-grey is black).", figures)

  # --- model2 = nn.ReLU(); output2 = model2(output)
  o2 = np.asarray(F.relu(jnp.asarray(o)))
  assert (o2 >= 0).all() and np.array_equal(o2, np.maximum(o, 0))
  print(_stage("relu(output)", o2, 22))
  fig = _maps_figure(gray1, o2, "o2")
  _common.save(fig, out, "relu_outputs.png",
               "The notebook's ReLU figure, same layout and colours: ReLU keeps the red "
               "(positive) part of each map and sets the blue part to 0 (white).", figures)

  # --- model3 = nn.MaxPool2d(kernel_size=2, stride=2, padding=0) on gray1 itself
  output3 = a["output3"]
  npo3 = np.asarray(output3[0, :, :, 0])
  assert npo3.shape == (h // 2, w // 2) == (125, 70), npo3.shape
  print(f"output3.size() -> notebook torch.Size([1, {h // 2}, {w // 2}]); jaxcnn (NHWC) "
        f"{tuple(output3.shape)}")
  corner_in, corner_out = gray1[:4, :4], npo3[:2, :2]
  hand = corner_in.reshape(2, 2, 2, 2).max(axis=(1, 3)).astype(np.float32)
  np.testing.assert_array_equal(corner_out, hand)
  print("gray1[:4,:4] ->")
  print(repr(corner_in))
  print("npo3[:2,:2] -> (each value the max of its 2x2 block above)")
  print(repr(corner_out))
  fig = _common.new_figure(9, 6.6)
  axes = fig.subplots(1, 2, sharex=True, sharey=True)
  axes[0].imshow(gray1, cmap="gray")
  axes[1].imshow(npo3, cmap="gray", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
  axes[0].set_title(f"gray1 {h}x{w}", fontsize=10)
  axes[1].set_title(f"MaxPool2d(2, 2) -> {h // 2}x{w // 2} (drawn at the same size)",
                    fontsize=10)
  for ax in axes:
    ax.axis("off")
  _common.save(fig, out, "max_pool.png",
               "The notebook's pooling figure: the photo and its 2x2 max pooling, which keeps "
               "the brightest pixel of every 2x2 block: half the width, half the height, the "
               "same picture with coarser pixels.", figures)

  # --- model4 = nn.Dropout2d(p=0.25) on output3, a 3-D tensor (1, 125, 70) = PyTorch's (N, C, L)
  npo4 = a["output4"]
  zero_rows = np.flatnonzero((npo4 == 0).all(axis=1) & ~(npo3 == 0).all(axis=1))
  kept = np.setdiff1d(np.arange(h // 2), zero_rows)
  np.testing.assert_allclose(npo4[kept], npo3[kept] / 0.75, rtol=1e-6)
  assert len(zero_rows) >= 1
  print(f"Dropout2d(p=0.25) on the (1, {h // 2}, {w // 2}) tensor: {len(zero_rows)} of "
        f"{h // 2} rows zeroed (PyTorch reads a 3-D input as (N, C, L): each row is a "
        f"channel), the kept rows x{1 / 0.75:.4f}")
  fig = _common.new_figure(9, 6.6)
  axes = fig.subplots(1, 2)
  axes[0].imshow(npo3, cmap="gray")
  axes[1].imshow(npo4, cmap="gray")
  axes[0].set_title(f"npo3: pooled {h // 2}x{w // 2}", fontsize=10)
  axes[1].set_title(f"npo4: Dropout2d(0.25): {len(zero_rows)} rows zeroed,\nthe others "
                    f"x{1 / 0.75:.3f}", fontsize=10)
  for ax in axes:
    ax.axis("off")
  _common.save(fig, out, "dropout.png",
               "The notebook's dropout figure: the pooled photo, and the same after "
               "Dropout2d(p=0.25) in training mode. On this 3-D tensor PyTorch (and jaxcnn's "
               "channel_dropout on the same layout) zeroes whole rows, about a quarter of them "
               "(the flat grey stripes: 0 is mid-grey on a photo whose values run from -1 to "
               "1), and scales the others by 1/(1 - 0.25), so on average nothing changes. A new "
               "draw drops other rows.", figures)

  # --- output5 = output4.reshape(-1); sum and size; Linear(8750, 4); Softmax(dim=1)
  output5 = npo4.reshape(-1)
  print(f"output5.sum() -> {output5.sum():.4f}   (not comparable: another photo and dropout "
        "mask)")
  print(f"output5.size() -> {output5.shape}   (the notebook: torch.Size([{(h // 2) * (w // 2)}]))")
  assert output5.shape == (8750,)
  flat = F.flatten(jnp.asarray(npo4).reshape(1, h // 2, w // 2, 1))  # output4.view(1, -1)
  np.testing.assert_array_equal(np.asarray(flat[0]), output5)       # the same row-major order
  output6, output7 = a["output6"], a["output7"]
  total = float(np.sum(output7))
  assert output6.shape == output7.shape == (1, 4)
  assert abs(total - 1.0) < 1e-6, total
  print(f"nn.Linear(8750, 4)(output5) -> shape {tuple(output6.shape)}: "
        f"{np.array2string(np.asarray(output6), precision=4)}")
  print(f"nn.Softmax(dim=1) -> output7 = {np.array2string(np.asarray(output7), precision=4)}")
  print(f"output7.sum() -> {total:.6f}")
  results.update(photo_h=h, photo_w=w, conv_n=int(output.shape[-1]),
                 pooled_h=int(npo3.shape[0]), pooled_w=int(npo3.shape[1]),
                 flat_features=int(output5.size), dropped_rows=int(len(zero_rows)),
                 dropout_scale=float(1 / 0.75), softmax_sum=total,
                 softmax_max=float(np.max(output7)))

  fig = _common.new_figure(6, 3.4)
  ax = fig.subplots()
  p = np.asarray(output7[0])
  ax.bar(range(4), p, color="#3465a4")
  for i, v in enumerate(p):
    ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=9)
  ax.set_xticks(range(4), [f"class {i}" for i in range(4)])
  ax.set_ylim(0, 1)
  ax.set_title(f"nn.Softmax(dim=1) of Linear(8750, 4): sum {total:.6f}", fontsize=10)
  _common.save(fig, out, "softmax.png",
               "output7: the four class scores after softmax, positive and summing to 1. The "
               "dense weights are random (and the photo is no zebra), so the 'prediction' "
               "means nothing yet; training is what makes it mean something.", figures)
  trained_walk(out, figures, results, quick=quick, image_folder=image_folder, seed=seed)
  return {"figures": figures, "results": results}


def trained_walk(out: pathlib.Path, figures: list, results: dict, *, quick: bool,
                 image_folder: str | None, seed: int) -> None:
  """The same walk through lesson 5b's *trained* CIFAR-10 net (its cached parameters), on a
  validation image: every layer's output (:func:`jaxcnn.inspect.feature_maps`, pre-activations
  included) printed and drawn with its shape and value range."""
  from experiments.lessons import filters_and_maps  # pylint: disable=g-import-not-at-top
  from jaxcnn import inspect  # pylint: disable=g-import-not-at-top

  model, params, history, (x_val, y_val), _, cached = filters_and_maps.trained(quick, seed,
                                                                               image_folder)
  print(f"\nbeyond the notebook: the trained Keras CIFAR-10 CNN of lesson 5b "
        f"({'cached' if cached else 'trained now'}"
        f", validation accuracy {history['val_accuracy'][-1]:.4f}) on validation image 0:")
  x = x_val[:1]
  maps = inspect.feature_maps(model, {"params": params}, x)
  stages = {"input (x / 255)": np.asarray(x)}
  stages.update({k: np.asarray(v) for k, v in maps.items()})
  logits = stages[list(maps)[-1]]
  probs = np.asarray(F.softmax(jnp.asarray(logits)))
  stages["softmax"] = probs
  for name, v in stages.items():
    print(_stage(name, v, width=22))
  total = float(probs.sum())
  assert abs(total - 1.0) < 1e-5, total
  pred = int(probs.argmax())
  classes = _common.CIFAR10_CLASSES
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
          ax.imshow(v, interpolation="nearest")
          ax.set_title(f"{classes[y_val[0]]}", fontsize=8)
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
               "Beyond the notebook: the same walk with a trained net (lesson 5b's) on a "
               "CIFAR-10 validation image, "
               "each stage with its shape and value range. Before each ReLU the maps are "
               "positive and negative (red/blue); after it only the positive part is left, and "
               "each pooling halves the size. The vectors at the bottom are the flattened "
               "features, the dense layers and the softmax, whose tallest (orange) bar is the "
               "net's answer.", figures)
