"""Keras-like ``fit`` / ``evaluate`` / ``predict`` for notebooks, on the same step functions.

Data may be a loader from :mod:`jaxcnn.data` (anything with ``batch_size``, ``steps_per_epoch``
and ``epoch(epoch, start_step)``), a folder of images ``root/<class>/<image>`` (a path, read by
:func:`jaxcnn.data.image_folder_dataset`), or a pair of numpy arrays ``(x, y)`` with
``x: [N, H, W, C]`` and ``y: [N]`` integer labels in ``[0, num_classes)``. Float images are used
as given (already preprocessed); **uint8 images are scaled to [0, 1]** (``x / 255``), by
``fit``, ``evaluate`` and ``predict`` alike. Labels are checked on the host: a non-integer or
out-of-range label is an error naming the first bad value and its index.

Linen modules hold no weights, so where Keras mutates the model these functions pass the
:class:`~jaxcnn.train.TrainState` around: ``fit`` returns a :class:`History` (a dict of
per-epoch lists, like Keras's ``History.history``) whose ``.state`` is the trained state. An
NNX module (``flax.nnx``, e.g. from :mod:`jaxcnn.nnx`) holds its weights, so ``fit`` also
writes the trained variables back into it, as Keras and ``nnx.Optimizer`` do, and
``evaluate`` / ``predict`` take the module itself.

>>> import numpy as np
>>> from jaxcnn import models
>>> from jaxcnn.train import fit, evaluate, predict
>>> x = np.random.rand(64, 28, 28, 1).astype('float32'); y = np.arange(64) % 10
>>> h = fit(models.get_model('mlp'), (x, y), epochs=2, batch_size=32, verbose=0)
>>> sorted(h)
['accuracy', 'loss']
>>> predict(h.state, x[:5]).shape
(5, 10)
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np
import optax

from jaxcnn import _checks
from jaxcnn.train import config as config_lib
from jaxcnn.train import loop
from jaxcnn.train import optim
from jaxcnn.train import parallel as parallel_lib
from jaxcnn.train.state import TrainState, as_linen, is_nnx_module
from jaxcnn.train.steps import eval_step, predict_step


class ArrayLoader:
  """In-memory ``(x, y)`` arrays behind the loaders' interface.

  The order of epoch ``e`` is a permutation drawn from ``(seed, e)``; with
  ``drop_remainder=False`` the last batch is padded and carries a ``'mask'``.
  """

  def __init__(self, x: Any, y: Any, batch_size: int, *, shuffle: bool = False, seed: int = 0,
               drop_remainder: bool = False):
    x, y = _images(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
      raise ValueError(f"`x` has {x.shape[0]} examples but `y` has {y.shape[0]}")
    batch_size = _checks.positive_int(batch_size, "batch_size")
    self.x, self.y = x, check_labels(y)
    self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
    self.drop_remainder = drop_remainder
    self.num_examples = x.shape[0]
    n, b = self.num_examples, batch_size
    self.steps_per_epoch = n // b if drop_remainder else -(-n // b)

  def epoch(self, epoch: int = 0, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    n, b = self.num_examples, self.batch_size
    order = (np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle
             else np.arange(n))
    for i in range(start_step, self.steps_per_epoch):
      idx = order[i * b:(i + 1) * b]
      batch = {"image": self.x[idx], "label": self.y[idx]}
      if not self.drop_remainder:
        pad = b - idx.shape[0]
        mask = np.concatenate([np.ones(idx.shape[0], np.float32), np.zeros(pad, np.float32)])
        if pad:
          batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
                   for k, v in batch.items()}
        batch["mask"] = mask
      yield batch


def _images(x: Any) -> np.ndarray:
  """float32 images; uint8 ones scaled to [0, 1]."""
  x = np.asarray(x)
  if x.dtype == np.uint8:
    return x.astype(np.float32) / np.float32(255.0)
  return x.astype(np.float32)


def check_labels(y: Any, num_classes: int | None = None) -> np.ndarray:
  """``y`` as int32 labels; raises naming the first non-integer or out-of-range one.

  >>> check_labels([0, 2, 1], num_classes=3).tolist()
  [0, 2, 1]
  """
  y = np.asarray(y)
  if y.ndim != 1:
    raise ValueError(f"labels must be a 1-D array of class indices, got shape {y.shape}")
  if y.dtype.kind not in "iub":
    if y.dtype.kind != "f":
      raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
    if bad.size:
      raise ValueError(f"label {y[bad[0]].item()!r} at index {bad[0]} is not a whole number; "
                       "labels are class indices (use y.argmax(-1) for one-hot labels)")
  top = num_classes if num_classes is not None else np.inf
  bad = np.flatnonzero((y < 0) | (y >= top))
  if bad.size:
    raise ValueError(f"label {y[bad[0]].item()!r} at index {bad[0]} is out of range: labels "
                     f"must be in [0, {num_classes if num_classes is not None else 'K'})")
  return y.astype(np.int32)


def _num_classes(state: TrainState, image_shape: tuple[int, ...]) -> int:
  """The model's number of outputs (shape inference only: nothing runs)."""
  out = jax.eval_shape(lambda v, x: state.apply_fn(v, x, train=False), state.eval_variables,
                       jax.ShapeDtypeStruct((1, *image_shape), np.float32))
  return int(out.shape[-1])


