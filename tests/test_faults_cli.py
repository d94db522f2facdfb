"""The faults of a long run through the command line: what the user sees (one line, no
traceback, the exit status) and that the same command then resumes exactly.

Every run is ``python -m experiments.train`` in a subprocess on a tiny MNIST-like folder the
test writes (``jaxcnn.data.write_image_folder``). Faults are real where a test can make them
without privileges (a SIGTERM sent to the process, the workdir removed under it, an address
space too small for the step) and injected where not (the checkpoint library's own write
failing with ENOSPC in its thread); a real full file system and a read-only remount run where
mounting is allowed (root), and skip elsewhere. ``test_faults.py`` covers the same faults in
process, faster.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
from flax import serialization

from jaxcnn.configs import mnist_mlp
from jaxcnn.train import Checkpointer, create_train_state, make_optimizer, validate
from jaxcnn.train.run import make_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
HINT = "(--traceback shows where it was raised)"
TIMEOUT = 240  # seconds: generous for a loaded 2-core machine
STEPS = 24  # 3 epochs of 8 steps

OVERRIDES = {
    "model_kwargs.hidden": "(16,)",  # dropout stays at 0.2: a resume must replay the masks
    "batch_size": "8",
    "eval_batch_size": "8",
    "num_epochs": "3",
    "checkpoint_every_steps": "4",
    "progress": "False",  # "resuming from step ..." then comes as a warning line
    "patience": "0",
    "data.train_split": "train[:64]",
    "data.eval_split": "train[64:]",
}

# Python code run before the CLI in the child (`python -c`): each sets up one fault.
_SLOW_STEPS = """
import time
from jaxcnn.train import run
_make_loaders = run.make_loaders

class _Slow:  # a quarter second per batch: a fault sent from outside lands mid-run
  def __init__(self, inner):
    self.inner = inner
  def __getattr__(self, name):
    return getattr(self.inner, name)
  def epoch(self, *args, **kwargs):
    for batch in self.inner.epoch(*args, **kwargs):
      time.sleep(0.25)
      yield batch

def _slow_loaders(*args, **kwargs):
  train, evaluation = _make_loaders(*args, **kwargs)
  return _Slow(train), evaluation

run.make_loaders = _slow_loaders
"""

# The checkpoint library writes a checkpoint's `meta` in its own thread: for step 12 that write
# gets half its bytes out and fails as a full disk does.
_DISK_FULL_AT_12 = """
import errno, json, os
from orbax.checkpoint import JsonCheckpointHandler
_save_fn = JsonCheckpointHandler._save_fn

