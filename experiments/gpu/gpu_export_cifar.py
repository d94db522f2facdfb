"""Exports the CIFAR-10 arrays both speedruns read (jaxcnn's and airbench's) to one .npz.

    python -m experiments.gpu.gpu_export_cifar --image-folder .data/cifar10_jpeg_train.tar.gz \
        --out .data/cifar10_speedrun.npz \
        [--train-split 'train[:45000]' --eval-split 'train[45000:]']

Writes ``x_train, y_train, x_eval, y_eval`` (uint8 ``[N, 32, 32, 3]`` NHWC, int64 labels) from
the class-per-folder copy (decoded with jaxcnn.data, i.e. PIL; no TensorFlow needed). The
arrays are uncompressed (CIFAR pixels do not compress: zlib keeps 93%), so the file is 154 MB:
build it on the machine that runs the comparison, from the 16 MB JPEG tarball.
"""

import argparse
import pathlib

import numpy as np


def export(image_folder: str, out: str, train_split: str, eval_split: str) -> dict[str, tuple]:
  from jaxcnn import data
  load = lambda split: data.load_arrays("cifar10", split, image_folder=image_folder,
                                        cache=False)
  train, evaluation = load(train_split), load(eval_split)
  arrays = {"x_train": train["image"], "y_train": train["label"].astype(np.int64),
            "x_eval": evaluation["image"], "y_eval": evaluation["label"].astype(np.int64)}
  pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
  np.savez(out, **arrays)
  return {k: v.shape for k, v in arrays.items()}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--image-folder", required=True)
  p.add_argument("--out", default=".data/cifar10_speedrun.npz")
  p.add_argument("--train-split", default="train[:45000]")
  p.add_argument("--eval-split", default="train[45000:]")
  a = p.parse_args()
  print(f"wrote {a.out}: {export(a.image_folder, a.out, a.train_split, a.eval_split)}")


if __name__ == "__main__":
  main()
