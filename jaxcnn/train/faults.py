"""What a long run meets, and what it says: a full disk, a stop signal, too little memory, a
workdir that vanishes, a damaged checkpoint.

:func:`jaxcnn.train.train_and_evaluate` runs inside a :class:`RunGuard`, which turns each of
these into one exception with a one-line message naming the cause, the path and the last
complete checkpoint (the command line prints that line alone; the manual page is
``docs/faults.md``):

* **A write fails** (no space left, a read-only or vanished file system, no permission, a quota,
  the file-size limit): :class:`WorkdirError` (an ``OSError``). Checkpoints are written to a
  temporary folder and renamed when complete, so a failed save never replaces a good one; the
  guard removes the temporaries of the saves cut short, and the checkpoint library's thread
  tracebacks (the same failure, raised here once) are kept out of the output.
* **A stop signal** (SIGTERM: a preempted cloud VM, a batch scheduler, ``kill``; SIGINT:
  Ctrl-C): :class:`StopRequest` only records it; the loop asks it after every step, and at the
  first step boundary after the signal the run writes a checkpoint of that step and raises
  :class:`TrainingStopped` (a ``KeyboardInterrupt``) with exit status ``128 + signal``. A
  second signal stops at once (the last complete checkpoint stays the resume point). With
  several processes (``jax.distributed``), JAX's preemption service receives SIGTERM on any
  process and :func:`jax.experimental.multihost_utils.reached_preemption_sync_point` makes every
  process stop, and save, at the same step; SIGINT is passed on to it as a SIGTERM.
* **Out of memory** (XLA's ``RESOURCE_EXHAUSTED``, or Python's ``MemoryError``):
  :class:`OutOfMemoryError`, naming the model, the batch size and what XLA could not allocate.
* **The workdir removed or replaced mid-run**: :class:`WorkdirWatch`, a loop hook placed before
  the others, stops the run before anything more is written there.
* **A damaged checkpoint** (a file truncated or unreadable): :func:`restore_newest_intact`
  resumes from the newest checkpoint that reads back, says which one was damaged (its step and
  file) and moves it to ``checkpoints/damaged/`` so no later save or resume meets it again;
  with none intact, :class:`DamagedCheckpointError` says how to start over. A checkpoint of
  another model or optimiser is not damage: it keeps its own error.
"""

from __future__ import annotations

import contextlib
import errno as errno_lib
import gc
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jaxcnn._errors import brief
from jaxcnn.train import checkpoint as checkpoint_lib

log = logging.getLogger(__name__)

#: The signals a run turns into a checkpoint and a clean stop.
STOP_SIGNALS = ("SIGTERM", "SIGINT")


# -- the errors ---------------------------------------------------------------------------------

class TrainingStopped(KeyboardInterrupt):
  """The run stopped on a signal. ``step``: the step whose checkpoint the loop's hooks wrote
  before stopping (None: stopped at once, on a second signal or outside the loop; the last
  complete checkpoint is then the resume point); ``exit_code``: ``128 + signal number`` (130
  for SIGINT, 143 for SIGTERM), the status a shell reports for a process ended by that
  signal."""

  def __init__(self, signal_name: str, step: int | None = None):
    self.signal_name, self.step = signal_name, step
    self.exit_code = 128 + int(getattr(signal, signal_name, signal.SIGTERM))
    super().__init__(f"stopped ({signal_name})" if step is None else
                     f"stopped ({signal_name}) at step {step}, after writing its checkpoint: "
                     "the same run started again on the same workdir resumes from it")


class WorkdirError(OSError):
  """Writing to the workdir failed, or the workdir went away; the message is one line naming
  the cause, the path and the checkpoint to resume from. ``errno`` is the operating system's
  code (``errno.ENOSPC``, ...)."""

  def __init__(self, code: int | None, message: str):
    super().__init__(message)
    self.errno = code