def _check_loader_labels(loader: Any, state: TrainState) -> None:
  if isinstance(loader, ArrayLoader):
    check_labels(loader.y, _num_classes(state, loader.x.shape[1:]))


def _folder_loaders(path: Any, validation_data: Any, *, batch_size: int, seed: int,
                    image_size: Any, validation_split: float | None, color_mode: str,
                    crop_to_aspect_ratio: bool) -> tuple[Any, Any]:
  """fit's folder: the training loader and, with ``validation_split``, the validation one."""
  from jaxcnn import data  # pylint: disable=g-import-not-at-top
  kw = dict(image_size=image_size, color_mode=color_mode, batch_size=batch_size, seed=seed,
            crop_to_aspect_ratio=crop_to_aspect_ratio)
  if validation_split:
    if validation_data is not None:
      raise ValueError(f"`validation_split` (={validation_split}) and `validation_data` both "
                       "give a validation set; pass one")
    return data.image_folder_dataset(path, validation_split=validation_split, subset="both",
                                     **kw)
  return data.image_folder_dataset(path, **kw), validation_data


def _as_loader(data: Any, batch_size: int, *, shuffle: bool, seed: int,
               drop_remainder: bool) -> Any:
  if hasattr(data, "epoch") and hasattr(data, "steps_per_epoch"):
    return data
  if isinstance(data, (tuple, list)) and len(data) == 2:
    return ArrayLoader(data[0], data[1], batch_size, shuffle=shuffle, seed=seed,
                       drop_remainder=drop_remainder)
  raise ValueError(f"data must be a loader, a folder of images (for training data) or an "
                   f"(x, y) pair of arrays, got {type(data)}")


class History(dict):
  """``{'loss': [...], 'accuracy': [...], 'val_loss': [...], ...}`` plus ``.state``.

  ``.history`` is the dict itself, as on a Keras ``History``; ``val_*`` lists hold the
  evaluated epochs only (as Keras's with ``validation_freq``). ``.records`` are the loop's own
  per-epoch records (the keys of ``metrics.jsonl``: ``train_loss``, ``eval_loss``, ...), which
  ``jaxcnn.plots.plot_curves`` draws; ``.test`` the test metrics when ``test_data`` was given.
  """
  state: TrainState
  records: list[dict[str, Any]]
  test: dict[str, Any] | None = None
  class_names: tuple[str, ...] | None = None

  @property
  def history(self) -> dict[str, list[float]]:
    return self

  @classmethod
  def from_records(cls, records: list[dict[str, Any]]) -> "History":
    h = cls()
    for r in records:
      h.setdefault("loss", []).append(r["train_loss"])
      h.setdefault("accuracy", []).append(r["train_accuracy"])
      if r.get("eval_loss") is not None:
        for k in ("loss", "accuracy", "top5"):
          h.setdefault(f"val_{k}", []).append(r[f"eval_{k}"])
    h.records = records
    return h


