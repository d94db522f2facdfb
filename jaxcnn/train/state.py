"""The train state: everything a step reads and writes, as one pytree.

``TrainState`` extends Flax's ``train_state.TrainState`` (``step, apply_fn, params, tx,
opt_state``) with

* ``collections``: every non-``params`` variable collection of the model (``batch_stats``, or
  any other); those named in the static ``mutable`` are updated by the train step, the others
  are passed read-only;
* ``rng``: the base PRNG key (never split in place: each step folds its step number into it, so
  the key of step ``n`` is a pure function of ``(seed, n)`` and a resumed run draws the same
  dropout masks);
* ``averager`` (static) and ``avg_state``: an optional :class:`~jaxcnn.train.average.Averager`
  (EMA, lookahead) and its state; evaluation uses the averaged variables.

``params`` is what the optimiser updates: the model's params, or ``optax.LookaheadParams``
(``fast``, ``slow``) when ``tx`` is ``optax.lookahead`` (the model then trains on ``fast`` and
is evaluated on ``slow``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from jaxcnn.train.average import Averager, ema as ema_averager

InitFn = Callable[[flax.linen.Module, jax.Array, Any], Any]


class TrainState(train_state.TrainState):
  """``params, collections, opt_state, step, rng, avg_state`` (+ static ``apply_fn, tx,
  averager, mutable``).

  ``step: int32 []`` counts completed optimizer steps; ``rng: uint32 [2]`` is the base key.
  """
  collections: Any = flax.struct.field(pytree_node=True, default_factory=dict)
  rng: jax.Array | None = None
  avg_state: Any = None
  averager: Averager | None = flax.struct.field(pytree_node=False, default=None)
  mutable: tuple[str, ...] = flax.struct.field(pytree_node=False, default=())

  @property
  def model_params(self) -> Any:
    """The params the model trains with (``fast`` under ``optax.lookahead``)."""
    return self.params.fast if isinstance(self.params, optax.LookaheadParams) else self.params

  @property
  def batch_stats(self) -> Any:
    """The ``'batch_stats'`` collection (``{}`` when the model has none)."""
    return self.collections.get("batch_stats", {})

  @property
  def variables(self) -> dict[str, Any]:
    """``{'params': ..., **collections}`` for ``model.apply`` (training params)."""
    return {"params": self.model_params, **self.collections}

  @property
  def eval_variables(self) -> dict[str, Any]:
    """The variables evaluation uses (``{'params': ..., **collections}``): the averager's
    when there is one, else the slow params under ``optax.lookahead``, else the training
    ones."""
    params = (self.params.slow if isinstance(self.params, optax.LookaheadParams)
              else self.params)
    variables = {"params": params, **self.collections}
    if self.averager is not None:
      return self.averager.eval_variables(variables, self.avg_state)
    return variables

  @property
  def ema_params(self) -> Any:
    """The averaged params (None without an averager)."""
    return None if self.avg_state is None else self.avg_state["params"]

  def with_variables(self, variables: dict[str, Any]) -> "TrainState":
    """This state with the model's variables replaced (``fast`` under lookahead)."""
    variables = dict(variables)
    params = variables.pop("params")
    if isinstance(self.params, optax.LookaheadParams):
      params = self.params._replace(fast=params)
    return self.replace(params=params, collections=variables)


def is_nnx_module(model: Any) -> bool:
  """Whether ``model`` is a Flax NNX module (checked without importing ``flax.nnx``)."""
  nnx = sys.modules.get("flax.nnx")
  return nnx is not None and isinstance(model, nnx.Module)


def as_linen(model: Any) -> Any:
  """``model``, or for an NNX module its Linen-signature view (:func:`jaxcnn.nnx.linen_view`:
  ``init`` returns the module's variables, ``apply`` runs it purely)."""
  if is_nnx_module(model):
    from jaxcnn import nnx as jnnx  # pylint: disable=g-import-not-at-top
    return jnnx.linen_view(model)
  return model


def default_init(model: flax.linen.Module, key: jax.Array, sample_batch: Any) -> Any:
  """``model.init`` on the images of ``sample_batch`` in eval mode (the default ``init_fn``)."""
  images = sample_batch["image"] if isinstance(sample_batch, dict) else sample_batch
  return jax.jit(lambda k, x: model.init({"params": k, "dropout": k}, x, train=False))(
      key, jnp.asarray(images))


