"""Lesson 4, custom filters (the course notes' "Filters & Edges", "High-pass Filters", "Edge
Handling" and quiz Q3, "Kernels"): hand-made kernels on a photo, with jaxcnn.

    python -m experiments.lessons edge_filters [--quick]

On matplotlib's bundled Grace Hopper photo (grayscale; 512x600, or its 150x128 copy with
``--quick``), filtered with ``jaxcnn.functional.conv`` (cross-correlation, what OpenCV's
``filter2D`` computes). No training; seconds on a 2-core CPU (quick or full). It prints:

* the quiz's answer, measured. The notes keep the quiz's picture of four kernels out of their
  text; its answer, ``d``, is explained as the kernel that "finds the difference between the
  top and bottom edges surrounding a given pixel": the Sobel-y kernel
  ``[[-1 -2 -1] [0 0 0] [1 2 1]]``. The other three here are stand-ins for the picture's, kernels
  the notes discuss: ``a``, the high-pass edge kernel ``[[0 -1 0] [-1 4 -1] [0 -1 0]]`` (both
  edge directions); ``b``, Sobel-x (vertical edges only); ``c``, a 3x3 box blur (a low-pass
  filter: it passes flat regions through). Each kernel's mean absolute response to a pure
  horizontal edge, a pure vertical edge and a flat image decides: ``d`` alone answers the
  horizontal edge only (asserted);
* the photo through Sobel x, Sobel y, the high-pass kernel, the box blur and the sharpened photo
  (the photo plus its high-pass response, ``[[0 -1 0] [-1 5 -1] [0 -1 0]]``), the last two drawn
  as photos;
* the uint8-clipping pitfall: storing the Sobel-x response in uint8 (as ``filter2D(img, -1, k)``
  does) loses every negative response: about half of the edge pixels;
* the notes' three ways of handling the image edge (extend the border pixels, pad with zeros,
  crop): output shapes, and the false edge zero padding draws along the border.
"""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np

from experiments.lessons import _common
from jaxcnn import functional as F

TITLE = "Edge filters: Sobel, high-pass, the quiz's kernels, uint8 clipping and image edges"
LESSON = 4

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
SOBEL_Y = SOBEL_X.T.copy()
HIGH_PASS = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32)
SHARPEN = HIGH_PASS + np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)  # photo + high-pass
QUIZ = {  # d as the quiz's explanation describes it; a-c stand in for its picture's others
    "a": HIGH_PASS,
    "b": SOBEL_X,
    "c": np.full((3, 3), 1 / 9, np.float32),
    "d": SOBEL_Y,
}


def filter2d(img: np.ndarray, kernel: np.ndarray, padding="SAME") -> np.ndarray:
  """``img: [H, W]`` float, ``kernel: [k, k]`` -> cross-correlation ``[H', W']`` (float32)."""
  x = jnp.asarray(img, jnp.float32).reshape(1, *img.shape, 1)
  w = jnp.asarray(kernel, jnp.float32).reshape(*kernel.shape, 1, 1)
  return np.asarray(F.conv(x, w, padding=padding)[0, :, :, 0])


