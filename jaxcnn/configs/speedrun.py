"""The airbench94_muon CIFAR-10 speed recipe as data, and its variants for a 2-core CPU.

Source of every number: ``airbench94_muon.py`` of github.com/KellerJordan/cifar10-airbench
(commit 096d14d; 94.01% mean over 200 runs in 2.59 s on an A100 with torch.compile), named
below by the quantity it sets there. The net is ``jaxcnn.models.speednet`` (airbench's
``CifarNet``); the optimiser, loss and TTA are in ``jaxcnn.recipes.airbench``.

Command (N seeds back to back; timing as airbench's: whitening + training + TTA evaluation,
compilation excluded and printed on its own)::

    python -m experiments.speedrun --config speedrun:cpu70 --runs 3 \
        --image-folder ../shared/data/cifar10_jpeg_train.tar.gz

Variants (``--config speedrun:<variant>``), see ``VARIANTS``; what each reaches, on which
machine, in how long: BENCHMARKS.md, "Speed runs":

* ``airbench94``: the recipe as published (batch 2000, 8 epochs, bf16, widths 64/256/256).
  airbench trains on all 50,000 training images and evaluates on the test split; here the
  default is train[:45000] / train[45000:] (the JPEG copy has no test split), so it runs 22
  steps an epoch (176 in all) instead of 25 (200).
* ``cpu70``, ``cpu80``, ``cpu85``: narrower, shorter, float32 variants chosen on a 2-core CPU
  for the least training time to 70%, 80%, 85% validation accuracy; ``cpu90``: the full-width
  net for 10 epochs in float32, aiming at 90%.
* ``tiny``: width 1/16, 2 steps: for tests.
"""

import ml_collections

from jaxcnn.train.config import defaults

# The CPU variants: width_mult scales airbench's widths 64/256/256; epochs and batch as run.
VARIANTS = {
    "airbench94": dict(),
    # Batch 250 rather than 500: twice the steps for the same compute reached more in probes.
    "cpu70": dict(width_mult=0.25, epochs=0.5, batch_size=250, dtype="float32", target=0.70),
    "cpu80": dict(width_mult=0.25, epochs=2.0, batch_size=250, dtype="float32", target=0.80),
    # 3.5 epochs: at 3.0, most seeds stayed under 85%.
    "cpu85": dict(width_mult=0.5, epochs=3.5, batch_size=250, dtype="float32", target=0.85),
    # Width 1 (airbench's own net); 90% needs more epochs than this variant's 10.
    "cpu90": dict(width_mult=1.0, epochs=10.0, batch_size=250, dtype="float32", target=0.90),
    "tiny": dict(width_mult=1 / 16, epochs=0.0, num_train_steps=2, batch_size=32,
                 eval_batch_size=64, dtype="float32", whiten_images=256),
}


def get_config(variant: str = "airbench94") -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f"unknown speedrun variant {variant!r}; known: {', '.join(VARIANTS)}")
  v = dict(VARIANTS[variant])
  config = defaults()
  config.model = "speednet"
  config.model_kwargs = ml_collections.ConfigDict()
  config.model_kwargs.width_mult = v.pop("width_mult", 1.0)  # CifarNet widths 64/256/256
  config.model_kwargs.depth = v.pop("depth", 2)  # ConvGroup: 2 convs (airbench96 has 3)
  config.batch_size = v.pop("batch_size", 2000)  # batch_size = 2000
  config.eval_batch_size = v.pop("eval_batch_size", 2000)  # infer(): loader batch 2000
  # epochs: total_train_steps = ceil(8 * len(train_loader)); a fraction is allowed.
  config.num_epochs = v.pop("epochs", 8.0)
  config.num_train_steps = v.pop("num_train_steps", -1)  # > 0 overrides `num_epochs`
  # BN in float32, the rest in half on GPU (model.half(), BN .float()); bf16 here. On CPU,
  # float32 is faster than bf16 (no native bf16 convolutions).
  config.dtype = v.pop("dtype", "bfloat16")
  config.label_smoothing = 0.2  # F.cross_entropy(..., label_smoothing=0.2, reduction='sum')
  config.checkpoint_every_epoch = False  # the CLI route: save the end (and the best) only
  config.data.normalize = "dataset"  # CIFAR_MEAN / CIFAR_STD

  r = config.recipe
  r.name = "airbench94"
  r.variant = variant
  # The accuracy aimed at (the speed-run CLI prints the fraction of runs reaching it).
  r.target = v.pop("target", 0.94)
  r.muon_lr = 0.24  # Muon(filter_params, lr=0.24, ...)
  r.muon_momentum = 0.6  # Muon(..., momentum=0.6, nesterov=True)
  r.ns_steps = 3  # zeropower_via_newtonschulz5(..., steps=3) in Muon.step
  r.sgd_momentum = 0.85  # SGD(param_configs, momentum=0.85, nesterov=True)
  r.bias_lr = 0.053  # bias_lr: whiten.bias and the BatchNorm biases
  r.head_lr = 0.67  # head_lr: head.weight
  r.wd_per_image = 2e-6  # wd = 2e-6 * batch_size; each SGD group's weight_decay = wd / lr
  r.whiten_bias_epochs = 3.0  # whiten_bias_train_steps = ceil(3 * len(train_loader))
  r.whiten_eps = 5e-4  # init_whiten(..., eps=5e-4)
  r.whiten_images = v.pop("whiten_images", 5000)  # init_whiten(train_images[:5000])
  r.tta_level = v.pop("tta_level", 2)  # evaluate(model, test_loader, tta_level=2)
  r.flip = True  # alternating flip (CifarLoader aug flip=True, batch_flip_lr)
  r.translate = 2  # CifarLoader aug translate=2: reflect-pad 2, random 32x32 crop
  if v:
    raise ValueError(f"variant {variant!r} sets unknown keys {sorted(v)}")
  return config
