"""Times the Keras-tutorial CIFAR-10 CNN on CPU: jaxcnn formulations vs stock Flax vs PyTorch.

The net (122,570 parameters, VALID padding, NHWC in JAX):
Conv32 k3 relu - MaxPool2 - Conv64 k3 relu - MaxPool2 - Conv64 k3 relu - Flatten - Dense64 relu -
Dense10. Every formulation starts from the *same* weights and sees the same batch, and the script
checks that they agree on the loss and the gradient norm before it times anything.

Formulations (``--only`` takes these names):
  jax_conv       pure jaxcnn.functional with ``F.conv`` (``lax.conv_general_dilated``)
  jax_patches    pure jaxcnn.functional with ``F.conv_via_patches`` (im2col + one GEMM)
  jaxcnn_model   ``jaxcnn.models.get_model('tutorial_cnn')`` (Flax Linen over jaxcnn)
  flax_linen     stock ``flax.linen.Conv`` / ``nn.max_pool`` / ``nn.Dense``
  torch_nchw     PyTorch CPU, default NCHW memory format
  torch_cl       PyTorch CPU, ``torch.channels_last`` memory format
  jax_conv_rpool, jax_patches_rpool (not in the default set): as jax_conv / jax_patches with the
                 2x2 max pool written as reshape + max (see ``max_pool_2x2_reshape``)

Two measurements per formulation and batch size:
  fwdbwd  loss and gradients (``jax.value_and_grad`` of the mean cross-entropy / ``backward()``)
  train   a full Adam step (``optax.adam`` with donated state / ``torch.optim.Adam``)

Timing discipline: each step is jitted once and warmed up, then timed one step at a time
(``block_until_ready`` on every output) in round-robin blocks over the formulations, so that a
burst of load from other processes hits all of them alike; the table gives the median. The ratio
column is ``images/s of the row / images/s of the faster PyTorch memory format`` measured in the
same run (above 1 means faster than PyTorch).

``--investigate`` adds the diagnostics behind BENCHMARKS.md: dispatch overhead of a trivial jitted
function, each conv layer's forward / backward alone in XLA and in PyTorch, and the convolution
instructions of the compiled HLO.

XLA flags must be set before JAX starts, hence ``--xla-flags`` (appended to ``$XLA_FLAGS``).

Usage::

    python experiments/benchmarks/bench_conv.py                        # full table, batch 32 and 128
    python experiments/benchmarks/bench_conv.py --reps 20 --only jax_conv,torch_nchw --batch-sizes 32
    python experiments/benchmarks/bench_conv.py --investigate --modes none
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

FORMULATIONS = ("jax_conv", "jax_patches", "jaxcnn_model", "flax_linen", "torch_nchw", "torch_cl",
                "jax_conv_rpool", "jax_patches_rpool")
DEFAULT_FORMULATIONS = FORMULATIONS[:6]
MODES = ("fwdbwd", "train")
LAYERS = ("conv1", "conv2", "conv3", "dense1", "dense2")
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch-sizes", default="32,128", help="comma-separated, e.g. 32,128")
  p.add_argument("--reps", type=int, default=60, help="timed steps per formulation and mode")
  p.add_argument("--block", type=int, default=10,
                 help="steps per round-robin block (reps are split into reps/block rounds)")
  p.add_argument("--warmup", type=int, default=5, help="untimed steps after compilation")
  p.add_argument("--only", default=",".join(DEFAULT_FORMULATIONS),
                 help=f"comma-separated subset of {','.join(FORMULATIONS)}")
  p.add_argument("--modes", default=",".join(MODES),
                 help=f"comma-separated subset of {','.join(MODES)}, or 'none'")
  p.add_argument("--learning-rate", type=float, default=1e-3)
  p.add_argument("--xla-flags", default="", help="appended to $XLA_FLAGS before JAX starts")
  p.add_argument("--torch-threads", type=int, default=0,
                 help="torch.set_num_threads (0: leave PyTorch's default)")
  p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                 help="wall: time.perf_counter (the real measure, needs a quiet machine); cpu: "
                      "time.process_time, CPU-seconds of this process, robust to other load "
                      "(use with `taskset -c 0` and --threads 1 to compare work done per step)")
  p.add_argument("--threads", type=int, default=0,
                 help="1: single-threaded XLA (--xla_cpu_multi_thread_eigen=false) and PyTorch")
  p.add_argument("--investigate", action="store_true",
                 help="also print dispatch overhead, per-layer timings and HLO conv ops")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
  args.only = [f for f in args.only.split(",") if f]
  args.modes = [] if args.modes == "none" else [m for m in args.modes.split(",") if m]
  for f in args.only:
    if f not in FORMULATIONS:
      p.error(f"unknown formulation {f!r} in --only; known: {', '.join(FORMULATIONS)}")
  for m in args.modes:
    if m not in MODES:
      p.error(f"unknown mode {m!r} in --modes; known: {', '.join(MODES)}")
  if args.reps < 1 or args.block < 1:
    p.error(f"--reps (={args.reps}) and --block (={args.block}) must be >= 1")
  return args


# This checkout's jaxcnn, also when run as `python experiments/benchmarks/bench_conv.py`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.threads == 1:
  ARGS.xla_flags += " --xla_cpu_multi_thread_eigen=false"
  ARGS.torch_threads = 1
if ARGS is not None and ARGS.xla_flags:
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + ARGS.xla_flags).strip()

# pylint: disable=g-import-not-at-top,wrong-import-position
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from jaxcnn import functional as F
from jaxcnn import models

Params = dict[str, dict[str, np.ndarray]]  # {'conv1': {'w': ..., 'b': ...}, ...} in JAX layout


# ----------------------------------------------------------------------------------- weights, data
def reference_params(seed: int) -> Params:
  """One set of weights shared by all formulations (He-uniform kernels, small nonzero biases).

  Biases are nonzero on purpose: a bias mapped to the wrong layer then changes the loss.
  """
  rng = np.random.default_rng(seed)
  shapes = {"conv1": (3, 3, 3, 32), "conv2": (3, 3, 32, 64), "conv3": (3, 3, 64, 64),
            "dense1": (1024, 64), "dense2": (64, 10)}
  params = {}
  for name, shape in shapes.items():
    fan_in = int(np.prod(shape[:-1]))
    bound = np.sqrt(6.0 / fan_in)
    params[name] = {"w": rng.uniform(-bound, bound, shape).astype(np.float32),
                    "b": rng.uniform(-0.05, 0.05, shape[-1:]).astype(np.float32)}
  return params


def make_batch(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """x: [B, 32, 32, 3] float32 (standardised-image-like), y: [B] int32."""
  rng = np.random.default_rng(seed + batch)
  x = rng.standard_normal((batch, *IMAGE_SHAPE)).astype(np.float32)
  y = rng.integers(0, NUM_CLASSES, batch).astype(np.int32)
  return x, y


# ------------------------------------------------------------------------------- JAX formulations
def max_pool_2x2_reshape(x: jax.Array) -> jax.Array:
  """2x2 / stride 2 VALID max pool as a reshape and a max over two axes (a candidate for
  ``F.max_pool``'s non-overlapping case). ``x: [B, H, W, C] -> [B, H // 2, W // 2, C]``.

  Same values as ``F.max_pool(x, 2)``. Its gradient is a compare-and-select instead of XLA's
  select-and-scatter; on exact ties inside a window it splits the gradient between the tied
  cells (``jnp.max``'s rule) where select-and-scatter gives it all to the first. After a relu the
  only ties are windows of zeros, whose gradient the relu discards, so a net's gradients agree.
  """
  b, h, w, c = x.shape
  x = x[:, : h // 2 * 2, : w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def functional_apply(conv_fn: Callable[..., jax.Array],
                     pool_fn: Callable[[jax.Array], jax.Array] = lambda x: F.max_pool(x, 2),
                     ) -> Callable[..., jax.Array]:
  """The tutorial CNN as a pure function of ``(params, x)``; ``conv_fn`` is F.conv or a peer."""

  def apply(params, x):
    x = F.relu(conv_fn(x, params["conv1"]["w"], params["conv1"]["b"]))
    x = pool_fn(x)
    x = F.relu(conv_fn(x, params["conv2"]["w"], params["conv2"]["b"]))
    x = pool_fn(x)
    x = F.relu(conv_fn(x, params["conv3"]["w"], params["conv3"]["b"]))
    x = F.flatten(x)
    x = F.relu(F.dense(x, params["dense1"]["w"], params["dense1"]["b"]))
    return F.dense(x, params["dense2"]["w"], params["dense2"]["b"])

  return apply


class StockFlaxCNN(nn.Module):
  """The same net written the way the Flax examples write it (no jaxcnn code at all)."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3), padding="VALID", name="conv1")(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(64, (3, 3), padding="VALID", name="conv2")(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(64, (3, 3), padding="VALID", name="conv3")(x))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(64, name="dense1")(x))
    return nn.Dense(NUM_CLASSES, name="dense2")(x)


def _kernel_shape_to_layer(ref: Params) -> dict[tuple[int, ...], str]:
  return {v["w"].shape: k for k, v in ref.items()}


def to_flax_variables(template: Any, ref: Params) -> Any:
  """Copies ``ref`` into a Flax variables tree by matching each module's kernel shape.

  Every kernel shape in this net is unique, and a bias is placed with the kernel of its own
  module, so the mapping does not depend on how modules are named or ordered.
  """
  by_shape = _kernel_shape_to_layer(ref)
  found = set()

  def visit(tree):
    if isinstance(tree, dict) and "kernel" in tree:
      name = by_shape.get(tuple(tree["kernel"].shape))
      if name is None:
        raise ValueError(f"no reference layer has a kernel of shape {tree['kernel'].shape}")
      found.add(name)
      out = dict(tree)
      out["kernel"] = jnp.asarray(ref[name]["w"])
      if "bias" in tree:
        out["bias"] = jnp.asarray(ref[name]["b"])
      return out
    if isinstance(tree, dict):
      return {k: visit(v) for k, v in tree.items()}
    return tree

  out = visit(jax.tree_util.tree_map(lambda a: a, dict(template)))
  if found != set(LAYERS):
    raise ValueError(f"mapped layers {sorted(found)}, expected {list(LAYERS)}")
  return out


def jax_formulation(name: str, ref: Params) -> tuple[Callable, Any]:
  """Returns ``(loss_fn(params, x, y) -> scalar, params)`` for one JAX formulation."""
  if name in ("jax_conv", "jax_patches", "jax_conv_rpool", "jax_patches_rpool"):
    conv_fn = F.conv_via_patches if name.startswith("jax_patches") else F.conv
    pool_fn = max_pool_2x2_reshape if name.endswith("rpool") else (lambda x: F.max_pool(x, 2))
    apply = functional_apply(conv_fn, pool_fn)
    params = jax.tree_util.tree_map(jnp.asarray, ref)

    def loss_fn(params, x, y):
      return F.cross_entropy(apply(params, x), y).mean()

    return loss_fn, params
  if name == "jaxcnn_model":
    model = models.get_model("tutorial_cnn")
    template = model.init(jax.random.key(0), jnp.zeros((1, *IMAGE_SHAPE)))
    params = to_flax_variables(template, ref)

    def loss_fn(params, x, y):
      return F.cross_entropy(model.apply(params, x, train=True), y).mean()

    return loss_fn, params
  if name == "flax_linen":
    model = StockFlaxCNN()
    template = model.init(jax.random.key(0), jnp.zeros((1, *IMAGE_SHAPE)))
    params = to_flax_variables(template, ref)

    def loss_fn(params, x, y):
      return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, x), y).mean()

    return loss_fn, params
  raise ValueError(f"not a JAX formulation: {name!r}")


