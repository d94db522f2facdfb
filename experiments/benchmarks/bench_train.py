"""Train-step speed on CPU: jaxcnn vs PyTorch (NCHW, channels-last) vs Keras, alternated.

Two nets, each written once per framework with the same architecture and parameter count
(checked): the Keras tutorial CIFAR-10 CNN (``jaxcnn.models.get_model('tutorial_cnn')``,
122,570 parameters) and a plain CIFAR ResNet-20 (He et al. 2016: 3x3 conv 16 - 3 stages of 3
basic blocks with 16/32/64 channels, stride 2 at the start of stages 2 and 3 with a 1x1
conv + BN projection shortcut - global average pool - dense 10; convs without bias, BatchNorm
after every conv, 272,474 parameters). One step = forward, backward, Adam update (lr 1e-3,
eps 1e-7) on one fixed batch of 32x32x3 float32 images; BatchNorm in training mode.

Rows (``--only``):
  jaxcnn         jaxcnn model, one jitted step with donated state, as the training CLI runs it
                 (``jaxcnn.cpu.enable()``: the XLA CPU flags, each conv picks its
                 measured-fastest exact formulation, see jaxcnn/functional/_conv_fast.py)
  jaxcnn_ynnpack the same without jaxcnn's XLA flags (``enable(flags=False)``: YNNPACK on)
  jaxcnn_plain   the same without conv tuning (``enable(tuning=False)``: plain
                 ``lax.conv_general_dilated``)
  jaxcnn_onednn  the ``jaxcnn`` row with the oneDNN CPU extension (``enable(onednn=True)``:
                 2-D convolutions with fused bias and activation on oneDNN; needs
                 ``pip install 'jaxcnn[onednn]'`` and g++)
  torch_nchw     PyTorch eager, its default memory format, default threads
  torch_cl       PyTorch eager, ``channels_last`` (what oneDNN prefers on CPU), default threads
  keras          Keras 3 / TensorFlow at its defaults (``train_on_batch``; on CPU
                 ``jit_compile='auto'`` means no XLA), default threads
  keras_xla      (extra, tuned) the same with ``jit_compile=True``

Each row runs in its own process (as each framework runs for its users: no other framework's
thread pools beside it, and XLA flags can differ per row); the parent only says whose turn it
is. Timing: every row is built and warmed up first; then the rows take turns (ABAB...) in blocks of
``--block`` steps, one untimed step before each block (another framework's threads may still be
spinning), until each has ``--reps`` timed steps; the table gives the median, the p10-p90
spread and the ratio to the faster peer measured in the same invocation. The load average is
printed with each table: on a shared machine, only ratios from one invocation mean anything.

Usage::

    python experiments/benchmarks/bench_train.py                         # both nets, batch 32 and 128
    python experiments/benchmarks/bench_train.py --nets tutorial --batch-sizes 32 --reps 40
    python experiments/benchmarks/bench_train.py --threads 1 --clock cpu   # work per step, load-robust
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any

# This checkout's jaxcnn and experiments, also when run as `python experiments/benchmarks/bench_train.py`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NETS = ("tutorial", "resnet20")
ROWS = ("jaxcnn", "jaxcnn_ynnpack", "jaxcnn_plain", "jaxcnn_onednn", "torch_nchw", "torch_cl",
        "keras", "keras_xla")
# What each jaxcnn row's process turns on (jaxcnn.cpu.enable); jaxcnn_ynnpack keeps XLA's
# default flags (YNNPACK on). Peers get no XLA flag from jaxcnn (TensorFlow's XLA would abort on
# a flag it does not know).
ROW_CPU = {"jaxcnn": {"onednn": False}, "jaxcnn_ynnpack": {"flags": False, "onednn": False},
           "jaxcnn_plain": {"tuning": False, "onednn": False}, "jaxcnn_onednn": {"onednn": True}}
PARAMS = {"tutorial": 122_570, "resnet20": 272_474}
PEER_ROWS = ("torch_nchw", "torch_cl", "keras")  # the peers at their defaults


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--nets", default=",".join(NETS))
  p.add_argument("--batch-sizes", default="32,128")
  p.add_argument("--only", default=",".join(ROWS))
  p.add_argument("--reps", type=int, default=30, help="timed steps per row")
  p.add_argument("--block", type=int, default=5, help="steps per turn")
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--threads", type=int, default=0,
                 help="0: each framework's default threads; 1: one thread each (XLA "
                      "--xla_cpu_multi_thread_eigen=false, torch.set_num_threads(1), TF intra/inter 1)")
  p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                 help="wall: what a user waits; cpu: CPU-seconds of the row's process (the work "
                      "per step, robust to other processes' load; use with --threads 1)")
  args = p.parse_args(argv)
  args.nets = [n for n in args.nets.split(",") if n]
  args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
  args.only = [r for r in args.only.split(",") if r]
  for n in args.nets:
    if n not in NETS:
      p.error(f"unknown net {n!r}; known: {', '.join(NETS)}")
  for r in args.only:
    if r not in ROWS:
      p.error(f"unknown row {r!r}; known: {', '.join(ROWS)}")
  return args


# pylint: disable=g-import-not-at-top,wrong-import-position
_USER_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")
import jaxcnn.cpu  # noqa: E402
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxcnn import layers as L, models  # noqa: E402
from jaxcnn import functional as F  # noqa: E402
from jaxcnn.cpu import flags as cpu_flags, tuning  # noqa: E402

LR, EPS = 1e-3, 1e-7


def host_info() -> str:
  cpu, flags = platform.processor(), []
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name") and cpu in ("", platform.processor()):
          cpu = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
          flags = line.split(":", 1)[1].split()
          break
  except OSError:
    pass
  vec = [f for f in flags if f in ("avx", "avx2", "fma") or f.startswith(("avx512", "amx"))]
  return f"CPU: {cpu}, {os.cpu_count()} logical cores; vector extensions: {' '.join(vec) or '?'}"


def versions() -> str:
  from importlib.metadata import version
  return (f"Python {platform.python_version()}; jax {jax.__version__}; flax {version('flax')}; "
          f"optax {optax.__version__}; torch {version('torch')} (its default threads); keras "
          f"{version('keras')} / tensorflow {version('tensorflow-cpu')} (default threads); "
          f"jaxcnn's XLA flags: {' '.join(cpu_flags.recommended().flags) or 'none'}; "
          f"user XLA_FLAGS={_USER_XLA_FLAGS!r}")


def load() -> str:  # noqa: D103
  la = os.getloadavg()
  return f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} (2.0 = this benchmark alone on 2 cores)"


def batch(b: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed + b)
  return (rng.standard_normal((b, 32, 32, 3)).astype(np.float32),
          rng.integers(0, 10, b).astype(np.int32))


# ---------------------------------------------------------------------------------------- jaxcnn
class ResNet20(nn.Module):
  """CIFAR ResNet-20 in jaxcnn layers (projection shortcuts where the shape changes)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    def conv_bn(x, c, k, s):
      x = L.Conv(c, k, stride=s, padding="SAME", use_bias=False)(x)
      return L.BatchNorm()(x, train=train)

    x = F.relu(conv_bn(x, 16, 3, 1))
    for stage, c in enumerate((16, 32, 64)):
      for block in range(3):
        s = 2 if stage > 0 and block == 0 else 1
        y = F.relu(conv_bn(x, c, 3, s))
        y = conv_bn(y, c, 3, 1)
        if s != 1 or x.shape[-1] != c:
          x = conv_bn(x, c, 1, s)
        x = F.relu(x + y)
    x = jnp.mean(x, axis=(1, 2))
    return L.Dense(10)(x)


