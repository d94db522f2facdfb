"""The PyTorch peer of the GPU zoo comparison (experiments/peers/torch_zoo_train.py), on the CPU.

Skipped where torch is absent (it is a benchmark peer, `pip install '.[bench]'`)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from experiments.peers import torch_zoo_train  # noqa: E402


def test_augment_is_a_4px_crop_of_the_zero_padded_image_maybe_flipped():
  x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32) + 1
  gen = torch.Generator().manual_seed(0)
  for _ in range(5):
    out = torch_zoo_train.augment(x, gen)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):
      windows = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
      windows += [w.flip(2) for w in windows]
      assert sum(bool(torch.equal(out[i], w)) for w in windows) >= 1


def test_trains_a_zoo_twin_on_the_cpu(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / "tiny.npz"
  np.savez(path, x_train=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8),
           y_train=rng.integers(0, 10, 64))
  torch_zoo_train.main(["--npz", str(path), "--models", "lenet5", "--modes", "eager",
                        "--epochs", "2", "--batch-size", "32", "--json", str(tmp_path / "t.json")])
  import json
  out = json.loads((tmp_path / "t.json").read_text())["lenet5/eager"]
  assert [r["epoch"] for r in out["epochs"]] == [1, 2]
  assert all(r["steps"] == 2 and np.isfinite(r["train_loss"]) for r in out["epochs"])
  assert out["images_per_sec"] == out["epochs"][1]["images_per_sec"]  # epochs after the first
