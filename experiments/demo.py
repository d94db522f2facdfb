"""First-run demo: the tutorial CNN's summary, and a convolution checked against SciPy.

Run from the repository root::

    python -m experiments.demo

It prints the Keras-like summary of ``tutorial_cnn`` on a 32x32x3 image (122,570 parameters,
as in the Keras tutorial) and the largest absolute difference between ``jaxcnn.functional.conv2d``
and ``scipy.signal.correlate2d`` on a random 32x32 image and 3x3 kernel (float32: ~1e-6).
Takes a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import jax
import numpy as np
import scipy.signal

from jaxcnn import functional as F
from jaxcnn import inspect, models


def conv_vs_scipy(seed: int = 0, size: int = 32, kernel_size: int = 3) -> float:
  """Max |jaxcnn conv2d - scipy correlate2d| on a random image ('valid' mode)."""
  rng = np.random.default_rng(seed)
  image = rng.standard_normal((size, size)).astype(np.float32)
  kernel = rng.standard_normal((kernel_size, kernel_size)).astype(np.float32)
  ours = F.conv2d(image[None, :, :, None], kernel[:, :, None, None])[0, :, :, 0]
  theirs = scipy.signal.correlate2d(image.astype(np.float64), kernel.astype(np.float64),
                                    mode="valid")
  return float(np.max(np.abs(np.asarray(ours, np.float64) - theirs)))


def main(argv: Sequence[str] | None = None) -> float:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="tutorial_cnn", choices=sorted(models.MODELS))
  parser.add_argument("--input-shape", default="1,32,32,3",
                      help="B,H,W,C of the summary input (default: %(default)s)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  input_shape = tuple(int(d) for d in args.input_shape.split(","))
  inspect.summary(models.get_model(args.model), input_shape)
  err = conv_vs_scipy(args.seed)
  print(f"\nconv2d vs scipy.signal.correlate2d (32x32 image, 3x3 kernel, 'valid'): "
        f"max abs error {err:.2e}  [{jax.default_backend()}]")
  return err


if __name__ == "__main__":
  main()