class JaxRow:
  def __init__(self, name: str, net: str, x: np.ndarray, y: np.ndarray):
    self.name = name
    model = models.get_model("tutorial_cnn") if net == "tutorial" else ResNet20()
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    params = variables["params"]
    stats = variables.get("batch_stats", {})
    self.num_params = sum(v.size for v in jax.tree_util.tree_leaves(params))
    tx = optax.adam(LR, eps=EPS)

    def step(params, stats, opt_state, x, y):
      def loss_fn(params):
        logits, new = model.apply({"params": params, "batch_stats": stats}, x, train=True,
                                  mutable=["batch_stats"])
        return F.cross_entropy(logits, y).mean(), new.get("batch_stats", {})

      (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), stats, opt_state, loss

    # Traced inside tuning.measuring(), as jaxcnn.train compiles a train step.
    self.fn = jax.jit(tuning.measured(step), donate_argnums=(0, 1, 2))
    self.state = (params, stats, tx.init(params))
    self.x, self.y = jnp.asarray(x), jnp.asarray(y)
    t0 = time.perf_counter()
    self.step()  # compiles (and, on a tuning-cache miss, measures each new conv shape)
    self.first_step_s = time.perf_counter() - t0

  def step(self):
    *self.state, loss = self.fn(*self.state, self.x, self.y)
    jax.block_until_ready(loss)


