"""The Keras CIFAR-10 tutorial CNN in PyTorch (CPU, eager), a peer for BENCHMARKS.md.

Same arrays, split, model, initialisation and optimiser as `keras_cifar10_tutorial.py` (see
`experiments/peers/__init__.py` for the recipe): inputs x / 255 in [0, 1], glorot (xavier) uniform
weights and zero biases set explicitly (PyTorch's own defaults are kaiming-uniform-like), Adam
lr 1e-3, betas (0.9, 0.999), eps 1e-7 (Keras' default, not PyTorch's 1e-8), batch 32 with the
last partial batch kept, reshuffled every epoch.

One difference stays: Keras adds eps to sqrt(v) before bias correction ("epsilon hat"), PyTorch
adds it to sqrt(v_hat); at eps = 1e-7 this changes no digit that matters.

Run (from the repo root; needs the `bench` extra, torch==2.13.0):
  python -m experiments.peers.torch_cifar10_tutorial --out runs/peers/torch_cifar10.json
Quick check:
  python -m experiments.peers.torch_cifar10_tutorial --epochs 1 --limit 2000 --out /tmp/t.json
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from experiments import peers


def tutorial_cnn(num_classes: int = 10) -> nn.Sequential:
  """The tutorial CNN on NCHW `[B, 3, 32, 32]` float32 -> logits `[B, num_classes]`.

  Example:
    >>> sum(p.numel() for p in tutorial_cnn().parameters())
    122570
  """
  model = nn.Sequential(
    nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),      # 32 -> 30 -> 15
    nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),     # 15 -> 13 -> 6
    nn.Conv2d(64, 64, 3), nn.ReLU(),                      # 6 -> 4
    nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, num_classes))
  for m in model.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
      # Keras' glorot_uniform: fan_in = k*k*C_in, fan_out = k*k*C_out, as xavier_uniform_ computes.
      nn.init.xavier_uniform_(m.weight)
      nn.init.zeros_(m.bias)
  return model


def to_nchw(images_nhwc: torch.Tensor, channels_last: bool) -> torch.Tensor:
  """`[B, H, W, C] float` -> `[B, C, H, W]`; a permuted NHWC tensor is already channels_last."""
  x = images_nhwc.permute(0, 3, 1, 2)
  return x if channels_last else x.contiguous()


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
             channels_last: bool) -> tuple[float, float]:
  """Mean loss and accuracy over `images: [N, H, W, C] float32`, `labels: [N] int64`."""
  model.eval()
  loss_sum = torch.zeros((), dtype=torch.float64)
  correct = torch.zeros((), dtype=torch.int64)
  with torch.inference_mode():
    for i in range(0, len(labels), batch_size):
      x, y = to_nchw(images[i:i + batch_size], channels_last), labels[i:i + batch_size]
      logits = model(x)
      loss_sum += nn.functional.cross_entropy(logits, y, reduction='sum').double()
      correct += (logits.argmax(1) == y).sum()
  return loss_sum.item() / len(labels), correct.item() / len(labels)


def main(argv: list[str] | None = None) -> dict:
  parser = peers.add_common_flags(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
  parser.add_argument('--memory-format', choices=('channels_last', 'contiguous'),
                      default='contiguous',
                      help="activation layout: PyTorch's default NCHW ('contiguous'), or NHWC "
                           "('channels_last', what oneDNN prefers on CPU; a tuned extra row)")
  args = parser.parse_args(argv)

  if args.threads is not None:  # an extra row only: by default PyTorch keeps its own threads
    torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  channels_last = args.memory_format == 'channels_last'

  train, val, data_info = peers.load_train_val(args)

  # The whole split as float32 NHWC in [0, 1], scaled once, like the tutorial's `train_images / 255`.
  x_train = torch.from_numpy(train['image']).float().div_(255.0)
  y_train = torch.from_numpy(train['label']).long()
  x_val = torch.from_numpy(val['image']).float().div_(255.0)
  y_val = torch.from_numpy(val['label']).long()
  n = len(y_train)

  model = tutorial_cnn()
  if channels_last:
    model = model.to(memory_format=torch.channels_last)
  num_params = sum(p.numel() for p in model.parameters())
  if num_params != peers.RECIPE['num_params']:
    raise ValueError(f'model has {num_params} parameters, expected {peers.RECIPE["num_params"]}')
  r = peers.RECIPE
  opt = torch.optim.Adam(model.parameters(), lr=r['learning_rate'], betas=(r['beta1'], r['beta2']),
                         eps=r['eps'])
  shuffle_gen = torch.Generator().manual_seed(args.seed)

  epochs, first_step_seconds = [], None
  for epoch in range(1, args.epochs + 1):
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    t0 = time.perf_counter()
    perm = torch.randperm(n, generator=shuffle_gen)
    for step, i in enumerate(range(0, n, args.batch_size)):
      idx = perm[i:i + args.batch_size]
      x, y = to_nchw(x_train[idx], channels_last), y_train[idx]
      logits = model(x)
      loss = nn.functional.cross_entropy(logits, y)
      opt.zero_grad(set_to_none=True)
      loss.backward()
      opt.step()
      with torch.no_grad():
        loss_sum += loss.detach().double() * len(idx)
        correct += (logits.argmax(1) == y).sum()
      if first_step_seconds is None:
        # Eager PyTorch compiles nothing; this is the warm-up (oneDNN primitive creation, allocs).
        first_step_seconds = time.perf_counter() - t0
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    eval_loss, eval_acc = evaluate(model, x_val, y_val, r['eval_batch_size'], channels_last)
    rec = {'epoch': epoch, 'steps': step + 1, 'train_seconds': train_seconds,
           'train_images_per_sec': n / train_seconds, 'train_loss': loss_sum.item() / n,
           'train_accuracy': correct.item() / n, 'eval_seconds': time.perf_counter() - t1,
           'eval_loss': eval_loss, 'eval_accuracy': eval_acc}
    epochs.append(rec)
    print(peers.epoch_line(rec), flush=True)

  print(f'first step (warm-up, no compilation in eager PyTorch): {first_step_seconds:.3f}s')
  record = {
    'framework': 'pytorch', 'torch': torch.__version__, 'mode': 'eager CPU',
    'threads': torch.get_num_threads(), 'interop_threads': torch.get_num_interop_threads(),
    'threads_set_by_flag': args.threads is not None, 'memory_format': args.memory_format,
    'mkldnn': torch.backends.mkldnn.is_available(), 'recipe': r,
    'normalisation': 'x / 255, no mean/std', 'init': 'xavier_uniform_ weights, zero biases',
    'adam_eps': r['eps'], 'num_params': num_params, 'seed': args.seed, 'epochs_requested': args.epochs,
    'first_step_seconds': first_step_seconds, 'epochs': epochs, 'summary': peers.summarize(epochs),
    'data': data_info, 'machine': peers.machine_info(),
  }
  peers.write_json(args.out, record)
  print(f'wrote {args.out}')
  return record


if __name__ == '__main__':
  main()
