"""Trains the airbench94 speed recipe for N seeds back to back and reports accuracy and time.

    python -m experiments.speedrun --config speedrun:cpu70 --runs 3 \
        --image-folder ../shared/data/cifar10_jpeg_train.tar.gz [--config.<key>=<value> ...]

Per run: the TTA validation accuracy and the time, as airbench94_muon.py times it (the data
already on the device; whitening init + training + final TTA evaluation; compilation excluded
and printed on its own; no per-epoch evaluation, checkpoints or plots). Then mean ± std over the
runs and the fraction of runs at or above ``config.recipe.target``. Each line also shows
``os.getloadavg()`` (a busy shared machine slows a timed run). ``--json PATH`` writes the
results. Everything but flag parsing is :class:`jaxcnn.recipes.airbench.Speedrun`.
"""

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

import jaxcnn.cpu
from experiments import _cli
from jaxcnn import configs
from jaxcnn.cpu import flags as cpu_flags, tuning as cpu_tuning

_CONFIG = config_flags.DEFINE_config_file(
    "config", configs.path("speedrun"), "speedrun[:variant] (jaxcnn/configs/speedrun.py), or a "
    "config file by path", lock_config=True)
_RUNS = flags.DEFINE_integer("runs", 1, "Seeds to train back to back (config.seed, +1, ...).")
_TRAIN = flags.DEFINE_string("train-split", None, "Train split (default config.data.train_split, "
                             "train[:45000]; 'train' for all 50,000).")
_EVAL = flags.DEFINE_string("eval-split", None, "Eval split (default config.data.eval_split, "
                            "train[45000:]).")
_FOLDER = flags.DEFINE_string("image-folder", None, "Class-per-folder CIFAR-10 copy (or .tar.gz) "
                              "instead of tfds.")
_NPZ = flags.DEFINE_string("npz", None, "An .npz with x_train, y_train, x_eval, y_eval (uint8 "
                           "NHWC images, int labels) instead of tfds or a folder.")
_JSON = flags.DEFINE_string("json", None, "Write the per-run results and the summary here.")
_CPU_ACCELERATION = flags.DEFINE_bool(
    "cpu_acceleration", True, "Call jaxcnn.cpu.enable() before JAX starts (CPU only; one line "
    "says what it turned on). --nocpu_acceleration: none of it.")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  _cli.quiet_tensorflow()
  if _CPU_ACCELERATION.value:
    jaxcnn.cpu.enable()  # before JAX's first computation
  import jax
  import numpy as np
  from jaxcnn import data
  from jaxcnn.recipes import airbench
  from jaxcnn.train import config as config_lib

  config = config_lib.validate(_CONFIG.value)
  recipe = config.recipe
  train_split = _TRAIN.value or config.data.train_split
  eval_split = _EVAL.value or config.data.eval_split
  if _NPZ.value:
    with np.load(_NPZ.value) as z:
      train = {"image": z["x_train"], "label": z["y_train"]}
      evaluation = {"image": z["x_eval"], "label": z["y_eval"]}
    source = _NPZ.value
  else:
    folder = _FOLDER.value or config.data.image_folder
    load = lambda split: data.load_arrays(config.data.name, split, image_folder=folder,
                                          data_dir=config.data.data_dir)
    try:
      train, evaluation = load(train_split), load(eval_split)
    except (data.DatasetNotFoundError, data.TensorFlowMissingError, ValueError) as e:
      print(f"error: {_cli.in_flags(str(e), {'image_folder': '--image-folder'})}",
            file=sys.stderr)
      sys.exit(1)
    source = f"{folder or 'tfds'} {train_split} / {eval_split}"
  print(f"speedrun {recipe['variant']}: {source}; {len(train['label'])} train, "
        f"{len(evaluation['label'])} eval images; {jax.devices()[0].device_kind} "
        f"({cpu_flags.cpu_model()}), jax {jax.__version__}")
  runner = airbench.Speedrun(config, train, evaluation)
  print(f"  {runner.total_steps} steps of batch {runner.batch_size} "
        f"({runner.total_steps / runner.steps_per_epoch:.2f} epochs), dtype {config.dtype}, "
        f"width x{config.model_kwargs['width_mult']}, depth {config.model_kwargs['depth']}")
  results = []
  for i in range(_RUNS.value):
    r = runner.run(int(config.seed) + i)
    results.append(r)
    tuned = cpu_tuning.report()  # what the first run's compilation measured
    if tuned:
      print(f"  {tuned}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"run {i + 1}/{_RUNS.value} seed {r.seed}: acc {r.accuracy:.4f}  time {r.seconds:.2f}s "
          f"(whiten {r.whiten_seconds:.2f} + train {r.train_seconds:.2f} + tta eval "
          f"{r.eval_seconds:.2f}); compile {r.compile_seconds:.1f}s (excluded); "
          f"loadavg {load}", flush=True)
  s = airbench.summarize(results, float(recipe["target"]))
  print(f"{s['runs']} runs: accuracy {100 * s['accuracy_mean']:.2f} ± "
        f"{100 * s['accuracy_std']:.2f}%  time {s['seconds_mean']:.2f} ± {s['seconds_std']:.2f}s"
        f"  runs >= {100 * s['target']:.0f}%: {100 * s['fraction_at_target']:.0f}%")
  if _JSON.value:
    record = {"config": config.to_dict(), "source": source,
              "device": jax.devices()[0].device_kind, "cpu": cpu_flags.cpu_model(),
              "jax": jax.__version__, "argv": sys.argv, "summary": s,
              "runs": [{k: v for k, v in vars(r).items() if k != "state"} for r in results]}
    with open(_JSON.value, "w") as f:
      json.dump(record, f, indent=1)


if __name__ == "__main__":
  app.run(main, argv=configs.resolve_argv(sys.argv))