class JaxRunner:
  """Jitted fwd+bwd and Adam step for one JAX formulation; ``step()`` runs one, blocking."""

  def __init__(self, name: str, ref: Params, x: np.ndarray, y: np.ndarray, lr: float):
    self.name = name
    loss_fn, params = jax_formulation(name, ref)
    self.params = params
    self.x, self.y = jnp.asarray(x), jnp.asarray(y)
    self.grad_fn = jax.jit(jax.value_and_grad(loss_fn))
    self.tx = optax.adam(lr)

    def train_step(params, opt_state, x, y):
      loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
      updates, opt_state = self.tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    # Donating the old state lets XLA update parameters and Adam moments in place.
    self.train_fn = jax.jit(train_step, donate_argnums=(0, 1))
    self.state = None

  def check(self) -> tuple[float, float]:
    """Loss and global gradient norm at the reference weights (compiles fwdbwd)."""
    loss, grads = self.grad_fn(self.params, self.x, self.y)
    return float(loss), float(optax.global_norm(grads))

  def fwdbwd(self) -> None:
    jax.block_until_ready(self.grad_fn(self.params, self.x, self.y))

  def train(self) -> None:
    if self.state is None:
      params = jax.tree_util.tree_map(jnp.copy, self.params)  # the donated copy
      self.state = (params, self.tx.init(params))
    params, opt_state, loss = self.train_fn(*self.state, self.x, self.y)
    jax.block_until_ready((params, opt_state, loss))
    self.state = (params, opt_state)


