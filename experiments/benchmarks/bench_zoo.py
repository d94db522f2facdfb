"""The zoo against the same nets in PyTorch: parameter counts, MACs, CPU training images/s.

For each model: trainable parameters in jaxcnn (the ``params`` collection) and in the PyTorch
twin of experiments/peers/torch_zoo.py (``sum(p.numel() for p in model.parameters())``, frozen
tensors included, as jaxcnn keeps SpeedNet's frozen whitening kernel in ``params``; SpeedNet's
frozen BN scales are buffers-by-intent in airbench and are subtracted), whether they agree, the
MACs per 32x32x3 image (``jaxcnn.inspect.summary``), and training images/s at batch 128 on this
CPU: the median of ``--steps`` timed steps after one warm-up step, jaxcnn's jitted
``train_step`` (Adam, float32, ``jaxcnn.cpu.enable()`` as the training CLI does) beside PyTorch eager (Adam, float32, channels_last), same
machine, same invocation. Without torch installed the PyTorch columns say ``n/a``.

Command::

    python -m experiments.benchmarks.bench_zoo                       # every model, 3 timed steps
    python -m experiments.benchmarks.bench_zoo --models resnet20 vgg16 --steps 5
    python -m experiments.benchmarks.bench_zoo --no-speed            # counts and MACs only (seconds)

Measured: see the note of the branch that added it (the counts; the speed columns need a quiet
machine).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np
import optax

import jaxcnn.cpu
from jaxcnn import inspect, models, shapes
from jaxcnn.cpu import tuning
from jaxcnn.train import create_train_state, train_step

JAX_NAME = {"wide_resnet_16_4": ("wide_resnet", {"depth": 16, "widen_factor": 4})}


def jax_model(name):
  base, kwargs = JAX_NAME.get(name, (name, {}))
  return models.get_model(base, **kwargs)


def jax_images_per_s(model, batch_size, steps):
  rng = np.random.default_rng(0)
  batch = {"image": rng.standard_normal((batch_size, 32, 32, 3)).astype(np.float32),
           "label": rng.integers(0, 10, batch_size).astype(np.int32)}
  batch = jax.device_put(batch)
  state = create_train_state(model, jax.random.PRNGKey(0), (1, 32, 32, 3), optax.adam(1e-3))
  step = jax.jit(tuning.measured(train_step), donate_argnums=0)  # as jaxcnn.train compiles it
  state, m = step(state, batch)
  jax.block_until_ready(m)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = step(state, batch)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  return batch_size / statistics.median(times)


def torch_images_per_s(torch, model, batch_size, steps):
  x = torch.randn(batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
  y = torch.randint(0, 10, (batch_size,))
  model = model.to(memory_format=torch.channels_last).train()
  opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-3)

  def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()

  step()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
  return batch_size / statistics.median(times)


def torch_count(torch_zoo, name, model):
  n = torch_zoo.count_params(model)
  if name == "speednet":  # airbench's BN scales: frozen at 1, not parameters in jaxcnn
    n -= sum(m.weight.numel() for m in model.modules()
             if isinstance(m, torch_zoo.nn.BatchNorm2d))
  return n


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="*", default=None)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--no-speed", action="store_true")
  args = parser.parse_args(argv)
  try:
    import torch  # pylint: disable=g-import-not-at-top
    from experiments.peers import torch_zoo  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(max(1, torch.get_num_threads()))
  except ImportError:
    torch = torch_zoo = None
  if not args.no_speed:
    jaxcnn.cpu.enable()  # what the training CLI turns on, before JAX starts
  names = args.models or [
      "lenet5", "alexnet_cifar", "vgg11", "vgg16", "resnet20", "resnet56", "resnet18",
      "preact_resnet18", "wide_resnet_16_4", "resnet9", "bn_cnn", "speednet"]
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}; torch "
        f"{torch.__version__ if torch else 'not installed'}; batch {args.batch_size}")
  head = (f"{'model':18s} {'jaxcnn params':>14s} {'torch params':>13s} {'equal':>5s} "
          f"{'MACs/image':>14s} {'jax img/s':>10s} {'torch img/s':>11s} {'ratio':>6s}")
  print(head)
  print("-" * len(head))
  for name in names:
    model = jax_model(name)
    s = inspect.summary(model, (1, 32, 32, 3), print_fn=None)
    tmodel = torch_zoo.get(name) if torch_zoo else None
    tcount = torch_count(torch_zoo, name, tmodel) if tmodel is not None else None
    jips = tips = None
    if not args.no_speed:
      jips = jax_images_per_s(model, args.batch_size, args.steps)
      if tmodel is not None:
        tips = torch_images_per_s(torch, tmodel, args.batch_size, args.steps)
    fmt = lambda v, f: "n/a" if v is None else format(v, f)
    equal = "n/a" if tcount is None else ("yes" if tcount == s.trainable_params else "NO")
    ratio = fmt(jips / tips if jips and tips else None, ".2f")
    print(f"{name:18s} {s.trainable_params:>14,} {fmt(tcount, ','):>13s} {equal:>5s} "
          f"{s.total_macs:>14,} {fmt(jips, '.1f'):>10s} {fmt(tips, '.1f'):>11s} {ratio:>6s}",
          flush=True)


if __name__ == "__main__":
  main()
