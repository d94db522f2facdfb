"""Dense layer, flatten, activations, softmax and the two losses.

Losses return one value per example (``[B]``) so that callers choose the reduction: a plain mean,
a mean weighted by the padding ``mask`` of a last partial batch, or a sum across devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn import _checks
from jaxcnn.functional import _ynn_guard

__all__ = [
    "dense", "flatten", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax",
    "log_softmax", "identity", "ACTIVATIONS", "get_activation", "cross_entropy", "mse",
]


def dense(x: jax.Array, w: jax.Array, b: jax.Array | None = None, *,
          precision=None) -> jax.Array:
  """Affine map on the last axis: ``x @ w + b``.

  Args:
    x: ``[..., in]``.
    w: ``[in, out]``.
    b: ``[out]`` or ``None``.
    precision: passed to ``lax.dot_general`` (e.g. ``lax.Precision.HIGHEST`` on accelerators
      whose default float32 matmul rounds its inputs).

  Returns:
    ``[..., out]``.

  >>> import jax.numpy as jnp
  >>> dense(jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.arange(4.)).tolist()[0]
  [3.0, 4.0, 5.0, 6.0]
  """
  x, w = jnp.asarray(x), jnp.asarray(w)
  if w.ndim != 2:
    raise ValueError(f"dense expects w of shape [in, out], got shape {tuple(w.shape)}")
  if x.ndim < 1 or x.shape[-1] != w.shape[0]:
    raise ValueError(
        f"dense: the last axis of x (shape {tuple(x.shape)}) must equal the first axis of w "
        f"(shape {tuple(w.shape)})")
  # bfloat16 on an affected XLA CPU: the product kept out of the fusions around it, with the
  # same values (jaxcnn.functional._ynn_guard).
  xi, wi = _ynn_guard.isolate(x, w)
  y = _ynn_guard.isolate(
      lax.dot_general(xi, wi, (((x.ndim - 1,), (0,)), ((), ())), precision=precision))[0]
  if b is not None:
    b = jnp.asarray(b)
    if b.shape != (w.shape[1],):
      raise ValueError(
          f"dense: b must have shape ({w.shape[1]},) to match w {tuple(w.shape)}, "
          f"got {tuple(b.shape)}")
    y = y + b.reshape((1,) * (y.ndim - 1) + b.shape)
  return y


def flatten(x: jax.Array) -> jax.Array:
  """Keeps the batch axis and flattens the rest: ``[B, ...] -> [B, prod(...)]``.

  >>> import jax.numpy as jnp
  >>> flatten(jnp.zeros((2, 4, 4, 3))).shape
  (2, 48)
  """
  x = jnp.asarray(x)
  if x.ndim < 1:
    raise ValueError("flatten expects x with a batch axis, got a scalar")
  return x.reshape(x.shape[0], math.prod(x.shape[1:]))


# Activations. Each takes and returns an array of one shape.


def relu(x: jax.Array) -> jax.Array:
  """``max(x, 0)``; its gradient at 0 is 0."""
  return jax.nn.relu(x)


def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
  """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (PyTorch's default slope).

  At exactly 0 the value is 0 either way; the derivative there is ``negative_slope``, as in
  PyTorch, so with ``negative_slope=0`` it agrees with :func:`relu` (derivative 0 at 0).

  >>> import jax
  >>> float(jax.grad(leaky_relu)(0.0)), float(jax.grad(leaky_relu)(-2.0))
  (0.009999999776482582, 0.009999999776482582)
  """
  negative_slope = _checks.real_param(negative_slope, "negative_slope", where="leaky_relu")
  x = jnp.asarray(x)
  return jnp.where(x > 0, x, negative_slope * x)


def elu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
  """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
  return jax.nn.elu(x, _checks.real_param(alpha, "alpha", where="elu"))


def gelu(x: jax.Array, approximate: bool = False) -> jax.Array:
  """``x * Phi(x)`` with ``Phi`` the standard normal CDF (exact, with ``erf``, by default).

  ``approximate=True`` is the tanh formula of Hendrycks & Gimpel,
  ``x * (1 + tanh(u)) / 2`` with ``u = sqrt(2/pi) * (x + 0.044715 x^3)``, computed as the equal
  ``x * sigmoid(2u)``, which does not cancel in the negative tail. Note that ``jax.nn.gelu``
  defaults to the approximation; here, as in PyTorch and Keras, the exact form is the default.
  """
  if approximate:
    x = jnp.asarray(x)
    u = np.sqrt(2 / np.pi).astype(x.dtype) * (x + 0.044715 * x * x * x)
    return x * jax.nn.sigmoid(2 * u)
  return jax.nn.gelu(x, approximate=False)


def sigmoid(x: jax.Array) -> jax.Array:
  """``1 / (1 + exp(-x))``."""
  return jax.nn.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
  """Hyperbolic tangent."""
  return jnp.tanh(x)


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
  """``exp(x) / sum(exp(x))`` along ``axis``, computed with the maximum subtracted.

  >>> import jax.numpy as jnp
  >>> softmax(jnp.array([1000., 1000.])).tolist()
  [0.5, 0.5]
  """
  return jax.nn.softmax(x, axis=axis)


def log_softmax(x: jax.Array, axis: int = -1) -> jax.Array:
  """``x - logsumexp(x)`` along ``axis``; stable for large logits (no ``log(softmax)``).

  >>> import jax.numpy as jnp
  >>> log_softmax(jnp.array([1000., 0.])).tolist()
  [0.0, -1000.0]
  """
  return jax.nn.log_softmax(x, axis=axis)


def identity(x: jax.Array) -> jax.Array:
  """Returns ``x``: the activation of a linear layer."""
  return x


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": identity,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "gelu": gelu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "log_softmax": log_softmax,
}


