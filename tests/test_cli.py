"""The train CLI: a user's mistake gets one clear line, not a traceback."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train(*args, tmp_path):
  return subprocess.run(
      [sys.executable, "-m", "experiments.train",
       "--config", "jaxcnn/configs/cifar10_tutorial.py", "--workdir", str(tmp_path), *args],
      cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_bad_config_value_is_one_clear_message(tmp_path):
  out = _train("--config.optimizer=rmsprop", tmp_path=tmp_path)
  assert out.returncode != 0
  assert "error: unknown `optimizer` (='rmsprop')" in out.stderr, out.stderr
  assert "Traceback" not in out.stderr
  assert not (tmp_path / "checkpoints").exists()  # failed before anything was written


def test_traceback_flag_shows_where(tmp_path):
  out = _train("--config.optimizer=rmsprop", "--traceback", tmp_path=tmp_path)
  assert out.returncode != 0 and "Traceback" in out.stderr


def test_cpu_acceleration_is_on_by_default_saying_so_and_off_with_the_flag(tmp_path):
  on = _train("--config.optimizer=rmsprop", tmp_path=tmp_path)
  assert [l for l in on.stdout.splitlines() if l.startswith("jaxcnn.cpu: ")], on.stdout
  off = _train("--config.optimizer=rmsprop", "--nocpu_acceleration", tmp_path=tmp_path)
  assert "jaxcnn.cpu" not in off.stdout and off.returncode == on.returncode != 0
