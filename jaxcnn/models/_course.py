"""The course's small networks: the Keras tutorial CNN, the MNIST MLP, StrideNet."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcnn import _checks
from jaxcnn import layers as L
from jaxcnn.models._registry import Dtype, ImageClassifier, logits_f32, register


class TutorialCNN(ImageClassifier):
  """The Keras tutorial CIFAR-10 CNN ("Convolutional Neural Network (CNN)", tensorflow.org):

  Conv(32, 3, relu) - MaxPool(2) - Conv(64, 3, relu) - MaxPool(2) - Conv(64, 3, relu) -
  Flatten - Dense(hidden, relu) - Dense(num_classes). On 32x32x3 inputs it has 122,570
  parameters with ``hidden=64`` and 586,250 with ``hidden=512``, exactly Keras' counts.
  MACs per 32x32x3 image: 4,548,608 (``hidden=512``: 5,011,840).
  """
  num_classes: int = 10
  hidden: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    x = L.Conv(32, 3, activation="relu", dtype=self.dtype)(x)
    x = L.MaxPool(2)(x)
    x = L.Conv(64, 3, activation="relu", dtype=self.dtype)(x)
    x = L.MaxPool(2)(x)
    x = L.Conv(64, 3, activation="relu", dtype=self.dtype)(x)
    x = L.Flatten()(x)
    x = L.Dense(self.hidden, activation="relu", dtype=self.dtype)(x)
    return L.Dense(self.num_classes, dtype=self.dtype)(x)


class MLP(nn.Module):
  """The Keras MNIST MLP: Flatten - [Dense(h, relu) - Dropout(dropout)] per hidden size -
  Dense(num_classes). 669,706 parameters on 28x28x1 with the defaults (512, 512), 0.2.

  It flattens whatever it is given, so ``[B, 28, 28]`` and ``[B, 28, 28, 1]`` are the same
  784 inputs: the one model with no spatial rank to check. MACs per 28x28 image: 668,672."""
  num_classes: int = 10
  hidden: Sequence[int] = (512, 512)
  dropout: float = 0.2
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = L.Flatten()(x)
    for width in self.hidden:
      x = L.Dense(width, activation="relu", dtype=self.dtype)(x)
      x = L.Dropout(self.dropout)(x, train=train)
    return logits_f32(L.Dense(self.num_classes, dtype=self.dtype)(x))


class StrideNet(ImageClassifier):
  """Strided convolutions instead of pooling: for each width in ``features`` a 3x3 conv with
  stride 2, SAME padding and relu (each halves the resolution: 32 -> 16 -> 8 -> 4), then
  ``head='flatten'`` (Flatten) or ``head='gap'`` (GlobalAvgPool) and Dense(num_classes).
  MACs per 32x32x3 image: 2,600,960 with the defaults."""
  num_classes: int = 10
  features: Sequence[int] = (32, 64, 128)
  head: str = "flatten"
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    _checks.choice(self.head, "head", ("flatten", "gap"), where="StrideNet")
    for width in self.features:
      x = L.Conv(width, 3, stride=2, padding="SAME", activation="relu", dtype=self.dtype)(x)
    x = L.Flatten()(x) if self.head == "flatten" else L.GlobalAvgPool()(x)
    return L.Dense(self.num_classes, dtype=self.dtype)(x)


@register("tutorial_cnn")
def tutorial_cnn(*, num_classes: int, dtype: Dtype, hidden: int = 64,
                 axis_name: str | None = None) -> nn.Module:
  """Keras tutorial CNN with a Dense(64) head: 122,570 parameters on 32x32x3."""
  return TutorialCNN(num_classes=num_classes, hidden=hidden, dtype=dtype)


@register("tutorial_cnn_512")
def tutorial_cnn_512(*, num_classes: int, dtype: Dtype,
                     axis_name: str | None = None) -> nn.Module:
  """Keras tutorial CNN with a Dense(512) head: 586,250 parameters on 32x32x3."""
  return TutorialCNN(num_classes=num_classes, hidden=512, dtype=dtype)


@register("mlp")
def mlp(*, num_classes: int, dtype: Dtype, hidden: Sequence[int] = (512, 512),
        dropout: float = 0.2, axis_name: str | None = None) -> nn.Module:
  """Keras MNIST MLP: 669,706 parameters on 28x28x1 with the defaults."""
  return MLP(num_classes=num_classes, hidden=tuple(hidden), dropout=dropout, dtype=dtype)


@register("stridenet")
def stridenet(*, num_classes: int, dtype: Dtype, features: Sequence[int] = (32, 64, 128),
              head: str = "flatten", axis_name: str | None = None) -> nn.Module:
  """StrideNet: stride-2 3x3 convs (32, 64, 128), then Flatten (or GlobalAvgPool) + Dense."""
  _checks.choice(head, "head", ("flatten", "gap"), where="StrideNet")
  return StrideNet(num_classes=num_classes, features=tuple(features), head=head, dtype=dtype)


__all__ = ["TutorialCNN", "MLP", "StrideNet"]
