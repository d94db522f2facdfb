"""Lesson 2, convolution by hand: the lecture "Convolutional Neural Networks" (numpy/scipy, its
cells In [7] to In [61]) cell by cell, each printed result beside jaxcnn's, asserted equal.

    python -m experiments.lessons conv_by_hand [--quick]

Every input is the lecture's own (the same lists, arrays and kernels); every result is computed
live with numpy/scipy, printed as the lecture printed it, then computed with jaxcnn's
``convolve`` (true convolution, kernel flipped) or ``conv`` (cross-correlation, what CNN layers
compute) and asserted equal, exactly (small integers and halves are exact in float32). No data,
no training, nothing random in the lecture's numbers; quick and full runs are the same (seconds
on a 2-core CPU, most of it compiling). The cells:

* In [7]: ``np.convolve([1, 1, 2, 0, 1], [-1, 1])`` in modes full, same, valid, both argument
  orders: ``[-1 0 -1 2 -1 1]``, ``[-1 0 -1 2 -1]``, ``[0 -1 2 -1]``. Also checked against
  ``jax.scipy.signal``, ``lax.conv_general_dilated`` and a Flax ``jaxcnn.layers.Conv``. numpy's
  ``same`` pads an even kernel on the *left*; jaxcnn's (and TensorFlow's) ``'SAME'`` on the
  right, giving ``[0 -1 2 -1 1]``: the explicit padding ``[(1, 0)]`` reproduces numpy.
* In [20]: ``signal.convolve`` of the same lists, then ``np.ones((4, 4))`` with
  ``[[1, 0], [0, 1]]`` through ``signal.convolve(mode='full')`` and
  ``signal.convolve2d(boundary='fill')``: the 5x5 result.
* In [42]: ``f = [1, 3, -1, 1, -3]``, ``g = [1, 0, -1]`` reversed to ``g_ = [-1, 0, 1]``,
  ``np.convolve(f, g_, mode='same')`` = ``[-3 2 2 2 1]``: convolving with the reversed kernel is
  cross-correlating with ``g`` (``jaxcnn.conv(f, g)``).
* In [49]: ``f = [[1, 2, 1], [2, 1, 1], [1, 1, 1]]``, ``g_ = [[1, .5], [.5, 1]]`` flipped both
  ways to ``g`` (the same matrix), ``signal.convolve(f, g, mode='valid')`` = ``[[4 4] [4 3]]``,
  sum 15.0.
* In [52]: ``I = [[1, 0, 2], [3, 1, 0], [0, 0, 4]]`` and ``F = [[1, 0], [0, 1]]``, printed.
* In [61]: the lecture's cell stops with PyTorch's ``RuntimeError: non-empty 3D or 4D (batch
  mode) tensor expected for input`` (``MaxPool2d(2, stride=1)`` given the 2-D ``I``); jaxcnn's
  ``max_pool`` refuses the same input with a one-line error, shown. What the cell set out to
  compute, with its layer settings, is then printed (and marked as not in the lecture's output):
  ``I`` as a batch of one through ``MaxPool2d(2, stride=1)`` (``[[3 2] [3 4]]``) and
  ``Conv2d(1 -> 3, 3, padding=1)`` (shape ``(1, 3, 3, 3)``), and ``I`` filtered by ``F``.

And the lecture's prose, computed: a dense layer from a 1000x1000 image to 1000x1000 units has
10^12 weights, an 11x11 patch filter 121 whatever the image size; the patch classifier
``f = ReLU(patch . filter)`` slid with a stride equals ``relu(conv(x, w))`` (on matplotlib's
bundled photo, a stand-in for any image); the pooling functions it lists (max, average, sum,
L1, L2) on ``I`` with ``pool1``'s window 2 and stride 1; convolution against cross-correlation
on an impulse.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import jax.scipy.signal as jsignal
import numpy as np
from jax import lax
from scipy import signal

from experiments.lessons import _common
from jaxcnn import functional as F
from jaxcnn import layers as L
from jaxcnn import shapes

TITLE = "Convolution by hand: the lecture's numpy/scipy cells, each checked with jaxcnn"
LESSON = 2

# The lecture's inputs, as its cells write them.
X_1D, Y_1D = [1, 1, 2, 0, 1], [-1, 1]                       # In [7], In [20]
F_42, G_42 = [1, 3, -1, 1, -3], [1, 0, -1]                  # In [42]
F_49 = np.array([1, 2, 1, 2, 1, 1, 1, 1, 1]).reshape(3, 3)  # In [49]
G_49 = np.array([1, 0.5, 0.5, 1]).reshape(2, 2)
I_52 = np.array([1, 0, 2, 3, 1, 0, 0, 0, 4]).reshape(3, 3)  # In [52]
F_52 = np.array([1, 0, 0, 1]).reshape(2, 2)


def _check(label: str, got, want) -> None:
  got, want = np.asarray(got), np.asarray(want)
  if got.shape != want.shape or not np.array_equal(got, want):
    raise AssertionError(f"{label}: got {got.tolist()}, expected {want.tolist()}")


def _np(a) -> np.ndarray:
  """A jax result as numpy prints the lecture's: integers as ints, other values as floats."""
  a = np.asarray(a, np.float64)
  return a.astype(np.int64) if np.all(a == np.round(a)) else a


