"""jaxcnn for Flax NNX: the layers, the model zoo and the training engine, NNX-style.

* Layers (``_layers.py``): :class:`Conv`, :class:`Dense`, :class:`BatchNorm`,
  :class:`Dropout`, the pools, :class:`Flatten`, :class:`Activation`, :class:`Sequential`:
  the twins of :mod:`jaxcnn.layers` (same arguments, checks, initialisers and functional ops),
  taking their input size eagerly as NNX layers do (``Conv(in_features, features, 3,
  rngs=rngs)``), in train mode until ``model.eval()``.
* Models (``_convert.py``): :func:`get_model` builds any zoo model by name as an NNX module,
  derived from its one Linen definition by :func:`from_linen` (which converts your own Linen
  models of jaxcnn layers too). Its variables have the Linen names and shapes:
  :func:`to_linen_variables` and :func:`from_linen_variables` go between the two, and a
  checkpoint of either restores into either.
* Training (``_view.py``): ``jaxcnn.train.fit`` / ``evaluate`` / ``predict`` accept an NNX
  module (any ``nnx.Module`` whose ``__call__(x)`` returns logits and whose dropout and
  BatchNorm follow ``train()`` / ``eval()``) and train it with the Linen engine's own
  ``train_step`` through :func:`linen_view`; ``fit`` writes the trained variables back into the
  module, and :func:`update_module` writes any state (a ``TrainState``, a ``History``, a
  ``TrainResult``, Linen variables) into one. ``train_and_evaluate`` runs a config's model as
  NNX with ``model_api='nnx'``.

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> from jaxcnn import nnx as jnnx
>>> class CNN(nnx.Module):
...   def __init__(self, rngs):
...     self.conv = jnnx.Conv(1, 8, 3, activation='relu', rngs=rngs)
...     self.pool = jnnx.MaxPool(2)
...     self.flat = jnnx.Flatten()
...     self.head = jnnx.Dense(13 * 13 * 8, 10, rngs=rngs)
...   def __call__(self, x):
...     return self.head(self.flat(self.pool(self.conv(x))))
>>> CNN(nnx.Rngs(0))(jnp.ones((2, 28, 28, 1))).shape
(2, 10)
"""

from jaxcnn.nnx._convert import (
    DEFAULT_INPUT_SHAPE, LinenLayer, Model, Submodule, default_input_shape, from_linen,
    from_linen_variables, get_model, to_linen_variables)
from jaxcnn.nnx._layers import (
    Activation, AvgPool, BatchNorm, ChannelDropout, Conv, Dense, Dropout, Flatten, GlobalAvgPool,
    GlobalMaxPool, Layer, LpPool, MaxPool, Sequential, SumPool)
from jaxcnn.nnx._state import module_variables, update_module
from jaxcnn.nnx._view import LinenView, linen_view

__all__ = [
    "Layer", "Conv", "Dense", "MaxPool", "AvgPool", "SumPool", "LpPool", "GlobalAvgPool",
    "GlobalMaxPool", "Dropout", "ChannelDropout", "Flatten", "Activation", "BatchNorm",
    "Sequential", "Model", "Submodule", "LinenLayer", "from_linen", "get_model",
    "to_linen_variables", "from_linen_variables", "module_variables", "update_module",
    "LinenView", "linen_view", "DEFAULT_INPUT_SHAPE", "default_input_shape",
]
