"""The training loop: epochs, evaluation, early stopping and the hooks callers plug in.

One loop serves every caller: :func:`jaxcnn.train.train_and_evaluate` (``run.py``: the workdir,
checkpoints, metrics files), :func:`jaxcnn.train.fit` (``keras.py``: in memory, Keras-style
callbacks) and the speed recipe's timed runner (:mod:`jaxcnn.recipes.airbench`). Each builds an
:class:`Engine` (:func:`make_engine`: the compiled steps, the loaders, the settings), an initial
state and a :class:`LoopState`, then calls :func:`run_loop` with its :class:`Hook` s.

Reading order: :class:`LoopSettings` (the loop's numbers, from a validated
:class:`~jaxcnn.train.config.Config`), :class:`LoopState` (the bookkeeping that is checkpointed),
:func:`init_state`, :func:`make_engine`, then :func:`train_epoch`, :func:`evaluate_loader`,
:func:`update_early_stopping` and :func:`run_loop`, which strings them together.

Hooks are told, in this order, per epoch: ``on_steps`` at every ``checkpoint_every_steps``
boundary inside an epoch (after the pending metrics were checked), then, at the epoch's end (its
record already in ``ls.history``), ``on_best`` when the eval loss reached a new minimum, then
``on_epoch_end``; ``on_steps`` also at the step where the run stops on a signal (see
:class:`Engine`), before the loop raises the stop's exception. They get the *placed* state
(device arrays, possibly replicated): copy what they keep (``Parallel.get_state`` +
``jax.device_get``), since the next step may reuse the buffers.

Non-finite guard: every step returns a ``finite`` flag; the host reads the flags of the steps
since the last check at each log point (every ``log_every_steps``) and before any ``on_steps``
hook, so there is no per-step host sync and a hook never sees a state that was not checked. A
non-finite step raises :class:`NonFiniteError` naming it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import metrics as metrics_lib
from jaxcnn.cpu import tuning as cpu_tuning
from jaxcnn.train import average
from jaxcnn.train import distributed
from jaxcnn.train import optim
from jaxcnn.train import parallel as parallel_lib
from jaxcnn.train.config import Config
from jaxcnn.train.state import InitFn, TrainState, create_train_state
from jaxcnn.train.steps import LogitsFn, LossFn, eval_step, train_step

log = logging.getLogger(__name__)


class NonFiniteError(FloatingPointError):
  """Training produced a non-finite loss or gradient; the message names the step."""

  def __init__(self, message: str, *, step: int, last_checkpoint_step: int | None = None):
    super().__init__(message)
    self.step = step
    self.last_checkpoint_step = last_checkpoint_step


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


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """The loop's numbers (:meth:`LoopSettings.from_config`).

  ``eval_every``: evaluate after every k-th epoch (and always after the last); ``ckpt_every``:
  call the ``on_steps`` hooks every k steps inside an epoch (0: never); ``patience``: stop after
  that many evaluations without a new best (0: never).
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
  verbose: bool = True

  @classmethod
  def from_config(cls, config: Config, steps_per_epoch: int, images_per_step: int, *,
                  verbose: bool) -> "LoopSettings":
    total = config.total_steps(steps_per_epoch)
    return cls(
        steps_per_epoch=steps_per_epoch, total_steps=total,
        num_epochs=math.ceil(total / steps_per_epoch), images_per_step=images_per_step,
        log_every=config.log_every_steps or steps_per_epoch,
        ckpt_every=config.checkpoint_every_steps, eval_every=config.eval_every_epochs,
        patience=config.patience, min_delta=config.early_stopping_min_delta, verbose=verbose)


class Hook:
  """What a caller plugs into :func:`run_loop`; override the methods you need (module
  docstring: when each is called). ``ls`` is the live :class:`LoopState`."""

  def on_steps(self, ls: LoopState, state: Any) -> None:
    pass

  def on_best(self, ls: LoopState, state: Any) -> None:
    pass

  def on_epoch_end(self, ls: LoopState, record: dict[str, Any], ev: dict[str, Any] | None,
                   state: Any) -> None:
    pass


def make_averager(config: Config) -> average.Averager | None:
  """The averager ``config`` asks for: ``ema`` (decay; 0 = off), ``ema_warmup``,
  ``ema_every``."""
  if not config.ema:
    return None
  return average.ema(config.ema, warmup=config.ema_warmup, every=config.ema_every)