class OutOfMemoryError(MemoryError):
  """A step (or the data) did not fit in the device's or the host's memory; the message names
  the model, the batch size and the allocation that failed."""


class DamagedCheckpointError(ValueError):
  """No checkpoint of the workdir can be read back; the message lists them and how to start
  over."""


# -- stop signals -------------------------------------------------------------------------------

def preemption_service() -> bool:
  """Whether this process is in a ``jax.distributed`` job with JAX's preemption service (on by
  default: ``jax_enable_preemption_service``). The service installs its own SIGTERM handler and
  agrees on a stop step between the processes."""
  if "jax" not in sys.modules:
    return False
  import jax  # pylint: disable=g-import-not-at-top
  if not jax.distributed.is_initialized():
    return False
  # No public accessor: the manager that reached_preemption_sync_point would use.
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  return getattr(distributed.global_state, "preemption_sync_manager", None) is not None


class StopRequest:
  """SIGTERM and SIGINT, recorded for the training loop to act on between two steps.

  A context manager: on entry (in the main thread) it installs a handler for each of
  :data:`STOP_SIGNALS` that only records the signal; on exit it puts the previous handlers
  back. A signal that is ignored (``SIG_IGN``, e.g. SIGINT in a background job) stays ignored.
  The loop calls ``stop(step)`` after every step; it is True at the step where the run should
  save and stop. A second signal raises :class:`TrainingStopped` at once.

  In a ``jax.distributed`` job with JAX's preemption service (:func:`preemption_service`),
  SIGTERM is left to the service: any process that receives it tells the others, and
  ``stop(step)`` is :func:`jax.experimental.multihost_utils.reached_preemption_sync_point`,
  True on every process at the same step (one past the furthest step any process had reached).
  SIGINT is recorded and passed on to the service as a SIGTERM to this process.

  >>> with StopRequest() as stop:  # doctest: +SKIP
  ...   for step in range(1, 1000):
  ...     train_one_step()
  ...     if stop(step):
  ...       save(step); raise stop.stopped(step)
  """

  def __init__(self):
    self.signal_name: str | None = None
    self._previous: dict[int, Any] = {}
    self._sync = False

  def __enter__(self) -> "StopRequest":
    if threading.current_thread() is not threading.main_thread():
      return self  # only the main thread may set handlers; nothing is caught then
    self._sync = preemption_service()
    for name in STOP_SIGNALS:
      if self._sync and name == "SIGTERM":
        continue  # JAX's preemption notifier listens for it
      signum = getattr(signal, name, None)
      if signum is None or signal.getsignal(signum) is signal.SIG_IGN:
        continue
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc: Any) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    self._previous = {}

  def _handle(self, signum: int, frame: Any) -> None:
    del frame
    name = signal.Signals(signum).name
    if self.signal_name is not None:
      raise TrainingStopped(name)  # a second signal: the user will not wait for a step
    self.signal_name = name
    if self._sync and signum != signal.SIGTERM:
      os.kill(os.getpid(), signal.SIGTERM)  # to JAX's notifier, which tells every process

  @property
  def requested(self) -> bool:
    """Whether a stop signal arrived, in a single-process run (in a job, only ``stop(step)``
    is agreed by every process: this is then always False)."""
    return self.signal_name is not None and not self._sync

  def __call__(self, step: int) -> bool:
    """Whether to save and stop after ``step`` (every process calls it after every step)."""
    if self._sync:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return bool(multihost_utils.reached_preemption_sync_point(step))
    return self.signal_name is not None

  def stopped(self, step: int | None) -> TrainingStopped:
    """The exception to raise once the checkpoint of ``step`` is written (or None)."""
    return TrainingStopped(self.signal_name or "SIGTERM", step)


