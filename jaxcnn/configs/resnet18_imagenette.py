"""Imagenette (10 ImageNet classes) at 160 px with ResNet-18 (ImageNet stem), streamed from disk.

The recipe is the ImageNet one scaled down: ResNet-18 with He et al.'s 7x7/2 + max-pool stem
(``stem='imagenet'``, 11,181,642 parameters, 925M MACs per 160x160 image), random-resized crops
(torchvision's scale 0.08-1, ratio 3/4-4/3) and flips made on host threads by the streaming
loader (``data.loader='host'``), evaluation on the centred 160x160 window
(``crop_to_aspect_ratio``), SGD with Nesterov momentum 0.9, batch 128, a linear warm-up to 0.2
over 2 epochs then cosine decay, label smoothing 0.1, weight decay 5e-5, 20 epochs.

Commands::

    # tfds (downloads and prepares imagenette/160px-v2 as ArrayRecord on first use)
    python -m experiments.train --config resnet18_imagenette --workdir runs/resnet18_imagenette

    # or fast.ai's folder copy (imagenette2-160.tgz unpacked: train/<class>/, val/<class>/)
    python -m experiments.train --config resnet18_imagenette --workdir runs/r18_nette \
        --config.data.name=folder --config.data.image_folder=imagenette2-160 \
        --config.data.eval_split=val

Expected accuracy, from the literature (not measured here): fastai's Imagenette leaderboard
(github.com/fastai/imagenette, README, "Imagenette Leaderboard") lists 91.57% top-1 at 128 px
and 92.50% at 192 px after 20 epochs (means of 5 runs), 93.55% / 94.50% after 80 epochs, all
with fastai's xresnet50 and its training tricks; a plain ResNet-18 with this recipe should land
some points below those, so read them as the ceiling to compare with, not a promise.

Time per epoch: see BENCHMARKS.md (``experiments/benchmarks/bench_stream.py --recipe
resnet18_imagenette`` trains a few steps of this recipe on a generated folder of 160 px JPEGs);
Imagenette's training split has 9,469 images, so an epoch is 73 steps of 128.
"""

import ml_collections

from jaxcnn.train.config import defaults


def get_config() -> ml_collections.ConfigDict:
  config = defaults()
  config.model = "resnet18"
  config.model_kwargs = ml_collections.ConfigDict({"stem": "imagenet"})
  config.data.name = "imagenette/160px-v2"
  config.data.train_split = "train"
  config.data.eval_split = "validation"
  config.data.image_size = 160
  config.data.crop_to_aspect_ratio = True
  config.data.loader = "host"
  config.data.augment = "random_resized_crop,flip"
  config.batch_size = 128
  config.num_epochs = 20
  config.optimizer = "sgd_nesterov"
  config.momentum = 0.9
  config.learning_rate = 0.2
  config.schedule = "warmup_cosine"
  config.warmup_epochs = 2.0
  config.label_smoothing = 0.1
  config.weight_decay = 5e-5
  config.dtype = "auto"
  return config
