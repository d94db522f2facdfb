"""Optimisers and learning-rate schedules from a config, all from optax.

Every hyperparameter lives in the config and is baked into the returned
``optax.GradientTransformation``; the train step itself holds no numbers.

Config keys read (with defaults when absent):
  ``optimizer``: ``'adam'`` (default, as in the course) | ``'adamw'`` | ``'sgd'``;
  ``learning_rate`` (peak, > 0); ``momentum`` (sgd, 0.9); ``nesterov`` (sgd, False);
  ``b1``/``b2``/``eps`` (adam/adamw: 0.9, 0.999, 1e-7: Keras's defaults, since the course's
  recipes are Keras ones; optax's own ``eps`` default is 1e-8); ``weight_decay`` (0: off;
  decoupled for adamw, an L2 term added to the gradient for adam/sgd; applied to kernels only,
  i.e. params with ``ndim > 1``, never to biases or BatchNorm scales); ``grad_clip_norm`` (0:
  off; clip by global norm before the optimiser); ``schedule`` (see :func:`make_schedule`).
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from jaxcnn.train._config import cfg_get, is_number

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "onecycle", "piecewise")


def make_schedule(config: Any, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
  """A learning-rate schedule ``step -> lr`` named by ``config.schedule``.

  * ``'constant'``: ``learning_rate`` throughout.
  * ``'cosine'``: cosine decay from ``learning_rate`` to 0 over ``total_steps``.
  * ``'warmup_cosine'``: linear warm-up from 0 over ``warmup_epochs`` (default 1) epochs, then
    cosine decay to 0.
  * ``'onecycle'``: ``optax.cosine_onecycle_schedule`` peaking at ``learning_rate``.
  * ``'piecewise'``: ``learning_rate`` multiplied by ``lr_decay_factor`` (default 0.1) at each
    epoch in ``lr_boundaries_epochs`` (default: 50% and 75% of training).

  >>> import ml_collections
  >>> c = ml_collections.ConfigDict({'learning_rate': 0.1, 'schedule': 'cosine'})
  >>> float(make_schedule(c, 100, 10)(100))
  0.0
  """
  lr = float(cfg_get(config, "learning_rate", 1e-3))
  name = cfg_get(config, "schedule", "constant")
  total_steps = max(int(total_steps), 1)
  if name == "constant":
    return optax.constant_schedule(lr)
  if name == "cosine":
    return optax.cosine_decay_schedule(lr, total_steps)
  if name == "warmup_cosine":
    warmup = int(float(cfg_get(config, "warmup_epochs", 1)) * steps_per_epoch)
    warmup = min(max(warmup, 1), total_steps - 1) if total_steps > 1 else 0
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total_steps, end_value=0.0)
  if name == "onecycle":
    return optax.cosine_onecycle_schedule(total_steps, lr)
  if name == "piecewise":
    epochs = cfg_get(config, "lr_boundaries_epochs", None)
    factor = float(cfg_get(config, "lr_decay_factor", 0.1))
    if epochs:
      bounds = [int(float(e) * steps_per_epoch) for e in epochs]
    else:
      bounds = [total_steps // 2, (3 * total_steps) // 4]
    scales: dict[int, float] = {}
    for b in bounds:  # boundaries that coincide (short runs) must each still decay
      if b > 0:
        scales[b] = scales.get(b, 1.0) * factor
    return optax.piecewise_constant_schedule(lr, scales)
  raise ValueError(f"unknown `schedule` (={name!r}); known: {', '.join(SCHEDULES)}")


def _kernels_only(params: Any) -> Any:
  return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(config: Any, total_steps: int = 1,
                   steps_per_epoch: int = 1) -> optax.GradientTransformation:
  """The optax transformation described by ``config`` (see the module docstring).

  >>> import ml_collections
  >>> tx = make_optimizer(ml_collections.ConfigDict({'optimizer': 'sgd', 'learning_rate': 0.1}))
  """
  validate_optimizer_config(config)
  name = cfg_get(config, "optimizer", "adam")
  schedule = make_schedule(config, total_steps, steps_per_epoch)
  wd = float(cfg_get(config, "weight_decay", 0.0))
  clip = float(cfg_get(config, "grad_clip_norm", 0.0))
  chain = []
  if clip > 0:
    chain.append(optax.clip_by_global_norm(clip))
  if name == "adamw":
    chain.append(optax.adamw(schedule, b1=cfg_get(config, "b1", 0.9), b2=cfg_get(config, "b2", 0.999),
                             eps=cfg_get(config, "eps", 1e-7), weight_decay=wd,
                             mask=_kernels_only))
  else:
    if wd > 0:
      chain.append(optax.add_decayed_weights(wd, mask=_kernels_only))
    if name == "adam":
      chain.append(optax.adam(schedule, b1=cfg_get(config, "b1", 0.9), b2=cfg_get(config, "b2", 0.999),
                              eps=cfg_get(config, "eps", 1e-7)))
    else:  # sgd
      momentum = float(cfg_get(config, "momentum", 0.9))
      chain.append(optax.sgd(schedule, momentum=momentum or None,
                             nesterov=bool(cfg_get(config, "nesterov", False))))
  return optax.chain(*chain) if len(chain) > 1 else chain[0]


def validate_optimizer_config(config: Any) -> None:
  """Raises ``ValueError`` naming the bad value; called before any data is loaded."""
  name = cfg_get(config, "optimizer", "adam")
  if name not in OPTIMIZERS:
    raise ValueError(f"unknown `optimizer` (={name!r}); known: {', '.join(OPTIMIZERS)}")
  lr = cfg_get(config, "learning_rate", 1e-3)
  if not is_number(lr) or not lr > 0:
    raise ValueError(f"`learning_rate` (={lr!r}) must be a positive number")
  for key in ("weight_decay", "grad_clip_norm", "momentum"):
    value = cfg_get(config, key, 0.0)
    if not is_number(value) or value < 0:
      raise ValueError(f"`{key}` (={value!r}) must be a number >= 0")
  schedule = cfg_get(config, "schedule", "constant")
  if schedule not in SCHEDULES:
    raise ValueError(f"unknown `schedule` (={schedule!r}); known: {', '.join(SCHEDULES)}")