def raise_on_sigterm() -> None:
  """Makes SIGTERM raise :class:`TrainingStopped` where the program is, as Ctrl-C raises
  ``KeyboardInterrupt`` (for a command line's whole life; inside the training loop
  :class:`StopRequest` turns either into a checkpoint first). A SIGTERM that is ignored stays
  ignored."""
  if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
    return

  def handle(signum: int, frame: Any) -> None:
    del signum, frame
    raise TrainingStopped("SIGTERM")

  signal.signal(signal.SIGTERM, handle)


# -- what the checkpoint library's threads print ------------------------------------------------

def _from_checkpoint_library(path: str | None) -> bool:
  path = (path or "").replace(os.sep, "/")
  return "/orbax/" in path or "/tensorstore/" in path


class _CheckpointLibraryErrors(logging.Filter):
  """Drops the checkpoint library's error records: each is a failure that the run raises
  itself, once (they stay readable at DEBUG level in this module's logger)."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR and _from_checkpoint_library(record.pathname):
      log.debug("checkpoint library: %s", record.getMessage().splitlines()[0][:300])
      return False
    return True


def _frames(tb: Any) -> Iterator[str]:
  while tb is not None:
    yield tb.tb_frame.f_code.co_filename
    tb = tb.tb_next


def _library_leftover(unraisable: Any) -> bool:
  """An exception Python could not raise (a pending read or write of a failed save or
  restore, finalised after the failure was reported; an asyncio callback on a closed loop)."""
  exc = unraisable.exc_value
  code = getattr(unraisable.object, "cr_code", None)
  if code is not None and _from_checkpoint_library(code.co_filename):
    return True
  if isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc):
    return True
  return exc is not None and any(_from_checkpoint_library(f)
                                 for f in _frames(exc.__traceback__))


def settle_checkpoint_threads(timeout: float = 120.0) -> None:
  """Waits (up to ``timeout`` seconds in all) for the checkpoint library's background threads.

  A save that fails in one of its parts is reported while its other parts may still be
  writing (and would re-create the temporary folder after it was removed); once they have
  ended, nothing more is written.
  """
  deadline = time.monotonic() + timeout
  for thread in threading.enumerate():
    if thread is not threading.current_thread() and type(thread).__module__.startswith("orbax"):
      thread.join(max(0.0, deadline - time.monotonic()))


@contextlib.contextmanager
def quiet_checkpoint_library() -> Iterator[None]:
  """Within: the checkpoint library's error logs and leftover exceptions are not printed (the
  run raises the failure behind them itself). On exit, garbage is collected (finalising what a
  failed save or restore left pending, quietly) and the previous state is restored."""
  flt = _CheckpointLibraryErrors()
  loggers = [logging.getLogger("absl"), logging.getLogger()]
  for logger in loggers:
    logger.addFilter(flt)
  previous = sys.unraisablehook

  def hook(unraisable: Any) -> None:
    if not _library_leftover(unraisable):
      previous(unraisable)

  sys.unraisablehook = hook
  try:
    yield
  finally:
    gc.collect()
    if sys.unraisablehook is hook:
      sys.unraisablehook = previous
    for logger in loggers:
      logger.removeFilter(flt)


# -- write failures -----------------------------------------------------------------------------

# errno -> (what happened, what to do about it).
_CAUSES = {
    errno_lib.ENOSPC: ("no space left on the device", "free some space there"),
    errno_lib.EROFS: ("the file system is read-only", "make the workdir writable"),
    errno_lib.EACCES: ("permission denied", "make the workdir writable"),
    errno_lib.EPERM: ("operation not permitted", "make the workdir writable"),
    errno_lib.EFBIG: ("a file would exceed the file-size limit (`ulimit -f`)",
                      "raise the limit"),
    errno_lib.EIO: ("an input/output error (a failing disk, or a network file system that "
                    "went away)", "check the disk"),
    errno_lib.ENOENT: ("a folder of the workdir was removed", "put it back"),
}
if hasattr(errno_lib, "EDQUOT"):
  _CAUSES[errno_lib.EDQUOT] = ("the disk quota is exceeded", "free some space there")
# Codes that can only come from writing, wherever the path is.
_WRITE_ONLY = {errno_lib.ENOSPC, errno_lib.EROFS, errno_lib.EFBIG, getattr(errno_lib, "EDQUOT",
                                                                             errno_lib.ENOSPC)}

_OS_CODE = re.compile(r"os_error_code='?(\d+)")
_QUOTED_PATH = re.compile(r"\"(/[^\"]+)\"")
_TMP_CKPT = re.compile(r"^(?P<dir>.*/checkpoints/(?P<kind>latest|best))/(?P<step>\d+)"
                       r"(?:\.orbax-checkpoint-tmp[^/]*)?(?:/|$)")


def exception_chain(e: BaseException | None) -> list[BaseException]:
  """``e``, then its ``__cause__`` or ``__context__``, and so on (each once)."""
  chain: list[BaseException] = []
  while e is not None and not any(e is c for c in chain):
    chain.append(e)
    e = e.__cause__ or e.__context__
  return chain


def _os_code(e: BaseException) -> int | None:
  """The operating system's error code behind ``e``: its ``errno``, or the one the
  checkpoint library's storage layer writes into its message."""
  if isinstance(e, OSError) and e.errno:
    return e.errno
  text = str(e)
  m = _OS_CODE.search(text)
  if m:
    return int(m.group(1))
  for code in _CAUSES:
    if os.strerror(code) in text and ("writ" in text.lower() or code in _WRITE_ONLY):
      return code
  return None


