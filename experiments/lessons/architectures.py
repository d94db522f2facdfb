"""Lesson: the architectures that changed the field, compared on one CPU budget.

The course ends with LeNet, AlexNet, VGG and ResNet and how depth, width and skip connections
trade parameters, compute and accuracy. This lesson measures that trade on the machine in front
of the learner: for each model of :mod:`jaxcnn.models` it prints the parameter count, the
multiply-accumulates (MACs) per 32x32 image, the training images/s on this CPU, and the
validation accuracy after the *same wall-clock training budget* for every model, as one table
and one plot of accuracy against MACs (``architectures_accuracy_vs_macs.png``).

Recipe (the same for every model, so only the architecture differs): Adam 1e-3, batch 128,
float32, no augmentation (a few epochs at most: augmentation would only slow the start), the
CIFAR-10 JPEG copy's ``train[:45000]`` for training and ``train[45000:]`` (5,000 images) for
validation, per-channel normalisation. Training stops at the first step that ends after the
budget (``BUDGET_S`` = 180 s of training per model, compilation excluded: the first step is
timed apart); images/s is measured over the steps after the first. SpeedNet's whitening layer
is set from the first 5,000 training images, as airbench does.

Command (the lessons runner; or call ``run`` directly)::

    python -m experiments.lessons architectures \
        --image-folder ../shared/data/cifar10_jpeg_train.tar.gz
    python -m experiments.lessons architectures --quick   # seconds, random data, tiny nets
    python experiments/lessons/architectures.py --quick --api nnx   # the models as NNX modules

Hardware and run time: 10 models x 180 s of training + compilation and evaluation: 41 minutes
on this project's 2-core AMD EPYC (jax 0.10.2). Measured 2026-12-01, seed 0 (BENCHMARKS.md
section 6: lenet5 and alexnet_cifar from the full run, the other eight re-run alone)::

    model                    params     MACs/image  images/s  epochs  val acc
    lenet5                   62,006        651,720    3186.7   12.75    56.7%
    alexnet_cifar        20,344,650     32,821,248     327.3    1.31    44.3%
    vgg11                 9,231,114    152,769,536     127.7    0.51    54.7%
    vgg16                14,728,266    313,201,664      65.4    0.27    28.5%
    resnet20                269,722     40,551,040     184.4    0.74    50.4%
    resnet56                853,018    125,485,696      44.7    0.18    37.7%
    preact_resnet18      11,171,146    555,422,720      33.7    0.14    18.7%
    resnet9               6,573,120    379,261,952      54.1    0.22    47.6%
    bn_cnn                   94,762     10,323,200     922.1    3.69    65.0%
    speednet              1,971,640    118,147,360     177.0    0.71    71.4%

One seed: a model that sees a fraction of an epoch moves by up to 11 points between runs (a
run with a test suite beside it gave bn_cnn 53.7% and vgg11 46.1%), so read the ordering, not
the decimals.

The moral a full run shows on a CPU: under a fixed time budget the small, cheap nets reach the
highest accuracy, and the landmark nets (VGG, ResNet-18: hundreds of MMACs per image) see only a
fraction of an epoch; on an accelerator, where compute is cheap, the order turns around.
"""

from __future__ import annotations

import math
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn import data as data_lib
from jaxcnn import inspect, models
from jaxcnn.train import create_train_state, eval_step, train_step

TITLE = "Architectures: parameters, compute and accuracy on one CPU budget"
TRAINS = True

BUDGET_S = 180.0  # seconds of training per model in the full run
BATCH_SIZE = 128
FULL_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("lenet5", {}),
    ("alexnet_cifar", {}),
    ("vgg11", {}),
    ("vgg16", {}),
    ("resnet20", {}),
    ("resnet56", {}),
    ("preact_resnet18", {}),
    ("resnet9", {}),
    ("bn_cnn", {}),
    ("speednet", {}),
)
# Quick mode: tiny members of three families on random data, so the whole path runs in seconds.
QUICK_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("lenet5", {}),
    ("bn_cnn", {"widths": (8, 16)}),
    ("cifar_resnet", {"depth": 8, "width": 4}),
)
QUICK_BUDGET_S = 1.0

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _random_loaders(seed: int, batch_size: int):
  rng = np.random.default_rng(seed)
  make = lambda n: {"image": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                    "label": rng.integers(0, 10, n).astype(np.int32)}
  stats = dict(mean=CIFAR10_MEAN, std=CIFAR10_STD)
  train = data_lib.DeviceLoader(make(4 * batch_size), batch_size, shuffle=True, seed=seed,
                                **stats)
  val = data_lib.DeviceLoader(make(2 * batch_size), batch_size, shuffle=False, seed=seed,
                              drop_remainder=False, **stats)
  return train, val


