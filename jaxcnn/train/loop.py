"""``train_and_evaluate(config, workdir)``: the whole training run, resumable.

Reading order: :func:`validate_config` (every config value checked before any data is read),
:func:`train_and_evaluate` (set-up, resume, the epoch loop), then the helpers.

What a run writes to ``workdir``:

* ``config.json``: the config as run;
* ``summary.txt``: the model summary (:func:`jaxcnn.shapes.summary`);
* ``metrics.jsonl``: one JSON object per epoch: ``epoch, step, train_loss, train_accuracy,
  train_grad_norm, train_param_norm, train_update_norm`` (epoch means), ``eval_loss,
  eval_accuracy, eval_top5, epoch_seconds, train_seconds, eval_seconds,
  train_images_per_sec`` (excluding the run's first step) and ``compile_seconds`` (the first
  step's wall time, compilation included) on the first epoch a process runs;
* ``curves.png`` and ``confusion.png``, redrawn after every epoch;
* ``checkpoints/latest`` and ``checkpoints/best`` (see :mod:`jaxcnn.train.checkpoint`).

Exact resume: the checkpoint holds the state (params, batch stats, optimizer state, step, base
key) and the loop's bookkeeping; the loaders' order is a pure function of ``(seed, epoch,
step)`` and the dropout key of step ``n`` is ``fold_in(rng, n)``, so re-running the same command
continues the same trajectory: the final parameters equal those of an uninterrupted run.
``metrics.jsonl`` is rewritten from the checkpoint's history on resume, so epochs that ran after
the last checkpoint (and were lost with ``kill -9``) are not listed twice.

Non-finite guard: every step returns a ``finite`` flag; the host reads the flags of the steps
since the last check at each log point (every ``log_every_steps``) and before every checkpoint,
so there is no per-step host sync, and a non-finite state is never saved.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxcnn import metrics as metrics_lib
from jaxcnn._errors import brief
from jaxcnn.train import checkpoint as checkpoint_lib
from jaxcnn.train._config import cfg_get, is_number
from jaxcnn.train import optim
from jaxcnn.train import parallel as parallel_lib
from jaxcnn.train.state import TrainState, create_train_state
from jaxcnn.train.steps import eval_step, train_step

log = logging.getLogger(__name__)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
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
  """
  state: TrainState
  history: list[dict[str, Any]]
  stopped_early: bool
  best_epoch: int


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
  for key, what in (("label_smoothing", ""), ("ema", " (0 = off)")):
    value = cfg_get(config, key, 0.0)
    if not is_number(value) or not 0.0 <= value < 1.0:
      raise ValueError(f"`{key}` (={value!r}) must be a number in [0, 1){what}")
  for key in ("patience", "checkpoint_every_steps", "log_every_steps"):
    value = cfg_get(config, key, 0)
    if isinstance(value, bool):
      raise ValueError(f"`{key}` (={value!r}) must be an int >= 0")
  for key in ("patience", "checkpoint_every_steps", "log_every_steps"):
    value = cfg_get(config, key, 0)
    if not isinstance(value, int) or value < 0:
      raise ValueError(f"`{key}` (={value!r}) must be an int >= 0")
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


def make_model(config: ml_collections.ConfigDict, num_classes: int):
  """The model named by ``config.model`` (+ ``config.model_kwargs``) in ``config.dtype``."""
  from jaxcnn import models
  kwargs = dict(cfg_get(config, "model_kwargs", None) or {})
  return models.get_model(config.model, num_classes=num_classes,
                          dtype=DTYPES[cfg_get(config, "dtype", "float32")], **kwargs)


# Keys that may change between a run and its resumption without changing what is computed.
RESUMABLE_CHANGES = ("progress", "log_every_steps", "checkpoint_every_steps", "async_checkpoints")
# The run's length sets the learning-rate curve of every schedule but 'constant'.
LENGTH_KEYS = ("num_epochs", "num_train_steps")
# The data may move (another path to the same copy), but tfds and a folder copy order the
# examples differently, so a split would hold other images: no switching between them.
DATA_PATH_KEYS = ("data.data_dir", "data.image_folder")