# ---------------------------------------------------------------------------------------- PyTorch
class TorchCNN(torch.nn.Module):
  """The same net in PyTorch (NCHW logical layout, as every PyTorch model)."""

  def __init__(self):
    super().__init__()
    self.conv1 = torch.nn.Conv2d(3, 32, 3)
    self.conv2 = torch.nn.Conv2d(32, 64, 3)
    self.conv3 = torch.nn.Conv2d(64, 64, 3)
    self.dense1 = torch.nn.Linear(1024, 64)
    self.dense2 = torch.nn.Linear(64, NUM_CLASSES)

  def forward(self, x):
    f = torch.nn.functional
    x = f.max_pool2d(f.relu(self.conv1(x)), 2)
    x = f.max_pool2d(f.relu(self.conv2(x)), 2)
    x = f.relu(self.conv3(x))
    x = torch.flatten(x, 1)
    return self.dense2(f.relu(self.dense1(x)))


def torch_model(ref: Params) -> TorchCNN:
  """TorchCNN holding ``ref``: HWIO -> OIHW kernels, and dense1's rows reordered from JAX's
  (H, W, C) flatten order to PyTorch's (C, H, W)."""
  m = TorchCNN()
  with torch.no_grad():
    for name in ("conv1", "conv2", "conv3"):
      getattr(m, name).weight.copy_(torch.from_numpy(ref[name]["w"].transpose(3, 2, 0, 1).copy()))
      getattr(m, name).bias.copy_(torch.from_numpy(ref[name]["b"]))
    w1 = ref["dense1"]["w"].reshape(4, 4, 64, 64).transpose(2, 0, 1, 3).reshape(1024, 64)
    m.dense1.weight.copy_(torch.from_numpy(w1.T.copy()))
    m.dense1.bias.copy_(torch.from_numpy(ref["dense1"]["b"]))
    m.dense2.weight.copy_(torch.from_numpy(ref["dense2"]["w"].T.copy()))
    m.dense2.bias.copy_(torch.from_numpy(ref["dense2"]["b"]))
  return m


