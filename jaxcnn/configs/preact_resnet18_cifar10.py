"""CIFAR-10 with pre-activation ResNet-18 (CIFAR stem), kuangliu's recipe.

He, Zhang, Ren, Sun, "Identity mappings in deep residual networks" (ECCV 2016) with the 3x3
CIFAR stem of kuangliu/pytorch-cifar (``PreActResNet18``, 11,171,146 parameters): SGD momentum
0.9, weight decay 5e-4, batch 128, learning rate 0.1 with cosine annealing over 200 epochs,
4-pixel padding + random crop + horizontal flip. Deviation: weight decay touches kernels only.

Command::

    python -m experiments.train --config preact_resnet18_cifar10 \
        --workdir runs/preact_resnet18_cifar10 \
        --config.data.image_folder=../shared/data/cifar10_jpeg_train.tar.gz

``--config.model=resnet18`` trains the post-activation ResNet-18 (11,173,962 parameters).

Expected: kuangliu/pytorch-cifar's README lists 95.11% test accuracy for PreActResNet18 (and
93.02% for ResNet18) with this recipe, on the original lossless test set. Not measured with this config:
200 epochs of a 555M-MAC net do not fit the 2-core CPU. bfloat16 on an accelerator, float32 on
CPU.

Time: 200 epochs of this net take hours to days on a laptop CPU (its training images/s on
a 2-core CPU: BENCHMARKS.md, "The model zoo"); run it on an accelerator (bf16) or a bigger CPU.
"""

import ml_collections

from jaxcnn.configs import vgg16_cifar10


def get_config() -> ml_collections.ConfigDict:
  config = vgg16_cifar10.get_config()  # the same kuangliu recipe; only the model differs
  config.model = "preact_resnet18"
  config.model_kwargs = ml_collections.ConfigDict({"width": 64, "final_norm": False})
  return config
