"""Lesson 2, convolution by hand (the course's numpy/scipy lecture), reproduced with jaxcnn.

    python -m experiments.lessons conv_by_hand [--quick]

Every result the lecture prints is computed with numpy/scipy *and* with jaxcnn's ``convolve`` /
``conv``, ``jax.scipy.signal``, ``lax.conv_general_dilated`` and a Flax layer, and asserted equal
(exactly: small integers are exact in float32). No data, no training; quick and full runs are
the same (about 3 s on a 2-core CPU, most of it compiling). It prints:

* ``np.convolve([1,1,2,0,1], [-1,1])``: full ``[-1 0 -1 2 -1 1]``, same ``[-1 0 -1 2 -1]``,
  valid ``[0 -1 2 -1]``. numpy's ``same`` pads an even kernel on the *left*; jaxcnn's (and
  TensorFlow's) ``'SAME'`` pads on the right and gives ``[0 -1 2 -1 1]``: the lesson shows both
  and the explicit padding ``[(1, 0)]`` that reproduces numpy.
* ``signal.convolve2d(ones((4,4)), [[1,0],[0,1]])`` (full, 5x5: 1s on the border, 2s inside,
  0s in two corners).
* the flipped-kernel example ``[-3 2 2 2 1]`` (the difference kernel ``[1, -1]`` on
  ``[3, 0, 2, 4, 6, 7]``; cross-correlation gives the opposite signs ``[3 -2 -2 -2 -1]``) and
  the 2-D example ``[[4 4] [4 3]]``, sum 15. The issue quotes only these outputs; the inputs here
  are the simplest that give them.
* convolution vs cross-correlation on an asymmetric kernel (an impulse reproduces the kernel
  under convolution and the kernel rotated 180 degrees under cross-correlation);
* the "patch classifier" view: ``patches(x) @ w.reshape(-1, C_out) == conv(x, w)`` on the photo;
* pooling by max, average, sum, L1 and L2 on one 4x4 worked example;
* weights of a dense layer on a 1000x1000 image to 1000x1000 units (10^12) against a 3x3 conv
  layer with 64 filters (640).
"""

from __future__ import annotations

import pathlib

import flax.linen as nn
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

TITLE = "Convolution by hand: numpy/scipy results reproduced and checked with jaxcnn"
LESSON = 2


def _check(label: str, got, want) -> None:
  got, want = np.asarray(got), np.asarray(want)
  if got.shape != want.shape or not np.array_equal(got, want):
    raise AssertionError(f"{label}: got {got.tolist()}, expected {want.tolist()}")


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


def one_d(results: dict) -> None:
  x, k = [1, 1, 2, 0, 1], [-1, 1]
  expected = {"full": [-1, 0, -1, 2, -1, 1], "same": [-1, 0, -1, 2, -1], "valid": [0, -1, 2, -1]}
  # numpy 'same' keeps the centre of 'full' starting at (K - 1) // 2: for K = 2 that pads the
  # left, (1, 0). jaxcnn/TensorFlow 'SAME' put the odd extra cell on the right, (0, 1).
  jaxcnn_padding = {"full": "FULL", "same": [(1, 0)], "valid": "VALID"}
  print(f"x = {x}, k = {k}")
  for mode, want in expected.items():
    ref = np.convolve(x, k, mode)
    _check(f"np.convolve {mode}", ref, want)
    pad = jaxcnn_padding[mode]
    ours = F.convolve(_x1(x), _w1(k), padding=pad)[0, :, 0]
    _check(f"jaxcnn.convolve {mode}", ours, want)
    _check(f"jax.scipy.signal.convolve {mode}",
           jsignal.convolve(jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32), mode), want)
    pads = shapes.resolve_padding(pad, (len(x),), (len(k),), (1,))
    lax_out = lax.conv_general_dilated(_x1(x), jnp.flip(_w1(k), 0), (1,), pads,
                                       dimension_numbers=("NWC", "WIO", "NWC"))[0, :, 0]
    _check(f"lax.conv_general_dilated {mode}", lax_out, want)
    _check(f"Flax Conv {mode}", _flax_conv(_x1(x), jnp.flip(_w1(k), 0), pad)[0, :, 0], want)
    print(f"  np.convolve(x, k, {mode!r:8}) = {np.array2string(ref)}   "
          f"jaxcnn.convolve(padding={pad!r}) equal; jax.scipy, lax, Flax equal")
  tf_same = F.convolve(_x1(x), _w1(k), padding="SAME")[0, :, 0]
  _check("jaxcnn.convolve SAME", tf_same, [0, -1, 2, -1, 1])
  print(f"  jaxcnn.convolve(padding='SAME') = {np.array2string(np.asarray(tf_same, int))}"
        "   (TensorFlow's SAME: the extra pad cell goes right)")
  results["np_convolve_full_sum"] = int(np.sum(expected["full"]))


