"""SpeedNet: the network of Keller Jordan's airbench94 CIFAR-10 speed record, and its
data-derived whitening layer.

Sources (read for this port; github.com/KellerJordan/cifar10-airbench, snapshot of 2026):
``airbench94_muon.py`` (94.01% mean over 200 runs in 2.59 s on an A100; classes ``BatchNorm``,
``Conv``, ``ConvGroup``, ``CifarNet`` and ``CifarNet.init_whiten``), ``legacy/airbench94.py``
(the same net with SGD; ``scaling_factor=1/9`` for the logits) and ``airbench96_faster.py``
(``ConvGroup(depth=3)``, a third conv with a residual); the paper is Jordan, "94% on CIFAR-10 in
3.29 seconds on a single GPU", arXiv:2404.00498 (2024).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn import _checks
from jaxcnn import functional as F
from jaxcnn import layers as L
from jaxcnn.models._registry import Dtype, ImageClassifier, register


def _patches(images: jax.Array, kernel_size: int) -> jax.Array:
  """All ``k x k`` windows (VALID, stride 1) as rows ``[N * H' * W', k * k * C]``, flattened
  in the ``(kh, kw, c)`` order of a ``[k, k, C, C_out]`` conv kernel."""
  n, h, w, c = images.shape
  k = kernel_size
  cols = [images[:, i:h - k + 1 + i, j:w - k + 1 + j, :] for i in range(k) for j in range(k)]
  return jnp.stack(cols, axis=3).reshape(-1, k * k * c)


def whitening_kernel(images: jax.Array, eps: float = 5e-4, kernel_size: int = 2) -> jax.Array:
  """The frozen first layer of airbench: a conv whose filters whiten the image patches.

  With ``P`` the ``k x k`` patches of ``images`` as rows (dimension ``d = k*k*C``),
  ``S = P^T P / len(P)`` their (uncentred) second-moment matrix and ``S = V diag(lam) V^T``, the
  filters are the eigenvectors scaled by ``1 / sqrt(lam + eps)``: responses to the patches then
  have second moments ``diag(lam / (lam + eps))`` (the identity for ``eps -> 0``). Every filter
  is followed by its negation, so a following GELU keeps both signs: ``2 d`` outputs, ordered
  by ascending eigenvalue then negated, as ``CifarNet.init_whiten`` of airbench94_muon.py.

  Args:
    images: ``[N, H, W, C]`` float, normalised as the training inputs (airbench uses the first
      5,000 training images).
    eps: added to the eigenvalues; it caps the gain of the near-constant directions.
    kernel_size: ``k`` (2 in airbench94).

  Returns:
    ``[k, k, C, 2 * k * k * C]`` float32 kernel (``[2, 2, 3, 24]`` for RGB).

  >>> x = jax.random.normal(jax.random.key(0), (16, 8, 8, 3))
  >>> whitening_kernel(x).shape
  (2, 2, 3, 24)
  """
  images = jnp.asarray(images, jnp.float32)
  _checks.rank(images, 4, "images", where="whitening_kernel", layouts="[N, H, W, C]")
  if images.shape[1] < kernel_size or images.shape[2] < kernel_size:
    raise ValueError(f"whitening_kernel: images {tuple(images.shape)} are smaller than "
                     f"`kernel_size` (={kernel_size})")
  p = _patches(images, kernel_size)
  cov = (p.T @ p) / p.shape[0]
  eigenvalues, eigenvectors = jnp.linalg.eigh(cov)  # ascending; columns are the eigenvectors
  scaled = eigenvectors / jnp.sqrt(eigenvalues + eps)[None, :]
  kernel = scaled.reshape(kernel_size, kernel_size, images.shape[-1], -1)
  return jnp.concatenate([kernel, -kernel], axis=-1)


def init_whitening(variables: dict[str, Any], images: jax.Array, eps: float = 5e-4
                   ) -> dict[str, Any]:
  """``variables`` of a :class:`SpeedNet` with ``params['whiten']['kernel']`` set from
  ``images`` by :func:`whitening_kernel` (a new tree; the input is not changed).

  This is the data-dependent init airbench runs before training
  (``model.init_whiten(train_images[:5000])``); an engine ``init_fn`` hook can call it.
  """
  params = dict(variables["params"])
  old = params["whiten"]["kernel"]
  kernel = whitening_kernel(images, eps, kernel_size=old.shape[0]).astype(old.dtype)
  if kernel.shape != old.shape:
    raise ValueError(f"init_whitening: the kernel from images {tuple(jnp.shape(images))} has "
                     f"shape {kernel.shape}, the model's has {old.shape}")
  params["whiten"] = {**params["whiten"], "kernel": kernel}
  return {**variables, "params": params}


def _torch_default_init(key, shape, dtype=jnp.float32):
  """PyTorch's default conv/linear weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(math.prod(shape[:-1]))
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def dirac_init(key, shape, dtype=jnp.float32):
  """airbench's conv init: PyTorch's default, then the first ``C_in`` filters replaced by the
  identity (``torch.nn.init.dirac_(w[:w.size(1)])``), so the conv starts as a pass-through of
  its input channels plus ``C_out - C_in`` random ones. ``shape = [kh, kw, C_in, C_out]``.

  >>> k = dirac_init(jax.random.key(0), (3, 3, 2, 4))
  >>> k[1, 1, :, :2].tolist(), float(abs(k[0, 0, :, :2]).max())
  ([[1.0, 0.0], [0.0, 1.0]], 0.0)
  """
  kernel = _torch_default_init(key, shape, dtype)
  kh, kw, c_in, c_out = shape
  n = min(c_in, c_out)
  eye = jnp.zeros((kh, kw, c_in, n), dtype).at[kh // 2, kw // 2].set(jnp.eye(c_in, n, dtype=dtype))
  return kernel.at[..., :n].set(eye)


def _unit_std_uniform(key, shape, dtype=jnp.float32):
  # airbench94_muon's CifarNet.reset: the head weight, after PyTorch's uniform init, is divided
  # by its standard deviation: a uniform of unit standard deviation.
  return jax.random.uniform(key, shape, dtype, -math.sqrt(3.0), math.sqrt(3.0))


class WhiteningConv(L.Conv):
  """A :class:`jaxcnn.layers.Conv` whose kernel receives no gradient (``lax.stop_gradient``):
  the frozen whitening layer. The bias is trainable. Set the kernel with
  :func:`init_whitening`. (A weight-decaying optimiser must still leave ``whiten/kernel``
  alone: stop_gradient zeroes its gradient, not decoupled weight decay.)"""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    k = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
    kernel = self.param("kernel", self.kernel_init, (*k, x.shape[-1], self.features),
                        self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, lax.stop_gradient(kernel), bias,
                                              dtype=self.dtype)
    return F.conv(x, kernel, bias, padding="VALID")


class ConvGroup(nn.Module):
  """airbench's ``ConvGroup``: conv3x3 - MaxPool 2 - BN - GELU - conv3x3 - BN - GELU, and with
  ``depth=3`` (airbench96) a third conv3x3 - BN added to the output of the first GELU, then
  GELU. Convs: SAME, no bias, :func:`dirac_init`. BatchNorm: no scale (airbench freezes it at
  1), running statistics ``0.6 * old + 0.4 * batch`` (PyTorch momentum 0.4), eps 1e-12."""
  features: int
  depth: int = 2
  bn_momentum: float = 0.6
  bn_epsilon: float = 1e-12
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv = lambda: L.Conv(self.features, 3, padding="SAME", use_bias=False,
                          kernel_init=dirac_init, dtype=self.dtype)
    bn = lambda: L.BatchNorm(momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                             use_scale=False, axis_name=self.axis_name, dtype=self.dtype)
    gelu = lambda y: F.gelu(y)
    x = conv()(x)
    x = L.MaxPool(2)(x)
    x = gelu(bn()(x, train=train))
    x0 = x
    x = gelu(bn()(conv()(x), train=train))
    if self.depth == 3:
      x = gelu(bn()(conv()(x), train=train) + x0)
    return x


class SpeedNet(ImageClassifier):
  """The airbench94 network (Jordan 2024; see the module docstring for the sources):

  WhiteningConv(24, 2x2, VALID, frozen kernel, trainable bias) - GELU - ConvGroup(64) -
  ConvGroup(256) - ConvGroup(256) - MaxPool 3 - Dense(num_classes, no bias) x ``logit_scale``.

  On 32x32 the resolution goes 31 -> 15 -> 7 -> 3 -> 1 (the final 3x3 max pool, stride 3, leaves
  one position, as PyTorch's ``MaxPool2d(3)``). ``logit_scale`` defaults to ``1 / widths[-1]``
  (airbench94_muon's ``head(x) / x.size(-1)``; legacy airbench94 used 1/9). ``width_mult``
  scales the three group widths; ``depth=3`` adds airbench96's third conv per group. The
  head is initialised uniform with unit standard deviation, the convs with :func:`dirac_init`.

  Parameters (``params``, the frozen whitening kernel's 288 included): 1,971,640 with
  ``depth=2``, 3,188,728 with ``depth=3``. MACs per 32x32x3 image: 118,147,360 (``depth=3``:
  160,651,552); x 3 (forward + backward) x 2 FLOPs x 50,000 images x 10 epochs = 0.35 PFLOPs,
  the 0.36 PFLOPs legacy/airbench94.py states for its 9.9 epochs plus evaluation.
  """
  num_classes: int = 10
  widths: Sequence[int] = (64, 256, 256)
  width_mult: float = 1.0
  depth: int = 2
  logit_scale: float | None = None
  bn_momentum: float = 0.6
  bn_epsilon: float = 1e-12
  whiten_kernel_size: int = 2
  axis_name: str | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def forward(self, x: jax.Array, train: bool) -> jax.Array:
    _checks.choice(self.depth, "depth", (2, 3), where="SpeedNet",
                   fix="2 is airbench94, 3 airbench96")
    _checks.number(self.width_mult, "width_mult", 0.0, low_closed=False, where="SpeedNet")
    widths = [max(1, round(w * self.width_mult)) for w in self.widths]
    k = self.whiten_kernel_size
    bound = 1.0 / math.sqrt(k * k * x.shape[-1])  # PyTorch's default bias init
    x = WhiteningConv(2 * k * k * x.shape[-1], k, name="whiten", dtype=self.dtype,
                      kernel_init=_torch_default_init,
                      bias_init=lambda key, s, d=jnp.float32: jax.random.uniform(
                          key, s, d, -bound, bound))(x)
    x = F.gelu(x)
    for i, w in enumerate(widths):
      x = ConvGroup(w, self.depth, self.bn_momentum, self.bn_epsilon, self.axis_name,
                    self.dtype, name=f"group{i + 1}")(x, train)
    x = L.MaxPool(3)(x)
    x = L.Flatten()(x)
    x = L.Dense(self.num_classes, use_bias=False, kernel_init=_unit_std_uniform,
                dtype=self.dtype, name="head")(x)
    scale = self.logit_scale if self.logit_scale is not None else 1.0 / widths[-1]
    return x * scale


@register("speednet")
def speednet(*, num_classes: int, dtype: Dtype, width_mult: float = 1.0, depth: int = 2,
             logit_scale: float | None = None, axis_name: str | None = None) -> nn.Module:
  """airbench94's net (frozen whitening conv, 3 GELU conv groups, scaled bias-free head)."""
  return SpeedNet(num_classes=num_classes, width_mult=width_mult, depth=depth,
                  logit_scale=logit_scale, axis_name=axis_name, dtype=dtype)


__all__ = ["SpeedNet", "ConvGroup", "WhiteningConv", "whitening_kernel", "init_whitening",
           "dirac_init"]
