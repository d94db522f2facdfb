"""The faults of a long run, in process (:mod:`jaxcnn.train.faults`): a stop signal, a failed
save, a damaged checkpoint, a vanished workdir, out of memory.

Each fault is met by ``train_and_evaluate`` itself, with the loaders replaced by tiny in-memory
ones (as in ``test_train_loop.py``) and the fault set off at a chosen step by the loader: a real
signal to this process, a write of the checkpoint library failing with ENOSPC in its own
thread, a truncated file. Each asserts the one exception and its message, what is left on disk,
and that running again resumes exactly. ``test_faults_cli.py`` does the same through the
command line.
"""

import errno
import json
import logging
import os
import pathlib
import shutil
import signal

import jax
import numpy as np
import pytest

from jaxcnn.configs import mnist_mlp
from jaxcnn.train import Checkpointer, create_train_state, faults, run, train_and_evaluate
from jaxcnn.train import validate
from jaxcnn.train.keras import ArrayLoader
from jaxcnn.train.optim import make_optimizer

STEPS = 9  # 3 epochs of 3 steps; checkpoints every 2 steps and at every epoch end


def _config(**overrides):
  config = mnist_mlp.get_config()
  config.model_kwargs.hidden = (16,)
  config.model_kwargs.dropout = 0.3  # a resumed run must replay the same masks
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = STEPS
  config.checkpoint_every_steps = 2
  config.patience = 0
  config.log_every_steps = 100
  config.progress = False
  config.plots = False
  for key, value in overrides.items():
    config[key] = value
  return config


def _loaders():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(36, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, 36).astype(np.int32)
  return (ArrayLoader(x[:24], y[:24], 8, shuffle=True, drop_remainder=True),  # 3 steps/epoch
          ArrayLoader(x[24:], y[24:], 8))


class _AtStep:
  """A train loader that calls ``action()`` just before it yields the batch of global step
  ``at`` (0-based): the fault then meets the run between two steps."""

  def __init__(self, inner, at, action):
    self.inner, self.at, self.action = inner, at, action
    self.batch_size, self.steps_per_epoch = inner.batch_size, inner.steps_per_epoch
    self.num_examples = inner.num_examples

  def epoch(self, epoch, start_step=0):
    for i, batch in enumerate(self.inner.epoch(epoch, start_step), start_step):
      if epoch * self.steps_per_epoch + i == self.at:
        self.action()
      yield batch


def _use(monkeypatch, at=None, action=None):
  train, evaluation = _loaders()
  if action is not None:
    train = _AtStep(train, at, action)
  monkeypatch.setattr(run, "make_loaders", lambda config, info, **kw: (train, evaluation))


def _untimed(records):
  return [{k: v for k, v in r.items() if not k.endswith(("_seconds", "_per_sec"))}
          for r in records]


def _same(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def _assert_exact(result, straight, workdir):
  """The resumed run ended where the straight one did: state bit for bit, same records."""
  assert int(result.state.step) == STEPS
  assert _same(result.state.params, straight.state.params)
  assert _same(result.state.opt_state, straight.state.opt_state)
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  assert _untimed(json.loads(line) for line in lines) == _untimed(straight.history)


def _leftovers(workdir):
  return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")
                if "orbax-checkpoint-tmp" in p.name or p.name.endswith((".tmp", ".tmp.png")))


@pytest.fixture(scope="module", autouse=True)
def quiet_checkpoint_library():
  """Reads of a damaged checkpoint are cut short on purpose here: the checkpoint library's
  leftovers of those (an asyncio callback on a closed loop, moments later) stay quiet, as they
  do inside a run and on the command line."""
  with faults.quiet_checkpoint_library():
    yield


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  with pytest.MonkeyPatch.context() as mp:
    _use(mp)
    return train_and_evaluate(_config(), tmp_path_factory.mktemp("straight"))


@pytest.fixture
def signals_delivered():
  """SIGINT raising KeyboardInterrupt as in a terminal (a test worker may inherit it ignored,
  and an ignored signal stays ignored); every handler put back after the test."""
  before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  signal.signal(signal.SIGINT, signal.default_int_handler)
  yield before
  for s, handler in before.items():
    signal.signal(s, handler)


# -- stop signals -------------------------------------------------------------------------------