def _paths(e: BaseException) -> list[str]:
  found = [str(getattr(e, "filename", None) or "")]
  found += _QUOTED_PATH.findall(str(e))
  return [p for p in found if p]


def _inside(path: str, workdir: pathlib.Path) -> bool:
  try:
    return pathlib.Path(path).absolute().is_relative_to(workdir.absolute())
  except (ValueError, OSError):
    return False


def write_failure(e: BaseException, workdir: str | os.PathLike
                  ) -> tuple[int, str | None] | None:
  """``(errno, path or None)`` when ``e`` (or an exception behind it) is a failed write into
  ``workdir``; else None."""
  workdir = pathlib.Path(workdir)
  for link in exception_chain(e):
    if isinstance(link, (WorkdirError, MemoryError)):
      continue
    code = _os_code(link)
    if code not in _CAUSES:
      continue
    paths = [p for p in _paths(link) if _inside(p, workdir)]
    if code in _WRITE_ONLY or paths or (code == errno_lib.ENOENT and not workdir.is_dir()):
      return code, (paths[-1] if paths else None)
  return None


def _describe_path(path: str | None, workdir: pathlib.Path) -> str:
  """What was being written: a checkpoint by its step, else the file."""
  if path is None:  # a save's failure often names no file: its temporary folder is left
    for kind in ("latest", "best"):
      folder = workdir / "checkpoints" / kind
      tmp = sorted(folder.glob("*.orbax-checkpoint-tmp*")) if folder.is_dir() else []
      if tmp:
        path = str(tmp[-1])
        break
  if path is None:
    return f"to {workdir}"
  m = _TMP_CKPT.match(str(pathlib.Path(path).absolute()))
  if m:
    which = "the best checkpoint" if m.group("kind") == "best" else "the checkpoint"
    return f"{which} of step {m.group('step')} ({m.group('dir')}/{m.group('step')})"
  return path


def last_complete(workdir: str | os.PathLike) -> tuple[int, pathlib.Path] | None:
  """The newest complete checkpoint under ``workdir/checkpoints`` (latest or best)."""
  found = []
  for kind in ("latest", "best"):
    folder = pathlib.Path(workdir) / "checkpoints" / kind
    if folder.is_dir():
      found += [(int(p.name), kind == "latest", p) for p in folder.iterdir()
                if p.name.isdigit()]
  if not found:
    return None
  step, _, path = max(found)
  return step, path


