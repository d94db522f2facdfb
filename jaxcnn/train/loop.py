"""``train_and_evaluate(config, workdir)``: the whole training run, resumable, in named pieces.

Reading order: :func:`validate_config` (every config value checked before any data is read),
:func:`train_and_evaluate` (set-up, resume, :func:`run_loop`, the test split), then the pieces
it is made of, which ``fit`` (``keras.py``) calls too:

* :class:`LoopSettings` (the loop's numbers, from a config) and :class:`LoopState` (the
  bookkeeping that is checkpointed: step, history, early-stopping counters, partial sums);
* :func:`init_state` (model variables, optimiser, averager), :func:`make_engine` (the compiled
  steps and loaders of one run);
* :func:`train_epoch`, :func:`evaluate_loader`, :func:`update_early_stopping` and
  :func:`run_loop`, which strings them together and calls back to save.

What a run writes to ``workdir``:

* ``config.json``: the config as run;
* ``summary.txt``: the model summary (:func:`jaxcnn.inspect.summary`);
* ``metrics.jsonl``: one JSON object per epoch: ``epoch, step, train_loss, train_accuracy,
  train_grad_norm, train_param_norm, train_update_norm`` (epoch means), ``eval_loss,
  eval_accuracy, eval_top5`` (None on epochs not evaluated, see ``eval_every_epochs``),
  ``epoch_seconds, train_seconds, eval_seconds, train_images_per_sec`` (excluding the run's
  first step) and ``compile_seconds`` (the first step's wall time, compilation included) on
  the first epoch a process runs;
* ``curves.png`` and ``confusion.png``, redrawn after every evaluated epoch (``plots=False``:
  never);
* ``checkpoints/latest`` and ``checkpoints/best`` (see :mod:`jaxcnn.train.checkpoint`): every
  epoch, every ``checkpoint_every_steps`` and at the end (``checkpoint_every_epoch=False``:
  only the last two);
* ``tensorboard/`` with ``tensorboard=True``: the same per-epoch numbers as TensorBoard scalars
  (:mod:`jaxcnn.train.tensorboard`; no TensorFlow needed);
* ``test_metrics.json`` when ``data.test_split`` is set: ``test_loss, test_accuracy,
  test_top5, test_confusion`` of the restored best model (with early stopping) or the final
  one, evaluated once after training.

Exact resume: the checkpoint holds the state (params, variable collections, optimizer and
averager state, step, base key) and the :class:`LoopState`; the loaders' order and
augmentations are a pure function of ``(seed, epoch, step)`` and the dropout key of step ``n``
is ``fold_in(rng, n)``, so re-running the same command continues the same trajectory: the final
parameters equal those of an uninterrupted run. ``metrics.jsonl`` is rewritten from the
checkpoint's history on resume, so epochs that ran after the last checkpoint (and were lost with
``kill -9``) are not listed twice.

Non-finite guard: every step returns a ``finite`` flag; the host reads the flags of the steps
since the last check at each log point (every ``log_every_steps``) and before every checkpoint,
so there is no per-step host sync, and a non-finite state is never saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import pathlib
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcnn import metrics as metrics_lib
from jaxcnn._errors import brief
from jaxcnn.cpu import tuning as cpu_tuning
from jaxcnn.train import average
from jaxcnn.train import checkpoint as checkpoint_lib
from jaxcnn.train._config import cfg_get, is_number
from jaxcnn.train import optim
from jaxcnn.train import parallel as parallel_lib
from jaxcnn.train.state import InitFn, TrainState, create_train_state
from jaxcnn.train.steps import AXIS_NAME, LogitsFn, LossFn, eval_step, train_step

log = logging.getLogger(__name__)

# No float16: without loss scaling its gradients underflow (bfloat16 has float32's range).
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "auto": None}


def compute_dtype(name: str, platform: str | None = None) -> Any:
  """``config.dtype`` -> the compute dtype: ``'auto'`` is float32 on a CPU and bfloat16 on a
  TPU or GPU (resolved when the model is built, so a config file never starts JAX itself)."""
  if name not in DTYPES:
    raise ValueError(f"unknown `dtype` (={name!r}); known: {', '.join(DTYPES)}")
  if name == "auto":
    platform = jax.default_backend() if platform is None else platform
    return jnp.float32 if platform == "cpu" else jnp.bfloat16
  return DTYPES[name]
NORMALIZATIONS = ("dataset", "unit")
LOADERS = ("device", "stream")


class NonFiniteError(FloatingPointError):
  """Training produced a non-finite loss or gradient; the message names the step."""

  def __init__(self, message: str, *, step: int, last_checkpoint_step: int | None):
    super().__init__(message)
    self.step = step
    self.last_checkpoint_step = last_checkpoint_step


@dataclasses.dataclass
class TrainResult:
  """What :func:`train_and_evaluate` returns.

  Attributes:
    state: the final canonical (single-copy) :class:`TrainState`; with early stopping on
      (``patience > 0``) the state of the best epoch.
    history: the per-epoch records written to ``metrics.jsonl``.
    stopped_early: whether patience ran out.
    best_epoch: the epoch with the lowest eval loss (-1 if none was evaluated).
    test_metrics: ``{'test_loss', 'test_accuracy', 'test_top5', 'test_confusion', ...}`` of
      ``state`` on ``data.test_split``, or None without one.
  """
  state: TrainState
  history: list[dict[str, Any]]
  stopped_early: bool
  best_epoch: int
  test_metrics: dict[str, Any] | None = None


@dataclasses.dataclass
class LoopState:
  """The loop's bookkeeping, checkpointed beside the train state (as JSON ``meta``).

  ``step``: optimizer steps done; ``history``: the per-epoch records; ``best_eval_loss`` /
  ``best_epoch`` / ``bad_epochs`` / ``stopped_early``: early stopping; ``partial``: the running
  sums of a half-done epoch (so a mid-epoch resume reports the same epoch means).
  """
  step: int = 0
  history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  best_eval_loss: float | None = None
  best_epoch: int = -1
  bad_epochs: int = 0
  stopped_early: bool = False
  partial: dict[str, Any] | None = None

  def to_meta(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_meta(cls, meta: Mapping[str, Any]) -> "LoopState":
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in meta.items() if k in names})


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks every value the run uses; raises ``ValueError`` naming the bad one.

  Called first by :func:`train_and_evaluate`, before any data is read or model is built.
  """
  from jaxcnn import models  # the registry of model names

  required = ("model", "seed", "batch_size", "num_epochs", "num_train_steps", "parallel",
              "optimizer", "learning_rate", "data.name", "data.train_split", "data.eval_split")
  missing = [k for k in required if cfg_get(config, k, None) is None]
  if missing:
    raise ValueError(f"config is missing required keys: {', '.join(missing)}")
  if config.model not in models.MODELS:
    raise ValueError(f"unknown `model` (={config.model!r}); known: "
                     f"{', '.join(sorted(models.MODELS))}")
  optim.validate_optimizer_config(config)
  parallel_lib.validate_mode(config.parallel)
  for key in ("batch_size", "eval_batch_size"):
    value = cfg_get(config, key, None)
    if key == "eval_batch_size" and not value:
      continue
    parallel_lib.check_batch_size(value, config.parallel, key)
  if not isinstance(config.num_epochs, int) or config.num_epochs < 0:
    raise ValueError(f"`num_epochs` (={config.num_epochs!r}) must be an int >= 0")
  if not isinstance(config.num_train_steps, int):
    raise ValueError(f"`num_train_steps` (={config.num_train_steps!r}) must be an int")
  if config.num_epochs == 0 and config.num_train_steps <= 0:
    raise ValueError("nothing to train: `num_epochs` (=0) and `num_train_steps` "
                     f"(={config.num_train_steps}) are both <= 0")
  dtype = cfg_get(config, "dtype", "float32")
  if dtype not in DTYPES:
    raise ValueError(f"unknown `dtype` (={dtype!r}); known: {', '.join(DTYPES)}")
  validate_loop_settings(config)
  loader = cfg_get(config, "data.loader", "device")
  if loader not in LOADERS:
    raise ValueError(f"unknown `data.loader` (={loader!r}); known: {', '.join(LOADERS)}")
  from jaxcnn import data
  if config.data.name not in data.DATASETS:
    raise ValueError(f"unknown `data.name` (={config.data.name!r}); known: "
                     f"{', '.join(sorted(data.DATASETS))}")
  data.augment.make_augment(_augment_spec(config))  # unknown names fail here, not mid-run
  normalize = cfg_get(config, "data.normalize", "dataset")
  if normalize not in NORMALIZATIONS:
    raise ValueError(f"unknown `data.normalize` (={normalize!r}); known: "
                     f"{', '.join(NORMALIZATIONS)}")
  image_folder = cfg_get(config, "data.image_folder", None)
  if image_folder and not os.path.exists(image_folder):
    raise ValueError(f"`data.image_folder` (={image_folder!r}) does not exist")
  test_split = cfg_get(config, "data.test_split", None)
  if test_split is not None and not isinstance(test_split, str):
    raise ValueError(f"`data.test_split` (={test_split!r}) must be a split name such as "
                     "'test', or None")