class Callback:
  """Hooks into :func:`fit`, as Keras callbacks; subclass and override the ones you need.

  Every hook gets a copy of the state on the host (a :class:`TrainState` of numpy arrays, so
  it stays valid after the next step, which reuses the device buffers), to read, keep or save:

  * ``on_train_begin(state)``: before the first step (the initial state);
  * ``on_best(epoch, val_loss, state)``: each time the validation loss reaches a new minimum
    (by more than ``early_stopping_min_delta``), with that epoch's state; called before that
    epoch's ``on_epoch_end``;
  * ``on_epoch_end(epoch, logs, state)``: after every epoch (1-based), ``logs`` in Keras' names
    (``loss``, ``accuracy``, and ``val_loss``, ``val_accuracy``, ``val_top5`` when the epoch
    was evaluated), with the state at the end of the epoch.
  """

  def on_train_begin(self, state: TrainState) -> None:
    pass

  def on_best(self, epoch: int, val_loss: float, state: TrainState) -> None:
    pass

  def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
    pass


class SaveBest(Callback):
  """Saves the model whenever the validation loss falls (Keras'
  ``ModelCheckpoint(save_best_only=True)``; the course's "save the model whenever validation
  loss decreases").

  Writes ``state.eval_variables`` (``{'params': ..., **collections}``, e.g. BatchNorm
  statistics: the variables that scored that validation loss, i.e. the averaged ones under
  EMA) with ``flax.serialization.to_bytes`` to ``path``, atomically (a temporary file renamed
  over it), so a crash never leaves half a file. ``saves`` lists ``(epoch, val_loss)`` of every
  save. Load it back with :meth:`load`, or use the variables with ``model.apply`` directly.
  """

  def __init__(self, path: str | os.PathLike):
    self.path = pathlib.Path(path)
    self.saves: list[tuple[int, float]] = []

  def on_best(self, epoch: int, val_loss: float, state: TrainState) -> None:
    import flax.serialization  # pylint: disable=g-import-not-at-top
    self.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = self.path.with_name(f".{self.path.name}.tmp")
    tmp.write_bytes(flax.serialization.to_bytes(jax.device_get(state.eval_variables)))
    os.replace(tmp, self.path)
    self.saves.append((epoch, val_loss))

  @staticmethod
  def load(path: str | os.PathLike, state: TrainState) -> TrainState:
    """``state`` (from :func:`fit`, without an averager or lookahead) with the variables saved
    at ``path`` as its params and collections; ``state`` gives the tree's shape."""
    import flax.serialization  # pylint: disable=g-import-not-at-top
    if state.averager is not None or isinstance(state.params, optax.LookaheadParams):
      raise ValueError("SaveBest.load fills a plain state; under an averager or lookahead, "
                       "evaluate the saved variables with model.apply (they are the eval ones)")
    variables = flax.serialization.from_bytes(jax.device_get(state.variables),
                                              pathlib.Path(path).read_bytes())
    variables = dict(variables)
    params = variables.pop("params")
    return state.replace(params=params, collections=variables)


def _keras_logs(record: dict[str, Any]) -> dict[str, float]:
  logs = {"loss": record["train_loss"], "accuracy": record["train_accuracy"]}
  if record.get("eval_loss") is not None:
    logs.update(val_loss=record["eval_loss"], val_accuracy=record["eval_accuracy"],
                val_top5=record["eval_top5"])
  return logs


# Config keys that describe a run of the CLI, not a call of fit (fit takes the model, the data,
# the batch size and the epochs as arguments, and writes nothing).
_NOT_FIT_KEYS = ("model", "model_kwargs", "data", "batch_size", "eval_batch_size", "num_epochs",
                 "distributed", "coordinator_address", "num_processes", "process_id",
                 "heartbeat_timeout_seconds", "plots", "checkpoint_every_epoch",
                 "checkpoint_every_steps", "async_checkpoints", "progress", "tensorboard", "recipe",
                 "dtype", "model_api")


def fit_keys() -> tuple[str, ...]:
  """The config keys :func:`fit` takes as keyword arguments (see :mod:`jaxcnn.train.config`)."""
  return tuple(f.name for f in dataclasses.fields(config_lib.Config)
               if f.name not in _NOT_FIT_KEYS)