def create_train_state(model: flax.linen.Module, key: jax.Array,
                       input_shape: Sequence[int] | None,
                       tx: optax.GradientTransformation | Callable[[Any],
                                                                   optax.GradientTransformation],
                       *, averager: Averager | None = None, ema: float = 0.0,
                       init_fn: InitFn | None = None, sample_batch: Any = None,
                       mutable: Sequence[str] | None = None) -> TrainState:
  """Initialises ``model`` and wraps it with ``tx``.

  Args:
    model: a Linen module with ``__call__(x, train)``, or an NNX module (trained through
      :func:`jaxcnn.nnx.linen_view`: its variables are the initial ones, ``key`` seeds only the
      training key; ``params`` and ``collections`` are its variables in the Linen layout).
    key: PRNG key; split into the init key and the base training key ``rng``.
    input_shape: ``[B, H, W, C]`` of zeros used for the default initialisation (``B`` may be 1);
      may be None when ``sample_batch`` is given.
    tx: the optax transformation, or ``params -> tx`` (see
      :func:`jaxcnn.train.optim.resolve_optimizer`). ``optax.lookahead`` is recognised (by its
      ``LookaheadState``) and the params are then kept as ``LookaheadParams``.
    averager: an :class:`~jaxcnn.train.average.Averager` (:func:`~jaxcnn.train.average.ema`,
      :func:`~jaxcnn.train.average.lookahead`); ``ema=d > 0`` is shorthand for ``ema(d)``.
    init_fn: ``init_fn(model, key, sample_batch) -> variables``, replacing ``model.init``: e.g.
      call :func:`default_init` then set a conv's kernel from the batch's statistics.
    sample_batch: ``{'image', 'label'}`` (or images) given to ``init_fn``; default zeros of
      ``input_shape``.
    mutable: the collections the train step updates (default: ``('batch_stats',)`` when the
      model has one); the others are carried read-only.

  Every leaf is a concrete array of a fixed dtype (``step`` is an ``int32`` array, not a Python
  int) so that the state a step returns has exactly the types of the state it was given: no
  recompilation on the second step.

  >>> import optax, jax
  >>> from jaxcnn import layers
  >>> st = create_train_state(layers.Dense(3), jax.random.PRNGKey(0), (1, 4), optax.adam(1e-3))
  >>> int(st.step), st.params['kernel'].shape
  (0, (4, 3))
  """
  model = as_linen(model)
  init_key, rng = jax.random.split(key)
  if sample_batch is None:
    if input_shape is None:
      raise ValueError("`input_shape` (=None) needs a `sample_batch` instead")
    sample_batch = {"image": jnp.zeros(tuple(input_shape), jnp.float32)}
  variables = dict((init_fn or default_init)(model, init_key, sample_batch))
  params = variables.pop("params")
  collections = variables
  if mutable is None:
    mutable = tuple(c for c in ("batch_stats",) if c in collections)
  unknown = sorted(set(mutable) - set(collections))
  if unknown:
    raise ValueError(f"`mutable` names collection(s) {unknown} the model does not have; it has: "
                     f"{sorted(collections) or 'none'}")
  if averager is None and ema:
    averager = ema_averager(float(ema))
  if not isinstance(tx, optax.GradientTransformation):
    tx = tx(params)
  opt_params = params
  opt_state = tx.init(params)
  if isinstance(opt_state, optax.LookaheadState):
    # optax.lookahead updates LookaheadParams (fast and slow copies), not the model's params.
    # Two buffers, not one array twice: the step donates the state, and XLA refuses to donate
    # the same buffer twice.
    opt_params = optax.LookaheadParams(fast=params, slow=jax.tree.map(jnp.copy, params))
    opt_state = tx.init(opt_params)
  state = TrainState(
      step=jnp.zeros((), jnp.int32),
      apply_fn=model.apply,
      params=opt_params,
      tx=tx,
      opt_state=opt_state,
      collections=collections,
      rng=rng,
      averager=averager,
      avg_state=(None if averager is None
                 else averager.init({"params": params, **collections})),
      mutable=tuple(mutable),
  )
  # Strong types everywhere (optax counters can be weakly typed scalars).
  return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), state)