def validate_loop_settings(config: Any) -> None:
  """The loop's own keys (shared by :func:`train_and_evaluate` and ``fit``)."""
  for key in ("patience", "checkpoint_every_steps", "log_every_steps"):
    value = cfg_get(config, key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      raise ValueError(f"`{key}` (={value!r}) must be an int >= 0")
  for key in ("eval_every_epochs", "ema_every"):
    value = cfg_get(config, key, 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"`{key}` (={value!r}) must be an int >= 1")
  for key, what in (("label_smoothing", ""), ("ema", " (0 = off)")):
    value = cfg_get(config, key, 0.0)
    if not is_number(value) or not 0.0 <= value < 1.0:
      raise ValueError(f"`{key}` (={value!r}) must be a number in [0, 1){what}")
  delta = cfg_get(config, "early_stopping_min_delta", 0.0)
  if not is_number(delta) or delta < 0:
    raise ValueError(f"`early_stopping_min_delta` (={delta!r}) must be a number >= 0")
  for key in ("plots", "checkpoint_every_epoch", "ema_warmup", "tensorboard"):
    value = cfg_get(config, key, True)
    if not isinstance(value, bool):
      raise ValueError(f"`{key}` (={value!r}) must be True or False")


def make_model(config: ml_collections.ConfigDict, num_classes: int):
  """The model named by ``config.model`` (+ ``config.model_kwargs``) in ``config.dtype``.

  Under ``parallel='pmap'`` the factory gets ``axis_name=AXIS_NAME``, so BatchNorm averages its
  batch moments over the devices (the global batch, as on one device and under ``'mesh'``).
  """
  from jaxcnn import models
  kwargs = dict(cfg_get(config, "model_kwargs", None) or {})
  axis_name = AXIS_NAME if cfg_get(config, "parallel", "none") == "pmap" else None
  return models.get_model(config.model, num_classes=num_classes,
                          dtype=compute_dtype(cfg_get(config, "dtype", "float32")),
                          axis_name=axis_name, **kwargs)


# Keys that may change between a run and its resumption without changing what is computed.
RESUMABLE_CHANGES = ("progress", "log_every_steps", "checkpoint_every_steps", "async_checkpoints",
                     "plots", "checkpoint_every_epoch", "data.test_split", "tensorboard")
# The learning rate may change too: the recovery from a diverged run is to resume its last good
# checkpoint with a smaller rate. Nothing saved depends on the rate (optax keeps moments and
# counts, and the schedule is rebuilt from the config), so the run continues the same trajectory
# up to the checkpoint and the new rate from there; train_and_evaluate says so when it happens.
RATE_KEYS = ("learning_rate",)
# The run's length sets the learning-rate curve of every schedule but 'constant'.
LENGTH_KEYS = ("num_epochs", "num_train_steps")
# The data may move (another path to the same copy), but tfds and a folder copy order the
# examples differently, so a split would hold other images: no switching between them.
DATA_PATH_KEYS = ("data.data_dir", "data.image_folder")


def _may_change(key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
  if key in RESUMABLE_CHANGES or key in RATE_KEYS:
    return True
  if key in LENGTH_KEYS:
    return old.get("schedule", "constant") == new.get("schedule", "constant") == "constant"
  if key in DATA_PATH_KEYS:
    return old.get(key) is not None and new.get(key) is not None
  return False


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def check_resumable(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> None:
  """Raises ``ValueError`` when ``workdir`` holds a checkpoint written with another config.

  An exact resume needs the same model, optimiser, data and seed. What may differ: logging and
  checkpoint frequency (:data:`RESUMABLE_CHANGES`); the run's length when the schedule is
  'constant' (any other schedule's curve depends on it); the path of the data, but not a switch
  between tfds and a folder copy. The message names every other key that differs, with both
  values.
  """
  workdir = pathlib.Path(workdir)
  saved = workdir / "config.json"
  ckpts = workdir / "checkpoints"
  if not (saved.is_file() and ckpts.is_dir() and any(ckpts.iterdir())):
    return
  old = _flatten(json.loads(saved.read_text()))
  new = _flatten(json.loads(config.to_json_best_effort()))
  diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(old.keys() | new.keys())
           if old.get(k) != new.get(k) and not _may_change(k, old, new)]
  if diffs:
    raise ValueError(
        f"{workdir} holds checkpoints of a run with another config, so it cannot be resumed "
        f"exactly; differing keys: {'; '.join(diffs)}. Use a new --workdir, or the same config.")
  for key in RATE_KEYS:
    if old.get(key) != new.get(key):
      log.warning(f"`{key}` changed from {old.get(key)!r} to {new.get(key)!r}: resuming the "
                  "checkpoint with the new value from its step on")


def make_loaders(config: ml_collections.ConfigDict, info: Any, *,
                 batch_sharding: Any = None) -> tuple[Any, Any]:
  """Train and eval loaders for this process's shard of the data.

  Each loader's ``batch_size`` is this process's share of the global batch. ``batch_sharding``
  (single-process ``'mesh'`` mode): the device-resident loader then makes every batch already
  sharded over the mesh, instead of on one device to be copied out by the train loop.
  """
  common = _loader_kwargs(config, batch_sharding)
  count = jax.process_count()
  eval_batch = (cfg_get(config, "eval_batch_size", 0) or config.batch_size) // count
  from jaxcnn import data
  train = data.make_loader(config.data.name, config.data.train_split, config.batch_size // count,
                           train=True, augment=_augment_spec(config),
                           **common)
  evaluation = data.make_loader(config.data.name, config.data.eval_split, eval_batch,
                                train=False, **common)
  return train, evaluation


def make_test_loader(config: ml_collections.ConfigDict, info: Any, *,
                     batch_sharding: Any = None) -> Any:
  """The loader of ``config.data.test_split`` (evaluated once, after training), or None."""
  split = cfg_get(config, "data.test_split", None)
  if not split:
    return None
  from jaxcnn import data
  batch = (cfg_get(config, "eval_batch_size", 0) or config.batch_size) // jax.process_count()
  return data.make_loader(config.data.name, split, batch, train=False,
                          **_loader_kwargs(config, batch_sharding))


def _loader_kwargs(config: ml_collections.ConfigDict, batch_sharding: Any) -> dict[str, Any]:
  from jaxcnn import data
  count, index = jax.process_count(), jax.process_index()
  common = dict(
      data_dir=cfg_get(config, "data.data_dir", None),
      image_folder=cfg_get(config, "data.image_folder", None),
      source=cfg_get(config, "data.source", "auto"),
      kind=cfg_get(config, "data.loader", "device"),
      process_index=index,
      process_count=count,
      seed=config.seed,
  )
  if cfg_get(config, "data.normalize", "dataset") == "unit":
    # x / 255 and nothing else, as the Keras tutorials do: keeps recipes comparable with theirs.
    channels = data.get_info(config.data.name).image_shape[-1]
    common.update(mean=(0.0,) * channels, std=(1.0,) * channels)
  if batch_sharding is not None and count == 1 and common["kind"] == "device":
    common["sharding"] = batch_sharding
  return common


def _augment_spec(config: ml_collections.ConfigDict) -> Any:
  """``data.augment`` as a ``make_augment`` spec: 'crop,flip' -> ('crop', 'flip')."""
  spec = cfg_get(config, "data.augment", None)
  if isinstance(spec, str):
    spec = tuple(s.strip() for s in spec.split(",") if s.strip())
  return spec or None


def _write_jsonl(path: pathlib.Path, records: Iterable[Mapping[str, Any]]) -> None:
  tmp = path.with_name(path.name + ".tmp")
  with open(tmp, "w") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")
  os.replace(tmp, path)  # atomic: a reader never sees half a file


def _append_jsonl(path: pathlib.Path, record: Mapping[str, Any]) -> None:
  with open(path, "a") as f:
    f.write(json.dumps(record) + "\n")


def evaluate_loader(p_eval: Any, par: parallel_lib.Parallel, state: Any,
                    loader: Any) -> dict[str, Any]:
  """Runs ``p_eval`` over one pass of ``loader``; returns means and the confusion matrix.

  Sums stay on device until the end: one host transfer per evaluation.
  """
  total = None
  for batch in loader.epoch(0):
    sums = p_eval(state, par.put_batch(batch))
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
  if total is None:
    raise ValueError("the eval loader yielded no batch")
  acc = metrics_lib.Accumulator()
  acc.add_sums(par.metrics_to_host(total))
  return acc.compute()


class _Guard:
  """Pending per-step metrics (on device) and the host-side non-finite check."""

  def __init__(self, par: parallel_lib.Parallel, ckpt: checkpoint_lib.Checkpointer | None):
    self.par, self.ckpt = par, ckpt
    self.pending: list[tuple[int, Any]] = []

  def add(self, step_index: int, metrics: Any) -> None:
    self.pending.append((step_index, metrics))

  def flush(self, acc: metrics_lib.Accumulator, weight: float) -> dict[str, float] | None:
    """Moves pending metrics to the host, checks them, adds them to ``acc``; returns the last."""
    if not self.pending:
      return None
    steps = [s for s, _ in self.pending]
    host = self.par.metrics_to_host([m for _, m in self.pending])
    self.pending = []
    for step_index, m in zip(steps, host):
      if not float(m["finite"]) > 0:
        last = None
        if self.ckpt is not None:
          self.ckpt.wait()
          last = self.ckpt.latest_step()
        if last is None:
          where = ("no checkpoint was saved before it; lower `learning_rate` and start again" +
                   ("" if self.ckpt is None else " (the workdir holds no state to resume)"))
        else:
          where = (f"last good checkpoint: step {last} in {self.ckpt.latest.directory}; re-run "
                   "with a smaller `learning_rate` to resume from it")
        raise NonFiniteError(
            f"non-finite loss or gradient at train step {step_index} "
            f"(loss={float(m['loss'])}, grad_norm={float(m['grad_norm'])}); training stopped; "
            f"{where}", step=step_index, last_checkpoint_step=last)
      acc.add_means({k: v for k, v in m.items() if k != "finite"}, weight)
    return {k: float(v) for k, v in host[-1].items()}


# -- the pieces of a run -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """The loop's numbers, read once from a config (:meth:`from_config`).

  ``eval_every``: evaluate after every k-th epoch (and always after the last);
  ``checkpoint_every_epoch``: save at every epoch end (else only every ``ckpt_every`` steps,
  the best epoch when early stopping, and the end of the run).
  """
  steps_per_epoch: int
  total_steps: int
  num_epochs: int
  images_per_step: int
  log_every: int
  ckpt_every: int = 0
  eval_every: int = 1
  patience: int = 0
  min_delta: float = 0.0
  checkpoint_every_epoch: bool = True
  verbose: bool = True

  @classmethod
  def from_config(cls, config: Any, steps_per_epoch: int, images_per_step: int, *,
                  verbose: bool) -> "LoopSettings":
    steps = cfg_get(config, "num_train_steps", -1)
    total = steps if steps > 0 else cfg_get(config, "num_epochs", 1) * steps_per_epoch
    return cls(
        steps_per_epoch=steps_per_epoch, total_steps=total,
        num_epochs=math.ceil(total / steps_per_epoch), images_per_step=images_per_step,
        log_every=int(cfg_get(config, "log_every_steps", 50)) or steps_per_epoch,
        ckpt_every=int(cfg_get(config, "checkpoint_every_steps", 0)),
        eval_every=int(cfg_get(config, "eval_every_epochs", 1)),
        patience=int(cfg_get(config, "patience", 0)),
        min_delta=float(cfg_get(config, "early_stopping_min_delta", 0.0)),
        checkpoint_every_epoch=bool(cfg_get(config, "checkpoint_every_epoch", True)),
        verbose=verbose)


def make_averager(config: Any) -> average.Averager | None:
  """The averager the config asks for: ``ema`` (decay; 0 = off), ``ema_warmup``, ``ema_every``."""
  decay = float(cfg_get(config, "ema", 0.0))
  if not decay:
    return None
  return average.ema(decay, warmup=bool(cfg_get(config, "ema_warmup", False)),
                     every=int(cfg_get(config, "ema_every", 1)))


def init_state(model: Any, config: Any, input_shape: tuple[int, ...], train_loader: Any,
               settings: LoopSettings, *, tx: optim.TxOrFactory | None = None,
               init_fn: InitFn | None = None,
               averager: average.Averager | None = None) -> TrainState:
  """The initial canonical state of a run: ``create_train_state`` with the run's hooks.

  ``init_fn(model, key, sample_batch)`` gets the first batch of the train loader's epoch 0 (a
  pure function of the seed, like every batch). ``tx``: see
  :func:`jaxcnn.train.optim.resolve_optimizer`; ``averager`` defaults to :func:`make_averager`.
  """
  sample = jax.device_get(next(iter(train_loader.epoch(0)))) if init_fn is not None else None
  return create_train_state(
      model, jax.random.PRNGKey(cfg_get(config, "seed", 0)), input_shape,
      optim.resolve_optimizer(tx, config, settings.total_steps, settings.steps_per_epoch),
      averager=averager if averager is not None else make_averager(config),
      init_fn=init_fn, sample_batch=sample)


@dataclasses.dataclass
class Engine:
  """The compiled steps, loaders and settings of one run (what :func:`run_loop` reads)."""
  par: parallel_lib.Parallel
  p_train: Callable[..., Any]
  p_eval: Callable[..., Any]
  train_loader: Any
  eval_loader: Any
  settings: LoopSettings
  guard: _Guard
  say: Callable[[str], None]
  compile_seconds: float | None = None


def make_engine(par: parallel_lib.Parallel, settings: LoopSettings, train_loader: Any,
                eval_loader: Any, *, label_smoothing: float = 0.0, loss_fn: LossFn | None = None,
                logits_fn: LogitsFn | None = None,
                ckpt: checkpoint_lib.Checkpointer | None = None) -> Engine:
  """Compiles :func:`train_step` / :func:`eval_step` with the run's hooks for ``par``'s mode."""
  p_train = par.compile_train(train_step, label_smoothing=float(label_smoothing),
                              loss_fn=loss_fn)
  p_eval = par.compile_eval(eval_step, logits_fn=logits_fn)
  return Engine(par, p_train, p_eval, train_loader, eval_loader, settings, _Guard(par, ckpt),
                _printer(settings.verbose))


def train_epoch(engine: Engine, state: Any, ls: LoopState, epoch: int, *,
                save: Callable[[Any, bool], None] | None = None) -> tuple[Any, dict[str, Any]]:
  """Runs epoch ``epoch`` from step ``ls.step`` (mid-epoch after a resume) to its end.

  ``save(state, best)`` is called at every ``ckpt_every`` step that is not an epoch end, after
  the pending metrics were checked. Returns the placed state and the epoch's train record
  (``epoch, step, train_*``, ``train_seconds``, ``train_images_per_sec``, maybe
  ``compile_seconds``); ``ls.step`` and ``ls.partial`` advance with it.
  """
  st, guard = engine.settings, engine.guard
  start_step = ls.step % st.steps_per_epoch
  acc = (metrics_lib.Accumulator.from_state_dict(ls.partial)
         if start_step and ls.partial else metrics_lib.Accumulator())
  steps_this_epoch = min(st.steps_per_epoch, st.total_steps - epoch * st.steps_per_epoch)
  bar = _progress(st.verbose, steps_this_epoch, start_step, epoch, st.num_epochs)
  t_epoch = t_timed = time.perf_counter()
  first_step_seconds = 0.0
  steps_run = 0
  t_log, steps_at_log = time.perf_counter(), 0
  for batch in engine.train_loader.epoch(epoch, start_step):
    if ls.step >= st.total_steps:
      break
    t0 = time.perf_counter()
    state, m = engine.p_train(state, engine.par.put_batch(batch))
    guard.add(ls.step, m)
    ls.step += 1
    steps_run += 1
    if engine.compile_seconds is None:
      jax.block_until_ready(m)
      t_timed = time.perf_counter()
      engine.compile_seconds = first_step_seconds = t_timed - t0
      tuned = cpu_tuning.report()  # what the first step's trace measured (jaxcnn.cpu.enable)
      if tuned:
        engine.say(tuned)
      t_log, steps_at_log = time.perf_counter(), steps_run
    if bar is not None:
      bar.update(1)
    if ls.step % st.log_every == 0:
      last = guard.flush(acc, st.images_per_step)
      now = time.perf_counter()
      if bar is not None and last is not None:
        ips = (steps_run - steps_at_log) * st.images_per_step / max(now - t_log, 1e-9)
        bar.set_postfix(loss=f"{last['loss']:.4f}", acc=f"{last['accuracy']:.3f}",
                        img_s=f"{ips:.0f}", refresh=False)
      t_log, steps_at_log = now, steps_run
    end_of_epoch = ls.step % st.steps_per_epoch == 0 or ls.step >= st.total_steps
    if st.ckpt_every and ls.step % st.ckpt_every == 0 and not end_of_epoch and save:
      guard.flush(acc, st.images_per_step)  # never save a state we have not checked
      ls.partial = acc.state_dict()
      save(state, False)
  guard.flush(acc, st.images_per_step)
  jax.block_until_ready(state)
  t_end = time.perf_counter()
  if bar is not None:
    bar.close()
  ls.partial = None
  tr = acc.compute()
  timed_steps = steps_run - (1 if first_step_seconds else 0)
  record = {
      "epoch": epoch + 1,
      "step": ls.step,
      **{f"train_{k}": tr.get(k) for k in ("loss", "accuracy", "grad_norm", "param_norm",
                                            "update_norm")},
      "train_seconds": t_end - t_epoch,
      # Steady state: on the run's first epoch the clock starts once the first step is done,
      # so compilation (reported on its own) and loader warm-up are excluded.
      "train_images_per_sec": (timed_steps * st.images_per_step / max(t_end - t_timed, 1e-9)
                               if timed_steps else None),
  }
  if first_step_seconds:
    record["compile_seconds"] = first_step_seconds
  return state, record


def update_early_stopping(ls: LoopState, epoch: int, eval_loss: float,
                          settings: LoopSettings) -> bool:
  """Records epoch ``epoch``'s (1-based) eval loss; returns whether it is a new best.

  A new best must beat the best so far by more than ``min_delta``; after ``patience`` (> 0)
  evaluations without one, ``ls.stopped_early`` is set.
  """
  improved = ls.best_eval_loss is None or eval_loss < ls.best_eval_loss - settings.min_delta
  if improved:
    ls.best_eval_loss, ls.best_epoch, ls.bad_epochs = eval_loss, epoch, 0
  else:
    ls.bad_epochs += 1
  if settings.patience and ls.bad_epochs >= settings.patience:
    ls.stopped_early = True
  return improved


def run_loop(engine: Engine, state: Any, ls: LoopState, *,
             save: Callable[[Any, bool], None] | None = None,
             on_epoch_end: Callable[[dict[str, Any], dict[str, Any] | None], None] | None = None
             ) -> Any:
  """Epochs from ``ls.step`` to the end (or early stop); returns the placed final state.

  Each epoch: :func:`train_epoch`; :func:`evaluate_loader` if due (every ``eval_every``
  epochs and the last; never without an eval loader); :func:`update_early_stopping`; then
  ``save(state, best=True)`` for a new best and ``save(state, best=False)`` at the epoch end
  (see :class:`LoopSettings`), the record appended to ``ls.history``, ``on_epoch_end(record,
  eval_metrics or None)``, and one printed line.
  """
  st = engine.settings
  for epoch in range(ls.step // st.steps_per_epoch, st.num_epochs):
    if ls.stopped_early or ls.step >= st.total_steps:
      break
    t_epoch = time.perf_counter()
    state, record = train_epoch(engine, state, ls, epoch, save=save)
    last_epoch = ls.step >= st.total_steps
    ev, t_eval = None, time.perf_counter()
    if engine.eval_loader is not None and ((epoch + 1) % st.eval_every == 0 or last_epoch):
      ev = evaluate_loader(engine.p_eval, engine.par, state, engine.eval_loader)
    record.update(eval_loss=ev and ev["loss"], eval_accuracy=ev and ev["accuracy"],
                  eval_top5=ev and ev["top5"], eval_seconds=time.perf_counter() - t_eval,
                  epoch_seconds=time.perf_counter() - t_epoch)
    improved = ev is not None and update_early_stopping(ls, epoch + 1, ev["loss"], st)
    ls.history.append(record)
    if save is not None:
      if improved and (st.checkpoint_every_epoch or st.patience):
        save(state, True)
      if st.checkpoint_every_epoch or last_epoch or ls.stopped_early:
        save(state, False)
    if on_epoch_end is not None:
      on_epoch_end(record, ev)
    engine.say(_epoch_line(record, st.num_epochs))
    if ls.stopped_early:
      engine.say(f"early stopping: eval loss has not improved for {st.patience} evaluations; "
                 f"restoring epoch {ls.best_epoch}")
  return state


def test_record(ev: Mapping[str, Any], state: Any) -> dict[str, Any]:
  """The test split's metrics as written to ``test_metrics.json``."""
  return {"step": int(np.asarray(state.step)), "test_loss": ev["loss"],
          "test_accuracy": ev["accuracy"], "test_top5": ev["top5"], "test_count": ev["count"],
          "test_confusion": np.asarray(ev["confusion"]).tolist()}


def test_line(record: Mapping[str, Any]) -> str:
  return (f"test (step {record['step']}): loss {record['test_loss']:.4f} "
          f"acc {record['test_accuracy']:.4f} top5 {record['test_top5']:.4f} "
          f"on {int(record['test_count'])} images")


# -- the run -------------------------------------------------------------------------------------

def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       tx: optim.TxOrFactory | None = None, init_fn: InitFn | None = None,
                       averager: average.Averager | None = None, loss_fn: LossFn | None = None,
                       logits_fn: LogitsFn | None = None) -> TrainResult:
  """Trains ``config.model`` on ``config.data``, evaluating every epoch; resumes from workdir.

  Args:
    config: see ``experiments/configs/*.py`` for the keys and their meaning.
    workdir: where checkpoints and records go. If it holds a checkpoint, training resumes from
      it and ends exactly where an uninterrupted run would.
    tx: the optimiser as a value: an optax transformation, or a factory ``(params, total_steps,
      steps_per_epoch) -> tx`` (default: the one ``config.optimizer`` names).
    init_fn: ``init_fn(model, key, sample_batch) -> variables`` replacing ``model.init`` (e.g.
      weights set from data); ``sample_batch`` is the first train batch.
    averager: an EMA or lookahead :class:`~jaxcnn.train.average.Averager` (default: from
      ``config.ema``); evaluation uses its averages.
    loss_fn: ``loss_fn(logits, batch) -> [B]`` losses for :func:`train_step`.
    logits_fn: ``logits_fn(apply, images) -> logits`` for evaluation (e.g. ``tta_logits``).

  Returns:
    a :class:`TrainResult`.

  Raises:
    ValueError: a bad config value (before any data is read).
    NonFiniteError: the loss or gradient became non-finite (a ``FloatingPointError``).

  >>> import functools, optax
  >>> from jaxcnn.train import tta_logits
  >>> result = train_and_evaluate(config, '/tmp/run', tx=optax.sgd(0.1),
  ...                             logits_fn=functools.partial(tta_logits, flip=True)
  ...                             )  # doctest: +SKIP
  """
  validate_config(config)
  parallel_lib.maybe_initialize_distributed(config)
  par = parallel_lib.Parallel(config.parallel)
  workdir = pathlib.Path(workdir)
  is_main = jax.process_index() == 0
  workdir.mkdir(parents=True, exist_ok=True)
  with WorkdirLock(workdir) if is_main else contextlib.nullcontext():
    check_resumable(config, workdir)
    if is_main:
      (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
    return _train_and_evaluate(config, workdir, par, is_main, tx=tx, init_fn=init_fn,
                               averager=averager, loss_fn=loss_fn, logits_fn=logits_fn)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                        par: parallel_lib.Parallel, is_main: bool, *, tx: Any, init_fn: Any,
                        averager: Any, loss_fn: Any, logits_fn: Any) -> TrainResult:
  """The run itself, once the workdir is locked and checked (see :func:`train_and_evaluate`)."""
  from jaxcnn import inspect, plots
  info = data_info(config)
  model = make_model(config, info.num_classes)
  input_shape = (1, *info.image_shape)
  if is_main:
    summary = inspect.summary(model, input_shape, print_fn=None)
    (workdir / "summary.txt").write_text(str(summary) + "\n")

  sharding = par.batch_sharding if par.mode == "mesh" else None
  train_loader, eval_loader = make_loaders(config, info, batch_sharding=sharding)
  if train_loader.steps_per_epoch < 1:
    raise ValueError(f"the train split {config.data.train_split!r} has fewer examples "
                     f"({train_loader.num_examples}) than one batch (={config.batch_size})")
  verbose = bool(cfg_get(config, "progress", True)) and is_main
  settings = LoopSettings.from_config(config, train_loader.steps_per_epoch, config.batch_size,
                                      verbose=verbose)
  state = init_state(model, config, input_shape, train_loader, settings, tx=tx,
                     init_fn=init_fn, averager=averager)

  ckpt = checkpoint_lib.Checkpointer(workdir / "checkpoints",
                                     async_save=bool(cfg_get(config, "async_checkpoints", True)))
  board = None  # the TensorBoard writer, with config.tensorboard on the main process
  try:
    restored = _restore(ckpt, state, workdir, verbose, settings.total_steps)
    state, ls = restored if restored is not None else (state, LoopState())
    if is_main:
      _write_jsonl(workdir / "metrics.jsonl", ls.history)
    engine = make_engine(par, settings, train_loader, eval_loader,
                         label_smoothing=float(cfg_get(config, "label_smoothing", 0.0)),
                         loss_fn=loss_fn, logits_fn=logits_fn, ckpt=ckpt)
    make_plots = bool(cfg_get(config, "plots", True))
    if is_main and cfg_get(config, "tensorboard", False):
      from jaxcnn.train.tensorboard import TensorBoardWriter  # pylint: disable=g-import-not-at-top
      board = TensorBoardWriter(workdir / "tensorboard", ls.history)

    def save(placed: Any, best: bool) -> None:
      ckpt.save(ls.step, par.get_state(placed), ls.to_meta(), best=best)

    def on_epoch_end(record: dict[str, Any], ev: dict[str, Any] | None) -> None:
      if not is_main:
        return
      _append_jsonl(workdir / "metrics.jsonl", record)
      if board is not None:
        board.write(record)
      if make_plots and ev is not None:
        plots.plot_curves(ls.history, workdir / "curves.png")
        plots.plot_confusion(ev["confusion"], info.class_names, workdir / "confusion.png",
                             title=f"eval confusion, epoch {record['epoch']}")

    state = run_loop(engine, par.put_state(state), ls, save=save, on_epoch_end=on_epoch_end)
    final = par.get_state(state)
    if settings.patience and ls.best_epoch > 0 and ckpt.latest_step(best=True) is not None:
      final, _ = ckpt.restore(final, best=True)
    test = None
    test_loader = make_test_loader(config, info, batch_sharding=sharding)
    if test_loader is not None:
      test = test_record(evaluate_loader(engine.p_eval, par, par.put_state(final), test_loader),
                         final)
      if is_main:
        (workdir / "test_metrics.json").write_text(json.dumps(test, indent=1) + "\n")
      if board is not None:
        board.write({"step": ls.step, **test})
      (engine.say if verbose else log.warning)(test_line(test))
  finally:
    ckpt.close()  # waits for pending async saves, also when the run stops on an error
    if board is not None:
      board.close()
  return TrainResult(state=final, history=ls.history, stopped_early=ls.stopped_early,
                     best_epoch=ls.best_epoch, test_metrics=test)


