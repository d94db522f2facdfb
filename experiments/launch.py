"""Starts N processes of one training command on this machine: a multi-process run to try.

    python -m experiments.launch -n 2 --devices-per-process 2 -- \
        --config mnist_mlp --workdir runs/mnist_2x2 --config.parallel=mesh

Process ``i`` runs ``python -m experiments.train <the arguments after --> --config.distributed=True
--config.coordinator_address=localhost:<port> --config.num_processes=N --config.process_id=i``
(``<port>`` a free one, or ``--port``). Its output is forwarded line by line with a ``[p<i>]``
prefix (the progress bar only as its last state). When a process fails, the others get
``--grace`` seconds to stop on their own (they do, each with a line naming the lost process),
then are terminated; the launcher exits with the first failure's status (0 when all succeed).

``--devices-per-process K`` gives each process K CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=K``, ``JAX_PLATFORMS=cpu``); without it the
processes see the machine's devices as the environment says. On several hosts, run the training
command itself on each host instead (docs/multi_process.md).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def free_port() -> int:
  """A TCP port nothing listens on now (the coordinator binds it moments later)."""
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def process_env(base: dict[str, str], devices_per_process: int | None) -> dict[str, str]:
  """The environment of each process: ``base``, unbuffered output and, when asked, K CPU
  devices (an earlier device-count flag in ``XLA_FLAGS`` is replaced)."""
  env = dict(base, PYTHONUNBUFFERED="1")
  if devices_per_process:
    flags = re.sub(rf"{_DEVICE_COUNT_FLAG}=\S*", "", env.get("XLA_FLAGS", "")).split()
    env["XLA_FLAGS"] = " ".join(flags + [f"{_DEVICE_COUNT_FLAG}={devices_per_process}"])
    env["JAX_PLATFORMS"] = "cpu"
  return env


def process_command(module: str, train_args: Sequence[str], index: int, count: int,
                    port: int) -> list[str]:
  """The command line of process ``index``: the training arguments plus its place in the job."""
  return [sys.executable, "-m", module, *train_args, "--config.distributed=True",
          f"--config.coordinator_address=localhost:{port}", f"--config.num_processes={count}",
          f"--config.process_id={index}"]


def _forward(index: int, stream, out, lock: threading.Lock) -> None:
  """Copies ``stream``'s lines to ``out`` as ``[p<index>] <line>``; of a line redrawn with
  carriage returns (a progress bar) only its last state."""
  for raw in iter(stream.readline, ""):
    text = raw.rstrip("\n").rsplit("\r", 1)[-1].rstrip()
    if text:
      with lock:
        out.write(f"[p{index}] {text}\n")
        out.flush()
  stream.close()


def _status(code: int) -> str:
  return f"signal {-code}" if code < 0 else f"status {code}"


def launch(num_processes: int, train_args: Sequence[str], *, devices_per_process: int | None = None,
           port: int | None = None, module: str = "experiments.train", grace: float = 15.0,
           out=None) -> int:
  """Runs the job; returns the exit status (the first failure's, or 0). See the module
  docstring."""
  out = sys.stdout if out is None else out
  port = port or free_port()
  env = process_env(dict(os.environ), devices_per_process)
  lock = threading.Lock()
  procs: list[subprocess.Popen] = []
  threads = []
  for i in range(num_processes):
    # Its own session: a Ctrl-C reaches the launcher once, which hands it to every process.
    proc = subprocess.Popen(process_command(module, train_args, i, num_processes, port), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, start_new_session=True)
    procs.append(proc)
    thread = threading.Thread(target=_forward, args=(i, proc.stdout, out, lock), daemon=True)
    thread.start()
    threads.append(thread)

  def say(text: str) -> None:
    with lock:
      out.write(f"[launch] {text}\n")
      out.flush()

  failure: int | None = None
  failed_at = 0.0
  stopping = False
  try:
    while any(p.poll() is None for p in procs):
      for i, p in enumerate(procs):
        if failure is None and p.poll() not in (None, 0):
          failure, failed_at = p.returncode, time.monotonic()
          say(f"process {i} ended with {_status(p.returncode)}; the others get {grace:.0f} s "
              "to stop")
      if failure is not None and not stopping and time.monotonic() - failed_at > grace:
        stopping = True
        for i, p in enumerate(procs):
          if p.poll() is None:
            say(f"stopping process {i}")
            p.terminate()
      if stopping and time.monotonic() - failed_at > grace + 5:
        for p in procs:
          if p.poll() is None:
            p.kill()
      time.sleep(0.1)
  except KeyboardInterrupt:
    for p in procs:
      if p.poll() is None:
        p.send_signal(signal.SIGINT)
    for p in procs:
      try:
        p.wait(timeout=grace)
      except subprocess.TimeoutExpired:
        p.kill()
    failure = 130
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
    for thread in threads:
      thread.join(timeout=5)
  if failure is None:
    failure = next((p.returncode for p in procs if p.returncode), 0)
  return 128 - failure if failure < 0 else failure


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if "--" in argv:
    split = argv.index("--")
    own, train_args = argv[:split], argv[split + 1:]
  else:
    own, train_args = argv, []
  parser = argparse.ArgumentParser(
      prog="python -m experiments.launch",
      description="Starts N local processes of one training command (see the module docstring).",
      usage="%(prog)s -n N [--devices-per-process K] [--port P] -- <training arguments>")
  parser.add_argument("-n", "--num-processes", type=int, required=True,
                      help="processes to start (>= 1)")
  parser.add_argument("--devices-per-process", type=int, default=None,
                      help="K CPU devices per process (XLA_FLAGS, JAX_PLATFORMS=cpu)")
  parser.add_argument("--port", type=int, default=None,
                      help="the coordinator's port (default: a free one)")
  parser.add_argument("--grace", type=float, default=15.0,
                      help="seconds the others get to stop after one fails (default 15)")
  parser.add_argument("--module", default="experiments.train",
                      help="the module each process runs (default experiments.train)")
  args = parser.parse_args(own)
  if args.num_processes < 1:
    parser.error(f"`--num-processes` (={args.num_processes}) must be >= 1")
  if args.devices_per_process is not None and args.devices_per_process < 1:
    parser.error(f"`--devices-per-process` (={args.devices_per_process}) must be >= 1")
  if not train_args:
    parser.error("no training arguments: put them after `--` (e.g. -- --config mnist_mlp "
                 "--workdir runs/x)")
  return launch(args.num_processes, train_args, devices_per_process=args.devices_per_process,
                port=args.port, module=args.module, grace=args.grace)


if __name__ == "__main__":
  sys.exit(main())
