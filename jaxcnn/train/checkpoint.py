"""Checkpoints with orbax-checkpoint: the latest state and the best one, written atomically.

Layout under ``workdir/checkpoints``::

    latest/<step>/{state, meta}   # the last ``keep`` saves (every epoch and every N steps)
    best/<step>/{state, meta}     # the state with the lowest eval loss so far (one kept)

``state`` is the :class:`~jaxcnn.train.TrainState` as a plain state dict
(``flax.serialization.to_state_dict``), ``meta`` a JSON dict of loop bookkeeping (epoch, history,
early-stopping counters, partial epoch sums) so a resumed run continues exactly.

Atomic: on a local or NFS path orbax writes ``<step>.orbax-checkpoint-tmp-<time>/`` and renames it
to ``<step>/`` only once every file is written (``AtomicRenameTemporaryPath``); a process killed
mid-save leaves a ``*.orbax-checkpoint-tmp-*`` directory that the next run ignores and deletes
(``cleanup_tmp_directories=True``), never a half-written ``<step>/``.

Saves are asynchronous: the arrays are copied off the device before ``save`` returns (so donating
the state to the next step is safe) and written to disk in a background thread; call
:meth:`Checkpointer.wait` before the process exits.

Several processes (a distributed run): every process makes the same ``Checkpointer`` on the same
shared directory and calls every ``save`` and ``restore``; the state holds global arrays
(:meth:`jaxcnn.train.Parallel.checkpoint_state`), orbax writes each array once (from the process
holding its first replica: process 0 for a replicated state) and ``meta`` from process 0, and it
finalises (renames) a step once every process has written its part.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import serialization


def _handler_registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
  """The two items of a checkpoint: the state (arrays) and ``meta`` (JSON)."""
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  for args in (ocp.args.StandardSave, ocp.args.StandardRestore):
    registry.add("state", args, ocp.StandardCheckpointHandler)
  for args in (ocp.args.JsonSave, ocp.args.JsonRestore):
    registry.add("meta", args, ocp.JsonCheckpointHandler)
  return registry


def _describe(leaf: Any) -> str:
  return "absent" if leaf is None else f"{leaf.dtype}{list(leaf.shape)}"


class CheckpointMismatchError(ValueError):
  """A checkpoint holds other arrays (names, shapes or dtypes) than the state restored onto:
  another model or optimiser, not a damaged file."""


def _check_fits(saved: Any, expected: Any, where: Any) -> None:
  """Raises :class:`CheckpointMismatchError` naming the first array whose saved shape/dtype
  differs."""
  def by_name(tree):
    return {jax.tree_util.keystr(path): leaf
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
  saved, expected = by_name(saved), by_name(expected)
  for name in sorted(saved.keys() | expected.keys()):
    a, b = saved.get(name), expected.get(name)
    if a is None or b is None or tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
      raise CheckpointMismatchError(f"the checkpoint {where} does not fit: state{name} is "
                                    f"{_describe(a)} there, {_describe(b)} here")


def completed_steps(directory: str | pathlib.Path) -> list[int]:
  """The steps saved completely under ``directory`` (``checkpoints/latest``), ascending: the
  ``<step>/`` folders, never the temporary ones of a save cut short.

  >>> completed_steps('/nonexistent')
  []
  """
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


class Checkpointer:
  """Latest and best checkpoints of a train state plus a JSON ``meta`` dict.

  >>> ckpt = Checkpointer('/tmp/run/checkpoints')  # doctest: +SKIP
  >>> ckpt.save(100, state, {'epoch': 1}); ckpt.wait()  # doctest: +SKIP
  >>> state, meta = ckpt.restore(state)  # doctest: +SKIP
  """

  def __init__(self, directory: str | pathlib.Path, *, keep: int = 2, async_save: bool = True):
    self.directory = pathlib.Path(directory).absolute()

    def manager(sub: str, max_to_keep: int) -> ocp.CheckpointManager:
      options = ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
          enable_async_checkpointing=async_save,
          # Several processes meet at named barriers for each save; `latest` and `best` often
          # save the same step at once, so their barriers need names of their own.
          multiprocessing_options=ocp.options.MultiprocessingOptions(
              barrier_sync_key_prefix=sub))
      return ocp.CheckpointManager(self.directory / sub, options=options,
                                   handler_registry=_handler_registry())

    self.latest = manager("latest", keep)
    self.best = manager("best", 1)

  def _manager(self, best: bool) -> ocp.CheckpointManager:
    return self.best if best else self.latest

  def latest_step(self, *, best: bool = False) -> int | None:
    return self._manager(best).latest_step()

  def save(self, step: int, state: Any, meta: dict[str, Any], *, best: bool = False) -> None:
    """Saves ``state`` (a canonical, single-copy state) and ``meta`` at ``step``.

    Saving the same step twice is a no-op (e.g. the last step of an epoch that is also a
    ``checkpoint_every_steps`` multiple): orbax would raise, and the content is identical.
    """
    mgr = self._manager(best)
    if step in mgr.all_steps():
      return
    # A snapshot: the caller keeps mutating its dict while the async save runs; this also
    # fails early on anything that is not JSON.
    meta = json.loads(json.dumps(meta))
    mgr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(serialization.to_state_dict(state)),
        meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, template: Any, step: int | None = None, *, best: bool = False,
              sharding: Any = None) -> tuple[Any, dict[str, Any]] | None:
    """Restores onto ``template``'s structure, dtypes and shardings; None if there is nothing.

    ``template`` is a state of the same model and optimiser (e.g. a freshly created one).
    ``sharding``: every array's sharding instead of its template's (a distributed run restores
    onto :attr:`jaxcnn.train.Parallel.checkpoint_sharding`).
    """
    mgr = self._manager(best)
    mgr.wait_until_finished()
    step = mgr.latest_step() if step is None else step
    if step is None:
      return None
    target = serialization.to_state_dict(template)
    if sharding is None:
      abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    else:
      abstract = jax.tree.map(
          lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), target)
    # Compare before reading: a restore that fails half-way leaves orbax's reads pending.
    _check_fits(mgr.item_metadata(step)["state"], abstract, mgr.directory / str(step))
    restored = mgr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    state = serialization.from_state_dict(template, restored["state"])
    return state, dict(restored["meta"])

  def wait(self) -> None:
    """Blocks until every pending asynchronous save is on disk; a save that failed is raised
    once both ``latest`` and ``best`` have finished (so nothing is still being written)."""
    failed = []
    for mgr in (self.latest, self.best):
      try:
        mgr.wait_until_finished()
      except Exception as e:  # pylint: disable=broad-except
        failed.append(e)
    if failed:
      raise failed[0]

  def close(self) -> None:
    self.wait()
    self.latest.close()
    self.best.close()
