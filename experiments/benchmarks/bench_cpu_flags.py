"""Which XLA CPU flags make training faster under this jaxlib: the rows of jaxcnn's flag table.

For the jaxlib it runs under, this times candidate ``XLA_FLAGS`` sets on the train step (forward,
backward, Adam update; ``jaxcnn.train.train_step`` compiled as the training loop compiles it) of
the tutorial CNN at batch 32 and 128 and ResNet-20 at batch 32, and prints one table per case
(median ms per step, p10-p90, ratio to no flags) and the row to paste into
``jaxcnn.cpu.flags.FLAG_TABLE`` for this jaxlib and CPU vendor.

    python -m experiments.benchmarks.bench_cpu_flags                  # ~10-20 min on 2 cores
    python -m experiments.benchmarks.bench_cpu_flags --reps 6 --block 3 --cases tutorial:32

Method:

* A candidate is used only when this jaxlib knows its flags: XLA aborts on an unknown flag, so
  each set is first tried in a throwaway process (``jax.numpy.zeros(2)``), and the ones that fail
  are listed as skipped.
* Every flag set runs in its own process (XLA reads ``XLA_FLAGS`` once, at start-up), with
  jaxcnn's conv tuning on as ``jaxcnn.cpu.enable()`` sets it (measured afresh for each flag set,
  ``--notuning`` to leave it off) and no compilation cache. All processes of a case are built and
  warmed up first; then they take turns (A B A B ...) in blocks of ``--block`` steps, one
  untimed step before each block, until each has ``--reps`` timed steps, so that load from
  other processes hits every set alike. Medians; ``vs none`` = median of no flags / median of
  the set (above 1: faster).
* Recommended: the set with the highest geometric-mean ratio over the cases, when that mean is
  at least ``--min-gain`` (default 1.03) and the set is nowhere slower than ``--max-loss``
  (default 0.98) of no flags; otherwise no flags.

The machine should be otherwise idle: the load average is printed before and after each case.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

# Candidate flag sets, by name (checked against the running jaxlib before use). Why each could
# matter for CNN training on a CPU:
CANDIDATES: dict[str, tuple[str, ...]] = {
    "none": (),
    # YNNPACK fusions (jaxlib >= 0.10) take convolutions whose kernel gradient they compute
    # slowly (a window as large as the feature map).
    "ynn_off": ("--xla_cpu_experimental_ynn_fusion_type=",),
    # oneDNN convolutions and matrix products as custom calls (x86).
    "onednn": ("--xla_cpu_experimental_onednn_custom_call=true",),
    # One thread per Eigen op: less synchronisation for the many small ops of a small batch.
    "eigen_1thread": ("--xla_cpu_multi_thread_eigen=false",),
    # 512-bit vectors for XLA's own loops (elementwise fusions, pooling) on AVX-512 CPUs.
    "vector512": ("--xla_cpu_prefer_vector_width=512",),
    # XLA's older loop emitters instead of the fusion emitters (jaxlib <= 0.10).
    "no_fusion_emitters": ("--xla_cpu_use_fusion_emitters=false",),
    "ynn_off+onednn": ("--xla_cpu_experimental_ynn_fusion_type=",
                       "--xla_cpu_experimental_onednn_custom_call=true"),
}
CASES = ("tutorial:32", "tutorial:128", "resnet20:32")
MODELS = {"tutorial": "tutorial_cnn", "resnet20": "resnet20"}


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--sets", default=",".join(CANDIDATES),
                 help="flag sets to time, by name (see CANDIDATES); 'none' is always included")
  p.add_argument("--cases", default=",".join(CASES), help="model:batch pairs")
  p.add_argument("--reps", type=int, default=30, help="timed steps per flag set and case")
  p.add_argument("--block", type=int, default=5, help="steps per turn")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
  p.add_argument("--tuning", action=argparse.BooleanOptionalAction, default=True,
                 help="jaxcnn's conv tuning on in every process (as jaxcnn.cpu.enable sets it)")
  p.add_argument("--min-gain", type=float, default=1.03)
  p.add_argument("--max-loss", type=float, default=0.98)
  p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  args.sets = ["none"] + [s for s in args.sets.split(",") if s and s != "none"]
  for s in args.sets:
    if s not in CANDIDATES:
      p.error(f"unknown flag set {s!r}; known: {', '.join(CANDIDATES)}")
  cases = []
  for c in (c for c in args.cases.split(",") if c):
    net, _, b = c.partition(":")
    if net not in MODELS or not b.isdigit() or int(b) < 1:
      p.error(f"case {c!r} must be model:batch with model in {', '.join(MODELS)}")
    cases.append((net, int(b)))
  args.cases = cases
  if min(args.reps, args.block) < 1 or args.warmup < 0:
    p.error("--reps and --block must be >= 1, --warmup >= 0")
  return args


# ----------------------------------------------------------------------------------- worker
def worker(net: str, batch_size: int, warmup: int, tuning: bool, cache_dir: str) -> None:
  """One flag set in its own process (XLA_FLAGS set by the parent): builds the train step, then
  answers each line ``n`` on stdin with the seconds of ``n`` timed steps (a JSON list)."""
  import jaxcnn.cpu  # pylint: disable=g-import-not-at-top
  jaxcnn.cpu.enable(flags=False, tuning=tuning, compilation_cache=False, onednn=False,
                    cache_dir=cache_dir, tuning_budget_s=600.0, verbose=False)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from jaxcnn import models  # pylint: disable=g-import-not-at-top
  from jaxcnn.train import (  # pylint: disable=g-import-not-at-top
      create_train_state, parallel, train_step)

  model = models.get_model(MODELS[net])
  state = create_train_state(model, jax.random.PRNGKey(0), (1, 32, 32, 3), optax.adam(1e-3))
  par = parallel.Parallel("none")
  step = par.compile_train(train_step)  # as the training loop compiles it (tuning included)
  rng = np.random.default_rng(batch_size)
  batch = par.put_batch({"image": rng.standard_normal((batch_size, 32, 32, 3), np.float32),
                         "label": rng.integers(0, 10, batch_size).astype(np.int32)})
  state = par.put_state(state)
  t0 = time.perf_counter()
  state, m = step(state, batch)
  jax.block_until_ready(m)
  first = time.perf_counter() - t0
  for _ in range(warmup):
    state, m = step(state, batch)
  jax.block_until_ready(m)
  print(json.dumps({"first_step_s": first}), flush=True)
  for line in sys.stdin:
    n = int(line)
    state, m = step(state, batch)  # untimed: another process's threads may still be spinning
    jax.block_until_ready(m)
    times = []
    for _ in range(n):
      t0 = time.perf_counter()
      state, m = step(state, batch)
      jax.block_until_ready(m)
      times.append(time.perf_counter() - t0)
    print(json.dumps(times), flush=True)


# ----------------------------------------------------------------------------------- parent
def _env(flags: tuple[str, ...]) -> dict[str, str]:
  env = dict(os.environ)
  env["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return env


def known_to_xla(flags: tuple[str, ...]) -> tuple[bool, str]:
  """Whether this jaxlib starts with ``flags`` (XLA aborts on a flag it does not know)."""
  if not flags:
    return True, ""
  out = subprocess.run([sys.executable, "-c", "import jax; jax.numpy.zeros(2).block_until_ready()"],
                       env=_env(flags), capture_output=True, text=True, timeout=300)
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  return out.returncode == 0, (lines[-1][-160:] if lines else f"exit status {out.returncode}")


def load() -> str:
  la = os.getloadavg()
  return f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} ({os.cpu_count()} CPUs)"


def _start(name: str, net: str, b: int, args, cache_dir: str) -> subprocess.Popen:
  cmd = [sys.executable, "-m", "experiments.benchmarks.bench_cpu_flags",
         "--worker", f"{net}:{b}", "--warmup", str(args.warmup),
         "--tuning" if args.tuning else "--notuning", "--sets", name]
  env = _env(CANDIDATES[name])
  env["BENCH_CPU_FLAGS_CACHE"] = cache_dir
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True)


def _read(proc: subprocess.Popen, name: str):
  line = proc.stdout.readline()
  if not line:
    raise SystemExit(f"flag set {name!r}: its process ended (exit status {proc.wait()})")
  return json.loads(line)


def time_case(net: str, b: int, sets: list[str], args, cache_dir: str):
  """Medians (s), p10/p90 and first-step seconds of each flag set on one case, alternated."""
  procs, first = {}, {}
  for name in sets:  # built one at a time, so that compilations and measurements do not overlap
    procs[name] = _start(name, net, b, args, cache_dir)
    first[name] = _read(procs[name], name)["first_step_s"]
  times = {name: [] for name in sets}
  while min(len(t) for t in times.values()) < args.reps:
    for name, proc in procs.items():
      proc.stdin.write(f"{min(args.block, args.reps - len(times[name]))}\n")
      proc.stdin.flush()
      times[name] += _read(proc, name)
  for proc in procs.values():
    proc.stdin.close()
    proc.wait()
  return times, first


def _pct(values, q):
  v = sorted(values)
  return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def recommend(ratios: dict[str, list[float]], min_gain: float, max_loss: float):
  """The flag set to recommend from each set's ratios to no flags (one per case)."""
  best, best_gain = "none", 1.0
  for name, r in ratios.items():
    gain = math.exp(sum(math.log(x) for x in r) / len(r))
    if name != "none" and gain >= min_gain and min(r) >= max_loss and gain > best_gain:
      best, best_gain = name, gain
  return best, best_gain


