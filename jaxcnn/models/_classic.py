"""Plain (non-residual) CNNs: LeNet-5, a CIFAR AlexNet, VGG with BatchNorm, a small BN CNN.

Parameter counts are trainable parameters (the ``params`` collection, as PyTorch's
``sum(p.numel() for p in model.parameters())``); BatchNorm's running mean/var are state, not
counted. MACs are per 32x32x3 image, convolutions and dense layers only (the
:mod:`jaxcnn.layers` convention), measured with ``jaxcnn.inspect.summary(model, (1, 32, 32, 3))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcnn import _checks
from jaxcnn import layers as L
from jaxcnn.models._registry import Dtype, ImageClassifier, register


class LeNet5(ImageClassifier):
  """LeNet-5 (LeCun, Bottou, Bengio, Haffner, "Gradient-based learning applied to document
  recognition", Proc. IEEE 1998), the classic as it is usually taught:

  C1 Conv(6, 5) - S2 pool 2 - C3 Conv(16, 5) - S4 pool 2 - C5 Conv(120, 5) - F6 Dense(84) -
  Dense(num_classes), with ``tanh`` and average pooling by default (the paper's squashing
  function and subsampling; ``activation='relu'``, ``pool='max'`` give the modern variant).
  Simplified as everyone does: C3 connects to all six S2 maps (the paper's table connects 60
  of 96 pairs), the subsampling layers have no trainable coefficient, and the output is a
  Dense layer instead of the RBF units.

  Inputs smaller than 32x32 are zero-padded to 32x32 by C1 (28x28 MNIST: padding 2, the paper's
  32x32 field around the digits), so C5 always sees 5x5 and yields 1x1x120.

  Parameters: 61,706 on 28x28x1 or 32x32x1 (the famous count), 62,006 on 32x32x3.
  MACs: 651,720 per 32x32x3 image, 416,520 per 28x28x1 or 32x32x1 image.
  """
  num_classes: int = 10
  activation: str = "tanh"
  pool: str = "avg"
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    _checks.choice(self.pool, "pool", ("avg", "max"), where="LeNet5")
    pool = L.AvgPool if self.pool == "avg" else L.MaxPool
    pads = [(max(0, 32 - n) // 2, max(0, 32 - n) - max(0, 32 - n) // 2) for n in x.shape[1:3]]
    x = L.Conv(6, 5, padding=pads, activation=self.activation, dtype=self.dtype)(x)
    x = pool(2)(x)
    x = L.Conv(16, 5, activation=self.activation, dtype=self.dtype)(x)
    x = pool(2)(x)
    x = L.Conv(120, 5, activation=self.activation, dtype=self.dtype)(x)
    x = L.Flatten()(x)
    x = L.Dense(84, activation=self.activation, dtype=self.dtype)(x)
    return L.Dense(self.num_classes, dtype=self.dtype)(x)


class AlexNetCIFAR(ImageClassifier):
  """AlexNet (Krizhevsky, Sutskever, Hinton, "ImageNet classification with deep convolutional
  neural networks", NeurIPS 2012) scaled to 32x32.

  Convolutional part: the CIFAR AlexNet of Wei Yang's pytorch-classification
  (``models/cifar/alexnet.py``, github.com/bearpaw/pytorch-classification): five convs
  Conv(64, 11, stride 4, pad 5) - MaxPool 2 - Conv(192, 5, pad 2) - MaxPool 2 - Conv(384, 3) -
  Conv(256, 3) - Conv(256, 3) - MaxPool 2 (pad 1, relu), 32 -> 8 -> 4 -> 2 -> 1. That port
  drops AlexNet's dense layers; here the original's classifier is kept: Dropout(0.5) -
  Dense(hidden, relu) - Dropout(0.5) - Dense(hidden, relu) - Dense(num_classes), ``hidden=4096``
  as in the paper. No LRN (it is a no-op in accuracy in most re-implementations, and the port
  has none). ``width`` scales the conv channels (64 = the original).

  Parameters: 20,344,650 (16.8M of them in the 4096x4096 layer: AlexNet's lesson).
  MACs per 32x32x3 image: 32,821,248.
  """
  num_classes: int = 10
  width: int = 64
  hidden: int = 4096
  dropout: float = 0.5
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    _checks.positive_int(self.width, "width")
    _checks.positive_int(self.hidden, "hidden")
    c = lambda n: max(1, n * self.width // 64)
    conv = lambda f, k, **kw: L.Conv(f, k, activation="relu", dtype=self.dtype, **kw)
    x = conv(c(64), 11, stride=4, padding=5)(x)
    x = L.MaxPool(2)(x)
    x = conv(c(192), 5, padding=2)(x)
    x = L.MaxPool(2)(x)
    x = conv(c(384), 3, padding=1)(x)
    x = conv(c(256), 3, padding=1)(x)
    x = conv(c(256), 3, padding=1)(x)
    x = L.MaxPool(2)(x)
    x = L.Flatten()(x)
    x = L.Dropout(self.dropout)(x, train=train)
    x = L.Dense(self.hidden, activation="relu", dtype=self.dtype)(x)
    x = L.Dropout(self.dropout)(x, train=train)
    x = L.Dense(self.hidden, activation="relu", dtype=self.dtype)(x)
    return L.Dense(self.num_classes, dtype=self.dtype)(x)


# Channels per 3x3 conv, 'M' = 2x2 max pool (Simonyan & Zisserman 2015, table 1, configs A B D E).
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


class VGG(ImageClassifier):
  """VGG with BatchNorm, CIFAR variant (Simonyan & Zisserman, "Very deep convolutional networks
  for large-scale image recognition", ICLR 2015; BatchNorm from Ioffe & Szegedy 2015).

  As the common CIFAR port (kuangliu/pytorch-cifar ``models/vgg.py``): each 3x3 conv (pad 1,
  with bias) is followed by BatchNorm and relu, each 'M' halves the resolution, so 32x32 ends
  at 1x1x512, and one Dense(num_classes) replaces the three 4096-wide layers.
  ``width`` scales every conv (64 = the original).

  Parameters / MACs per 32x32x3 image (``width=64``):
    vgg11 9,231,114 / 152,769,536; vgg13 9,416,010 / 228,267,008;
    vgg16 14,728,266 / 313,201,664; vgg19 20,040,522 / 398,136,320.
  """
  config: Sequence[int | str] = VGG_CONFIGS["vgg16"]
  num_classes: int = 10
  width: int = 64
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    _checks.positive_int(self.width, "width")
    for item in self.config:
      if item == "M":
        x = L.MaxPool(2)(x)
        continue
      x = L.Conv(max(1, item * self.width // 64), 3, padding=1, dtype=self.dtype)(x)
      x = L.BatchNorm(axis_name=self.axis_name, dtype=self.dtype)(x, train=train)
      x = jax.nn.relu(x)
    x = L.Flatten()(x)
    return L.Dense(self.num_classes, dtype=self.dtype)(x)


class BNCNN(ImageClassifier):
  """A small BatchNorm CNN that trains in seconds on a CPU (for engine tests and lessons):
  per width, Conv(w, 3, SAME, no bias) - BatchNorm - relu - MaxPool(2); then GlobalAvgPool -
  Dense(num_classes). The conv-BN-relu-pool block is VGG's (Simonyan & Zisserman 2015) with
  Ioffe & Szegedy's (2015) BatchNorm; the global-average head is Lin et al.'s "Network in
  Network" (2014).

  Parameters: 94,762 with the default widths (32, 64, 128). MACs per 32x32x3 image: 10,323,200.
  """
  num_classes: int = 10
  widths: Sequence[int] = (32, 64, 128)
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    if not self.widths:
      raise ValueError("BNCNN `widths` (=()) must name at least one conv width")
    for w in self.widths:
      _checks.positive_int(w, "widths")
      x = L.Conv(w, 3, padding="SAME", use_bias=False, dtype=self.dtype)(x)
      x = L.BatchNorm(axis_name=self.axis_name, dtype=self.dtype)(x, train=train)
      x = L.MaxPool(2)(jax.nn.relu(x))
    x = L.GlobalAvgPool()(x)
    return L.Dense(self.num_classes, dtype=self.dtype)(x)


@register("lenet5")
def lenet5(*, num_classes: int, dtype: Dtype, activation: str = "tanh", pool: str = "avg",
           axis_name: str | None = None) -> nn.Module:
  """LeNet-5 (LeCun et al. 1998) for 28x28 or 32x32 inputs: 61,706 parameters on one channel."""
  return LeNet5(num_classes=num_classes, activation=activation, pool=pool, dtype=dtype)


@register("alexnet_cifar")
def alexnet_cifar(*, num_classes: int, dtype: Dtype, width: int = 64, hidden: int = 4096,
                  dropout: float = 0.5, axis_name: str | None = None) -> nn.Module:
  """AlexNet scaled to 32x32 (bearpaw's CIFAR convs + AlexNet's dense head): 20,344,650 params."""
  return AlexNetCIFAR(num_classes=num_classes, width=width, hidden=hidden, dropout=dropout,
                      dtype=dtype)


def _vgg_factory(name: str):
  def factory(*, num_classes: int, dtype: Dtype, width: int = 64,
              axis_name: str | None = None) -> nn.Module:
    return VGG(config=VGG_CONFIGS[name], num_classes=num_classes, width=width,
               axis_name=axis_name, dtype=dtype)
  factory.__name__ = name
  factory.__doc__ = f"{name.upper()} with BatchNorm, CIFAR variant (one dense head); see VGG."
  return factory


for _name in VGG_CONFIGS:
  register(_name)(_vgg_factory(_name))


@register("bn_cnn")
def bn_cnn(*, num_classes: int, dtype: Dtype, widths: Sequence[int] = (32, 64, 128),
           axis_name: str | None = None) -> nn.Module:
  """A small BatchNorm CNN (conv-BN-relu-pool per width, GAP head): 94,762 params by default."""
  return BNCNN(num_classes=num_classes, widths=tuple(widths), axis_name=axis_name, dtype=dtype)


__all__ = ["LeNet5", "AlexNetCIFAR", "VGG", "VGG_CONFIGS", "BNCNN"]