def _x1(a) -> jax.Array:  # [N] -> [1, N, 1]
  return jnp.asarray(a, jnp.float32).reshape(1, -1, 1)


def _w1(a) -> jax.Array:  # [K] -> [K, 1, 1]
  return jnp.asarray(a, jnp.float32).reshape(-1, 1, 1)


def _x2(a) -> jax.Array:  # [H, W] -> [1, H, W, 1]
  a = jnp.asarray(a, jnp.float32)
  return a.reshape(1, *a.shape, 1)


def _w2(a) -> jax.Array:  # [KH, KW] -> [KH, KW, 1, 1]
  a = jnp.asarray(a, jnp.float32)
  return a.reshape(*a.shape, 1, 1)


def _flax_conv(x: jax.Array, w: jax.Array, padding) -> jax.Array:
  """A ``jaxcnn.layers.Conv`` with the (already flipped) kernel ``w`` as its weight."""
  layer = L.Conv(1, w.shape[:-2], padding=padding, use_bias=False)
  return layer.apply({"params": {"kernel": w}}, x)


def _beside(call: str, lecture: np.ndarray, ours: np.ndarray, how: str) -> None:
  """Prints the lecture's call and its result, then jaxcnn's result for the same inputs."""
  print(f"  print({call})")
  print(f"    lecture (numpy/scipy): {lecture}")
  print(f"    jaxcnn {how}: {ours}   equal")


