"""Winograd F(2x2, 3x3) written in JAX vs XLA CPU's own convolution, per part.

Winograd's minimal filtering (Lavin & Gray, 2015) computes each 2x2 output tile of a 3x3
convolution from a 4x4 input tile with 16 multiplications per channel pair instead of 36:
``Y = A^T [(G g G^T) * (B^T d B)] A``, the channel sum of the 16 elementwise products being one
batched matrix product. It is exact in real arithmetic and in float32 differs from the direct
sum by rounding only (the transforms' coefficients are 0, +-1 and +-1/2). The question this
script answers: written as a JAX graph (strided slices for the tiles, adds for the transforms,
one batched ``dot_general``), is it a faster formulation than ``lax.conv_general_dilated`` for
the 3x3 convolutions of the tutorial CNN and ResNet-20 on this CPU, for the forward pass, the
input gradient and the kernel gradient (JAX's transposes of the same graph)?

It prints, per shape, the relative error of each part against XLA's convolution (checked to be
below 2e-6) and the minimum over alternated calls of each part, in ms (wall clock, the
framework's default threads, jaxcnn's XLA flags)::

    python experiments/benchmarks/bench_winograd.py [--reps 15]

Measured result and what it means: BENCHMARKS.md section 1.3.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jaxcnn.cpu  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from jaxcnn.cpu import flags as cpu_flags  # noqa: E402

# Lavin & Gray's F(2x2, 3x3) matrices (cross-correlation, as CNN layers compute).
B_T = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
A_T = ((1, 1, 1, 0), (0, 1, -1, -1))

# (batch, height, width, C_in, C_out, padding): the 3x3 convolutions of the tutorial CNN (VALID)
# and of ResNet-20 (SAME) at the benchmark's batch sizes, and a speednet layer.
SHAPES = [
    ("tutorial conv2", (32, 15, 15, 32, 64, 0)),
    ("tutorial conv3", (32, 6, 6, 64, 64, 0)),
    ("resnet20 stage 1", (32, 32, 32, 16, 16, 1)),
    ("resnet20 stage 2", (32, 16, 16, 32, 32, 1)),
    ("resnet20 stage 3", (32, 8, 8, 64, 64, 1)),
    ("resnet20 stage 1", (128, 32, 32, 16, 16, 1)),
    ("tutorial conv2", (128, 15, 15, 32, 64, 0)),
    ("speednet x1 group 2", (250, 16, 16, 64, 64, 1)),
]


def _combine(rows, matrix):
  """``matrix @ rows`` for a list of arrays and a small constant matrix, as adds only."""
  out = []
  for coeffs in matrix:
    acc = None
    for c, r in zip(coeffs, rows):
      if c == 0:
        continue
      term = r if c == 1 else (-r if c == -1 else c * r)
      acc = term if acc is None else acc + term
    out.append(acc)
  return out


def winograd_conv3x3(x, w, pad: int):
  """``x: [N, H, W, C]`` correlated with ``w: [3, 3, C, O]``, stride 1, ``pad`` zeros a side."""
  n, h, wd, c = x.shape
  o = w.shape[-1]
  ho, wo = h + 2 * pad - 2, wd + 2 * pad - 2
  th, tw = -(-ho // 2), -(-wo // 2)  # tiles of 2x2 outputs (the last ones padded)
  xp = jnp.pad(x, ((0, 0), (pad, pad + 2 * th - ho), (pad, pad + 2 * tw - wo), (0, 0)))
  # B^T d B, separably: the 4 rows of every tile are 4 strided slices, then the 4 columns.
  rows = _combine([lax.slice_in_dim(xp, a, a + 2 * th - 1, 2, axis=1) for a in range(4)], B_T)
  v = []
  for r in rows:
    v += _combine([lax.slice_in_dim(r, b, b + 2 * tw - 1, 2, axis=2) for b in range(4)], B_T)
  v = jnp.stack(v).reshape(16, n * th * tw, c)
  u = jnp.einsum("ai,ijco,bj->abco", jnp.asarray(G, w.dtype), w, jnp.asarray(G, w.dtype))
  m = lax.dot_general(v, u.reshape(16, c, o), (((2,), (1,)), ((0,), (0,))))  # [16, tiles, O]
  m = m.reshape(4, 4, n, th, tw, o)
  y = jnp.stack([jnp.stack(_combine([r[j] for j in range(4)], A_T))
                 for r in _combine([m[i] for i in range(4)], A_T)])  # [2, 2, N, th, tw, O]
  y = y.transpose(2, 3, 0, 4, 1, 5).reshape(n, 2 * th, 2 * tw, o)
  return y[:, :ho, :wo, :]


def xla_conv(x, w, pad: int):
  return lax.conv_general_dilated(x, w, (1, 1), ((pad, pad), (pad, pad)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _parts(f, pad):
  fwd = jax.jit(lambda x, w, g: f(x, w, pad))
  dx = jax.jit(lambda x, w, g: jax.vjp(lambda x: f(x, w, pad), x)[1](g)[0])
  dw = jax.jit(lambda x, w, g: jax.vjp(lambda w: f(x, w, pad), w)[1](g)[0])
  return {"fwd": fwd, "dx": dx, "dw": dw}


def _rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--reps", type=int, default=15, help="alternated calls per candidate")
  args = parser.parse_args(argv)
  jaxcnn.cpu.enable(tuning=False, compilation_cache=False)  # jaxcnn's XLA flags, before JAX starts
  rng = np.random.default_rng(0)
  print(f"host: {cpu_flags.cpu_model()}, {os.cpu_count()} CPUs, jax {jax.__version__}; min over {args.reps} alternated calls, ms")
  print("| layer | x shape -> C_out, pad | max rel. error fwd / dx / dw | XLA fwd | Winograd fwd "
        "| XLA dx | Winograd dx | XLA dw | Winograd dw | Winograd / XLA, sum of 3 parts |")
  print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for name, (n, h, wd, c, o, pad) in SHAPES:
    x = jnp.asarray(rng.standard_normal((n, h, wd, c)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, c, o)) / np.sqrt(9 * c), jnp.float32)
    g = jnp.asarray(rng.standard_normal(xla_conv(x, w, pad).shape), jnp.float32)
    ref, win = _parts(xla_conv, pad), _parts(winograd_conv3x3, pad)
    errs = [_rel_err(win[p](x, w, g), ref[p](x, w, g)) for p in ("fwd", "dx", "dw")]
    assert max(errs) < 2e-6, (name, errs)
    times = {}
    for p in ("fwd", "dx", "dw"):
      t = {"xla": [], "win": []}
      for _ in range(args.reps):  # alternated: XLA, Winograd, XLA, ...
        for key, fn in (("xla", ref[p]), ("win", win[p])):
          t0 = time.perf_counter()
          jax.block_until_ready(fn(x, w, g))
          t[key].append(time.perf_counter() - t0)
      times[p] = {k: min(v) * 1e3 for k, v in t.items()}
    ratio = sum(times[p]["win"] for p in times) / sum(times[p]["xla"] for p in times)
    cells = " | ".join(f"{times[p]['xla']:.2f} | {times[p]['win']:.2f}" for p in times)
    print(f"| {name} | {(n, h, wd, c)} -> {o}, {pad} | "
          f"{' / '.join(f'{e:.1e}' for e in errs)} | {cells} | {ratio:.2f}x |", flush=True)


if __name__ == "__main__":
  main()