def two_d_ones(results: dict) -> np.ndarray:
  a, k = np.ones((4, 4)), np.array([[1, 0], [0, 1]])
  want = np.array([[1, 1, 1, 1, 0],
                   [1, 2, 2, 2, 1],
                   [1, 2, 2, 2, 1],
                   [1, 2, 2, 2, 1],
                   [0, 1, 1, 1, 1]])
  ref = signal.convolve2d(a, k)
  _check("signal.convolve2d", ref, want)
  _check("jaxcnn.convolve 2-D FULL", F.convolve(_x2(a), _w2(k), padding="FULL")[0, :, :, 0], want)
  _check("jax.scipy.signal.convolve2d", jsignal.convolve2d(jnp.asarray(a), jnp.asarray(k)), want)
  print("signal.convolve2d(np.ones((4, 4)), [[1, 0], [0, 1]]) (mode 'full'); jaxcnn equal:")
  print(np.array2string(ref.astype(int)))
  results["convolve2d_ones_sum"] = int(ref.sum())
  return ref


def flipped_kernel(results: dict) -> None:
  x, k = [3, 0, 2, 4, 6, 7], [1, -1]
  conv_want, corr_want = [-3, 2, 2, 2, 1], [3, -2, -2, -2, -1]
  _check("np.convolve valid", np.convolve(x, k, "valid"), conv_want)
  _check("np.correlate valid", np.correlate(x, k, "valid"), corr_want)
  _check("jaxcnn.convolve", F.convolve(_x1(x), _w1(k))[0, :, 0], conv_want)
  _check("jaxcnn.conv", F.conv(_x1(x), _w1(k))[0, :, 0], corr_want)
  print(f"flipped kernel: x = {x}, k = {k}")
  print(f"  np.convolve(x, k, 'valid')  = {np.convolve(x, k, 'valid')}   "
        "(kernel flipped to [-1, 1]: x[i+1] - x[i]) = jaxcnn.convolve")
  print(f"  np.correlate(x, k, 'valid') = {np.correlate(x, k, 'valid')}   "
        "(kernel as is: x[i] - x[i+1]) = jaxcnn.conv, what every CNN layer computes")
  results["flipped_kernel_first"] = -3


def two_d_example(results: dict) -> None:
  x = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0]])
  k = np.ones((2, 2))
  want = np.array([[4, 4], [4, 3]])
  ref = signal.convolve2d(x, k, mode="valid")
  _check("signal.convolve2d valid", ref, want)
  ours = F.convolve(_x2(x), _w2(k))[0, :, :, 0]
  _check("jaxcnn.convolve 2-D", ours, want)
  _check("jaxcnn.conv 2-D", F.conv(_x2(x), _w2(k))[0, :, :, 0], want)
  total = float(jnp.sum(ours))
  assert total == 15.0, total
  print(f"2-D: x = {x.tolist()}, k = ones((2, 2)), valid -> {ref.astype(int).tolist()}, "
        f"sum {int(total)}")
  results["two_d_sum"] = int(total)


