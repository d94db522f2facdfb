"""Training: a pure train step, data parallelism, optax optimisers, orbax checkpoints.

Public API (re-exported from private-by-convention modules, one concern each):

* :class:`TrainState`, :func:`create_train_state` (``state.py``);
* :func:`make_optimizer`, :func:`make_schedule` (``optim.py``);
* :func:`train_step`, :func:`eval_step`, :func:`predict_step`, :data:`AXIS_NAME` (``steps.py``);
* :class:`Parallel`, :data:`MODES` (``parallel.py``): ``'none'``, ``'pmap'``, ``'mesh'``;
* :class:`Checkpointer` (``checkpoint.py``);
* :func:`train_and_evaluate`, :func:`validate_config`, :class:`NonFiniteError`,
  :class:`TrainResult` (``loop.py``): what ``python -m experiments.train`` runs;
* :func:`fit`, :func:`evaluate`, :func:`predict`, :class:`ArrayLoader` (``keras.py``): a
  Keras-like layer for notebooks.

>>> from jaxcnn.train import train_and_evaluate
>>> from experiments.configs import cifar10_tutorial
>>> result = train_and_evaluate(cifar10_tutorial.get_config(), '/tmp/cifar10')  # doctest: +SKIP
"""

from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.keras import ArrayLoader, History, evaluate, fit, predict
from jaxcnn.train.loop import (
    NonFiniteError, TrainResult, evaluate_loader, make_loaders, make_model, train_and_evaluate,
    validate_config)
from jaxcnn.train.optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule
from jaxcnn.train.parallel import MODES, Parallel, check_batch_size, maybe_initialize_distributed
from jaxcnn.train.state import TrainState, create_train_state
from jaxcnn.train.steps import AXIS_NAME, eval_step, predict_step, train_step

__all__ = [
    "TrainState", "create_train_state",
    "make_optimizer", "make_schedule", "OPTIMIZERS", "SCHEDULES",
    "train_step", "eval_step", "predict_step", "AXIS_NAME",
    "Parallel", "MODES", "check_batch_size", "maybe_initialize_distributed",
    "Checkpointer",
    "train_and_evaluate", "validate_config", "make_loaders", "make_model", "evaluate_loader",
    "NonFiniteError", "TrainResult",
    "fit", "evaluate", "predict", "ArrayLoader", "History",
]
