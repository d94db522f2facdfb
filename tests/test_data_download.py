"""The TensorFlow-free 'download' source, offline: small archives built here in the official
formats (CIFAR-10 python pickles in a tar.gz; MNIST gzipped IDX), served from localhost."""

import functools
import gzip
import http.server
import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.data import _download

ROOT = pathlib.Path(__file__).resolve().parents[1]
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _cifar_batches(per_batch=3):
  rng = np.random.default_rng(0)
  return {name: (rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8),
                 rng.integers(0, 10, per_batch)) for name in CIFAR_BATCHES}


@pytest.fixture
def served(tmp_path, monkeypatch):
  """Builds the official files (small), serves them on localhost, points FILES at them."""
  site = tmp_path / "site"
  site.mkdir()
  batches = _cifar_batches()
  _download.write_cifar10_archive(site / "cifar-10-python.tar.gz", batches)
  rng = np.random.default_rng(1)
  mnist = {"train": (rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), rng.integers(0, 10, 7)),
           "test": (rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), rng.integers(0, 10, 4))}
  for split, prefix in (("train", "train"), ("test", "t10k")):
    _download.write_idx(site / f"{prefix}-images-idx3-ubyte.gz", mnist[split][0])
    _download.write_idx(site / f"{prefix}-labels-idx1-ubyte.gz", mnist[split][1])
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
  handler.log_message = lambda *a: None
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  base = f"http://127.0.0.1:{server.server_address[1]}/"

  def local(f):
    return _download.RemoteFile(f.name, _download.md5sum(site / f.name), (base + f.name,))

  files = {name: {split: tuple(local(f) for f in fs) for split, fs in splits.items()}
           for name, splits in _download.FILES.items()}
  monkeypatch.setattr(_download, "FILES", files)
  yield {"site": site, "cache": tmp_path / "cache", "cifar": batches, "mnist": mnist}
  server.shutdown()
  server.server_close()


