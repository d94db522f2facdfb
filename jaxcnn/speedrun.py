"""The airbench94 speed recipe on the engine: optimiser, loss, TTA, and a timed multi-seed runner.

Keller Jordan's ``airbench94_muon.py`` (github.com/KellerJordan/cifar10-airbench, commit
096d14d) trains CIFAR-10 to 94.01% (mean of 200 runs) in 2.59 s on an A100. This module holds
the pieces of that recipe that the engine does not already have, each a value the engine takes:

* :func:`airbench_muon`: airbench's Muon (Nesterov momentum, the weight renormalised to
  ``sqrt(C_out)`` before each step, 3 bf16 Newton-Schulz steps) as an optax transformation;
* :func:`sgd_coupled`: PyTorch's ``SGD(nesterov=True, weight_decay=wd)`` (decay added to the
  gradient, so it goes through the momentum);
* :func:`make_tx`: the four parameter groups of the recipe (:func:`jaxcnn.train.param_labels`
  + :func:`jaxcnn.train.partition`), each with its own learning rate and linear decay;
* :func:`summed_cross_entropy`: the loss summed over the batch (airbench's ``reduction='sum'``)
  as a ``loss_fn`` for :func:`jaxcnn.train.train_step`;
* :func:`tta_logits`: airbench's test-time augmentation (``tta_level`` 0, 1, 2: 1, 2, 6 views,
  weighted as airbench weights them) as a ``logits_fn``;
* :class:`Speedrun`: builds the model, loaders and compiled steps once, then :meth:`Speedrun.run`
  trains one seed and times it as airbench does (compilation excluded and reported on its own;
  the data already on the device; whitening init + training + the final TTA evaluation timed).

The whole recipe is data in ``jaxcnn/configs/speedrun.py`` (``experiments/configs/speedrun.py`` for the CLI); the script is
``experiments/speedrun.py``.

>>> from experiments.configs import speedrun as speedrun_config
>>> cfg = speedrun_config.get_config('tiny')
>>> runner = Speedrun(cfg, train_arrays, eval_arrays)  # doctest: +SKIP
>>> runner.run(seed=0).accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn import data as data_lib
from jaxcnn import functional as F
from jaxcnn.models import init_whitening
from jaxcnn.train import loop as loop_lib
from jaxcnn.train import optim
from jaxcnn.train import parallel as parallel_lib
from jaxcnn.train.state import TrainState, create_train_state

NS_COEFFS = (3.4445, -4.7750, 2.0315)  # airbench94_muon.py, zeropower_via_newtonschulz5

# -- the optimiser ---------------------------------------------------------------------------


def newton_schulz_airbench(g: jax.Array, steps: int = 3, eps: float = 1e-7,
                           dtype: Any = jnp.bfloat16) -> jax.Array:
  """airbench's ``zeropower_via_newtonschulz5`` on a conv kernel ``[*k, C_in, C_out]``.

  The kernel is the ``[C_out, prod(k) * C_in]`` matrix PyTorch's ``g.reshape(len(g), -1)``
  gives (up to a column permutation, which the iteration commutes with), cast to ``dtype``,
  divided by its Frobenius norm ``+ eps``, transposed when it has more rows than columns, then
  ``steps`` times ``X <- a X + (b A + c A^2) X`` with ``A = X X^T`` and ``(a, b, c) =
  (3.4445, -4.7750, 2.0315)``. Returned in the kernel's shape and ``dtype``.

  >>> newton_schulz_airbench(jnp.ones((3, 3, 2, 4))).shape
  (3, 3, 2, 4)
  """
  shape = g.shape
  x = jnp.moveaxis(g, -1, 0).reshape(shape[-1], -1).astype(dtype)
  x = x / (jnp.linalg.norm(x.astype(jnp.float32)).astype(dtype) + jnp.asarray(eps, dtype))
  transposed = x.shape[0] > x.shape[1]
  if transposed:
    x = x.T
  a, b, c = NS_COEFFS
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  if transposed:
    x = x.T
  return jnp.moveaxis(x.reshape((shape[-1],) + shape[:-1]), 0, -1)


class MuonState(NamedTuple):
  count: jax.Array
  momentum: Any


def airbench_muon(learning_rate: optax.ScalarOrSchedule, momentum: float = 0.6,
                  nesterov: bool = True, ns_steps: int = 3,
                  ns_dtype: Any = jnp.bfloat16) -> optax.GradientTransformation:
  """airbench94_muon's ``Muon`` for conv kernels ``[*k, C_in, C_out]``, one update per step:

  ``buf = momentum * buf + g``; ``g' = g + momentum * buf`` (Nesterov; else ``buf``);
  ``p_hat = p * sqrt(C_out) / |p|_F`` (the weight renormalised *before* the step, as airbench's
  ``p.data.mul_(len(p.data)**0.5 / p.data.norm())``); ``p_new = p_hat - lr * NS(g')`` with
  :func:`newton_schulz_airbench`. The returned update is ``p_new - p``, so it needs ``params``.

  >>> tx = airbench_muon(0.24)
  >>> p = {'k': jnp.ones((3, 3, 2, 4))}
  >>> u, _ = tx.update(p, tx.init(p), p)
  >>> u['k'].shape
  (3, 3, 2, 4)
  """
  schedule = learning_rate if callable(learning_rate) else (lambda _: learning_rate)

  def init(params):
    return MuonState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.zeros_like, params))

  def update(grads, state, params=None):
    if params is None:
      raise ValueError("airbench_muon renormalises the weights: call tx.update(grads, state, "
                       "params) with the params")
    lr = schedule(state.count)
    buf = jax.tree.map(lambda b, g: momentum * b + g, state.momentum, grads)
    eff = jax.tree.map(lambda b, g: g + momentum * b, buf, grads) if nesterov else buf

    def one(p, g):
      if p.ndim < 2:
        raise ValueError(f"airbench_muon needs kernels of rank >= 2, got shape {p.shape}")
      p32 = p.astype(jnp.float32)
      p_hat = p32 * (math.sqrt(p.shape[-1]) / jnp.linalg.norm(p32))
      step = newton_schulz_airbench(g, ns_steps, dtype=ns_dtype).astype(jnp.float32)
      return (p_hat - lr * step - p32).astype(p.dtype)

    updates = jax.tree.map(one, params, eff)
    return updates, MuonState(optax.safe_increment(state.count), buf)

  return optax.GradientTransformation(init, update)


def sgd_coupled(learning_rate: optax.ScalarOrSchedule, momentum: float,
                weight_decay: float = 0.0, nesterov: bool = True) -> optax.GradientTransformation:
  """PyTorch's ``SGD(lr, momentum, nesterov, weight_decay)``: the decay is *coupled* (added to
  the gradient, ``g + wd * p``, so it goes through the momentum), then ``buf = m * buf + g``,
  ``g' = g + m * buf`` (Nesterov), ``p -= lr * g'``.

  >>> tx = sgd_coupled(0.1, 0.85, 1e-3)
  """
  decay = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
  return optax.chain(*decay, optax.trace(decay=momentum, nesterov=nesterov),
                     optax.scale_by_learning_rate(learning_rate))


def linear_decay(learning_rate: float, steps: int) -> optax.Schedule:
  """airbench's ``lr * (1 - step / steps)``, exactly 0 from ``step = steps`` on (written so,
  rather than ``optax.linear_schedule``, whose fused form leaves ~1e-9 there under jit).

  >>> [float(linear_decay(1.0, 4)(t)) for t in (0, 1, 4, 5)]
  [1.0, 0.75, 0.0, 0.0]
  """
  steps = max(int(steps), 1)
  return lambda count: learning_rate * jnp.clip(1.0 - count / steps, 0.0, 1.0)


def recipe_labels(params: Any) -> Any:
  """The recipe's groups of SpeedNet's params: ``'frozen'`` (``whiten/kernel``), ``'bias'``
  (``whiten/bias``), ``'batchnorm'`` (the BatchNorm biases), ``'head'`` and ``'kernel'`` (the
  conv kernels, for Muon)."""
  return optim.param_labels(params, frozen=["whiten/kernel"], head="head")


def make_tx(recipe: Mapping[str, Any], batch_size: int, total_steps: int,
            steps_per_epoch: int) -> optax.GradientTransformation:
  """The recipe's optimiser (airbench94_muon.py ``main``), over :func:`recipe_labels`:

  * conv kernels: :func:`airbench_muon` at ``muon_lr``, momentum ``muon_momentum``;
  * BatchNorm biases at ``bias_lr`` and the head at ``head_lr``: :func:`sgd_coupled` with
    momentum ``sgd_momentum`` and weight decay ``wd / lr`` (``wd = wd_per_image *
    batch_size``; airbench divides by the group's lr so that the decay per step, ``lr_t *
    wd / lr``, does not depend on the group's lr);
  * the whitening bias: as the BatchNorm biases, but its learning rate decays to 0 over
    ``ceil(whiten_bias_epochs * steps_per_epoch)`` steps, after which it no longer moves
    (airbench stops its gradient there);
  * every other learning rate decays linearly to 0 over ``total_steps``:
    ``lr_t = lr * (1 - t / total_steps)``.
  """
  r = recipe
  wd = float(r["wd_per_image"]) * batch_size
  decay = lambda lr, steps: linear_decay(float(lr), steps)
  whiten_steps = math.ceil(float(r["whiten_bias_epochs"]) * steps_per_epoch)
  sgd = lambda lr, steps: sgd_coupled(decay(lr, steps), float(r["sgd_momentum"]),
                                      wd / float(lr))
  transforms = {
      "kernel": airbench_muon(decay(r["muon_lr"], total_steps), float(r["muon_momentum"]),
                              nesterov=True, ns_steps=int(r["ns_steps"])),
      "batchnorm": sgd(r["bias_lr"], total_steps),
      "head": sgd(r["head_lr"], total_steps),
      "bias": sgd(r["bias_lr"], whiten_steps),
  }
  return optim.partition(transforms, recipe_labels)


# -- loss and test-time augmentation -------------------------------------------------------


def summed_cross_entropy(label_smoothing: float) -> Callable[[jax.Array, Any], jax.Array]:
  """A ``loss_fn`` for :func:`jaxcnn.train.train_step` whose batch mean is the batch *sum* of
  the (smoothed) cross-entropy: airbench's ``reduction='sum'`` (its learning rates and weight
  decay are tuned for gradients that grow with the batch size).

  >>> fn = summed_cross_entropy(0.0)
  >>> fn(jnp.zeros((4, 2)), {'label': jnp.zeros(4, jnp.int32)}).mean().round(4)
  Array(2.7726, dtype=float32)
  """
  def loss_fn(logits: jax.Array, batch: Mapping[str, jax.Array]) -> jax.Array:
    losses = F.cross_entropy(logits, batch["label"], label_smoothing=label_smoothing)
    return losses * losses.shape[0]
  return loss_fn


def _translate_reflect(images: jax.Array, dy: int, dx: int) -> jax.Array:
  """airbench's TTA translation: reflect-pad by 1, crop at ``(1 - dy, 1 - dx)``."""
  _, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  return padded[:, 1 - dy:1 - dy + h, 1 - dx:1 - dx + w, :]