def _may_change(key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
  if key in RESUMABLE_CHANGES:
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


def make_loaders(config: ml_collections.ConfigDict, info: Any, *,
                 batch_sharding: Any = None) -> tuple[Any, Any]:
  """Train and eval loaders for this process's shard of the data.

  Each loader's ``batch_size`` is this process's share of the global batch. ``batch_sharding``
  (single-process ``'mesh'`` mode): the device-resident loader then makes every batch already
  sharded over the mesh, instead of on one device to be copied out by the train loop.
  """
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
  eval_batch = (cfg_get(config, "eval_batch_size", 0) or config.batch_size) // count
  train = data.make_loader(config.data.name, config.data.train_split, config.batch_size // count,
                           train=True, augment=_augment_spec(config),
                           **common)
  evaluation = data.make_loader(config.data.name, config.data.eval_split, eval_batch,
                                train=False, **common)
  return train, evaluation


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
        where = ""
        if self.ckpt is not None:
          self.ckpt.wait()
          last = self.ckpt.latest_step()
          where = f" in {self.ckpt.latest.directory}"
        raise NonFiniteError(
            f"non-finite loss or gradient at train step {step_index} "
            f"(loss={float(m['loss'])}, grad_norm={float(m['grad_norm'])}); training stopped. "
            f"Last good checkpoint: step {last}{where}",
            step=step_index, last_checkpoint_step=last)
      acc.add_means({k: v for k, v in m.items() if k != "finite"}, weight)
    return {k: float(v) for k, v in host[-1].items()}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike
                       ) -> TrainResult:
  """Trains ``config.model`` on ``config.data``, evaluating every epoch; resumes from workdir.

  Args:
    config: see ``experiments/configs/*.py`` for the keys and their meaning.
    workdir: where checkpoints and records go. If it holds a checkpoint, training resumes from
      it and ends exactly where an uninterrupted run would.

  Returns:
    a :class:`TrainResult`.

  Raises:
    ValueError: a bad config value (before any data is read).
    NonFiniteError: the loss or gradient became non-finite (a ``FloatingPointError``).
  """
  validate_config(config)
  parallel_lib.maybe_initialize_distributed(config)
  par = parallel_lib.Parallel(config.parallel)
  workdir = pathlib.Path(workdir)
  is_main = jax.process_index() == 0
  workdir.mkdir(parents=True, exist_ok=True)
  check_resumable(config, workdir)
  if is_main:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")

  from jaxcnn import data, plots, shapes
  info = data.DATASETS[config.data.name]
  model = make_model(config, info.num_classes)
  input_shape = (1, *info.image_shape)
  if is_main:
    summary = shapes.summary(model, input_shape, print_fn=None)
    (workdir / "summary.txt").write_text(str(summary) + "\n")

  train_loader, eval_loader = make_loaders(
      config, info, batch_sharding=par.batch_sharding if par.mode == "mesh" else None)
  steps_per_epoch = train_loader.steps_per_epoch
  if steps_per_epoch < 1:
    raise ValueError(f"the train split {config.data.train_split!r} has fewer examples "
                     f"({train_loader.num_examples}) than one batch (={config.batch_size})")
  total_steps = (config.num_train_steps if config.num_train_steps > 0
                 else config.num_epochs * steps_per_epoch)
  num_epochs = math.ceil(total_steps / steps_per_epoch)

  tx = optim.make_optimizer(config, total_steps, steps_per_epoch)
  ema_decay = float(cfg_get(config, "ema", 0.0))
  state = create_train_state(model, jax.random.PRNGKey(config.seed), input_shape, tx,
                             ema=ema_decay > 0)

  ckpt = checkpoint_lib.Checkpointer(workdir / "checkpoints",
                                     async_save=bool(cfg_get(config, "async_checkpoints", True)))
  try:
    restored = ckpt.restore(state)
  except Exception as e:  # orbax's own errors are deep and long: say what it means instead
    ckpt.close()
    raise ValueError(
        f"the checkpoint in {workdir / 'checkpoints'} does not fit this config's model and "
        f"optimiser ({brief(e)}); use a new --workdir, or the config it was "
        "written with") from None
  meta: dict[str, Any] = {"step": 0, "history": [], "best_eval_loss": None, "best_epoch": -1,
                          "bad_epochs": 0, "stopped_early": False, "partial": None}
  verbose = bool(cfg_get(config, "progress", True)) and is_main
  say = _printer(verbose)
  if restored is not None:
    state, meta = restored
    # Shown even with progress off (``say`` is then log.info): a resumed run must never pass
    # for a fresh one.
    resumed = say if verbose else log.warning
    resumed(f"resuming from step {meta['step']} ({ckpt.latest.directory})")
  history: list[dict[str, Any]] = list(meta["history"])
  if is_main:
    _write_jsonl(workdir / "metrics.jsonl", history)

  patience = int(cfg_get(config, "patience", 0))
  min_delta = float(cfg_get(config, "early_stopping_min_delta", 0.0))
  log_every = int(cfg_get(config, "log_every_steps", 50)) or steps_per_epoch
  ckpt_every = int(cfg_get(config, "checkpoint_every_steps", 0))
  images_per_step = config.batch_size

  p_train = par.compile_train(train_step,
                              label_smoothing=float(cfg_get(config, "label_smoothing", 0.0)),
                              ema_decay=ema_decay)
  p_eval = par.compile_eval(eval_step)
  state = par.put_state(state)
  step = int(meta["step"])
  guard = _Guard(par, ckpt)
  compile_seconds = None

  def save(best: bool = False) -> None:
    ckpt.save(step, par.get_state(state), meta, best=best)

  try:
    for epoch in range(step // steps_per_epoch, num_epochs):
      if meta["stopped_early"] or step >= total_steps:
        break
      start_step = step % steps_per_epoch
      acc = (metrics_lib.Accumulator.from_state_dict(meta["partial"])
             if start_step and meta.get("partial") else metrics_lib.Accumulator())
      steps_this_epoch = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
      bar = _progress(verbose, steps_this_epoch, start_step, epoch, num_epochs)
      t_epoch = t_timed = time.perf_counter()
      first_step_seconds = 0.0
      steps_run = 0
      t_log, steps_at_log = time.perf_counter(), 0
      for batch in train_loader.epoch(epoch, start_step):
        if step >= total_steps:
          break
        t0 = time.perf_counter()
        state, m = p_train(state, par.put_batch(batch))
        guard.add(step, m)
        step += 1
        steps_run += 1
        if compile_seconds is None:
          jax.block_until_ready(m)
          t_timed = time.perf_counter()
          compile_seconds = first_step_seconds = t_timed - t0
          t_log, steps_at_log = time.perf_counter(), steps_run
        if bar is not None:
          bar.update(1)
        if step % log_every == 0:
          last = guard.flush(acc, images_per_step)
          now = time.perf_counter()
          if bar is not None and last is not None:
            ips = (steps_run - steps_at_log) * images_per_step / max(now - t_log, 1e-9)
            bar.set_postfix(loss=f"{last['loss']:.4f}", acc=f"{last['accuracy']:.3f}",
                            img_s=f"{ips:.0f}", refresh=False)
          t_log, steps_at_log = now, steps_run
        end_of_epoch = step % steps_per_epoch == 0 or step >= total_steps
        if ckpt_every and step % ckpt_every == 0 and not end_of_epoch:
          guard.flush(acc, images_per_step)  # never save a state we have not checked
          meta.update(step=step, history=history, partial=acc.state_dict())
          save()
      guard.flush(acc, images_per_step)
      jax.block_until_ready(state)
      t_train_end = time.perf_counter()
      train_seconds = t_train_end - t_epoch
      if bar is not None:
        bar.close()

      t_eval = time.perf_counter()
      ev = evaluate_loader(p_eval, par, state, eval_loader)
      eval_seconds = time.perf_counter() - t_eval
      tr = acc.compute()
      timed_steps = steps_run - (1 if first_step_seconds else 0)
      record = {
          "epoch": epoch + 1,
          "step": step,
          "train_loss": tr.get("loss"),
          "train_accuracy": tr.get("accuracy"),
          "train_grad_norm": tr.get("grad_norm"),
          "train_param_norm": tr.get("param_norm"),
          "train_update_norm": tr.get("update_norm"),
          "eval_loss": ev["loss"],
          "eval_accuracy": ev["accuracy"],
          "eval_top5": ev["top5"],
          "epoch_seconds": time.perf_counter() - t_epoch,
          "train_seconds": train_seconds,
          "eval_seconds": eval_seconds,
          # Steady state: on the run's first epoch the clock starts once the first step is
          # done, so compilation (reported on its own) and loader warm-up are excluded.
          "train_images_per_sec": (timed_steps * images_per_step
                                   / max(t_train_end - t_timed, 1e-9)
                                   if timed_steps else None),
      }
      if first_step_seconds:
        record["compile_seconds"] = first_step_seconds
      history.append(record)

      improved = (meta["best_eval_loss"] is None
                  or ev["loss"] < meta["best_eval_loss"] - min_delta)
      if improved:
        meta.update(best_eval_loss=ev["loss"], best_epoch=epoch + 1, bad_epochs=0)
      else:
        meta["bad_epochs"] += 1
      if patience and meta["bad_epochs"] >= patience:
        meta["stopped_early"] = True
      meta.update(step=step, history=history, partial=None)
      if improved:
        save(best=True)
      save()
      if is_main:
        _append_jsonl(workdir / "metrics.jsonl", record)
        plots.plot_curves(history, workdir / "curves.png")
        plots.plot_confusion(ev["confusion"], info.class_names, workdir / "confusion.png",
                             title=f"eval confusion, epoch {epoch + 1}")
      say(_epoch_line(record, num_epochs))
      if meta["stopped_early"]:
        say(f"early stopping: eval loss has not improved for {patience} epochs; "
            f"restoring epoch {meta['best_epoch']}")

    final = par.get_state(state)
    if patience and meta["best_epoch"] > 0 and ckpt.latest_step(best=True) is not None:
      final, _ = ckpt.restore(final, best=True)
  finally:
    ckpt.close()  # waits for pending async saves, also when the run stops on an error
  return TrainResult(state=final, history=history, stopped_early=bool(meta["stopped_early"]),
                     best_epoch=int(meta["best_epoch"]))


def _epoch_line(r: Mapping[str, Any], num_epochs: int) -> str:
  ips = r.get("train_images_per_sec")
  return (f"epoch {r['epoch']}/{num_epochs} step {r['step']}: "
          f"train loss {r['train_loss']:.4f} acc {r['train_accuracy']:.4f} | "
          f"eval loss {r['eval_loss']:.4f} acc {r['eval_accuracy']:.4f} "
          f"top5 {r['eval_top5']:.4f} | {r['epoch_seconds']:.1f}s"
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