def test_official_checksums():
  assert _download.FILES["cifar10"]["train"][0].md5 == "c58f30108f718f92721af3b95e74349a"
  mnist = {f.name: f.md5 for fs in _download.FILES["mnist"].values() for f in fs}
  assert mnist == {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                   "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                   "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                   "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}


def test_cifar10_decodes_to_what_the_archive_holds(served):
  train = data.load_arrays("cifar10", "train", source="download", cache_dir=served["cache"])
  images = np.concatenate([served["cifar"][f"data_batch_{i}"][0] for i in range(1, 6)])
  labels = np.concatenate([served["cifar"][f"data_batch_{i}"][1] for i in range(1, 6)])
  np.testing.assert_array_equal(train["image"], images)
  np.testing.assert_array_equal(train["label"], labels)
  assert train["image"].dtype == np.uint8 and train["label"].dtype == np.int32
  test = data.load_arrays("cifar10", "test[1:]", source="download", cache_dir=served["cache"])
  np.testing.assert_array_equal(test["image"], served["cifar"]["test_batch"][0][1:])
  # One pixel by hand: the archive stores R, G, B planes of 1024 bytes each, row-major.
  raw = served["cifar"]["data_batch_1"][0].transpose(0, 3, 1, 2).reshape(3, -1)
  assert train["image"][0, 1, 2, 1] == raw[0, 1024 + 1 * 32 + 2]
  cached = served["cache"] / "downloads" / "cifar-10-python.tar.gz"
  assert cached.is_file() and not list(cached.parent.glob("*.part"))


def test_mnist_decodes_to_what_the_files_hold_and_slices(served):
  val = data.load_arrays("mnist", "train[5:]", source="download", cache_dir=served["cache"])
  np.testing.assert_array_equal(val["image"][..., 0], served["mnist"]["train"][0][5:])
  np.testing.assert_array_equal(val["label"], served["mnist"]["train"][1][5:])
  assert val["image"].shape == (2, 28, 28, 1)
  loader = data.make_loader("mnist", "test", 2, train=False, source="download",
                            cache_dir=served["cache"])
  assert loader.num_examples == 4 and loader.steps_per_epoch == 2


def test_cached_files_are_used_offline(served, monkeypatch):
  data.load_arrays("mnist", "train", source="download", cache_dir=served["cache"])
  monkeypatch.setattr(_download, "_download", lambda *a: 1 / 0)  # any network use fails
  again = data.load_arrays("mnist", "train", source="download", cache_dir=served["cache"])
  np.testing.assert_array_equal(again["label"], served["mnist"]["train"][1])


def test_checksum_mismatch_is_one_line_and_caches_nothing(served, monkeypatch):
  f = _download.FILES["cifar10"]["train"][0]
  bad = _download.RemoteFile(f.name, "0" * 32, f.urls)
  monkeypatch.setitem(_download.FILES, "cifar10", {"train": (bad,), "test": (bad,)})
  with pytest.raises(ValueError, match=r"checksum mismatch: .* expected 0{32}") as err:
    data.load_arrays("cifar10", "train", source="download", cache_dir=served["cache"])
  assert "\n" not in str(err.value)
  assert not list((served["cache"] / "downloads").iterdir())  # no file, no .part


def test_damaged_cached_file_is_named(served):
  dest = served["cache"] / "downloads" / "train-labels-idx1-ubyte.gz"
  dest.parent.mkdir(parents=True)
  dest.write_bytes(b"garbage")
  with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz' has MD5 .*delete it"):
    data.load_arrays("mnist", "train", source="download", cache_dir=served["cache"])


@pytest.mark.parametrize("name,file", [("cifar10", "cifar-10-python.tar.gz"),
                                       ("mnist", "train-images-idx3-ubyte.gz")])
def test_truncated_archive_is_one_line(served, monkeypatch, name, file):
  # A truncated file whose checksum is (made) right: the decoder must still refuse it clearly.
  path = served["site"] / file
  raw = path.read_bytes()
  path.write_bytes(raw[:len(raw) // 2])
  files = {split: tuple(_download.RemoteFile(f.name, _download.md5sum(served["site"] / f.name),
                                             f.urls) for f in fs)
           for split, fs in _download.FILES[name].items()}
  monkeypatch.setitem(_download.FILES, name, files)
  with pytest.raises(ValueError, match="truncated or damaged") as err:
    data.load_arrays(name, "train", source="download", cache_dir=served["cache"])
  assert "\n" not in str(err.value) and file in str(err.value)


def test_idx_with_a_short_body_is_refused(tmp_path):
  path = tmp_path / "x-idx1-ubyte.gz"
  with gzip.open(path, "wb") as f:
    f.write(bytes((0, 0, 8, 1)) + (10).to_bytes(4, "big") + bytes(7))
  with pytest.raises(ValueError, match=r"says \(10,\) = 10 bytes but it holds 7"):
    _download._read_idx(path, 1)


def test_offline_is_one_line_within_seconds(tmp_path, monkeypatch):
  urls = ("http://mirror-one.invalid/cifar-10-python.tar.gz",
          "http://127.0.0.1:9/cifar-10-python.tar.gz")  # no resolver / nothing listening
  f = _download.RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", urls)
  monkeypatch.setitem(_download.FILES, "cifar10", {"train": (f,), "test": (f,)})
  t0 = time.time()
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load_arrays("cifar10", "train", source="download", cache_dir=tmp_path)
  assert time.time() - t0 < 30
  msg = str(err.value)
  assert "\n" not in msg and "cannot download 'cifar-10-python.tar.gz'" in msg
  assert "mirror-one.invalid" in msg and "127.0.0.1:9" in msg  # both mirrors tried, once each
  assert str(tmp_path / "downloads" / "cifar-10-python.tar.gz") in msg  # where to put it
  assert not (tmp_path / "downloads").exists() or not list((tmp_path / "downloads").iterdir())


_TF_FREE_SCRIPT = """
import sys
sys.modules['tensorflow'] = None  # any import of TensorFlow now fails
sys.modules['tensorflow_datasets'] = None
import pathlib, shutil
from jaxcnn import data, train, configs
from jaxcnn.configs import cifar10_tutorial, mnist_mlp
from jaxcnn.data import _download
site, cache = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
(cache / 'downloads').mkdir(parents=True)
files = {}
for split, fs in _download.FILES['mnist'].items():  # the files copied in by hand, as offline
  shutil.copy(site / fs[0].name, cache / 'downloads')
  shutil.copy(site / fs[1].name, cache / 'downloads')
  files[split] = tuple(_download.RemoteFile(f.name, _download.md5sum(site / f.name), ())
                       for f in fs)
_download.FILES['mnist'] = files
assert data.resolve_source('auto') == 'download'
loader = data.make_loader('mnist', 'train[:6]', 3, train=True, cache_dir=cache)
batch = next(iter(loader.epoch(0)))
assert batch['image'].shape == (3, 28, 28, 1), batch['image'].shape
assert cifar10_tutorial.get_config().data.source == 'auto'
print('TF-FREE OK')
"""


def test_without_tensorflow_auto_uses_the_official_files(served, tmp_path):
  out = subprocess.run([sys.executable, "-c", _TF_FREE_SCRIPT, str(served["site"]),
                        str(tmp_path / "cache2")], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 0 and "TF-FREE OK" in out.stdout, out.stderr[-2000:]
