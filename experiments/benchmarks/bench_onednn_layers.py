"""Per conv layer: the oneDNN extension vs XLA's convolution vs PyTorch channels-last (oneDNN).

For every conv shape of the tutorial CNN (3x3 VALID, bias + relu) and of ResNet-20 (3x3 SAME
and 1x1 stride-2 projections, no bias, no activation: BatchNorm follows), at each batch size,
times three parts separately:

* ``fwd``: the layer's forward pass (tutorial: conv + bias + relu; ResNet-20: the conv);
* ``dx``: the input gradient alone (the transposed convolution);
* ``dw``: the kernel gradient (with the bias gradient for the tutorial CNN) alone.

Rows: ``onednn`` (``jaxcnn.cpu.onednn`` active: ``F.conv`` on the FFI targets), ``xla``
(``F.conv``'s XLA path, tuning off, jaxcnn's XLA flags) and ``torch_cl`` (PyTorch eager,
channels-last; ``dx`` and ``dw`` from ``aten.convolution_backward`` with one output each, so no
forward is included). All candidates of a layer are timed in turns (blocks of 5 calls) in this
one process; medians in ms.

    python experiments/benchmarks/bench_onednn_layers.py [--batch-sizes 32,128] [--clock cpu1|wall]

``cpu1`` (default): one thread per framework (XLA ``--xla_cpu_multi_thread_eigen=false``,
``torch.set_num_threads(1)``) and CPU-seconds of this process: the work per call, robust to
other processes' load. ``wall``: each framework's default threads, wall clock.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch-sizes", default="32,128")
  p.add_argument("--nets", default="tutorial,resnet20")
  p.add_argument("--clock", choices=("cpu1", "wall"), default="cpu1")
  p.add_argument("--reps", type=int, default=15, help="timed calls per candidate")
  args = p.parse_args(argv)
  args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
  args.nets = [n for n in args.nets.split(",") if n]
  return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.clock == "cpu1":
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_cpu_multi_thread_eigen=false").strip()
os.environ.setdefault("JAXCNN_TUNING", "off")

# pylint: disable=g-import-not-at-top,wrong-import-position
import jaxcnn  # noqa: E402,F401  (first: XLA flags before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxcnn import functional as F  # noqa: E402
from jaxcnn.cpu import onednn  # noqa: E402

# name -> (input [H, W, C], C_out, kernel, stride, padding, bias + relu)
LAYERS = {
    "tutorial": {
        "conv1": ((32, 32, 3), 32, 3, 1, "VALID", True),
        "conv2": ((15, 15, 32), 64, 3, 1, "VALID", True),
        "conv3": ((6, 6, 64), 64, 3, 1, "VALID", True),
    },
    "resnet20": {
        "stem 3->16": ((32, 32, 3), 16, 3, 1, "SAME", False),
        "s1 16->16": ((32, 32, 16), 16, 3, 1, "SAME", False),
        "s2 16->32 /2": ((32, 32, 16), 32, 3, 2, "SAME", False),
        "s2 proj 1x1 /2": ((32, 32, 16), 32, 1, 2, "SAME", False),
        "s2 32->32": ((16, 16, 32), 32, 3, 1, "SAME", False),
        "s3 32->64 /2": ((16, 16, 32), 64, 3, 2, "SAME", False),
        "s3 proj 1x1 /2": ((16, 16, 32), 64, 1, 2, "SAME", False),
        "s3 64->64": ((8, 8, 64), 64, 3, 1, "SAME", False),
    },
}


def timed(cands, clock, reps):
  """Median seconds per call of each candidate; candidates take turns in blocks of 5 calls."""
  out = {n: [] for n in cands}
  for fn in cands.values():  # compile / warm up
    jax.block_until_ready(fn())
  while min(len(r) for r in out.values()) < reps:
    for n, fn in cands.items():
      jax.block_until_ready(fn())
      for _ in range(5):
        t0 = clock()
        jax.block_until_ready(fn())
        out[n].append(clock() - t0)
  return {n: float(np.median(r)) for n, r in out.items()}


def jax_parts(x, w, b, stride, padding, act, use_onednn: bool):
  """Compiled fwd / dx / dw callables of ``F.conv`` with the extension on or off (the backend
  is read when a function is traced, so each is compiled here, under the wanted state)."""
  if use_onednn:
    onednn.activate()
  else:
    onednn.deactivate()
  bias = b if act else None
  activation = "relu" if act else None
  layer = lambda x, w, b: F.conv(x, w, b if act else None, stride=stride,  # noqa: E731
                                 padding=padding, activation=activation)
  # dx and dw of the convolution alone (the relu's mask multiply is an elementwise op either way)
  conv = lambda x, w, b: F.conv(x, w, b if act else None, stride=stride,  # noqa: E731
                                padding=padding)
  g = jnp.ones(jax.eval_shape(layer, x, w, b).shape, x.dtype)
  fwd = jax.jit(layer)
  dx = jax.jit(lambda x, w, b, g: jax.vjp(lambda x: conv(x, w, b), x)[1](g))
  dw = jax.jit(lambda x, w, b, g: jax.vjp(lambda w, b: conv(x, w, b), w, b)[1](g)
               if bias is not None else jax.vjp(lambda w: conv(x, w, b), w)[1](g))
  fns = {"fwd": lambda: fwd(x, w, b), "dx": lambda: dx(x, w, b, g), "dw": lambda: dw(x, w, b, g)}
  for fn in fns.values():  # trace and compile now, under this state
    jax.block_until_ready(fn())
  onednn.deactivate()
  return fns


def torch_parts(x, w, b, stride, padding, k, act):
  import torch  # pylint: disable=g-import-not-at-top
  f = torch.nn.functional
  xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # NHWC memory: channels_last
  wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).contiguous(
      memory_format=torch.channels_last)
  bt = torch.from_numpy(b) if act else None
  pad = (k // 2) if padding == "SAME" else 0
  if padding == "SAME" and stride == 2 and k == 3:
    pad = 1  # 32 -> 16: the same output size; TF's SAME pads (0, 1), PyTorch (1, 1)
  y = f.conv2d(xt, wt, bt, stride=stride, padding=pad)
  gt = torch.ones_like(y).contiguous(memory_format=torch.channels_last)
  bwd = torch.ops.aten.convolution_backward
  bias_sizes = [w.shape[-1]] if act else None

  def fwd():
    with torch.no_grad():
      y = f.conv2d(xt, wt, bt, stride=stride, padding=pad)
      return f.relu(y) if act else y

  def dx():
    return bwd(gt, xt, wt, bias_sizes, [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1,
               [True, False, False])

  def dw():
    return bwd(gt, xt, wt, bias_sizes, [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1,
               [False, True, bool(act)])

  return {"fwd": fwd, "dx": dx, "dw": dw}


def main(args: argparse.Namespace) -> None:
  import torch  # pylint: disable=g-import-not-at-top
  from experiments.bench_train import host_info, load  # pylint: disable=g-import-not-at-top
  if args.clock == "cpu1":
    torch.set_num_threads(1)
  clock = time.process_time if args.clock == "cpu1" else time.perf_counter
  ok, why = onednn.available()
  if not ok:
    raise SystemExit(f"the oneDNN extension is unavailable: {why}")
  line = onednn.activate()
  onednn.deactivate()
  print("# bench_onednn_layers: conv layers, median ms per call (turns within each layer)")
  print("command: python " + " ".join(sys.argv))
  print(host_info())
  print(line)
  print(f"jax {jax.__version__}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"clock: {'CPU-seconds, one thread per framework' if args.clock == 'cpu1' else 'wall'}; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; {load()}\n")
  print("| layer | B | onednn fwd | xla fwd | torch_cl fwd | onednn dx | xla dx | torch_cl dx |"
        " onednn dw | xla dw | torch_cl dw | onednn / torch_cl, all 3 |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for net in args.nets:
    for name, (hwc, c_out, k, stride, padding, act) in LAYERS[net].items():
      for b in args.batch_sizes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((b, *hwc)).astype(np.float32)
        w = (rng.standard_normal((k, k, hwc[-1], c_out)) * 0.1).astype(np.float32)
        bias = (rng.standard_normal(c_out) * 0.1).astype(np.float32)
        xj, wj, bj = map(jnp.asarray, (x, w, bias))
        cands = {}
        for row, fns in (("onednn", jax_parts(xj, wj, bj, stride, padding, act, True)),
                         ("xla", jax_parts(xj, wj, bj, stride, padding, act, False)),
                         ("torch_cl", torch_parts(x, w, bias, stride, padding, k, act))):
          cands.update({f"{row} {part}": fn for part, fn in fns.items()})
        t = timed(cands, clock, args.reps)
        ms = {n: v * 1e3 for n, v in t.items()}
        total = {r: sum(ms[f"{r} {p}"] for p in ("fwd", "dx", "dw")) for r in ("onednn",
                                                                               "torch_cl")}
        cells = " | ".join(f"{ms[f'{r} {p}']:.2f}" for p in ("fwd", "dx", "dw")
                           for r in ("onednn", "xla", "torch_cl"))
        print(f"| {net} {name} | {b} | {cells} | {total['onednn'] / total['torch_cl']:.2f} |",
              flush=True)
  print(f"\n{load()}")


if __name__ == "__main__":
  main(ARGS)
