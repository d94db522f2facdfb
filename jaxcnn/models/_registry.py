"""The model registry and what every image model shares: the input-layout check, float32
logits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcnn import _checks

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
  _checks.choice(name, "model", sorted(MODELS))
  num_classes = _checks.positive_int(num_classes, "num_classes")
  return MODELS[name](num_classes=num_classes, dtype=check_dtype(dtype), axis_name=axis_name,
                      **kwargs)


COMPUTE_DTYPES = ("float32", "bfloat16", "float64")


def check_dtype(dtype: Any) -> Any:
  """Returns ``dtype`` if it is a compute dtype the models support, else raises one line.

  float32 (the default), bfloat16 (accelerators; parameters, batch statistics and logits stay
  float32) and float64 (with ``jax_enable_x64``, for gradient checks). float16 is refused: its
  range (max 65504, smallest normal 6e-5) needs loss scaling, which jaxcnn does not do, so a
  float16 run can overflow or flush gradients to zero without a word.

  >>> check_dtype('float16')
  Traceback (most recent call last):
  ...
  ValueError: `dtype` (='float16') must be one of ('float32', 'bfloat16', 'float64'); float16 needs loss scaling, which jaxcnn does not do: use 'bfloat16'
  """
  try:
    name = jnp.dtype(dtype).name
  except TypeError:
    name = None
  if name in COMPUTE_DTYPES:
    return dtype
  fix = ("; float16 needs loss scaling, which jaxcnn does not do: use 'bfloat16'"
         if name == "float16" else "")
  shown = repr(name) if name else repr(dtype)
  raise ValueError(f"`dtype` (={shown}) must be one of {COMPUTE_DTYPES}{fix}")


def logits_f32(x: jax.Array) -> jax.Array:
  # Keep the loss, softmax and metrics in float32 even when the body ran in bfloat16.
  return x.astype(jnp.float32)


def check_image_rank(x: Any, spatial_rank: int, model: str) -> None:
  """Raises one line unless ``x`` is a batch of channels-last images of ``spatial_rank``
  spatial dims.

  Without it a 2-D net given MNIST as ``keras.datasets`` shapes it, ``[B, 28, 28]``, silently
  becomes a 1-D net (its convolutions read ``28`` as channels) and still trains. A batch that
  looks NCHW (``[B, 3, 32, 32]``: 3 or 1 first, many last)
  is refused too: read channels-last it is images 3 pixels high with 32 channels, which a
  SAME-padded net would also train on without a word.

  >>> check_image_rank(jnp.zeros((8, 28, 28)), 2, 'LeNet5')
  Traceback (most recent call last):
  ...
  ValueError: LeNet5 is a 2-D model: x must be [B, H, W, C] (rank 4), got shape (8, 28, 28) (rank 3); for one-channel images add the channel axis: x[..., None]
  """
  ndim, want = jnp.ndim(x), spatial_rank + 2
  shape = tuple(jnp.shape(x))
  layout = _checks.LAYOUTS[want]
  if ndim == want and _checks.looks_nchw(shape):
    raise ValueError(f"{model} got x of shape {shape}, which looks NCHW (channels on axis 1); "
                     f"{_checks.CHANNELS_LAST_HINT}")
  if ndim == want:
    return
  if ndim == want - 1 and shape[-1] in (1, 3, 4):
    fix = "for a single image add the batch axis: x[None]"
  elif ndim == want - 1:
    fix = "for one-channel images add the channel axis: x[..., None]"
  else:
    fix = f"pass a batch of images {layout}"
  raise ValueError(f"{model} is a {spatial_rank}-D model: x must be {layout} (rank {want}), "
                   f"got shape {shape} (rank {ndim}); {fix}")


class ImageClassifier(nn.Module):
  """Base class of the image models: ``model(x, train=False)`` checks that ``x`` is
  ``[B, H, W, C]`` (:func:`check_image_rank`), runs ``forward`` and returns float32 logits
  ``[B, num_classes]`` whatever the compute dtype.

  A subclass writes ``@nn.compact def forward(self, x, train)``; parameters are named as if
  that method were ``__call__``.
  """
  spatial_rank: ClassVar[int] = 2

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    check_image_rank(x, self.spatial_rank, type(self).__name__)
    return logits_f32(self.forward(x, train))

  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    raise NotImplementedError(f"{type(self).__name__} must define forward(x, train)")