def cell_7(results: dict) -> None:
  """In [7]: np.convolve in the three modes, both argument orders."""
  x, y = X_1D, Y_1D
  print(f"In [7]: x = {x}, y = {y}")
  lecture = {  # what the cell printed
      ("x", "full"): [-1, 0, -1, 2, -1, 1], ("y", "full"): [-1, 0, -1, 2, -1, 1],
      ("x", "same"): [-1, 0, -1, 2, -1], ("y", "same"): [-1, 0, -1, 2, -1],
      ("x", "valid"): [0, -1, 2, -1]}
  # numpy 'same' keeps the centre of 'full' starting at (K - 1) // 2: for K = 2 that pads the
  # left, (1, 0). jaxcnn/TensorFlow 'SAME' put the odd extra cell on the right, (0, 1).
  padding = {"full": "FULL", "same": [(1, 0)], "valid": "VALID"}
  for (first, mode), want in lecture.items():
    a, b = (x, y) if first == "x" else (y, x)
    ref = np.convolve(a, b, mode=mode)
    _check(f"np.convolve({first}, ..., {mode})", ref, want)
    # np.convolve slides the shorter argument over the longer (convolution commutes), so both
    # orders are jaxcnn.convolve with the signal x and the kernel y.
    ours = _np(F.convolve(_x1(x), _w1(y), padding=padding[mode])[0, :, 0])
    _check(f"jaxcnn.convolve {mode}", ours, want)
    if first == "x":
      _check(f"jax.scipy.signal.convolve {mode}",
             jsignal.convolve(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), mode),
             want)
      pads = shapes.resolve_padding(padding[mode], (len(x),), (len(y),), (1,))
      lax_out = lax.conv_general_dilated(_x1(x), jnp.flip(_w1(y), 0), (1,), pads,
                                         dimension_numbers=("NWC", "WIO", "NWC"))[0, :, 0]
      _check(f"lax.conv_general_dilated {mode}", lax_out, want)
      _check(f"Flax Conv {mode}", _flax_conv(_x1(x), jnp.flip(_w1(y), 0), padding[mode])[0, :, 0],
             want)
    call = f"np.convolve({'x, y' if first == 'x' else 'y, x'}, mode ={mode!r})"
    _beside(call, ref, ours, f"convolve(x, y, padding={padding[mode]!r})")
  tf_same = _np(F.convolve(_x1(x), _w1(y), padding="SAME")[0, :, 0])
  _check("jaxcnn.convolve SAME", tf_same, [0, -1, 2, -1, 1])
  print(f"  jaxcnn.convolve(x, y, padding='SAME') = {tf_same}: TensorFlow's SAME puts the extra "
        "pad cell on the right, numpy's 'same' on the left (jax.scipy, lax and a Flax Conv "
        "agree with numpy for full/same/valid above)")
  results["cell7_full"] = np.convolve(x, y, "full").tolist()
  results["cell7_valid"] = np.convolve(x, y, "valid").tolist()


def cell_20(results: dict) -> None:
  """In [20]: scipy.signal.convolve in 1-D, then ones((4, 4)) with [[1, 0], [0, 1]]."""
  x, y = X_1D, Y_1D
  print("In [20]:")
  ref = signal.convolve(x, y)
  _check("signal.convolve 1-D", ref, [-1, 0, -1, 2, -1, 1])
  ours = _np(F.convolve(_x1(x), _w1(y), padding="FULL")[0, :, 0])
  _beside("signal.convolve(x,y)", ref, ours, "convolve(x, y, padding='FULL')")
  x2, y2 = np.ones(16).reshape(4, 4), np.array([1, 0, 0, 1]).reshape(2, 2)
  print("  print(x, y, sep='\\n')")
  print(x2, y2, sep="\n")
  want = np.array([[1, 1, 1, 1, 0], [1, 2, 2, 2, 1], [1, 2, 2, 2, 1], [1, 2, 2, 2, 1],
                   [0, 1, 1, 1, 1]], np.float64)
  full = signal.convolve(x2, y2, mode="full")
  fill = signal.convolve2d(x2, y2, boundary="fill")
  _check("signal.convolve 2-D full", full, want)
  _check("signal.convolve2d fill", fill, want)
  ours = np.asarray(F.convolve(_x2(x2), _w2(y2), padding="FULL")[0, :, :, 0], np.float64)
  _check("jaxcnn.convolve 2-D FULL", ours, want)
  _check("jax.scipy.signal.convolve2d", jsignal.convolve2d(jnp.asarray(x2), jnp.asarray(y2)),
         want)
  print("  print(signal.convolve(x,y, mode='full')) and print(signal.convolve2d(x,y, "
        "boundary='fill')), the lecture's:")
  print(full)
  print("  jaxcnn.convolve(x, y, padding='FULL') (also jax.scipy.signal.convolve2d), equal:")
  print(ours)
  results["cell20_full_2d_sum"] = float(full.sum())