def quiz(results: dict) -> str:
  size = 32
  horizontal = np.zeros((size, size), np.float32)
  horizontal[size // 2:] = 1.0          # dark above, bright below: a horizontal edge
  vertical = horizontal.T.copy()        # dark left, bright right: a vertical edge
  print("quiz: which kernel finds horizontal edges? mean |response| (VALID) to")
  print(f"  {'kernel':8} {'horizontal edge':>16} {'vertical edge':>14} {'flat image':>11}")
  answer = []
  for name, k in QUIZ.items():
    h = float(np.abs(filter2d(horizontal, k, "VALID")).mean())
    v = float(np.abs(filter2d(vertical, k, "VALID")).mean())
    flat = float(np.abs(filter2d(np.ones_like(horizontal), k, "VALID")).mean())
    print(f"  {name:8} {h:16.4f} {v:14.4f} {flat:11.4f}")
    results[f"quiz_{name}_horizontal"] = h
    results[f"quiz_{name}_vertical"] = v
    if h > 0 and v == 0 and flat == 0:
      answer.append(name)
  assert answer == ["d"], answer
  print(f"  -> kernel {answer[0]} (Sobel-y: bottom row minus top row) responds to the horizontal "
        "edge only: the notes' answer d")
  return answer[0]


def filters_figure(photo: np.ndarray, out: pathlib.Path, figures: list, results: dict) -> None:
  x = (photo.astype(np.float32) - 128.0) / 128.0
  panels = [("photo", x, False)]
  for name, k in (("Sobel x (vertical edges; quiz b)", SOBEL_X),
                  ("Sobel y (horizontal edges; quiz d)", SOBEL_Y),
                  ("high-pass (both directions; quiz a)", HIGH_PASS)):
    panels.append((name, filter2d(x, k), True))
  panels.append(("box blur (low-pass; quiz c)", filter2d(x, QUIZ["c"]), False))
  panels.append(("sharpened: photo + high-pass", np.clip(filter2d(x, SHARPEN), -1, 1), False))
  fig = _common.new_figure(12, 7.4)
  axes = fig.subplots(2, 3).ravel()
  for ax, (title, img, div) in zip(axes, panels):
    if div:
      # Clip the colour scale at the 99.5th percentile so the many mid-size edges show.
      lim = float(np.percentile(np.abs(img), 99.5)) or 1.0
      ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
      ax.set_title(f"{title}\n(red +, blue -)", fontsize=10)
    else:  # a filtered photo is still a photo: drawn in grey on the photo's own scale
      ax.imshow(img, cmap="gray", vmin=-1, vmax=1)
      ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
  results["sobel_x_max_abs"] = float(np.abs(panels[1][1]).max())
  _common.save(fig, out, "filters.png",
               "The photo through hand-made kernels. Sobel x lights up vertical edges (the "
               "jacket's vertical lines), Sobel y horizontal ones (the cap's brim, the braid "
               "on the sleeves); red and blue are the two directions of the same edge. The "
               "high-pass kernel responds to both. The box blur (a low-pass filter) and the "
               "sharpened photo (photo + high-pass) are not edge maps but photos, drawn in "
               "grey: one softer, one crisper than the original.", figures)


def uint8_pitfall(photo: np.ndarray, out: pathlib.Path, figures: list, results: dict) -> None:
  y = filter2d(photo.astype(np.float32), SOBEL_X)
  as_uint8 = np.clip(y, 0, 255).astype(np.uint8)  # what a uint8 output buffer keeps
  edges = np.abs(y) > 50
  lost = float(np.mean(y[edges] < 0))
  print(f"uint8 pitfall: of the {int(edges.sum()):,} Sobel-x edge pixels (|response| > 50), "
        f"{lost:.1%} are negative and become 0 in uint8; the float result keeps them")
  results["uint8_negative_edges_lost_fraction"] = lost
  assert 0.2 < lost < 0.8, lost
  fig = _common.new_figure(12, 4.6)
  axes = fig.subplots(1, 3)
  lim = float(np.percentile(np.abs(y), 99.5))
  axes[0].imshow(y, cmap="RdBu_r", vmin=-lim, vmax=lim)
  axes[0].set_title("float32 response\n(red +, blue -: both directions)", fontsize=10)
  axes[1].imshow(as_uint8, cmap="gray", vmin=0, vmax=min(255, lim))
  axes[1].set_title(f"stored as uint8 (clipped to 0..255)\n{lost:.0%} of the edges lost",
                    fontsize=10)
  axes[2].imshow(np.abs(y), cmap="gray", vmin=0, vmax=lim)
  axes[2].set_title("the fix: float, then |response|\n(every edge kept)", fontsize=10)
  for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
  _common.save(fig, out, "uint8_clipping.png",
               "The uint8 pitfall. Left: Sobel x in float, negative responses in blue. Middle: "
               "the same result stored in uint8, as a uint8 output buffer does: every blue edge "
               "(dark-to-bright from right to left) is gone. Right: take the absolute value in "
               "float and nothing is lost.", figures)


def image_edges(photo: np.ndarray, out: pathlib.Path, figures: list, results: dict) -> None:
  x = photo.astype(np.float32) / 255.0
  extended = filter2d(np.pad(x, 1, mode="edge"), SOBEL_Y, "VALID")
  zeros = filter2d(x, SOBEL_Y, "SAME")
  cropped = filter2d(x, SOBEL_Y, "VALID")
  h, w = x.shape
  assert extended.shape == zeros.shape == (h, w) and cropped.shape == (h - 2, w - 2)
  top_ext, top_zero = float(np.abs(extended[0]).mean()), float(np.abs(zeros[0]).mean())
  print(f"image edges (Sobel y): extend -> {extended.shape}, zero padding -> {zeros.shape}, "
        f"crop -> {cropped.shape}; mean |response| on the top row: extend {top_ext:.3f}, "
        f"zeros {top_zero:.3f} (a false edge: the photo meets black)")
  results["edge_top_row_extend"] = top_ext
  results["edge_top_row_zeros"] = top_zero
  assert top_zero > 2 * top_ext
  n = min(40, h // 3)
  # The top-right corner is plain grey background: any edge drawn there is the padding's.
  fig = _common.new_figure(12, 4.8)
  axes = fig.subplots(1, 3)
  lim = float(np.abs(zeros[:n, -n:]).max())
  for ax, img, title in ((axes[0], extended, "extend the border pixels\n"),
                         (axes[1], zeros, "pad with zeros ('SAME')\n"),
                         (axes[2], cropped, "crop ('VALID')\n")):
    ax.imshow(np.abs(img[:n, -n:]), cmap="magma", vmin=0, vmax=lim)
    ax.set_title(f"{title}output {img.shape[0]}x{img.shape[1]}; top-right {n}x{n} shown",
                 fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
  _common.save(fig, out, "image_edges.png",
               "Three ways to handle the image edge, Sobel y (|response|), top-right corner (plain background). "
               "Zero padding (middle) draws a bright false edge along the top, where the photo "
               "meets the black padding; extending the border (left) does not; cropping (right) "
               "has no border row at all and the output is 2 pixels smaller.", figures)


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0) -> dict:
  """Answers the quiz, shows the filters, the uint8 pitfall and the border handling."""
  del image_folder, seed
  out = pathlib.Path(out)
  figures: list = []
  results: dict = {}
  photo = _common.load_photo(128 if quick else None)
  print(f"photo: grayscale {photo.shape[0]}x{photo.shape[1]} (matplotlib's grace_hopper.jpg)")
  results["quiz_answer_is_d"] = quiz(results) == "d"
  filters_figure(photo, out, figures, results)
  uint8_pitfall(photo, out, figures, results)
  image_edges(photo, out, figures, results)
  return {"figures": figures, "results": results}