class TorchRunner:
  """fwd+bwd and Adam step in PyTorch; ``channels_last`` picks the memory format."""

  def __init__(self, name: str, ref: Params, x: np.ndarray, y: np.ndarray, lr: float):
    self.name = name
    self.model = torch_model(ref)
    self.x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    self.y = torch.from_numpy(y.astype(np.int64))
    if name == "torch_cl":
      self.model = self.model.to(memory_format=torch.channels_last)
      self.x = self.x.contiguous(memory_format=torch.channels_last)
    self.train_model = None
    self.lr = lr

  def _loss(self, model):
    return torch.nn.functional.cross_entropy(model(self.x), self.y)

  def check(self) -> tuple[float, float]:
    self.model.zero_grad(set_to_none=True)
    loss = self._loss(self.model)
    loss.backward()
    norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in self.model.parameters()))
    loss = loss.detach()
    return float(loss), float(norm)

  def fwdbwd(self) -> None:
    self.model.zero_grad(set_to_none=True)
    self._loss(self.model).backward()

  def train(self) -> None:
    if self.train_model is None:
      self.train_model = torch_model(reference_params(0))
      self.train_model.load_state_dict(self.model.state_dict())
      if self.name == "torch_cl":
        self.train_model = self.train_model.to(memory_format=torch.channels_last)
      self.opt = torch.optim.Adam(self.train_model.parameters(), lr=self.lr)
    self.opt.zero_grad(set_to_none=True)
    self._loss(self.train_model).backward()
    self.opt.step()


