"""Keras-like ``fit`` / ``evaluate`` / ``predict`` for notebooks, on the same step functions.

Data may be a loader from :mod:`jaxcnn.data` (anything with ``batch_size``, ``steps_per_epoch``
and ``epoch(epoch, start_step)``) or a pair of numpy arrays ``(x, y)`` with
``x: [N, H, W, C]`` already preprocessed (used as float32, as given) and ``y: [N]`` int labels.

Flax modules hold no weights, so where Keras mutates the model these functions pass the
:class:`~jaxcnn.train.TrainState` around: ``fit`` returns a :class:`History` (a dict of
per-epoch lists, like Keras's ``History.history``) whose ``.state`` is the trained state.

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

import functools
from collections.abc import Iterator
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxcnn import metrics as metrics_lib
from jaxcnn.train import optim
from jaxcnn.train import parallel as parallel_lib
from jaxcnn.train.loop import _Guard, _printer, _progress, evaluate_loader
from jaxcnn.train.state import TrainState, create_train_state
from jaxcnn.train.steps import eval_step, predict_step, train_step


class ArrayLoader:
  """In-memory ``(x, y)`` arrays behind the loaders' interface.

  The order of epoch ``e`` is a permutation drawn from ``(seed, e)``; with
  ``drop_remainder=False`` the last batch is padded and carries a ``'mask'``.
  """

  def __init__(self, x: Any, y: Any, batch_size: int, *, shuffle: bool = False, seed: int = 0,
               drop_remainder: bool = False):
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
      raise ValueError(f"`x` has {x.shape[0]} examples but `y` has {y.shape[0]}")
    if batch_size < 1:
      raise ValueError(f"`batch_size` (={batch_size}) must be >= 1")
    self.x, self.y = x, y.astype(np.int32)
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
      batch = {"image": self.x[idx].astype(np.float32), "label": self.y[idx]}
      if not self.drop_remainder:
        pad = b - idx.shape[0]
        mask = np.concatenate([np.ones(idx.shape[0], np.float32), np.zeros(pad, np.float32)])
        if pad:
          batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)])
                   for k, v in batch.items()}
        batch["mask"] = mask
      yield batch


def _as_loader(data: Any, batch_size: int, *, shuffle: bool, seed: int,
               drop_remainder: bool) -> Any:
  if hasattr(data, "epoch") and hasattr(data, "steps_per_epoch"):
    return data
  if isinstance(data, (tuple, list)) and len(data) == 2:
    return ArrayLoader(data[0], data[1], batch_size, shuffle=shuffle, seed=seed,
                       drop_remainder=drop_remainder)
  raise ValueError(f"data must be a loader or an (x, y) pair of arrays, got {type(data)}")


class History(dict):
  """``{'loss': [...], 'accuracy': [...], 'val_loss': [...], ...}`` plus ``.state``.

  ``.history`` is the dict itself, as on a Keras ``History``.
  """
  state: TrainState

  @property
  def history(self) -> dict[str, list[float]]:
    return self


def fit(model: Any, train_data: Any, *, epochs: int = 1, batch_size: int = 32,
        validation_data: Any = None, optimizer: str = "adam", learning_rate: float = 1e-3,
        weight_decay: float = 0.0, schedule: str = "constant", label_smoothing: float = 0.0,
        patience: int = 0, seed: int = 0, parallel: str = "none",
        state: TrainState | None = None, verbose: int = 1) -> History:
  """Trains ``model`` like ``keras.Model.fit``; returns a :class:`History` with ``.state``.

  Args:
    model: a Flax module with ``__call__(x, train)``.
    train_data: a loader or ``(x, y)`` arrays (shuffled each epoch, last partial batch dropped).
    epochs: number of passes.
    batch_size: global batch size (ignored for loaders, which have their own).
    validation_data: a loader or ``(x, y)``; evaluated after every epoch.
    optimizer, learning_rate, weight_decay, schedule: as in the configs
      (:func:`jaxcnn.train.make_optimizer`).
    label_smoothing: for the training loss.
    patience: > 0 stops when ``val_loss`` has not improved for this many epochs and restores
      the best state (needs ``validation_data``).
    seed: initialisation, dropout and shuffling.
    parallel: ``'none'``, ``'pmap'`` or ``'mesh'``.
    state: continue training this state instead of initialising a new one.
    verbose: 0 silent, 1 a progress bar and one line per epoch.
  """
  cfg = ml_collections.ConfigDict(dict(optimizer=optimizer, learning_rate=learning_rate,
                                       weight_decay=weight_decay, schedule=schedule))
  optim.validate_optimizer_config(cfg)
  if patience and validation_data is None:
    raise ValueError(f"`patience` (={patience}) needs `validation_data`")
  par = parallel_lib.Parallel(parallel)
  train = _as_loader(train_data, batch_size, shuffle=True, seed=seed, drop_remainder=True)
  val = (None if validation_data is None else
         _as_loader(validation_data, batch_size, shuffle=False, seed=seed, drop_remainder=False))
  parallel_lib.check_batch_size(train.batch_size, parallel)
  if val is not None:
    parallel_lib.check_batch_size(val.batch_size, parallel, "validation batch_size")
  spe = train.steps_per_epoch
  if spe < 1:
    raise ValueError(f"fewer training examples than one batch (={train.batch_size})")
  if state is None:
    first = next(iter(train.epoch(0)))
    tx = optim.make_optimizer(cfg, epochs * spe, spe)
    state = create_train_state(model, jax.random.PRNGKey(seed),
                               (1, *np.shape(first["image"])[1:]), tx)
  step = int(state.step)
  p_train = par.compile_train(train_step, label_smoothing=float(label_smoothing))
  p_eval = par.compile_eval(eval_step)
  state = par.put_state(state)
  guard = _Guard(par, None)
  say = _printer(bool(verbose))
  history = History()
  best_loss, best_state, bad = None, None, 0
  for epoch in range(epochs):
    acc = metrics_lib.Accumulator()
    bar = _progress(bool(verbose), spe, 0, epoch, epochs)
    for batch in train.epoch(epoch):
      state, m = p_train(state, par.put_batch(batch))
      guard.add(step, m)
      step += 1
      if bar is not None:
        bar.update(1)
    guard.flush(acc, train.batch_size)  # also the non-finite check
    if bar is not None:
      bar.close()
    tr = acc.compute()
    history.setdefault("loss", []).append(tr["loss"])
    history.setdefault("accuracy", []).append(tr["accuracy"])
    line = f"epoch {epoch + 1}/{epochs}: loss {tr['loss']:.4f} accuracy {tr['accuracy']:.4f}"
    if val is not None:
      ev = evaluate_loader(p_eval, par, state, val)
      for k in ("loss", "accuracy", "top5"):
        history.setdefault(f"val_{k}", []).append(ev[k])
      line += f" | val_loss {ev['loss']:.4f} val_accuracy {ev['accuracy']:.4f}"
      if best_loss is None or ev["loss"] < best_loss:
        best_loss, bad = ev["loss"], 0
        if patience:
          best_state = jax.device_get(par.get_state(state))
      else:
        bad += 1
    say(line)
    if patience and bad >= patience:
      say(f"early stopping: val_loss has not improved for {patience} epochs")
      break
  final = par.get_state(state)
  if patience and best_state is not None:
    final = jax.device_put(best_state)
  history.state = final
  return history


@functools.partial(jax.jit, static_argnames=("top_k",))
def _eval_jit(state: TrainState, batch: dict[str, jax.Array], top_k: int = 5):
  return eval_step(state, batch, top_k=top_k)


_predict_jit = jax.jit(predict_step)


def evaluate(state: TrainState, data: Any, *, batch_size: int = 256) -> dict[str, Any]:
  """Eval metrics of ``state`` on a loader or ``(x, y)``, like ``keras.Model.evaluate``.

  Returns ``{'loss', 'accuracy', 'top5', 'count', 'confusion': [K, K] int}``; every example
  counts exactly once (the padded last batch is masked).
  """
  loader = _as_loader(data, batch_size, shuffle=False, seed=0, drop_remainder=False)
  return evaluate_loader(_eval_jit, parallel_lib.Parallel("none"), state, loader)


def predict(state: TrainState, x: Any, *, batch_size: int = 256) -> np.ndarray:
  """Logits ``[N, K] float32`` for images ``x: [N, H, W, C]`` (eval mode, EMA params if kept).

  Every batch, the last too, is padded to ``batch_size``, so one compilation serves every call
  whatever ``N`` (``N = 0`` gives ``[0, K]``).
  """
  x = np.asarray(x, np.float32)
  n = x.shape[0]
  out = []
  for i in range(0, max(n, 1), batch_size):
    chunk = x[i:i + batch_size]
    pad = batch_size - chunk.shape[0]
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
    logits = np.asarray(_predict_jit(state, chunk))
    out.append(logits[:batch_size - pad])
  return np.concatenate(out)