def resume_point(workdir: str | os.PathLike) -> str:
  """``'the last complete checkpoint is step N (path)'`` or that there is none."""
  last = last_complete(workdir)
  if last is None:
    return "no checkpoint was complete yet"
  return f"the last complete checkpoint is step {last[0]} ({last[1]})"


def write_error(code: int, path: str | None, workdir: str | os.PathLike,
                step: int | None = None) -> WorkdirError:
  """The :class:`WorkdirError` for a failed write (``code``, ``path``) into ``workdir``."""
  workdir = pathlib.Path(workdir)
  if code == errno_lib.ENOENT and not workdir.is_dir():
    return workdir_removed(workdir, step)
  cause, fix = _CAUSES[code]
  what = _describe_path(path, workdir)
  last = last_complete(workdir)
  then = ("run again with the same workdir to resume from it" if last is not None
          else "run again (a new run starts over)")
  return WorkdirError(code, f"cannot write {what}: {cause} ({errno_lib.errorcode[code]}); "
                            f"{resume_point(workdir)}: {fix}, then {then}")


def workdir_removed(workdir: pathlib.Path, step: int | None, replaced: bool = False
                    ) -> WorkdirError:
  """The :class:`WorkdirError` of a workdir that went away (or was replaced) mid-run."""
  at = f" at step {step}" if step is not None else ""
  how = "replaced by another directory" if replaced else "removed"
  then = ("running again resumes from the checkpoints that directory holds, if any" if replaced
          else "running again starts over")
  return WorkdirError(errno_lib.ENOENT, f"the workdir {workdir} was {how} while the run was "
                                        f"going: stopped{at}, writing nothing more; {then}")


def remove_temporaries(workdir: str | os.PathLike) -> list[pathlib.Path]:
  """Removes what writes cut short left in ``workdir``: the checkpoint library's temporary
  folders and the ``*.tmp`` files of atomic writes. Call it only when no save is pending.
  Returns what was removed."""
  workdir = pathlib.Path(workdir)
  removed = []
  for kind in ("latest", "best"):
    folder = workdir / "checkpoints" / kind
    if folder.is_dir():
      for p in folder.glob("*.orbax-checkpoint-tmp*"):
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
  if workdir.is_dir():
    for p in list(workdir.glob("*.tmp")) + list(workdir.glob("*.tmp.png")):
      with contextlib.suppress(OSError):
        p.unlink()
        removed.append(p)
  return removed


# -- out of memory ------------------------------------------------------------------------------

_OOM_BYTES = re.compile(r"(?:allocat\w*|reserve)\D{0,40}?(\d[\d,]*)\s*bytes", re.IGNORECASE)
_OOM_USED = re.compile(r"Used\s+(\S+)\s+of\s+(\S+)\s+(\w+)")


def _is_oom(e: BaseException) -> bool:
  if isinstance(e, MemoryError):
    return True
  text = str(e)
  # jaxlib >= 0.10: "RESOURCE_EXHAUSTED: Out of memory ..."; jaxlib 0.7.2 on a CPU: "INTERNAL:
  # Buffer Definition Event: Error preparing computation: Out of memory allocating N bytes."
  return (type(e).__name__ in ("JaxRuntimeError", "XlaRuntimeError")
          and ("RESOURCE_EXHAUSTED" in text and "memory" in text.lower()
               or "out of memory" in text.lower()))


def _bytes(n: int) -> str:
  for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
    if n >= size / 10:
      return f"{n / size:.2f} {unit}"
  return f"{n} bytes"