# ----------------------------------------------------------------------------------------- timing
CLOCK = time.perf_counter


def time_round_robin(runners: list[Any], mode: str, reps: int, block: int,
                     warmup: int) -> dict[str, list[float]]:
  """Seconds per step for each runner, timed in interleaved blocks of ``block`` steps."""
  for r in runners:
    for _ in range(warmup + 1):  # +1: the first call compiles (JAX) / allocates (PyTorch)
      getattr(r, mode)()
  times: dict[str, list[float]] = {r.name: [] for r in runners}
  while min(len(t) for t in times.values()) < reps:
    for r in runners:
      step = getattr(r, mode)
      getattr(r, mode)()  # one untimed step: the other framework's threads may still be spinning
      for _ in range(min(block, reps - len(times[r.name]))):
        t0 = CLOCK()
        step()
        times[r.name].append(CLOCK() - t0)
  return times


def machine_info() -> str:
  cpu = platform.processor() or "unknown"
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
  return (f"CPU: {cpu}; {os.cpu_count()} logical cores; Python {platform.python_version()}; "
          f"jax {jax.__version__} ({jax.default_backend()}, {jax.device_count()} device); "
          f"flax {nn.__version__ if hasattr(nn, '__version__') else _flax_version()}; "
          f"optax {optax.__version__}; torch {torch.__version__} "
          f"(num_threads={torch.get_num_threads()}, "
          f"mkldnn={torch.backends.mkldnn.is_available()}); "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _flax_version() -> str:
  import flax  # pylint: disable=g-import-not-at-top
  return flax.__version__


def table(results: dict[tuple[int, str], dict[str, list[float]]], batch_sizes: list[int],
          modes: list[str], names: list[str]) -> str:
  """Markdown table: median ms/step, images/s, ratio to the faster PyTorch row of that column."""
  lines = ["| formulation | " + " | ".join(
      f"{m} B={b} ms | img/s | vs torch" for m in modes for b in batch_sizes) + " |",
           "| --- |" + " ---: | ---: | ---: |" * (len(modes) * len(batch_sizes))]
  notes = []
  torch_best = {}
  for key, times in results.items():
    torch_rows = {n: statistics.median(t) for n, t in times.items() if n.startswith("torch")}
    if torch_rows:
      best = min(torch_rows, key=torch_rows.get)
      torch_best[key] = torch_rows[best]
      notes.append(f"{key[1]} B={key[0]}: faster PyTorch format is {best}")
  for name in names:
    cells = []
    for m in modes:
      for b in batch_sizes:
        t = statistics.median(results[(b, m)][name])
        ratio = (f"{torch_best[(b, m)] / t:.2f}x" if (b, m) in torch_best else "-")
        cells.append(f"{t * 1e3:.2f} | {b / t:,.0f} | {ratio}")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n\n" + "; ".join(notes)


# ------------------------------------------------------------------------------------ diagnostics
def _median_time(fn: Callable[[], Any], reps: int, warmup: int) -> float:
  for _ in range(warmup + 1):
    fn()
  ts = []
  for _ in range(reps):
    t0 = CLOCK()
    fn()
    ts.append(CLOCK() - t0)
  return statistics.median(ts)


def investigate(ref: Params, batch_sizes: list[int], reps: int, warmup: int) -> None:
  """Prints where the time goes: dispatch, each conv's fwd / bwd-input / bwd-weight, HLO."""
  print("\n## Diagnostics")
  tiny = jax.jit(lambda a: a + 1.0)
  a = jnp.zeros(())
  t = _median_time(lambda: tiny(a).block_until_ready(), max(reps, 200), warmup)
  print(f"dispatch + sync of a trivial jitted fn: {t * 1e6:.1f} us")

  conv_in = {"conv1": (32, 32, 3), "conv2": (15, 15, 32), "conv3": (6, 6, 64)}
  print("\nPer conv layer, median ms (fwd = conv+bias+relu; dx/dw = vjp w.r.t. input/kernel):")
  print("| layer | B | XLA fwd | XLA fwd+dw | XLA fwd+dx+dw | patches fwd+dx+dw |"
        " torch fwd | torch fwd+dw | torch fwd+dx+dw |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for b in batch_sizes:
    for name, hwc in conv_in.items():
      rng = np.random.default_rng(0)
      x = rng.standard_normal((b, *hwc)).astype(np.float32)
      w, bias = ref[name]["w"], ref[name]["b"]
      row = []
      for conv_fn in (F.conv,):
        fwd = jax.jit(lambda x, w, bb: F.relu(conv_fn(x, w, bb)))
        dw = jax.jit(jax.grad(lambda w, bb, x: fwd(x, w, bb).sum(), argnums=(0, 1)))
        dxw = jax.jit(jax.grad(lambda x, w, bb: fwd(x, w, bb).sum(), argnums=(0, 1, 2)))
        xj, wj, bj = jnp.asarray(x), jnp.asarray(w), jnp.asarray(bias)
        row.append(_median_time(lambda: fwd(xj, wj, bj).block_until_ready(), reps, warmup))
        row.append(_median_time(lambda: jax.block_until_ready(dw(wj, bj, xj)), reps, warmup))
        row.append(_median_time(lambda: jax.block_until_ready(dxw(xj, wj, bj)), reps, warmup))
      pfwd = lambda x, w, bb: F.relu(F.conv_via_patches(x, w, bb))
      pdxw = jax.jit(jax.grad(lambda x, w, bb: pfwd(x, w, bb).sum(), argnums=(0, 1, 2)))
      row.append(_median_time(lambda: jax.block_until_ready(pdxw(xj, wj, bj)), reps, warmup))
      xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
      wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).requires_grad_(True)
      bt = torch.from_numpy(bias).requires_grad_(True)
      xg = xt.clone().requires_grad_(True)
      f = torch.nn.functional
      with torch.no_grad():
        row.append(_median_time(lambda: f.relu(f.conv2d(xt, wt, bt)), reps, warmup))
      row.append(_median_time(lambda: f.relu(f.conv2d(xt, wt, bt)).sum().backward(), reps,
                              warmup))
      row.append(_median_time(lambda: f.relu(f.conv2d(xg, wt, bt)).sum().backward(), reps,
                              warmup))
      print(f"| {name} | {b} | " + " | ".join(f"{r * 1e3:.2f}" for r in row) + " |")

  print("\nMax pool 2x2 (the two pools of the net), median ms, fwd and fwd+bwd (dx):")
  print("| input | B | F.max_pool fwd | F.max_pool fwd+bwd | reshape-max fwd | reshape-max fwd+bwd |"
        " torch fwd | torch fwd+bwd |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for b in batch_sizes:
    for hwc in ((30, 30, 32), (13, 13, 64)):
      x = np.random.default_rng(0).standard_normal((b, *hwc)).astype(np.float32)
      xj = jnp.asarray(x)
      row = []
      for pool in (lambda v: F.max_pool(v, 2), max_pool_2x2_reshape):
        fwd = jax.jit(pool)
        bwd = jax.jit(jax.grad(lambda v, pool=pool: pool(v).sum()))
        row.append(_median_time(lambda: fwd(xj).block_until_ready(), reps, warmup))
        row.append(_median_time(lambda: bwd(xj).block_until_ready(), reps, warmup))
      xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
      xg = xt.clone().requires_grad_(True)
      f = torch.nn.functional
      with torch.no_grad():
        row.append(_median_time(lambda: f.max_pool2d(xt, 2), reps, warmup))
      row.append(_median_time(lambda: f.max_pool2d(xg, 2).sum().backward(), reps, warmup))
      print(f"| {hwc} | {b} | " + " | ".join(f"{r * 1e3:.2f}" for r in row) + " |")

  b = batch_sizes[0]
  x, y = make_batch(b, 0)
  loss_fn, params = jax_formulation("flax_linen", ref)
  hlo = jax.jit(jax.value_and_grad(loss_fn)).lower(params, x, y).compile().as_text()
  print(f"\nConvolutions in the compiled fwd+bwd HLO of flax_linen at B={b}:")
  for line in hlo.splitlines():
    if "convolution(" in line or "custom-call(" in line or "__onednn" in line:
      print("  " + line.strip()[:220])


# --------------------------------------------------------------------------------------------- main
def main(args: argparse.Namespace) -> None:
  global CLOCK
  CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)
  print("# bench_conv: tutorial CIFAR-10 CNN, CPU")
  print("command: python " + " ".join(sys.argv))
  print(machine_info())
  print(f"clock: {args.clock}" + (" (CPU-seconds of this process, not wall time)"
                                  if args.clock == "cpu" else ""))
  ref = reference_params(args.seed)
  n_params = sum(v.size for layer in ref.values() for v in layer.values())
  assert n_params == 122_570, n_params

  results = {}
  for b in args.batch_sizes:
    x, y = make_batch(b, args.seed)
    runners = [(JaxRunner if n.startswith(("jax", "flax")) else TorchRunner)(
        n, ref, x, y, args.learning_rate) for n in args.only]
    checks = {r.name: r.check() for r in runners}
    base_loss, base_norm = next(iter(checks.values()))
    print(f"\nB={b} agreement at the shared weights (loss, |grad|):")
    for n, (loss, norm) in checks.items():
      print(f"  {n:13s} loss {loss:.6f} (rel diff {abs(loss - base_loss) / base_loss:.1e})  "
            f"|grad| {norm:.6f} (rel diff {abs(norm - base_norm) / base_norm:.1e})")
      if abs(loss - base_loss) > 1e-4 * base_loss or abs(norm - base_norm) > 1e-3 * base_norm:
        raise SystemExit(f"{n} disagrees with {args.only[0]}: the formulations are not the same net")
    for m in args.modes:
      results[(b, m)] = time_round_robin(runners, m, args.reps, args.block, args.warmup)

  if args.modes:
    print(f"\n## Median over {args.reps} steps (round-robin blocks of {args.block}, "
          f"{args.warmup} warm-up steps); ratio = img/s / faster PyTorch img/s\n")
    print(table(results, args.batch_sizes, args.modes, args.only))
    print("\np10 / p90 ms (spread, for judging the load):")
    for (b, m), times in results.items():
      print(f"  {m} B={b}: " + ", ".join(
          f"{n} {np.percentile(t, 10) * 1e3:.1f}/{np.percentile(t, 90) * 1e3:.1f}"
          for n, t in times.items()))
  if args.investigate:
    investigate(ref, args.batch_sizes, max(args.reps, 20), args.warmup)
  la = os.getloadavg()
  print(f"\nload average at the end: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")


if __name__ == "__main__":
  main(ARGS)
