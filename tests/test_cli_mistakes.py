"""User mistakes through the train CLI: exit status 1, one message line (plus the ``--traceback``
hint), no traceback, and the value named; ``--traceback`` shows the stack. Ctrl-C exits 130 with
one line saying where the run stopped and how to resume."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "jaxcnn/configs/cifar10_tutorial.py"
HINT = "(--traceback shows where it was raised)"


def _cli(*args, env=None, config=CONFIG, workdir):
  argv = [sys.executable, "-m", "experiments.train", *(["--config", config] if config else []),
          "--workdir", str(workdir), *args]
  return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120,
                        env={**os.environ, **(env or {})})


def _one_line_error(out, *named):
  """The run failed with exactly one message line (plus the --traceback hint) naming ``named``."""
  assert out.returncode == 1, (out.returncode, out.stderr[-3000:])
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert lines[-2:][-1] == HINT and len(lines) == 2, out.stderr[-3000:]
  message = lines[0]
  assert message.startswith("error: "), message
  for text in named:
    assert text in message, message
  return message


def _read_only_dir() -> str:
  # As root (this project's machines and CI) chmod does not stop writes; sysfs does.
  if os.geteuid() == 0:
    return "/sys/kernel/jaxcnn-run"
  pytest.skip("needs root for a directory no chmod can open")


@pytest.mark.parametrize("case", [
    # (id, args, named values)
    ("unknown key", ["--config.bogus=1"], ["`bogus`", "--config.bogus"]),
    ("misspelled key", ["--config.data.imagefolder=x"],
     ["`data.imagefolder`", "did you mean `--config.data.image_folder`"]),
    ("value that does not parse", ["--config.batch_size=abc"], ["batch_size=abc"]),
    ("unknown data source", ["--config.data.source=tdfs"], ["`data.source` (='tdfs')", "download"]),
    ("eval split overlapping train", ["--config.data.eval_split=train[40000:]"],
     ["overlaps", "train[40000:]", "5000 examples"]),
    ("model_kwargs the model does not take", ["--config.model=stridenet"],
     ["`model_kwargs.hidden`", "'stridenet'"]),
], ids=lambda c: c[0])
def test_config_mistakes(case, tmp_path):
  _, args, named = case
  _one_line_error(_cli(*args, workdir=tmp_path / "run"), *named)
  assert not (tmp_path / "run").exists()  # refused before anything was written


def test_stray_positional_argument(tmp_path):
  # One line, not absl's usage text (the module docstring) above the message.
  _one_line_error(_cli("extra_arg", workdir=tmp_path / "run"), "['extra_arg']",
                  "`--config.<key>=<value>`")


def test_missing_config_file(tmp_path):
  _one_line_error(_cli(config="jaxcnn/configs/cifar10_tutrial.py", workdir=tmp_path),
                  "cifar10_tutrial.py", "No such file")


def test_config_file_with_a_syntax_error(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config(:\n")
  _one_line_error(_cli(config=str(bad), workdir=tmp_path / "run"), "SyntaxError", "bad.py")


def test_workdir_is_a_file(tmp_path):
  f = tmp_path / "notes.txt"
  f.write_text("")
  _one_line_error(_cli(workdir=f), "`--workdir`", "notes.txt", "is a file")
  _one_line_error(_cli(workdir=f / "run"), "lies under the file", "notes.txt")


def test_workdir_not_writable(tmp_path):
  workdir = _read_only_dir()
  _one_line_error(_cli(workdir=workdir), workdir, "not writable")


def test_model_kwargs_settable_from_the_command_line(tmp_path):
  # `--config.model_kwargs.hidden` is a known key: the override parses and the run stops at the
  # next, deliberate mistake.
  out = _cli("--config.model_kwargs.hidden=16", "--config.optimizer=rmsprop",
             workdir=tmp_path)
  _one_line_error(out, "'rmsprop'")


def test_tilde_in_a_data_path_is_home(tmp_path):
  # '~' is expanded (not a folder literally named '~'): '~/cifar' is found, and the run stops
  # at the next, deliberate mistake (the overlapping split).
  (tmp_path / "cifar").mkdir()
  out = _cli("--config.data.image_folder=~/cifar", "--config.data.eval_split=train[40000:]",
             workdir=tmp_path / "run", env={"HOME": str(tmp_path)})
  _one_line_error(out, "overlaps")


def test_traceback_flag_still_shows_the_stack(tmp_path):
  # --traceback shows the stack, for a config mistake and for a data mistake alike.
  for args in (["--config.bogus=1"], ["--config.data.eval_split=train[40000:]"]):
    out = _cli(*args, "--traceback", workdir=tmp_path / "run")
    assert out.returncode != 0 and "Traceback" in out.stderr


def _tiny_cifar(root: pathlib.Path, per_class: int = 4) -> pathlib.Path:
  from jaxcnn.data import DATASETS
  rng = np.random.default_rng(0)
  for cls in DATASETS["cifar10"].class_names:
    d = root / "train" / cls
    d.mkdir(parents=True)
    for i in range(per_class):
      Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
  return root


# `python -m experiments.train` with Python's own SIGINT handler, as a terminal starts it. Under
# a test run started in the background (`pytest ... &` in a script) the child would inherit SIGINT
# ignored, Python would then install no handler, and Ctrl-C would never arrive.
_TRAIN_WITH_SIGINT = [
    sys.executable, "-c", "import runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'experiments/train.py'; "
    "runpy.run_module('experiments.train', run_name='__main__', alter_sys=True)"]


@pytest.mark.slow
def test_ctrl_c_says_where_it_stopped_and_how_to_resume(tmp_path):
  # Also: an unwritable cache runs uncached, saying so once.
  root = _tiny_cifar(tmp_path / "cifar")
  workdir = tmp_path / "run"
  argv = [*_TRAIN_WITH_SIGINT, "--config", CONFIG, "--workdir",
          str(workdir), f"--config.data.image_folder={root}",
          "--config.data.train_split=train[:32]", "--config.data.eval_split=train[32:]",
          "--config.batch_size=4", "--config.eval_batch_size=8", "--config.num_epochs=100000",
          "--config.checkpoint_every_steps=2", "--config.progress=False"]
  env = {**os.environ, "JAXCNN_CACHE_DIR": _read_only_dir() + "-cache"}
  proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env)
  latest = workdir / "checkpoints" / "latest"
  deadline = time.time() + 300  # imports, decoding and compilation come first; slow on a busy CI
  while time.time() < deadline and not (latest.is_dir() and any(
      p.name.isdigit() for p in latest.iterdir())):
    time.sleep(0.2)
  time.sleep(0.5)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=180)
  assert proc.returncode == 130, err[-3000:]
  assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
  lines = [line for line in err.splitlines() if line.strip()]
  # The step the interrupt reached is checkpointed before the run stops (tests/test_faults*.py).
  assert lines[-1].startswith("stopped (SIGINT) at step "), err[-3000:]
  assert lines[-1].endswith("; re-run the same command to resume")
  step = int(lines[-1].split("step ")[1].split(";")[0])
  assert step > 0 and (latest / str(step)).is_dir()
  assert sum("running uncached" in line for line in lines) == 1, err[-3000:]
