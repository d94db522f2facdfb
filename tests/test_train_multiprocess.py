"""A run of several processes (JAX's distributed runtime, CPU collectives over gloo).

Through the real CLI and the local launcher, in subprocesses, on a tiny MNIST-like image folder:

* 2 processes x 2 CPU devices end where 1 process x 4 devices ends, process 0 alone writing
  the records and printing the run's lines;
* a second job on a locked workdir is refused by every one of its processes (no hang);
* paced dispatch: 2 processes x 2 CPU devices run hundreds of cross-process steps without
  hanging (:meth:`jaxcnn.train.parallel.Parallel.pace`);
* ``kill -9`` of one process: the other stops at once with one line naming it and the last
  complete checkpoint; starting both again resumes and ends exactly as an uninterrupted run.

Without processes: the lifeline's protocol (:class:`jaxcnn.train.distributed.Lifeline`) between
threads, the launcher's pieces, and the distributed config keys.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from experiments import launch
from jaxcnn.train import config as config_lib
from jaxcnn.train import distributed
from jaxcnn.train.run import WorkdirLock

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 240  # seconds for one job; generous for a loaded 2-core machine

# 192 images: train[:128] (16 steps of 8 per epoch), eval train[128:] (64: 8 batches of 8).
N_IMAGES, STEPS_PER_EPOCH = 192, 16
COMMON = [
    "--config", "jaxcnn/configs/mnist_mlp.py", "--config.model_kwargs.hidden=(16,)",
    "--config.batch_size=8", "--config.eval_batch_size=8", "--config.parallel=mesh",
    "--config.data.train_split=train[:128]", "--config.data.eval_split=train[128:]",
    "--config.patience=0",
]
_TIMING = re.compile(r".*(_seconds|_per_sec)$")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> pathlib.Path:
  """``train/<digit>/<i>.png``: 28x28 grayscale, a class-dependent bar over noise."""
  from jaxcnn.data import write_image_folder
  rng = np.random.default_rng(0)
  labels = np.arange(N_IMAGES) % 10
  images = rng.integers(0, 80, (N_IMAGES, 28, 28, 1)).astype(np.uint8)
  for i, digit in enumerate(labels):
    images[i, 2 * digit:2 * digit + 8, 4:24, 0] += 150
  return write_image_folder(tmp_path_factory.mktemp("mnist_like") / "data", images, labels,
                            [str(d) for d in range(10)])


def _env(tmp_path: pathlib.Path, devices: int | None = None) -> dict[str, str]:
  env = dict(os.environ, JAXCNN_CACHE_DIR=str(tmp_path / "cache"), JAX_PLATFORMS="cpu",
             MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
  env.pop("XLA_FLAGS", None)
  if devices:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def _args(workdir, data, *extra) -> list[str]:
  return [*COMMON, f"--config.data.image_folder={data}", f"--workdir={workdir}", *extra]


def _records(workdir: pathlib.Path) -> list[dict]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [{k: v for k, v in json.loads(line).items() if not _TIMING.match(k)} for line in lines]


def _start(cmd, env, log_path) -> subprocess.Popen:
  with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would stall the child
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc, log_path, code=0, timeout=TIMEOUT) -> str:
  proc.wait(timeout=timeout)
  out = pathlib.Path(log_path).read_text()
  assert proc.returncode == code, f"{proc.args} ended with {proc.returncode}:\n{out[-3000:]}"
  return out


def _launch_cmd(n, devices, train_args) -> list[str]:
  return [sys.executable, "-m", "experiments.launch", "-n", str(n), "--devices-per-process",
          str(devices), "--", *train_args]


def _kill_all(procs):
  for proc in procs:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


def test_two_processes_end_where_one_process_ends(tmp_path, image_folder):
  one, two = tmp_path / "one", tmp_path / "two"
  extra = ["--config.num_train_steps=16", "--config.progress=True"]
  procs = [_start([sys.executable, "-m", "experiments.train", *_args(one, image_folder, *extra)],
                  _env(tmp_path, devices=4), tmp_path / "one.log"),
           _start(_launch_cmd(2, 2, _args(two, image_folder, *extra)), _env(tmp_path),
                  tmp_path / "two.log")]
  try:
    _finish(procs[0], tmp_path / "one.log")
    out = _finish(procs[1], tmp_path / "two.log")
  finally:
    _kill_all(procs)
  want, got = _records(one), _records(two)
  assert [r["epoch"] for r in got] == [1]  # one writer: one line per epoch, not one per process
  assert abs(got[0]["eval_loss"] - want[0]["eval_loss"]) < 1e-4, (got, want)
  assert abs(got[0]["train_loss"] - want[0]["train_loss"]) < 1e-4, (got, want)
  assert got[0]["eval_accuracy"] == want[0]["eval_accuracy"]
  # Process 0 prints the epoch line; process 1 prints nothing of the run's.
  assert re.search(r"^\[p0\] epoch 1/1 step 16:", out, re.M), out[-3000:]
  assert not re.search(r"^\[p1\] (epoch|test|resuming)", out, re.M), out[-3000:]
  assert "lost" not in out
  for name in ("config.json", "summary.txt", "curves.png", "checkpoints/latest/16"):
    assert (two / name).exists(), name
  assert json.loads((two / "config.json").read_text())["process_id"] == 0


# Hundreds of tiny steps with a cross-process all-reduce, dispatched as fast as Python can: the
# shape of run that left XLA's CPU client waiting for ever (jaxlib 0.7.2 and 0.10.2, 2 processes
# x 2 devices, 2 cores) once dispatch ran a few dozen steps ahead of the devices.
_PACE_WORKER = """
import os, sys
import jax, jax.numpy as jnp, numpy as np
jax.distributed.initialize(f"localhost:{sys.argv[2]}", 2, int(sys.argv[1]))
from jaxcnn.train.parallel import Parallel
par = Parallel("mesh")
step = jax.jit(lambda w, x: (w + 1e-3 * jnp.mean(x), jnp.sum(x)), out_shardings=par.replicated)
w = par.put_state(np.zeros((256,), np.float32))
x = par.put_batch(np.ones((2, 256), np.float32))
for _ in range(400):
  w, s = step(w, x)
  par.pace(s)
