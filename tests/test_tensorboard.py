"""TensorBoard scalars: read back from the event file with an independent TFRecord reader."""

import struct

import pytest

pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2  # noqa: E402

from jaxcnn.train import tensorboard  # noqa: E402


def _read_scalars(logdir):
  """``{tag: [(step, value)]}`` from every event file: TFRecord framing parsed by hand."""
  out = {}
  for path in sorted(logdir.glob("events.out.tfevents*")):
    raw = path.read_bytes()
    i = 0
    while i < len(raw):
      (length,) = struct.unpack("<Q", raw[i:i + 8])
      data = raw[i + 12:i + 12 + length]
      i += 12 + length + 4
      event = event_pb2.Event.FromString(data)
      for v in event.summary.value:
        out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return out


def test_records_become_grouped_scalars_at_their_step(tmp_path):
  w = tensorboard.TensorBoardWriter(tmp_path)
  w.write({"epoch": 1, "step": 10, "train_loss": 2.0, "eval_accuracy": 0.25,
           "epoch_seconds": 3.5, "compile_seconds": None, "note": "x"})
  w.write({"epoch": 2, "step": 20, "train_loss": 1.5, "eval_accuracy": 0.5, "epoch_seconds": 3.0})
  w.close()
  got = _read_scalars(tmp_path)
  assert got == {"train/loss": [(10, 2.0), (20, 1.5)], "eval/accuracy": [(10, 0.25), (20, 0.5)],
                 "run/epoch_seconds": [(10, 3.5), (20, 3.0)]}


def test_a_resumed_run_replaces_the_events_with_its_history(tmp_path):
  w = tensorboard.TensorBoardWriter(tmp_path)
  for epoch in (1, 2, 3):  # epoch 3 ran after the last checkpoint and is lost with kill -9
    w.write({"epoch": epoch, "step": 10 * epoch, "train_loss": float(epoch)})
  w.close()
  history = [{"epoch": e, "step": 10 * e, "train_loss": float(e)} for e in (1, 2)]
  w = tensorboard.TensorBoardWriter(tmp_path, history)
  w.write({"epoch": 3, "step": 30, "train_loss": 3.5})
  w.close()
  assert _read_scalars(tmp_path) == {"train/loss": [(10, 1.0), (20, 2.0), (30, 3.5)]}


def test_tags():
  assert tensorboard.tag("test_top5") == "test/top5"
  assert tensorboard.tag("train_images_per_sec") == "train/images_per_sec"
  assert tensorboard.tag("lr") == "run/lr"


def test_the_loop_writes_one_point_per_epoch_when_asked(tmp_path, monkeypatch):
  from tests.test_train_loop import _eval_loader, _tiny_config, _train_loader, _use_loaders
  from jaxcnn.train import train_and_evaluate
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  result = train_and_evaluate(_tiny_config(num_epochs=2, tensorboard=True), tmp_path)
  got = _read_scalars(tmp_path / "tensorboard")
  steps = [r["step"] for r in result.history]
  assert [s for s, _ in got["train/loss"]] == steps == [3, 6]
  assert [v for _, v in got["eval/accuracy"]] == pytest.approx(
      [r["eval_accuracy"] for r in result.history])
  assert not (tmp_path / "runs").exists()


def test_the_loop_writes_no_events_by_default(tmp_path, monkeypatch):
  from tests.test_train_loop import _eval_loader, _tiny_config, _train_loader, _use_loaders
  from jaxcnn.train import train_and_evaluate
  _use_loaders(monkeypatch, _train_loader(), _eval_loader())
  train_and_evaluate(_tiny_config(num_epochs=1), tmp_path)
  assert not (tmp_path / "tensorboard").exists()