def get_activation(activation: None | str | Callable) -> Callable[[jax.Array], jax.Array]:
  """Resolves an activation given by name, as a callable, or ``None`` (identity).

  >>> get_activation('relu') is relu
  True
  """
  if activation is None:
    return identity
  if isinstance(activation, str):
    fn = ACTIVATIONS.get(activation.lower())
    if fn is None:
      raise ValueError(
          f"unknown activation {activation!r}: expected one of {sorted(ACTIVATIONS)}, a callable "
          "or None")
    return fn
  if callable(activation):
    return activation
  raise ValueError(
      f"activation must be None, a name in {sorted(ACTIVATIONS)} or a callable, "
      f"got {activation!r}")


def cross_entropy(logits: jax.Array, labels: jax.Array, *,
                  label_smoothing: float = 0.0) -> jax.Array:
  """Softmax cross-entropy with integer labels, one loss per example.

  With ``label_smoothing = eps`` the target is ``(1 - eps) * one_hot + eps / K`` over all ``K``
  classes (the true class included), as ``optax.smooth_labels`` and Keras do.

  Labels outside ``[0, K)`` never pass silently: when ``labels`` is concrete this raises
  ``ValueError``; under ``jit`` (where the values are unknown) the loss of such an example is
  ``nan``, which a NaN check on the loss catches.

  Args:
    logits: ``[B, K]`` float (rank >= 2: a single ``[K]`` row is refused). Computed in at least
      float32, so bfloat16 logits are upcast.
    labels: ``[B]`` int, class indices.
    label_smoothing: a Python float in ``[0, 1)``.

  Returns:
    ``[B]`` per-example losses.

  >>> import jax.numpy as jnp
  >>> round(float(cross_entropy(jnp.zeros((1, 4)), jnp.array([2]))[0]), 4)  # log(4)
  1.3863
  """
  eps = _checks.rate(label_smoothing, "label_smoothing")
  logits, labels = jnp.asarray(logits), jnp.asarray(labels)
  if logits.ndim < 2:
    # A lone [K] row would give a scalar loss that a batch mean then silently takes as is.
    raise ValueError(
        f"cross_entropy expects `logits` [B, K], got shape {tuple(logits.shape)} (rank "
        f"{logits.ndim}); for one example add the batch axis: logits[None], labels[None]")
  if labels.shape != logits.shape[:-1]:
    raise ValueError(
        f"cross_entropy expects logits [B, K] and labels [B], got shapes {tuple(logits.shape)} "
        f"and {tuple(labels.shape)}")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"cross_entropy expects integer class labels, got dtype {labels.dtype}")
  num_classes = logits.shape[-1]
  if not isinstance(labels, jax.core.Tracer):
    concrete = np.asarray(labels)
    bad = concrete[(concrete < 0) | (concrete >= num_classes)]
    if bad.size:
      raise ValueError(
          f"labels must be in [0, {num_classes}) for {num_classes} classes, got "
          f"{bad[:8].tolist()}" + (" ..." if bad.size > 8 else ""))
  valid = (labels >= 0) & (labels < num_classes)
  logp = log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)))
  index = jnp.clip(labels, 0, num_classes - 1)[..., None]
  loss = -jnp.take_along_axis(logp, index, axis=-1)[..., 0]
  if eps:
    loss = (1.0 - eps) * loss - eps * jnp.mean(logp, axis=-1)
  return jnp.where(valid, loss, jnp.full((), jnp.nan, loss.dtype))


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean squared error per example: the mean over every axis but the first, ``[B]``.

  >>> import jax.numpy as jnp
  >>> mse(jnp.ones((2, 3)), jnp.zeros((2, 3))).tolist()
  [1.0, 1.0]
  """
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  if pred.shape != target.shape:
    raise ValueError(
        f"mse expects pred and target of the same shape, got {tuple(pred.shape)} and "
        f"{tuple(target.shape)}")
  if pred.ndim < 1:
    raise ValueError("mse expects a batch axis, got scalars")
  return jnp.mean(jnp.square(pred - target), axis=tuple(range(1, pred.ndim)))
