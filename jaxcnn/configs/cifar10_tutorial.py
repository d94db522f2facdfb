"""CIFAR-10 with the course's Keras tutorial CNN: Adam 1e-3, batch 32, 10 epochs, no augmentation.

The recipe of TensorFlow's "Convolutional Neural Network (CNN)" tutorial, which the course uses:
Conv(32)-Pool-Conv(64)-Pool-Conv(64)-Dense(64)-Dense(10) (122,570 parameters), Adam at 1e-3,
batch 32, 10 epochs, no augmentation, no schedule. Validation is the last 5,000 images of the
training split (``train[45000:]``); the official test split is kept aside.

Command (the shared JPEG copy of CIFAR-10; drop ``data.image_folder`` to use tfds)::

    python -m experiments.train --config cifar10_tutorial \
        --workdir runs/cifar10_tutorial \
        --config.data.image_folder=../shared/data/cifar10_jpeg_train.tar.gz

Re-running the same command resumes from ``runs/cifar10_tutorial/checkpoints``.

What it reaches (validation accuracy after 10 epochs) and how long an epoch takes on a CPU,
beside PyTorch and Keras running the same recipe: BENCHMARKS.md, "The course recipe". The
course reports over 70% test accuracy on the original, lossless CIFAR-10.

Every key, its default and its meaning: :mod:`jaxcnn.train.config`.
"""

import ml_collections

from jaxcnn.train.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()  # the schema's defaults are this recipe; the rest is how it is run here
  config.model_kwargs = ml_collections.ConfigDict({"hidden": 64})  # `--config.model_kwargs.hidden=512`
  config.eval_batch_size = 1000
  config.checkpoint_every_steps = 500
  config.data.normalize = "unit"  # x / 255, as the tutorial (and the peers in BENCHMARKS.md)
  return config
