"""``train_and_evaluate(config, workdir)``: one resumable run with its workdir, over the loop.

This module owns the workdir: the lock, ``config.json``, the records, the checkpoints, and the
rules for resuming. The training itself is :func:`jaxcnn.train.loop.run_loop`, with two hooks
from here: :class:`CheckpointHook` (what is saved when) and :class:`Recorder` (the files a
person reads).

What a run writes to ``workdir``:

* ``config.json``: the validated config as run, every key included;
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

Several processes (``config.distributed``; docs/multi_process.md): the workdir is one directory
every process sees. Process 0 holds its lock and writes every file above but the checkpoints,
of which every process writes its part through orbax; a refusal by process 0 (a locked
workdir, a checkpoint of another config) stops every process alike, and a lost process stops
the others with one line naming it and the last complete checkpoint
(:mod:`jaxcnn.train.distributed`).

Exact resume: the checkpoint holds the state (params, variable collections, optimizer and
averager state, step, base key) and the :class:`~jaxcnn.train.loop.LoopState`; the loaders'
order and augmentations are a pure function of ``(seed, epoch, step)`` and the dropout key of
step ``n`` is ``fold_in(rng, n)``, so re-running the same command continues the same
trajectory: the final parameters equal those of an uninterrupted run. ``metrics.jsonl`` is
rewritten from the checkpoint's history on resume, so epochs that ran after the last checkpoint
(and were lost with ``kill -9``) are not listed twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxcnn._errors import brief
from jaxcnn.train import average
from jaxcnn.train import checkpoint as checkpoint_lib
from jaxcnn.train import config as config_lib
from jaxcnn.train import distributed, faults
from jaxcnn.train import loop
from jaxcnn.train import optim
from jaxcnn.train import parallel as parallel_lib
from jaxcnn.train.config import Config
from jaxcnn.train.state import InitFn, TrainState
from jaxcnn.train.steps import AXIS_NAME, LogitsFn, LossFn

log = logging.getLogger(__name__)

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


def compute_dtype(name: str, platform: str | None = None) -> Any:
  """``config.dtype`` -> the compute dtype: ``'auto'`` is float32 on a CPU and bfloat16 on a
  TPU or GPU (resolved when the model is built, so a config file never starts JAX itself)."""
  # No float16: without loss scaling its gradients underflow (bfloat16 has float32's range).
  name = config_lib.check_key("dtype", name)
  if name == "auto":
    platform = jax.default_backend() if platform is None else platform
    return jnp.float32 if platform == "cpu" else jnp.bfloat16
  return jnp.dtype(name).type


def make_model(config: Config, num_classes: int):
  """The model named by ``config.model`` (+ ``config.model_kwargs``) in ``config.dtype``.

  Under ``parallel='pmap'`` the factory gets ``axis_name=AXIS_NAME``, so BatchNorm averages its
  batch moments over the devices (the global batch, as on one device and under ``'mesh'``).
  """
  from jaxcnn import models  # pylint: disable=g-import-not-at-top
  config = config_lib.validate(config)
  axis_name = AXIS_NAME if config.parallel == "pmap" else None
  return models.get_model(config.model, num_classes=num_classes,
                          dtype=compute_dtype(config.dtype), axis_name=axis_name,
                          **dict(config.model_kwargs))


def nnx_apply_fn(model: Any, input_shape: tuple[int, ...], state: TrainState, seed: int) -> Any:
  """``model_api='nnx'``: the ``apply_fn`` of ``model``'s NNX twin (:func:`jaxcnn.nnx.from_linen`)
  holding the initial variables of ``state``, so a run computes with the NNX layers from the very
  variables (and to the very checkpoints) of the Linen run with the same seed."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from jaxcnn import nnx as jnnx  # pylint: disable=g-import-not-at-top
  twin = jnnx.from_linen(model, input_shape, rngs=nnx.Rngs(seed),
                         variables=jax.device_get(state.variables))
  return jnnx.linen_view(twin).apply


