"""One run on many processes: joining the job, agreeing, and stopping when a process is lost.

A multi-process run is the same command on every host (one process per host, or per group of
devices), with ``config.distributed=True``:

* :func:`initialize` joins the job (``jax.distributed.initialize`` with ``coordinator_address``,
  ``num_processes``, ``process_id``, each detected by JAX where unset) before anything touches
  a device; from then on ``jax.devices()`` lists every process's devices and the ``'mesh'`` and
  ``'pmap'`` steps reduce over all of them.
* Decisions that one process makes for the job (process 0 holds the workdir lock) reach the
  others through :func:`broadcast_text`, so a refusal stops every process with the same line.
* :class:`Lifeline` watches the other processes for the length of a run. Process 0 keeps a TCP
  connection to each other process; a process that dies (``kill -9``, a crash, the OOM killer)
  closes it at once, a process that hangs or loses its host stops answering pings. Every
  survivor then prints one line naming the lost process and the last complete checkpoint and
  exits with :data:`EXIT_LOST`, instead of waiting forever in a collective for a peer that will
  never arrive. JAX's own coordination service is the backstop (``heartbeat_timeout_seconds``):
  it ends the survivors too, with its own longer message, should the lifeline ever miss.

Restarting every process with the same command resumes from that checkpoint, exactly.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from jaxcnn._errors import brief

log = logging.getLogger(__name__)

# The exit status of a process that stopped because another was lost (sysexits' EX_TEMPFAIL:
# the failure is not this process's, and running the job again resumes it).
EXIT_LOST = 75


def initialize(config: Any) -> bool:
  """Joins the job of ``config`` (``jax.distributed.initialize``) when ``config.distributed``;
  once per process. Returns whether this process is part of a distributed job.

  Must run before JAX's first computation (the CLI calls it right after reading the config;
  :func:`jaxcnn.train.train_and_evaluate` calls it too). Unset keys (``coordinator_address``
  None, ``num_processes`` 0, ``process_id`` -1) are left to JAX, which detects them on Cloud TPU
  and SLURM (and reads ``$JAX_COORDINATOR_ADDRESS``).

  Raises:
    ValueError: the job could not be joined (one line: the address, the process and why).
  """
  if not config.distributed:
    return False
  if jax.distributed.is_initialized():
    return True
  kwargs = dict(coordinator_address=config.coordinator_address,
                num_processes=config.num_processes or None,
                process_id=None if config.process_id < 0 else config.process_id,
                heartbeat_timeout_seconds=config.heartbeat_timeout_seconds)
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # pylint: disable=broad-except
    who = (f"process {config.process_id if config.process_id >= 0 else '(detected)'} of "
           f"{config.num_processes or '(detected)'}")
    raise ValueError(
        f"cannot join the distributed job at {config.coordinator_address or '(detected)'} as "
        f"{who}: {brief(e)}") from None
  if (jax.process_count() > 1 and jax.default_backend() == "cpu"
      and jax.config.jax_enable_compilation_cache):
    # With jaxlib 0.12.1, a CPU job whose processes load a program with cross-process
    # collectives from JAX's persistent compilation cache hangs in its first collective; CPU
    # programs compile in seconds, so a CPU job compiles afresh.
    jax.config.update("jax_enable_compilation_cache", False)
    log.info("persistent compilation cache off: a multi-process CPU job compiles afresh")
  return True


def is_main() -> bool:
  """Whether this process writes the run's files (process 0; every single-process run)."""
  return jax.process_index() == 0


def broadcast_text(text: str | None, *, size: int = 4096) -> str | None:
  """Process 0's ``text`` (None included) on every process; ``text`` elsewhere is ignored.

  Every process must call it at the same point (it is a collective). Text beyond ``size``
  bytes of UTF-8 is cut.
  """
  if jax.process_count() == 1:
    return text
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  buf = np.zeros((size + 1,), np.int32)
  if text is not None:
    raw = text.encode()[:size]
    buf[0] = len(raw) + 1
    buf[1:len(raw) + 1] = np.frombuffer(raw, np.uint8)
  buf = np.asarray(multihost_utils.broadcast_one_to_all(buf))
  if buf[0] == 0:
    return None
  return bytes(buf[1:int(buf[0])].astype(np.uint8)).decode(errors="replace")


