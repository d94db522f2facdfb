"""CIFAR-10 and MNIST without TensorFlow: the official files, downloaded, verified, decoded by numpy.

The source ``'download'`` of :func:`jaxcnn.data.load_arrays` (used automatically where TensorFlow
is absent, e.g. on a Colab TPU runtime):

* CIFAR-10: the official python archive ``cifar-10-python.tar.gz`` (MD5
  ``c58f30108f718f92721af3b95e74349a``): pickled batches ``data_batch_1..5`` (train, 50,000) and
  ``test_batch`` (10,000), each ``{b'data': uint8 [10000, 3072] (R, G, B planes of 32x32),
  b'labels': [10000 ints]}``.
* MNIST: the four official IDX files (gzip), with the MD5s every reference uses (torchvision,
  tfds): ``train-{images-idx3,labels-idx1}-ubyte.gz`` and ``t10k-*`` (test).

Each file is tried once per mirror (no retry loop: offline, the error comes in well under a
second here, and in at most ``timeout`` seconds per mirror where a network hangs), written to a
temporary file beside its cache path, checked against its MD5 and only then renamed into place,
so a cache never holds half a file. A file already in the cache is re-checked before use; one put
there by hand (``cache_dir/downloads/<file name>``) is used as is, which is how an offline machine
gets the data. The order of the examples is the archive's (tfds stores another order, so a split
such as ``train[45000:]`` selects other images than tfds' does).

Example::

    from jaxcnn.data import load_arrays
    train = load_arrays('cifar10', 'train[:45000]', source='download')
    train['image'].shape  # (45000, 32, 32, 3) uint8
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pathlib
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request

import numpy as np

from jaxcnn._errors import brief
from jaxcnn.data._info import DatasetNotFoundError


@dataclasses.dataclass(frozen=True)
class RemoteFile:
  """One official file: its name, MD5 and the URLs tried in order."""

  name: str
  md5: str
  urls: tuple[str, ...]


_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
# The original yann.lecun.com host now refuses most downloads; these two mirrors serve the same
# bytes (the checksums are the originals') and are the ones torchvision and tfds use.
_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/")


def _mnist(name: str, md5: str) -> RemoteFile:
  return RemoteFile(name, md5, tuple(u + name for u in _MNIST_URLS))


# dataset -> split -> the files that split is decoded from (module-level so tests can point it at
# small archives they build and serve).
FILES: dict[str, dict[str, tuple[RemoteFile, ...]]] = {
    "cifar10": {
        split: (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                           (_CIFAR_URL + "cifar-10-python.tar.gz",)),)
        for split in ("train", "test")
    },
    "mnist": {
        "train": (_mnist("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                  _mnist("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
        "test": (_mnist("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 _mnist("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
    },
}

_CHUNK = 1 << 20


def md5sum(path: str | os.PathLike) -> str:
  """The hex MD5 of a file, read in 1 MB chunks."""
  h = hashlib.md5()  # the checksums published with these datasets are MD5s
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(_CHUNK), b""):
      h.update(block)
  return h.hexdigest()


def _offline_hint(f: RemoteFile, dest: pathlib.Path) -> str:
  return (f"no network? copy {f.name!r} (MD5 {f.md5}) to {str(dest)!r} by hand, or point at a "
          "local copy with `image_folder=` (`--config.data.image_folder=...`)")


def fetch(f: RemoteFile, cache_dir: str | os.PathLike, *, timeout: float = 20.0) -> pathlib.Path:
  """``cache_dir/downloads/<f.name>``, downloaded first unless it is already there; MD5-checked.

  Raises:
    DatasetNotFoundError: every URL failed (offline, for instance); one line naming the file,
      what was tried and where to put the file by hand.
    ValueError: the file in the cache, or the one just downloaded, has the wrong MD5 (named).
  """
  dest = pathlib.Path(cache_dir).expanduser() / "downloads" / f.name
  if dest.is_file():
    got = md5sum(dest)
    if got != f.md5:
      raise ValueError(
          f"checksum mismatch: {str(dest)!r} has MD5 {got}, expected {f.md5} (a damaged or "
          "different file); delete it to download it again")
    return dest
  errors = []
  for url in f.urls:
    try:
      tmp = _download(url, dest, timeout)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
      errors.append(f"{url}: {brief(e, 120)}")
      continue
    got = md5sum(tmp)
    if got != f.md5:
      os.unlink(tmp)
      raise ValueError(
          f"checksum mismatch: {url} gave a file with MD5 {got}, expected {f.md5} for {f.name!r} "
          "(a changed mirror or a broken transfer); nothing was cached; try again later or "
          f"{_offline_hint(f, dest)}")
    os.replace(tmp, dest)  # the cache holds the whole verified file or nothing
    return dest
  raise DatasetNotFoundError(
      f"cannot download {f.name!r}: {'; '.join(errors)}. {_offline_hint(f, dest)}")


def _download(url: str, dest: pathlib.Path, timeout: float) -> str:
  """Streams ``url`` to a temporary file beside ``dest``; returns its path (caller renames it)."""
  with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URLs)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
      with os.fdopen(fd, "wb") as out:
        for block in iter(lambda: response.read(_CHUNK), b""):
          out.write(block)
    except BaseException:
      os.unlink(tmp)
      raise
  return tmp


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

def _damaged(path: pathlib.Path, e: BaseException) -> ValueError:
  return ValueError(f"cannot read {str(path)!r} ({brief(e, 120)}): a truncated or damaged "
                    "archive; delete it to download it again")


def decode_cifar10(path: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
  """``{'image': uint8 [N, 32, 32, 3], 'label': int32 [N]}`` of ``'train'`` (the five data
  batches, in order) or ``'test'`` from the official python archive.

  The batches are Python pickles; they are only read from an archive whose MD5 matched the
  official one (:func:`fetch`).
  """
  path = pathlib.Path(path)
  names = ([f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"])
  images, labels = [], []
  try:
    with tarfile.open(path, "r:gz") as tar:
      members = {pathlib.PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile()}
      for name in names:
        if name not in members:
          raise ValueError(f"{str(path)!r} has no member {name!r}; is it cifar-10-python.tar.gz?")
        batch = pickle.load(tar.extractfile(members[name]), encoding="bytes")
        data = np.asarray(batch[b"data"], np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
          raise ValueError(f"{name!r} in {str(path)!r} holds data of shape {data.shape}, "
                           "expected [N, 3072]")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], np.int32))
  except ValueError:
    raise
  except (tarfile.TarError, EOFError, OSError, pickle.UnpicklingError, KeyError) as e:
    raise _damaged(path, e) from None
  return {"image": np.ascontiguousarray(np.concatenate(images)),
          "label": np.concatenate(labels)}


def _read_idx(path: pathlib.Path, ndim: int) -> np.ndarray:
  """An IDX file of unsigned bytes (magic ``0x0000 08 ndim``) as a uint8 array."""
  try:
    with gzip.open(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise _damaged(path, e) from None
  if len(raw) < 4 + 4 * ndim or raw[:4] != bytes((0, 0, 8, ndim)):
    raise ValueError(f"{str(path)!r} is not an IDX file of {ndim}-D unsigned bytes "
                     f"(header {raw[:4].hex()})")
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  body = raw[4 + 4 * ndim:]
  if len(body) != int(np.prod(shape)):
    raise ValueError(f"cannot read {str(path)!r}: the header says {shape} = {int(np.prod(shape))} "
                     f"bytes but it holds {len(body)} (truncated or damaged); delete it to "
                     "download it again")
  return np.frombuffer(body, np.uint8).reshape(shape)


def decode_mnist(images_path: str | os.PathLike, labels_path: str | os.PathLike
                 ) -> dict[str, np.ndarray]:
  """``{'image': uint8 [N, 28, 28, 1], 'label': int32 [N]}`` from the two IDX files."""
  images = _read_idx(pathlib.Path(images_path), 3)
  labels = _read_idx(pathlib.Path(labels_path), 1)
  if images.shape[0] != labels.shape[0]:
    raise ValueError(f"{str(images_path)!r} holds {images.shape[0]} images but "
                     f"{str(labels_path)!r} {labels.shape[0]} labels")
  return {"image": images[..., None].copy(), "label": labels.astype(np.int32)}


def download_arrays(name: str, split: str, cache_dir: str | os.PathLike, *,
                    timeout: float = 20.0) -> dict[str, np.ndarray]:
  """The whole base split ``split`` (``'train'`` or ``'test'``) of ``name``, fetched and decoded.

  Raises:
    ValueError: a split other than train/test, a checksum mismatch or a damaged archive.
    DatasetNotFoundError: the download failed (offline); the message says what to do.
  """
  splits = FILES[name]
  if split not in splits:
    raise ValueError(f"the official {name!r} files hold the splits {sorted(splits)}, not "
                     f"{split!r}")
  paths = [fetch(f, cache_dir, timeout=timeout) for f in splits[split]]
  if name == "cifar10":
    return decode_cifar10(paths[0], split)
  return decode_mnist(*paths)


def write_cifar10_archive(path: str | os.PathLike, batches: dict[str, tuple[np.ndarray, np.ndarray]]
                          ) -> None:
  """Writes ``batches`` (``{'data_batch_1': (uint8 [N, 32, 32, 3], labels [N]), ...}``) as a
  ``cifar-10-python.tar.gz`` in the official layout: for tests and for re-packing data."""
  with tarfile.open(path, "w:gz") as tar:
    for name, (images, labels) in batches.items():
      data = np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
      blob = pickle.dumps({b"batch_label": name.encode(), b"labels": [int(x) for x in labels],
                           b"data": data, b"filenames": [b"x.png"] * len(labels)}, protocol=2)
      info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
      info.size = len(blob)
      tar.addfile(info, io.BytesIO(blob))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
  """Writes a uint8 array as a gzipped IDX file (the MNIST format): for tests and re-packing."""
  array = np.asarray(array, np.uint8)
  header = bytes((0, 0, 8, array.ndim)) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.tobytes())
