"""``kill -9`` mid-run, then the same command again: the run ends exactly as an uninterrupted one.

The CLI's resume promise, end to end: same data order, same dropout masks, and bit-equal final
parameters, optimiser state and per-epoch metrics (timings aside).

Everything goes through ``python -m experiments.train`` in subprocesses, on a tiny synthetic
MNIST-like class-per-folder copy, so the real data path, the real checkpoints and a real
``SIGKILL`` (no ``finally``, no orbax ``wait``) are exercised.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import serialization
from PIL import Image

from jaxcnn.configs import mnist_mlp
from jaxcnn.train import Checkpointer, create_train_state, make_optimizer, validate
from jaxcnn.train.run import make_model

ROOT = pathlib.Path(__file__).resolve().parents[1]

PER_CLASS = 40  # 400 images: train[:320] (40 steps of 8 per epoch), eval train[320:]
STEPS_PER_EPOCH = 40
NUM_STEPS = 300  # 7.5 epochs: the last epoch is partial
CKPT_EVERY = 15  # mid-epoch checkpoints (15, 30, 45, ...) as well as the epoch ends
KILL_AFTER = 60  # kill once a checkpoint at step >= this exists: mid-epoch 2, long before the end
TIMEOUT = 180  # seconds; a generous bound for a loaded 2-core machine

OVERRIDES = {
    "model_kwargs.hidden": "(16,)",  # dropout stays at the config's 0.2: masks must replay
    "batch_size": "8",
    "eval_batch_size": "8",
    "num_train_steps": str(NUM_STEPS),
    "checkpoint_every_steps": str(CKPT_EVERY),
    # progress=True: with progress off, "resuming from step ..." goes to log.info, which the CLI
    # hides (absl verbosity WARNING); the bar itself changes nothing that is computed.
    "progress": "True",
    "patience": "0",
    "data.train_split": "train[:320]",
    "data.eval_split": "train[320:]",
}

# Wall-clock fields differ between any two runs; everything else must match exactly.
_TIMING = re.compile(r".*(_seconds|_per_sec)$")


def _write_mnist_like(root: pathlib.Path) -> None:
  """``root/train/<digit>/<i>.png``: 28x28 grayscale, a class-dependent bar over noise."""
  rng = np.random.default_rng(0)
  for digit in range(10):
    folder = root / "train" / str(digit)
    folder.mkdir(parents=True)
    for i in range(PER_CLASS):
      img = rng.integers(0, 80, (28, 28)).astype(np.uint8)
      img[2 * digit:2 * digit + 8, 4:24] += 150
      Image.fromarray(img).save(folder / f"{i:03d}.png")  # uint8 [28, 28]: mode L


def _command(workdir: pathlib.Path, data: pathlib.Path) -> list[str]:
  return ([sys.executable, "-m", "experiments.train",
           "--config", "jaxcnn/configs/mnist_mlp.py", "--workdir", str(workdir),
           f"--config.data.image_folder={data}"]
          + [f"--config.{k}={v}" for k, v in OVERRIDES.items()])


def _env(cache: pathlib.Path) -> dict[str, str]:
  env = dict(os.environ)
  env.update(JAXCNN_CACHE_DIR=str(cache),  # nothing lands in ~/.cache
             JAX_PLATFORMS="cpu",  # the promise is tested on CPU, whatever the host has
             MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
  return env


def _start(workdir, data, env, log_path) -> subprocess.Popen:
  log = open(log_path, "w")  # a file, not a pipe: a full pipe would stall the child
  proc = subprocess.Popen(_command(workdir, data), cwd=ROOT, env=env, stdout=log,
                          stderr=subprocess.STDOUT, text=True)
  log.close()  # the child holds its own copy of the descriptor
  return proc


def _finish(proc: subprocess.Popen, log_path: pathlib.Path) -> str:
  proc.wait(timeout=TIMEOUT)
  out = log_path.read_text()
  assert proc.returncode == 0, f"{proc.args} failed ({proc.returncode}):\n{out[-3000:]}"
  return out


def _saved_steps(workdir: pathlib.Path) -> list[int]:
  """Finalised ``checkpoints/latest/<step>`` dirs (orbax's ``*.orbax-checkpoint-tmp-*`` are
  renamed to ``<step>`` only once complete)."""
  latest = workdir / "checkpoints" / "latest"
  if not latest.is_dir():
    return []
  return sorted(int(p.name) for p in latest.iterdir() if p.name.isdigit())


def _untimed(record: dict) -> dict:
  return {k: v for k, v in record.items() if not _TIMING.match(k)}


def _records(workdir: pathlib.Path) -> list[dict]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [_untimed(json.loads(line)) for line in lines]


def _final_state(workdir: pathlib.Path):
  """The latest checkpoint, restored onto a template built as ``train_and_evaluate`` does."""
  config = mnist_mlp.get_config()
  config.model_kwargs.hidden = (16,)
  config.batch_size = 8
  model = make_model(config, num_classes=10)
  tx = make_optimizer(validate(config), NUM_STEPS, STEPS_PER_EPOCH)
  template = create_train_state(model, jax.random.PRNGKey(config.seed), (1, 28, 28, 1), tx)
  ckpt = Checkpointer(workdir / "checkpoints", async_save=False)
  try:
    assert ckpt.latest_step() == NUM_STEPS
    state, meta = ckpt.restore(template)
  finally:
    ckpt.close()
  return serialization.to_state_dict(state), meta


@pytest.mark.slow
def test_kill_9_then_same_command_resumes_exactly(tmp_path):
  data = tmp_path / "mnist_like"
  _write_mnist_like(data)
  env = _env(tmp_path / "cache")
  straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"

  # The straight run goes alongside the interrupted one (two cores; it also loads the machine,
  # so the kill is tested under contention).
  procs = []
  try:
    procs.append(straight := _start(straight_dir, data, env, tmp_path / "straight.log"))
    procs.append(victim := _start(killed_dir, data, env, tmp_path / "killed.log"))
    deadline = time.monotonic() + TIMEOUT
    while not (_saved_steps(killed_dir) and _saved_steps(killed_dir)[-1] >= KILL_AFTER):
      assert victim.poll() is None, (
          f"the run ended ({victim.returncode}) before a checkpoint at step >= {KILL_AFTER}:\n"
          + (tmp_path / "killed.log").read_text()[-3000:])
      assert time.monotonic() < deadline, f"no checkpoint at step >= {KILL_AFTER} in time"
      time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=TIMEOUT)
    assert victim.returncode == -signal.SIGKILL  # killed, not finished
    at_kill = _saved_steps(killed_dir)
    assert KILL_AFTER <= at_kill[-1] < NUM_STEPS, at_kill
    assert len(_records(killed_dir)) < NUM_STEPS / STEPS_PER_EPOCH  # the run was cut short

    # The same command again, to completion, from the newest finished save.
    procs.append(resumed := _start(killed_dir, data, env, tmp_path / "resumed.log"))
    out = _finish(resumed, tmp_path / "resumed.log")
    assert f"resuming from step {at_kill[-1]} " in out, out[-3000:]
    _finish(straight, tmp_path / "straight.log")
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()

  # Same final state, bit for bit: params, optimiser moments, step and base key.
  want, want_meta = _final_state(straight_dir)
  got, got_meta = _final_state(killed_dir)
  want_leaves, want_tree = jax.tree_util.tree_flatten_with_path(want)
  got_leaves, got_tree = jax.tree_util.tree_flatten_with_path(got)
  assert got_tree == want_tree
  differ = [jax.tree_util.keystr(path) for (path, w), (_, g) in zip(want_leaves, got_leaves)
            if not np.array_equal(np.asarray(g), np.asarray(w))]
  assert not differ, f"leaves that differ from the straight run: {differ}"
  assert int(got["step"]) == NUM_STEPS

  # Same per-epoch metrics: every field but the wall-clock ones, each epoch listed once.
  want_records, got_records = _records(straight_dir), _records(killed_dir)
  assert [r["epoch"] for r in want_records] == list(range(1, 9))
  assert got_records == want_records
  assert [_untimed(r) for r in got_meta["history"]] == want_records
  assert [_untimed(r) for r in want_meta["history"]] == want_records
