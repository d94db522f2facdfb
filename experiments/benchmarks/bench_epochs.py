"""The course recipe's epoch: jaxcnn's CLI vs PyTorch vs Keras, alternated in one invocation.

Each row is the command its users run (framework defaults; extra rows are marked), training the
Keras tutorial CNN (Adam 1e-3, batch 32, no augmentation) on the same uint8 arrays of the CIFAR-10
copy (train[:45000], validation train[45000:]) for ``--epochs`` epochs. Rows take turns
(round 1: A, B, C, ...; round 2: A, B, C, ...), each in its own process, so a drift of the
machine's speed hits every row alike. Epoch 1 holds compilation / warm-up and is reported apart;
the table gives the median, min and max of the later epochs' training seconds over all rounds,
images/s at the median, and the ratio to the faster peer at its defaults.

    python experiments/benchmarks/bench_epochs.py --image-folder ../shared/data/cifar10_jpeg_train.tar.gz \
        [--rounds 2] [--epochs 3] [--rows jaxcnn,torch_nchw,torch_cl,keras] \
        [--jaxcnn-python /path/to/other/venv/bin/python]

Rows: ``jaxcnn`` (``python -m experiments.train`` with ``cifar10_tutorial.py``: what the CLI
does, incl. its per-epoch evaluation and checkpoints; tqdm off), ``torch_nchw`` (PyTorch eager,
its default layout), ``torch_cl`` (channels-last: an extra, tuned row), ``keras`` (Keras 3 on
TensorFlow at its defaults). ``--jaxcnn-python PY`` adds the row ``jaxcnn_alt``: the same CLI
run by another interpreter (another venv: a newer or older jax), labelled with its jax version,
so two jax versions are compared in one alternated invocation. Results: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PEERS = ("torch_nchw", "keras")  # the peers at their defaults: the ratio's denominator
ROWS = ("jaxcnn", "torch_nchw", "torch_cl", "keras")


def _command(row: str, args, out: Path) -> list[str]:
  py = sys.executable
  if row in ("jaxcnn", "jaxcnn_alt"):
    py = args.jaxcnn_python if row == "jaxcnn_alt" else py
    return [py, "-m", "experiments.train", "--config", "jaxcnn/configs/cifar10_tutorial.py",
            "--workdir", str(out), f"--config.data.image_folder={args.image_folder}",
            f"--config.num_epochs={args.epochs}", "--config.progress=False"]
  common = ["--out", str(out / "peer.json"), "--epochs", str(args.epochs),
            "--image-folder", str(args.image_folder)]
  if row == "torch_nchw":
    return [py, "-m", "experiments.peers.torch_cifar10_tutorial", *common]
  if row == "torch_cl":
    return [py, "-m", "experiments.peers.torch_cifar10_tutorial", *common,
            "--memory-format", "channels_last"]
  if row == "keras":
    return [py, "-m", "experiments.peers.keras_cifar10_tutorial", *common]
  raise ValueError(f"unknown row {row!r}; known: {', '.join(ROWS)}")


def _epochs(row: str, out: Path) -> list[dict]:
  """Per-epoch records with ``train_seconds`` and ``train_images_per_sec``."""
  if row in ("jaxcnn", "jaxcnn_alt"):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
  return json.loads((out / "peer.json").read_text())["epochs"]


def _jax_version(python: str) -> str:
  """The jax version an interpreter imports (without starting a backend)."""
  out = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('jax'))"],
                       capture_output=True, text=True, check=False)
  if out.returncode != 0:
    sys.exit(f"--jaxcnn-python {python}: cannot read its jax version:\n{out.stderr[-1000:]}")
  return out.stdout.strip()


def _load() -> str:
  try:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())
  except OSError:
    return "?"


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--image-folder", required=True, help="the CIFAR-10 class-per-folder copy")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--epochs", type=int, default=3, help="per run; epoch 1 is reported apart")
  parser.add_argument("--rows", default=",".join(ROWS))
  parser.add_argument("--json", type=Path, default=None, help="write every epoch record here")
  parser.add_argument("--jaxcnn-python", default=None,
                      help="another interpreter (venv) with jaxcnn: adds the row jaxcnn_alt")
  args = parser.parse_args(argv)
  rows = [r.strip() for r in args.rows.split(",") if r.strip()]
  for r in rows:
    if r not in ROWS:
      parser.error(f"unknown row {r!r}; known: {', '.join(ROWS)}")
  labels = {r: r for r in rows}
  if args.jaxcnn_python:
    rows.insert(rows.index("jaxcnn") + 1 if "jaxcnn" in rows else 0, "jaxcnn_alt")
    labels["jaxcnn"] = f"jaxcnn (jax {_jax_version(sys.executable)})"
    labels["jaxcnn_alt"] = f"jaxcnn (jax {_jax_version(args.jaxcnn_python)})"
  if args.epochs < 2:
    parser.error(f"--epochs must be >= 2 (epoch 1 holds the warm-up), got {args.epochs}")

  from experiments import peers  # pylint: disable=g-import-not-at-top  (numpy only)
  info = peers.machine_info()
  print(f"host: {info['cpu']}, {info['cpu_count']} CPUs; vector extensions: "
        f"{info['vector_extensions']}", flush=True)
  results: dict[str, list[dict]] = {r: [] for r in rows}
  tmp = Path(tempfile.mkdtemp(prefix="bench_epochs_"))
  try:
    for rnd in range(args.rounds):
      for row in rows:
        out = tmp / f"{row}_{rnd}"
        t0 = time.perf_counter()
        proc = subprocess.run(_command(row, args, out), cwd=ROOT, capture_output=True, text=True,
                              check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
          sys.exit(f"row {row} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        eps = _epochs(row, out)
        results[row].append({"round": rnd, "wall_seconds": wall, "epochs": eps})
        secs = " ".join(f"{e['train_seconds']:.1f}" for e in eps)
        print(f"round {rnd + 1} {labels[row]:10s} epochs' train s: {secs}  (command {wall:.0f} s, "
              f"load {_load()})", flush=True)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)

  summary = {}
  for row in rows:
    later = [e for run in results[row] for e in run["epochs"][1:]]
    secs = sorted(e["train_seconds"] for e in later)
    summary[row] = {
        "median_s": statistics.median(secs), "min_s": secs[0], "max_s": secs[-1],
        "median_img_s": statistics.median(e["train_images_per_sec"] for e in later),
        "first_epoch_s": statistics.median(r["epochs"][0]["train_seconds"] for r in results[row]),
        "final_acc": [r["epochs"][-1]["eval_accuracy"] for r in results[row]]}
  peer_rows = [r for r in rows if r in PEERS]
  best = min(peer_rows, key=lambda r: summary[r]["median_s"]) if peer_rows else None
  print(f"\n{args.rounds} rounds x {args.epochs} epochs; epochs 2-{args.epochs} of every round")
  print("| row | train s/epoch, median (min-max) | images/s | epoch 1 s | "
        "vs faster peer at defaults |")
  print("| --- | ---: | ---: | ---: | ---: |")
  for row in rows:
    s = summary[row]
    ratio = f"{summary[best]['median_s'] / s['median_s']:.2f}x" if best else "-"
    print(f"| {labels[row]} | {s['median_s']:.1f} ({s['min_s']:.1f}-{s['max_s']:.1f}) | "
          f"{s['median_img_s']:,.0f} | {s['first_epoch_s']:.1f} | {ratio} |")
  if best:
    print(f"faster peer at its defaults: {best}")
  if args.json:
    peers.write_json(args.json, {"machine": info, "results": results, "summary": summary})
  return summary


if __name__ == "__main__":
  main()
