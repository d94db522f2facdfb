"""Where a train step of the tutorial CNN spends its time, per layer: jaxcnn vs PyTorch.

For each conv layer of the tutorial CNN (shapes of a CIFAR batch): forward (conv + bias + relu),
input gradient and kernel gradient alone, for XLA's convolution, the im2col + GEMM formulation
and PyTorch channels-last (oneDNN); then the two max pools (forward + backward), the dense
layers, the Adam update of all 122,570 parameters, and the dispatch cost of a jitted call.
All candidates of one line are timed in turns (ABAB...) in this one process; medians in ms.

    python experiments/benchmarks/bench_layers.py [32,128] [wall|cpu1] [flags|noflags]

``flags`` (default): jaxcnn's XLA flags (``jaxcnn.cpu.enable``); ``noflags``: XLA's defaults
(YNNPACK on).

``cpu1``: one thread per framework and CPU-seconds of the process instead of wall time (the work
per call, robust to other processes' load on a shared machine; not what a user waits).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODE = sys.argv[2] if len(sys.argv) > 2 else "wall"
if MODE == "cpu1":
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_cpu_multi_thread_eigen=false").strip()

# pylint: disable=g-import-not-at-top,wrong-import-position
import jaxcnn.cpu  # noqa: E402

if __name__ == "__main__":  # before JAX starts
  jaxcnn.cpu.enable(flags=(sys.argv[3] if len(sys.argv) > 3 else "flags") == "flags",
                    tuning=False, compilation_cache=False)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402

from jaxcnn import functional as F  # noqa: E402

CLOCK = time.process_time if MODE == "cpu1" else time.perf_counter
if MODE == "cpu1":
  torch.set_num_threads(1)


def timed(cands, budget_s, max_reps):
  """Median per call; PyTorch and XLA candidates in blocks of 5 (OpenMP threads spin after a
  parallel region, so calling the two frameworks strictly in turn would slow both)."""
  out = {}
  names = list(cands)
  reps = {n: [] for n in names}
  for n in names:  # compile / warm up
    jax.block_until_ready(cands[n]())
  while min(len(r) for r in reps.values()) < max_reps:
    for n in names:
      jax.block_until_ready(cands[n]())
      for _ in range(5):
        t0 = CLOCK()
        jax.block_until_ready(cands[n]())
        reps[n].append(CLOCK() - t0)
  for n in names:
    out[n] = float(np.median(reps[n]))
  return out

CONVS = {"conv1": ((32, 32, 3), 32), "conv2": ((15, 15, 32), 64), "conv3": ((6, 6, 64), 64)}
POOLS = {"pool1": (30, 30, 32), "pool2": (13, 13, 64)}


def ms(t: dict[str, float]) -> dict[str, str]:
  return {k: f"{v * 1e3:.2f}" for k, v in t.items()}


def conv_rows(b: int) -> list[str]:
  rows = []
  f = torch.nn.functional
  for name, (hwc, c_out) in CONVS.items():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, *hwc)).astype(np.float32)
    w = (rng.standard_normal((3, 3, hwc[-1], c_out)) * 0.1).astype(np.float32)
    bias = np.zeros(c_out, np.float32)
    xj, wj, bj = map(jnp.asarray, (x, w, bias))
    cands = {}
    for form, conv in (("xla", lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))),
                       ("patches", lambda x, w: F.conv_via_patches(x, w))):
      layer = lambda x, w, b, conv=conv: F.relu(conv(x, w) + b.reshape(1, 1, 1, -1))
      fwd = jax.jit(layer)
      g = jnp.ones(jax.eval_shape(layer, xj, wj, bj).shape)
      dx = jax.jit(lambda x, w, b, g, layer=layer: jax.vjp(lambda x: layer(x, w, b), x)[1](g))
      dw = jax.jit(lambda x, w, b, g, layer=layer: jax.vjp(lambda w, b: layer(x, w, b), w, b)[1](g))
      cands[f"{form} fwd"] = lambda fwd=fwd: fwd(xj, wj, bj)
      cands[f"{form} dx"] = lambda dx=dx, g=g: dx(xj, wj, bj, g)
      cands[f"{form} dw"] = lambda dw=dw, g=g: dw(xj, wj, bj, g)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # channels_last
    wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).contiguous(
        memory_format=torch.channels_last)
    bt = torch.from_numpy(bias)
    y = f.relu(f.conv2d(xt, wt, bt))
    gt = torch.ones_like(y)

    def t_fwd():
      with torch.no_grad():
        return f.relu(f.conv2d(xt, wt, bt))

    def t_dx():
      xg = xt.detach().requires_grad_(True)
      return torch.autograd.grad(f.relu(f.conv2d(xg, wt, bt)), xg, gt)

    def t_dw():
      wg, bg = wt.detach().requires_grad_(True), bt.detach().requires_grad_(True)
      return torch.autograd.grad(f.relu(f.conv2d(xt, wg, bg)), (wg, bg), gt)

    # torch's dx/dw timings include its forward (autograd needs it); subtract its fwd to compare.
    cands.update({"torch_cl fwd": t_fwd, "torch_cl fwd+dx": t_dx, "torch_cl fwd+dw": t_dw})
    t = ms(timed(cands, budget_s=3.0, max_reps=15))
    rows.append(f"| {name} | {b} | {t['xla fwd']} | {t['xla dx']} | {t['xla dw']} | "
                f"{t['patches fwd']} | {t['patches dx']} | {t['patches dw']} | "
                f"{t['torch_cl fwd']} | {t['torch_cl fwd+dx']} | {t['torch_cl fwd+dw']} |")
  return rows


def other_rows(b: int) -> list[str]:
  rows = []
  f = torch.nn.functional
  for name, hwc in POOLS.items():
    x = np.random.default_rng(0).standard_normal((b, *hwc)).astype(np.float32)
    xj = jnp.asarray(x)
    pool_bwd = jax.jit(jax.grad(lambda v: F.max_pool(v, 2).sum()))
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)

    def t_pool():
      xg = xt.detach().requires_grad_(True)
      f.max_pool2d(xg, 2).sum().backward()

    t = ms(timed({"jax": lambda: pool_bwd(xj), "torch": t_pool}, budget_s=2,
                                   max_reps=30))
    rows.append(f"| {name} fwd+bwd | {b} | {t['jax']} | {t['torch']} |")
  # dense1 + dense2 forward and backward
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.standard_normal((b, 1024)), jnp.float32)
  w1, w2 = (jnp.asarray(rng.standard_normal(s) * 0.05, jnp.float32) for s in ((1024, 64), (64, 10)))
  dense = jax.jit(jax.grad(lambda h, w1, w2: (F.relu(h @ w1) @ w2).sum(), argnums=(0, 1, 2)))
  ht = torch.from_numpy(np.array(h))
  w1t, w2t = (torch.from_numpy(np.array(a)).T.contiguous() for a in (w1, w2))

  def t_dense():
    hg = ht.detach().requires_grad_(True)
    a, c = w1t.detach().requires_grad_(True), w2t.detach().requires_grad_(True)
    f.linear(f.relu(f.linear(hg, a)), c).sum().backward()

  t = ms(timed({"jax": lambda: dense(h, w1, w2), "torch": t_dense}, budget_s=2,
                                 max_reps=30))
  rows.append(f"| dense1+dense2 fwd+bwd | {b} | {t['jax']} | {t['torch']} |")
  return rows


def optimizer_and_dispatch() -> list[str]:
  shapes = [(3, 3, 3, 32), (32,), (3, 3, 32, 64), (64,), (3, 3, 64, 64), (64,), (1024, 64), (64,),
            (64, 10), (10,)]
  params = [jnp.zeros(s) + 0.01 for s in shapes]
  grads = [jnp.ones(s) * 0.001 for s in shapes]
  tx = optax.adam(1e-3, eps=1e-7)
  state = [tx.init(params)]
  upd = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(g, s, p)),
                donate_argnums=(0, 1))
  box = [params, state[0]]

  def t_adam():
    box[0], box[1] = upd(box[0], box[1], grads)
    jax.block_until_ready(box[0])

  tp = [torch.nn.Parameter(torch.full(s, 0.01)) for s in shapes]
  for p in tp:
    p.grad = torch.full(p.shape, 0.001)
  opt = torch.optim.Adam(tp, lr=1e-3, eps=1e-7)
  t = ms(timed({"jax": t_adam, "torch": opt.step}, budget_s=2, max_reps=50))
  tiny = jax.jit(lambda a: a + 1.0)
  a = jnp.zeros(())
  d = ms(timed({"d": lambda: tiny(a)}, budget_s=0.5, max_reps=200))
  return [f"| Adam update, 122,570 params | any | {t['jax']} | {t['torch']} |",
          f"| dispatch + sync of a trivial jitted call | any | {d['d']} | - |"]


def main() -> None:
  from experiments.benchmarks.bench_train import host_info, load  # pylint: disable=import-outside-toplevel
  print("# bench_layers: tutorial CNN per layer, median ms (turns within each row)")
  print("command: python " + " ".join(sys.argv))
  print(host_info())
  print(f"jax {jax.__version__}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; {load()}\n")
  print("| layer | B | XLA fwd | XLA dx | XLA dw | patches fwd | patches dx | patches dw |"
        " torch_cl fwd | torch_cl fwd+dx | torch_cl fwd+dw |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  batch_sizes = [int(b) for b in (sys.argv[1] if len(sys.argv) > 1 else "32,128").split(",")]
  print(f"clock: {'CPU-seconds, 1 thread per framework' if MODE == 'cpu1' else 'wall'}\n")
  for b in batch_sizes:
    for row in conv_rows(b):
      print(row, flush=True)
  print(f"\n{load()}\n\n| op | B | jaxcnn | PyTorch |\n| --- | ---: | ---: | ---: |")
  for b in batch_sizes:
    for row in other_rows(b):
      print(row, flush=True)
  for row in optimizer_and_dispatch():
    print(row)
  print(f"\n{load()}")


if __name__ == "__main__":
  main()
