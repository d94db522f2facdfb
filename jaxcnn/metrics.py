"""Classification metrics: per-batch values inside jit, sums across batches on the host.

Two layers, so the padded last batch of an evaluation and multi-device runs stay exact:

* On device (pure ``jnp``, jit/pmap-safe): :func:`accuracy`, :func:`top_k_accuracy`,
  :func:`confusion_matrix` and :func:`classification_sums`, which returns *sums* (loss sum,
  correct count, top-5 count, example count, confusion matrix) weighted by an optional ``mask``.
  Sums can be added across batches and ``lax.psum``-ed across devices; means cannot.
* On the host: :class:`Accumulator` adds the sums (or weighted means) of many steps and
  :meth:`Accumulator.compute` divides once at the end; :func:`per_class_accuracy` reads each
  class's accuracy off a confusion matrix.

Shapes: ``logits: [B, K] float``, ``labels: [B] int``, ``mask: [B] float`` (1 = real example,
0 = padding).

>>> import jax.numpy as jnp
>>> logits = jnp.array([[2., 1., 0.], [0., 1., 2.]]); labels = jnp.array([0, 0])
>>> float(accuracy(logits, labels))
0.5
>>> confusion_matrix(labels, logits.argmax(-1), 3).tolist()
[[1, 0, 1], [0, 0, 0], [0, 0, 0]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import _checks


def _check_logits(logits: jax.Array, labels: jax.Array, fn: str) -> None:
  """``logits [B, K]`` and ``labels [B]``: a lone ``[K]`` row would compare its argmax (a
  scalar) with the labels and report a meaningless accuracy."""
  if jnp.ndim(logits) < 2 or jnp.shape(labels) != jnp.shape(logits)[:-1]:
    raise ValueError(
        f"{fn} expects `logits` [B, K] and `labels` [B], got shapes {tuple(jnp.shape(logits))} "
        f"and {tuple(jnp.shape(labels))}; for one example add the batch axis: logits[None]")


def _check_label_range(values: Any, num_classes: int, name: str = "labels") -> None:
  """Concrete values outside ``[0, num_classes)`` raise, naming the first bad one and its index;
  traced values (inside jit) cannot be checked here and are left to the caller's masking."""
  if isinstance(values, jax.core.Tracer):
    return
  v = np.asarray(values)
  bad = np.flatnonzero((v.reshape(-1) < 0) | (v.reshape(-1) >= num_classes))
  if bad.size:
    i = int(bad[0])
    raise ValueError(f"`{name}` must be in [0, {num_classes}) for {num_classes} classes, got "
                     f"{v.reshape(-1)[i].item()!r} at index {i} ({bad.size} out of range)")


def _weights(labels: jax.Array, mask: jax.Array | None) -> jax.Array:
  if mask is None:
    return jnp.ones(labels.shape, jnp.float32)
  return mask.astype(jnp.float32)


def top_k_correct(logits: jax.Array, labels: jax.Array, k: int = 1) -> jax.Array:
  """Whether each label is among the ``k`` highest logits: ``[B] float32`` of 0/1.

  The label's rank is the number of logits above it, plus the tied ones at a lower index: ties
  go to the first index, as ``argmax`` does, so ``k=1`` equals :func:`accuracy` and a constant
  (dead) model is not credited with every tied class. A non-finite label logit is never correct.
  No sort is needed (cheap, deterministic, any ``k``).
  """
  k = _checks.positive_int(k, "k")
  _check_logits(logits, labels, "top_k_correct")
  if k > logits.shape[-1]:
    # Every label is in the top k of k >= K classes: the accuracy would read 1.0 whatever.
    raise ValueError(f"`k` (={k}) must be <= the number of classes ({logits.shape[-1]})")
  _check_label_range(labels, logits.shape[-1])
  label_logit = jnp.take_along_axis(logits, labels[:, None].astype(jnp.int32), axis=-1)
  before = jnp.arange(logits.shape[-1])[None, :] < labels[:, None]
  rank = jnp.sum((logits > label_logit) | ((logits == label_logit) & before), axis=-1)
  return ((rank < k) & jnp.isfinite(label_logit[:, 0])).astype(jnp.float32)