def _fit_config(config: Any, config_values: dict[str, Any], epochs: int | None,
                optimizer: Any) -> tuple[config_lib.Config, Any]:
  """fit's arguments as one validated config (defaults < ``config`` < keywords) and the tx
  value, if any."""
  unknown = sorted(set(config_values) - set(fit_keys()))
  if unknown:
    raise TypeError(f"fit() got unknown keyword argument(s) {unknown}; config keys it takes: "
                    f"{', '.join(sorted(fit_keys()))}")
  values: dict[str, Any] = {}
  if config is not None:
    values.update(config.to_dict() if hasattr(config, "to_dict") else dict(config))
  values.update(config_values)
  if epochs is not None:
    values.update(num_epochs=epochs, num_train_steps=-1)
  values.setdefault("num_epochs", 1)  # Keras' fit(epochs=1)
  tx = None
  if isinstance(optimizer, str):
    values["optimizer"] = optimizer
  else:
    tx = optimizer
  return config_lib.validate(values), tx


class _CallbackHooks(loop.Hook):
  """fit's :class:`Callback` s (and the in-memory best state of early stopping) as loop hooks:
  each gets a host copy of the state."""

  def __init__(self, par: parallel_lib.Parallel, callbacks: Sequence[Callback],
               keep_best: bool):
    self.par, self.callbacks, self.keep_best = par, callbacks, keep_best
    self.best: Any = None

  def _host(self, state: Any) -> Any:
    return jax.device_get(self.par.get_state(state))

  def on_best(self, ls: loop.LoopState, state: Any) -> None:
    if self.keep_best or self.callbacks:
      host = self._host(state)
      if self.keep_best:
        self.best = host
      for cb in self.callbacks:
        cb.on_best(ls.best_epoch, ls.best_eval_loss, host)

  def on_epoch_end(self, ls: loop.LoopState, record: dict[str, Any], ev: Any,
                   state: Any) -> None:
    if self.callbacks:
      host = self._host(state)
      for cb in self.callbacks:
        cb.on_epoch_end(int(record["epoch"]), _keras_logs(record), host)