def init_state(model: Any, config: Config, input_shape: tuple[int, ...], train_loader: Any,
               settings: LoopSettings, *, tx: optim.TxOrFactory | None = None,
               init_fn: InitFn | None = None,
               averager: average.Averager | None = None) -> TrainState:
  """The initial canonical state of a run: ``create_train_state`` with the run's hooks.

  ``init_fn(model, key, sample_batch)`` gets the first global batch of the train loader's epoch
  0 (a pure function of the seed, like every batch; on several processes their rows joined, so
  every process initialises alike and as one process would). ``tx``: see
  :func:`jaxcnn.train.optim.resolve_optimizer`; ``averager`` defaults to :func:`make_averager`.
  """
  sample = None
  if init_fn is not None:
    sample = distributed.allgather_rows(jax.device_get(next(iter(train_loader.epoch(0)))))
  return create_train_state(
      model, jax.random.PRNGKey(config.seed), input_shape,
      optim.resolve_optimizer(tx, config, settings.total_steps, settings.steps_per_epoch),
      averager=averager if averager is not None else make_averager(config),
      init_fn=init_fn, sample_batch=sample)


def evaluate_loader(p_eval: Any, par: parallel_lib.Parallel, state: Any,
                    loader: Any) -> dict[str, Any]:
  """Runs ``p_eval`` over one pass of ``loader``; returns means and the confusion matrix.

  Sums stay on device until the end: one host transfer per evaluation.
  """
  total = None
  for batch in loader.epoch(0):
    sums = p_eval(state, par.put_batch(batch))
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    par.pace(total)
  if total is None:
    raise ValueError("the eval loader yielded no batch")
  acc = metrics_lib.Accumulator()
  acc.add_sums(par.metrics_to_host(total))
  return acc.compute()


class Guard:
  """Pending per-step metrics (on device) and the host-side non-finite check."""

  def __init__(self, par: parallel_lib.Parallel):
    self.par = par
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
        raise NonFiniteError(
            f"non-finite loss or gradient at train step {step_index} "
            f"(loss={float(m['loss'])}, grad_norm={float(m['grad_norm'])}); training stopped",
            step=step_index)
      acc.add_means({k: v for k, v in m.items() if k != "finite"}, weight)
    return {k: float(v) for k, v in host[-1].items()}


@dataclasses.dataclass
class Engine:
  """The compiled steps, loaders and settings of one run (what :func:`run_loop` reads).

  ``stop``: asked after every step, ``stop(step) -> bool``; True means save and stop there (a
  :class:`jaxcnn.train.faults.StopRequest`, which also makes the exception to raise with
  ``stop.stopped(step)``). A host-side flag: it adds no device sync to the step. A stop due at
  an epoch's last step waits for that epoch's evaluation and hooks.
  """
  par: parallel_lib.Parallel
  p_train: Callable[..., Any]
  p_eval: Callable[..., Any]
  train_loader: Any
  eval_loader: Any
  settings: LoopSettings
  guard: Guard
  say: Callable[[str], None]
  compile_seconds: float | None = None
  stop: Any = None
  stop_step: int | None = None


def make_engine(par: parallel_lib.Parallel, settings: LoopSettings, train_loader: Any,
                eval_loader: Any, *, label_smoothing: float = 0.0, loss_fn: LossFn | None = None,
                logits_fn: LogitsFn | None = None, stop: Any = None) -> Engine:
  """Compiles :func:`train_step` / :func:`eval_step` with the run's hooks for ``par``'s mode
  (``stop``: see :class:`Engine`)."""
  p_train = par.compile_train(train_step, label_smoothing=float(label_smoothing),
                              loss_fn=loss_fn)
  p_eval = par.compile_eval(eval_step, logits_fn=logits_fn)
  return Engine(par, p_train, p_eval, train_loader, eval_loader, settings, Guard(par),
                printer(settings.verbose), stop=stop)