def allgather_rows(tree: Any) -> Any:
  """The processes' batches joined along the first axis, in process order (the global batch
  of :mod:`jaxcnn.data`), on every process; ``tree`` itself with one process."""
  if jax.process_count() == 1:
    return tree
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def coordinator_host(config: Any) -> str:
  """The host the other processes reach process 0 at: that of the coordinator address."""
  address = config.coordinator_address
  if address is None:
    from jax._src import distributed as jax_distributed  # pylint: disable=g-import-not-at-top
    address = getattr(jax_distributed.global_state, "coordinator_address", None)
  if not address:
    return socket.getfqdn()
  host = address.rpartition(":")[0]
  return host.strip("[]") or "localhost"


# -- the lifeline ---------------------------------------------------------------------------------

def _report_and_exit(message: str) -> None:
  """The default verdict: one line on stderr, then exit at once (no clean-up: a collective
  waiting on the lost process would never return)."""
  try:
    sys.stdout.flush()
  except Exception:  # pylint: disable=broad-except
    pass
  sys.stderr.write(f"error: {message}\n")
  sys.stderr.flush()
  os._exit(EXIT_LOST)


class Lifeline:
  """Process 0's TCP connection to every other process, watched for the length of a run.

  Protocol (lines of text): a process says ``hello <index>`` on connecting, ``ping`` every
  ``timeout / 4`` seconds, and ``bye ok``, ``bye stopped``, ``bye error`` or ``bye interrupted``
  when it leaves the run; process 0 also tells the others ``lost <index>`` before it stops for a lost process.

  A peer is lost when its connection closes without ``bye`` (it died) or stays silent for
  ``timeout`` seconds (it hangs, or its host is gone). ``bye error`` (the peer stopped on an
  error of its own) gives this process ``grace`` seconds to stop on its own, which it does when
  the error was the job's (the same on every process); else the peer counts as lost too.
  ``bye interrupted`` (Ctrl-C) stops this process at once: its own interrupt may never be
  seen while it waits in a collective for the peer that has left. ``bye stopped`` (a stop
  signal every process agreed on, saved at the same step: :class:`jaxcnn.train.faults.StopRequest`)
  is no news: this process stops at that step too.

  On a loss, ``on_lost(message)`` is called once; the default prints ``error: <message>`` and
  exits with :data:`EXIT_LOST`. ``message`` names the lost process and ends with ``resume()``
  (where the run can be resumed from).

  Args:
    index, count: this process and the number of processes.
    exchange: ``exchange(port) -> port``: process 0's listening port on every process (the
      port given elsewhere is ignored); :func:`start` uses ``broadcast_one_to_all``.
    host: where process 0 listens, as the others reach it.
  """

  def __init__(self, index: int, count: int, *, host: str, exchange: Callable[[int], int],
               timeout: float = 20.0, grace: float = 10.0,
               resume: Callable[[], str] = lambda: "",
               on_lost: Callable[[str], None] = _report_and_exit,
               connect_timeout: float = 60.0):
    self.index, self.count = index, count
    self.timeout, self.grace = float(timeout), float(grace)
    self._resume, self._on_lost = resume, on_lost
    self._lock = threading.Lock()
    self._peers: dict[int, socket.socket] = {}
    pending: dict[int, bytearray] = {}
    self._left: set[int] = set()
    self._closed = False
    self.verdict: str | None = None
    self._decided = threading.Event()
    server = None
    if index == 0:
      family = socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
      server = socket.create_server(("", 0), family=family,
                                    dualstack_ipv6=family == socket.AF_INET6)
      server.settimeout(connect_timeout)
    port = exchange(server.getsockname()[1] if server is not None else 0)
    if server is not None:
      try:
        while len(self._peers) < count - 1:
          conn, _ = server.accept()
          conn.settimeout(connect_timeout)
          rest = bytearray()
          peer = int(self._read_line(conn, rest).split()[1])
          self._peers[peer], pending[peer] = conn, rest
      finally:
        server.close()
    else:
      conn = socket.create_connection((host, port), timeout=connect_timeout)
      conn.sendall(f"hello {index}\n".encode())
      self._peers[0] = conn
    self._threads = []
    for peer, conn in self._peers.items():
      conn.settimeout(self.timeout)
      self._threads.append(threading.Thread(
          target=self._watch, args=(peer, conn, pending.get(peer)), daemon=True,
          name=f"jaxcnn-lifeline-{peer}"))
    for thread in self._threads:
      thread.start()
    threading.Thread(target=self._ping, daemon=True, name="jaxcnn-lifeline-ping").start()

  @classmethod
  def start(cls, config: Any, resume: Callable[[], str], **kwargs: Any) -> "Lifeline":
    """The lifeline of this process of the job ``config`` joined (:func:`initialize`), with
    ``timeout`` from ``config.heartbeat_timeout_seconds`` (two thirds of it: the lifeline
    speaks before JAX's coordination service does)."""
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    def exchange(port: int) -> int:
      return int(multihost_utils.broadcast_one_to_all(np.int32(port)))

    kwargs.setdefault("timeout", max(2.0, config.heartbeat_timeout_seconds * 2 / 3))
    return cls(jax.process_index(), jax.process_count(), host=coordinator_host(config),
               exchange=exchange, resume=resume, **kwargs)

  # -- reading and writing lines -------------------------------------------------------------
  @staticmethod
  def _read_line(conn: socket.socket, pending: bytearray | None = None) -> str:
    """One line from ``conn`` (``''`` at the end of the stream); ``pending`` keeps the rest."""
    pending = bytearray() if pending is None else pending
    while b"\n" not in pending:
      chunk = conn.recv(256)
      if not chunk:
        return ""
      pending += chunk
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    return line.decode(errors="replace").strip()

  def _send(self, conn: socket.socket, line: str) -> None:
    try:
      conn.sendall(f"{line}\n".encode())
    except OSError:
      pass  # the reader of that connection reports it

  def _ping(self) -> None:
    while True:
      time.sleep(self.timeout / 4)
      with self._lock:
        if self._closed or self.verdict is not None:
          return
        conns = [c for p, c in self._peers.items() if p not in self._left]
      for conn in conns:
        self._send(conn, "ping")

  def _watch(self, peer: int, conn: socket.socket, pending: bytearray | None) -> None:
    pending = bytearray() if pending is None else pending
    while True:
      try:
        line = self._read_line(conn, pending)
      except socket.timeout:
        if not self._closed:
          self._lost(peer, f"has sent nothing for {self.timeout:.0f} s (hung, or its host is "
                     "gone)")
        return
      except OSError:
        line = ""
      if line == "ping":
        continue
      if line.startswith("bye"):
        with self._lock:
          self._left.add(peer)
        if line == "bye error" and not self._closed:
          self._after_grace(peer)
        if self.index == 0:  # the peer prints its line first: this process's exit aborts it
          self._until_gone(conn, pending)
        if line == "bye interrupted":
          self._decide(peer, "was interrupted (Ctrl-C)")
        return
      if self._closed:  # this process has left the run: nothing it hears is news
        return
      if line.startswith("lost "):
        self._decide(int(line.split()[1]), "was lost")
        return
      self._lost(peer, "was lost (its connection closed without a goodbye: killed, or crashed)")
      return

  def _until_gone(self, conn: socket.socket, pending: bytearray) -> None:
    """After a peer's goodbye: reads until its connection closes (the peer has exited or
    closed its lifeline) or stays silent for ``timeout`` seconds."""
    try:
      while self._read_line(conn, pending):
        pass
    except OSError:  # socket.timeout included
      pass

  def _after_grace(self, peer: int) -> None:
    deadline = time.monotonic() + self.grace
    while time.monotonic() < deadline:
      with self._lock:
        if self._closed:
          return
      time.sleep(0.05)
    self._lost(peer, "stopped on an error (see its output)")

  def _lost(self, peer: int, how: str) -> None:
    if self.index == 0:
      # Tell the others which process it was before this one (their link to the rest) goes.
      with self._lock:
        others = [c for p, c in self._peers.items() if p != peer and p not in self._left]
      for conn in others:
        self._send(conn, f"lost {peer}")
    self._decide(peer, how)

  def _decide(self, peer: int, how: str) -> None:
    with self._lock:
      if self._closed or self.verdict is not None:
        return
      resume = self._resume()
      self.verdict = (f"process {peer} of {self.count} {how}; this is process {self.index}, "
                      f"stopping" + (f"; {resume}" if resume else ""))
    self._decided.set()
    if self.index == 0 and self.count > 2:
      time.sleep(1.0)  # let the others read `lost <peer>` before this process (theirs) ends
    self._on_lost(self.verdict)

  # -- the run's side ------------------------------------------------------------------------
  def wait_for_verdict(self, timeout: float) -> bool:
    """Waits up to ``timeout`` s for a lost process to be reported; whether one was. (With the
    default ``on_lost`` a report ends the process, so this returns only False.)"""
    return self._decided.wait(timeout)

  def close(self, outcome: str = "ok") -> None:
    """Leaves the run: tells the others ``bye <outcome>`` (``'ok'``: finished; ``'error'``:
    stopped on an error; ``'interrupted'``: Ctrl-C; ``'stopped'``: a stop signal every process
    agreed on, with that step saved), and stops watching them.

    Process 0 leaving on an error or an interrupt first waits (up to ``grace`` + 5 s) for the
    others to exit: its exit ends JAX's coordination service, which ends them at once (an
    abort), so they must have printed their own line by then. A process other than 0 that
    leaves on an error or an interrupt therefore keeps its connection open until it exits
    (``os._exit``, or an ``atexit`` hook at the interpreter's exit): its error is printed on the
    way out, and process 0 sees the connection close after that.
    """
    with self._lock:
      if self._closed:
        return
      self._closed = True
      conns = list(self._peers.values())
    for conn in conns:
      self._send(conn, f"bye {outcome}")
    if self.index == 0 and outcome != "ok":
      deadline = time.monotonic() + self.grace + 5.0
      for thread in self._threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if self.index != 0 and outcome != "ok":
      atexit.register(_shut, conns)  # also keeps them from being closed when collected
      return
    _shut(conns)