# --------------------------------------------------------------------------------------- PyTorch
def torch_net(net: str):
  import torch
  from torch import nn as tnn
  if net == "tutorial":
    from experiments.peers.torch_cifar10_tutorial import tutorial_cnn
    return tutorial_cnn()

  class Block(tnn.Module):
    def __init__(self, cin, c, s):
      super().__init__()
      self.c1, self.b1 = tnn.Conv2d(cin, c, 3, s, 1, bias=False), tnn.BatchNorm2d(c)
      self.c2, self.b2 = tnn.Conv2d(c, c, 3, 1, 1, bias=False), tnn.BatchNorm2d(c)
      self.short = (tnn.Sequential(tnn.Conv2d(cin, c, 1, s, bias=False), tnn.BatchNorm2d(c))
                    if s != 1 or cin != c else tnn.Identity())

    def forward(self, x):
      y = torch.relu(self.b1(self.c1(x)))
      return torch.relu(self.short(x) + self.b2(self.c2(y)))

  blocks, cin = [], 16
  for stage, c in enumerate((16, 32, 64)):
    for block in range(3):
      blocks.append(Block(cin, c, 2 if stage > 0 and block == 0 else 1))
      cin = c
  return tnn.Sequential(tnn.Conv2d(3, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU(),
                        *blocks, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10))


class TorchRow:
  def __init__(self, name: str, net: str, x: np.ndarray, y: np.ndarray):
    import torch
    self.name, self.torch = name, torch
    torch.manual_seed(0)
    self.model = torch_net(net)
    self.num_params = sum(p.numel() for p in self.model.parameters())
    self.x = torch.from_numpy(x).permute(0, 3, 1, 2)  # a permuted NHWC tensor: channels_last
    if name == "torch_cl":
      self.model = self.model.to(memory_format=torch.channels_last)
    else:
      self.x = self.x.contiguous()
    self.y = torch.from_numpy(y.astype(np.int64))
    self.model.train()
    self.opt = torch.optim.Adam(self.model.parameters(), lr=LR, eps=EPS)
    t0 = time.perf_counter()
    self.step()
    self.first_step_s = time.perf_counter() - t0

  def step(self):
    self.opt.zero_grad(set_to_none=True)
    self.torch.nn.functional.cross_entropy(self.model(self.x), self.y).backward()
    self.opt.step()


# ----------------------------------------------------------------------------------------- Keras
def keras_net(net: str):
  import keras
  if net == "tutorial":
    from experiments.peers.keras_cifar10_tutorial import tutorial_cnn
    return tutorial_cnn(keras)
  layers = keras.layers

  def conv_bn(x, c, k, s):
    x = layers.Conv2D(c, k, strides=s, padding="same", use_bias=False)(x)
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)

  inp = keras.Input((32, 32, 3))
  x = layers.ReLU()(conv_bn(inp, 16, 3, 1))
  for stage, c in enumerate((16, 32, 64)):
    for block in range(3):
      s = 2 if stage > 0 and block == 0 else 1
      y = layers.ReLU()(conv_bn(x, c, 3, s))
      y = conv_bn(y, c, 3, 1)
      if s != 1 or x.shape[-1] != c:
        x = conv_bn(x, c, 1, s)
      x = layers.ReLU()(layers.Add()([x, y]))
  x = layers.GlobalAveragePooling2D()(x)
  return keras.Model(inp, layers.Dense(10)(x))


class KerasRow:
  def __init__(self, name: str, net: str, x: np.ndarray, y: np.ndarray):
    import keras
    self.name = name
    keras.utils.set_random_seed(0)
    self.model = keras_net(net)
    self.num_params = self.model.count_params() - sum(
        int(np.prod(w.shape)) for w in self.model.non_trainable_weights)
    self.model.compile(optimizer=keras.optimizers.Adam(LR, epsilon=EPS),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       jit_compile=True if name == "keras_xla" else "auto")
    self.x, self.y = x, y
    t0 = time.perf_counter()
    self.step()
    self.first_step_s = time.perf_counter() - t0

  def step(self):
    self.model.train_on_batch(self.x, self.y)  # returns the loss as a Python float: synced


