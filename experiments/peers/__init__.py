"""Peer implementations of the `cifar10_tutorial` recipe, for BENCHMARKS.md only.

The Keras TensorFlow CNN tutorial, written once in PyTorch (`torch_cifar10_tutorial.py`) and once in
Keras (`keras_cifar10_tutorial.py`), so that jaxcnn's `cifar10_tutorial` config can be timed beside
them on the same machine and the same arrays. This module holds what both peers share: the recipe's
hyperparameters, the data (identical uint8 arrays for both), the split check, and the record.

Data: the shared CIFAR-10 training split (JPEG copy, `../shared/data/cifar10_jpeg_train.tar.gz`),
train = `train[:45000]`, validation = `train[45000:]`, read by `jaxcnn.data.load_arrays` exactly as
jaxcnn's `cifar10_tutorial` reads them (its canonical order interleaves the classes, so the last
5,000 images hold 500 of each class). A plain class-sorted order would make them all trucks, so
`load_train_val` refuses a split that misses a class.

Nothing here is needed by the library or its tests; torch is the optional `bench` extra.

Example:
  python -m experiments.peers.torch_cifar10_tutorial --out /tmp/torch.json
  python -m experiments.peers.keras_cifar10_tutorial --out /tmp/keras.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# Every hyperparameter of the recipe, in one place (units in the names).
RECIPE: dict[str, Any] = {
  'model': 'Conv2D(32,3,relu)-MaxPool(2)-Conv2D(64,3,relu)-MaxPool(2)-Conv2D(64,3,relu)'
           '-Flatten-Dense(64,relu)-Dense(10)',
  'num_params': 122_570,
  'input_scaling': 'x / 255 (float32 in [0, 1]; no mean/std normalisation, as the Keras tutorial)',
  'init': 'glorot_uniform kernels, zero biases (Keras defaults)',
  'optimizer': 'adam',
  'learning_rate': 1e-3,
  'beta1': 0.9,
  'beta2': 0.999,
  'eps': 1e-7,  # Keras' default; PyTorch's default (1e-8) is overridden to match.
  'batch_size': 32,
  'eval_batch_size': 32,  # Keras `fit` evaluates validation_data with the training batch size.
  'num_epochs': 10,
  'loss': 'sparse categorical cross-entropy from logits, mean over the batch',
  'augmentation': None,
  'last_partial_batch': 'kept (45,000 / 32 -> 1,407 steps, the last of 8), as Keras fit does',
  'num_train': 45_000,
  'train_split': 'train[:45000]',
  'eval_split': 'train[45000:]',
}

NUM_CLASSES = 10
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TARBALL = REPO_ROOT.parent / 'shared' / 'data' / 'cifar10_jpeg_train.tar.gz'


def add_common_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
  """Adds the flags both peers share (data, epochs, limit, threads, seed, output)."""
  parser.add_argument('--out', type=Path, required=True, help='where to write the JSON results')
  parser.add_argument('--epochs', type=int, default=RECIPE['num_epochs'])
  parser.add_argument('--limit', type=int, default=None,
                      help='quick check: train on the first N images of train[:45000] and '
                           'validate on the first min(N, 5000) of train[45000:]')
  parser.add_argument('--threads', type=int, default=None,
                      help="CPU threads for the framework (default: leave the framework's own "
                           'default, as its users run it; setting TF\'s thread counts made Keras '
                           'epochs swing 2x)')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--batch-size', type=int, default=RECIPE['batch_size'])
  parser.add_argument('--image-folder', type=Path, default=DEFAULT_TARBALL,
                      help='class-per-folder copy or its tarball, as jaxcnn.data takes it')
  return parser


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
  """First 16 hex digits of SHA-256 over the image and label bytes: same arrays <=> same string."""
  h = hashlib.sha256()
  h.update(np.ascontiguousarray(arrays['image'], np.uint8).tobytes())
  h.update(np.ascontiguousarray(arrays['label'], np.int32).tobytes())
  return h.hexdigest()[:16]


def load_train_val(args: argparse.Namespace) -> tuple[dict, dict, dict[str, Any]]:
  """`train[:45000]` and `train[45000:]` of the shared CIFAR-10 copy, cut to `--limit` if given.

  Read with `jaxcnn.data.load_arrays(..., image_folder=...)`, the call jaxcnn's own
  `cifar10_tutorial` makes, so all three runs train and validate on the same bytes (compare the
  fingerprints). jaxcnn.data decodes with PIL and caches the decoded split under
  `jaxcnn.data.default_cache_dir()`.

  Returns:
    `(train, val, info)`, each split `{'image': uint8 [N, 32, 32, 3], 'label': int32 [N]}`.

  Raises:
    ValueError: when a class is missing from either split, e.g. arrays in class-sorted order
      (then `train[45000:]` is 5,000 trucks and training never sees one).
  """
  from jaxcnn.data import load_arrays  # no TensorFlow and no JAX backend on this route
  folder = args.image_folder
  if not folder.exists():
    raise FileNotFoundError(f'`--image-folder` (={folder}) does not exist')
  t0 = time.perf_counter()
  # process_index/count given, so that jax.process_index() does not start a JAX backend here.
  train, val = (load_arrays('cifar10', split, image_folder=str(folder), process_index=0,
                            process_count=1)
                for split in (RECIPE['train_split'], RECIPE['eval_split']))
  info: dict[str, Any] = {
    'image_folder': str(folder), 'reader': 'jaxcnn.data.load_arrays (PIL decode)',
    'load_seconds': time.perf_counter() - t0,
    'fingerprint_train': fingerprint(train), 'fingerprint_val': fingerprint(val)}
  for part, arrays in (('train', train), ('val', val)):
    counts = np.bincount(arrays['label'], minlength=NUM_CLASSES).tolist()
    if min(counts) == 0:
      raise ValueError(f'the {part} split misses a class (per-class counts {counts}): the arrays '
                       'are probably in class-sorted order; shuffle deterministically before slicing')
    info[f'class_counts_{part}'] = counts
  if args.limit is not None:
    if args.limit <= 0:
      raise ValueError(f'`--limit` (={args.limit}) must be positive')
    train = {k: v[:args.limit] for k, v in train.items()}
    val = {k: v[:args.limit] for k, v in val.items()}
    info['class_counts_val_used'] = np.bincount(val['label'], minlength=NUM_CLASSES).tolist()
  info.update(num_train=len(train['label']), num_val=len(val['label']), limit=args.limit)
  m, la = machine_info(), os.getloadavg()
  print(f"machine: {m['cpu']}, {m['cpu_count']} cores, {m['vector_extensions']}; load average "
        f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}", flush=True)
  print(f"data: {info['reader']} from {folder}; train {info['num_train']} val {info['num_val']}; "
        f"fingerprints (before --limit) train {info['fingerprint_train']} "
        f"val {info['fingerprint_val']}; val class counts {info['class_counts_val']}", flush=True)
  return train, val, info


def machine_info() -> dict[str, Any]:
  """What ran the benchmark: CPU model, cores, Python and numpy versions, the command line."""
  from jaxcnn.cpu import flags as cpu_flags  # pylint: disable=g-import-not-at-top  (jax-free)
  cpu = cpu_flags.cpu_model()
  flags: list[str] = []
  try:
    with open('/proc/cpuinfo') as f:
      flags = next((l.split(':', 1)[1].split() for l in f if l.startswith('flags')), [])
  except OSError:
    pass
  vector = [f for f in flags if f in ('avx', 'avx2', 'fma') or f.startswith(('avx512', 'amx'))]
  return {'cpu': cpu, 'vector_extensions': ' '.join(vector), 'cpu_count': os.cpu_count(),
          'affinity': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
          'platform': platform.platform(), 'python': platform.python_version(),
          'numpy': np.__version__, 'command': ' '.join([sys.executable, *sys.argv]),
          'time': time.strftime('%Y-%m-%dT%H:%M:%S%z')}


def epoch_line(r: dict[str, Any]) -> str:
  """One line per epoch, the same layout for both peers."""
  return (f"epoch {r['epoch']:2d}  train {r['train_seconds']:7.2f}s "
          f"{r['train_images_per_sec']:7.0f} img/s  loss {r['train_loss']:.4f} "
          f"acc {r['train_accuracy']:.4f} | val {r['eval_seconds']:5.2f}s "
          f"loss {r['eval_loss']:.4f} acc {r['eval_accuracy']:.4f}")


def summarize(epochs: list[dict[str, Any]]) -> dict[str, Any]:
  """Median train seconds/epoch over epochs 2.. (epoch 1 holds the warm-up), final val metrics."""
  secs = [e['train_seconds'] for e in epochs]
  steady = secs[1:] if len(secs) > 1 else secs
  last = epochs[-1]
  return {'median_train_seconds_per_epoch_excl_first': float(np.median(steady)),
          'first_epoch_train_seconds': secs[0],
          'median_train_images_per_sec_excl_first': float(np.median(
            [e['train_images_per_sec'] for e in (epochs[1:] or epochs)])),
          'final_eval_accuracy': last['eval_accuracy'], 'final_eval_loss': last['eval_loss'],
          'best_eval_accuracy': max(e['eval_accuracy'] for e in epochs)}


def write_json(path: Path, record: dict[str, Any]) -> None:
  """Writes `record` to `path` (creating its folder), atomically."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + '.tmp')
  tmp.write_text(json.dumps(record, indent=2, default=str) + '\n')
  os.replace(tmp, path)