def _cifar_loaders(image_folder: str, seed: int, batch_size: int):
  common = dict(image_folder=image_folder, download=False)
  train = data_lib.make_loader("cifar10", "train[:45000]", batch_size, train=True, seed=seed,
                               **common)
  val = data_lib.make_loader("cifar10", "train[45000:]", 1000, train=False, **common)
  return train, val


def _batches(loader):
  epoch = 0
  while True:
    yield from loader.epoch(epoch)
    epoch += 1


def build_model(name: str, kwargs: dict[str, Any], api: str = "linen", seed: int = 0) -> Any:
  """The zoo model ``name``: a Linen module (``api='linen'``) or, with ``api='nnx'``, the same
  architecture as a Flax NNX module (:func:`jaxcnn.nnx.get_model`), which the same train step
  trains."""
  if api == "linen":
    return models.get_model(name, **kwargs)
  if api == "nnx":
    from flax import nnx  # pylint: disable=g-import-not-at-top
    from jaxcnn import nnx as jnnx  # pylint: disable=g-import-not-at-top
    return jnnx.get_model(name, rngs=nnx.Rngs(seed), **kwargs)
  raise ValueError(f"`api` (={api!r}) must be 'linen' or 'nnx'")


def train_for(name: str, kwargs: dict[str, Any], train_loader, val_loader, *, budget_s: float,
              seed: int = 0, api: str = "linen") -> dict[str, float]:
  """Trains ``name`` (as :func:`build_model` with ``api`` makes it) for ``budget_s`` seconds of
  steps (compilation excluded), then evaluates.

  Returns params, MACs per 32x32x3 image, images/s (steps after the first), steps, epochs seen,
  validation loss and accuracy, and the compile time of the first step.
  """
  model = build_model(name, kwargs, api, seed)
  summary = inspect.summary(model, (1, 32, 32, 3), print_fn=None)
  state = create_train_state(model, jax.random.PRNGKey(seed), (1, 32, 32, 3),
                             optax.adam(1e-3))
  batches = _batches(train_loader)
  if name == "speednet":  # airbench's data-dependent init of the frozen whitening conv
    n = min(math.ceil(5000 / train_loader.batch_size), train_loader.steps_per_epoch)
    images = [next(batches)["image"] for _ in range(n)]
    variables = models.init_whitening({"params": state.params},
                                      jnp.concatenate(images)[:5000])
    state = state.replace(params=variables["params"])
  step = jax.jit(train_step, donate_argnums=0)

  t0 = time.perf_counter()
  state, metrics = step(state, next(batches))
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  steps, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < budget_s:
    state, metrics = step(state, next(batches))
    jax.block_until_ready(metrics["loss"])
    steps += 1
  train_s = time.perf_counter() - t0

  evaluate = jax.jit(eval_step)
  sums = None
  for batch in val_loader.epoch(0):
    out = jax.device_get(evaluate(state, batch))
    sums = out if sums is None else jax.tree.map(np.add, sums, out)
  count = float(sums["count"])
  return {
      "params": summary.trainable_params,
      "macs": summary.total_macs,
      "images_per_s": steps * train_loader.batch_size / train_s if steps else float("nan"),
      "steps": steps + 1,
      "epochs": (steps + 1) * train_loader.batch_size / train_loader.num_examples,
      "val_loss": float(sums["loss"]) / count,
      "val_accuracy": float(sums["accuracy"]) / count,
      "compile_s": compile_s,
  }


def format_table(rows: dict[str, dict[str, float]], budget_s: float) -> str:
  head = (f"{'model':18s} {'params':>12s} {'MACs/image':>14s} {'images/s':>9s} "
          f"{'epochs':>7s} {'val acc':>8s}")
  lines = [f"Training budget: {budget_s:g} s per model (compilation excluded)", head,
           "-" * len(head)]
  for name, r in rows.items():
    lines.append(f"{name:18s} {r['params']:>12,} {r['macs']:>14,} {r['images_per_s']:>9.1f} "
                 f"{r['epochs']:>7.2f} {100 * r['val_accuracy']:>7.1f}%")
  return "\n".join(lines)


