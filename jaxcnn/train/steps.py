"""The train and eval steps: pure functions of ``(state, batch)``, one jit each.

The same :func:`train_step` runs

* under ``jax.jit`` on one device (``axis_name=None``);
* under ``jax.pmap(..., axis_name=AXIS_NAME)``: pass ``axis_name=AXIS_NAME`` and the step
  averages gradients, batch statistics and metrics with ``lax.pmean`` and folds the device
  index into the dropout key;
* under ``jax.jit`` with the batch sharded over a ``Mesh`` axis and the state replicated
  (``axis_name=None``): the program is written for the global batch and XLA inserts the
  collectives, so the result equals the single-device one up to float summation order.

Batches are the loaders' dicts: ``{'image': [B, H, W, C] float, 'label': [B] int32}`` and
optionally ``'mask': [B] float32`` (0 = padding in the last eval batch).

Hooks (bind them with ``functools.partial``; they are traced into the one compiled step):

* ``train_step(..., loss_fn=)``: ``loss_fn(logits, batch) -> [B]`` per-example losses;
* ``eval_step(..., logits_fn=)`` / ``predict_step(..., logits_fn=)``: ``logits_fn(apply,
  images) -> logits`` where ``apply(x)`` runs the model in eval mode, e.g.
  ``functools.partial(tta_logits, flip=True)`` for test-time augmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxcnn import functional as F
from jaxcnn import metrics as metrics_lib
from jaxcnn.train.state import TrainState

LossFn = Callable[[jax.Array, dict[str, jax.Array]], jax.Array]
LogitsFn = Callable[[Callable[[jax.Array], jax.Array], jax.Array], jax.Array]

AXIS_NAME = "batch"  # the one name for the data-parallel axis (pmap axis and Mesh axis)

TRAIN_METRICS = ("loss", "accuracy", "grad_norm", "param_norm", "update_norm", "finite")


def _masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
  if mask is None:
    return jnp.mean(values)
  w = mask.astype(jnp.float32)
  return jnp.sum(values * w) / jnp.maximum(jnp.sum(w), 1.0)


def dropout_key(rng: jax.Array, step: jax.Array, axis_name: str | None = None) -> jax.Array:
  """The dropout key of step ``step``: ``fold_in(rng, step)``, then the device index under pmap.

  A pure function of ``(seed, step[, device])``, so resumed runs draw the same masks; under
  ``pmap`` each device draws its own masks (the same mask on every device would make the
  devices' examples share dropout patterns). Under ``jit`` over a ``Mesh`` (``axis_name=None``)
  the one global-batch mask already differs across the batch.

  >>> k = dropout_key(jax.random.PRNGKey(0), jnp.int32(3))
  """
  key = jax.random.fold_in(rng, step)
  if axis_name is not None:
    key = jax.random.fold_in(key, lax.axis_index(axis_name))
  return key


def train_step(state: TrainState, batch: dict[str, jax.Array], *,
               axis_name: str | None = None, label_smoothing: float = 0.0,
               loss_fn: LossFn | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimisation step: forward, loss, gradients, optax update, collections, averager.

  Args:
    state: the :class:`TrainState` (donate it: ``jax.jit(..., donate_argnums=0)``).
    batch: ``{'image': [B, H, W, C], 'label': [B] int32}`` (+ optional ``'mask': [B]``).
    axis_name: the pmap axis to average over, or None (single device, or Mesh/jit where XLA
      handles the collectives).
    label_smoothing: in ``[0, 1)`` for the default cross-entropy loss.
    loss_fn: ``loss_fn(logits [B, K] float32, batch) -> [B]`` per-example losses, replacing the
      (smoothed) cross-entropy; masked and averaged by the step.

  The optimiser sees ``state.params`` (so ``optax.lookahead``'s ``LookaheadParams`` work) and
  the gradient of the model's params; the state's mutable collections (``state.mutable``) are
  updated from the forward pass (averaged over ``axis_name``); then ``state.averager``, if any,
  updates its averages.

  Returns:
    ``(new_state, metrics)``; metrics are float32 scalars: ``loss`` (masked mean),
    ``accuracy``, ``grad_norm`` (global norm of the averaged gradient), ``param_norm`` (of the
    new model params), ``update_norm``, and ``finite`` (1.0 when loss and gradient are finite).
    The loop checks ``finite`` on the host at log points and before every checkpoint, so no
    host sync is needed per step.

  >>> import functools, jax
  >>> step = jax.jit(functools.partial(train_step, label_smoothing=0.1), donate_argnums=0)
  """
  key = dropout_key(state.rng, state.step, axis_name)
  images, labels = batch["image"], batch["label"]
  mask = batch.get("mask")
  mutable = list(state.mutable)

  def objective(params):
    variables = {"params": params, **state.collections}
    if mutable:
      logits, updated = state.apply_fn(variables, images, train=True, rngs={"dropout": key},
                                       mutable=mutable)
    else:
      logits, updated = state.apply_fn(variables, images, train=True,
                                       rngs={"dropout": key}), {}
    logits = logits.astype(jnp.float32)
    if loss_fn is None:
      losses = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    else:
      losses = loss_fn(logits, batch)
    return _masked_mean(losses, mask), (logits, dict(updated))

  (loss, (logits, updated)), grads = jax.value_and_grad(objective, has_aux=True)(
      state.model_params)
  acc = metrics_lib.accuracy(logits, labels, mask)
  if axis_name is not None:
    grads = lax.pmean(grads, axis_name)
    # Running statistics must stay identical on every replica of the state.
    updated = lax.pmean(updated, axis_name)
    loss, acc = lax.pmean((loss, acc), axis_name)
  updates, new_opt_state = state.tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1,
                            params=optax.apply_updates(state.params, updates),
                            opt_state=new_opt_state,
                            collections={**state.collections, **updated})
  if state.averager is not None:
    live, avg_state = state.averager.update(new_state.variables, state.avg_state, state.step)
    new_state = new_state.with_variables(live).replace(avg_state=avg_state)
  grad_norm = optax.tree.norm(grads)
  metrics = {
      "loss": loss,
      "accuracy": acc,
      "grad_norm": grad_norm,
      "param_norm": optax.tree.norm(new_state.model_params),
      "update_norm": optax.tree.norm(updates),
      "finite": (jnp.isfinite(loss) & jnp.isfinite(grad_norm)).astype(jnp.float32),
  }
  return new_state, jax.tree.map(lambda m: m.astype(jnp.float32), metrics)