def data_info(config: Config) -> Any:
  """The dataset's :class:`jaxcnn.data.DatasetInfo`: classes, image shape, class names and
  normalisation statistics (``DATASETS[name]``; for a folder or a tfds dataset read from it,
  :func:`jaxcnn.data.dataset_info`)."""
  from jaxcnn import data  # pylint: disable=g-import-not-at-top
  d = config.data
  if d.name in data.DATASETS:
    return data.DATASETS[d.name]
  return data.dataset_info(d.name, image_folder=d.image_folder, image_size=d.image_size,
                           color_mode=d.color_mode, crop_to_aspect_ratio=d.crop_to_aspect_ratio,
                           interpolation=d.interpolation, train_split=d.train_split,
                           validation_split=d.validation_split, seed=config.seed,
                           data_dir=d.data_dir)


def _any_loader(config: Config, info: Any, split: str, batch_size: int, *, train: bool,
                augment: Any = None, batch_sharding: Any = None, test: bool = False) -> Any:
  """A loader of a folder, a tfds dataset, or any dataset with ``data.loader='host'``
  (:func:`jaxcnn.data.make_dataset_loader`), normalised with ``info``'s statistics.

  With ``data.validation_split`` the train and eval loaders read the two subsets of the train
  split's folder; the test loader reads the whole of its own split folder, which must exist.
  """
  from jaxcnn import data  # pylint: disable=g-import-not-at-top
  d = config.data
  validation_split = d.validation_split
  if validation_split and test:
    folder = data.parse_split(split).name
    if not os.path.isdir(os.path.join(d.image_folder, folder)):
      raise ValueError(f"`data.test_split` (={split!r}) with `data.validation_split` needs a "
                       f"separate test folder {os.path.join(d.image_folder, folder)!r}; the "
                       "validation subset is the eval set")
    validation_split = 0.0
  elif validation_split:
    split = d.train_split  # both subsets come from the train split's folder
  mean, std = info.mean, info.std
  if d.normalize == "unit":
    channels = info.image_shape[-1]
    mean, std = (0.0,) * channels, (1.0,) * channels
  sharding = (batch_sharding if batch_sharding is not None and jax.process_count() == 1
              and d.loader == "device" else None)
  return data.make_dataset_loader(
      d.name, split, batch_size, train=train, seed=config.seed, augment=augment,
      kind=d.loader, image_folder=d.image_folder, image_size=d.image_size,
      color_mode=d.color_mode, crop_to_aspect_ratio=d.crop_to_aspect_ratio,
      interpolation=d.interpolation, validation_split=validation_split, data_dir=d.data_dir,
      mean=mean, std=std, sharding=sharding, process_index=jax.process_index(),
      process_count=jax.process_count())


def _uses_any_loader(config: Config) -> bool:
  from jaxcnn import data  # pylint: disable=g-import-not-at-top
  return config.data.loader == "host" or config.data.name not in data.DATASETS


def _loader_kwargs(config: Config, batch_sharding: Any) -> dict[str, Any]:
  from jaxcnn import data  # pylint: disable=g-import-not-at-top
  count, index = jax.process_count(), jax.process_index()
  common = dict(data_dir=config.data.data_dir, image_folder=config.data.image_folder,
                source=config.data.source, kind=config.data.loader, process_index=index,
                process_count=count, seed=config.seed)
  if config.data.normalize == "unit":
    # x / 255 and nothing else, as the Keras tutorials do: keeps recipes comparable with theirs.
    channels = data.get_info(config.data.name).image_shape[-1]
    common.update(mean=(0.0,) * channels, std=(1.0,) * channels)
  if batch_sharding is not None and count == 1 and common["kind"] == "device":
    common["sharding"] = batch_sharding
  return common


