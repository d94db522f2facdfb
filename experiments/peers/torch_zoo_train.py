"""The zoo's PyTorch twins trained on CIFAR-10 arrays held on the GPU: images/s and step time.

The peer of ``experiments/gpu/gpu_zoo_vs_torch.sh``: the same nets as ``jaxcnn.models``
(``torch_zoo.get(name)``, parameter counts equal), the same recipe as jaxcnn's configs (SGD with
momentum 0.9 and the config's weight decay, batch ``--batch-size``, 4-px zero-pad crop + flip
drawn on the device, per-channel normalisation), the data already on the device as uint8, as
PyTorch users make it fast: ``channels_last`` and autocast to bfloat16, eager and
``torch.compile``. Each epoch is timed with the device synchronised at both ends; the first
epoch (warm-up, compilation) is reported apart and the summary uses the later ones.

    python -m experiments.peers.torch_zoo_train --npz .data/cifar10_speedrun.npz \
        --models resnet20 preact_resnet18 --modes eager compile --epochs 3 --batch-size 512

``--json PATH`` writes every epoch's record. On a machine without CUDA it runs on the CPU in
float32 (autocast off), which is how the tests check it with a few images.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from experiments.peers import torch_zoo

MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 per-channel, as jaxcnn's normalize='dataset'
STD = (0.2470, 0.2435, 0.2616)
WEIGHT_DECAY = {"resnet20": 1e-4, "resnet56": 1e-4, "preact_resnet18": 5e-4, "vgg16": 5e-4}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
  """Random crop with 4-px zero padding and a random horizontal flip, per image, on x's device."""
  n = x.shape[0]
  padded = F.pad(x, (4, 4, 4, 4))
  dy = torch.randint(0, 9, (n,), device=x.device, generator=gen)
  dx = torch.randint(0, 9, (n,), device=x.device, generator=gen)
  rows = (dy[:, None] + torch.arange(32, device=x.device)[None])  # [n, 32]
  cols = (dx[:, None] + torch.arange(32, device=x.device)[None])
  idx_n = torch.arange(n, device=x.device)[:, None, None]
  out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # [n, 32, 32, C]
  out = out.permute(0, 3, 1, 2)
  flip = torch.rand(n, device=x.device, generator=gen) < 0.5
  return torch.where(flip[:, None, None, None], out.flip(3), out)


def train(name: str, mode: str, x_u8: torch.Tensor, y: torch.Tensor, *, epochs: int,
          batch_size: int, seed: int = 0, steps_per_epoch: int | None = None) -> list[dict]:
  """Trains ``name`` for ``epochs``; returns one record per epoch (seconds, images/s, loss)."""
  dev = x_u8.device
  cuda = dev.type == "cuda"
  torch.manual_seed(seed)
  gen = torch.Generator(device=dev).manual_seed(seed)
  model = torch_zoo.get(name).to(dev).to(memory_format=torch.channels_last).train()
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                        weight_decay=WEIGHT_DECAY.get(name, 5e-4))
  mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
  std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)

  fwd = model
  if mode == "compile":
    fwd = torch.compile(model)
  elif mode != "eager":
    raise ValueError(f"unknown mode {mode!r}: 'eager' or 'compile'")

  def step_any(xb_u8, yb):
    xb = (xb_u8.permute(0, 3, 1, 2).float() / 255 - mean) / std
    xb = augment(xb, gen).contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cuda):
      loss = F.cross_entropy(fwd(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()

  n = x_u8.shape[0]
  steps = n // batch_size if steps_per_epoch is None else steps_per_epoch
  records = []
  for epoch in range(epochs):
    perm = torch.randperm(n, device=dev, generator=gen)
    if cuda:
      torch.cuda.synchronize()
    t0 = time.perf_counter()
    losses = []
    for i in range(steps):
      idx = perm[i * batch_size:(i + 1) * batch_size]
      losses.append(step_any(x_u8[idx], y[idx]))
    loss = float(torch.stack(losses).mean())  # waits for the device
    if cuda:
      torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    records.append({"model": name, "mode": mode, "epoch": epoch + 1, "seconds": seconds,
                    "steps": steps, "images_per_sec": steps * batch_size / seconds,
                    "step_ms": 1000 * seconds / steps, "train_loss": loss})
    print(f"torch {name} {mode}: epoch {epoch + 1} {seconds:.2f} s, "
          f"{steps * batch_size / seconds:,.0f} img/s, {1000 * seconds / steps:.2f} ms/step, "
          f"loss {loss:.3f}", flush=True)
  return records


def summarize(records: list[dict]) -> dict:
  """Median images/s and step time over the epochs after the first (all when only one)."""
  later = records[1:] or records
  return {"images_per_sec": statistics.median(r["images_per_sec"] for r in later),
          "step_ms": statistics.median(r["step_ms"] for r in later),
          "first_epoch_seconds": records[0]["seconds"]}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--npz", required=True, help="x_train/y_train uint8 NHWC arrays "
                 "(experiments/gpu/gpu_export_cifar.py)")
  p.add_argument("--models", nargs="+", default=["resnet20", "preact_resnet18"])
  p.add_argument("--modes", nargs="+", default=["eager", "compile"])
  p.add_argument("--epochs", type=int, default=3)
  p.add_argument("--batch-size", type=int, default=512)
  p.add_argument("--limit", type=int, default=0, help="use only the first N images (tests)")
  p.add_argument("--json", default=None)
  a = p.parse_args(argv)
  dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  with np.load(a.npz) as z:
    x, y = z["x_train"], z["y_train"]
  if a.limit:
    x, y = x[:a.limit], y[:a.limit]
  x_u8 = torch.from_numpy(np.ascontiguousarray(x)).to(dev)
  y_t = torch.from_numpy(y.astype(np.int64)).to(dev)
  torch.backends.cudnn.benchmark = True
  print(f"torch {torch.__version__} on {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}; "
        f"{len(y)} images, batch {a.batch_size}, {a.epochs} epochs", flush=True)
  out = {}
  for name in a.models:
    for mode in a.modes:
      recs = train(name, mode, x_u8, y_t, epochs=a.epochs, batch_size=a.batch_size)
      out[f"{name}/{mode}"] = {"epochs": recs, **summarize(recs)}
  if a.json:
    with open(a.json, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