def _eval_logits(state: TrainState, images: jax.Array,
                 logits_fn: LogitsFn | None) -> jax.Array:
  variables = state.eval_variables
  apply = lambda x: state.apply_fn(variables, x, train=False)
  logits = apply(images) if logits_fn is None else logits_fn(apply, images)
  return logits.astype(jnp.float32)


def eval_step(state: TrainState, batch: dict[str, jax.Array], *,
              axis_name: str | None = None, top_k: int = 5,
              logits_fn: LogitsFn | None = None) -> dict[str, jax.Array]:
  """Metric *sums* on one batch: no dropout, running statistics, averaged variables when kept.

  Args:
    state: the train state (not modified).
    batch: ``{'image', 'label'}`` and optionally ``'mask': [B]`` marking padding.
    axis_name: pmap axis to ``psum`` over, or None.
    top_k: the k of the top-k count (key ``f'top{top_k}'``).
    logits_fn: ``logits_fn(apply, images) -> [B, K]`` (e.g. :func:`tta_logits`); default
      ``apply(images)``.

  Returns:
    ``{'loss', 'accuracy', 'top5', 'count': float32 [], 'confusion': int32 [K, K]}``, sums over
    the unmasked examples (loss is plain cross-entropy, without label smoothing). Add them up
    with :class:`jaxcnn.metrics.Accumulator`.
  """
  logits = _eval_logits(state, batch["image"], logits_fn)
  losses = F.cross_entropy(logits, batch["label"])
  sums = metrics_lib.classification_sums(logits, batch["label"], losses,
                                         mask=batch.get("mask"), top_k=top_k)
  if axis_name is not None:
    sums = lax.psum(sums, axis_name)
  return sums


def predict_step(state: TrainState, images: jax.Array, *,
                 logits_fn: LogitsFn | None = None) -> jax.Array:
  """Logits ``[B, K] float32`` in eval mode (averaged variables when kept)."""
  return _eval_logits(state, images, logits_fn)


def _shift(images: jax.Array, dy: int, dx: int, mode: str = "edge") -> jax.Array:
  """Translates ``[B, H, W, C]`` by ``(dy, dx)`` pixels, filling the gap by ``jnp.pad``'s
  ``mode`` (``'edge'``: the edge repeated; ``'reflect'``: mirrored without the edge)."""
  _, h, w, _ = images.shape
  py, px = abs(dy), abs(dx)
  padded = jnp.pad(images, ((0, 0), (py, py), (px, px), (0, 0)), mode=mode)
  return padded[:, py - dy:py - dy + h, px - dx:px - dx + w, :]


def tta_logits(apply: Callable[[jax.Array], jax.Array], images: jax.Array, *,
               flip: bool = True, shifts: Sequence[tuple[int, int]] = (),
               pad_mode: str = "edge", shift_weight: float | None = None) -> jax.Array:
  """Test-time augmentation: the (weighted) mean of the logits over views of ``images``.

  Views: the images; each ``(dy, dx)`` translation in ``shifts`` (the gap filled by
  ``pad_mode``: ``'edge'`` or ``'reflect'``); and, with ``flip``, the left-right mirror of
  each. All views run as one batch. Weights: equal (the plain mean) by default; with
  ``shift_weight=s`` the translated views share ``s`` of the total and the untranslated ones
  ``1 - s`` (airbench94's level-2 TTA: ``flip=True, shifts=((1, 1), (-1, -1)),
  pad_mode='reflect', shift_weight=0.5``).

  Args:
    apply: ``x [B, H, W, C] -> logits [B, K]`` (the model in eval mode).
    images: ``[B, H, W, C]``.

  >>> import functools
  >>> logits_fn = functools.partial(tta_logits, flip=True, shifts=((1, 0), (-1, 0)))
  >>> logits_fn(lambda x: x.mean(axis=(1, 2)), jnp.ones((2, 4, 4, 3))).shape
  (2, 3)
  """
  views = [images] + [_shift(images, int(dy), int(dx), pad_mode) for dy, dx in shifts]
  if shift_weight is None or not shifts:
    weights = [1.0 / len(views)] * len(views)
  else:
    weights = [1.0 - shift_weight] + [shift_weight / len(shifts)] * len(shifts)
  if flip:
    views += [v[:, :, ::-1, :] for v in views]
    weights = [w / 2 for w in weights] * 2
  b = images.shape[0]
  logits = apply(jnp.concatenate(views, axis=0)).astype(jnp.float32)
  logits = logits.reshape((len(views), b) + logits.shape[1:])
  if shift_weight is None:
    return jnp.mean(logits, axis=0)
  w = jnp.asarray(weights, jnp.float32).reshape((len(views),) + (1,) * (logits.ndim - 1))
  return jnp.sum(logits * w, axis=0)