print("done", float(jax.device_get(s)), float(jax.device_get(w)[0]), flush=True)
os._exit(0)
"""


def test_paced_steps_of_two_processes_with_two_devices_each_never_hang(tmp_path):
  port = launch.free_port()
  procs = [_start([sys.executable, "-c", _PACE_WORKER, str(i), str(port)],
                  _env(tmp_path, devices=2), tmp_path / f"pace{i}.log") for i in range(2)]
  try:
    # Seconds when paced, even on a loaded machine; a hang is for ever.
    outs = [_finish(proc, tmp_path / f"pace{i}.log", timeout=90) for i, proc in enumerate(procs)]
  finally:
    _kill_all(procs)
  for out in outs:  # 4 devices x 2 rows x 256 ones; w = 400 steps of 1e-3
    sums = re.search(r"^done (\S+) (\S+)$", out, re.M)
    assert sums and float(sums.group(1)) == 1024.0, out[-3000:]
    assert abs(float(sums.group(2)) - 0.4) < 1e-4, out[-3000:]


def test_a_second_job_on_a_locked_workdir_is_refused_by_every_process(tmp_path, image_folder):
  workdir = tmp_path / "busy"
  workdir.mkdir()
  with WorkdirLock(workdir):  # the first job, as far as the second can tell
    proc = _start(_launch_cmd(2, 1, _args(workdir, image_folder, "--config.parallel=pmap")),
                  _env(tmp_path), tmp_path / "second.log")
    try:
      out = _finish(proc, tmp_path / "second.log", code=1)
    finally:
      _kill_all([proc])
  for p in (0, 1):  # process 1 learned process 0's verdict; neither waited for the other
    assert re.search(rf"^\[p{p}\] error: {re.escape(str(workdir))} is in use by process", out,
                     re.M), out[-3000:]
  assert not (workdir / "config.json").exists()


# -- kill -9 of one process, then the same two commands again ------------------------------------

KILL_STEPS = 48  # 3 epochs; checkpoints every 8 steps
KILL_AFTER = 16  # kill once a checkpoint at step >= this exists


def _job(workdir, data, tmp_path, name, port=None):
  """The two processes of a job, started directly (no launcher: nothing stops the survivor but
  itself)."""
  port = port or launch.free_port()
  args = _args(workdir, data, f"--config.num_train_steps={KILL_STEPS}",
               "--config.checkpoint_every_steps=8", "--config.progress=True")
  return [_start(launch.process_command("experiments.train", args, i, 2, port),
                 _env(tmp_path, devices=2), tmp_path / f"{name}{i}.log") for i in range(2)]


def _final_state(workdir):
  """The last checkpoint's arrays, read onto this process's first device."""
  import jax
  import orbax.checkpoint as ocp
  from jaxcnn.train import Checkpointer
  ckpt = Checkpointer(workdir / "checkpoints", async_save=False)
  try:
    assert ckpt.latest_step() == KILL_STEPS
    device = jax.sharding.NamedSharding(jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("d",)),
                                        jax.sharding.PartitionSpec())
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            ckpt.latest.item_metadata(KILL_STEPS)["state"])
    restored = ckpt.latest.restore(KILL_STEPS, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract)))
  finally:
    ckpt.close()
  return jax.tree.map(np.asarray, restored["state"])


@pytest.mark.slow
def test_kill_9_of_one_process_stops_the_other_and_both_resume_exactly(tmp_path, image_folder):
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  procs = []
  try:
    procs += (straight_job := _job(straight, image_folder, tmp_path, "straight"))
    procs += (job := _job(killed, image_folder, tmp_path, "killed"))
    deadline = time.monotonic() + TIMEOUT
    latest = killed / "checkpoints" / "latest"
    while not any(p.name.isdigit() and int(p.name) >= KILL_AFTER
                  for p in (latest.iterdir() if latest.is_dir() else [])):
      assert all(p.poll() is None for p in job), "the job ended before it could be killed"
      assert time.monotonic() < deadline, "no checkpoint in time"
      time.sleep(0.02)
    os.kill(job[1].pid, signal.SIGKILL)
    killed_at = time.monotonic()
    job[0].wait(timeout=60)  # stops within a minute: no hang in a collective
    assert time.monotonic() - killed_at < 60
    assert job[0].returncode == distributed.EXIT_LOST
    job[1].wait(timeout=60)
    survivor = (tmp_path / "killed0.log").read_text()
    lines = [l for l in survivor.splitlines() if "process 1 of 2" in l]
    assert len(lines) == 1, survivor[-3000:]
    step = int(re.search(r"last complete checkpoint is step (\d+)", lines[0]).group(1))
    assert lines[0].startswith("error: process 1 of 2 was lost") and KILL_AFTER <= step
    assert "Traceback" not in survivor

    procs += (again := _job(killed, image_folder, tmp_path, "again"))
    out = _finish(again[0], tmp_path / "again0.log")
    _finish(again[1], tmp_path / "again1.log")
    assert f"resuming from step {step} " in out, out[-3000:]
    for i, proc in enumerate(straight_job):
      _finish(proc, tmp_path / f"straight{i}.log")
  finally:
    _kill_all(procs)

  # The same trajectory: final state bit for bit, and every epoch's record.
  import jax
  want, got = _final_state(straight), _final_state(killed)
  assert jax.tree.structure(want) == jax.tree.structure(got)
  differ = [jax.tree_util.keystr(path) for (path, w), g in
            zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(got))
            if not np.array_equal(w, g)]
  assert not differ, f"leaves that differ from the uninterrupted run: {differ}"
  assert _records(killed) == _records(straight)
  assert [r["epoch"] for r in _records(killed)] == [1, 2, 3]


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_one_step_saved_and_both_resume_exactly(
    tmp_path, image_folder):
  """A preempted host: SIGTERM reaches process 1 only. JAX's preemption service tells process
  0, both save the same step and exit 143; the same commands resume to the straight result."""
  straight, stopped = tmp_path / "straight", tmp_path / "stopped"
  procs = []
  try:
    procs += (straight_job := _job(straight, image_folder, tmp_path, "straight"))
    procs += (job := _job(stopped, image_folder, tmp_path, "stopped"))
    deadline = time.monotonic() + TIMEOUT
    latest = stopped / "checkpoints" / "latest"
    while not any(p.name.isdigit() and int(p.name) >= KILL_AFTER
                  for p in (latest.iterdir() if latest.is_dir() else [])):
      assert all(p.poll() is None for p in job), "the job ended before it could be stopped"
      assert time.monotonic() < deadline, "no checkpoint in time"
      time.sleep(0.02)
    os.kill(job[1].pid, signal.SIGTERM)
    logs = []
    for i, proc in enumerate(job):
      proc.wait(timeout=120)
      logs.append((tmp_path / f"stopped{i}.log").read_text())
      assert proc.returncode == 128 + signal.SIGTERM, logs[-1][-3000:]
      assert "Traceback" not in logs[-1], logs[-1][-3000:]
    steps = [int(re.search(r"stopped \(SIGTERM\) at step (\d+); re-run the same command to "
                           r"resume", log).group(1)) for log in logs]
    assert steps[0] == steps[1] and KILL_AFTER <= steps[0] < KILL_STEPS, steps
    assert (latest / str(steps[0])).is_dir()  # that step's checkpoint, written by both

    procs += (again := _job(stopped, image_folder, tmp_path, "again"))
    out = _finish(again[0], tmp_path / "again0.log")
    _finish(again[1], tmp_path / "again1.log")
    assert f"resuming from step {steps[0]} " in out, out[-3000:]
    for i, proc in enumerate(straight_job):
      _finish(proc, tmp_path / f"straight{i}.log")
  finally:
    _kill_all(procs)

  import jax
  want, got = _final_state(straight), _final_state(stopped)
  assert all(np.array_equal(w, g) for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)))
  assert _records(stopped) == _records(straight)


# -- the lifeline, between threads ---------------------------------------------------------------

class _Exchange:
  """Process 0's port handed to the other 'processes' (threads), as a broadcast would."""

  def __init__(self):
    self.port, self.ready = None, threading.Event()

  def __call__(self, port):
    if port:
      self.port = port
      self.ready.set()
    self.ready.wait(10)
    return self.port