async def _full(self, x, directory):
  if x.get("step") != 12:
    return await _save_fn(self, x, directory)
  text = json.dumps(x)
  (directory / "metadata").write_text(text[:len(text) // 2])
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

JsonCheckpointHandler._save_fn = _full
"""


def _address_space(limit_gib):
  # Writable private memory (heap, mmap'd buffers): XLA's allocation beyond it fails.
  return f"""
import resource
resource.setrlimit(resource.RLIMIT_DATA, ({limit_gib} << 30, {limit_gib} << 30))
"""


def _argv(workdir, data, *extra, setup="", config="jaxcnn/configs/mnist_mlp.py",
          overrides=OVERRIDES):
  flags = ["--config", config, "--workdir", str(workdir), f"--config.data.image_folder={data}",
           "--nocpu_acceleration", *(f"--config.{k}={v}" for k, v in overrides.items()), *extra]
  if not setup:
    return [sys.executable, "-m", "experiments.train", *flags]
  run = ("import runpy, sys\nsys.argv[0] = 'experiments/train.py'\n"
         "runpy.run_module('experiments.train', run_name='__main__', alter_sys=True)\n")
  return [sys.executable, "-c", textwrap.dedent(setup) + run, *flags]


def _env():
  return {**os.environ, "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg",
          "TF_CPP_MIN_LOG_LEVEL": "2"}


def _run(argv):
  return subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True,
                        timeout=TIMEOUT)


def _start(argv, log):
  with open(log, "w") as f:  # a file, not a pipe: a full pipe would stall the child
    return subprocess.Popen(argv, cwd=ROOT, env=_env(), stdout=f, stderr=subprocess.STDOUT,
                            text=True)


def _lines(text):
  return [line for line in text.splitlines() if line.strip()]


def _one_error_line(out, *named):
  """Exit status 1, no traceback, and exactly one message line (then the hint) naming
  ``named``; returns the message."""
  assert out.returncode == 1, (out.returncode, out.stderr[-3000:])
  assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
  lines = _lines(out.stderr)
  assert len(lines) == 2 and lines[1] == HINT and not _lines(out.stdout), out.stderr[-3000:]
  assert lines[0].startswith("error: "), lines
  for text in named:
    assert text in lines[0], lines[0]
  return lines[0]


def _wait_for_checkpoint(workdir, proc, log, at_least=1):
  latest = workdir / "checkpoints" / "latest"
  deadline = time.monotonic() + TIMEOUT
  while not (latest.is_dir() and any(p.name.isdigit() and int(p.name) >= at_least
                                     for p in latest.iterdir())):
    assert proc.poll() is None, f"ended ({proc.returncode}):\n{log.read_text()[-3000:]}"
    assert time.monotonic() < deadline, "no checkpoint in time"
    time.sleep(0.05)


def _leftovers(workdir):
  return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")
                if "orbax-checkpoint-tmp" in p.name or p.name.endswith((".tmp", ".tmp.png")))


def _newest_complete(workdir):
  found = [int(p.name) for p in (workdir / "checkpoints").glob("*/*") if p.name.isdigit()
           and p.parent.name in ("latest", "best")]
  return max(found) if found else None


def _final(workdir):
  """The state of ``checkpoints/latest/24`` and the untimed per-epoch records."""
  config = mnist_mlp.get_config()
  config.model_kwargs.hidden = (16,)
  config.batch_size = 8
  template = create_train_state(make_model(config, 10), jax.random.PRNGKey(config.seed),
                                (1, 28, 28, 1), make_optimizer(validate(config), STEPS, 8))
  ckpt = Checkpointer(workdir / "checkpoints", async_save=False)
  try:
    assert ckpt.latest_step() == STEPS
    state, _ = ckpt.restore(template)
  finally:
    ckpt.close()
  records = [{k: v for k, v in json.loads(line).items()
              if not k.endswith(("_seconds", "_per_sec"))}
             for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return serialization.to_state_dict(state), records


def _assert_same_run(workdir, straight_dir):
  got, got_records = _final(workdir)
  want, want_records = _final(straight_dir)
  differ = [jax.tree_util.keystr(path) for (path, a), (_, b) in
            zip(jax.tree_util.tree_flatten_with_path(got)[0],
                jax.tree_util.tree_flatten_with_path(want)[0])
            if not np.array_equal(np.asarray(a), np.asarray(b))]
  assert jax.tree.structure(got) == jax.tree.structure(want) and not differ, differ
  assert got_records == want_records and [r["epoch"] for r in got_records] == [1, 2, 3]


def _resume(workdir, data, step):
  out = _run(_argv(workdir, data))
  assert out.returncode == 0, out.stderr[-3000:]
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  assert f"resuming from step {step} (" in out.stderr, out.stderr[-3000:]
  return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  from jaxcnn.data import write_image_folder
  rng = np.random.default_rng(0)
  labels = np.arange(80) % 10
  images = rng.integers(0, 80, (80, 28, 28, 1)).astype(np.uint8)
  for i, digit in enumerate(labels):  # a class-dependent bar over noise
    images[i, 2 * digit:2 * digit + 8, 4:24, 0] += 150
  return write_image_folder(tmp_path_factory.mktemp("mnist_like"), images, labels,
                            [str(d) for d in range(10)])


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  out = _run(_argv(workdir, data))
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


# -- the main suite: one run each ---------------------------------------------------------------

def test_out_of_memory_is_one_line_naming_the_model_and_the_batch(tmp_path):
  if not sys.platform.startswith("linux"):
    pytest.skip("RLIMIT_DATA bounds mmap'd memory on Linux only")
  from jaxcnn.data import DATASETS, write_image_folder
  rng = np.random.default_rng(0)
  folder = write_image_folder(tmp_path / "cifar_like",
                              rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
                              np.arange(40) % 10, DATASETS["cifar10"].class_names)
  config = tmp_path / "wide.py"
  config.write_text(textwrap.dedent("""
      import ml_collections
      from jaxcnn.configs import cifar10_tutorial

      def get_config():
        config = cifar10_tutorial.get_config()
        config.model = "stridenet"  # 262,144 channels: 7M parameters, 268 MB per image
        config.model_kwargs = ml_collections.ConfigDict({"features": (2**18,), "head": "gap"})
        return config
      """))
  overrides = {"batch_size": "32", "eval_batch_size": "32", "progress": "False",
               "data.train_split": "train[:32]", "data.eval_split": "train[32:]"}
  out = _run(_argv(tmp_path / "run", folder, setup=_address_space(4), config=str(config),
                   overrides=overrides))
  message = _one_error_line(out, "error: out of memory on the CPU training stridenet(",
                            "with batch_size=32: XLA could not allocate ",
                            "; lower `batch_size`, or use a smaller model")
  needed = float(re.search(r"could not allocate ([\d.]+) GB", message).group(1))
  assert needed > 4  # more than the 4 GiB the step was allowed


def test_a_workdir_removed_mid_run_stops_it_writing_nothing_more(data, tmp_path):
  workdir = tmp_path / "run"
  log = tmp_path / "run.log"
  proc = _start(_argv(workdir, data, "--config.num_epochs=50", setup=_SLOW_STEPS), log)
  try:
    _wait_for_checkpoint(workdir, proc, log)
    shutil.rmtree(workdir)
    proc.wait(timeout=TIMEOUT)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  out = subprocess.CompletedProcess(proc.args, proc.returncode, "", log.read_text())
  _one_error_line(out, f"error: the workdir {workdir} was removed while the run was going: "
                       "stopped", "writing nothing more; running again starts over")
  assert not workdir.exists()  # nothing was written there again, not even a checkpoint


# -- slow: a fault, then the same command resumes exactly ---------------------------------------

@pytest.mark.slow
def test_sigterm_saves_that_step_and_the_same_command_resumes_exactly(data, straight,
                                                                      tmp_path):
  workdir, log = tmp_path / "run", tmp_path / "run.log"
  proc = _start(_argv(workdir, data, setup=_SLOW_STEPS), log)
  try:
    _wait_for_checkpoint(workdir, proc, log)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=TIMEOUT)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  text = log.read_text()
  assert proc.returncode == 128 + signal.SIGTERM, text[-3000:]
  assert "Traceback" not in text, text[-3000:]
  lines = _lines(text)
  assert len(lines) == 1, text[-3000:]
  m = re.fullmatch(r"stopped \(SIGTERM\) at step (\d+); re-run the same command to resume",
                   lines[0])
  assert m, lines
  step = int(m.group(1))
  assert 4 <= step < STEPS and (workdir / "checkpoints" / "latest" / str(step)).is_dir()
  assert _leftovers(workdir) == []

  _resume(workdir, data, step)
  _assert_same_run(workdir, straight)


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_same_command_resumes_exactly(data, straight,
                                                                      tmp_path):
  workdir = tmp_path / "run"
  out = _run(_argv(workdir, data, setup=_DISK_FULL_AT_12))
  last = _newest_complete(workdir)  # latest/8, or best/16 when epoch 2 was a new best
  where = [p for p in (workdir / "checkpoints").glob(f"*/{last}")][0]
  _one_error_line(out, "error: cannot write the checkpoint of step 12 "
                       f"({workdir / 'checkpoints' / 'latest' / '12'}): no space left on the "
                       f"device (ENOSPC); the last complete checkpoint is step {last} ({where}): "
                       "free some space there, then run again with the same workdir to resume "
                       "from it")
  assert _leftovers(workdir) == []
  _resume(workdir, data, last)
  _assert_same_run(workdir, straight)


@pytest.mark.slow
def test_a_damaged_checkpoint_is_called_damaged_and_the_run_resumes_exactly(data, straight,
                                                                           tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(straight, workdir)
  damaged = []
  for kind in ("latest", "best"):  # step 24 is damaged wherever it was saved
    step_dir = workdir / "checkpoints" / kind / str(STEPS)
    if step_dir.is_dir():
      biggest = max((p for p in step_dir.rglob("*") if p.is_file()),
                    key=lambda p: p.stat().st_size)
      os.truncate(biggest, biggest.stat().st_size // 2)
      damaged.append(step_dir)
  out = _resume(workdir, data, 20)
  assert "does not fit" not in out.stderr and "Event loop" not in out.stderr
  said = [line for line in _lines(out.stderr) if "damaged checkpoint" in line]
  assert len(said) == 1 and f"step 24 ({damaged[0]}): the array " in said[0], out.stderr
  assert said[0].endswith(f"resuming from step 20 ({workdir / 'checkpoints/latest/20'}) instead")
  assert (workdir / "checkpoints" / "damaged" / "latest-24").is_dir()
  _assert_same_run(workdir, straight)


def _mount(*args):
  return subprocess.run(["mount", *args], capture_output=True, text=True).returncode == 0


@pytest.mark.slow
def test_a_really_full_file_system(data, straight, tmp_path):
  small = tmp_path / "small"
  small.mkdir()
  if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=400k", "tmpfs", str(small)):
    pytest.skip("needs a tmpfs mount (root, and mounting allowed)")
  try:
    workdir = small / "run"
    out = _run(_argv(workdir, data))
    _one_error_line(out, ": no space left on the device (ENOSPC); ")
    assert _leftovers(workdir) == []
    assert _mount("-o", "remount,size=16m", str(small))  # space freed
    _resume(workdir, data, _newest_complete(workdir))
    _assert_same_run(workdir, straight)
  finally:
    subprocess.run(["umount", str(small)], capture_output=True)


@pytest.mark.slow
def test_a_workdir_made_read_only_mid_run(data, tmp_path):
  workdir, log = tmp_path / "run", tmp_path / "run.log"
  proc = _start(_argv(workdir, data, "--config.num_epochs=50", setup=_SLOW_STEPS), log)
  mounted = False
  try:
    _wait_for_checkpoint(workdir, proc, log)
    if os.geteuid() == 0:  # root writes through any chmod: a read-only bind mount instead
      mounted = (_mount("--bind", str(workdir), str(workdir))
                 and _mount("-o", "remount,bind,ro", str(workdir)))
      if not mounted:
        pytest.skip("needs a read-only bind mount (mounting allowed)")
    else:
      for p in [workdir, *workdir.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    proc.wait(timeout=TIMEOUT)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, "", log.read_text())
    _one_error_line(out, "error: cannot write ",
                    "(EROFS)" if mounted else "permission denied (EACCES)",
                    "; the last complete checkpoint is step ",
                    "make the workdir writable, then run again with the same workdir")
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
    if mounted:
      subprocess.run(["umount", str(workdir)], capture_output=True)
    for p in [workdir, *workdir.rglob("*")] if workdir.exists() else []:
      p.chmod(p.stat().st_mode | 0o200)
