"""Data parallelism: where the state and the batches live, and how the steps are compiled.

``config.parallel`` picks one of

* ``'none'``: one device (``jax.devices()[0]``), plain ``jax.jit``;
* ``'pmap'``: every local device, ``jax.pmap(..., axis_name=AXIS_NAME)``; the state is replicated
  with a leading device axis and each batch is reshaped to ``[devices, B / devices, ...]``.
  ``pmap`` is called without ``devices=``: by default it maps over the local devices while its
  collectives span every process (``devices=``, if given, must list the same devices of all
  processes on every process; a local-only list is wrong on more than one process);
* ``'mesh'``: every device of every process in a 1-D ``Mesh`` with axis ``AXIS_NAME`` (with
  several processes, process 0's devices first, then process 1's, ...: each process's rows of a
  batch on its own devices); the state is replicated (``P()``), batches are sharded along their
  first axis (``P(AXIS_NAME)``) and ``jax.jit`` compiles the global-batch program (XLA inserts
  the all-reduces). This is the current JAX recommendation and the mode to prefer; ``'pmap'`` is
  kept for comparison.

In every mode each process feeds only its own ``global_batch / process_count`` examples: rows
``[p * B / N, (p + 1) * B / N)`` of the global batch on process ``p`` of ``N`` (what
:mod:`jaxcnn.data` loaders yield).

With more than one process, checkpoints hold global arrays (every process calls save, orbax
writes each piece of each array once): :meth:`Parallel.checkpoint_state` and
:attr:`Parallel.checkpoint_sharding`.

With more than one process on CPUs, the loop keeps at most :data:`MAX_STEPS_AHEAD` steps
dispatched ahead of the devices (:meth:`Parallel.pace`): see :data:`MAX_STEPS_AHEAD`.

BatchNorm under ``'pmap'`` normalises with per-device batch moments (the running statistics are
averaged across devices each step), unless the model's BatchNorm is given the axis name; under
``'mesh'`` it sees the global batch, exactly as on one device.
"""

from __future__ import annotations

import collections
import functools
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcnn import _checks
from jaxcnn.cpu import tuning as cpu_tuning
from jaxcnn.train.steps import AXIS_NAME

MODES = ("none", "pmap", "mesh")

# The oldest jaxlib whose CPU backend was checked to train identically with and without buffer
# donation (tests/test_train_parallel_donation.py). jaxlib 0.7.2 (Colab's TPU runtime) computes
# a different, wrong state from the third donated Adam step of the MNIST MLP on (the same steps
# without donation match jaxlib 0.10 exactly), so older jaxlibs do not donate on the CPU.
DONATION_SAFE_CPU_JAXLIB = (0, 10)


# How many dispatched steps may run ahead of the devices in a job of several processes on CPUs.
# XLA's CPU client launches a program of several local devices from a small thread pool and caps
# the computations in flight per device; once the cap is reached, a launch waits for a slot on a
# pool thread, and the devices' share of a cross-process all-reduce that needs that thread never
# starts: both processes wait for ever. jaxlib 0.7.2 and 0.10.2 hang this way within a hundred
# unpaced steps of 2 processes x 2 devices on a 2-core machine; 0.12.1 was not seen to. Two
# steps ahead keeps the next batch's host work overlapping the device work and stays far below
# the cap.
MAX_STEPS_AHEAD = 2


def _jaxlib_version() -> tuple[int, ...]:
  import jaxlib  # pylint: disable=g-import-not-at-top
  return tuple(int(p) for p in re.findall(r"\d+", jaxlib.__version__)[:2])


def donate_state(platform: str | None = None) -> tuple[int, ...]:
  """``donate_argnums`` for a train step: ``(0,)`` (donate the state), or ``()`` on a CPU with a
  jaxlib older than :data:`DONATION_SAFE_CPU_JAXLIB`, where donation gave wrong results.

  Donation only saves memory (the new state is written over the old one); results never depend
  on it where it is used.
  """
  platform = jax.default_backend() if platform is None else platform
  if platform == "cpu" and _jaxlib_version() < DONATION_SAFE_CPU_JAXLIB:
    return ()
  return (0,)


def validate_mode(mode: str) -> None:
  _checks.choice(mode, "parallel", MODES)


def num_devices_for(mode: str) -> int:
  """How many devices share the global batch in ``mode``."""
  validate_mode(mode)
  if mode == "none":
    return 1
  if mode == "pmap":
    return jax.local_device_count() * jax.process_count()
  return jax.device_count()


def check_batch_size(batch_size: int, mode: str, what: str = "batch_size") -> None:
  """Raises ``ValueError`` naming both numbers when ``batch_size`` does not split evenly."""
  n = num_devices_for(mode)
  batch_size = _checks.positive_int(batch_size, what)
  _checks.divisible(batch_size, what, n, "the number of devices",
                    fix=f"parallel={mode!r} splits every batch evenly over them")
  if mode == "none" and jax.process_count() > 1:
    raise ValueError(f"parallel='none' cannot run on {jax.process_count()} processes; "
                     "use 'mesh' or 'pmap'")


