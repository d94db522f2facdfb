"""What the bfloat16 guard of XLA CPU's YNNPACK bug costs: jitted bf16 training gradients and
evaluation forward passes with and without it.

``jaxcnn.functional._ynn_guard`` keeps bfloat16 convolutions and matrix products out of the
YNNPACK fusions around them on the jaxlibs that miscompile those fusions. This script compiles
the same function twice in one process, once with the guard and once without (forced on or
off, whatever the installed jaxlib), and times them in alternating blocks. Functions, for a
model in bfloat16 (parameters float32) on the plain conv path (tuning off): ``grad``, forward +
backward of the cross-entropy with BatchNorm in training mode; ``eval``, the forward pass with
BatchNorm on its running statistics (where the unguarded bug gives NaN). It prints the median
CPU milliseconds per step (``time.process_time``: the process's CPU time over all of XLA's
threads, less sensitive to other load on the machine than the wall clock), the median wall
milliseconds, and whether each variant's output is finite.

Command::

    python -m experiments.benchmarks.bench_bf16_guard                    # tutorial_cnn and vgg11, batch 32
    python -m experiments.benchmarks.bench_bf16_guard --models vgg11 --batch-size 128 --blocks 10
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import models
from jaxcnn.functional import _ynn_guard


@contextlib.contextmanager
def guard(on: bool):
  """Forces the guard on or off while a function is traced (and so compiled)."""
  saved = _ynn_guard._installed_jaxlib_affected  # pylint: disable=protected-access
  _ynn_guard._installed_jaxlib_affected = lambda: on  # pylint: disable=protected-access
  try:
    yield
  finally:
    _ynn_guard._installed_jaxlib_affected = saved  # pylint: disable=protected-access


def step_fn(model, kind):
  if kind == "eval":
    return jax.jit(lambda params, batch_stats, x, y: model.apply(
        {"params": params, "batch_stats": batch_stats}, x))

  def loss(params, batch_stats, x, y):
    logits, new = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                              mutable=["batch_stats"])
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), new
  return jax.jit(jax.value_and_grad(loss, has_aux=True))


def finite(tree) -> bool:
  return all(bool(jnp.isfinite(jnp.asarray(l, jnp.float32)).all()) for l in jax.tree.leaves(tree))


def measure(name, kind, batch_size, blocks, block):
  model = models.get_model(name, dtype=jnp.bfloat16)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch_size, 32, 32, 3)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, batch_size), jnp.int32)
  v = model.init(jax.random.PRNGKey(0), x[:1])
  args = (v["params"], v.get("batch_stats", {}), x, y)
  steps, ok = {}, {}
  for on in (True, False):
    with guard(on):
      steps[on] = step_fn(model, kind)
      out = jax.block_until_ready(steps[on](*args))  # compiles with the guard as set
    ok[on] = finite(out)
  cpu = {True: [], False: []}
  wall = {True: [], False: []}
  for _ in range(blocks):
    for on in (True, False):
      jax.block_until_ready(steps[on](*args))  # one untimed step per turn
      t0, c0 = time.perf_counter(), time.process_time()
      for _ in range(block):
        out = steps[on](*args)
      jax.block_until_ready(out)
      cpu[on].append((time.process_time() - c0) / block)
      wall[on].append((time.perf_counter() - t0) / block)
  return {on: (statistics.median(cpu[on]) * 1e3, statistics.median(wall[on]) * 1e3, ok[on])
          for on in (True, False)}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", nargs="*", default=["tutorial_cnn", "vgg11"])
  p.add_argument("--kinds", nargs="*", default=["grad", "eval"], choices=["grad", "eval"])
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--blocks", type=int, default=6, help="turns per variant")
  p.add_argument("--block", type=int, default=5, help="timed steps per turn")
  args = p.parse_args(argv)

  import jaxlib  # pylint: disable=g-import-not-at-top
  print(f"jax {jax.__version__} / jaxlib {jaxlib.__version__} on {jax.default_backend()}; "
        f"jaxlib affected: {_ynn_guard.jaxlib_affected()}; batch {args.batch_size}, bf16, "
        f"median of {args.blocks} turns of {args.block} steps")
  print(f"{'model':14s} {'kind':5s} {'guard CPU ms':>12s} {'none CPU ms':>12s} {'ratio':>6s} "
        f"{'guard wall ms':>13s} {'none wall ms':>12s} {'finite guard/none':>18s}")
  for name in args.models:
    for kind in args.kinds:
      r = measure(name, kind, args.batch_size, args.blocks, args.block)
      (cg, wg, fg), (cn, wn, fn) = r[True], r[False]
      print(f"{name:14s} {kind:5s} {cg:12.1f} {cn:12.1f} {cg / cn:6.2f} {wg:13.1f} {wn:12.1f} "
            f"{str(fg):>8s}/{str(fn):<9s}", flush=True)


if __name__ == "__main__":
  main()
