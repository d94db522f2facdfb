"""Runs airbench94_muon.py (KellerJordan/cifar10-airbench) on the arrays of an .npz.

    python -m experiments.gpu.gpu_airbench_npz --source .peers/airbench/airbench94_muon.py \
        --npz .data/cifar10_speedrun.npz --runs 25 --json .data/airbench.json

Only airbench's data loading is changed, by exact text substitutions that fail loudly if the
source differs from the commit read (096d14d):

* ``CifarLoader.__init__`` reads ``x_train, y_train`` (train) or ``x_eval, y_eval`` (test)
  from the .npz instead of ``torchvision.datasets.CIFAR10`` / ``train.pt``;
* ``torchvision`` is optional: without it ``T.Normalize`` is the same per-channel
  ``(x - mean) / std`` written out (the only torchvision call);
* the ``__main__`` block runs ``--runs`` runs after airbench's warm-up run and writes every
  run's accuracy and time (airbench's own ``time_seconds``: whitening + training + TTA
  evaluation, CUDA-event timed) to ``--json``; the per-epoch table is printed as before.

The network, optimiser, schedule, augmentation, timing and ``torch.compile(mode=
'max-autotune')`` are untouched.
"""

import argparse
import json
import pathlib
import runpy
import sys

LOAD_OLD = '''        data_path = os.path.join(path, "train.pt" if train else "test.pt")
        if not os.path.exists(data_path):
            dset = torchvision.datasets.CIFAR10(path, download=True, train=train)
            images = torch.tensor(dset.data)
            labels = torch.tensor(dset.targets)
            torch.save({"images": images, "labels": labels, "classes": dset.classes}, data_path)

        data = torch.load(data_path, map_location=torch.device("cuda"))
        self.images, self.labels, self.classes = data["images"], data["labels"], data["classes"]
'''
LOAD_NEW = '''        # PATCHED (jaxcnn experiments/gpu/gpu_airbench_npz.py): the arrays of an .npz.
        import numpy as _np
        _device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        with _np.load(os.environ["AIRBENCH_NPZ"]) as _z:
            _x, _y = (_z["x_train"], _z["y_train"]) if train else (_z["x_eval"], _z["y_eval"])
        self.images = torch.tensor(_x, dtype=torch.uint8, device=_device)
        self.labels = torch.tensor(_y, dtype=torch.long, device=_device)
        self.classes = [str(i) for i in range(10)]
'''
IMPORT_OLD = '''import torchvision
import torchvision.transforms as T
'''
IMPORT_NEW = '''try:  # PATCHED: torchvision only for T.Normalize
    import torchvision
    import torchvision.transforms as T
except ImportError:
    class T:
        class Normalize:
            def __init__(self, mean, std):
                self.mean, self.std = torch.as_tensor(mean), torch.as_tensor(std)
            def __call__(self, x):
                shape = (-1, 1, 1)
                return (x - self.mean.to(x).view(shape)) / self.std.to(x).view(shape)
'''
MAIN_OLD = '''    accs = torch.tensor([main(run, model) for run in range(200)])
    print("Mean: %.4f    Std: %.4f" % (accs.mean(), accs.std()))
'''
MAIN_NEW = '''    # PATCHED: --runs runs; each run's time_seconds kept (main returns the accuracy).
    _records = []
    _print = print_training_details
    def print_training_details(variables, is_final_entry):
        if is_final_entry:
            _records.append(dict(acc=variables["tta_val_acc"], seconds=variables["time_seconds"]))
        _print(variables, is_final_entry)
    accs = torch.tensor([main(run, model) for run in range(int(os.environ["AIRBENCH_RUNS"]))])
    print("Mean: %.4f    Std: %.4f" % (accs.mean(), accs.std()))
    import json as _json
    with open(os.environ["AIRBENCH_JSON"], "w") as _f:
        _json.dump(dict(runs=_records), _f, indent=1)
'''
LOG_OLD = '''    log_dir = os.path.join("logs", str(uuid.uuid4()))'''
LOG_NEW = '''    sys.exit(0)  # PATCHED: no log directory
    log_dir = os.path.join("logs", str(uuid.uuid4()))'''


def patch(source: str) -> str:
  """airbench94_muon.py's text with the data loading patched (see the module docstring)."""
  for old, new in ((LOAD_OLD, LOAD_NEW), (IMPORT_OLD, IMPORT_NEW), (MAIN_OLD, MAIN_NEW),
                   (LOG_OLD, LOG_NEW)):
    if source.count(old) != 1:
      raise ValueError(f"airbench source differs from commit 096d14d: expected once:\n{old}")
    source = source.replace(old, new)
  return source


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--source", default=".peers/airbench/airbench94_muon.py")
  p.add_argument("--npz", default=".data/cifar10_speedrun.npz")
  p.add_argument("--runs", type=int, default=25)
  p.add_argument("--json", default=".data/airbench.json")
  a = p.parse_args()
  import os
  src = pathlib.Path(a.source)
  patched = src.with_name(src.stem + "_npz.py")
  patched.write_text(patch(src.read_text()))
  os.environ.update(AIRBENCH_NPZ=os.path.abspath(a.npz), AIRBENCH_RUNS=str(a.runs),
                    AIRBENCH_JSON=os.path.abspath(a.json))
  sys.argv = [str(patched)]
  runpy.run_path(str(patched), run_name="__main__")


if __name__ == "__main__":
  main()