def fit(model: Any, train_data: Any, *, epochs: int | None = None, batch_size: int = 32,
        validation_data: Any = None, test_data: Any = None,
        optimizer: str | optim.TxOrFactory | None = None, config: Any = None,
        init_fn: Any = None, averager: Any = None, loss_fn: Any = None, logits_fn: Any = None,
        state: TrainState | None = None, num_classes: int | None = None, verbose: int = 1,
        callbacks: Sequence[Callback] = (), image_size: Any = (256, 256),
        validation_split: float | None = None, color_mode: str = "rgb",
        crop_to_aspect_ratio: bool = False, **config_values: Any) -> History:
  """Trains ``model`` like ``keras.Model.fit``; returns a :class:`History` with ``.state``.

  ``fit`` runs the very loop of :func:`jaxcnn.train.train_and_evaluate`
  (:func:`jaxcnn.train.loop.run_loop`) without a workdir: no checkpoints, plots or files; the
  best state for early stopping is kept in memory.

  Args:
    model: a Linen module with ``__call__(x, train)``, a registered model name
      (``'tutorial_cnn'``: :func:`jaxcnn.models.get_model` with ``num_classes``, default 10, or
      the folder's number of classes), or an NNX module (``nnx.Module`` whose call returns
      logits; dropout and BatchNorm following ``train()`` / ``eval()``): trained from its current
      variables with the same train step (:func:`jaxcnn.nnx.linen_view`), and updated in place
      at the end with the returned state's evaluation variables (the best epoch's with
      ``patience``).
    train_data: a loader, a folder of images (a path: ``root/<class>/<image>``, see
      ``image_size`` below), or ``(x, y)`` arrays (shuffled each epoch, last partial batch
      dropped): ``x: [N, H, W, C]`` float (used as given) or uint8 (scaled to [0, 1]),
      ``y: [N]`` integer class indices.
    epochs: number of passes (default: ``config['num_epochs']``, else 1).
    batch_size: global batch size (ignored for loaders, which have their own).
    validation_data: a loader or ``(x, y)``; evaluated every ``eval_every_epochs`` epochs.
    test_data: a loader or ``(x, y)``; the final (or, with ``patience``, the best) state is
      evaluated on it once, into ``History.test`` (``test_loss``, ``test_accuracy``, ...).
    optimizer: a registered name (``'adam'``, ``'sgd'``, ...), an optax transformation, or a
      factory ``(params, total_steps, steps_per_epoch) -> tx``.
    config: a mapping of config keys (:mod:`jaxcnn.train.config`); keyword arguments below
      override it.
    init_fn, averager, loss_fn, logits_fn: the hooks of :func:`train_and_evaluate`.
    state: continue training this state instead of initialising a new one.
    verbose: 0 silent, 1 a progress bar and one line per epoch.
    callbacks: :class:`Callback` objects (e.g. :class:`SaveBest`), called in order.
    image_size, validation_split, color_mode, crop_to_aspect_ratio: for a folder as
      ``train_data``, as :func:`jaxcnn.data.image_folder_dataset` (Keras's
      ``image_dataset_from_directory``): every image converted and resized to ``image_size``,
      normalised with the training images' statistics; ``validation_split`` (with ``seed``)
      holds out that fraction of the files as ``validation_data``. ``History.class_names``
      then holds the folder names.
    **config_values: config keys (:func:`fit_keys`): ``learning_rate``, ``weight_decay``,
      ``schedule``, ``label_smoothing``, ``patience`` (> 0 stops when ``val_loss`` has not
      improved for this many evaluations and restores the best state),
      ``early_stopping_min_delta``, ``eval_every_epochs``, ``ema``, ``seed``, ``parallel``
      (``'none'``, ``'pmap'``, ``'mesh'``), ``momentum``, ...

  >>> h = fit(model, (x, y), epochs=2, optimizer=optax.sgd(0.1), verbose=0)  # doctest: +SKIP
  """
  epochs = _checks.positive_int(epochs, "epochs", optional=True)
  if isinstance(model, type):
    raise TypeError(f"`model` (=the class {model.__name__}) must be a module instance, e.g. "
                    f"{model.__name__}(...), or a registered model name")
  cfg, tx = _fit_config(config, config_values, epochs, optimizer)
  class_names = None
  if isinstance(train_data, (str, os.PathLike)):
    train_data, validation_data = _folder_loaders(
        train_data, validation_data, batch_size=batch_size, seed=cfg.seed,
        image_size=image_size, validation_split=validation_split, color_mode=color_mode,
        crop_to_aspect_ratio=crop_to_aspect_ratio)
    class_names = train_data.class_names
  elif validation_split is not None:
    raise ValueError(f"`validation_split` (={validation_split}) splits a folder of images; "
                     "pass the folder's path as the data, or `validation_data`")
  if isinstance(model, str):
    from jaxcnn import models  # pylint: disable=g-import-not-at-top
    model = models.get_model(model, num_classes=num_classes or (
        len(class_names) if class_names else 10))
  nnx_module = model if is_nnx_module(model) else None
  if cfg.patience and validation_data is None:
    raise ValueError(f"`patience` (={cfg.patience}) needs `validation_data`")
  par = parallel_lib.Parallel(cfg.parallel)
  train = _as_loader(train_data, batch_size, shuffle=True, seed=cfg.seed, drop_remainder=True)
  val, test = (None if d is None else
               _as_loader(d, batch_size, shuffle=False, seed=cfg.seed, drop_remainder=False)
               for d in (validation_data, test_data))
  parallel_lib.check_batch_size(train.batch_size, cfg.parallel)
  for what, loader in (("validation", val), ("test", test)):
    if loader is not None:
      parallel_lib.check_batch_size(loader.batch_size, cfg.parallel, f"{what} batch_size")
  if train.steps_per_epoch < 1:
    raise ValueError(f"fewer training examples than one batch (={train.batch_size})")
  settings = loop.LoopSettings.from_config(cfg, train.steps_per_epoch, train.batch_size,
                                           verbose=bool(verbose))
  if state is None:
    shape = (1, *np.shape(next(iter(train.epoch(0)))["image"])[1:])
    state = loop.init_state(model, cfg, shape, train, settings, tx=tx, init_fn=init_fn,
                            averager=averager)
  for loader in (train, val, test):
    _check_loader_labels(loader, state)
  callbacks = list(callbacks)
  for cb in callbacks:
    if not isinstance(cb, Callback):
      raise TypeError(f"`callbacks` holds a {type(cb).__name__}: each must be a "
                      "jaxcnn.train.Callback (subclass it and override its hooks)")
  engine = loop.make_engine(par, settings, train, val, label_smoothing=cfg.label_smoothing,
                            loss_fn=loss_fn, logits_fn=logits_fn)
  ls = loop.LoopState()  # the loop's own count; a given state keeps its step (and keys)
  hooks = _CallbackHooks(par, callbacks, keep_best=bool(settings.patience))
  if callbacks:
    host = jax.device_get(state)
    for cb in callbacks:
      cb.on_train_begin(host)
  try:
    final = par.get_state(loop.run_loop(engine, par.put_state(state), ls, [hooks]))
  except loop.NonFiniteError as e:
    raise loop.NonFiniteError(f"{e}; no checkpoint was saved before it; lower "
                              "`learning_rate` and start again", step=e.step) from None
  if hooks.best is not None:
    final = jax.device_put(hooks.best)
  history = History.from_records(ls.history)
  history.state = final
  history.class_names = getattr(train, "class_names", None)
  if nnx_module is not None:
    from jaxcnn import nnx as jnnx  # pylint: disable=g-import-not-at-top
    jnnx.update_module(nnx_module, final)
  if test is not None:
    history.test = loop.test_record(loop.evaluate_loader(engine.p_eval, par,
                                                         par.put_state(final), test), final)
    engine.say(loop.test_line(history.test))
  return history


