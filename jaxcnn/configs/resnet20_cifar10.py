"""CIFAR-10 with He et al.'s ResNet-20 (option A shortcuts), the paper's recipe.

He, Zhang, Ren, Sun, "Deep residual learning for image recognition" (CVPR 2016), section 4.2:
SGD with momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.1 divided by 10 at 32k and
48k iterations, stop at 64k, 4-pixel padding + random 32x32 crop + horizontal flip, trained on
45k images with 5k for validation (the split used here: ``train[:45000]`` / ``train[45000:]``).
At 352 steps per epoch those iterations are epochs 91, 136 and 182. Deviation: weight decay
touches kernels only (the engine's convention), not BatchNorm's scale and bias.

Command (the shared JPEG copy; drop ``data.image_folder`` to use tfds)::

    python -m experiments.train --config resnet20_cifar10 \
        --workdir runs/resnet20_cifar10 \
        --config.data.image_folder=../shared/data/cifar10_jpeg_train.tar.gz

Other depths: ``--config.model=resnet56`` (or 32, 44, 110); option B shortcuts:
``--config.model_kwargs.shortcut=B`` (the key is declared below, so the CLI can set it).

Expected: the paper reports 8.75% test error (91.25% accuracy) for ResNet-20 (7.51% error for
ResNet-56, 6.43% for ResNet-110), on the original lossless CIFAR-10 test set. Not measured with this config:
182 epochs do not fit a 2-core CPU. The JPEG copy is expected to land somewhat
below the paper (see ../shared/data/README). ``dtype`` is bfloat16 on an accelerator, float32
on CPU (where bfloat16 convolutions are slower).

Time: 182 epochs of this net take hours to days on a laptop CPU (its training images/s on
a 2-core CPU: BENCHMARKS.md, "The model zoo"); run it on an accelerator (bf16) or a bigger CPU.
"""

import ml_collections

from jaxcnn.train.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model = "resnet20"
  config.model_kwargs = ml_collections.ConfigDict({"shortcut": "A"})
  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 182
  config.optimizer = "sgd"
  config.learning_rate = 0.1
  config.weight_decay = 1e-4
  config.schedule = "piecewise"
  config.lr_boundaries_epochs = (91.0, 136.0)
  config.dtype = "auto"  # float32 on a CPU, bfloat16 on a TPU/GPU
  config.data.augment = "crop,flip"
  return config