def train_epoch(engine: Engine, state: Any, ls: LoopState, epoch: int,
                hooks: Sequence[Hook] = ()) -> tuple[Any, dict[str, Any]]:
  """Runs epoch ``epoch`` from step ``ls.step`` (mid-epoch after a resume) to its end.

  Calls ``hook.on_steps`` at every ``ckpt_every`` step that is not an epoch end, after the
  pending metrics were checked. Returns the placed state and the epoch's train record (``epoch,
  step, train_*``, ``train_seconds``, ``train_images_per_sec``, maybe ``compile_seconds``);
  ``ls.step`` and ``ls.partial`` advance with it.
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
    engine.par.pace(m)
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
    saved = bool(st.ckpt_every and ls.step % st.ckpt_every == 0 and not end_of_epoch and hooks)
    if saved:
      guard.flush(acc, st.images_per_step)  # never hand a hook a state we have not checked
      ls.partial = acc.state_dict()
      for hook in hooks:
        hook.on_steps(ls, state)
    if engine.stop is not None and engine.stop(ls.step):
      engine.stop_step = ls.step
      if end_of_epoch:
        break  # run_loop stops once this epoch is evaluated and its hooks have run
      guard.flush(acc, st.images_per_step)
      ls.partial = acc.state_dict()
      if bar is not None:
        bar.close()
      _stop(engine, ls, state, [] if saved else hooks)
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


def run_loop(engine: Engine, state: Any, ls: LoopState, hooks: Sequence[Hook] = ()) -> Any:
  """Epochs from ``ls.step`` to the end (or an early stop); returns the placed final state.

  Each epoch: :func:`train_epoch`; :func:`evaluate_loader` if due (every ``eval_every`` epochs
  and the last; never without an eval loader); :func:`update_early_stopping`; the record
  appended to ``ls.history``; the hooks (``on_best`` for a new best, then ``on_epoch_end``);
  one printed line.
  """
  st = engine.settings
  for epoch in range(ls.step // st.steps_per_epoch, st.num_epochs):
    if ls.stopped_early or ls.step >= st.total_steps:
      break
    t_epoch = time.perf_counter()
    state, record = train_epoch(engine, state, ls, epoch, hooks)
    last_epoch = ls.step >= st.total_steps
    ev, t_eval = None, time.perf_counter()
    if engine.eval_loader is not None and ((epoch + 1) % st.eval_every == 0 or last_epoch):
      ev = evaluate_loader(engine.p_eval, engine.par, state, engine.eval_loader)
    record.update(eval_loss=ev and ev["loss"], eval_accuracy=ev and ev["accuracy"],
                  eval_top5=ev and ev["top5"], eval_seconds=time.perf_counter() - t_eval,
                  epoch_seconds=time.perf_counter() - t_epoch)
    improved = ev is not None and update_early_stopping(ls, epoch + 1, ev["loss"], st)
    ls.history.append(record)
    for hook in hooks:
      if improved:
        hook.on_best(ls, state)
    for hook in hooks:
      hook.on_epoch_end(ls, record, ev, state)
    engine.say(epoch_line(record, st.num_epochs))
    if ls.stopped_early:
      engine.say(f"early stopping: eval loss has not improved for {st.patience} evaluations; "
                 f"restoring epoch {ls.best_epoch}")
    if engine.stop_step is not None:
      _stop(engine, ls, state, hooks)
  return state


def _stop(engine: Engine, ls: LoopState, state: Any, hooks: Sequence[Hook]) -> None:
  """Tells ``hooks`` ``on_steps`` (a checkpoint of this step), then raises the stop."""
  for hook in hooks:
    hook.on_steps(ls, state)
  raise engine.stop.stopped(ls.step)


def test_record(ev: Mapping[str, Any], state: Any) -> dict[str, Any]:
  """The test split's metrics as written to ``test_metrics.json``."""
  return {"step": int(np.asarray(state.step)), "test_loss": ev["loss"],
          "test_accuracy": ev["accuracy"], "test_top5": ev["top5"], "test_count": ev["count"],
          "test_confusion": np.asarray(ev["confusion"]).tolist()}


def test_line(record: Mapping[str, Any]) -> str:
  return (f"test (step {record['step']}): loss {record['test_loss']:.4f} "
          f"acc {record['test_accuracy']:.4f} top5 {record['test_top5']:.4f} "
          f"on {int(record['test_count'])} images")


def _fmt(value: Any) -> str:
  return "-" if value is None else f"{value:.4f}"


def epoch_line(r: Mapping[str, Any], num_epochs: int) -> str:
  """The one line printed per epoch."""
  ips = r.get("train_images_per_sec")
  line = (f"epoch {r['epoch']}/{num_epochs} step {r['step']}: "
          f"train loss {_fmt(r['train_loss'])} acc {_fmt(r['train_accuracy'])}")
  if r.get("eval_loss") is not None:
    line += (f" | eval loss {_fmt(r['eval_loss'])} acc {_fmt(r['eval_accuracy'])} "
             f"top5 {_fmt(r['eval_top5'])}")
  return (line + f" | {r['epoch_seconds']:.1f}s"
          + (f", {ips:.0f} img/s" if ips else "")
          + (f", compile {r['compile_seconds']:.1f}s" if "compile_seconds" in r else ""))


def printer(enabled: bool) -> Callable[[str], None]:
  """Where the loop's lines go: above the progress bar when printing, else the log (INFO)."""
  if not enabled:
    return log.info
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm.write


def _progress(enabled: bool, total: int, initial: int, epoch: int, num_epochs: int):
  if not enabled:
    return None
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{num_epochs}",
              unit="step", leave=False, dynamic_ncols=True)