def main(args: argparse.Namespace) -> None:
  import importlib.metadata  # pylint: disable=g-import-not-at-top
  from jaxcnn.cpu import flags as cpu_flags  # pylint: disable=g-import-not-at-top  (jax-free)
  jaxlib = importlib.metadata.version("jaxlib")
  vendor = cpu_flags.cpu_vendor()
  print("# bench_cpu_flags: XLA CPU flag sets on train steps, one process per set, alternated")
  print("command: python -m experiments.benchmarks.bench_cpu_flags " + " ".join(sys.argv[1:]))
  print(f"host: {cpu_flags.cpu_model()} ({vendor or 'vendor unknown'}), {os.cpu_count()} CPUs; "
        f"Python {sys.version.split()[0]}, jaxlib {jaxlib}; conv tuning "
        f"{'on' if args.tuning else 'off'}; user XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"table row now: {cpu_flags.recommended(jaxlib, vendor)}")
  sets = []
  for name in args.sets:
    ok, why = known_to_xla(CANDIDATES[name])
    if ok:
      sets.append(name)
    else:
      print(f"skipped {name} ({' '.join(CANDIDATES[name])}): not accepted by jaxlib {jaxlib}: "
            f"{why}")
  ratios: dict[str, list[float]] = {name: [] for name in sets}
  with tempfile.TemporaryDirectory(prefix="bench_cpu_flags-") as cache_dir:
    for net, b in args.cases:
      print(f"\n## {net}, batch {b}; before: {load()}", flush=True)
      times, first = time_case(net, b, sets, args, cache_dir)
      med = {n: statistics.median(t) for n, t in times.items()}
      print(f"median of {args.reps} steps in turns of {args.block}; after: {load()}\n")
      print("| flag set | flags | ms/step | p10-p90 ms | vs none | first step s |")
      print("| --- | --- | ---: | ---: | ---: | ---: |")
      for name in sets:
        ratios[name].append(med["none"] / med[name])
        t = [x * 1e3 for x in times[name]]
        print(f"| {name} | {' '.join(CANDIDATES[name]) or '-'} | {med[name] * 1e3:.1f} | "
              f"{_pct(t, 0.1):.1f}-{_pct(t, 0.9):.1f} | {ratios[name][-1]:.2f}x | "
              f"{first[name]:.1f} |", flush=True)
  best, gain = recommend(ratios, args.min_gain, args.max_loss)
  print("\ngeometric mean over the cases, vs none: "
        + ", ".join(f"{n} {math.exp(sum(map(math.log, r)) / len(r)):.2f}x"
                    for n, r in ratios.items()))
  per_case = ", ".join(f"{net}/{b} {r:.2f}x" for (net, b), r in zip(args.cases, ratios[best]))
  flags_src = repr(tuple(CANDIDATES[best]))
  print(f"\nrecommended for FLAG_TABLE ({best}, geometric mean {gain:.2f}x over none):")
  print(f"    ({jaxlib!r}, {vendor!r}, {flags_src}),  # measured: "
        f"{datetime.date.today().isoformat()}, {cpu_flags.cpu_model()}, {os.cpu_count()} CPUs, "
        f"bench_cpu_flags ({per_case})")


if __name__ == "__main__":
  ARGS = parse_args()
  if ARGS.worker:
    net, _, b = ARGS.worker.partition(":")
    worker(net, int(b), ARGS.warmup, ARGS.tuning, os.environ["BENCH_CPU_FLAGS_CACHE"])
  else:
    main(ARGS)