def out_of_memory(e: BaseException, config: Any) -> OutOfMemoryError | None:
  """An :class:`OutOfMemoryError` naming ``config``'s model and batch sizes when ``e`` (or an
  exception behind it) is an allocation failure; else None."""
  oom = next((link for link in exception_chain(e) if _is_oom(link)), None)
  if oom is None:
    return None
  text = str(oom)
  m, used = _OOM_BYTES.search(text), _OOM_USED.search(text)
  if isinstance(oom, MemoryError):
    where, need = "the host", brief(oom, 160)
  elif m:
    where = _platform()
    need = f"XLA could not allocate {_bytes(int(m.group(1).replace(',', '')))}"
  elif used:
    where = _platform()
    need = f"XLA needed {used.group(1)} of {used.group(3)}, which holds {used.group(2)}"
  else:
    where, need = _platform(), brief(oom, 160)
  kwargs = ", ".join(f"{k}={v!r}" for k, v in dict(config.model_kwargs).items())
  model = f"{config.model}({kwargs})" if kwargs else config.model
  batches = f"batch_size={config.batch_size}"
  lower = "`batch_size`"
  if config.eval_batch != config.batch_size:
    batches += f" (eval_batch_size={config.eval_batch})"
    lower = "`batch_size` or `eval_batch_size`"
  return OutOfMemoryError(f"out of memory on {where} training {model} with {batches}: "
                          f"{need}; lower {lower}, or use a smaller model")


def _platform() -> str:
  if "jax" not in sys.modules:
    return "the device"
  import jax  # pylint: disable=g-import-not-at-top
  return f"the {jax.default_backend().upper()}"


# -- the workdir's identity ---------------------------------------------------------------------

class WorkdirWatch:
  """A loop hook, placed before the others: at every step or epoch end where something is
  about to be written, checks that ``workdir`` is still the directory the run started in
  (removed, or replaced by another: :class:`WorkdirError`, before anything is written)."""

  def __init__(self, workdir: str | os.PathLike):
    self.workdir = pathlib.Path(workdir)
    st = os.stat(self.workdir)
    self._identity = (st.st_dev, st.st_ino)

  def check(self, step: int | None = None) -> None:
    try:
      st = os.stat(self.workdir)
    except FileNotFoundError:
      raise workdir_removed(self.workdir, step) from None
    if (st.st_dev, st.st_ino) != self._identity:
      raise workdir_removed(self.workdir, step, replaced=True)

  def on_steps(self, ls: Any, state: Any) -> None:
    self.check(ls.step)

  def on_best(self, ls: Any, state: Any) -> None:
    self.check(ls.step)

  def on_epoch_end(self, ls: Any, record: Mapping[str, Any], ev: Any, state: Any) -> None:
    self.check(ls.step)


# -- the guard around a run ---------------------------------------------------------------------

class RunGuard:
  """The faults of one run in ``workdir``, as a context manager around it.

  Within: stop signals are recorded (in ``stop``, for the loop), the checkpoint library's
  thread tracebacks are kept quiet, and ``watch`` is the :class:`WorkdirWatch` hook. On
  entry, process 0 removes the temporaries an earlier run left. On the way out, an exception
  that is a failed write, a vanished workdir or an allocation failure is replaced by
  :class:`WorkdirError` or :class:`OutOfMemoryError` (the original is its ``__cause__``), after
  process 0 removed the temporaries of the writes cut short. Checkpoints must be closed (every
  pending save waited for) inside the ``with``.

  Attributes:
    stop: the :class:`StopRequest` that records SIGINT / SIGTERM while the guard is entered.
    watch: the :class:`WorkdirWatch` of ``workdir``, for the training loop's hooks.
  """

  def __init__(self, workdir: str | os.PathLike, config: Any, *, is_main: bool = True):
    self.workdir, self.config, self.is_main = pathlib.Path(workdir), config, is_main
    self.stop = StopRequest()
    self.watch = WorkdirWatch(self.workdir)
    self._stack = contextlib.ExitStack()

  def __enter__(self) -> "RunGuard":
    if self.is_main:
      remove_temporaries(self.workdir)
    self._stack.enter_context(self.stop)
    self._stack.enter_context(quiet_checkpoint_library())
    return self

  def __exit__(self, typ: Any, e: BaseException | None, tb: Any) -> bool:
    if e is not None:
      settle_checkpoint_threads()  # while their errors are still kept quiet
    self._stack.close()
    if e is None:
      return False
    # The first fault wins: a save that then failed on the way out adds nothing to it.
    first = next((c for c in exception_chain(e) if isinstance(c, WorkdirError)), None)
    if first is not None:
      if first is e:
        return False
      raise WorkdirError(first.errno, str(first)) from e
    failure = write_failure(e, self.workdir)
    if failure is not None:
      error = write_error(*failure, self.workdir)  # names the failed save's folder: first
      if self.is_main:
        remove_temporaries(self.workdir)
      raise error from e
    if isinstance(e, KeyboardInterrupt):
      return False
    oom = out_of_memory(e, self.config)
    if oom is not None:
      raise oom from e
    return False


