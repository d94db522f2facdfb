"""CIFAR-10 with Page's ResNet-9 (DAWNBench), a short one-cycle recipe.

David Page, "How to train your ResNet" (Myrtle.ai, 2018): 24 epochs, batch 512, SGD with
Nesterov momentum 0.9, weight decay 5e-4 x batch in his parametrisation (5e-4 here, on
kernels), a learning rate ramped up then annealed (here optax's cosine one-cycle, peak 0.4),
4-pixel padding + random crop + horizontal flip (Page adds 8x8 cutout), label smoothing 0.2
as in his final version. Deviations: the engine's one-cycle schedule is cosine, Page's
piecewise-linear; no cutout.

Command::

    python -m experiments.train --config resnet9_cifar10 \
        --workdir runs/resnet9_cifar10 \
        --config.data.image_folder=../shared/data/cifar10_jpeg_train.tar.gz

Expected: Page reports 94% test accuracy in 24 epochs (26 s on a V100 with his full recipe),
on the original lossless test set. Not measured with this config (24 epochs of a 379M-MAC net take hours on
the 2-core CPU). bfloat16 on an accelerator, float32 on CPU.

Time: 24 epochs of this net take hours to days on a laptop CPU (its training images/s on
a 2-core CPU: BENCHMARKS.md, "The model zoo"); run it on an accelerator (bf16) or a bigger CPU.
"""

import ml_collections

from jaxcnn.train.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model = "resnet9"
  config.model_kwargs = ml_collections.ConfigDict({"width": 64})
  config.batch_size = 512
  config.eval_batch_size = 1000
  config.num_epochs = 24
  config.optimizer = "sgd"
  config.nesterov = True
  config.learning_rate = 0.4
  config.weight_decay = 5e-4
  config.schedule = "onecycle"
  config.label_smoothing = 0.2
  config.dtype = "auto"  # float32 on a CPU, bfloat16 on a TPU/GPU
  config.data.augment = "crop,flip"
  return config
