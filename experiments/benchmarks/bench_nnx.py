"""The engine's train step for a Linen model and its NNX twin, alternated: what NNX costs.

The two rows train the same network from the same variables with the same step function,
``jaxcnn.train.train_step`` compiled by the engine (``Parallel('none').compile_train``: one
jit, state donated), and differ only in ``state.apply_fn``:

  linen   ``jaxcnn.models.get_model(net).apply``
  nnx     ``jaxcnn.nnx.linen_view(jaxcnn.nnx.from_linen_variables(net, ...)).apply``: the NNX
          module (jaxcnn.nnx layers) merged from the state, run and split again, inside the jit
  nnx_jit (extra, ``--rows``) the NNX way without the engine: ``nnx.jit`` of a step with
          ``nnx.value_and_grad`` and ``nnx.Optimizer`` (graph traversal on every call)

Nets: the Keras tutorial CIFAR-10 CNN (``tutorial_cnn``, 122,570 parameters) and He et al.'s
ResNet-20 (``resnet20``, option A, 269,722 parameters). One step = forward, backward, Adam
update (lr 1e-3, eps 1e-7) on a fixed batch of 32x32x3 float32 images, BatchNorm in train mode.

The two engine rows lower to the same XLA program (``tests/test_nnx.py`` compares their HLO):
their step times can differ only by noise, and the nnx row's first step is usually a hit of the
persistent compilation cache (on by default at ``import jaxcnn``) that the linen row just filled.

Timing: every row is built and compiled first (the first step's seconds are printed: trace +
compile); then the rows take turns (ABAB...) in blocks of ``--block`` steps, one untimed step
before each block, until each has ``--reps`` timed steps. The table gives the median, the
p10-p90 spread and the ratio to the Linen row of the same invocation; the rows' losses after
the same steps are compared (the same computation gives the same numbers). The load average is
printed with each table: on a shared machine only ratios from one invocation mean anything.

Usage::

    python experiments/benchmarks/bench_nnx.py                        # both nets, batch 32 and 128
    python experiments/benchmarks/bench_nnx.py --nets tutorial --batch-sizes 32 --reps 40
    python experiments/benchmarks/bench_nnx.py --rows linen,nnx,nnx_jit --clock cpu
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any

# This checkout's jaxcnn, also when run as `python experiments/benchmarks/bench_nnx.py`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

NETS = {"tutorial": "tutorial_cnn", "resnet20": "resnet20"}
ROWS = ("linen", "nnx", "nnx_jit")
LR, EPS = 1e-3, 1e-7


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--nets", default=",".join(NETS))
  p.add_argument("--batch-sizes", default="32,128")
  p.add_argument("--rows", default="linen,nnx", help=f"of {', '.join(ROWS)}")
  p.add_argument("--reps", type=int, default=30, help="timed steps per row")
  p.add_argument("--block", type=int, default=5, help="steps per turn")
  p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                 help="wall: what a user waits; cpu: CPU-seconds of this process (robust to "
                      "other processes' load)")
  args = p.parse_args(argv)
  args.nets = [n for n in args.nets.split(",") if n]
  args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
  args.rows = [r for r in args.rows.split(",") if r]
  for n in args.nets:
    if n not in NETS:
      p.error(f"unknown net {n!r}; known: {', '.join(NETS)}")
  for r in args.rows:
    if r not in ROWS:
      p.error(f"unknown row {r!r}; known: {', '.join(ROWS)}")
  if "linen" not in args.rows:
    p.error("--rows must include 'linen' (the ratios are to it)")
  if args.reps < 1 or args.block < 1:
    p.error("--reps and --block must be >= 1")
  return args


# pylint: disable=g-import-not-at-top,wrong-import-position
import jaxcnn  # noqa: E402,F401  (first: applies the XLA CPU flags before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from jaxcnn import functional as F  # noqa: E402
from jaxcnn import models  # noqa: E402
from jaxcnn import nnx as jnnx  # noqa: E402
from jaxcnn.train import Parallel, create_train_state, train_step  # noqa: E402


def batch(b: int, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed + b)
  return {"image": rng.standard_normal((b, 32, 32, 3)).astype(np.float32),
          "label": rng.integers(0, 10, b).astype(np.int32)}


class EngineRow:
  """The engine's compiled ``train_step`` on a state whose ``apply_fn`` is the row's."""

  def __init__(self, model: Any, data: dict[str, np.ndarray], init_fn: Any = None):
    par = Parallel("none")
    self.state = par.put_state(create_train_state(model, jax.random.key(1), (1, 32, 32, 3),
                                                  optax.adam(LR, eps=EPS), init_fn=init_fn))
    self.fn = par.compile_train(train_step, label_smoothing=0.0, loss_fn=None)
    self.batch = par.put_batch(data)
    self.losses: list[float] = []

  def step(self) -> Any:
    self.state, metrics = self.fn(self.state, self.batch)
    return metrics["loss"]


class NNXJitRow:
  """``nnx.jit`` + ``nnx.value_and_grad`` + ``nnx.Optimizer`` on the NNX twin (no engine)."""

  def __init__(self, model: nnx.Module, data: dict[str, np.ndarray]):
    self.model = model
    self.model.train()
    self.optimizer = nnx.Optimizer(model, optax.adam(LR, eps=EPS), wrt=nnx.Param)
    self.x, self.y = jnp.asarray(data["image"]), jnp.asarray(data["label"])

    @nnx.jit
    def step(model, optimizer, x, y):
      def loss_fn(model):
        return F.cross_entropy(model(x), y).mean()
      loss, grads = nnx.value_and_grad(loss_fn)(model)
      optimizer.update(model, grads)
      return loss

    self.fn = step
    self.losses: list[float] = []

  def step(self) -> Any:
    return self.fn(self.model, self.optimizer, self.x, self.y)


def build(net: str, b: int, rows: list[str]) -> dict[str, Any]:
  name = NETS[net]
  linen = models.get_model(name)
  start = jax.jit(linen.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  data = batch(b)
  built: dict[str, Any] = {}
  for row in rows:
    if row == "linen":  # from `start` too, so that the rows' losses can be compared
      r = EngineRow(linen, data, init_fn=lambda *_: jax.tree.map(jnp.copy, start))
    elif row == "nnx":
      r = EngineRow(jnnx.from_linen_variables(name, start), data)
    else:
      r = NNXJitRow(jnnx.from_linen_variables(name, start), data)
    t0 = time.perf_counter()
    r.losses.append(float(r.step()))  # trace + compile
    r.first_step_s = time.perf_counter() - t0
    built[row] = r
  return built


def measure(built: dict[str, Any], reps: int, block: int, clock: str) -> dict[str, list[float]]:
  now = time.process_time if clock == "cpu" else time.perf_counter
  times: dict[str, list[float]] = {row: [] for row in built}
  while any(len(t) < reps for t in times.values()):
    for row, r in built.items():
      if len(times[row]) >= reps:
        continue
      r.losses.append(float(r.step()))  # untimed: the previous row's threads may still spin
      for _ in range(min(block, reps - len(times[row]))):
        t0 = now()
        loss = r.step()
        jax.block_until_ready(loss)
        times[row].append(now() - t0)
        r.losses.append(float(loss))
  return times


def report(net: str, b: int, built: dict[str, Any], times: dict[str, list[float]],
           clock: str) -> None:
  base = statistics.median(times["linen"])
  la = os.getloadavg()
  print(f"\n{net}, batch {b} ({clock} clock; load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f})")
  print(f"{'row':<8} {'median ms':>10} {'p10-p90 ms':>16} {'vs linen':>9} {'first step s':>13}")
  for row, t in times.items():
    q = np.percentile(np.asarray(t) * 1e3, [10, 90])
    med = statistics.median(t)
    print(f"{row:<8} {med * 1e3:>10.2f} {q[0]:>7.2f}-{q[1]:<8.2f} {med / base:>8.3f}x "
          f"{built[row].first_step_s:>13.2f}")
  ref = built["linen"].losses
  for row, r in built.items():
    if row != "linen":
      n = min(len(ref), len(r.losses))
      gap = float(np.max(np.abs(np.asarray(ref[:n]) - np.asarray(r.losses[:n]))))
      print(f"  {row}: the same losses as linen over {n} steps, up to {gap:.2e}")


def main(argv=None) -> dict[tuple[str, int], dict[str, float]]:
  args = parse_args(argv)
  print(f"Python {platform.python_version()}; jax {jax.__version__}; flax "
        f"{__import__('flax').__version__}; {jax.devices()[0].device_kind} x "
        f"{jax.device_count()}; {os.cpu_count()} logical cores")
  medians = {}
  for net in args.nets:
    for b in args.batch_sizes:
      built = build(net, b, args.rows)
      times = measure(built, args.reps, args.block, args.clock)
      report(net, b, built, times, args.clock)
      medians[(net, b)] = {row: statistics.median(t) for row, t in times.items()}
  return medians


if __name__ == "__main__":
  main()