def tta_views(images: jax.Array, level: int = 2) -> tuple[list[jax.Array], list[float]]:
  """The views of airbench's ``infer(model, loader, tta_level)`` and their weights.

  level 0: ``[x]``; level 1: ``[x, flip x]`` weighted 1/2 each; level 2: those two at 1/4
  each, plus the two translations ``t`` (reflect-pad 1, crop ``[0:32, 0:32]`` and ``[2:34,
  2:34]``: shifts of ``(+1, +1)`` and ``(-1, -1)``) and their mirrors at 1/8 each (airbench:
  ``0.5 * L1(x) + 0.5 * mean(L1(t1), L1(t2))`` with ``L1(v) = (f(v) + f(flip v)) / 2``).
  """
  if level not in (0, 1, 2):
    raise ValueError(f"`tta_level` (={level!r}) must be 0, 1 or 2")
  flip = lambda v: v[:, :, ::-1, :]
  if level == 0:
    return [images], [1.0]
  if level == 1:
    return [images, flip(images)], [0.5, 0.5]
  t1, t2 = _translate_reflect(images, 1, 1), _translate_reflect(images, -1, -1)
  return ([images, flip(images), t1, flip(t1), t2, flip(t2)],
          [0.25, 0.25, 0.125, 0.125, 0.125, 0.125])