# ------------------------------------------------------------------------------------------ main
def make_row(name: str, net: str, x, y):
  cls = JaxRow if name.startswith("jaxcnn") else TorchRow if name.startswith("torch") else KerasRow
  return cls(name, net, x, y)


def worker(conn, name: str, net: str, b: int, warmup: int, threads: int, clock: str) -> None:
  """One row in its own process: builds it, then runs ``n`` timed steps per request."""
  now = time.process_time if clock == "cpu" else time.perf_counter
  if name in ROW_CPU:  # before JAX's first computation
    jaxcnn.cpu.enable(**ROW_CPU[name], verbose=False)
  if threads == 1 and name.startswith("torch"):
    import torch
    torch.set_num_threads(1)
  if threads == 1 and name.startswith("keras"):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
  x, y = batch(b)
  row = make_row(name, net, x, y)
  for _ in range(warmup):
    row.step()
  conn.send((row.num_params, row.first_step_s))
  while True:
    n = conn.recv()
    if n is None:
      return
    row.step()  # untimed: the previous row's threads may still be spinning
    times = []
    for _ in range(n):
      t0 = now()
      row.step()
      times.append(now() - t0)
    conn.send(times)


def _spawn(name: str, net: str, b: int, args: argparse.Namespace):
  import multiprocessing as mp
  xla = _USER_XLA_FLAGS
  if args.threads == 1 and name.startswith("jaxcnn"):
    xla = (xla + " --xla_cpu_multi_thread_eigen=false").strip()
  env = {"XLA_FLAGS": xla}
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)  # inherited by the spawned child, which imports jaxcnn afresh
  try:
    parent, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(
        target=worker, args=(child, name, net, b, args.warmup, args.threads, args.clock))
    proc.start()
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
  return proc, parent


def main(args: argparse.Namespace) -> None:
  print("# bench_train: train-step speed, CPU, one process per row")
  print("command: python " + " ".join(sys.argv))
  print(host_info())
  print(versions())
  if "jaxcnn_onednn" in args.only:
    from jaxcnn.cpu import onednn
    ok, why = onednn.available()
    if not ok:
      print(f"row jaxcnn_onednn left out: {why}")
      args.only.remove("jaxcnn_onednn")
  print(f"threads: {'one per framework' if args.threads == 1 else 'each framework default'}; "
        f"clock: {'CPU-seconds of the row process (work, not wait)' if args.clock == 'cpu' else 'wall'}")
  for net in args.nets:
    for b in args.batch_sizes:
      workers, first = {}, {}
      for name in args.only:  # built one at a time, so that compilations do not overlap
        proc, conn = _spawn(name, net, b, args)
        n_params, first[name] = conn.recv()
        if n_params != PARAMS[net]:
          raise SystemExit(f"{net}/{name}: {n_params} parameters, expected {PARAMS[net]}")
        workers[name] = (proc, conn)
      print(f"\n## {net}, batch {b} ({PARAMS[net]:,} parameters); before: {load()}")
      times = {name: [] for name in args.only}
      while min(len(t) for t in times.values()) < args.reps:
        for name, (_, conn) in workers.items():
          conn.send(min(args.block, args.reps - len(times[name])))
          times[name] += conn.recv()
      for proc, conn in workers.values():
        conn.send(None)
        proc.join()
      med = {n: statistics.median(t) for n, t in times.items()}
      peers = [n for n in PEER_ROWS if n in med]
      best = min(peers, key=med.get) if peers else None
      print(f"median of {args.reps} steps, turns of {args.block}; ratio = img/s / img/s of the "
            f"faster peer at its defaults ({best}); after: {load()}\n")
      print("| row | ms/step | p10-p90 ms | img/s | vs faster peer | first step s |")
      print("| --- | ---: | ---: | ---: | ---: | ---: |")
      for name in args.only:
        t = np.asarray(times[name]) * 1e3
        ratio = f"{med[best] / med[name]:.2f}x" if best else "-"
        print(f"| {name} | {med[name] * 1e3:.1f} | {np.percentile(t, 10):.1f}-"
              f"{np.percentile(t, 90):.1f} | {b / med[name]:,.0f} | {ratio} | "
              f"{first[name]:.2f} |", flush=True)


if __name__ == "__main__":
  main(parse_args())
