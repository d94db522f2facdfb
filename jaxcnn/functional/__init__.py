"""Pure-function CNN ops in plain JAX: no Flax, no state, channels-last.

Inputs are ``[B, W, C]`` (1-D), ``[B, H, W, C]`` (2-D) or ``[B, D, H, W, C]`` (3-D); the
spatial rank is read from ``x.ndim``. Kernels are ``[*kernel_size, C_in // groups, C_out]``.
Randomness only through explicit keys. Padding, stride and dilation are resolved by
:mod:`jaxcnn.shapes`, so the shape arithmetic there is the shape these ops return.

>>> import jax, jax.numpy as jnp
>>> from jaxcnn import functional as F
>>> x = jnp.ones((1, 5, 5, 1)); w = jnp.ones((3, 3, 1, 1))
>>> F.conv(x, w, padding='SAME')[0, :, :, 0].tolist()[0]
[4.0, 6.0, 6.0, 6.0, 4.0]
"""

from jaxcnn.functional._conv import conv, conv1d, conv2d, conv3d, convolve, patches, conv_via_patches
from jaxcnn.functional._pool import (
    avg_pool, global_avg_pool, global_max_pool, lp_pool, max_pool, sum_pool)
from jaxcnn.functional._dropout import channel_dropout, dropout
from jaxcnn.functional._core import (
    cross_entropy, dense, elu, flatten, gelu, leaky_relu, log_softmax, mse, relu, sigmoid,
    softmax, tanh, ACTIVATIONS, get_activation)
from jaxcnn.functional._norm import batch_norm

__all__ = [
    "conv", "conv1d", "conv2d", "conv3d", "convolve", "patches", "conv_via_patches",
    "max_pool", "avg_pool", "sum_pool", "lp_pool", "global_avg_pool", "global_max_pool",
    "dropout", "channel_dropout",
    "dense", "flatten", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax",
    "log_softmax", "cross_entropy", "mse", "ACTIVATIONS", "get_activation",
    "batch_norm",
]
