"""CIFAR-10 with VGG-16 + BatchNorm (CIFAR variant, one dense head), kuangliu's recipe.

The common CIFAR training of VGG (kuangliu/pytorch-cifar ``main.py``): SGD momentum 0.9, weight
decay 5e-4, batch 128, learning rate 0.1 with cosine annealing over 200 epochs, 4-pixel
padding + random crop + horizontal flip, per-channel normalisation. Simonyan & Zisserman
(ICLR 2015) trained on ImageNet only; the BatchNorm CIFAR variant is what later work compares.
Deviation: weight decay touches kernels only (the engine's convention).

Command::

    python -m experiments.train --config vgg16_cifar10 \
        --workdir runs/vgg16_cifar10 \
        --config.data.image_folder=../shared/data/cifar10_jpeg_train.tar.gz

``--config.model=vgg11`` (13, 19) for the other depths.

Expected: kuangliu/pytorch-cifar's README lists 92.64% test accuracy for VGG16 with this
recipe (original lossless test set). NOT measured here: 200 epochs of a 313M-MAC net do not
fit the 2-core CPU (see the architectures lesson for its measured images/s). bfloat16 on an
accelerator, float32 on CPU.

Time: 200 epochs of this net take hours to days on a laptop CPU (its training images/s on
a 2-core CPU: BENCHMARKS.md, "The model zoo"); run it on an accelerator (bf16) or a bigger CPU.
"""

import ml_collections

from jaxcnn.train.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model = "vgg16"
  config.model_kwargs = ml_collections.ConfigDict({"width": 64})
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 200
  config.optimizer = "sgd"
  config.learning_rate = 0.1
  config.weight_decay = 5e-4
  config.schedule = "cosine"
  config.dtype = "auto"  # float32 on a CPU, bfloat16 on a TPU/GPU
  config.data.augment = "crop,flip"
  return config