def cell_42(results: dict) -> None:
  """In [42]: the reversed kernel; convolving with it is cross-correlating with g."""
  f, g = F_42, G_42
  g_ = g[::-1]
  print(f"In [42]: f = {f}, g = {g}, g_ = g[::-1]")
  print(f"  print(g_) -> {g_}")
  ref = np.convolve(f, g_, mode="same")
  _check("np.convolve(f, g_, 'same')", ref, [-3, 2, 2, 2, 1])
  conv = _np(F.convolve(_x1(f), _w1(g_), padding="SAME")[0, :, 0])
  corr = _np(F.conv(_x1(f), _w1(g), padding="SAME")[0, :, 0])
  _check("jaxcnn.convolve(f, g_)", conv, ref)
  _check("jaxcnn.conv(f, g)", corr, ref)
  print(f"  np.convolve(f,g_,mode='same') -> {ref!r}   (the lecture's output)")
  print(f"    jaxcnn.convolve(f, g_, padding='SAME') = {conv}   equal")
  print(f"    jaxcnn.conv(f, g, padding='SAME')      = {corr}   equal: convolving with the "
        "reversed kernel is cross-correlating with g, what a CNN layer computes")
  results["cell42"] = ref.tolist()


def cell_49(out: pathlib.Path, figures: list, results: dict) -> None:
  """In [49]: the 2-D example, kernel flipped both ways, valid, sum 15."""
  f, g_ = F_49, G_49
  print("In [49]: f = np.array([1,2,1,2,1,1,1,1,1]).reshape(3,3), "
        "g_ = np.array([1,0.5,0.5,1]).reshape(2,2)")
  print("  print(f, g_) ->")
  print(f, g_)
  g = np.fliplr(np.flipud(g_))
  print("  g = np.fliplr(np.flipud(g_)); print(g) ->")
  print(g)
  c = signal.convolve(f, g, mode="valid")
  _check("signal.convolve(f, g, 'valid')", c, [[4, 4], [4, 3]])
  ours = np.asarray(F.convolve(_x2(f), _w2(g), padding="VALID")[0, :, :, 0], np.float64)
  _check("jaxcnn.convolve 2-D valid", ours, c)
  # g is g_ turned by 180 degrees, so convolving with g is cross-correlating with g_.
  _check("jaxcnn.conv(f, g_)", F.conv(_x2(f), _w2(g_))[0, :, :, 0], c)
  total = float(jnp.sum(ours))
  assert total == 15.0, total
  print("  c = signal.convolve(f,g, mode='valid'); print(c) ->")
  print(c)
  print("  jaxcnn.convolve(f, g, padding='VALID') (= jaxcnn.conv(f, g_)), equal:")
  print(ours)
  print(f"  c.sum() -> {float(c.sum())!r}   jaxcnn: {total!r}")
  results["cell49_sum"] = total
  results["cell49"] = c.tolist()

  fig = _common.new_figure(11, 3.4)
  axes = fig.subplots(1, 4, width_ratios=[3, 2, 2, 2])
  for ax, img, title in zip(axes, (f, g_, g, ours),
                            ("f", "g_", "g = fliplr(flipud(g_))",
                             f"convolve(f, g, 'valid')\nsum {total:g}")):
    _common.image_panel(ax, img, title, cmap="Blues", vmin=0)
    _common.annotate(ax, img, "{:g}", fontsize=11)
  _common.save(fig, out, "lecture_2d.png",
               "The lecture's 2-D example (In [49]): f, the kernel g_, the kernel flipped both "
               "ways (g: the same matrix, since g_ is symmetric under a half turn) and the "
               "valid convolution [[4, 4], [4, 3]], whose sum is 15. Each output cell is the "
               "sum of a 2x2 block of f weighted by g.", figures)


