"""Trains a model from an ml_collections config; re-running the same command resumes.

    python -m experiments.train --config experiments/configs/cifar10_tutorial.py \
        --workdir runs/cifar10_tutorial [--config.<key>=<value> ...]

This script only parses flags; everything else is :func:`jaxcnn.train.train_and_evaluate`.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxcnn import xla_flags
from jaxcnn.data import DatasetNotFoundError
from jaxcnn.train import NonFiniteError, train_and_evaluate, validate_config

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (experiments/configs/*.py).", lock_config=True)
_XLA_CPU_TUNING = flags.DEFINE_bool(
    "xla_cpu_tuning", True,
    "Add jaxcnn.xla_flags.RECOMMENDED_CPU_FLAGS to XLA_FLAGS (faster CNN training on CPU; "
    "no effect on GPU/TPU). See BENCHMARKS.md.")
_TRACEBACK = flags.DEFINE_bool(
    "traceback", False, "Show the full traceback of a bad-config, missing-data or NaN error.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # orbax logs every save step at INFO; progress and epoch lines are printed anyway.
    logging.set_verbosity(logging.WARNING)
  if _XLA_CPU_TUNING.value:
    added = xla_flags.APPLIED_AT_IMPORT + xla_flags.apply_recommended_cpu_flags()
    if added:
      logging.warning("XLA_FLAGS += %s (--noxla_cpu_tuning to leave them off)", " ".join(added))
  else:
    xla_flags.remove_import_flags()  # `import jaxcnn` added them; before JAX's first computation
  # Errors a user causes (a bad value, missing data, a diverging run) are ValueErrors, a
  # DatasetNotFoundError or a NonFiniteError whose message names the problem and what to do:
  # print that alone. Anything else keeps its traceback.
  try:
    validate_config(_CONFIG.value)
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ValueError, DatasetNotFoundError, NonFiniteError) as e:
    if _TRACEBACK.value:
      raise
    sys.exit(f"error: {e}\n(--traceback shows where it was raised)")


if __name__ == "__main__":
  app.run(main)
