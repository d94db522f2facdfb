"""CIFAR-10 with pre-activation ResNet-18 (CIFAR stem), kuangliu's recipe.

He, Zhang, Ren, Sun, "Identity mappings in deep residual networks" (ECCV 2016) with the 3x3
CIFAR stem of kuangliu/pytorch-cifar (``PreActResNet18``, 11,171,146 parameters): SGD momentum
0.9, weight decay 5e-4, batch 128, learning rate 0.1 with cosine annealing over 200 epochs,
4-pixel padding + random crop + horizontal flip. Deviation: weight decay touches kernels only.

Command::

    python -m experiments.train --config experiments/configs/preact_resnet18_cifar10.py \
        --workdir runs/preact_resnet18_cifar10 \
        --config.data.image_folder=../shared/data/cifar10_jpeg_train.tar.gz

``--config.model=resnet18`` trains the post-activation ResNet-18 (11,173,962 parameters).

Expected: kuangliu/pytorch-cifar's README lists 95.11% test accuracy for PreActResNet18 (and
93.02% for ResNet18) with this recipe, on the original lossless test set. NOT measured here:
200 epochs of a 555M-MAC net do not fit the 2-core CPU. bfloat16 on an accelerator, float32 on
CPU.
"""

import jax
import ml_collections

from jaxcnn.configs import cifar10_tutorial


def get_config() -> ml_collections.ConfigDict:
  config = cifar10_tutorial.get_config()
  config.model = "preact_resnet18"
  config.model_kwargs = ml_collections.ConfigDict({"width": 64, "final_norm": False})
  config.batch_size = 128
  config.num_epochs = 200
  config.optimizer = "sgd"
  config.momentum = 0.9
  config.nesterov = False
  config.learning_rate = 0.1
  config.weight_decay = 5e-4
  config.schedule = "cosine"
  config.dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
  config.checkpoint_every_steps = 0
  config.data.augment = "crop,flip"
  config.data.normalize = "dataset"
  return config