def conv_vs_corr(out: pathlib.Path, figures: list, results: dict) -> None:
  impulse = np.zeros((7, 7))
  impulse[3, 3] = 1.0
  kernel = np.array([[1, 2, 3], [0, 0, 0], [0, 0, -1]], np.float32)  # asymmetric
  c = np.asarray(F.convolve(_x2(impulse), _w2(kernel), padding="SAME")[0, :, :, 0])
  r = np.asarray(F.conv(_x2(impulse), _w2(kernel), padding="SAME")[0, :, :, 0])
  _check("convolution of an impulse = kernel", c[2:5, 2:5], kernel)
  _check("cross-correlation of an impulse = kernel rotated 180", r[2:5, 2:5], kernel[::-1, ::-1])
  _check("scipy correlate2d", signal.correlate2d(impulse, kernel, "same"), r)
  _check("scipy convolve2d", signal.convolve2d(impulse, kernel, "same"), c)
  print("convolution of an impulse copies the kernel; cross-correlation copies it rotated by "
        "180 degrees (checked against scipy's convolve2d / correlate2d)")
  fig = _common.new_figure(11, 3.3)
  axes = fig.subplots(1, 4)
  for ax, img, title in zip(axes, (impulse, kernel, c, r),
                            ("input: one impulse", "asymmetric kernel",
                             "jaxcnn.convolve (true convolution)\n= kernel",
                             "jaxcnn.conv (cross-correlation)\n= kernel rotated 180°")):
    _common.image_panel(ax, img, title, diverging=True)
    _common.annotate(ax, img, "{:g}", skip_zero=True, fontsize=10)
  _common.save(fig, out, "conv_vs_corr.png",
               "An impulse through an asymmetric kernel. Convolution (signal processing, "
               "`np.convolve`) reproduces the kernel; cross-correlation (what CNN layers call "
               "convolution) reproduces it rotated by 180 degrees. Look at where the 3 and the -1 "
               "land in the last two panels.", figures)
  results["impulse_sum"] = float(c.sum())


def patch_classifier(out: pathlib.Path, figures: list, results: dict, quick: bool) -> None:
  photo = _common.load_photo(48 if quick else 96).astype(np.float32)
  x = _x2((photo - 128.0) / 128.0)
  w = jax.random.normal(jax.random.key(0), (3, 3, 1, 4))
  p = F.patches(x, 3)                                   # [1, H-2, W-2, 9]
  via_patches = p @ w.reshape(-1, 4)                    # the same dense layer on every patch
  direct = F.conv(x, w)
  err = float(jnp.max(jnp.abs(via_patches - direct)))
  assert err < 1e-4, err
  print(f"patch classifier: photo {tuple(x.shape)} -> patches {tuple(p.shape)} "
        f"(one row of 9 numbers per position); patches @ w[9, 4] vs conv: max |diff| {err:.1e}")
  results["patches_rows"] = int(np.prod(p.shape[:3]))
  results["patches_vs_conv_max_abs_diff"] = err
  fig = _common.new_figure(11, 3.6)
  axes = fig.subplots(1, 3, width_ratios=[1.2, 0.9, 1.2])
  _common.image_panel(axes[0], x[0, :, :, 0], f"input {x.shape[1]}x{x.shape[2]}")
  mid = p.shape[1] // 2  # the middle image row crosses the face: patches with some contrast
  rows = np.asarray(p[0, mid])
  axes[1].imshow(rows, cmap="gray", aspect="auto")
  axes[1].set_title(f"patches of image row {mid}: one row per position\n"
                    f"({rows.shape[0]} of {results['patches_rows']}, 9 columns)", fontsize=9)
  axes[1].set_xlabel("pixel in the 3x3 patch")
  axes[1].set_ylabel("output column")
  _common.image_panel(axes[2], via_patches[0, :, :, 0],
                      "(patches @ w)[:, 0] reshaped\n= conv(x, w), filter 0", diverging=True,
                      colorbar_fig=fig)
  _common.save(fig, out, "patch_classifier.png",
               "A conv layer is one small dense layer applied to every patch: cut the image into "
               "3x3 patches (middle, one row each), multiply by the kernel reshaped to [9, 4], "
               "reshape back. The right panel equals `conv(x, w)` to float32 rounding.", figures)