def _lifelines(count, **kwargs):
  """``count`` lifelines in this process (index 0 blocks until the others connect); each
  records its verdicts instead of exiting."""
  exchange, verdicts = _Exchange(), {i: [] for i in range(count)}
  lines = [None] * count

  def make(i):
    lines[i] = distributed.Lifeline(i, count, host="localhost", exchange=exchange,
                                    on_lost=verdicts[i].append,
                                    resume=lambda: "resume from step 8", **kwargs)

  threads = [threading.Thread(target=make, args=(i,)) for i in range(count)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(10)
  assert all(lines), "the lifelines did not connect"
  return lines, verdicts


def _die(line):
  """What ``kill -9`` does to a process's lifeline: its sockets close, nothing is said."""
  line._closed = True  # pylint: disable=protected-access
  for conn in line._peers.values():  # pylint: disable=protected-access
    conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def _hang(line):
  """A hung process: its sockets stay open, it stops speaking."""
  line._closed = True  # pylint: disable=protected-access


def _wait(cond, timeout=10.0):
  deadline = time.monotonic() + timeout
  while not cond() and time.monotonic() < deadline:
    time.sleep(0.02)
  return cond()


def test_lifeline_a_process_that_dies_is_named_by_the_survivor():
  (p0, p1), verdicts = _lifelines(2)
  _die(p1)
  assert _wait(lambda: verdicts[0])
  assert verdicts[0] == ["process 1 of 2 was lost (its connection closed without a goodbye: "
                         "killed, or crashed); this is process 0, stopping; resume from step 8"]
  p0.close()


def test_lifeline_the_other_processes_learn_from_process_0_which_one_was_lost():
  (p0, p1, p2), verdicts = _lifelines(3)
  _die(p2)
  assert _wait(lambda: verdicts[0] and verdicts[1])
  assert verdicts[1][0].startswith("process 2 of 3 was lost; this is process 1, stopping")
  assert verdicts[0][0].startswith("process 2 of 3 was lost (its connection closed")
  for line in (p0, p1):
    line.close()


def test_lifeline_a_silent_process_is_lost_after_the_timeout():
  (p0, p1), verdicts = _lifelines(2, timeout=1.0)
  time.sleep(1.5)  # pings keep a live pair quiet past the timeout
  assert verdicts == {0: [], 1: []}
  _hang(p1)
  assert _wait(lambda: verdicts[0])
  assert "has sent nothing for 1 s" in verdicts[0][0]
  p0.close()


def test_lifeline_a_finished_process_is_not_lost():
  (p0, p1), verdicts = _lifelines(2, grace=0.5)
  p1.close("ok")
  time.sleep(1.0)
  p0.close("ok")
  assert verdicts == {0: [], 1: []}


def test_lifeline_an_interrupted_process_stops_the_others_at_once():
  (p0, p1), verdicts = _lifelines(2, grace=30.0)
  closing = threading.Thread(target=p0.close, args=("interrupted",))  # waits for the others
  closing.start()
  assert _wait(lambda: verdicts[1], timeout=5.0)
  assert verdicts[1][0].startswith("process 0 of 2 was interrupted (Ctrl-C); this is process 1")
  _die(p1)  # what the verdict does to a process
  closing.join(5.0)
  assert not closing.is_alive()


def test_lifeline_a_process_that_stopped_on_an_error_is_lost_after_the_grace():
  (p0, p1), verdicts = _lifelines(2, grace=0.5)
  p1.close("error")
  assert _wait(lambda: verdicts[0])
  assert verdicts[0][0].startswith("process 1 of 2 stopped on an error (see its output)")
  _die(p1)
  # ... unless this process stops on its own within the grace (the same error everywhere).
  (q0, q1), verdicts = _lifelines(2, grace=2.0)
  closing = threading.Thread(target=q0.close, args=("error",))
  closing.start()
  q1.close("error")
  time.sleep(2.5)
  assert verdicts == {0: [], 1: []}
  # Process 0 waits for the others to exit (their connection closes then, after their own
  # error line): its exit would end JAX's coordination service, and them with it.
  assert closing.is_alive()
  _die(q1)
  closing.join(5.0)
  assert not closing.is_alive()
  assert verdicts == {0: [], 1: []}


def test_lifeline_process_0_reports_an_interrupted_process_once_it_has_exited():
  (p0, p1), verdicts = _lifelines(2, grace=30.0)
  p1.close("interrupted")  # its connection stays open until it exits, after its own line
  time.sleep(1.0)
  assert verdicts[0] == []
  _die(p1)
  assert _wait(lambda: verdicts[0], timeout=5.0)
  assert verdicts[0][0].startswith("process 1 of 2 was interrupted (Ctrl-C); this is process 0")
  p0.close()


# -- the launcher's pieces -----------------------------------------------------------------------

def test_launcher_gives_each_process_its_place_and_devices():
  cmd = launch.process_command("experiments.train", ["--workdir=w"], 1, 3, 1234)
  assert cmd[-5:] == ["--workdir=w", "--config.distributed=True",
                      "--config.coordinator_address=localhost:1234",
                      "--config.num_processes=3", "--config.process_id=1"]
  env = launch.process_env({"XLA_FLAGS": "--a=1 --xla_force_host_platform_device_count=8"}, 2)
  assert env["XLA_FLAGS"] == "--a=1 --xla_force_host_platform_device_count=2"
  assert env["JAX_PLATFORMS"] == "cpu" and env["PYTHONUNBUFFERED"] == "1"
  assert "JAX_PLATFORMS" not in launch.process_env({}, None)


_FAKE_TRAIN = '''
import sys, time
index = int([a for a in sys.argv if a.startswith("--config.process_id=")][0].split("=")[1])
print(f"hello from {index}\\rprogress 50%\\rprogress 100%")
if index == 1:
  sys.exit(3)
time.sleep(60)  # process 0 would wait for its peer forever
'''


def test_launcher_prefixes_output_and_stops_the_others_when_one_fails(tmp_path, monkeypatch):
  (tmp_path / "fake_train.py").write_text(_FAKE_TRAIN)
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))

  class Out(list):
    def write(self, text):
      self.append(text)

    def flush(self):
      pass

  out = Out()
  t0 = time.monotonic()
  code = launch.launch(2, ["--workdir=x"], module="fake_train", grace=1.0, out=out)
  text = "".join(out)
  assert code == 3, text
  assert time.monotonic() - t0 < 30  # process 0 was stopped, not waited for
  assert "[p1] progress 100%\n" in text and "[p0] progress 100%\n" in text  # bars' last state
  assert "[launch] process 1 ended with status 3" in text and "stopping process 0" in text