def cell_52_61(results: dict) -> None:
  """In [52] prints I and F; In [61] stops with an error; what it set out to compute."""
  print("In [52]: I = np.array([1,0,2,3,1,0,0,0,4]).reshape(3,3), "
        "F = np.array([1,0,0,1]).reshape(2,2)")
  print("  print(I); print(F) ->")
  print(I_52)
  print(F_52)
  print("In [61]: pool1 = torch.nn.MaxPool2d(2, stride=1); pool1(torch.from_numpy(I))")
  print("  lecture: RuntimeError: non-empty 3D or 4D (batch mode) tensor expected for input")
  try:
    F.max_pool(jnp.asarray(I_52, jnp.float32), 2, stride=1)
  except ValueError as e:
    message = str(e)
  else:
    raise AssertionError("max_pool accepted a 2-D array")
  assert "got shape (3, 3)" in message, message
  print(f"  jaxcnn.max_pool(I, 2, stride=1): ValueError: {message}")
  results["cell61_error"] = message
  print("  what the cell set out to compute (not in the lecture's output: its cell stops at "
        "the error):")
  x = _x2(I_52)  # I as a batch of one image with one channel: [1, 3, 3, 1]
  pooled = _np(F.max_pool(x, 2, stride=1)[0, :, :, 0])
  _check("max pool of I, window 2, stride 1", pooled, [[3, 2], [3, 4]])
  print(f"    pool1 on I as a [1, 3, 3, 1] batch: MaxPool2d(2, stride=1) -> "
        f"{pooled.tolist()}")
  conv1 = L.Conv(3, 3, padding=1)  # torch.nn.Conv2d(in_channels=1, out_channels=3, 3, padding=1)
  variables = conv1.init(jax.random.key(0), x)
  y = F.relu(conv1.apply(variables, x))
  assert y.shape == (1, 3, 3, 3), y.shape
  after_pool = F.max_pool(y, 2, stride=1)
  print(f"    conv1 = Conv2d(1 -> 3, 3, padding=1): {tuple(x.shape)} -> {tuple(y.shape)} "
        f"(NHWC; PyTorch's NCHW: (1, 3, 3, 3)), ReLU, pool1 -> {tuple(after_pool.shape)}")
  corr = _np(F.conv(x, _w2(F_52))[0, :, :, 0])
  _check("I filtered by F", corr, [[2, 0], [3, 5]])
  print(f"    I filtered by F (valid; F is symmetric under a half turn, so convolution and "
        f"cross-correlation agree): {corr.tolist()}")
  results["cell61_pool"] = pooled.tolist()
  results["I_filtered_by_F"] = corr.tolist()


def weight_counts(results: dict) -> None:
  """"Limitations of FFNN" and "Method 1: patch classifier", counted."""
  pixels = 1000 * 1000
  dense = pixels * pixels  # every one of 10^6 units sees every one of 10^6 pixels
  assert dense == 10 ** 12
  patch = shapes.conv_param_count(11, 1, 1) - 1  # one 11x11 filter, without its bias
  assert patch == 11 * 11 == 121
  print(f"FFNN: a 1000x1000 image to a hidden layer of 1000x1000 units: {dense:.0e} weights "
        f"(the lecture's 10^12); a patch classifier with an 11x11 filter: {patch} weights "
        f"(+1 bias), the same for every patch, whatever the image size")
  results["dense_weights_1000x1000"] = dense
  results["patch_11x11_weights"] = patch