def accuracy(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Top-1 accuracy, a scalar: the fraction of (unmasked) examples whose argmax is the label.

  ``logits: [B, K]``, ``labels: [B] int``, ``mask: [B]`` or None. Concrete labels outside
  ``[0, K)`` raise (inside jit they count as wrong).
  """
  _check_logits(logits, labels, "accuracy")
  _check_label_range(labels, logits.shape[-1])
  w = _weights(labels, mask)
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return jnp.sum(correct * w) / jnp.maximum(jnp.sum(w), 1.0)


def top_k_accuracy(logits: jax.Array, labels: jax.Array, k: int = 5,
                   mask: jax.Array | None = None) -> jax.Array:
  """Top-``k`` accuracy, a scalar (see :func:`top_k_correct` for ties); ``1 <= k <= K``."""
  w = _weights(labels, mask)
  return jnp.sum(top_k_correct(logits, labels, k) * w) / jnp.maximum(jnp.sum(w), 1.0)


def confusion_matrix(labels: jax.Array, predictions: jax.Array, num_classes: int,
                     mask: jax.Array | None = None) -> jax.Array:
  """``[K, K] int32`` counts; row = true class, column = predicted class.

  ``labels, predictions: [B] int``; masked-out examples (``mask == 0``) are not counted.
  Concrete values outside ``[0, num_classes)`` raise, naming the first; inside jit such an
  example is not counted (rather than landing in another class's cell).
  """
  num_classes = _checks.positive_int(num_classes, "num_classes")
  _check_label_range(labels, num_classes, "labels")
  _check_label_range(predictions, num_classes, "predictions")
  labels, predictions = jnp.asarray(labels, jnp.int32), jnp.asarray(predictions, jnp.int32)
  valid = ((labels >= 0) & (labels < num_classes) & (predictions >= 0)
           & (predictions < num_classes))
  w = _weights(labels, mask).astype(jnp.int32) * valid.astype(jnp.int32)
  flat = jnp.where(valid, labels * num_classes + predictions, 0)
  counts = jnp.zeros((num_classes * num_classes,), jnp.int32).at[flat].add(w)
  return counts.reshape(num_classes, num_classes)


def per_class_accuracy(confusion: Any) -> np.ndarray:
  """Each class's accuracy (recall) from a ``[K, K]`` confusion matrix (row = true class):
  ``confusion[k, k] / confusion[k].sum()``, ``float64 [K]``; NaN for a class with no example.

  >>> per_class_accuracy([[3, 1], [0, 2]]).tolist()
  [0.75, 1.0]
  """
  m = np.asarray(confusion)
  if m.ndim != 2 or m.shape[0] != m.shape[1]:
    raise ValueError(f"`confusion` must be a square [K, K] matrix, got shape {m.shape}")
  counts = m.sum(axis=1).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(counts > 0, np.diagonal(m) / np.maximum(counts, 1), np.nan)


def classification_sums(logits: jax.Array, labels: jax.Array, losses: jax.Array, *,
                        mask: jax.Array | None = None, top_k: int = 5,
                        with_confusion: bool = True) -> dict[str, jax.Array]:
  """Additive metric sums for one batch (what :func:`jaxcnn.train.eval_step` returns).

  Args:
    logits: ``[B, K]``.
    labels: ``[B]`` int.
    losses: ``[B]`` per-example losses.
    mask: ``[B]``; 0 marks padding in the last batch.
    top_k: the ``k`` of the top-k count (clipped to ``K``).
    with_confusion: whether to add the ``[K, K]`` confusion matrix.

  Returns:
    ``{'loss': sum, 'accuracy': correct count, 'top5' (or 'top{k}'): count, 'count': number of
    examples, 'confusion': [K, K] int32}``. Feed them to :class:`Accumulator` with
    ``add_sums`` and divide once with :meth:`Accumulator.compute`.
  """
  num_classes = logits.shape[-1]
  w = _weights(labels, mask)
  preds = jnp.argmax(logits, axis=-1)
  out = {
      "loss": jnp.sum(losses.astype(jnp.float32) * w),
      "accuracy": jnp.sum((preds == labels).astype(jnp.float32) * w),
      f"top{top_k}": jnp.sum(top_k_correct(logits, labels, min(top_k, num_classes)) * w),
      "count": jnp.sum(w),
  }
  if with_confusion:
    out["confusion"] = confusion_matrix(labels, preds, num_classes, mask)
  return out


class Accumulator:
  """Host-side accumulation of metrics across steps.

  Two kinds of input, both kept in float64 on the host:

  * ``add_means(metrics, weight)``: per-step means (train metrics) weighted by the batch size;
  * ``add_sums(sums)``: additive sums with a ``'count'`` entry (eval metrics from
    :func:`classification_sums`); the ``'confusion'`` matrix is summed and returned as is.

  ``compute()`` returns ``{name: sum / total weight}`` plus ``'confusion'`` when present.

  >>> acc = Accumulator()
  >>> acc.add_means({'loss': 2.0}, weight=1); acc.add_means({'loss': 1.0}, weight=3)
  >>> acc.compute()['loss']
  1.25
  """

  def __init__(self):
    self.totals: dict[str, Any] = {}
    self.weight = 0.0

  def _add(self, name: str, value: Any) -> None:
    value = np.asarray(value, dtype=np.int64 if name == "confusion" else np.float64)
    if name in self.totals:
      self.totals[name] = self.totals[name] + value
    else:
      self.totals[name] = value

  def add_means(self, metrics: Mapping[str, Any], weight: float = 1.0) -> None:
    for name, value in metrics.items():
      self._add(name, np.asarray(value, np.float64) * weight)
    self.weight += float(weight)

  def add_sums(self, sums: Mapping[str, Any]) -> None:
    if "count" not in sums:
      raise ValueError(f"`sums` needs a 'count' entry, got keys {sorted(sums)}")
    for name, value in sums.items():
      if name != "count":
        self._add(name, value)
    self.weight += float(np.sum(np.asarray(sums["count"])))

  def compute(self) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, total in self.totals.items():
      if name == "confusion":
        out[name] = total
      else:
        out[name] = float(total) / self.weight if self.weight else float("nan")
    out["count"] = self.weight
    return out

  def state_dict(self) -> dict[str, Any]:
    """JSON-friendly state, so a mid-epoch checkpoint can carry the partial sums."""
    return {"weight": self.weight,
            "totals": {k: np.asarray(v).tolist() for k, v in self.totals.items()}}

  @classmethod
  def from_state_dict(cls, state: Mapping[str, Any]) -> "Accumulator":
    acc = cls()
    acc.weight = float(state.get("weight", 0.0))
    for k, v in state.get("totals", {}).items():
      acc._add(k, v)
    return acc