# -- damaged checkpoints ------------------------------------------------------------------------

_OCDBT_KEY = re.compile(r"Error (?:reading|opening) \"([^\"/]+)[^\"]*\" in OCDBT database")
_JSON_PARTS = ("_CHECKPOINT_METADATA", "meta/metadata", "state/_METADATA", "state/_sharding")


def damaged_part(step_dir: pathlib.Path, e: BaseException) -> str:
  """Which part of the checkpoint in ``step_dir`` could not be read, as precisely as the
  error and a look at its small JSON files allow."""
  for rel in (*_JSON_PARTS, *(f"state/array_metadatas/{p.name}" for p in sorted(
      (step_dir / "state" / "array_metadatas").glob("*")))):
    path = step_dir / rel
    if path.is_file():
      try:
        json.loads(path.read_bytes() or b"!")
      except ValueError:
        return f"{rel} is not valid JSON"
      except OSError as err:
        return f"{rel} cannot be read ({brief(err)})"
  for link in exception_chain(e):
    text = str(link)
    m = _OCDBT_KEY.search(text)
    if m:
      return f"the array {m.group(1)} is {_storage_reason(text)} in state/"
    for path in _QUOTED_PATH.findall(text):
      if _inside(path, step_dir):
        rel = pathlib.Path(path).relative_to(step_dir)
        return f"{rel} is {_storage_reason(text)}"
  return f"it cannot be read back ({brief(e, 160)})"


# The storage layer's status codes, as what they say about a file.
_STORAGE_REASONS = {"OUT_OF_RANGE": "truncated (shorter than its index says)",
                    "DATA_LOSS": "corrupt", "FAILED_PRECONDITION": "corrupt"}


def _storage_reason(text: str) -> str:
  code = text.split(":", 1)[0].strip()
  return _STORAGE_REASONS.get(code, f"unreadable ({code[:60]})")


def _unreadable(e: BaseException) -> tuple[int, str | None] | None:
  """``(errno, path)`` when a restore failed for want of access, not because of damage."""
  for link in exception_chain(e):
    code = _os_code(link)
    if code in (errno_lib.EACCES, errno_lib.EPERM, errno_lib.EIO):
      paths = _paths(link)
      return code, (paths[-1] if paths else None)
  return None


def _candidates(ckpt: checkpoint_lib.Checkpointer) -> list[tuple[int, bool]]:
  """Every saved ``(step, best)``, newest first (latest before best at the same step)."""
  found = [(s, False) for s in ckpt.latest.all_steps()]
  found += [(s, True) for s in ckpt.best.all_steps()]
  return sorted(found, key=lambda c: (-c[0], c[1]))