def test_launcher_usage_errors_are_one_line(capsys):
  with pytest.raises(SystemExit):
    launch.main(["-n", "2"])
  assert "no training arguments" in capsys.readouterr().err


# -- the config keys -----------------------------------------------------------------------------

@pytest.mark.parametrize("values,match", [
    ({"process_id": 1}, r"`process_id` \(=1\) is set but `distributed` is False"),
    ({"distributed": True, "parallel": "mesh", "num_processes": 2, "process_id": 2},
     r"`process_id` \(=2\) must be smaller than `num_processes` \(=2\)"),
    ({"distributed": True, "parallel": "mesh", "coordinator_address": "10.0.0.1"},
     r"`coordinator_address` \(='10.0.0.1'\) must be 'host:port'"),
    ({"distributed": True}, r"`parallel` \(='none'\) uses one device of one process"),
    ({"distributed": True, "parallel": "mesh", "heartbeat_timeout_seconds": 1},
     r"`heartbeat_timeout_seconds` \(=1\) must be an int >= 5"),
])
def test_distributed_keys_are_checked(values, match):
  with pytest.raises(ValueError, match=match):
    config_lib.validate(values)


def test_validating_a_distributed_config_starts_no_backend():
  # jax.distributed.initialize must come before JAX's first computation, and the CLI validates
  # the config before it joins the job: validation must not count devices then.
  code = ("from jaxcnn.train import config as c; "
          "c.validate({'distributed': True, 'parallel': 'mesh', 'batch_size': 7}); "
          "from jax._src import xla_bridge; print(xla_bridge.backends_are_initialized())")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == "False"


def test_distributed_keys_may_change_on_resume():
  from jaxcnn.train import run
  for key in ("distributed", "coordinator_address", "num_processes", "process_id"):
    assert key in run.RESUMABLE_CHANGES


def test_a_free_port_is_free():
  port = launch.free_port()
  with socket.socket() as s:
    s.bind(("localhost", port))
