"""The course's networks, by name.

Every model is a Flax Linen module built from :mod:`jaxcnn.layers`, called as
``model.apply(variables, x, train=False)`` on ``x: [B, H, W, C]`` and returning float32 logits
``[B, num_classes]`` whatever the compute ``dtype`` (so losses and metrics are always computed in
float32). Parameters are stored in float32; ``dtype=jnp.bfloat16`` only changes the compute dtype.

Models are registered by name with :func:`register`; a new architecture is a module class plus a
small factory::

    @register('my_net')
    def my_net(*, num_classes: int, dtype, width: int = 64) -> nn.Module:
      return MyNet(num_classes=num_classes, width=width, dtype=dtype)

>>> import jax, jax.numpy as jnp
>>> from jaxcnn.models import get_model
>>> model = get_model('tutorial_cnn')
>>> variables = model.init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))
>>> model.apply(variables, jnp.ones((2, 32, 32, 3))).shape
(2, 10)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcnn import layers as L

Dtype = Any
ModelFactory = Callable[..., nn.Module]

MODELS: dict[str, ModelFactory] = {}


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
  """Decorator adding a factory ``f(*, num_classes, dtype, axis_name=None, **kwargs) ->
  nn.Module`` to :data:`MODELS` under ``name``.

  ``axis_name`` is the data-parallel axis that BatchNorm layers average their batch moments
  over (``jaxcnn.train.AXIS_NAME`` under ``pmap``, else ``None``); factories of nets without
  BatchNorm accept it and ignore it."""

  def decorator(factory: ModelFactory) -> ModelFactory:
    if name in MODELS:
      raise ValueError(f"model name {name!r} is already registered")
    MODELS[name] = factory
    return factory

  return decorator


def get_model(name: str, *, num_classes: int = 10, dtype: Dtype = jnp.float32,
              axis_name: str | None = None, **kwargs: Any) -> nn.Module:
  """Builds the model registered as ``name``; ``axis_name`` and ``kwargs`` go to its factory.

  ``axis_name``: the ``pmap`` axis BatchNorm layers average batch moments over (None: one
  device, or jit over a Mesh where XLA computes global moments itself).

  >>> get_model('mlp', hidden=(128,), dropout=0.1).hidden
  (128,)
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
  if num_classes < 1:
    raise ValueError(f"`num_classes` (={num_classes}) must be >= 1")
  return MODELS[name](num_classes=num_classes, dtype=dtype, axis_name=axis_name, **kwargs)


def _logits(x: jax.Array) -> jax.Array:
  # Keep the loss, softmax and metrics in float32 even when the body ran in bfloat16.
  return x.astype(jnp.float32)


class TutorialCNN(nn.Module):
  """The Keras tutorial CIFAR-10 CNN ("Convolutional Neural Network (CNN)", tensorflow.org):

  Conv(32, 3, relu) - MaxPool(2) - Conv(64, 3, relu) - MaxPool(2) - Conv(64, 3, relu) -
  Flatten - Dense(hidden, relu) - Dense(num_classes). On 32x32x3 inputs it has 122,570
  parameters with ``hidden=64`` and 586,250 with ``hidden=512``, exactly Keras' counts.
  """
  num_classes: int = 10
  hidden: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = L.Conv(32, 3, activation="relu", dtype=self.dtype)(x)
    x = L.MaxPool(2)(x)
    x = L.Conv(64, 3, activation="relu", dtype=self.dtype)(x)
    x = L.MaxPool(2)(x)
    x = L.Conv(64, 3, activation="relu", dtype=self.dtype)(x)
    x = L.Flatten()(x)
    x = L.Dense(self.hidden, activation="relu", dtype=self.dtype)(x)
    return _logits(L.Dense(self.num_classes, dtype=self.dtype)(x))


class MLP(nn.Module):
  """The Keras MNIST MLP: Flatten - [Dense(h, relu) - Dropout(dropout)] per hidden size -
  Dense(num_classes). 669,706 parameters on 28x28x1 with the defaults (512, 512), 0.2."""
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
    return _logits(L.Dense(self.num_classes, dtype=self.dtype)(x))


class StrideNet(nn.Module):
  """Strided convolutions instead of pooling: for each width in ``features`` a 3x3 conv with
  stride 2, SAME padding and relu (each halves the resolution: 32 -> 16 -> 8 -> 4), then
  ``head='flatten'`` (Flatten) or ``head='gap'`` (GlobalAvgPool) and Dense(num_classes)."""
  num_classes: int = 10
  features: Sequence[int] = (32, 64, 128)
  head: str = "flatten"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.head not in ("flatten", "gap"):
      raise ValueError(f"StrideNet `head` (={self.head!r}) must be 'flatten' or 'gap'")
    for width in self.features:
      x = L.Conv(width, 3, stride=2, padding="SAME", activation="relu", dtype=self.dtype)(x)
    x = L.Flatten()(x) if self.head == "flatten" else L.GlobalAvgPool()(x)
    return _logits(L.Dense(self.num_classes, dtype=self.dtype)(x))


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
  if head not in ("flatten", "gap"):
    raise ValueError(f"StrideNet `head` (={head!r}) must be 'flatten' or 'gap'")
  return StrideNet(num_classes=num_classes, features=tuple(features), head=head, dtype=dtype)


__all__ = ["MODELS", "register", "get_model", "TutorialCNN", "MLP", "StrideNet"]