def _set_aside(ckpt: checkpoint_lib.Checkpointer, damaged: list[tuple[pathlib.Path, str]]
               ) -> list[pathlib.Path]:
  """Moves damaged checkpoints to ``checkpoints/damaged/<latest|best>-<step>`` (process 0) so
  no later save skips their step nor any resume tries them again; every process then reloads
  its view of the folders."""
  import jax  # pylint: disable=g-import-not-at-top
  moved = []
  target = ckpt.directory / "damaged"
  for path, _ in damaged:
    dest = target / f"{path.parent.name}-{path.name}"
    moved.append(dest)
    if jax.process_index() == 0:
      target.mkdir(exist_ok=True)
      if dest.exists():
        shutil.rmtree(dest)
      os.replace(path, dest)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("jaxcnn_damaged_checkpoints")
  for mgr in (ckpt.latest, ckpt.best):
    if hasattr(mgr, "reload"):
      mgr.reload()
  return moved


def restore_newest_intact(ckpt: checkpoint_lib.Checkpointer, template: Any, *,
                          say: Callable[[str], None] = log.warning,
                          **restore_kwargs: Any
                          ) -> tuple[Any, dict[str, Any], pathlib.Path] | None:
  """``(state, meta, path)`` of the newest checkpoint (latest or best) that reads back onto
  ``template``; None when there is none.

  A checkpoint that fails to read is damaged: ``say`` tells which (its step and the part that
  could not be read) and which one the run resumes from instead, and it is moved to
  ``checkpoints/damaged/``. ``restore_kwargs`` go to :meth:`Checkpointer.restore`.

  Raises:
    CheckpointMismatchError: a checkpoint holds another model's or optimiser's arrays.
    DamagedCheckpointError: checkpoints exist but none can be read.
    WorkdirError: a checkpoint could not be read for want of permission or an I/O error.
  """
  damaged: list[tuple[pathlib.Path, str]] = []
  for step, best in _candidates(ckpt):
    path = (ckpt.best if best else ckpt.latest).directory / str(step)
    try:
      with quiet_checkpoint_library():
        restored = ckpt.restore(template, step, best=best, **restore_kwargs)
    except checkpoint_lib.CheckpointMismatchError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      access = _unreadable(e)
      if access is not None:
        code, where = access
        raise WorkdirError(code, f"cannot read the checkpoint {path}: {_CAUSES[code][0]} "
                                 f"({errno_lib.errorcode[code]}"
                                 + (f", {where}" if where else "") + ")") from e
      damaged.append((pathlib.Path(path), damaged_part(pathlib.Path(path), e)))
      continue
    if restored is None:
      continue
    if damaged:
      moved = _set_aside(ckpt, damaged)
      what = "; ".join(f"step {p.name} ({p}): {part}" for p, part in damaged)
      say(f"damaged checkpoint{'s' if len(damaged) > 1 else ''}, moved to "
          f"{moved[0].parent}: {what}; resuming from step {step} ({path}) instead")
    return restored[0], restored[1], pathlib.Path(path)
  if damaged:
    what = "; ".join(f"step {p.name} ({p}): {part}" for p, part in damaged)
    raise DamagedCheckpointError(
        f"every checkpoint in {ckpt.directory} is damaged ({what}); to start the run over, "
        f"move {ckpt.directory} away (or use a new workdir)")
  return None


def restore_best_or_keep(ckpt: checkpoint_lib.Checkpointer, final: Any, *,
                         say: Callable[[str], None] = log.warning,
                         **restore_kwargs: Any) -> Any:
  """The best epoch's state (early stopping's result), or ``final`` with a warning when the
  best checkpoint cannot be read back (the run's last state is then the result)."""
  step = ckpt.latest_step(best=True)
  try:
    with quiet_checkpoint_library():
      state, _ = ckpt.restore(final, best=True, **restore_kwargs)
  except checkpoint_lib.CheckpointMismatchError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    path = ckpt.best.directory / str(step)
    say(f"the best checkpoint, step {step} ({path}), is damaged "
        f"({damaged_part(pathlib.Path(path), e)}): keeping the final state instead")
    return final
  return state