def make_loaders(config: Config, info: Any, *, batch_sharding: Any = None,
                 augment: Any = None) -> tuple[Any, Any]:
  """Train and eval loaders for this process's shard of the data.

  Each loader's ``batch_size`` is this process's share of the global batch. ``batch_sharding``
  (single-process ``'mesh'`` mode): the device-resident loader then makes every batch already
  sharded over the mesh, instead of on one device to be copied out by the train loop.
  ``augment``: a :func:`jaxcnn.data.augment.make_augment` spec replacing ``data.augment``.
  """
  from jaxcnn import data  # pylint: disable=g-import-not-at-top
  count = jax.process_count()
  if _uses_any_loader(config):
    return (_any_loader(config, info, config.data.train_split, config.batch_size // count,
                        train=True, augment=augment or config.data.augment_spec,
                        batch_sharding=batch_sharding),
            _any_loader(config, info, config.data.eval_split, config.eval_batch // count,
                        train=False, batch_sharding=batch_sharding))
  common = _loader_kwargs(config, batch_sharding)
  train = data.make_loader(config.data.name, config.data.train_split, config.batch_size // count,
                           train=True, augment=augment or config.data.augment_spec, **common)
  evaluation = data.make_loader(config.data.name, config.data.eval_split,
                                config.eval_batch // count, train=False, **common)
  return train, evaluation


def make_test_loader(config: Config, info: Any, *, batch_sharding: Any = None) -> Any:
  """The loader of ``config.data.test_split`` (evaluated once, after training), or None."""
  if not config.data.test_split:
    return None
  if _uses_any_loader(config):
    return _any_loader(config, info, config.data.test_split,
                       config.eval_batch // jax.process_count(), train=False,
                       batch_sharding=batch_sharding, test=True)
  from jaxcnn import data  # pylint: disable=g-import-not-at-top
  return data.make_loader(config.data.name, config.data.test_split,
                          config.eval_batch // jax.process_count(), train=False,
                          **_loader_kwargs(config, batch_sharding))


# -- resume rules ---------------------------------------------------------------------------------

# Keys that may change between a run and its resumption without changing what is computed.
# `model_api` too: the NNX model has the Linen model's variables, so their checkpoints are one.
RESUMABLE_CHANGES = ("progress", "log_every_steps", "checkpoint_every_steps", "async_checkpoints",
                     "plots", "checkpoint_every_epoch", "data.test_split", "tensorboard",
                     "model_api",
                     # Where the processes run, as the number of devices: not what is computed.
                     "distributed", "coordinator_address", "num_processes", "process_id",
                     "heartbeat_timeout_seconds")
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


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def check_resumable(config: Config, workdir: str | os.PathLike) -> None:
  """Raises ``ValueError`` when ``workdir`` holds a checkpoint written with another config.

  An exact resume needs the same model, optimiser, data and seed. What may differ: logging and
  checkpoint frequency (:data:`RESUMABLE_CHANGES`); the run's length when the schedule is
  'constant' (any other schedule's curve depends on it); the path of the data, but not a switch
  between tfds and a folder copy. A key the saved ``config.json`` lacks counts as its default.
  The message names every other key that differs, with both values.
  """
  workdir = pathlib.Path(workdir)
  saved = workdir / "config.json"
  ckpts = workdir / "checkpoints"
  if not (saved.is_file() and ckpts.is_dir() and any(ckpts.iterdir())):
    return
  new = _flat(json.loads(config.to_json()))
  defaults = _flat(Config().to_dict())
  old = {**defaults, **_flat(json.loads(saved.read_text()))}
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
    import fcntl  # pylint: disable=g-import-not-at-top
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


# -- the run's hooks ------------------------------------------------------------------------------

def write_text_atomic(path: pathlib.Path, text: str) -> None:
  """Writes ``text`` to ``path`` through ``<path>.tmp`` and a rename: a reader never sees half
  a file, and a failed write (a full disk) leaves the previous file whole and no ``.tmp``; its
  ``OSError`` names ``path``."""
  tmp = path.with_name(path.name + ".tmp")
  try:
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except OSError as e:
    tmp.unlink(missing_ok=True)
    e.filename = str(path)
    raise


def write_jsonl(path: pathlib.Path, records: Iterable[Mapping[str, Any]]) -> None:
  """Writes ``records`` as JSON lines, atomically (see :func:`write_text_atomic`)."""
  write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


class CheckpointHook(loop.Hook):
  """What is saved when: every ``checkpoint_every_steps`` (``on_steps``), the best epoch (with
  ``checkpoint_every_epoch`` or early stopping), and every epoch end with
  ``checkpoint_every_epoch`` (else only the last epoch, or the one that stopped early)."""

  def __init__(self, ckpt: checkpoint_lib.Checkpointer, par: parallel_lib.Parallel,
               config: Config, total_steps: int):
    self.ckpt, self.par, self.total_steps = ckpt, par, total_steps
    self.every_epoch, self.patience = config.checkpoint_every_epoch, config.patience

  def _save(self, ls: loop.LoopState, state: Any, best: bool) -> None:
    self.ckpt.save(ls.step, self.par.checkpoint_state(state), ls.to_meta(), best=best)

  def on_steps(self, ls: loop.LoopState, state: Any) -> None:
    self._save(ls, state, best=False)

  def on_best(self, ls: loop.LoopState, state: Any) -> None:
    if self.every_epoch or self.patience:
      self._save(ls, state, best=True)

  def on_epoch_end(self, ls: loop.LoopState, record: dict[str, Any], ev: Any,
                   state: Any) -> None:
    if self.every_epoch or ls.step >= self.total_steps or ls.stopped_early:
      self._save(ls, state, best=False)


class Recorder(loop.Hook):
  """The files a person reads, written by process 0: ``metrics.jsonl`` (one line per epoch),
  TensorBoard scalars, ``curves.png`` and ``confusion.png``."""

  def __init__(self, workdir: pathlib.Path, config: Config, info: Any, history: list[Any]):
    self.workdir, self.info, self.plots = workdir, info, config.plots
    write_jsonl(workdir / "metrics.jsonl", history)
    self.board = None
    if config.tensorboard:
      from jaxcnn.train.tensorboard import TensorBoardWriter  # pylint: disable=g-import-not-at-top
      self.board = TensorBoardWriter(workdir / "tensorboard", history)

  def on_epoch_end(self, ls: loop.LoopState, record: dict[str, Any], ev: Any,
                   state: Any) -> None:
    path = self.workdir / "metrics.jsonl"
    try:
      with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    except OSError as e:  # a full disk: say which file (a resume rewrites it whole)
      e.filename = e.filename or str(path)
      raise
    if self.board is not None:
      self.board.write(record)
    if self.plots and ev is not None:
      from jaxcnn import plots  # pylint: disable=g-import-not-at-top
      plots.plot_curves(ls.history, self.workdir / "curves.png")
      plots.plot_confusion(ev["confusion"], self.info.class_names,
                           self.workdir / "confusion.png",
                           title=f"eval confusion, epoch {record['epoch']}")

  def close(self) -> None:
    if self.board is not None:
      self.board.close()


# -- the run --------------------------------------------------------------------------------------

def train_and_evaluate(config: Any, workdir: str | os.PathLike, *,
                       tx: optim.TxOrFactory | None = None, init_fn: InitFn | None = None,
                       averager: average.Averager | None = None, loss_fn: LossFn | None = None,
                       logits_fn: LogitsFn | None = None, augment: Any = None) -> TrainResult:
  """Trains ``config.model`` on ``config.data``, evaluating every epoch; resumes from workdir.

  Args:
    config: a ``ConfigDict`` (``jaxcnn.configs.<name>.get_config()``), a mapping of keys, or a
      validated :class:`~jaxcnn.train.config.Config`; every key is documented in
      :mod:`jaxcnn.train.config`.
    workdir: where checkpoints and records go. If it holds a checkpoint, training resumes from
      it and ends exactly where an uninterrupted run would.
    tx: the optimiser as a value: an optax transformation, or a factory ``(params, total_steps,
      steps_per_epoch) -> tx`` (default: the one ``config.optimizer`` names, or the recipe's).
    init_fn: ``init_fn(model, key, sample_batch) -> variables`` replacing ``model.init`` (e.g.
      weights set from data); ``sample_batch`` is the first train batch.
    averager: an EMA or lookahead :class:`~jaxcnn.train.average.Averager` (default: from
      ``config.ema``); evaluation uses its averages.
    loss_fn: ``loss_fn(logits, batch) -> [B]`` losses for :func:`~jaxcnn.train.train_step`.
    logits_fn: ``logits_fn(apply, images) -> logits`` for evaluation (e.g. ``tta_logits``).
    augment: a :func:`jaxcnn.data.augment.make_augment` spec replacing ``data.augment``.

  A config that names a recipe (``config.recipe.name``) is trained with that recipe's hooks:
  ``train_and_evaluate(config, workdir, **jaxcnn.recipes.hooks(config))`` (what the CLI does);
  without any hook given, it is an error rather than a run of the plain defaults.

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
  config = config_lib.validate(config)
  name = config.recipe.get("name")
  if name and all(h is None for h in (tx, init_fn, loss_fn, logits_fn, augment)):
    raise ValueError(f"`recipe.name` (={name!r}) names a recipe, but none of its hooks were "
                     "given: train_and_evaluate(config, workdir, "
                     "**jaxcnn.recipes.hooks(config))")
  if distributed.initialize(config):
    config_lib.check_batch_sizes(config)  # left by validate until the devices were known
  par = parallel_lib.Parallel(config.parallel)
  workdir = pathlib.Path(workdir)
  is_main = distributed.is_main()
  workdir.mkdir(parents=True, exist_ok=True)
  with contextlib.ExitStack() as stack:
    stack.enter_context(distributed.watch(config, lambda: resume_hint(workdir)))
    # The workdir belongs to the job: process 0 locks and checks it, and its verdict (a second
    # job on this workdir, a checkpoint of another config) stops every process alike.
    refused = None
    if is_main:
      try:
        stack.enter_context(WorkdirLock(workdir))
        check_resumable(config, workdir)
        write_text_atomic(workdir / "config.json", config.to_json(indent=2) + "\n")
      except ValueError as e:
        refused = str(e)
    refused = distributed.broadcast_text(refused)
    if refused is not None:
      raise ValueError(refused)
    return _run(config, workdir, par, is_main, tx=tx, init_fn=init_fn, averager=averager,
                loss_fn=loss_fn, logits_fn=logits_fn, augment=augment)


def resume_hint(workdir: pathlib.Path) -> str:
  """Where a stopped run resumes: its last complete checkpoint, if any."""
  latest = workdir / "checkpoints" / "latest"
  steps = checkpoint_lib.completed_steps(latest)
  count = jax.process_count()
  every = f"all {count} processes" if count > 1 else "it"
  if not steps:
    return f"no checkpoint was complete yet: starting {every} again starts the run over"
  return (f"the last complete checkpoint is step {steps[-1]} ({latest / str(steps[-1])}): start "
          f"{every} again with the same command to resume from it")


def _run(config: Config, workdir: pathlib.Path, par: parallel_lib.Parallel, is_main: bool,
         **hooks: Any) -> TrainResult:
  """The run itself, once the workdir is locked and checked (see :func:`train_and_evaluate`),
  inside the guard that turns its faults into one-line errors (:mod:`jaxcnn.train.faults`: a
  failed write, a stop signal, out of memory, a vanished workdir)."""
  with faults.RunGuard(workdir, config, is_main=is_main) as guard:
    return _train(config, workdir, par, is_main, guard, **hooks)


def _train(config: Config, workdir: pathlib.Path, par: parallel_lib.Parallel, is_main: bool,
           guard: faults.RunGuard, *, tx: Any, init_fn: Any, averager: Any, loss_fn: Any,
           logits_fn: Any, augment: Any) -> TrainResult:
  info = data_info(config)
  model = make_model(config, info.num_classes)
  input_shape = (1, *info.image_shape)
  if is_main:
    from jaxcnn import inspect  # pylint: disable=g-import-not-at-top
    summary = inspect.summary(model, input_shape, print_fn=None)
    write_text_atomic(workdir / "summary.txt", str(summary) + "\n")

  sharding = par.batch_sharding if par.mode == "mesh" else None
  train_loader, eval_loader = make_loaders(config, info, batch_sharding=sharding,
                                           augment=augment)
  if train_loader.steps_per_epoch < 1:
    raise ValueError(f"the train split {config.data.train_split!r} has fewer examples "
                     f"({train_loader.num_examples}) than one batch (={config.batch_size})")
  verbose = config.progress and is_main
  settings = loop.LoopSettings.from_config(config, train_loader.steps_per_epoch,
                                           config.batch_size, verbose=verbose)
  state = loop.init_state(model, config, input_shape, train_loader, settings, tx=tx,
                          init_fn=init_fn, averager=averager)
  if config.model_api == "nnx":
    state = state.replace(apply_fn=nnx_apply_fn(model, input_shape, state, config.seed))

  ckpt = checkpoint_lib.Checkpointer(workdir / "checkpoints", async_save=config.async_checkpoints)
  recorder = None
  try:
    restored = _restore(ckpt, state, workdir, verbose, settings.total_steps,
                        sharding=par.checkpoint_sharding, is_main=is_main)
    state, ls = restored if restored is not None else (state, loop.LoopState())
    # The watch first: nothing is written once the workdir has gone.
    hooks: list[loop.Hook] = [guard.watch,
                              CheckpointHook(ckpt, par, config, settings.total_steps)]
    if is_main:
      recorder = Recorder(workdir, config, info, ls.history)
      hooks.append(recorder)
    engine = loop.make_engine(par, settings, train_loader, eval_loader,
                              label_smoothing=config.label_smoothing, loss_fn=loss_fn,
                              logits_fn=logits_fn, stop=guard.stop)
    try:
      state = loop.run_loop(engine, par.put_state(state), ls, hooks)
    except loop.NonFiniteError as e:
      raise _with_checkpoint(e, ckpt) from None
    if guard.stop.requested:  # during the last evaluation: the final checkpoint is written
      raise guard.stop.stopped(ls.step)
    final = par.get_state(state)
    if settings.patience and ls.best_epoch > 0 and ckpt.latest_step(best=True) is not None:
      final = faults.restore_best_or_keep(ckpt, final,
                                          say=engine.say if verbose else log.warning,
                                          sharding=par.checkpoint_sharding)
    test = None
    test_loader = make_test_loader(config, info, batch_sharding=sharding)
    if test_loader is not None:
      test = loop.test_record(
          loop.evaluate_loader(engine.p_eval, par, par.put_state(final), test_loader), final)
      if is_main:
        (workdir / "test_metrics.json").write_text(json.dumps(test, indent=1) + "\n")
      if recorder is not None and recorder.board is not None:
        recorder.board.write({"step": ls.step, **test})
      if is_main:
        (engine.say if verbose else log.warning)(loop.test_line(test))
  finally:
    ckpt.close()  # waits for pending async saves, also when the run stops on an error
    if recorder is not None:
      recorder.close()
  return TrainResult(state=final, history=ls.history, stopped_early=ls.stopped_early,
                     best_epoch=ls.best_epoch, test_metrics=test)


def _with_checkpoint(e: loop.NonFiniteError,
                     ckpt: checkpoint_lib.Checkpointer) -> loop.NonFiniteError:
  """The loop's non-finite error, told where the last good checkpoint is."""
  ckpt.wait()
  last = ckpt.latest_step()
  if last is None:
    where = ("no checkpoint was saved before it; lower `learning_rate` and start again (the "
             "workdir holds no state to resume)")
  else:
    where = (f"last good checkpoint: step {last} in {ckpt.latest.directory}; re-run with a "
             "smaller `learning_rate` to resume from it")
  return loop.NonFiniteError(f"{e}; {where}", step=e.step, last_checkpoint_step=last)


def _restore(ckpt: checkpoint_lib.Checkpointer, state: TrainState, workdir: pathlib.Path,
             verbose: bool, total_steps: int, *, sharding: Any = None,
             is_main: bool = True) -> tuple[TrainState, loop.LoopState] | None:
  # Shown even with progress off (then as a warning): a resumed run must never pass for a fresh
  # one. Once per job: by process 0.
  say = loop.printer(verbose) if verbose else log.warning if is_main else log.info
  try:
    # The newest checkpoint that reads back; a damaged one is said so, and set aside.
    restored = faults.restore_newest_intact(ckpt, state, say=say, sharding=sharding)
  except checkpoint_lib.CheckpointMismatchError as e:
    raise ValueError(
        f"the checkpoint in {workdir / 'checkpoints'} does not fit this config's model and "
        f"optimiser ({brief(e)}); use a new --workdir, or the config it was "
        "written with") from None
  if restored is None:
    return None
  state, meta, where = restored
  ls = loop.LoopState.from_meta(meta)
  if ls.step >= total_steps or ls.stopped_early:
    say(f"this run already finished at step {ls.step} ({where.parent}): nothing to "
        "train; a larger num_epochs continues it, a new --workdir starts another")
  else:
    say(f"resuming from step {ls.step} ({where.parent})")
  return state, ls