def pooling(out: pathlib.Path, figures: list, results: dict) -> None:
  a = np.array([[1, -2, 3, 0],
                [4, 0, -1, 2],
                [0, 1, -4, 3],
                [-2, 2, 1, 1]], np.float32)
  x = _x2(a)
  blocks = a.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)  # [2, 2, window cells]
  want = {
      "max": blocks.max(-1),                                # [[4, 3], [2, 3]]
      "average": blocks.mean(-1),                           # [[0.75, 1], [0.25, 0.25]]
      "sum": blocks.sum(-1),                                # [[3, 4], [1, 1]]
      "L1": np.abs(blocks).sum(-1),                         # [[7, 6], [5, 9]]
      "L2": np.sqrt((blocks ** 2).sum(-1)),                 # [[sqrt 21, sqrt 14], [3, sqrt 27]]
  }
  _check("hand max", want["max"], [[4, 3], [2, 3]])
  _check("hand sum", want["sum"], [[3, 4], [1, 1]])
  _check("hand L1", want["L1"], [[7, 6], [5, 9]])
  got = {
      "max": F.max_pool(x, 2), "average": F.avg_pool(x, 2), "sum": F.sum_pool(x, 2),
      "L1": F.lp_pool(x, 1, 2), "L2": F.lp_pool(x, 2, 2),
  }
  print("pooling, window 2, stride 2, on")
  print(np.array2string(a.astype(int)))
  for name, g in got.items():
    g = np.asarray(g[0, :, :, 0])
    np.testing.assert_allclose(g, want[name], rtol=1e-6, err_msg=name)
    print(f"  {name:8} {np.array2string(g, precision=3, separator=', ').replace(chr(10), '')}")
    results[f"pool_{name}_sum"] = float(g.sum())
  fig = _common.new_figure(12, 2.9)
  axes = fig.subplots(1, 6, width_ratios=[2, 1, 1, 1, 1, 1])
  panels = [("input 4x4", a)] + [(f"{n} pool", np.asarray(g[0, :, :, 0])) for n, g in got.items()]
  for ax, (title, img) in zip(axes, panels):
    _common.image_panel(ax, img, title, diverging=True)
    _common.annotate(ax, img)
  for v in (1.5,):  # the 2x2 windows on the input
    axes[0].axhline(v, color="k", lw=2)
    axes[0].axvline(v, color="k", lw=2)
  _common.save(fig, out, "pooling.png",
               "One 4x4 input (its four 2x2 windows marked) pooled five ways. Max keeps the "
               "strongest response, average and sum let positive and negative cells cancel, "
               "L1 and L2 measure the window's energy whatever the signs.", figures)


def weight_counts(results: dict) -> None:
  pixels = 1000 * 1000
  dense = pixels * pixels  # every one of 10^6 units sees every one of 10^6 pixels
  assert dense == 10 ** 12
  conv = shapes.conv_param_count(3, 1, 64)
  assert conv == 3 * 3 * 1 * 64 + 64 == 640
  print(f"weights: dense 1000x1000 image -> 1000x1000 units: {dense:.0e} "
        f"(+{pixels:,} biases); Conv(1 -> 64, 3x3): {conv} whatever the image size")
  results["dense_weights_1000x1000"] = dense
  results["conv3x3_64_params"] = conv


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Prints and checks every result of the lecture; writes three figures into ``out``."""
  del image_folder, seed  # no data, nothing random that matters
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  one_d(results)
  two_d_ones(results)
  flipped_kernel(results)
  two_d_example(results)
  conv_vs_corr(out, figures, results)
  patch_classifier(out, figures, results, quick)
  pooling(out, figures, results)
  weight_counts(results)
  return {"figures": figures, "results": results}
