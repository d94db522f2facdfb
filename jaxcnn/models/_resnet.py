"""Residual networks for 32x32 inputs: He et al.'s CIFAR ResNets (option A or B shortcuts),
ResNet-18 and pre-activation ResNet-18 with a CIFAR stem, Wide ResNets, and Page's ResNet-9;
ResNet-18 also with the ImageNet stem, for larger images (``stem='imagenet'``).

Parameter counts are trainable parameters (the ``params`` collection, as PyTorch's
``sum(p.numel() for p in model.parameters())``); MACs are per 32x32x3 image, convolutions and
dense layers only, measured with ``jaxcnn.inspect.summary(model, (1, 32, 32, 3))``.
Convolutions feeding a BatchNorm have no bias (the BatchNorm's shift plays its part).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcnn import _checks
from jaxcnn import layers as L
from jaxcnn.models._registry import Dtype, ImageClassifier, register

# He et al. initialise conv and dense weights as in their PReLU paper ("Delving deep into
# rectifiers", 2015): normal with variance 2 / fan_in.
he_normal = nn.initializers.he_normal()
STEMS = ("cifar", "imagenet")


class _ConvBN(nn.Module):
  """Conv(features, k, stride, SAME-like padding k // 2, no bias) - BatchNorm [- relu]."""
  features: int
  kernel_size: int = 3
  stride: int = 1
  relu: bool = True
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = L.Conv(self.features, self.kernel_size, stride=self.stride,
               padding=self.kernel_size // 2, use_bias=False, kernel_init=he_normal,
               dtype=self.dtype)(x)
    x = L.BatchNorm(axis_name=self.axis_name, dtype=self.dtype)(x, train=train)
    return jax.nn.relu(x) if self.relu else x


def shortcut_a(x: jax.Array, features: int, stride: int) -> jax.Array:
  """He et al.'s option A shortcut: subsample by ``stride`` and zero-pad the new channels
  (parameter-free). The zeros are split evenly on both sides of the channel axis, as in the
  common PyTorch port (akamaster/pytorch_resnet_cifar10).

  ``x: [B, H, W, C]`` -> ``[B, ceil(H / stride), ceil(W / stride), features]``.

  >>> shortcut_a(jnp.ones((1, 4, 4, 16)), 32, 2).shape
  (1, 2, 2, 32)
  """
  x = x[:, ::stride, ::stride, :]
  extra = features - x.shape[-1]
  if extra < 0:
    raise ValueError(f"option A shortcut cannot shrink channels: {x.shape[-1]} -> {features}")
  return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


class BasicBlock(nn.Module):
  """conv3x3(stride)-BN-relu-conv3x3-BN, plus the shortcut, then relu (He et al. 2016, fig. 2).

  The shortcut is the identity when shapes match; otherwise option ``'A'`` (subsample + zero
  channels, no parameters) or ``'B'`` (1x1 conv with ``stride`` + BatchNorm).
  """
  features: int
  stride: int = 1
  shortcut: str = "A"
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    kw = dict(axis_name=self.axis_name, dtype=self.dtype)
    y = _ConvBN(self.features, 3, self.stride, **kw)(x, train)
    y = _ConvBN(self.features, 3, 1, relu=False, **kw)(y, train)
    if self.stride == 1 and x.shape[-1] == self.features:
      s = x
    elif self.shortcut == "A":
      s = shortcut_a(x, self.features, self.stride)
    else:
      s = _ConvBN(self.features, 1, self.stride, relu=False, **kw)(x, train)
    return jax.nn.relu(y + s)


def _check_shortcut(shortcut: str) -> None:
  _checks.choice(shortcut, "shortcut", ("A", "B"),
                 fix="'A' is the zero-padding identity, 'B' the 1x1 conv projection")


class ResNet(ImageClassifier):
  """A post-activation ResNet for small images: conv3x3(widths[0])-BN-relu, then for each stage
  ``blocks[i]`` :class:`BasicBlock` of ``widths[i]`` channels (the first of every stage but the
  first with stride 2), GlobalAvgPool, Dense(num_classes).

  With ``widths=(16, 32, 64)`` and ``blocks=(n, n, n)`` it is He, Zhang, Ren, Sun's CIFAR
  ResNet-(6n+2) ("Deep residual learning for image recognition", CVPR 2016, section 4.2):
  option A shortcuts by default (as the paper's CIFAR results), ``shortcut='B'`` projections.

  Parameters / MACs per 32x32x3 image (option A; option B adds two 1x1 projections + BN):
    resnet20 269,722 / 40,551,040 (option B: 272,474 / 40,813,184);
    resnet32 464,154 / 68,862,592;
    resnet44 658,586 / 97,174,144; resnet56 853,018 / 125,485,696;
    resnet110 1,727,962 / 252,887,680.

  With ``widths=(64, 128, 256, 512)``, ``blocks=(2, 2, 2, 2)``, ``shortcut='B'`` it is
  ResNet-18 with the 3x3 CIFAR stem of kuangliu/pytorch-cifar (``models/resnet.py``):
  11,173,962 parameters, 555,422,720 MACs.

  ``stem='imagenet'``: He et al.'s ImageNet stem instead (conv7x7/2-BN-relu, maxpool3x3/2,
  padding 1: the input shrinks 4x before the first stage), as torchvision's ``resnet18``:
  11,689,512 parameters with 1000 classes.
  """
  blocks: Sequence[int] = (3, 3, 3)
  widths: Sequence[int] = (16, 32, 64)
  shortcut: str = "A"
  stem: str = "cifar"
  num_classes: int = 10
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    _check_shortcut(self.shortcut)
    if len(self.blocks) != len(self.widths) or not self.blocks:
      raise ValueError(f"`blocks` (={tuple(self.blocks)}) and `widths` "
                       f"(={tuple(self.widths)}) must be non-empty and of equal length")
    _checks.choice(self.stem, "stem", STEMS,
                   fix="'cifar' (3x3, stride 1) for 32x32 images, 'imagenet' (7x7/2 + maxpool) "
                   "for larger ones")
    kw = dict(axis_name=self.axis_name, dtype=self.dtype)
    if self.stem == "imagenet":
      x = _ConvBN(self.widths[0], 7, 2, **kw)(x, train)
      x = L.MaxPool(3, stride=2, padding=1)(x)
    else:
      x = _ConvBN(self.widths[0], 3, 1, **kw)(x, train)
    for i, (n, w) in enumerate(zip(self.blocks, self.widths)):
      for j in range(n):
        x = BasicBlock(w, 2 if i > 0 and j == 0 else 1, self.shortcut, **kw)(x, train)
    x = L.GlobalAvgPool()(x)
    return L.Dense(self.num_classes, kernel_init=he_normal, dtype=self.dtype)(x)


class PreActBlock(nn.Module):
  """BN-relu-conv3x3(stride)-BN-relu-[dropout]-conv3x3, plus the shortcut (He, Zhang, Ren, Sun,
  "Identity mappings in deep residual networks", ECCV 2016, fig. 4e).

  When the shape changes, the shortcut is a 1x1 conv with ``stride`` applied to the
  pre-activated input (as the reference implementations: kuangliu/pytorch-cifar's
  ``PreActBlock``, Zagoruyko's ``wide-residual-networks``); otherwise the identity.
  """
  features: int
  stride: int = 1
  dropout: float = 0.0
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = lambda k, s: L.Conv(self.features, k, stride=s, padding=k // 2, use_bias=False,
                               kernel_init=he_normal, dtype=self.dtype)
    bn = lambda: L.BatchNorm(axis_name=self.axis_name, dtype=self.dtype)
    out = jax.nn.relu(bn()(x, train=train))
    if self.stride == 1 and x.shape[-1] == self.features:
      shortcut = x
    else:
      shortcut = conv(1, self.stride)(out)
    y = conv(3, self.stride)(out)
    y = jax.nn.relu(bn()(y, train=train))
    if self.dropout:
      y = L.Dropout(self.dropout)(y, train=train)
    y = conv(3, 1)(y)
    return y + shortcut


class PreActResNet(ImageClassifier):
  """A pre-activation ResNet for small images: conv3x3(stem), stages of :class:`PreActBlock`
  (the first of every stage but the first with stride 2), [BN-relu if ``final_norm``],
  GlobalAvgPool, Dense(num_classes).

  * ``preact_resnet18``: ``stem=64``, ``widths=(64, 128, 256, 512)``, ``blocks=(2, 2, 2, 2)``,
    ``final_norm=False``: kuangliu/pytorch-cifar's ``PreActResNet18`` exactly (the reference
    most CIFAR work uses), 11,171,146 parameters, 555,422,720 MACs per 32x32x3 image.
    The paper appends BN-relu after the last addition (``final_norm=True``, +1,024 params).
  * ``wide_resnet``: Zagoruyko & Komodakis, "Wide residual networks", BMVC 2016: WRN-d-k has
    ``stem=16``, ``widths=(16k, 32k, 64k)``, ``(d - 4) / 6`` blocks per stage, dropout between
    the convs, ``final_norm=True``. WRN-28-10: 36,479,194 parameters, 5,243,328,768 MACs;
    WRN-16-4: 2,748,890 parameters, 392,612,352 MACs.
  """
  blocks: Sequence[int] = (2, 2, 2, 2)
  widths: Sequence[int] = (64, 128, 256, 512)
  stem: int = 64
  final_norm: bool = False
  dropout: float = 0.0
  num_classes: int = 10
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    if len(self.blocks) != len(self.widths) or not self.blocks:
      raise ValueError(f"`blocks` (={tuple(self.blocks)}) and `widths` "
                       f"(={tuple(self.widths)}) must be non-empty and of equal length")
    x = L.Conv(self.stem, 3, padding=1, use_bias=False, kernel_init=he_normal,
               dtype=self.dtype)(x)
    for i, (n, w) in enumerate(zip(self.blocks, self.widths)):
      for j in range(n):
        x = PreActBlock(w, 2 if i > 0 and j == 0 else 1, self.dropout,
                        axis_name=self.axis_name, dtype=self.dtype)(x, train)
    if self.final_norm:
      x = jax.nn.relu(L.BatchNorm(axis_name=self.axis_name, dtype=self.dtype)(x, train=train))
    x = L.GlobalAvgPool()(x)
    return L.Dense(self.num_classes, dtype=self.dtype)(x)


class ResNet9(ImageClassifier):
  """ResNet-9 of David Page's DAWNBench CIFAR-10 entry ("How to train your ResNet", Myrtle.ai
  2018; 94% in 79 s on a V100, then 26 s):

  prep conv_bn(64) - conv_bn(128) - MaxPool 2 - residual(conv_bn(128), conv_bn(128)) -
  conv_bn(256) - MaxPool 2 - conv_bn(512) - MaxPool 2 - residual(conv_bn(512), conv_bn(512)) -
  MaxPool 4 - Dense(num_classes, no bias) - x 0.125, where conv_bn = conv3x3 (no bias) - BN -
  relu and residual(f, g)(x) = x + g(f(x)). ``width`` scales every conv (64 = the original).

  Parameters: 6,573,120. MACs per 32x32x3 image: 379,261,952.
  """
  num_classes: int = 10
  width: int = 64
  logit_scale: float = 0.125
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    _checks.positive_int(self.width, "width")
    c = lambda m: m * self.width
    conv_bn = lambda f: _ConvBN(f, 3, 1, axis_name=self.axis_name, dtype=self.dtype)
    x = conv_bn(c(1))(x, train)
    x = L.MaxPool(2)(conv_bn(c(2))(x, train))
    x = x + conv_bn(c(2))(conv_bn(c(2))(x, train), train)
    x = L.MaxPool(2)(conv_bn(c(4))(x, train))
    x = L.MaxPool(2)(conv_bn(c(8))(x, train))
    x = x + conv_bn(c(8))(conv_bn(c(8))(x, train), train)
    x = L.GlobalMaxPool()(x)  # Page's MaxPool(4) on the final 4x4 maps
    x = L.Dense(self.num_classes, use_bias=False, dtype=self.dtype)(x)
    return x * self.logit_scale


def _cifar_resnet_factory(depth: int):
  def factory(*, num_classes: int, dtype: Dtype, shortcut: str = "A", width: int = 16,
              axis_name: str | None = None) -> nn.Module:
    _check_shortcut(shortcut)
    n = (depth - 2) // 6
    return ResNet(blocks=(n, n, n), widths=(width, 2 * width, 4 * width), shortcut=shortcut,
                  num_classes=num_classes, axis_name=axis_name, dtype=dtype)
  factory.__name__ = f"resnet{depth}"
  factory.__doc__ = (f"He et al. 2016 CIFAR ResNet-{depth} ({(depth - 2) // 6} blocks per "
                     "stage, 16/32/64 channels); shortcut 'A' (default) or 'B'.")
  return factory


for _depth in (20, 32, 44, 56, 110):
  register(f"resnet{_depth}")(_cifar_resnet_factory(_depth))


@register("cifar_resnet")
def cifar_resnet(*, num_classes: int, dtype: Dtype, depth: int = 20, shortcut: str = "A",
                 width: int = 16, axis_name: str | None = None) -> nn.Module:
  """He et al. 2016 CIFAR ResNet of any depth 6n+2 (8, 14, 20, ...); ``width`` = first stage."""
  if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
    raise ValueError(f"CIFAR ResNet `depth` (={depth!r}) must be 6n+2 with n >= 1 "
                     "(8, 14, 20, 32, 44, 56, 110, ...)")
  return _cifar_resnet_factory(depth)(num_classes=num_classes, dtype=dtype, shortcut=shortcut,
                                      width=width, axis_name=axis_name)


@register("resnet18")
def resnet18(*, num_classes: int, dtype: Dtype, width: int = 64, stem: str = "cifar",
             axis_name: str | None = None) -> nn.Module:
  """ResNet-18: with the 3x3 CIFAR stem (kuangliu/pytorch-cifar), 11,173,962 parameters; with
  ``stem='imagenet'`` (7x7/2 conv + 3x3/2 max pool, torchvision's ``resnet18``) 11,181,642
  for 10 classes, 11,689,512 for 1000."""
  return ResNet(blocks=(2, 2, 2, 2), widths=(width, 2 * width, 4 * width, 8 * width),
                shortcut="B", stem=stem, num_classes=num_classes, axis_name=axis_name,
                dtype=dtype)


@register("preact_resnet18")
def preact_resnet18(*, num_classes: int, dtype: Dtype, width: int = 64,
                    blocks: Sequence[int] = (2, 2, 2, 2), final_norm: bool = False,
                    axis_name: str | None = None) -> nn.Module:
  """Pre-activation ResNet-18, CIFAR stem (kuangliu/pytorch-cifar): 11,171,146 parameters."""
  blocks = tuple(blocks)
  return PreActResNet(blocks=blocks, widths=tuple(width * 2 ** i for i in range(len(blocks))),
                      stem=width, final_norm=final_norm, num_classes=num_classes,
                      axis_name=axis_name, dtype=dtype)


@register("wide_resnet")
def wide_resnet(*, num_classes: int, dtype: Dtype, depth: int = 28, widen_factor: int = 10,
                dropout: float = 0.0, axis_name: str | None = None) -> nn.Module:
  """WRN-depth-widen_factor (Zagoruyko & Komodakis 2016); depth = 6n+4. WRN-28-10: 36.5M."""
  if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
    raise ValueError(f"Wide ResNet `depth` (={depth!r}) must be 6n+4 with n >= 1 "
                     "(10, 16, 22, 28, 40, ...)")
  _checks.positive_int(widen_factor, "widen_factor")
  n = (depth - 4) // 6
  k = widen_factor
  return PreActResNet(blocks=(n, n, n), widths=(16 * k, 32 * k, 64 * k), stem=16,
                      final_norm=True, dropout=dropout, num_classes=num_classes,
                      axis_name=axis_name, dtype=dtype)


@register("resnet9")
def resnet9(*, num_classes: int, dtype: Dtype, width: int = 64,
            axis_name: str | None = None) -> nn.Module:
  """Page's DAWNBench ResNet-9: 6,573,120 parameters."""
  return ResNet9(num_classes=num_classes, width=width, axis_name=axis_name, dtype=dtype)


__all__ = ["ResNet", "BasicBlock", "PreActResNet", "PreActBlock", "ResNet9", "shortcut_a"]