class Parallel:
  """Placement and compilation for one ``config.parallel`` mode.

  >>> par = Parallel('none')
  >>> par.num_devices
  1
  """

  def __init__(self, mode: str):
    validate_mode(mode)
    self.mode = mode
    self.num_devices = num_devices_for(mode)
    self.local_devices = jax.local_devices() if mode != "none" else [jax.local_devices()[0]]
    self.process_count = jax.process_count()
    if mode == "mesh" or self.process_count > 1:
      devices = jax.devices()
      if self.process_count > 1:
        # Grouped by process, so process p's rows of a global batch land on its own devices.
        devices = sorted(devices, key=lambda d: (d.process_index, d.id))
      self.mesh = Mesh(np.asarray(devices), (AXIS_NAME,))
      self.replicated = NamedSharding(self.mesh, P())
      self.batch_sharding = NamedSharding(self.mesh, P(AXIS_NAME))
    if mode == "none":
      self.device = self.local_devices[0]
    # Outputs of the dispatched programs not yet known to be done (see pace).
    self._in_flight: collections.deque[Any] | None = None
    if self.process_count > 1 and self.local_devices[0].platform == "cpu":
      self._in_flight = collections.deque()

  def pace(self, outputs: Any) -> None:
    """Called with the outputs of each dispatched step (train or eval): in a job of several
    processes on CPUs, waits until the step :data:`MAX_STEPS_AHEAD` before this one is done,
    so dispatch never runs far ahead of the devices (the CPU client can hang when it does).
    Anywhere else: nothing (dispatch stays fully asynchronous)."""
    if self._in_flight is None:
      return
    self._in_flight.append(outputs)
    while len(self._in_flight) > MAX_STEPS_AHEAD:
      jax.block_until_ready(self._in_flight.popleft())

  @property
  def checkpoint_sharding(self) -> Any:
    """The sharding restored checkpoint arrays get, None with one process (each array keeps
    its template's sharding) and replicated over every process's devices with more."""
    return self.replicated if self.process_count > 1 else None

  def _global(self, tree: Any) -> Any:
    """Identical host values on every process -> arrays replicated over every process's
    devices (what orbax saves once, from the primary process)."""
    def one(x):
      host = np.asarray(x)
      return jax.make_array_from_callback(host.shape, self.replicated, lambda idx: host[idx])
    return jax.tree.map(one, tree)

  def checkpoint_state(self, state: Any) -> Any:
    """The canonical single-copy state as a checkpoint takes it: :meth:`get_state`, as global
    arrays with more than one process (the ``'pmap'`` copy lives on one local device)."""
    state = self.get_state(state)
    if self.process_count > 1 and self.mode != "mesh":
      state = self._global(state)
    return state

  # -- state -------------------------------------------------------------------------------
  def put_state(self, state: Any) -> Any:
    """Places a canonical (single-copy) state for this mode."""
    if self.mode == "none":
      return jax.device_put(state, self.device)
    if self.mode == "mesh":
      if self.process_count > 1:
        # Each process built the same state (same seed) or restored the same checkpoint.
        return self._global(state)
      return jax.device_put(state, self.replicated)
    # Through an identity pmap, so the arrays carry the very sharding that the compiled step
    # returns: the second step then hits the first step's compilation. (No `devices=`: see the
    # module docstring. `jax.device_put_replicated` is gone from JAX.)
    stacked = jax.tree.map(lambda x: np.stack([np.asarray(x)] * len(self.local_devices)), state)
    return jax.pmap(lambda s: s, axis_name=AXIS_NAME)(stacked)

  def get_state(self, state: Any) -> Any:
    """The canonical single-copy state (for checkpoints, evaluation on the host, tests)."""
    if self.mode == "pmap":
      return jax.tree.map(lambda x: x[0], state)
    return state

  # -- batches -----------------------------------------------------------------------------
  def put_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
    """Places this process's share of a global batch (leading axis = examples)."""
    if self.mode == "none":
      return jax.device_put(batch, self.device)
    if self.mode == "pmap":
      n = len(self.local_devices)
      return jax.tree.map(lambda x: jnp.reshape(x, (n, x.shape[0] // n) + x.shape[1:]), batch)
    if jax.process_count() == 1:
      return jax.device_put(batch, self.batch_sharding)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(x)),
        batch)

  def metrics_to_host(self, metrics: Any) -> Any:
    """Device metrics -> numpy (pmap outputs are replicated: keep device 0's copy)."""
    metrics = jax.device_get(metrics)
    if self.mode == "pmap":
      return jax.tree.map(lambda x: np.asarray(x)[0], metrics)
    return metrics

  # -- compilation -------------------------------------------------------------------------
  def compile_train(self, step_fn: Callable[..., Any], **static: Any) -> Callable[..., Any]:
    """``step_fn(state, batch, *, axis_name, **static)`` compiled for this mode, the state
    donated (see :func:`donate_state`), traced inside :func:`jaxcnn.cpu.tuning.measuring`."""
    donate = donate_state(self.local_devices[0].platform)
    step_fn = cpu_tuning.measured(step_fn)  # its trace may measure conv formulations
    if self.mode == "pmap":
      return jax.pmap(functools.partial(step_fn, axis_name=AXIS_NAME, **static),
                      axis_name=AXIS_NAME, donate_argnums=donate)
    fn = functools.partial(step_fn, axis_name=None, **static)
    if self.mode == "mesh":
      # Keep the state replicated (and metrics too): a fixed output sharding means the
      # second step sees exactly the input shardings of the first -> no recompilation.
      return jax.jit(fn, donate_argnums=donate, out_shardings=self.replicated)
    return jax.jit(fn, donate_argnums=donate)

  def compile_eval(self, step_fn: Callable[..., Any], **static: Any) -> Callable[..., Any]:
    """``step_fn(state, batch, *, axis_name, **static)`` compiled for this mode (no donation)."""
    if self.mode == "pmap":
      return jax.pmap(functools.partial(step_fn, axis_name=AXIS_NAME, **static),
                      axis_name=AXIS_NAME)
    fn = functools.partial(step_fn, axis_name=None, **static)
    if self.mode == "mesh":
      return jax.jit(fn, out_shardings=self.replicated)
    return jax.jit(fn)
