"""The course recipe on 1, 2 and 4 local processes: what crossing process boundaries costs.

Each row trains the Keras tutorial CNN (cifar10_tutorial: Adam 1e-3, global batch 32, no
augmentation, ``parallel='mesh'``) for ``--steps`` steps through the real CLI: ``PxD`` is P
processes of D CPU devices each (P > 1 through ``python -m experiments.launch -n P
--devices-per-process D``, gradients all-reduced over gloo between the processes; P = 1 is the
plain CLI). The same global batch is split over P x D devices, so on a machine with fewer cores
than processes nothing gets faster: the table shows the overhead of the collectives and of the
extra processes. Rows take turns (round 1: A, B, C; round 2: A, B, C) so a drift of the
machine's speed hits every row alike. Reported per row: the median steady-state ms/step and
images/s over the rounds (the run's first step, compilation included, is excluded and shown as
``compile``) and the ratio of ms/step to the first row.

    python experiments/benchmarks/bench_processes.py \
        --image-folder ../shared/data/cifar10_jpeg_train.tar.gz [--steps 300] [--rounds 2] \
        [--rows 1x1,2x1,4x1,1x2,1x4]

``1x2`` and ``1x4`` put the same devices in one process (collectives inside XLA, no gloo), to
tell the cost of the process boundary from that of splitting the batch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ROWS = ("1x1", "2x1", "4x1")
BATCH = 32


def parse_row(row: str) -> tuple[int, int]:
  """``'2x1'`` -> (2 processes, 1 device each)."""
  m = re.fullmatch(r"(\d+)x(\d+)", row)
  if not m or min(int(m.group(1)), int(m.group(2))) < 1:
    raise ValueError(f"row {row!r} must be '<processes>x<devices per process>', e.g. '2x1'")
  return int(m.group(1)), int(m.group(2))


def command(row: str, args: argparse.Namespace, workdir: Path) -> tuple[list[str], dict]:
  """The command and environment of one row's run."""
  processes, devices = parse_row(row)
  if BATCH % (processes * devices):
    raise ValueError(f"row {row!r}: the global batch {BATCH} does not split over "
                     f"{processes * devices} devices")
  train = ["--config", "jaxcnn/configs/cifar10_tutorial.py", "--workdir", str(workdir),
           f"--config.data.image_folder={args.image_folder}", "--config.parallel=mesh",
           f"--config.num_train_steps={args.steps}", "--config.progress=False",
           "--config.plots=False", "--config.data.eval_split=train[45000:45320]"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  if processes == 1:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return [sys.executable, "-m", "experiments.train", *train], env
  return ([sys.executable, "-m", "experiments.launch", "-n", str(processes),
           "--devices-per-process", str(devices), "--", *train], env)


def run_row(row: str, args: argparse.Namespace) -> dict:
  workdir = Path(tempfile.mkdtemp(prefix=f"bench_processes_{row}_"))
  try:
    cmd, env = command(row, args, workdir)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
      raise RuntimeError(f"{row} failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}")
    record = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[0])
    return {"row": row, "images_per_sec": record["train_images_per_sec"],
            "compile_seconds": record.get("compile_seconds"),
            "train_seconds": record["train_seconds"]}
  finally:
    shutil.rmtree(workdir, ignore_errors=True)


def _load() -> str:
  try:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())
  except OSError:
    return "?"


def table(results: list[dict], rows: list[str]) -> str:
  lines = ["| processes x devices | ms/step (median) | images/s | compile s | vs first row |",
           "| --- | ---: | ---: | ---: | ---: |"]
  base = None
  for row in rows:
    ips = statistics.median(r["images_per_sec"] for r in results if r["row"] == row)
    comp = statistics.median(r["compile_seconds"] or 0.0 for r in results if r["row"] == row)
    ms = 1000.0 * BATCH / ips
    base = ms if base is None else base
    lines.append(f"| {row} | {ms:.1f} | {ips:.0f} | {comp:.1f} | {ms / base:.2f}x |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--image-folder", required=True, help="the CIFAR-10 class-per-folder copy")
  parser.add_argument("--steps", type=int, default=300, help="train steps per run")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--rows", default=",".join(ROWS))
  parser.add_argument("--json", type=Path, default=None, help="write every run's numbers here")
  args = parser.parse_args(argv)
  rows = [r.strip() for r in args.rows.split(",") if r.strip()]
  for row in rows:
    try:
      command(row, args, Path("."))
    except ValueError as e:
      parser.error(str(e))
  if args.steps < 2:
    parser.error(f"--steps (={args.steps}) must be >= 2: the first step is compilation")
  print(f"load average at start: {_load()}", flush=True)
  results = []
  for r in range(args.rounds):
    for row in rows:
      res = run_row(row, args)
      res["round"] = r + 1
      results.append(res)
      print(f"round {r + 1} {row}: {1000 * BATCH / res['images_per_sec']:.1f} ms/step, "
            f"compile {res['compile_seconds'] or 0:.1f} s", flush=True)
  print(f"load average at end: {_load()}")
  print(f"\ncifar10_tutorial, global batch {BATCH}, {args.steps} steps, {args.rounds} rounds, "
        f"steady state (first step excluded):\n")
  print(table(results, rows))
  if args.json:
    args.json.write_text(json.dumps(results, indent=1) + "\n")
  return results


if __name__ == "__main__":
  main()
