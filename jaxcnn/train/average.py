"""Weight averaging as a value: an :class:`Averager` is an optax-style ``(init, update)`` pair.

The train step calls ``averager.update`` after the optimiser update; evaluation and prediction
use ``averager.eval_variables``. Averagers see the model's *variables* (``{'params': ...,
'batch_stats': ...}``): the floating-point collections are averaged with the params, so the
averaged params are evaluated with batch statistics that belong to them (not with the live
network's).

* :func:`ema`: an exponential moving average, optionally with warm-up and every ``k`` steps;
* :func:`lookahead`: every ``k`` steps the slow copy moves ``alpha`` of the way to the live
  (fast) weights and the fast weights restart from it (Zhang et al. 2019).

Both are pure functions of ``(variables, state, step)``: the state lives in the
:class:`~jaxcnn.train.TrainState` (``avg_state``), is checkpointed with it, and a resumed run
continues the same averages.

>>> avg = ema(0.9)
>>> s = avg.init({'params': {'w': jnp.zeros(2)}})
>>> _, s = avg.update({'params': {'w': jnp.ones(2)}}, s, jnp.int32(0))
>>> [round(float(v), 6) for v in s['params']['w']]  # 0.9 * 0 + 0.1 * 1
[0.1, 0.1]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxcnn import _checks


class Averager(NamedTuple):
  """``init(variables) -> state``; ``update(variables, state, step) -> (variables, state)``;
  ``eval_variables(variables, state) -> variables``.

  ``step`` is the index of the step just taken (0 for the first). ``update`` returns the live
  variables too, since some averagers (lookahead) reset them.
  """
  init: Callable[[Any], Any]
  update: Callable[[Any, Any, jax.Array], tuple[Any, Any]]
  eval_variables: Callable[[Any, Any], Any]


def _is_float(x: Any) -> bool:
  return jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)


def _blend(old: Any, new: Any, keep: jax.Array) -> Any:
  """``keep * old + (1 - keep) * new`` on float leaves; non-float leaves follow ``new``."""
  return jax.tree.map(
      lambda o, n: (keep * o + (1.0 - keep) * n).astype(o.dtype) if _is_float(o) else n,
      old, new)


def ema(decay: float, *, warmup: bool = False, every: int = 1) -> Averager:
  """Exponential moving average of the variables, for evaluation.

  After step ``t`` (0-based), if ``(t + 1) % every == 0``, with ``n = (t + 1) // every`` the
  number of averaging updates so far: ``avg <- d * avg + (1 - d) * live`` where ``d = decay``,
  or ``d = min(decay, (1 + n) / (10 + n))`` with ``warmup`` (early averages then do not drag
  the random initialisation along). The live weights are not touched.

  >>> avg = ema(0.999, warmup=True, every=5)
  """
  decay = _checks.rate(decay, "decay")
  every = _checks.positive_int(every, "every")

  def init(variables):
    return jax.tree.map(jnp.copy, variables)

  def update(variables, state, step):
    count = step + 1
    n = (count // every).astype(jnp.float32)
    d = jnp.asarray(decay, jnp.float32)
    if warmup:
      d = jnp.minimum(d, (1.0 + n) / (10.0 + n))
    keep = jnp.where(count % every == 0, d, 1.0)
    return variables, _blend(state, variables, keep)

  return Averager(init, update, lambda variables, state: state)


def lookahead(every: int = 5, alpha: float = 0.5) -> Averager:
  """Lookahead: after every ``every``-th step, ``slow <- slow + alpha * (fast - slow)`` and the
  live (fast) variables are reset to ``slow``. Evaluation uses ``slow``.

  For the optax form (the optimiser owns both copies), ``optax.lookahead`` also works as the
  ``tx`` of a run: :func:`jaxcnn.train.create_train_state` then keeps ``LookaheadParams``.

  >>> avg = lookahead(every=5, alpha=0.5)
  """
  every = _checks.positive_int(every, "every")
  alpha = _checks.static_float(alpha, "alpha", 0.0, 1.0, low_closed=False, high_closed=True)

  def init(variables):
    return jax.tree.map(jnp.copy, variables)

  def update(variables, slow, step):
    sync = (step + 1) % every == 0
    synced = _blend(slow, variables, jnp.asarray(1.0 - alpha, jnp.float32))
    slow = jax.tree.map(lambda s, n: jnp.where(sync, n, s), slow, synced)
    live = jax.tree.map(lambda v, s: jnp.where(sync, s, v), variables, slow)
    return live, slow

  return Averager(init, update, lambda variables, state: state)