def plot_accuracy_vs_macs(rows: dict[str, dict[str, float]], budget_s: float,
                          path: str | pathlib.Path | None = None):
  """Validation accuracy against MACs per image (log scale), marker area ~ parameters.

  Returns the matplotlib ``Figure``; saves it only when ``path`` is given."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
  macs = np.array([r["macs"] for r in rows.values()], float)
  acc = np.array([100 * r["val_accuracy"] for r in rows.values()])
  params = np.array([r["params"] for r in rows.values()], float)
  sizes = 30 + 400 * np.sqrt(params / params.max())
  ax.scatter(macs, acc, s=sizes, alpha=0.6, color="tab:blue", edgecolor="black")
  lo, hi = float(np.min(acc)), float(np.max(acc))
  ax.set_ylim(max(0.0, lo - 5), min(100.0, hi + 5))
  ax.set_xlim(macs.min() / 2, macs.max() * 3)
  ax.set_xscale("log")
  ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1e6:g}M"))
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.set_xlabel("multiply-accumulates per 32x32 image (log scale)")
  ax.set_ylabel("validation accuracy (%)")
  ax.set_title(f"Validation accuracy after {budget_s:g} s of CPU training per model\n"
               "(marker area ~ parameter count; label: how much of the data each model saw)",
               fontsize=10)
  ax.grid(True, which="both", alpha=0.3)
  fig.tight_layout()
  # Labels: right of the marker, else below it, else to its left: the first place inside the
  # axes that overlaps no label placed before (close models, e.g. resnet56 and vgg16, would otherwise collide).
  renderer = fig.canvas.get_renderer()
  frame = ax.get_window_extent(renderer)
  placed = []
  for (name, r), x, y in sorted(zip(rows.items(), macs, acc), key=lambda t: -t[2]):
    for dx, dy, ha, va in ((7, 3, "left", "bottom"), (7, -6, "left", "top"),
                           (-7, 3, "right", "bottom"), (-7, -6, "right", "top")):
      ann = ax.annotate(f"{name}\n{r['epochs']:.2g} epochs seen", (x, y), fontsize=8,
                        textcoords="offset points", xytext=(dx, dy), ha=ha, va=va)
      box = ann.get_window_extent(renderer)
      inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
      if inside and not any(box.overlaps(b) for b in placed):
        break
      ann.remove()
    else:
      ann = ax.annotate(f"{name}\n{r['epochs']:.2g} epochs seen", (x, y), fontsize=8,
                        textcoords="offset points", xytext=(7, 3))
      box = ann.get_window_extent(renderer)
    placed.append(box)
  if path is not None:
    fig.savefig(path)
  return fig


def run(out: pathlib.Path, *, quick: bool = False, image_folder: str | None = None,
        seed: int = 0, models_to_run: tuple[tuple[str, dict[str, Any]], ...] | None = None,
        budget_s: float | None = None, api: str = "linen") -> dict:
  """Runs the lesson; see the module docstring. ``models_to_run``/``budget_s`` override the
  lists and budget (e.g. one model for a short check); ``api='nnx'`` trains the models as Flax
  NNX modules (:func:`build_model`)."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  if quick:
    chosen, budget = QUICK_MODELS, QUICK_BUDGET_S
    train_loader, val_loader = _random_loaders(seed, 32)
  else:
    if image_folder is None:
      raise ValueError("the full architectures lesson needs the CIFAR-10 copy: pass "
                       "image_folder='../shared/data/cifar10_jpeg_train.tar.gz' (or --quick)")
    chosen, budget = FULL_MODELS, BUDGET_S
    train_loader, val_loader = _cifar_loaders(image_folder, seed, BATCH_SIZE)
  chosen = models_to_run or chosen
  budget = budget if budget_s is None else budget_s

  rows = {}
  for name, kwargs in chosen:
    label = name if not kwargs else f"{name}*"  # * = a reduced member of the family
    rows[label] = train_for(name, kwargs, train_loader, val_loader, budget_s=budget, seed=seed,
                            api=api)
    r = rows[label]
    print(f"{label}: {r['params']:,} params, {r['macs']:,} MACs, {r['images_per_s']:.0f} "
          f"images/s, {r['epochs']:.2f} epochs, val acc {100 * r['val_accuracy']:.1f}% "
          f"(first step {r['compile_s']:.1f} s)", flush=True)
  print(format_table(rows, budget))
  fig_name = "architectures_accuracy_vs_macs.png"
  fig = plot_accuracy_vs_macs(rows, budget, out / fig_name)
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  plt.close(fig)
  results = {}
  for label, r in rows.items():
    for key in ("params", "macs", "images_per_s", "val_accuracy"):
      results[f"{label}_{key}"] = r[key]
  caption = ("Validation accuracy after the same training time for every model, against its "
             "compute per image (log scale); bigger markers have more parameters. Look at "
             "which side of the plot wins when time, not epochs, is fixed.")
  return {"figures": [(fig_name, caption)], "results": results}


if __name__ == "__main__":
  import argparse
  parser = argparse.ArgumentParser(description=TITLE)
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--image-folder", default=None)
  parser.add_argument("--out", default="runs/lessons/architectures")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--model", action="append", default=None,
                      help="only this model (repeatable)")
  parser.add_argument("--budget", type=float, default=None, help="seconds per model")
  parser.add_argument("--api", choices=("linen", "nnx"), default="linen",
                      help="run the models as Linen modules or as Flax NNX modules")
  args = parser.parse_args()
  only = tuple((m, {}) for m in args.model) if args.model else None
  run(pathlib.Path(args.out), quick=args.quick, image_folder=args.image_folder, seed=args.seed,
      models_to_run=only, budget_s=args.budget, api=args.api)
