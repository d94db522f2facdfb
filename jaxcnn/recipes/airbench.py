"""The airbench94 CIFAR-10 speed recipe on the engine, and its timed multi-seed runner.

Keller Jordan's ``airbench94_muon.py`` (github.com/KellerJordan/cifar10-airbench, commit
096d14d) trains CIFAR-10 to 94.01% (mean of 200 runs) in 2.59 s on an A100. The recipe's numbers
are data in :mod:`jaxcnn.configs.speedrun` (``config.recipe``); this module turns them into the
engine's values, each built from the engine's own pieces:

* :func:`make_tx`: the four parameter groups (:func:`jaxcnn.train.optim.param_labels` +
  :func:`~jaxcnn.train.optim.partition`): conv kernels with
  :func:`~jaxcnn.train.optim.muon_renormalized`, BatchNorm biases, the head and the whitening
  bias with :func:`~jaxcnn.train.optim.sgd_nesterov` (PyTorch-coupled decay), every rate on a
  :func:`~jaxcnn.train.optim.linear_decay`;
* :func:`summed_cross_entropy`: the loss summed over the batch (airbench's ``reduction='sum'``);
* :func:`tta`: airbench's test-time augmentation (levels 0, 1, 2) as
  :func:`jaxcnn.train.tta_logits` settings;
* :func:`augment_spec`: alternating flip, then a reflect-padded random crop;
* :func:`whitening_init`: the frozen first layer set from the training images' patches;
* :func:`recipe`: all of them as a :class:`~jaxcnn.recipes.Recipe` (``recipe.name =
  'airbench94'``), which :func:`jaxcnn.train.train_and_evaluate` uses;
* :class:`Speedrun`: builds the model, loaders and compiled steps once, then
  :meth:`Speedrun.run` trains one seed through :func:`jaxcnn.train.loop.run_loop` and times it as
  airbench does (compilation excluded and reported on its own; the data already on the device;
  whitening init + training + the final TTA evaluation timed).

The CLI is ``python -m experiments.speedrun``.

>>> from jaxcnn.configs import speedrun as speedrun_config
>>> cfg = speedrun_config.get_config('tiny')
>>> runner = Speedrun(cfg, train_arrays, eval_arrays)  # doctest: +SKIP
>>> runner.run(seed=0).accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn import data as data_lib
from jaxcnn import functional as F
from jaxcnn.models import init_whitening
from jaxcnn.recipes.base import Recipe, register
from jaxcnn.train import config as config_lib
from jaxcnn.train import loop as loop_lib
from jaxcnn.train import optim
from jaxcnn.train import parallel as parallel_lib
from jaxcnn.train import run as run_lib
from jaxcnn.train.state import TrainState, create_train_state
from jaxcnn.train.steps import tta_logits

# -- the optimiser ---------------------------------------------------------------------------


def recipe_labels(params: Any) -> Any:
  """The recipe's groups of SpeedNet's params: ``'frozen'`` (``whiten/kernel``), ``'bias'``
  (``whiten/bias``), ``'batchnorm'`` (the BatchNorm biases), ``'head'`` and ``'kernel'`` (the
  conv kernels, for Muon)."""
  return optim.param_labels(params, frozen=["whiten/kernel"], head="head")


def make_tx(recipe: Mapping[str, Any], batch_size: int, total_steps: int,
            steps_per_epoch: int) -> optax.GradientTransformation:
  """The recipe's optimiser (airbench94_muon.py ``main``), over :func:`recipe_labels`:

  * conv kernels: :func:`~jaxcnn.train.optim.muon_renormalized` at ``muon_lr``, momentum
    ``muon_momentum``, ``ns_steps`` Newton-Schulz steps in bfloat16;
  * BatchNorm biases at ``bias_lr`` and the head at ``head_lr``:
    :func:`~jaxcnn.train.optim.sgd_nesterov` (coupled) with momentum ``sgd_momentum`` and weight
    decay ``wd / lr`` (``wd = wd_per_image * batch_size``; airbench divides by the group's lr so
    that the decay per step, ``lr_t * wd / lr``, does not depend on the group's lr);
  * the whitening bias: as the BatchNorm biases, but its learning rate decays to 0 over
    ``ceil(whiten_bias_epochs * steps_per_epoch)`` steps, after which it no longer moves
    (airbench stops its gradient there);
  * every other learning rate decays linearly to 0 over ``total_steps``.
  """
  r = recipe
  wd = float(r["wd_per_image"]) * batch_size
  whiten_steps = math.ceil(float(r["whiten_bias_epochs"]) * steps_per_epoch)
  sgd = lambda lr, steps: optim.sgd_nesterov(
      optim.linear_decay(float(lr), steps), float(r["sgd_momentum"]), wd / float(lr),
      coupled=True)
  transforms = {
      "kernel": optim.muon_renormalized(optim.linear_decay(float(r["muon_lr"]), total_steps),
                                        float(r["muon_momentum"]), ns_steps=int(r["ns_steps"])),
      "batchnorm": sgd(r["bias_lr"], total_steps),
      "head": sgd(r["head_lr"], total_steps),
      "bias": sgd(r["bias_lr"], whiten_steps),
  }
  return optim.partition(transforms, recipe_labels)


# -- loss, test-time augmentation, augmentation, initialisation -------------------------------


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


def tta(level: int = 2) -> Callable[..., jax.Array]:
  """airbench's ``infer(model, loader, tta_level)`` as a ``logits_fn``
  (:func:`jaxcnn.train.tta_logits` settings).

  level 0: the images; level 1: the mean of the images and their mirror; level 2: those two at
  1/4 each, plus the translations by ``(+1, +1)`` and ``(-1, -1)`` (reflect-padded) and their
  mirrors at 1/8 each (airbench: ``0.5 * L1(x) + 0.5 * mean(L1(t1), L1(t2))`` with
  ``L1(v) = (f(v) + f(flip v)) / 2``).

  >>> tta(2)(lambda x: x.mean(axis=(1, 2)), jnp.ones((2, 4, 4, 3))).shape
  (2, 3)
  """
  if level not in (0, 1, 2):
    raise ValueError(f"`tta_level` (={level!r}) must be 0, 1 or 2")
  if level == 0:
    return functools.partial(tta_logits, flip=False)
  if level == 1:
    return functools.partial(tta_logits, flip=True)
  return functools.partial(tta_logits, flip=True, shifts=((1, 1), (-1, -1)),
                           pad_mode="reflect", shift_weight=0.5)


def augment_spec(recipe: Mapping[str, Any]) -> tuple[Any, ...]:
  """airbench's training augmentation: alternating flip (``flip``), then a translation by up to
  ``translate`` pixels (reflect-pad, random crop)."""
  spec: list[Any] = []
  if recipe.get("flip", True):
    spec.append(("alternating_flip", {}))
  t = int(recipe.get("translate", 2))
  if t:
    spec.append(("crop", {"padding": t, "mode": "reflect"}))
  return tuple(spec)


def whitening_init(model: Any, key: jax.Array, sample_batch: Any, *, eps: float) -> Any:
  """``init_fn`` for :func:`jaxcnn.train.train_and_evaluate`: ``model.init``, then the frozen
  whitening layer set from the patches of ``sample_batch``'s (normalised) images."""
  images = sample_batch["image"] if isinstance(sample_batch, Mapping) else sample_batch
  init = jax.jit(lambda k, x: model.init({"params": k}, x, train=False))
  variables = init(key, jnp.asarray(images[:1]))
  return jax.jit(lambda v, x: init_whitening(v, x, eps))(variables, jnp.asarray(images))


@register("airbench94")
def recipe(config: Any) -> Recipe:
  """The recipe's hooks for :func:`jaxcnn.train.train_and_evaluate`. The whitening layer is set
  from the first training batch (the timed :class:`Speedrun` uses the first
  ``whiten_images`` training images, as airbench does)."""
  config = config_lib.validate(config)
  r = config.recipe
  return Recipe(
      tx=lambda params, total, per_epoch: make_tx(r, config.batch_size, total, per_epoch),
      init_fn=functools.partial(whitening_init, eps=float(r["whiten_eps"])),
      loss_fn=summed_cross_entropy(config.label_smoothing),
      logits_fn=tta(int(r["tta_level"])),
      augment=augment_spec(r))


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


def _copy(tree: Any) -> Any:
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


class Speedrun:
  """The recipe of a config, ready to run seeds back to back on arrays already loaded.

  Built once: the model, the optimiser, the eval loader (on the device), the compiled train
  and TTA-eval steps (:func:`jaxcnn.train.loop.make_engine`) and the jitted whitening; their
  compilation is done here or by the first :meth:`run` and reported, not timed.

  Args:
    config: :mod:`jaxcnn.configs.speedrun`'s config (any form :func:`jaxcnn.train.config.validate`
      takes).
    train_arrays, eval_arrays: ``{'image': uint8 [N, H, W, C], 'label': int [N]}``.
  """

  def __init__(self, config: Any, train_arrays: Mapping[str, np.ndarray],
               eval_arrays: Mapping[str, np.ndarray]):
    cfg = self.config = config_lib.validate(config)
    self.recipe = cfg.recipe
    self.train_arrays = {k: np.asarray(v) for k, v in train_arrays.items()}
    n_train = len(self.train_arrays["label"])
    self.batch_size = cfg.batch_size
    if self.batch_size > n_train:
      raise ValueError(f"`batch_size` (={self.batch_size}) must be in [1, {n_train}] (the "
                       "train split's size)")
    self.steps_per_epoch = n_train // self.batch_size
    # airbench: total_train_steps = ceil(epochs * len(train_loader)).
    self.total_steps = cfg.total_steps(self.steps_per_epoch)
    info = data_lib.DATASETS[cfg.data.name]
    self.mean, self.std = info.mean, info.std
    self.num_classes = info.num_classes
    self.model = run_lib.make_model(cfg, info.num_classes)
    self.par = parallel_lib.Parallel("none")
    self.settings = loop_lib.LoopSettings(
        steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
        num_epochs=math.ceil(self.total_steps / self.steps_per_epoch),
        images_per_step=self.batch_size, log_every=self.steps_per_epoch, verbose=False)
    self.tx = make_tx(self.recipe, self.batch_size, self.total_steps, self.steps_per_epoch)
    self.dtype = run_lib.compute_dtype(cfg.dtype)
    self.eval_loader = data_lib.DeviceLoader(
        dict(eval_arrays), cfg.eval_batch, shuffle=False, seed=0, augment=None,
        mean=self.mean, std=self.std, drop_remainder=False, dtype=self.dtype)
    n_white = min(int(self.recipe["whiten_images"]), n_train)
    self._whiten_images = jax.device_put(self.train_arrays["image"][:n_white])
    eps = float(self.recipe["whiten_eps"])
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
        augment=augment_spec(self.recipe), mean=self.mean, std=self.std,
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
      self._engine = loop_lib.make_engine(
          self.par, self.settings, loader, self.eval_loader,
          loss_fn=summed_cross_entropy(self.config.label_smoothing),
          logits_fn=tta(int(self.recipe["tta_level"])))
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