def patch_classifier(out: pathlib.Path, figures: list, results: dict, quick: bool) -> None:
  """Method 1: ``f = ReLU(patch . filter)`` at every position, moved by a stride."""
  photo = _common.load_photo(48 if quick else 96).astype(np.float32)
  x = _x2((photo - 128.0) / 128.0)
  w = jax.random.normal(jax.random.key(0), (11, 11, 1, 1)) / 11.0   # one 11x11 filter
  for stride in (1, 2):
    p = F.patches(x, 11, stride=stride)                  # [1, H', W', 121]: one patch a row
    via_patches = F.relu(p @ w.reshape(-1, 1))           # ReLU(patch . filter) everywhere
    direct = F.relu(F.conv(x, w, stride=stride))
    err = float(jnp.max(jnp.abs(via_patches - direct)))
    assert err < 1e-4, err
    print(f"patch classifier, 11x11 filter, stride {stride}: image {tuple(x.shape[1:3])} -> "
          f"{p.shape[1] * p.shape[2]:,} patches of 121 pixels -> output "
          f"{tuple(via_patches.shape[1:3])}; ReLU(patches @ w) vs relu(conv(x, w)): max "
          f"|diff| {err:.1e}")
    results[f"patch_classifier_stride{stride}_out"] = list(via_patches.shape[1:3])
    if stride == 1:
      stride1, rows = via_patches, p
  results["patches_vs_conv_max_abs_diff"] = err
  fig = _common.new_figure(11, 3.6)
  axes = fig.subplots(1, 3, width_ratios=[1.2, 0.9, 1.2])
  _common.image_panel(axes[0], x[0, :, :, 0], f"input {x.shape[1]}x{x.shape[2]}")
  mid = rows.shape[1] // 2  # the middle image row crosses the face: patches with some contrast
  strip = np.asarray(rows[0, mid])
  axes[1].imshow(strip, cmap="gray", aspect="auto")
  axes[1].set_title(f"the patches along image row {mid}:\none 11x11 patch (121 pixels) a row",
                    fontsize=9)
  axes[1].set_xlabel("pixel of the patch")
  axes[1].set_ylabel("position along the row")
  _common.image_panel(axes[2], stride1[0, :, :, 0],
                      "ReLU(patch . filter) at every position\n= relu(conv(x, w)), stride 1",
                      cmap="magma", colorbar_fig=fig)
  _common.save(fig, out, "patch_classifier.png",
               "The lecture's patch classifier: one 11x11 filter (121 shared weights) dotted "
               "with every 11x11 patch of the image (middle: the patches of one image row, one "
               "per line), then ReLU. The right panel equals relu(conv(x, w)) to float32 "
               "rounding: a conv layer is this patch classifier slid over the image.", figures)


def pooling(out: pathlib.Path, figures: list, results: dict) -> None:
  """The pooling functions the lecture lists, on its I with pool1's window 2 and stride 1."""
  a = I_52.astype(np.float32)
  x = _x2(a)
  blocks = np.stack([a[i:i + 2, j:j + 2].reshape(-1) for i in range(2) for j in range(2)])
  blocks = blocks.reshape(2, 2, 4)  # [out row, out col, window cells]
  want = {
      "max": blocks.max(-1),                        # [[3, 2], [3, 4]]
      "average": blocks.mean(-1),                   # [[1.25, 0.75], [1, 1.25]]
      "sum": blocks.sum(-1),                        # [[5, 3], [4, 5]]
      "L1": np.abs(blocks).sum(-1),                 # = sum: I has no negative value
      "L2": np.sqrt((blocks ** 2).sum(-1)),         # [[sqrt 11, sqrt 5], [sqrt 10, sqrt 17]]
  }
  _check("hand max", want["max"], [[3, 2], [3, 4]])
  _check("hand sum", want["sum"], [[5, 3], [4, 5]])
  got = {
      "max": F.max_pool(x, 2, stride=1), "average": F.avg_pool(x, 2, stride=1),
      "sum": F.sum_pool(x, 2, stride=1), "L1": F.lp_pool(x, 1, 2, stride=1),
      "L2": F.lp_pool(x, 2, 2, stride=1),
  }
  print("pooling I (window 2, stride 1: pool1's settings), the functions the lecture lists:")
  for name, g in got.items():
    g = np.asarray(g[0, :, :, 0])
    np.testing.assert_allclose(g, want[name], rtol=1e-6, err_msg=name)
    print(f"  {name:8} {np.array2string(g, precision=3, separator=', ').replace(chr(10), '')}")
    results[f"pool_{name}"] = g.tolist()
  print("  (L1 equals sum here: I has no negative value)")
  fig = _common.new_figure(12, 3.3)
  axes = fig.subplots(1, 6, width_ratios=[1.5, 1, 1, 1, 1, 1])
  panels = [("I (3x3)", a)] + [(f"{n} pool", np.asarray(g[0, :, :, 0])) for n, g in got.items()]
  for ax, (title, img) in zip(axes, panels):
    _common.image_panel(ax, img, title, cmap="Blues", vmin=0)
    _common.annotate(ax, img)
  _common.save(fig, out, "pooling.png",
               "The lecture's I (In [52]) pooled with a 2x2 window moved one pixel at a time "
               "(pool1 = MaxPool2d(2, stride=1) of In [61]): four overlapping windows, so a "
               "2x2 output. Max keeps each window's largest value (4 appears once, 3 twice: "
               "the windows overlap); average, sum, L1 and L2 summarise all four cells.",
               figures)


