"""Training: one loop, its callers, and the values they take.

What users call (the rest is reachable through the modules):

* runs: :func:`train_and_evaluate` (``run.py``: a resumable run in a workdir; what
  ``python -m experiments.train`` runs) and :func:`fit` / :func:`evaluate` / :func:`predict`
  with :class:`Callback`, :class:`SaveBest` and :class:`History` (``keras.py``: Keras-like, in
  memory);
* the configuration: :func:`defaults` and :func:`validate` -> :class:`Config` (``config.py``:
  every key once, with its default and check);
* the step and its state: :func:`train_step`, :func:`eval_step`, :func:`predict_step`,
  :func:`tta_logits` (``steps.py``), :class:`TrainState`, :func:`create_train_state`
  (``state.py``), :data:`AXIS_NAME`;
* values a run takes: :func:`make_optimizer`, :func:`register_optimizer` (``optim.py``, with the
  recipe building blocks: ``partition``, ``param_labels``, ``sgd_nesterov``, ``muon``, ...),
  :func:`ema`, :func:`lookahead` (``average.py``);
* :class:`Checkpointer` (``checkpoint.py``), :class:`Parallel` (``parallel.py``: ``'none'``,
  ``'pmap'``, ``'mesh'``), :class:`NonFiniteError`, :class:`TrainResult`;
* several processes (``distributed.py``): joining the job before any device is touched, and
  stopping every process with one line when one is lost (docs/multi_process.md).

The loop itself (``loop.py``: epochs, evaluation, early stopping, hooks) is shared by every
caller; ``run.py`` owns the workdir (lock, records, checkpoints, resume rules).

>>> from jaxcnn.train import train_and_evaluate
>>> from jaxcnn.configs import cifar10_tutorial
>>> result = train_and_evaluate(cifar10_tutorial.get_config(), '/tmp/cifar10')  # doctest: +SKIP
"""

from jaxcnn.train import optim
from jaxcnn.train.average import Averager, ema, lookahead
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.config import Config, defaults, validate
from jaxcnn.train.keras import Callback, History, SaveBest, evaluate, fit, predict
from jaxcnn.train.loop import NonFiniteError
from jaxcnn.train.optim import make_optimizer
from jaxcnn.train.optim import register as register_optimizer
from jaxcnn.train.parallel import Parallel
from jaxcnn.train.run import TrainResult, train_and_evaluate
from jaxcnn.train.state import TrainState, create_train_state
from jaxcnn.train.steps import AXIS_NAME, eval_step, predict_step, train_step, tta_logits

__all__ = [
    "train_and_evaluate", "TrainResult", "fit", "evaluate", "predict", "Callback", "SaveBest",
    "History", "Config", "defaults", "validate", "train_step", "eval_step", "predict_step",
    "tta_logits", "TrainState", "create_train_state", "AXIS_NAME", "make_optimizer",
    "register_optimizer", "optim", "Averager", "ema", "lookahead", "Checkpointer", "Parallel",
    "NonFiniteError",
]