class WorkdirLock:
  """An exclusive lock on ``workdir`` for one run (``workdir/.lock``, holding the owner's pid).

  ``fcntl.flock``: the operating system drops the lock when the process ends, ``kill -9``
  included, so a crashed run never leaves a stale lock. A second run on the same workdir is
  refused with a one-line error naming the process that holds it; the first is not disturbed.
  """

  def __init__(self, workdir: str | os.PathLike):
    self.path = pathlib.Path(workdir) / ".lock"
    self._file = None

  def __enter__(self) -> "WorkdirLock":
    import fcntl
    f = open(self.path, "a+")
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      f.seek(0)
      owner = f.read().strip() or "another process"
      f.close()
      raise ValueError(f"{self.path.parent} is in use by {owner}; wait for that run to end, or "
                       "use another --workdir") from None
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    self._file = f
    return self

  def __exit__(self, *exc: Any) -> None:
    if self._file is not None:
      self._file.close()  # releases the lock
      self._file = None


def data_info(config: ml_collections.ConfigDict) -> Any:
  """``jaxcnn.data.DATASETS[config.data.name]``: classes, image shape, class names."""
  from jaxcnn import data
  return data.DATASETS[config.data.name]


def _restore(ckpt: checkpoint_lib.Checkpointer, state: TrainState, workdir: pathlib.Path,
             verbose: bool, total_steps: int) -> tuple[TrainState, LoopState] | None:
  try:
    restored = ckpt.restore(state)
  except Exception as e:  # orbax's own errors are deep and long: say what it means instead
    raise ValueError(
        f"the checkpoint in {workdir / 'checkpoints'} does not fit this config's model and "
        f"optimiser ({brief(e)}); use a new --workdir, or the config it was "
        "written with") from None
  if restored is None:
    return None
  state, meta = restored
  ls = LoopState.from_meta(meta)
  # Shown even with progress off (``say`` is then log.info): a resumed run must never pass for a
  # fresh one.
  if ls.step >= total_steps or ls.stopped_early:
    (_printer(verbose) if verbose else log.warning)(
        f"this run already finished at step {ls.step} ({ckpt.latest.directory}): nothing to "
        "train; a larger num_epochs continues it, a new --workdir starts another")
  else:
    (_printer(verbose) if verbose else log.warning)(
        f"resuming from step {ls.step} ({ckpt.latest.directory})")
  return state, ls


def _fmt(value: Any) -> str:
  return "-" if value is None else f"{value:.4f}"


def _epoch_line(r: Mapping[str, Any], num_epochs: int) -> str:
  ips = r.get("train_images_per_sec")
  line = (f"epoch {r['epoch']}/{num_epochs} step {r['step']}: "
          f"train loss {_fmt(r['train_loss'])} acc {_fmt(r['train_accuracy'])}")
  if r.get("eval_loss") is not None:
    line += (f" | eval loss {_fmt(r['eval_loss'])} acc {_fmt(r['eval_accuracy'])} "
             f"top5 {_fmt(r['eval_top5'])}")
  return (line + f" | {r['epoch_seconds']:.1f}s"
          + (f", {ips:.0f} img/s" if ips else "")
          + (f", compile {r['compile_seconds']:.1f}s" if "compile_seconds" in r else ""))


def _printer(enabled: bool):
  if not enabled:
    return log.info
  from tqdm.auto import tqdm
  return tqdm.write


def _progress(enabled: bool, total: int, initial: int, epoch: int, num_epochs: int):
  if not enabled:
    return None
  from tqdm.auto import tqdm
  return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{num_epochs}",
              unit="step", leave=False, dynamic_ncols=True)