@pytest.mark.parametrize("name,at", [
    ("SIGTERM", 4),  # mid-epoch 2: the checkpoint holds the epoch's partial sums
    ("SIGINT", 2),   # the last step of epoch 1: the stop waits for its evaluation and record
], ids=["sigterm-mid-epoch", "sigint-epoch-end"])
def test_a_stop_signal_checkpoints_that_step_then_resumes_exactly(
    name, at, straight, signals_delivered, tmp_path, monkeypatch):
  sig = getattr(signal, name)
  handler = signal.getsignal(sig)
  _use(monkeypatch, at, lambda: os.kill(os.getpid(), sig))
  with pytest.raises(faults.TrainingStopped) as info:
    train_and_evaluate(_config(), tmp_path)
  stopped = info.value
  assert isinstance(stopped, KeyboardInterrupt)
  assert (stopped.signal_name, stopped.step) == (name, at + 1)  # the step that was running
  assert stopped.exit_code == 128 + sig
  assert f"stopped ({name}) at step {at + 1}" in str(stopped)
  assert signal.getsignal(sig) is handler  # the run's handler is gone
  assert Checkpointer(tmp_path / "checkpoints").latest_step() == at + 1
  epochs_done = (at + 1) // 3
  assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == epochs_done
  assert _leftovers(tmp_path) == []

  _use(monkeypatch)
  _assert_exact(train_and_evaluate(_config(), tmp_path), straight, tmp_path)


def test_a_second_signal_stops_at_once(signals_delivered, tmp_path, monkeypatch):
  def twice():
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)

  _use(monkeypatch, 5, twice)
  with pytest.raises(faults.TrainingStopped) as info:
    train_and_evaluate(_config(), tmp_path)
  assert info.value.step is None and info.value.signal_name == "SIGTERM"
  assert Checkpointer(tmp_path / "checkpoints").latest_step() == 4  # the last regular save


def test_stop_request_leaves_an_ignored_signal_ignored(signals_delivered):
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  with faults.StopRequest():
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- a failed save --------------------------------------------------------------------------------

