"""Optimisers and learning-rate schedules: from a config by name, or as values you build.

Every hyperparameter lives in the config (or in the transformation you pass) and is baked into
the returned ``optax.GradientTransformation``; the train step itself holds no numbers.

Two ways to choose the optimiser:

* by name: ``config.optimizer`` names a factory in :data:`OPTIMIZERS` (add your own with
  :func:`register`);
* as a value: ``train_and_evaluate(config, workdir, tx=...)`` / ``fit(..., optimizer=...)`` take
  an ``optax.GradientTransformation`` or a factory ``(params, total_steps, steps_per_epoch) ->
  GradientTransformation`` (see :func:`resolve_optimizer`). The helpers below build what
  recipes need: :func:`param_labels` for ``optax.partition``, :func:`partition` (frozen groups
  and per-group learning-rate scales), :func:`muon` (Muon on conv kernels) and
  :func:`sgd_nesterov` (Nesterov SGD with decoupled weight decay).

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

import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from optax import contrib as optax_contrib

from jaxcnn import _checks
from jaxcnn.train._config import cfg_get

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
  lr = _checks.number(cfg_get(config, "learning_rate", 1e-3), "learning_rate", 0.0,
                      low_closed=False)
  name = _checks.choice(cfg_get(config, "schedule", "constant"), "schedule", SCHEDULES)
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
  raise AssertionError(f"schedule {name!r} is in SCHEDULES but has no branch here")


def _kernels_only(params: Any) -> Any:
  return jax.tree.map(lambda p: p.ndim > 1, params)


# -- the registry of named optimisers --------------------------------------------------------

OptimizerFactory = Callable[[Any, optax.Schedule], optax.GradientTransformation]
OPTIMIZERS: dict[str, OptimizerFactory] = {}


def register(name: str) -> Callable[[OptimizerFactory], OptimizerFactory]:
  """Decorator adding ``factory(config, schedule) -> GradientTransformation`` as ``name``.

  The factory reads its own hyperparameters from ``config`` (with :func:`cfg_get` defaults);
  gradient clipping (``grad_clip_norm``) is chained in front by :func:`make_optimizer`.

  >>> @register('my_sgd')
  ... def _my_sgd(config, schedule):
  ...   return optax.sgd(schedule)
  >>> 'my_sgd' in OPTIMIZERS
  True
  >>> del OPTIMIZERS['my_sgd']
  """
  def add(factory: OptimizerFactory) -> OptimizerFactory:
    if name in OPTIMIZERS:
      raise ValueError(f"optimizer {name!r} is already registered")
    OPTIMIZERS[name] = factory
    return factory
  return add


@register("adam")
def _adam(config: Any, schedule: optax.Schedule) -> optax.GradientTransformation:
  wd = float(cfg_get(config, "weight_decay", 0.0))
  adam = optax.adam(schedule, b1=cfg_get(config, "b1", 0.9), b2=cfg_get(config, "b2", 0.999),
                    eps=cfg_get(config, "eps", 1e-7))
  return optax.chain(optax.add_decayed_weights(wd, mask=_kernels_only), adam) if wd > 0 else adam


@register("adamw")
def _adamw(config: Any, schedule: optax.Schedule) -> optax.GradientTransformation:
  return optax.adamw(schedule, b1=cfg_get(config, "b1", 0.9), b2=cfg_get(config, "b2", 0.999),
                     eps=cfg_get(config, "eps", 1e-7),
                     weight_decay=float(cfg_get(config, "weight_decay", 0.0)), mask=_kernels_only)


@register("sgd")
def _sgd(config: Any, schedule: optax.Schedule) -> optax.GradientTransformation:
  wd = float(cfg_get(config, "weight_decay", 0.0))
  momentum = float(cfg_get(config, "momentum", 0.9))
  sgd = optax.sgd(schedule, momentum=momentum or None,
                  nesterov=bool(cfg_get(config, "nesterov", False)))
  return optax.chain(optax.add_decayed_weights(wd, mask=_kernels_only), sgd) if wd > 0 else sgd


@register("sgd_nesterov")
def _sgd_nesterov(config: Any, schedule: optax.Schedule) -> optax.GradientTransformation:
  return sgd_nesterov(schedule, momentum=float(cfg_get(config, "momentum", 0.9)),
                      weight_decay=float(cfg_get(config, "weight_decay", 0.0)),
                      mask=_kernels_only)


def make_optimizer(config: Any, total_steps: int = 1,
                   steps_per_epoch: int = 1) -> optax.GradientTransformation:
  """The optax transformation named by ``config.optimizer`` (see the module docstring).

  >>> import ml_collections
  >>> tx = make_optimizer(ml_collections.ConfigDict({'optimizer': 'sgd', 'learning_rate': 0.1}))
  """
  validate_optimizer_config(config)
  schedule = make_schedule(config, total_steps, steps_per_epoch)
  tx = OPTIMIZERS[cfg_get(config, "optimizer", "adam")](config, schedule)
  clip = float(cfg_get(config, "grad_clip_norm", 0.0))
  return optax.chain(optax.clip_by_global_norm(clip), tx) if clip > 0 else tx


def validate_optimizer_config(config: Any) -> None:
  """Raises ``ValueError`` naming the bad value; called before any data is loaded."""
  _checks.choice(cfg_get(config, "optimizer", "adam"), "optimizer", OPTIMIZERS)
  _checks.number(cfg_get(config, "learning_rate", 1e-3), "learning_rate", 0.0, low_closed=False)
  for key in ("weight_decay", "grad_clip_norm", "momentum"):
    _checks.number(cfg_get(config, key, 0.0), key, 0.0)
  _checks.choice(cfg_get(config, "schedule", "constant"), "schedule", SCHEDULES)


TxOrFactory = (optax.GradientTransformation
               | Callable[[Any, int, int], optax.GradientTransformation])


def resolve_optimizer(optimizer: TxOrFactory | None, config: Any, total_steps: int,
                      steps_per_epoch: int) -> Callable[[Any], optax.GradientTransformation]:
  """``params -> tx``: what :func:`jaxcnn.train.create_train_state` takes.

  ``optimizer`` is None (use ``config``, :func:`make_optimizer`), an optax transformation (used
  as is), or a factory ``(params, total_steps, steps_per_epoch) -> tx`` (called once the
  params exist, e.g. to build :func:`param_labels` from them).

  >>> make = resolve_optimizer(optax.sgd(0.1), {}, 10, 5)
  >>> isinstance(make({'w': jnp.zeros(2)}), optax.GradientTransformation)
  True
  """
  if optimizer is None:
    tx = make_optimizer(config, total_steps, steps_per_epoch)
    return lambda params: tx
  if isinstance(optimizer, optax.GradientTransformation):
    return lambda params: optimizer
  if callable(optimizer):
    def build(params: Any) -> optax.GradientTransformation:
      tx = optimizer(params, total_steps, steps_per_epoch)
      if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(f"the optimizer factory returned {type(tx).__name__}, not an "
                        "optax.GradientTransformation")
      return tx
    return build
  raise TypeError(f"`optimizer` (={optimizer!r}) must be an optax.GradientTransformation or a "
                  "factory (params, total_steps, steps_per_epoch) -> GradientTransformation")


# -- parameter groups ------------------------------------------------------------------------

LABELS = ("kernel", "bias", "batchnorm", "head", "frozen")


def _path_name(path: Sequence[Any]) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def _matches(name: str, patterns: Sequence[str]) -> bool:
  return any(name == p or name.startswith(p.rstrip("/") + "/") or fnmatch.fnmatchcase(name, p)
             for p in patterns)


def param_labels(variables: Any, *, frozen: Sequence[str] = (),
                 head: str | Sequence[str] | None = None) -> Any:
  """A label per parameter, for ``optax.partition`` / :func:`partition`.

  Labels (:data:`LABELS`), first match wins:

  * ``'frozen'``: the path (``'layers_0/kernel'``) equals, lies under, or ``fnmatch``-es a
    pattern in ``frozen``;
  * ``'head'``: lies under ``head`` (a module name such as ``'layers_7'``, or several);
  * ``'batchnorm'``: belongs to a module that owns ``batch_stats`` (when given the whole
    ``variables`` dict), or to a module whose name contains ``BatchNorm``;
  * ``'kernel'``: ``ndim >= 2`` (conv ``[*k, C_in, C_out]`` and dense ``[C_in, C_out]``);
  * ``'bias'``: everything else (1-D).

  Args:
    variables: ``model.init(...)``'s dict (``{'params': ..., 'batch_stats': ...}``) or the
      params alone.

  Returns:
    a tree with the structure of the params, of strings.

  >>> params = {'Conv_0': {'kernel': jnp.zeros((3, 3, 1, 4)), 'bias': jnp.zeros(4)},
  ...           'Dense_0': {'kernel': jnp.zeros((4, 2)), 'bias': jnp.zeros(2)}}
  >>> param_labels(params, frozen=['Conv_0/bias'], head='Dense_0')['Conv_0']
  {'bias': 'frozen', 'kernel': 'kernel'}
  """
  if isinstance(variables, Mapping) and "params" in variables:
    params = variables["params"]
    stats = variables.get("batch_stats", {})
    bn_modules = {_path_name(p[:-1]) for p, _ in jax.tree_util.tree_leaves_with_path(stats)}
  else:
    params, bn_modules = variables, set()
  heads = [head] if isinstance(head, str) else list(head or ())
  frozen = [frozen] if isinstance(frozen, str) else list(frozen)

  def label(path, leaf):
    name = _path_name(path)
    module = _path_name(path[:-1])
    if _matches(name, frozen):
      return "frozen"
    if _matches(name, heads):
      return "head"
    if module in bn_modules or "batchnorm" in module.rsplit("/", 1)[-1].lower():
      return "batchnorm"
    return "kernel" if jnp.ndim(leaf) >= 2 else "bias"

  return jax.tree_util.tree_map_with_path(label, params)


def partition(transforms: Mapping[str, optax.GradientTransformation], labels: Any, *,
              lr_scale: Mapping[str, float] | None = None) -> optax.GradientTransformation:
  """``optax.partition`` over :func:`param_labels`, with frozen groups and learning-rate scales.

  Args:
    transforms: a transformation per label; ``'frozen'`` defaults to ``optax.set_to_zero()``
      (the parameter never moves: its update is exactly 0, and no optimiser state is kept).
      Every label present must have a transformation.
    labels: the tree from :func:`param_labels` (or a function of the params returning it).
    lr_scale: ``{label: factor}`` multiplying that group's updates (the group's learning rate
      times ``factor``, for any optimiser that ends in its learning rate).

  >>> params = {'w': jnp.ones((2, 2)), 'b': jnp.ones(2)}
  >>> tx = partition({'kernel': optax.sgd(1.0)}, {'w': 'kernel', 'b': 'frozen'})
  >>> upd, _ = tx.update(params, tx.init(params), params)
  >>> upd['b'].tolist(), upd['w'].tolist()
  ([0.0, 0.0], [[-1.0, -1.0], [-1.0, -1.0]])
  """
  transforms = dict(transforms)
  transforms.setdefault("frozen", optax.set_to_zero())
  for label, factor in (lr_scale or {}).items():
    if label not in transforms:
      raise ValueError(f"`lr_scale` names the group {label!r}, which has no transformation; "
                       f"groups: {', '.join(sorted(transforms))}")
    transforms[label] = optax.chain(transforms[label], optax.scale(float(factor)))
  if not callable(labels):
    present = set(jax.tree.leaves(labels))
    missing = sorted(present - set(transforms))
    if missing:
      raise ValueError(f"no transformation for the parameter group(s) {missing}; give one in "
                       f"`transforms` (known: {', '.join(sorted(transforms))})")
  return optax.partition(transforms, labels)


def sgd_nesterov(learning_rate: optax.ScalarOrSchedule, momentum: float = 0.9,
                 weight_decay: float = 0.0, mask: Any = None) -> optax.GradientTransformation:
  """Nesterov SGD with *decoupled* weight decay: ``p -= lr * (nesterov(g) + wd * p)``.

  The decay term bypasses the momentum buffer (as AdamW's does Adam's moments), so
  ``weight_decay`` means the same whatever ``momentum`` is. ``mask``: as
  ``optax.add_decayed_weights`` (e.g. kernels only).

  >>> tx = sgd_nesterov(0.1, momentum=0.9, weight_decay=5e-4)
  """
  return optax.chain(optax.trace(decay=momentum, nesterov=True),
                     optax.add_decayed_weights(weight_decay, mask=mask),
                     optax.scale_by_learning_rate(learning_rate))


def conv_dimension_numbers(kernel: Any) -> optax_contrib.MuonDimensionNumbers:
  """Muon's view of a conv kernel ``[*k, C_in, C_out]`` as one ``[prod(k) * C_in, C_out]`` matrix.

  A conv is a matrix product over patches: ``y[p, o] = sum_{dk, i} patch[p, dk, i] W[dk, i, o]``.
  So every axis but the last is a *reduction* axis and the last is the *output* axis:
  ``MuonDimensionNumbers(reduction_axis=(0, ..., ndim - 2), output_axis=ndim - 1)``. optax then
  transposes nothing, flattens the reduction axes into the matrix rows, and orthogonalises that
  one matrix (no batch axes). A dense kernel ``[C_in, C_out]`` is the ``ndim = 2`` case.
  """
  ndim = jnp.ndim(kernel)
  if ndim < 2:
    raise ValueError(f"Muon needs a kernel of rank >= 2, got shape {jnp.shape(kernel)}")
  return optax_contrib.MuonDimensionNumbers(reduction_axis=tuple(range(ndim - 1)),
                                            output_axis=ndim - 1)


def muon(learning_rate: optax.ScalarOrSchedule, *, beta: float = 0.95, nesterov: bool = True,
         ns_steps: int = 5, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Muon for conv (and dense) kernels: momentum, then Newton-Schulz orthogonalisation.

  Each kernel's momentum is reshaped to ``[prod(k) * C_in, C_out]`` (see
  :func:`conv_dimension_numbers`), orthogonalised with optax's 5-step quintic Newton-Schulz
  iteration (singular values pushed into roughly [0.7, 1.2]), reshaped back, then scaled by
  ``-learning_rate``; ``weight_decay`` is decoupled. Use it on kernels only (every leaf it
  sees must have rank >= 2), through :func:`partition`.

  >>> tx = muon(0.05)
  >>> upd, _ = tx.update({'k': jnp.ones((3, 3, 2, 4))}, tx.init({'k': jnp.ones((3, 3, 2, 4))}))
  >>> upd['k'].shape
  (3, 3, 2, 4)
  """
  dims = lambda tree: jax.tree.map(conv_dimension_numbers, tree)
  decay = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
  return optax.chain(
      optax_contrib.scale_by_muon(beta=beta, nesterov=nesterov, ns_steps=ns_steps,
                                  weight_dimension_numbers=dims),
      *decay, optax.scale_by_learning_rate(learning_rate))


def newton_schulz(g: jax.Array, steps: int = 5,
                  coeffs: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
                  eps: float = 1e-8) -> jax.Array:
  """A direct Newton-Schulz orthogonalisation of a conv kernel ``[*k, C_in, C_out]``.

  The reference for :func:`muon`: ``X = G / |G|_F`` as a ``[prod(k) * C_in, C_out]`` matrix
  (transposed when it has more rows than columns), then ``steps`` times
  ``X <- a X + (b A + c A^2) X`` with ``A = X X^T``.
  """
  shape = g.shape
  x = g.reshape(math.prod(shape[:-1]), shape[-1])
  transposed = x.shape[0] > x.shape[1]
  if transposed:
    x = x.T
  x = x / (jnp.linalg.norm(x) + eps)
  a, b, c = coeffs
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  if transposed:
    x = x.T
  return x.reshape(shape)
