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
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxcnn import functional as F
from jaxcnn import metrics as metrics_lib
from jaxcnn.train.state import TrainState

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
               ema_decay: float = 0.0) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimisation step: forward, loss, gradients, optax update, batch stats, metrics.

  Args:
    state: the :class:`TrainState` (donate it: ``jax.jit(..., donate_argnums=0)``).
    batch: ``{'image': [B, H, W, C], 'label': [B] int32}`` (+ optional ``'mask': [B]``).
    axis_name: the pmap axis to average over, or None (single device, or Mesh/jit where XLA
      handles the collectives).
    label_smoothing: in ``[0, 1)``; bind it with ``functools.partial`` from the config.
    ema_decay: decay of ``state.ema_params`` (used only when the state keeps an EMA).

  Returns:
    ``(new_state, metrics)``; metrics are float32 scalars: ``loss`` (mean smoothed
    cross-entropy), ``accuracy``, ``grad_norm`` (global norm of the averaged gradient),
    ``param_norm`` (of the new params), ``update_norm``, and ``finite`` (1.0 when loss and
    gradient are finite). The loop checks ``finite`` on the host at log points and before every
    checkpoint, so no host sync is needed per step.

  >>> import functools, jax
  >>> step = jax.jit(functools.partial(train_step, label_smoothing=0.1), donate_argnums=0)
  """
  key = dropout_key(state.rng, state.step, axis_name)
  images, labels = batch["image"], batch["label"]
  mask = batch.get("mask")
  has_stats = bool(state.batch_stats)

  def loss_fn(params):
    variables = {"params": params}
    if has_stats:
      variables["batch_stats"] = state.batch_stats
      logits, updates = state.apply_fn(variables, images, train=True,
                                       rngs={"dropout": key}, mutable=["batch_stats"])
      new_stats = updates["batch_stats"]
    else:
      logits = state.apply_fn(variables, images, train=True, rngs={"dropout": key})
      new_stats = state.batch_stats
    logits = logits.astype(jnp.float32)
    losses = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return _masked_mean(losses, mask), (logits, new_stats)

  (loss, (logits, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  acc = metrics_lib.accuracy(logits, labels, mask)
  if axis_name is not None:
    grads = lax.pmean(grads, axis_name)
    # Running statistics must stay identical on every replica of the state.
    new_stats = lax.pmean(new_stats, axis_name)
    loss, acc = lax.pmean((loss, acc), axis_name)
  updates, new_opt_state = state.tx.update(grads, state.opt_state, state.params)
  new_params = optax.apply_updates(state.params, updates)
  new_ema = state.ema_params
  if new_ema is not None:
    new_ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p,
                           new_ema, new_params)
  grad_norm = optax.tree.norm(grads)
  new_state = state.replace(step=state.step + 1, params=new_params, opt_state=new_opt_state,
                            batch_stats=new_stats, ema_params=new_ema)
  metrics = {
      "loss": loss,
      "accuracy": acc,
      "grad_norm": grad_norm,
      "param_norm": optax.tree.norm(new_params),
      "update_norm": optax.tree.norm(updates),
      "finite": (jnp.isfinite(loss) & jnp.isfinite(grad_norm)).astype(jnp.float32),
  }
  return new_state, jax.tree.map(lambda m: m.astype(jnp.float32), metrics)


def eval_step(state: TrainState, batch: dict[str, jax.Array], *,
              axis_name: str | None = None, top_k: int = 5) -> dict[str, jax.Array]:
  """Metric *sums* on one batch: no dropout, running statistics, EMA params when kept.

  Args:
    state: the train state (not modified).
    batch: ``{'image', 'label'}`` and optionally ``'mask': [B]`` marking padding.
    axis_name: pmap axis to ``psum`` over, or None.
    top_k: the k of the top-k count (key ``f'top{top_k}'``).

  Returns:
    ``{'loss', 'accuracy', 'top5', 'count': float32 [], 'confusion': int32 [K, K]}``, sums over
    the unmasked examples (loss is plain cross-entropy, without label smoothing). Add them up
    with :class:`jaxcnn.metrics.Accumulator`.
  """
  logits = state.apply_fn(state.eval_variables, batch["image"], train=False)
  logits = logits.astype(jnp.float32)
  losses = F.cross_entropy(logits, batch["label"])
  sums = metrics_lib.classification_sums(logits, batch["label"], losses,
                                         mask=batch.get("mask"), top_k=top_k)
  if axis_name is not None:
    sums = lax.psum(sums, axis_name)
  return sums


def predict_step(state: TrainState, images: jax.Array) -> jax.Array:
  """Logits ``[B, K] float32`` in eval mode (EMA params when kept)."""
  return state.apply_fn(state.eval_variables, images, train=False).astype(jnp.float32)