def tta_logits(apply: Callable[[jax.Array], jax.Array], images: jax.Array,
               level: int = 2) -> jax.Array:
  """The weighted mean of the logits over :func:`tta_views` (all views in one batch): a
  ``logits_fn`` for :func:`jaxcnn.train.eval_step`.

  >>> tta_logits(lambda x: x.mean(axis=(1, 2)), jnp.ones((2, 4, 4, 3))).shape
  (2, 3)
  """
  views, weights = tta_views(images, level)
  b = images.shape[0]
  logits = apply(jnp.concatenate(views, axis=0)).astype(jnp.float32)
  logits = logits.reshape((len(views), b) + logits.shape[1:])
  w = jnp.asarray(weights, jnp.float32).reshape((len(views),) + (1,) * (logits.ndim - 1))
  return jnp.sum(logits * w, axis=0)


# -- the timed runner ----------------------------------------------------------------------


@dataclasses.dataclass
class RunResult:
  """One seed's run: ``accuracy`` (TTA, on the eval split), ``seconds`` (whitening + training +
  TTA evaluation, as airbench times), its parts, and ``compile_seconds`` (excluded)."""
  seed: int
  accuracy: float
  seconds: float
  whiten_seconds: float
  train_seconds: float
  eval_seconds: float
  compile_seconds: float
  steps: int
  train_loss: float | None = None
  state: Any = dataclasses.field(default=None, repr=False)  # the trained TrainState