def _shut(conns: list[socket.socket]) -> None:
  for conn in conns:
    try:
      conn.shutdown(socket.SHUT_RDWR)  # at once, even while a reader thread waits on it
      conn.close()
    except OSError:
      pass


def in_job() -> bool:
  """Whether this process has joined a job of more than one process."""
  return jax.distributed.is_initialized() and jax.process_count() > 1


def exit_now(code: int) -> None:
  """Ends this process of a multi-process job at once, after its error was printed.

  Python's normal exit would run JAX's shutdown barrier, which waits (minutes) for every
  process, and the others are gone or stopping (:class:`Lifeline`). One process: returns.
  """
  if not in_job():
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


# The errors every process of a job raises alike (a bad value, a diverged run, an interrupt):
# no reason to wait for news of a lost process before reporting them.
_JOB_ERRORS = (ValueError, FloatingPointError, KeyboardInterrupt, SystemExit)


@contextlib.contextmanager
def watch(config: Any, resume: Callable[[], str]) -> Iterator[Lifeline | None]:
  """A :class:`Lifeline` for the body of the ``with`` (None and nothing to do with one process).

  An error inside that is not one every process raises alike (a collective that failed because
  its peer died, say) first waits for the lifeline's verdict, so the line that names the lost
  process is what the user sees, not the collective's error.
  """
  if jax.process_count() == 1:
    yield None
    return
  line = Lifeline.start(config, resume)
  outcome = "error"
  try:
    yield line
    outcome = "ok"
  except KeyboardInterrupt as e:
    # A stop at an agreed step (faults.TrainingStopped with its step saved) is every process's;
    # any other interrupt leaves the others waiting in a collective: they must stop now.
    outcome = "stopped" if getattr(e, "step", None) is not None else "interrupted"
    raise
  except _JOB_ERRORS:
    raise
  except BaseException:
    line.wait_for_verdict(line.timeout + 2.0)
    raise
  finally:
    line.close(outcome)