def conv_vs_corr(out: pathlib.Path, figures: list, results: dict) -> None:
  """"Convolution vs. Cross-Correlation": an impulse through an asymmetric kernel."""
  impulse = np.zeros((7, 7))
  impulse[3, 3] = 1.0
  kernel = np.array([[1, 2, 3], [0, 0, 0], [0, 0, -1]], np.float32)  # asymmetric
  c = np.asarray(F.convolve(_x2(impulse), _w2(kernel), padding="SAME")[0, :, :, 0])
  r = np.asarray(F.conv(_x2(impulse), _w2(kernel), padding="SAME")[0, :, :, 0])
  _check("convolution of an impulse = kernel", c[2:5, 2:5], kernel)
  _check("cross-correlation of an impulse = kernel rotated 180", r[2:5, 2:5], kernel[::-1, ::-1])
  _check("scipy correlate2d", signal.correlate2d(impulse, kernel, "same"), r)
  _check("scipy convolve2d", signal.convolve2d(impulse, kernel, "same"), c)
  print("convolution vs cross-correlation: an impulse through an asymmetric kernel gives the "
        "kernel under convolution and the kernel turned by 180 degrees under "
        "cross-correlation (checked against scipy's convolve2d / correlate2d)")
  fig = _common.new_figure(11, 3.3)
  axes = fig.subplots(1, 4)
  for ax, img, title in zip(axes, (impulse, kernel, c, r),
                            ("input: one impulse", "asymmetric kernel",
                             "jaxcnn.convolve (true convolution)\n= kernel",
                             "jaxcnn.conv (cross-correlation)\n= kernel rotated 180°")):
    _common.image_panel(ax, img, title, diverging=True)
    _common.annotate(ax, img, "{:g}", skip_zero=True, fontsize=10)
  _common.save(fig, out, "conv_vs_corr.png",
               "The lecture's 'Convolution vs. Cross-Correlation', on an impulse through an "
               "asymmetric kernel. Convolution (signal processing, `np.convolve`) reproduces "
               "the kernel; cross-correlation (what CNN layers call convolution) reproduces it "
               "rotated by 180 degrees. Look at where the 3 and the -1 land in the last two "
               "panels.", figures)
  results["impulse_sum"] = float(c.sum())


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Prints and checks every cell of the lecture; writes four figures into ``out``."""
  del image_folder, seed  # no data, nothing random in the lecture's numbers
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  cell_7(results)
  cell_20(results)
  cell_42(results)
  cell_49(out, figures, results)
  cell_52_61(results)
  weight_counts(results)
  patch_classifier(out, figures, results, quick)
  pooling(out, figures, results)
  conv_vs_corr(out, figures, results)
  # Arrays go into the gallery's table as the lecture writes them.
  results = {k: str(v) if isinstance(v, list) else v for k, v in results.items()}
  return {"figures": figures, "results": results}