def _fail_save_of_step(monkeypatch, failing_step, code=errno.ENOSPC):
  """The checkpoint library writes a checkpoint's ``meta`` in its own thread: for step
  ``failing_step`` that write gets half its bytes out, then fails with ``code``."""
  from orbax.checkpoint import JsonCheckpointHandler
  save = JsonCheckpointHandler._save_fn

  async def failing(self, x, directory):
    if x.get("step") != failing_step:
      return await save(self, x, directory)
    text = json.dumps(x)
    (directory / "metadata").write_text(text[:len(text) // 2])
    raise OSError(code, os.strerror(code))

  monkeypatch.setattr(JsonCheckpointHandler, "_save_fn", failing)


def test_a_failed_save_is_one_error_and_the_run_resumes_exactly(straight, tmp_path,
                                                                 monkeypatch, caplog):
  _use(monkeypatch)
  _fail_save_of_step(monkeypatch, 4)
  with caplog.at_level(logging.WARNING), pytest.raises(faults.WorkdirError) as info:
    # Saves every 2 steps only (not at epoch ends): 2, then 4, which fails in the background
    # and is met by the next save, at 8.
    train_and_evaluate(_config(checkpoint_every_epoch=False), tmp_path)
  latest = tmp_path / "checkpoints" / "latest"
  assert str(info.value) == (
      f"cannot write the checkpoint of step 4 ({latest / '4'}): no space left on the device "
      f"(ENOSPC); the last complete checkpoint is step 2 ({latest / '2'}): free some space "
      "there, then run again with the same workdir to resume from it")
  assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
  assert _leftovers(tmp_path) == []
  assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no thread tracebacks

  monkeypatch.undo()
  _use(monkeypatch)
  _assert_exact(train_and_evaluate(_config(), tmp_path), straight, tmp_path)


@pytest.mark.parametrize("code,words", [
    (errno.EROFS, "the file system is read-only (EROFS); no checkpoint was complete yet: make "
                  "the workdir writable, then run again (a new run starts over)"),
    (errno.EACCES, "permission denied (EACCES); no checkpoint was complete yet: make the "
                   "workdir writable, then run again (a new run starts over)"),
    (errno.EDQUOT, "the disk quota is exceeded (EDQUOT); no checkpoint was complete yet: free "
                   "some space there, then run again (a new run starts over)"),
], ids=["erofs", "eacces", "edquot"])
def test_each_cause_says_what_to_do(code, words, tmp_path):
  error = faults.write_error(code, str(tmp_path / "metrics.jsonl"), tmp_path)
  assert str(error) == f"cannot write {tmp_path / 'metrics.jsonl'}: {words}"


def test_a_failed_plot_leaves_no_temporary_and_names_the_file(tmp_path, monkeypatch):
  from matplotlib.figure import Figure

  def full(self, fname, **kwargs):
    pathlib.Path(fname).write_bytes(b"\x89PNG half")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  _use(monkeypatch)
  monkeypatch.setattr(Figure, "savefig", full)
  with pytest.raises(faults.WorkdirError, match=rf"^cannot write {tmp_path / 'curves.png'}: no "
                                                r"space left on the device \(ENOSPC\); the last "
                                                r"complete checkpoint is step 3 \("):
    train_and_evaluate(_config(plots=True), tmp_path)
  assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("error,expected", [
    (OSError(errno.ENOSPC, "No space left on device"), (errno.ENOSPC, None)),
    (ValueError('RESOURCE_EXHAUSTED: Error writing local file "{w}/checkpoints/latest/8.orbax-'
                'checkpoint-tmp/state/_sharding": Failed to write 1725 bytes to file 8: No '
                "space left on device [os_error_code='28']"),
     (errno.ENOSPC, "{w}/checkpoints/latest/8.orbax-checkpoint-tmp/state/_sharding")),
    (PermissionError(errno.EACCES, "Permission denied", "{w}/metrics.jsonl"),
     (errno.EACCES, "{w}/metrics.jsonl")),
    (PermissionError(errno.EACCES, "Permission denied", "/elsewhere/data.png"), None),
    (FileNotFoundError(errno.ENOENT, "No such file", "/elsewhere/data.png"), None),
    (ValueError("a bad value"), None),
], ids=["enospc", "storage-layer-enospc", "eacces-in-workdir", "eacces-elsewhere",
        "enoent-elsewhere", "not-a-write"])
def test_what_counts_as_a_failed_write_into_the_workdir(error, expected, tmp_path):
  def fill(x):
    return x.replace("{w}", str(tmp_path)) if isinstance(x, str) else x

  error.args = tuple(fill(a) for a in error.args)
  if isinstance(error, OSError) and error.filename:
    error.filename = fill(error.filename)
  wrapped = RuntimeError("while saving")
  wrapped.__cause__ = error  # found behind the exception that reaches the run
  got = faults.write_failure(wrapped, tmp_path)
  assert got == (None if expected is None else tuple(fill(x) for x in expected))


# -- a damaged checkpoint ---------------------------------------------------------------------------

def _template(config):
  return create_train_state(run.make_model(config, 10), jax.random.PRNGKey(0), (1, 28, 28, 1),
                            make_optimizer(validate(config), STEPS, 3))


def _restore_each(workdir, template):
  """``{path: state}`` of every checkpoint in ``workdir``, restored one by one."""
  ckpt = Checkpointer(workdir / "checkpoints", async_save=False)
  try:
    return {pathlib.Path(mgr.directory) / str(s): ckpt.restore(template, s, best=best)[0]
            for best, mgr in ((False, ckpt.latest), (True, ckpt.best)) for s in mgr.all_steps()}
  finally:
    ckpt.close()


def _truncate(path):
  os.truncate(path, path.stat().st_size // 2)


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory):
  """A run stopped after 6 of 9 steps: latest/4, latest/6 and best/<3 or 6>."""
  workdir = tmp_path_factory.mktemp("six")
  with pytest.MonkeyPatch.context() as mp:
    _use(mp)
    train_and_evaluate(_config(num_train_steps=6), workdir)
  return workdir


def test_each_file_of_the_latest_checkpoint_truncated_in_turn(six_steps, tmp_path):
  template = _template(_config())
  intact = _restore_each(six_steps, template)
  newest = six_steps / "checkpoints" / "latest" / "6"
  files = sorted(p.relative_to(six_steps) for p in newest.rglob("*") if p.is_file())
  assert len(files) >= 10
  called_damaged = 0
  for rel in files:
    work = tmp_path / "_".join(rel.parts)
    shutil.copytree(six_steps, work)
    _truncate(work / rel)
    said = []
    ckpt = Checkpointer(work / "checkpoints", async_save=False)
    try:
      state, meta, path = faults.restore_newest_intact(ckpt, template, say=said.append)
    finally:
      ckpt.close()
    # Never a wrong state: the damage is either not read at all, or said and stepped around.
    resumed_from = six_steps / path.relative_to(work)
    assert _same(state, intact[resumed_from]), rel
    if not said:
      assert resumed_from == newest, (rel, said)
      continue
    called_damaged += 1
    (line,) = said
    assert line.startswith(f"damaged checkpoint, moved to {work / 'checkpoints' / 'damaged'}: "
                           f"step 6 ({work / rel.parents[-4]}): "), line
    assert line.endswith(f"; resuming from step {meta['step']} ({path}) instead"), line
    assert meta["step"] < 6 or "best" in path.parts, line
    assert "does not fit" not in line
    part = line.split("): ", 1)[1]
    assert (str(pathlib.Path(*rel.parts[3:])) in part or "the array " in part), (rel, line)
    assert not (work / rel.parents[-4]).exists()  # set aside, so no later save skips step 6
    assert (work / "checkpoints" / "damaged" / "latest-6").is_dir()
  assert called_damaged >= 5  # the metadata files and the array data


def test_a_run_resumes_exactly_past_a_damaged_checkpoint(six_steps, straight, tmp_path,
                                                         monkeypatch, caplog):
  work = tmp_path / "run"
  shutil.copytree(six_steps, work)
  for kind in ("latest", "best"):
    if (work / "checkpoints" / kind / "6").is_dir():
      _truncate(work / "checkpoints" / kind / "6" / "state" / "_METADATA")
  _use(monkeypatch)
  with caplog.at_level(logging.WARNING):
    result = train_and_evaluate(_config(), work)  # 9 steps: longer, same constant rate
  assert "resuming from step 4 (" in caplog.text and "is not valid JSON" in caplog.text
  _assert_exact(result, straight, work)


def test_no_intact_checkpoint_says_how_to_start_over(six_steps, tmp_path, monkeypatch):
  work = tmp_path / "run"
  shutil.copytree(six_steps, work)
  for meta in (work / "checkpoints").glob("*/*/state/_METADATA"):
    _truncate(meta)
  _use(monkeypatch)
  with pytest.raises(faults.DamagedCheckpointError,
                     match=rf"^every checkpoint in {work / 'checkpoints'} is damaged \(step 6 "
                           r".*state/_METADATA is not valid JSON.*\); to start the run over, "
                           rf"move {work / 'checkpoints'} away \(or use a new workdir\)$"):
    train_and_evaluate(_config(), work)


# -- the workdir goes away ----------------------------------------------------------------------

@pytest.mark.parametrize("replaced", [False, True], ids=["removed", "replaced"])
def test_a_workdir_that_goes_away_stops_the_run_writing_nothing_more(replaced, tmp_path,
                                                                       monkeypatch):
  workdir = tmp_path / "run"

  def remove():
    shutil.rmtree(workdir)
    if replaced:
      workdir.mkdir()

  _use(monkeypatch, 4, remove)
  how = "replaced by another directory" if replaced else "removed"
  with pytest.raises(faults.WorkdirError,
                     match=rf"^the workdir {workdir} was {how} while the run was going: stopped "
                           r"at step 6, writing nothing more; running again "):
    # Saves in the foreground: none is in flight when the workdir goes (test_faults_cli.py
    # removes one under a real run's background saves).
    train_and_evaluate(_config(async_checkpoints=False), workdir)
  if replaced:
    assert list(workdir.iterdir()) == []
  else:
    assert not workdir.exists()


# -- out of memory ------------------------------------------------------------------------------

def _real_xla_oom():
  """XLA's own error for an allocation no machine can make (256 TB: more than a 47-bit address
  space), raised by a real computation."""
  import jax.numpy as jnp
  try:
    jax.jit(lambda x: jnp.ones((2**46,), jnp.float32) * x)(1.0).block_until_ready()
  except Exception as e:  # pylint: disable=broad-except
    return e
  pytest.skip("this machine allocated 256 TB")


def test_out_of_memory_names_the_model_the_batch_and_what_did_not_fit(tmp_path, monkeypatch):
  oom = _real_xla_oom()
  assert "RESOURCE_EXHAUSTED" in str(oom)

  def step(*args, **kwargs):
    raise oom

  from jaxcnn.train import loop
  monkeypatch.setattr(loop, "train_step", step)
  _use(monkeypatch)
  with pytest.raises(faults.OutOfMemoryError) as info:
    train_and_evaluate(_config(eval_batch_size=16), tmp_path)
  assert str(info.value) == (
      f"out of memory on the {jax.default_backend().upper()} training mlp(dropout=0.3, "
      "hidden=(16,)) with batch_size=8 (eval_batch_size=16): XLA could not allocate 281.47 TB; "
      "lower `batch_size` or `eval_batch_size`, or use a smaller model")
  assert isinstance(info.value, MemoryError) and info.value.__cause__ is not None
