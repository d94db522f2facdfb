"""Trains a model from a config; re-running the same command resumes.

    python -m experiments.train --config cifar10_tutorial --workdir runs/cifar10_tutorial \
        [--config.<key>=<value> ...]

``--config`` takes a shipped config by name (``jaxcnn/configs/<name>.py``, with an optional
``:arg`` for its ``get_config``) or a config file by path.

Several processes (hosts): the same command on each, with ``--config.distributed=True`` (and
``--config.coordinator_address=host:port --config.num_processes=N --config.process_id=i`` where
JAX does not detect them); ``python -m experiments.launch -n N -- <these flags>`` starts N on
one machine. See docs/multi_process.md.

This script only parses flags and turns a user's mistake into one line (``--traceback`` for the
stack); everything else is :func:`jaxcnn.train.train_and_evaluate`.
"""

import difflib
import os
import pathlib
import re
import sys
import tempfile
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

import jaxcnn.cpu
from jaxcnn._errors import brief
from jaxcnn.data import (DatasetNotFoundError, TensorFlowMissingError, check_splits_disjoint,
                         resolve_source)
from experiments import _cli
from jaxcnn import configs, recipes
from jaxcnn.train import NonFiniteError, train_and_evaluate
from jaxcnn.train import config as config_lib
from jaxcnn.train import distributed, faults

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A shipped config by name (cifar10_tutorial, mnist_mlp, ...; see "
    "jaxcnn/configs) or a config file by path.", lock_config=True)
_CPU_ACCELERATION = flags.DEFINE_bool(
    "cpu_acceleration", True,
    "Call jaxcnn.cpu.enable() before JAX starts: measured XLA CPU flags, per-shape conv "
    "formulations, the compilation cache (CPU only; one line says what it turned on). "
    "--nocpu_acceleration: none of it.")
_TRACEBACK = flags.DEFINE_bool(
    "traceback", False, "Show the full traceback of a user error (bad config, missing data, ...).")
flags.mark_flags_as_required(["config", "workdir"])

_HINT = "(--traceback shows where it was raised)"


class UserError(Exception):
  """A mistake in the command line or the environment; its message is the whole story."""


def _fail(message: str, code: int = 1, *, now: bool = False):
  """Prints ``error: <message>`` (one line, then the --traceback hint) and exits; ``now``:
  without the interpreter's shutdown, whose wait for the checkpoint library's threads can hang
  once the file system has refused a write (the run's guard has already cleaned up)."""
  print(f"error: {message}\n{_HINT}" if code == 1 else message, file=sys.stderr)
  distributed.exit_now(code)  # a process of a job: without waiting for the others
  if now:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)


# ------------------------------------------------------------------------------ flag parsing

def _config_keys() -> list[str]:
  """Every dotted key of the schema (jaxcnn.train.config)."""
  return list(config_lib.fields())


def _unknown_key_message(e: BaseException, argv: list[str]) -> str | None:
  """One line for ml_collections' "no such field" error, with a did-you-mean."""
  text = str(e.args[0]) if e.args else str(e)
  m = re.match(r"""^\W*(\w+)""", text)
  if not m:
    return None
  key = m.group(1)
  paths = [a.split("=", 1)[0][len("--config."):] for a in argv if a.startswith("--config.")]
  path = next((p for p in paths if key in p.split(".")), key)
  suggestion = re.search(r'Did you mean "([^"]+)"', text)
  if suggestion:
    parts = path.split(".")
    parts[parts.index(key)] = suggestion.group(1)
    close = [".".join(parts)]
  else:
    close = difflib.get_close_matches(path, _config_keys(), n=1, cutoff=0.6)
  hint = (f"did you mean `--config.{close[0]}`?" if close else
          "the keys are documented in jaxcnn/train/config.py")
  return f"unknown config key `{path}` (in `--config.{path}=...`); {hint}"


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parse, with ml_collections' override errors (a 50-line traceback) made one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:  # a value that does not parse, a missing required flag
    if "--traceback" in argv:
      raise
    _fail(f"{e} (see --helpfull)")
  except (AttributeError, KeyError) as e:
    if "--traceback" in argv:
      raise
    _fail(_unknown_key_message(e, argv) or f"bad `--config` override: {e}")
  except (TypeError, ValueError) as e:
    if "--traceback" in argv:
      raise
    _fail(f"bad `--config` override: {e}")
  except Exception as e:  # pylint: disable=broad-except
    # The config file itself failed to load (a syntax error, a bad import in it).
    if "--traceback" in argv:
      raise
    _fail(f"cannot load the `--config` file: {brief(e)}")


# ------------------------------------------------------------------------------ pre-checks

