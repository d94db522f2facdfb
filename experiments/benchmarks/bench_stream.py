"""The streaming host loader against the device loader and the training step, with peak memory.

Generates a folder of JPEGs of mixed sizes (``--images`` of ``--min-side``..``--max-side`` px,
one class per colour family) in a temporary directory, then runs each row in its own process so
that its peak RSS is its own:
  * ``host``: :class:`jaxcnn.data.HostLoader` over the files (read, decode, random-resized-crop
    to ``--image-size``, flip, on ``--threads`` threads, ``--prefetch`` batches ahead), one epoch;
  * ``device (decode)``: the device loader's cold start, decoding and resizing every file into
    memory (no cache);
  * ``device (epoch)``: then one epoch from memory (flip on the device);
  * ``train step``: ``--model``'s training step (forward, backward, SGD) at ``--image-size``,
    the consumer both loaders feed.
Peak RSS is ``ru_maxrss`` of the row's process; "above start" subtracts the RSS after importing
JAX and jaxcnn. The decoded folder at full size is printed beside it: the host loader's peak must
stay flat as the folder grows, the device loader's grows with it.

``--recipe resnet18_imagenette`` instead trains that config for one epoch on the generated folder
(160 px, streamed) through ``train_and_evaluate`` and prints its time per epoch and images/s.

Run (the lead, in a quiet window):
    python experiments/benchmarks/bench_stream.py
    python experiments/benchmarks/bench_stream.py --images 256 --steps 3        # smoke test
    python experiments/benchmarks/bench_stream.py --recipe resnet18_imagenette --images 640
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_folder(root: str, images: int, min_side: int, max_side: int, classes: int = 10,
                seed: int = 0) -> int:
  """Writes ``images`` JPEGs into ``root/class_<k>/``; returns their decoded full-size bytes."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  total = 0
  for i in range(images):
    k = i % classes
    w, h = (int(v) for v in rng.integers(min_side, max_side + 1, size=2))
    base = np.asarray([(37 * k) % 256, (91 * k) % 256, (53 * k) % 256], np.float32)
    noise = rng.normal(0, 40, (h // 8 + 1, w // 8 + 1, 3))
    img = np.clip(base + np.kron(noise, np.ones((8, 8, 1)))[:h, :w], 0, 255).astype(np.uint8)
    os.makedirs(os.path.join(root, f"class_{k}"), exist_ok=True)
    Image.fromarray(img).save(os.path.join(root, f"class_{k}", f"{i:06d}.jpg"), quality=90)
    total += h * w * 3
  return total


def _rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(args) -> dict:
  """One row in this process; returns its numbers."""
  import jax  # pylint: disable=g-import-not-at-top
  from jaxcnn import data  # pylint: disable=g-import-not-at-top
  from experiments.benchmarks.bench_data import drain  # pylint: disable=g-import-not-at-top
  jax.numpy.zeros(1).block_until_ready()
  start = _current_rss_mb()
  size = (args.image_size, args.image_size)
  out = {"start_rss_mb": start}
  if args.worker == "host":
    loader = data.image_folder_dataset(args.folder, image_size=size, batch_size=args.batch_size,
                                       seed=0, loader="host", num_threads=args.threads,
                                       prefetch=args.prefetch,
                                       augment=("random_resized_crop", "flip"), cache=False)
    steps = min(args.steps, loader.steps_per_epoch)
    t0 = time.perf_counter()
    drain(loader, steps, epoch=0)
    sec = time.perf_counter() - t0
    out.update(images=steps * args.batch_size, seconds=sec)
  elif args.worker == "device":
    t0 = time.perf_counter()
    loader = data.image_folder_dataset(args.folder, image_size=size, batch_size=args.batch_size,
                                       seed=0, loader="device", augment=("flip",), cache=False)
    out.update(decode_images=loader.num_examples, decode_seconds=time.perf_counter() - t0)
    steps = min(args.steps, loader.steps_per_epoch)
    jax.block_until_ready(next(iter(loader.epoch(0))))  # compile
    t0 = time.perf_counter()
    drain(loader, steps, epoch=1)
    out.update(images=steps * args.batch_size, seconds=time.perf_counter() - t0)
  elif args.worker == "train":
    import optax  # pylint: disable=g-import-not-at-top
    from jaxcnn import models  # pylint: disable=g-import-not-at-top
    kwargs = {"stem": args.stem} if args.stem else {}
    model = models.get_model(args.model, num_classes=10, **kwargs)
    x = jax.numpy.zeros((args.batch_size, *size, 3), jax.numpy.float32)
    y = jax.numpy.zeros((args.batch_size,), jax.numpy.int32)
    variables = model.init(jax.random.key(0), x, train=False)
    tx = optax.sgd(0.01, momentum=0.9)

    @jax.jit
    def step(variables, opt_state):
      def loss_fn(p):
        logits, _ = model.apply({**variables, "params": p}, x, train=True,
                                mutable=["batch_stats"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      grads = jax.grad(loss_fn)(variables["params"])
      updates, opt_state = tx.update(grads, opt_state, variables["params"])
      return {**variables, "params": optax.apply_updates(variables["params"], updates)}, opt_state

    state = (variables, tx.init(variables["params"]))
    state = step(*state)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(args.steps):
      state = step(*state)
    jax.block_until_ready(state)
    out.update(images=args.steps * args.batch_size, seconds=time.perf_counter() - t0)
  out["peak_rss_mb"] = _rss_mb()
  return out


def recipe(args) -> dict:
  """Trains ``args.recipe`` for one epoch on the generated folder; its metrics.jsonl row."""
  import importlib  # pylint: disable=g-import-not-at-top
  from jaxcnn.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"jaxcnn.configs.{args.recipe}").get_config()
  config.data.name = "folder"
  config.data.image_folder = args.folder
  config.data.validation_split = 0.2
  config.num_epochs = 1
  config.progress = False
  config.plots = False
  if args.batch_size_recipe:
    config.batch_size = args.batch_size_recipe
  with tempfile.TemporaryDirectory() as wd:
    result = train_and_evaluate(config, wd)
  row = result.history[0]
  return {k: row.get(k) for k in ("epoch_seconds", "train_seconds", "eval_seconds",
                                  "train_images_per_sec", "compile_seconds")} | {
                                      "batch_size": config.batch_size,
                                      "peak_rss_mb": _rss_mb()}


def _run_worker(args, which: str) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), "--worker", which, "--folder", args.folder,
         "--image-size", str(args.image_size), "--batch-size", str(args.batch_size),
         "--steps", str(args.steps), "--threads", str(args.threads), "--prefetch",
         str(args.prefetch), "--model", args.model, "--stem", args.stem]
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
  if out.returncode:
    raise SystemExit(f"row {which} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--images", type=int, default=4000, help="JPEGs generated")
  p.add_argument("--min-side", type=int, default=200)
  p.add_argument("--max-side", type=int, default=400)
  p.add_argument("--image-size", type=int, default=64, help="output side, px")
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--steps", type=int, default=40, help="batches per timed row")
  p.add_argument("--threads", type=int, default=min(16, 2 * (os.cpu_count() or 1)))
  p.add_argument("--prefetch", type=int, default=2)
  p.add_argument("--model", default="tutorial_cnn")
  p.add_argument("--stem", default="", help="model stem ('imagenet' for resnet18)")
  p.add_argument("--recipe", default="", help="a config to time one epoch of instead")
  p.add_argument("--batch-size-recipe", type=int, default=0)
  p.add_argument("--worker", default="", help=argparse.SUPPRESS)
  p.add_argument("--folder", default="", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  sys.path.insert(0, ROOT)
  if args.worker:
    print(json.dumps(worker(args)))
    return
  command = "python experiments/benchmarks/bench_stream.py " + " ".join(
      argv if argv is not None else sys.argv[1:])
  with tempfile.TemporaryDirectory() as tmp:
    os.environ["JAXCNN_CACHE_DIR"] = os.path.join(tmp, "cache")  # the rows' statistics
    args.folder = os.path.join(tmp, "images")
    t0 = time.perf_counter()
    full_bytes = make_folder(args.folder, args.images, args.min_side, args.max_side)
    on_disk = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args.folder)
                  for f in fs)
    print(f"generated {args.images} JPEGs in {time.perf_counter() - t0:.1f} s: "
          f"{on_disk / 2**20:.0f} MiB on disk, {full_bytes / 2**20:.0f} MiB decoded at full size")
    if args.recipe:
      r = recipe(args)
      print(f"\n## {args.recipe}: one epoch of {int(args.images * 0.8)} generated images\n")
      print("| batch | epoch s | train s | eval s | train images/s | compile s | peak RSS MiB |")
      print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
      print(f"| {r['batch_size']} | {r['epoch_seconds']:.1f} | {r['train_seconds']:.1f} | "
            f"{r['eval_seconds']:.1f} | {r['train_images_per_sec'] or float('nan'):.1f} | "
            f"{r['compile_seconds'] or float('nan'):.1f} | {r['peak_rss_mb']:.0f} |")
      print(f"\ncommand: {command}")
      return
    buffers = (args.prefetch + 1) * args.batch_size * args.image_size ** 2 * 3
    rows = {w: _run_worker(args, w) for w in ("host", "device", "train")}
  import jax  # pylint: disable=g-import-not-at-top
  dev = jax.devices()[0]
  print(f"\n## Streaming loader: {dev.platform} ({dev.device_kind}), {os.cpu_count()} CPU cores, "
        f"{args.images} JPEGs {args.min_side}-{args.max_side} px -> {args.image_size} px, batch "
        f"{args.batch_size}, {args.threads} threads, prefetch {args.prefetch} "
        f"(host buffers {buffers / 2**20:.1f} MiB; folder {full_bytes / 2**20:.0f} MiB decoded)\n")
  train_rate = rows["train"]["images"] / rows["train"]["seconds"]
  print("| row | images/s | x train step | peak RSS MiB | above start MiB |")
  print("| --- | ---: | ---: | ---: | ---: |")
  table = [("host loader (read + decode + random-resized-crop + flip)", rows["host"]),
           ("device loader, epoch from memory (flip)", rows["device"]),
           (f"train step, {args.model}{' ' + args.stem if args.stem else ''}", rows["train"])]
  dec = rows["device"]
  print(f"| device loader, decode + resize every file (cold start) | "
        f"{dec['decode_images'] / dec['decode_seconds']:,.0f} | "
        f"{dec['decode_images'] / dec['decode_seconds'] / train_rate:.2f} | | |")
  for name, r in table:
    rate = r["images"] / r["seconds"]
    print(f"| {name} | {rate:,.0f} | {rate / train_rate:.2f} | {r['peak_rss_mb']:.0f} | "
          f"{r['peak_rss_mb'] - r['start_rss_mb']:.0f} |")
  print(f"\ncommand: {command}")


if __name__ == "__main__":
  main()