def augment_spec(recipe_data: Mapping[str, Any]) -> tuple[Any, ...]:
  """airbench's training augmentation: alternating flip, then a translation by up to
  ``translate`` pixels (reflect-pad, random crop)."""
  spec: list[Any] = []
  if recipe_data.get("flip", True):
    spec.append(("alternating_flip", {}))
  t = int(recipe_data.get("translate", 2))
  if t:
    spec.append(("crop", {"padding": t, "mode": "reflect"}))
  return tuple(spec)


def _copy(tree: Any) -> Any:
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


class Speedrun:
  """The recipe of a config, ready to run seeds back to back on arrays already loaded.

  Built once: the model, the optimiser, the eval loader (on the device), the compiled train
  and TTA-eval steps (``jaxcnn.train.make_engine``) and the jitted whitening; their
  compilation is done here or by the first :meth:`run` and reported, not timed.

  Args:
    config: ``jaxcnn/configs/speedrun.py`` (``experiments/configs/speedrun.py`` for the CLI)'s config.
    train_arrays, eval_arrays: ``{'image': uint8 [N, H, W, C], 'label': int [N]}``.
  """

  def __init__(self, config: Any, train_arrays: Mapping[str, np.ndarray],
               eval_arrays: Mapping[str, np.ndarray]):
    self.config = config
    cfg = config
    self.train_arrays = {k: np.asarray(v) for k, v in train_arrays.items()}
    n_train = len(self.train_arrays["label"])
    self.batch_size = int(cfg.batch_size)
    if not 1 <= self.batch_size <= n_train:
      raise ValueError(f"`batch_size` (={self.batch_size}) must be in [1, {n_train}] (the "
                       "train split's size)")
    self.steps_per_epoch = n_train // self.batch_size
    steps = int(cfg.get("num_train_steps", -1) or -1)
    epochs = float(cfg.epochs)
    if steps <= 0 and not epochs > 0:
      raise ValueError(f"`epochs` (={cfg.epochs!r}) must be > 0 (or set num_train_steps)")
    # airbench: total_train_steps = ceil(epochs * len(train_loader)).
    self.total_steps = steps if steps > 0 else math.ceil(epochs * self.steps_per_epoch)
    info = data_lib.DATASETS[cfg.data.name]
    self.mean, self.std = info.mean, info.std
    self.num_classes = info.num_classes
    self.model = loop_lib.make_model(cfg, info.num_classes)
    self.par = parallel_lib.Parallel("none")
    self.settings = loop_lib.LoopSettings(
        steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
        num_epochs=math.ceil(self.total_steps / self.steps_per_epoch),
        images_per_step=self.batch_size, log_every=self.steps_per_epoch,
        checkpoint_every_epoch=False, verbose=False)
    self.tx = make_tx(cfg.recipe, self.batch_size, self.total_steps, self.steps_per_epoch)
    self.dtype = loop_lib.compute_dtype(cfg.dtype)
    self.eval_loader = data_lib.DeviceLoader(
        dict(eval_arrays), int(cfg.eval_batch_size), shuffle=False, seed=0, augment=None,
        mean=self.mean, std=self.std, drop_remainder=False, dtype=self.dtype)
    n_white = min(int(cfg.recipe.whiten_images), n_train)
    self._whiten_images = jax.device_put(self.train_arrays["image"][:n_white])
    eps = float(cfg.recipe.whiten_eps)
    mean, std = self.mean, self.std
    self._whiten = jax.jit(lambda variables, images: init_whitening(
        variables, data_lib.normalize(images, mean, std), eps))
    model = self.model
    # One compiled init for every seed (default_init would compile a new one per call).
    self._init = jax.jit(lambda key, x: model.init({"params": key}, x, train=False))
    self._engine: loop_lib.Engine | None = None
    self.compile_seconds = 0.0

  def make_loader(self, seed: int) -> data_lib.DeviceLoader:
    """The training loader of ``seed`` (its order and augmentation), data on the device."""
    return data_lib.DeviceLoader(
        self.train_arrays, self.batch_size, shuffle=True, seed=seed,
        augment=augment_spec(self.config.data), mean=self.mean, std=self.std,
        drop_remainder=True, dtype=self.dtype)

  def init_state(self, seed: int) -> TrainState:
    """The randomly initialised state of ``seed`` (before the whitening init; not timed, as
    airbench's ``model.reset()``)."""
    shape = (1, *self.train_arrays["image"].shape[1:])
    return self.par.put_state(create_train_state(
        self.model, jax.random.PRNGKey(seed), shape, self.tx,
        init_fn=lambda model, key, batch: self._init(key, batch["image"])))

  def _ensure_engine(self, loader: data_lib.DeviceLoader) -> loop_lib.Engine:
    if self._engine is None:
      cfg = self.config
      self._engine = loop_lib.make_engine(
          self.par, self.settings, loader, self.eval_loader,
          loss_fn=summed_cross_entropy(float(cfg.label_smoothing)),
          logits_fn=lambda apply, x: tta_logits(apply, x, int(cfg.recipe.tta_level)))
    return self._engine

  def _warm_up(self, engine: loop_lib.Engine, state: TrainState,
               loader: data_lib.DeviceLoader) -> float:
    """Compiles everything a run calls, on a copy of ``state`` (left untouched); seconds."""
    t0 = time.perf_counter()
    batch = jax.block_until_ready(next(iter(loader.epoch(0))))
    copy = self.par.put_state(_copy(state))  # committed like the state, or jit recompiles
    whitened = copy.with_variables(jax.block_until_ready(
        self._whiten({"params": copy.params, **copy.collections}, self._whiten_images)))
    if engine.compile_seconds is None:
      trained, m = engine.p_train(whitened, self.par.put_batch(batch))  # as train_epoch
      jax.block_until_ready((trained, m))
      loop_lib.evaluate_loader(engine.p_eval, self.par, trained, self.eval_loader)
      engine.compile_seconds = time.perf_counter() - t0
    return time.perf_counter() - t0

  def run(self, seed: int) -> RunResult:
    """Trains seed ``seed`` and evaluates it with TTA; returns the :class:`RunResult`.

    Timed as airbench: the whitening init (from the first ``whiten_images`` training images),
    every training step (batches made on the device by the loader) and the TTA evaluation.
    Not timed: building the loader (the data put on the device), the random init and the
    compilation (:attr:`RunResult.compile_seconds`).
    """
    loader = self.make_loader(seed)
    state = self.init_state(seed)
    engine = self._ensure_engine(loader)
    compile_seconds = self._warm_up(engine, state, loader)
    engine = dataclasses.replace(engine, train_loader=loader, eval_loader=None)

    t0 = time.perf_counter()
    variables = self._whiten({"params": state.params, **state.collections},
                             self._whiten_images)
    state = state.with_variables(jax.block_until_ready(variables))
    t1 = time.perf_counter()
    ls = loop_lib.LoopState()
    state = loop_lib.run_loop(engine, state, ls)
    t2 = time.perf_counter()
    ev = loop_lib.evaluate_loader(engine.p_eval, self.par, state, self.eval_loader)
    t3 = time.perf_counter()
    return RunResult(seed=seed, accuracy=float(ev["accuracy"]), seconds=t3 - t0,
                     whiten_seconds=t1 - t0, train_seconds=t2 - t1, eval_seconds=t3 - t2,
                     compile_seconds=compile_seconds, steps=ls.step,
                     train_loss=ls.history[-1]["train_loss"] if ls.history else None,
                     state=state)

def summarize(results: list[RunResult], target: float) -> dict[str, float]:
  """Mean and (sample) std of accuracy and time over runs, and the fraction ``>= target``."""
  acc = np.asarray([r.accuracy for r in results])
  sec = np.asarray([r.seconds for r in results])
  std = lambda a: float(a.std(ddof=1)) if len(a) > 1 else 0.0
  return {"runs": len(results), "accuracy_mean": float(acc.mean()), "accuracy_std": std(acc),
          "seconds_mean": float(sec.mean()), "seconds_std": std(sec),
          "fraction_at_target": float((acc >= target).mean()), "target": float(target)}


__all__ = ["airbench_muon", "linear_decay", "newton_schulz_airbench", "sgd_coupled",
           "recipe_labels", "make_tx",
           "summed_cross_entropy", "tta_views", "tta_logits", "augment_spec", "Speedrun",
           "RunResult", "summarize"]
