"""The train state: everything a step reads and writes, as one pytree.

``TrainState`` extends Flax's ``train_state.TrainState`` (``step, apply_fn, params, tx,
opt_state``) with the model's ``batch_stats`` (BatchNorm running statistics; ``{}`` when the
model has none), the base PRNG key ``rng`` (never split in place: each step folds its step number
into it, so the key of step ``n`` is a pure function of ``(seed, n)`` and a resumed run draws the
same dropout masks), and ``ema_params`` (an exponential moving average of ``params`` used for
evaluation, or ``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """``params, batch_stats, opt_state, step, rng, ema_params`` (+ static ``apply_fn``, ``tx``).

  ``step: int32 []`` counts completed optimizer steps; ``rng: uint32 [2]`` is the base key.
  """
  batch_stats: Any = flax.struct.field(pytree_node=True, default_factory=dict)
  rng: jax.Array | None = None
  ema_params: Any = None

  @property
  def variables(self) -> dict[str, Any]:
    """``{'params': ..., 'batch_stats': ...}`` for ``model.apply`` (training params)."""
    return _variables(self.params, self.batch_stats)

  @property
  def eval_variables(self) -> dict[str, Any]:
    """Variables used for evaluation: the EMA params when kept, else the training params."""
    return _variables(self.ema_params if self.ema_params is not None else self.params,
                      self.batch_stats)


def _variables(params: Any, batch_stats: Any) -> dict[str, Any]:
  variables = {"params": params}
  if batch_stats:
    variables["batch_stats"] = batch_stats
  return variables


def create_train_state(model: flax.linen.Module, key: jax.Array,
                       input_shape: Sequence[int], tx: optax.GradientTransformation, *,
                       ema: bool = False) -> TrainState:
  """Initialises ``model`` on zeros of ``input_shape`` and wraps it with ``tx``.

  Args:
    model: a module with ``__call__(x, train)``.
    key: PRNG key; split into the init key and the base training key ``rng``.
    input_shape: ``[B, H, W, C]`` used only for initialisation (``B`` may be 1).
    tx: the optax transformation (see :func:`jaxcnn.train.make_optimizer`).
    ema: keep an EMA copy of the params for evaluation.

  Every leaf is a concrete array of a fixed dtype (``step`` is an ``int32`` array, not a Python
  int) so that the state a step returns has exactly the types of the state it was given: no
  recompilation on the second step.

  >>> import optax, jax
  >>> from jaxcnn import layers
  >>> st = create_train_state(layers.Dense(3), jax.random.PRNGKey(0), (1, 4), optax.adam(1e-3))
  >>> int(st.step), st.params['kernel'].shape
  (0, (4, 3))
  """
  init_key, rng = jax.random.split(key)
  dummy = jnp.zeros(tuple(input_shape), jnp.float32)
  variables = jax.jit(lambda k, x: model.init({"params": k, "dropout": k}, x, train=False))(
      init_key, dummy)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  state = TrainState(
      step=jnp.zeros((), jnp.int32),
      apply_fn=model.apply,
      params=params,
      tx=tx,
      opt_state=tx.init(params),
      batch_stats=batch_stats,
      rng=rng,
      ema_params=jax.tree.map(jnp.copy, params) if ema else None,
  )
  # Strong types everywhere (optax counters can be weakly typed scalars).
  return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), state)