def _load_config():
  try:
    config = _CONFIG.value
    config.keys()  # the value is lazy: a file that failed to load raises on first use
    return config
  except OSError as e:  # ml_collections' message: what was attempted, the cause on a last line
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    raise UserError(f"cannot load the `--config` file: {lines[-1]}") from None


def _check_workdir(workdir: str) -> pathlib.Path:
  """The workdir, ``~`` expanded, created and writable; else one line saying why not."""
  path = pathlib.Path(workdir).expanduser()
  for parent in [path, *path.parents]:
    if parent.exists():
      if not parent.is_dir():
        where = "is a file" if parent == path else f"lies under the file {str(parent)!r}"
        raise UserError(f"`--workdir` (={workdir!r}) {where}; choose a directory path")
      break
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise UserError(f"`--workdir` (={workdir!r}) is not writable ({type(e).__name__}: "
                    f"{e.strerror or e}); choose a writable directory") from None
  return path


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    # absl's UsageError would print the whole module docstring above the one line that matters.
    _fail(f"unexpected positional argument(s) {argv[1:]}: every option is a flag, "
          "`--name=value` or `--config.<key>=<value>` (see --help)")
  # TensorFlow's start-up notices and absl's INFO lines (orbax logs every save) stay off unless
  # asked for (--verbosity); progress and epoch lines are printed anyway.
  _cli.quiet_tensorflow()
  # SIGTERM (a preempted VM, a scheduler, `kill`) ends the run as Ctrl-C does: during training
  # with a checkpoint of the step it reached, then one line and status 143.
  faults.raise_on_sigterm()
  if _CPU_ACCELERATION.value:
    jaxcnn.cpu.enable()  # before JAX's first computation: XLA reads its flags when it starts
  workdir = None
  # Errors a user causes (a bad value, missing data, a diverging run, a path that cannot be
  # used) name the problem and what to do: print that alone. Anything else keeps its traceback.
  try:
    config = config_lib.validate(_load_config())
    # Joins a multi-process job before anything (the recipe's hooks included) touches a device.
    distributed.initialize(config)
    check_splits_disjoint(config.data.name, config.data.train_split, config.data.eval_split)
    resolve_source(config.data.source, image_folder=config.data.image_folder,
                   data_dir=config.data.data_dir)
    workdir = _check_workdir(_WORKDIR.value)
    # The checkpoint library's leftovers of a failed save or restore (thread logs, callbacks
    # on closed event loops) stay quiet to the end: the failure is this one line.
    with faults.quiet_checkpoint_library():
      train_and_evaluate(config, workdir, **recipes.hooks(config))
  except KeyboardInterrupt as e:  # Ctrl-C, or faults.TrainingStopped (SIGTERM too)
    if _TRACEBACK.value:
      raise
    print(_interrupted_message(e, workdir), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit at once: a checkpoint save the interrupt cut short would otherwise fail noisily in
    # orbax's background threads during interpreter shutdown. Nothing is lost: checkpoints are
    # written to a temporary folder and renamed when complete, and the message names the last
    # complete one, where a re-run resumes.
    os._exit(getattr(e, "exit_code", 130))
  except (faults.WorkdirError, faults.OutOfMemoryError) as e:  # one line, cause and path
    if _TRACEBACK.value:
      raise
    _fail(str(e), now=isinstance(e, faults.WorkdirError))
  except (UserError, ValueError, DatasetNotFoundError, TensorFlowMissingError,
          NonFiniteError) as e:
    if _TRACEBACK.value:
      raise
    _fail(_cli.in_flags(str(e)))
  except OSError as e:  # the file system said no (disk full, permissions, ...)
    if _TRACEBACK.value:
      raise
    failure = faults.write_failure(e, workdir) if workdir is not None else None
    _fail(str(faults.write_error(*failure, workdir)) if failure else f"{type(e).__name__}: {e}",
          now=True)
  except BaseException:  # a bug: its traceback, then out (a job's process must not linger)
    if not distributed.in_job():
      raise
    traceback.print_exc()
    distributed.exit_now(1)


def _interrupted_message(e: KeyboardInterrupt, workdir: pathlib.Path | None) -> str:
  """Where a stop left the run: the step the loop saved before stopping, else the last
  complete checkpoint in the workdir."""
  name = getattr(e, "signal_name", "SIGINT")
  step = getattr(e, "step", None)
  if step is not None:
    return f"stopped ({name}) at step {step}; re-run the same command to resume"
  last = faults.last_complete(workdir) if workdir is not None else None
  if last is not None:
    return (f"stopped ({name}); the last complete checkpoint is step {last[0]}: re-run the "
            "same command to resume from there")
  return f"stopped ({name}) before the first checkpoint; re-running the same command starts over"


if __name__ == "__main__":
  try:
    argv = configs.resolve_argv(sys.argv)
  except ValueError as e:
    _fail(str(e))
  app.run(main, argv=argv, flags_parser=_parse_flags)