def _as_state(state: Any) -> TrainState:
  """``state``, the state of a :class:`History`, or an NNX module's variables as a state;
  anything else (a Linen model) is an error."""
  if isinstance(state, History):
    return state.state
  if is_nnx_module(state):
    view = as_linen(state)
    variables = dict(view.variables)
    params = variables.pop("params", {})
    return TrainState(step=np.int32(0), apply_fn=view.apply, params=params, tx=None,
                      opt_state=None, collections=variables)
  if not isinstance(state, TrainState):
    raise TypeError(f"`state` (=a {type(state).__name__}) must be the TrainState that fit "
                    "returned (history.state), the History itself, or an NNX module, not a "
                    "Linen model")
  return state


@functools.partial(jax.jit, static_argnames=("top_k", "logits_fn"))
def _eval_jit(state: TrainState, batch: dict[str, jax.Array], top_k: int = 5, logits_fn=None):
  return eval_step(state, batch, top_k=top_k, logits_fn=logits_fn)


_predict_jit = jax.jit(predict_step, static_argnames=("logits_fn",))


def evaluate(state: TrainState, data: Any, *, batch_size: int = 256,
             logits_fn: Any = None) -> dict[str, Any]:
  """Eval metrics of ``state`` on a loader or ``(x, y)``, like ``keras.Model.evaluate``.

  ``state``: the ``TrainState`` (``history.state``), the :class:`History` ``fit`` returned,
  or an NNX module (evaluated with its current variables, in eval mode).
  Returns ``{'loss', 'accuracy', 'top5', 'count', 'confusion': [K, K] int}``; every example
  counts exactly once (the padded last batch is masked). ``logits_fn``: as in
  :func:`jaxcnn.train.eval_step` (e.g. ``functools.partial(tta_logits, flip=True)``).
  """
  state = _as_state(state)
  loader = _as_loader(data, batch_size, shuffle=False, seed=0, drop_remainder=False)
  _check_loader_labels(loader, state)
  return loop.evaluate_loader(functools.partial(_eval_jit, logits_fn=logits_fn),
                              parallel_lib.Parallel("none"), state, loader)


def predict(state: TrainState, x: Any, *, batch_size: int = 256,
            logits_fn: Any = None) -> np.ndarray:
  """Logits ``[N, K] float32`` for images ``x: [N, H, W, C]`` (eval mode, averaged weights if
  kept; ``logits_fn`` as in :func:`evaluate`; uint8 images scaled to [0, 1]).

  Every batch, the last too, is padded to ``batch_size``, so one compilation serves every call
  whatever ``N`` (``N = 0`` gives ``[0, K]``). ``state``: as in :func:`evaluate`.
  """
  state = _as_state(state)
  batch_size = _checks.positive_int(batch_size, "batch_size")
  x = _images(x)
  n = x.shape[0]
  out = []
  for i in range(0, max(n, 1), batch_size):
    chunk = x[i:i + batch_size]
    pad = batch_size - chunk.shape[0]
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
    logits = np.asarray(_predict_jit(state, chunk, logits_fn=logits_fn))
    out.append(logits[:batch_size - pad])
  return np.concatenate(out)
