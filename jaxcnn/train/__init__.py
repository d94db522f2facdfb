"""Training: a pure train step, data parallelism, optax optimisers, orbax checkpoints.

Public API (re-exported from private-by-convention modules, one concern each):

* :class:`TrainState`, :func:`create_train_state` (``state.py``);
* :func:`make_optimizer`, :func:`make_schedule`, the registry :data:`OPTIMIZERS` /
  :func:`register_optimizer`, and the recipe helpers :func:`param_labels`, :func:`partition`,
  :func:`muon`, :func:`sgd_nesterov` (``optim.py``);
* :class:`Averager`, :func:`ema`, :func:`lookahead` (``average.py``);
* :func:`train_step`, :func:`eval_step`, :func:`predict_step`, :func:`tta_logits`,
  :data:`AXIS_NAME` (``steps.py``);
* :class:`Parallel`, :data:`MODES` (``parallel.py``): ``'none'``, ``'pmap'``, ``'mesh'``;
* :class:`Checkpointer` (``checkpoint.py``);
* :func:`train_and_evaluate`, :func:`validate_config`, :class:`NonFiniteError`,
  :class:`TrainResult` (``loop.py``): what ``python -m experiments.train`` runs, and its pieces
  :class:`LoopState`, :class:`LoopSettings`, :func:`init_state`, :func:`make_engine`,
  :func:`train_epoch`, :func:`update_early_stopping`, :func:`run_loop`;
* :func:`fit`, :func:`evaluate`, :func:`predict`, :class:`ArrayLoader` (``keras.py``): a
  Keras-like layer for notebooks.

>>> from jaxcnn.train import train_and_evaluate
>>> from experiments.configs import cifar10_tutorial
>>> result = train_and_evaluate(cifar10_tutorial.get_config(), '/tmp/cifar10')  # doctest: +SKIP
"""

from jaxcnn.train.average import Averager, ema, lookahead
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.keras import (ArrayLoader, Callback, History, SaveBest, evaluate, fit,
                                 predict)
from jaxcnn.train.loop import (
    LoopSettings, LoopState, NonFiniteError, TrainResult, evaluate_loader, init_state,
    WorkdirLock, make_engine, make_loaders, make_model, make_test_loader, run_loop,
    train_and_evaluate, train_epoch, update_early_stopping, validate_config)
from jaxcnn.train.optim import (
    OPTIMIZERS, SCHEDULES, conv_dimension_numbers, make_optimizer, make_schedule, muon,
    newton_schulz, param_labels, partition, resolve_optimizer, sgd_nesterov)
from jaxcnn.train.optim import register as register_optimizer
from jaxcnn.train.parallel import MODES, Parallel, check_batch_size, maybe_initialize_distributed
from jaxcnn.train.state import TrainState, create_train_state, default_init
from jaxcnn.train.steps import AXIS_NAME, eval_step, predict_step, train_step, tta_logits

__all__ = [
    "TrainState", "create_train_state", "default_init",
    "make_optimizer", "make_schedule", "OPTIMIZERS", "SCHEDULES", "register_optimizer",
    "resolve_optimizer", "param_labels", "partition", "muon", "newton_schulz",
    "conv_dimension_numbers", "sgd_nesterov",
    "Averager", "ema", "lookahead",
    "train_step", "eval_step", "predict_step", "tta_logits", "AXIS_NAME",
    "Parallel", "MODES", "check_batch_size", "maybe_initialize_distributed",
    "Checkpointer",
    "train_and_evaluate", "validate_config", "make_loaders", "make_model", "evaluate_loader",
    "NonFiniteError", "TrainResult", "make_test_loader", "LoopState", "LoopSettings",
    "init_state", "make_engine", "train_epoch", "update_early_stopping", "run_loop",
    "WorkdirLock",
    "fit", "evaluate", "predict", "ArrayLoader", "History", "Callback", "SaveBest",
]
