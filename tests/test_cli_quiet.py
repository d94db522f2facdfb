"""The command lines' shared helpers (experiments/_cli.py): an offline data error is one line,
worded in the flags the user types, with no TensorFlow start-up lines before it."""

import importlib.util
import os
import subprocess
import sys
import pathlib

import pytest

from experiments import _cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_in_flags_names_the_flag_the_user_types():
  msg = ("For a local copy set `image_folder` to a folder or tarball, or `data_dir` to a "
         "prepared tfds directory.")
  assert _cli.in_flags(msg) == (
      "For a local copy set `--config.data.image_folder` to a folder or tarball, or "
      "`--config.data.data_dir` to a prepared tfds directory.")
  assert _cli.in_flags(msg, {"image_folder": "--image-folder"}).startswith(
      "For a local copy set `--image-folder` to")
  assert _cli.in_flags("`batch_size` (=0) must be an int >= 1") == (
      "`batch_size` (=0) must be an int >= 1")  # not a data key: unchanged


@pytest.mark.tf
def test_quiet_tensorflow_keeps_its_start_up_lines_off_stderr():
  code = ("from absl import flags; flags.FLAGS(['x']); from experiments import _cli; "
          "_cli.quiet_tensorflow(); import tensorflow")
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=240)
  assert out.returncode == 0, out.stderr
  assert out.stderr == "", out.stderr


def test_speedrun_without_data_says_one_line_naming_its_flag(tmp_path):
  # source='download' with a fresh cache and no network: the archive cannot be fetched.
  env = dict(os.environ, HOME=str(tmp_path), JAXCNN_CACHE_DIR=str(tmp_path / "cache"))
  out = subprocess.run(
      [sys.executable, "-m", "experiments.speedrun", "--config", "speedrun:tiny",
       "--nocpu_acceleration", "--config.data.data_dir", str(tmp_path / "missing")],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
  lines = out.stderr.strip().splitlines()
  assert out.returncode == 1 and len(lines) == 1, out.stderr
  assert lines[0].startswith("error: ") and "--config.data.data_dir" in lines[0], lines[0]
  if importlib.util.find_spec("tensorflow") is None:  # the tfds route is named, with the fixes
    assert "needs TensorFlow" in lines[0] and "source=download" in lines[0], lines[0]
  else:  # the prepared tfds directory is looked for, and is not there
    assert "missing" in lines[0], lines[0]
