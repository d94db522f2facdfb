"""jaxcnn.data: splits, sources (folder, tarball, mocked tfds), loaders, errors."""

import os
import sys
import tarfile
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxcnn import data
from jaxcnn.data import _sources

CIFAR_CLASSES = data.DATASETS["cifar10"].class_names


def _write_folder(root, classes, per_class, size=8, fmt="png"):
  """root/train/<class>/<i>.<fmt>; pixel value encodes (label, index) so order is checkable."""
  for label, cls in enumerate(classes):
    d = root / "train" / cls
    d.mkdir(parents=True)
    for i in range(per_class):
      img = np.full((size, size, 3), 10 * label + i, np.uint8)
      Image.fromarray(img).save(d / f"{i:04d}.{fmt}")
  return root


@pytest.fixture
def folder(tmp_path):
  return _write_folder(tmp_path / "root", ["cat", "ant", "bee"], 4)


def _tar(src, dest):
  with tarfile.open(dest, "w:gz") as tar:
    tar.add(src / "train", arcname="train")
  return dest


# ------------------------------------------------------------------------------- splits / info

@pytest.mark.parametrize("split,n,expected", [
    ("train", 50000, (0, 50000)),
    ("train[:45000]", 50000, (0, 45000)),
    ("train[45000:]", 50000, (45000, 50000)),
    ("train[-5000:]", 50000, (45000, 50000)),
    ("train[:90%]", 50000, (0, 45000)),
    ("train[90%:]", 50000, (45000, 50000)),
    ("train[10%:20%]", 7, None),  # rounds to [1:1]
])
def test_resolve_split(split, n, expected):
  if expected is None:
    with pytest.raises(ValueError, match="selects no examples"):
      data.resolve_split(split, n)
  else:
    assert data.resolve_split(split, n) == expected


def test_percent_rounding_matches_tfds():
  import tensorflow_datasets as tfds
  n = 1037
  for split in ("train[:33%]", "train[33%:67%]", "train[-15%:]"):
    ri = tfds.core.ReadInstruction.from_spec(split)
    absolute = ri.to_absolute({"train": types.SimpleNamespace(num_examples=n)})[0]
    assert data.resolve_split(split, n) == (absolute.from_ or 0,
                                            n if absolute.to is None else absolute.to)


@pytest.mark.parametrize("bad", ["train[:abc]", "train[", "train[1:2:3]", "tr ain", "",
                                 "train[:150%]"])
def test_malformed_split_names_it(bad):
  with pytest.raises(ValueError, match=repr(bad).replace("[", r"\[")):
    data.resolve_split(bad, 100)


def test_split_beyond_the_data():
  with pytest.raises(ValueError, match="60000"):
    data.resolve_split("train[:60000]", 50000)


@pytest.mark.parametrize("n,k", [(10, 3), (50000, 8), (7, 7), (101, 4)])
def test_process_shards_are_disjoint_and_cover(n, k):
  ranges = [data.shard_range(3, 3 + n, i, k) for i in range(k)]
  covered = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
  np.testing.assert_array_equal(covered, np.arange(3, 3 + n))
  sizes = [hi - lo for lo, hi in ranges]
  assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("n,k", [(10, 3), (50000, 8), (7, 7), (101, 4)])
def test_equal_process_shards_for_multi_host(n, k):
  # What load_arrays uses: equal sizes (same steps on every process), disjoint, in order, and
  # only the last n % k examples left out.
  ranges = [data.shard_range(3, 3 + n, i, k, drop_remainder=True) for i in range(k)]
  assert {hi - lo for lo, hi in ranges} == {n // k}
  covered = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
  np.testing.assert_array_equal(covered, np.arange(3, 3 + n - n % k))


def test_info_and_unknown_name():
  info = data.get_info("cifar10")
  assert info.image_shape == (32, 32, 3) and info.class_names[0] == "airplane"
  assert data.DATASETS["mnist"].mean == (0.1307,) and data.DATASETS["mnist"].std == (0.3081,)
  with pytest.raises(ValueError, match="'cifar11'"):
    data.get_info("cifar11")
  with pytest.raises(ValueError, match="'imagenet'"):
    data.load_arrays("imagenet", "train", image_folder="/nonexistent")


def test_compute_mean_std_matches_numpy():
  x = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3)).astype(np.uint8)
  mean, std = data.compute_mean_std(x, chunk=2)
  f = x.astype(np.float64) / 255
  np.testing.assert_allclose(mean, f.mean((0, 1, 2)), rtol=1e-12)
  np.testing.assert_allclose(std, f.std((0, 1, 2)), rtol=1e-9)


# ------------------------------------------------------------------------------ folder source

def test_folder_listing_order_and_labels(folder):
  listing = data.list_image_folder(folder)
  assert listing.class_names == ("ant", "bee", "cat")  # sorted folder names -> labels
  np.testing.assert_array_equal(listing.labels, [0, 1, 2] * 4)  # classes interleaved
  arrays = data.load_arrays(None, "train", image_folder=folder, cache=False)
  assert arrays["image"].dtype == np.uint8 and arrays["image"].shape == (12, 8, 8, 3)
  assert arrays["label"].dtype == np.int32
  # pixel = 10 * (label in write order: cat=0, ant=1, bee=2) + index within class
  write_label = {0: 1, 1: 2, 2: 0}
  expected = [10 * write_label[l] + i // 3 for i, l in enumerate(arrays["label"])]
  np.testing.assert_array_equal(arrays["image"][:, 0, 0, 0], expected)


def test_unbalanced_classes_spread_evenly(tmp_path):
  root = _write_folder(tmp_path / "r", ["a", "b"], 2)
  for i in range(2, 6):  # class b: 6 images, class a: 2
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "b" / f"{i:04d}.png")
  labels = data.list_image_folder(root).labels
  assert labels.tolist() == [1, 0, 1, 1, 1, 0, 1, 1]  # 'a' at 1/4 and 3/4 of the split


def test_tarball_equals_folder_and_slices(folder, tmp_path):
  tgz = _tar(folder, tmp_path / "copy.tar.gz")
  a = data.load_arrays(None, "train[2:10]", image_folder=folder, cache=False)
  b = data.load_arrays(None, "train[2:10]", image_folder=tgz, cache=False)
  c = data.load_arrays(None, "train", image_folder=tgz, cache_dir=tmp_path / "cache")
  for k in ("image", "label"):
    np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(a[k], c[k][2:10])


def test_cache_is_used_and_invalidated(folder, tmp_path, monkeypatch):
  cache = tmp_path / "cache"
  first = data.load_arrays(None, "train", image_folder=folder, cache_dir=cache)
  assert len(list(cache.glob("*.npz"))) == 1
  monkeypatch.setattr(_sources, "decode_images", lambda *a, **k: 1 / 0)
  again = data.load_arrays(None, "train[:6]", image_folder=folder, cache_dir=cache)
  np.testing.assert_array_equal(again["image"], first["image"][:6])
  monkeypatch.undo()
  new = folder / "train" / "ant" / "0099.png"
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(new)
  os.utime(new.parent, ns=(time.time_ns() + 10**9,) * 2)  # be sure the mtime moved
  assert data.load_arrays(None, "train", image_folder=folder, cache_dir=cache)["label"].shape == (13,)


def test_folder_process_shards(folder):
  shards = [data.load_arrays(None, "train[1:]", image_folder=folder, cache=False,
                             process_index=i, process_count=3) for i in range(3)]
  whole = data.load_arrays(None, "train[1:]", image_folder=folder, cache=False)
  # Equal shards (every process runs the same steps), in order; only the last n % 3 are left out.
  n = len(whole["label"])
  assert [len(s["label"]) for s in shards] == [n // 3] * 3
  np.testing.assert_array_equal(np.concatenate([s["image"] for s in shards]),
                                whole["image"][:n - n % 3])


def test_missing_folder(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(data.DatasetNotFoundError, match="nowhere"):
    data.load_arrays("cifar10", "train", image_folder=missing)
  with pytest.raises(data.DatasetNotFoundError, match="'validation'"):
    _write_folder(tmp_path / "r", ["a"], 1)
    data.load_arrays(None, "validation", image_folder=tmp_path / "r")


def test_missing_data_messages_are_one_short_line(folder, tmp_path):
  # Each names the value and says what to set, in one line of < 300 characters (plus the paths
  # it names): the "how to point at a local copy" hint is kept short.
  cases = [
      (lambda: data.load_arrays(None, "train", image_folder=tmp_path / "nowhere"), "nowhere"),
      (lambda: data.load_arrays(None, "tran", image_folder=folder), "'tran'"),
      (lambda: data.load_arrays("cifar10", "train", data_dir=str(tmp_path / "no_tfds"),
                                download=False), "cannot load 'cifar10': `data_dir` (="),
  ]
  for load, named in cases:
    with pytest.raises(data.DatasetNotFoundError) as err:
      load()
    msg = str(err.value)
    assert named in msg and "image_folder" in msg and "\n" not in msg, msg
    assert len(msg.replace(str(tmp_path), "")) < 300, (len(msg), msg)


def test_image_folder_pointing_at_the_split_folder_names_its_parent(folder):
  # `image_folder=root/train` instead of `root`: the message says to point at the parent.
  with pytest.raises(data.DatasetNotFoundError,
                     match=rf"no split folder 'train' .* found \['ant', 'bee', 'cat'\]\. that is "
                     rf"the 'train' folder itself: point at its parent '{folder}'$"):
    data.list_image_folder(folder / "train")


def test_normalize_needs_one_mean_and_std_per_channel():
  # One line naming the argument and the channel count, not numpy's "cannot reshape" error.
  images = np.zeros((1, 4, 4, 1), np.uint8)
  with pytest.raises(ValueError, match=r"^`mean` \(=\(0\.1, 0\.2\)\) has 2 values for images "
                     r"with 1 channels \(shape \(1, 4, 4, 1\)\); give one value per channel$"):
    data.normalize(images, (0.1, 0.2), (0.3,))
  with pytest.raises(ValueError, match=r"^`std` .* has 3 values"):
    jax.jit(lambda x: data.normalize(x, (0.5,), (0.2, 0.2, 0.2)))(images)
  assert float(data.normalize(images + 255, (0.5,), (0.5,))[0, 0, 0, 0]) == 1.0


def test_corrupt_image_is_named(folder, tmp_path):
  (folder / "train" / "bee" / "0002.png").write_bytes(b"not a png")
  with pytest.raises(ValueError, match="0002.png"):
    data.load_arrays(None, "train", image_folder=folder, cache=False)
  with pytest.raises(ValueError, match="0002.png"):
    data.load_arrays(None, "train", image_folder=_tar(folder, tmp_path / "c.tgz"), cache=False)


def test_empty_class_folder_is_named(folder, tmp_path):
  (folder / "train" / "wasp").mkdir()
  with pytest.raises(ValueError, match="wasp"):
    data.list_image_folder(folder)
  with pytest.raises(ValueError, match="wasp"):
    data.list_image_folder(_tar(folder, tmp_path / "e.tar.gz"))


@pytest.mark.parametrize("cache", [False, True])
def test_wrong_classes_for_a_known_dataset(tmp_path, cache):
  # Images of the right shape (32x32x3), so only the class names can give it away.
  root = _write_folder(tmp_path / "r", ["apple", "kiwi", "zebra"], 2, size=32)
  with pytest.raises(ValueError,
                     match=r"\(apple, kiwi, zebra\) are not the classes of 'cifar10' \(airplane"):
    data.load_arrays("cifar10", "train", image_folder=root, cache=cache,
                     cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------- tfds source

def test_tfds_missing_data_is_a_short_clear_error(tmp_path):
  t0 = time.time()
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load_arrays("cifar10", "train", data_dir=str(tmp_path), download=False)
  msg = str(err.value)
  assert "cifar10" in msg and "image_folder" in msg and str(tmp_path) in msg
  assert err.value.__suppress_context__  # no chained TensorFlow traceback
  assert time.time() - t0 < 30


def test_tfds_malformed_split_before_tfds(tmp_path):
  with pytest.raises(ValueError, match=r"'train\[:x\]'"):
    data.load_arrays("cifar10", "train[:x]", data_dir=str(tmp_path), download=False)


def test_folder_and_tfds_batches_have_the_same_structure(tmp_path):
  import tensorflow_datasets as tfds
  root = _write_folder(tmp_path / "cifar", CIFAR_CLASSES, 2, size=32, fmt="jpg")
  (tmp_path / "tfds").mkdir()
  folder_loader = data.make_loader("cifar10", "train", 8, train=True, image_folder=root,
                                   augment=("crop", "flip"), cache=False)
  with tfds.testing.mock_data(num_examples=20):
    arrays = data.load_arrays("cifar10", "train", data_dir=str(tmp_path / "tfds"))
    assert arrays["image"].shape == (20, 32, 32, 3) and arrays["image"].dtype == np.uint8
    assert arrays["label"].dtype == np.int32
    stream = data.make_loader("cifar10", "train", 8, train=True, kind="stream",
                              data_dir=str(tmp_path / "tfds"), augment=("crop", "flip"))
    tfds_batch = next(iter(stream.epoch(0)))
  folder_batch = next(iter(folder_loader.epoch(0)))
  assert stream.steps_per_epoch == 2 and folder_loader.steps_per_epoch == 2
  assert set(tfds_batch) == set(folder_batch) == {"image", "label"}
  for k in folder_batch:
    assert tfds_batch[k].shape == folder_batch[k].shape
    assert tfds_batch[k].dtype == folder_batch[k].dtype


# ---------------------------------------------------------------------------------- loaders

def _arrays(n=10, size=4):
  # every pixel of image i equals i: flips keep it, so labels can be checked against pixels
  img = np.broadcast_to(np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1), (n, size, size, 1))
  return {"image": np.ascontiguousarray(img), "label": np.arange(n, dtype=np.int32)}


def _collect(loader, epoch, start_step=0):
  return [jax.tree.map(np.asarray, b) for b in loader.epoch(epoch, start_step)]


@pytest.mark.parametrize("cls", [data.DeviceLoader, data.StreamLoader])
def test_eval_epoch_covers_every_example_once(cls):
  loader = cls(_arrays(10), 4, shuffle=False, seed=0, mean=(0.0,), std=(1 / 255,),
               drop_remainder=False)
  batches = _collect(loader, 0)
  assert loader.steps_per_epoch == 3 and len(batches) == 3
  labels = np.concatenate([b["label"][b["mask"] > 0] for b in batches])
  np.testing.assert_array_equal(labels, np.arange(10))
  np.testing.assert_array_equal(batches[-1]["mask"], [1, 1, 0, 0])
  # normalised with mean 0, std 1/255 the image is its raw pixel value, which equals the label
  np.testing.assert_allclose(batches[0]["image"][:, 0, 0, 0], batches[0]["label"])


@pytest.mark.parametrize("cls", [data.DeviceLoader, data.StreamLoader])
def test_shuffle_is_deterministic_resumable_and_compiled_once(cls):
  a = cls(_arrays(24), 4, shuffle=True, seed=3, mean=(0.0,), std=(1 / 255,),
          augment=("flip", "cutout"))
  e1 = _collect(a, 1)
  assert len(e1) == 6
  labels = np.concatenate([x["label"] for x in e1])
  assert sorted(labels.tolist()) == list(range(24)) and labels.tolist() != list(range(24))
  for x, y in zip(e1, _collect(a, 1)):  # a pure function of (seed, epoch): same batches again
    np.testing.assert_array_equal(x["image"], y["image"])
  assert not np.array_equal(labels, np.concatenate([x["label"] for x in _collect(a, 2)]))
  for x, y in zip(e1[4:], _collect(a, 1, start_step=4)):  # resume == skip
    np.testing.assert_array_equal(x["label"], y["label"])
    np.testing.assert_array_equal(x["image"], y["image"])
  for x in e1:  # labels untouched by augmentation: (non-cut) pixels still equal the label
    img = x["image"][:, :, :, 0]
    assert all(set(np.unique(img[i])) <= {0.0, float(x["label"][i])} for i in range(4))
  # every step and epoch ran through one compiled function
  fn = a._batch_fn if cls is data.DeviceLoader else a._process_fn
  assert fn._cache_size() == 1


def test_same_seed_same_batches_across_instances():
  kw = dict(shuffle=True, seed=5, mean=(0.0,), std=(1 / 255,))
  a = data.DeviceLoader(_arrays(8), 4, **kw)
  b = data.DeviceLoader(_arrays(8), 4, **kw)
  for x, y in zip(_collect(a, 0), _collect(b, 0)):
    np.testing.assert_array_equal(x["label"], y["label"])


def test_device_loader_sharded_batches():
  mesh = jax.make_mesh((8,), ("data",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  loader = data.DeviceLoader(_arrays(16), 8, shuffle=True, seed=0, mean=(0.5,), std=(0.5,),
                             sharding=sharding)
  batch = next(iter(loader.epoch(0)))
  assert batch["image"].sharding.is_equivalent_to(sharding, 4)
  assert batch["image"].dtype == jnp.float32


def test_bad_loader_arguments_name_the_value():
  with pytest.raises(ValueError, match="`batch_size` \\(=11\\).*10 examples"):
    data.DeviceLoader(_arrays(10), 11, shuffle=True, seed=0, mean=(0.5,), std=(0.5,))
  loader = data.DeviceLoader(_arrays(10), 11, shuffle=False, seed=0, mean=(0.5,), std=(0.5,),
                             drop_remainder=False)  # eval: one padded batch is fine
  assert loader.steps_per_epoch == 1
  with pytest.raises(ValueError, match="`mean`"):
    data.DeviceLoader(_arrays(10), 2, shuffle=True, seed=0, mean=(0.5, 0.5), std=(0.5,))
  with pytest.raises(ValueError, match="`start_step` \\(=9\\)"):
    next(data.DeviceLoader(_arrays(10), 2, shuffle=True, seed=0, mean=(0.5,),
                           std=(0.5,)).epoch(0, start_step=9))
  with pytest.raises(ValueError, match="'fast'"):
    data.make_loader("cifar10", "train", 2, train=True, kind="fast")


def test_make_loader_from_a_folder(folder):
  train = data.make_loader(None, "train[:9]", 3, train=True, image_folder=folder, cache=False,
                           augment=("crop",))
  val = data.make_loader(None, "train[9:]", 2, train=False, image_folder=folder, cache=False)
  assert isinstance(train, data.DeviceLoader) and train.num_examples == 9
  assert val.num_examples == 3 and val.steps_per_epoch == 2
  assert "mask" in next(iter(val.epoch(0))) and "mask" not in next(iter(train.epoch(0)))


# ----------------------------------------------------------------------- user mistakes in data

def test_cache_sees_a_file_overwritten_in_place(folder, tmp_path):
  # The cache key covers every file's size and mtime: an image overwritten in place leaves its
  # folders' mtimes unchanged, and the cache must still serve the new pixels.
  cache = tmp_path / "cache"
  before = data.load_arrays(None, "train", image_folder=folder, cache_dir=cache)
  target = folder / "train" / "ant" / "0000.png"
  folder_times = [(d, os.stat(d).st_mtime_ns) for d in (folder / "train", target.parent)]
  Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(target)
  for d, ns in folder_times:  # the folders look untouched
    os.utime(d, ns=(ns, ns))
  after = data.load_arrays(None, "train", image_folder=folder, cache_dir=cache)
  changed = np.flatnonzero(after["image"][:, 0, 0, 0] != before["image"][:, 0, 0, 0])
  assert changed.tolist() == [0] and after["image"][0, 0, 0, 0] == 200


def test_unwritable_cache_runs_uncached_and_says_so_once(folder, tmp_path, caplog):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  _sources._warned_unwritable.clear()
  with caplog.at_level("WARNING", logger="jaxcnn.data._sources"):
    for _ in range(2):
      arrays = data.load_arrays(None, "train", image_folder=folder, cache_dir=blocker / "cache")
  assert arrays["image"].shape == (12, 8, 8, 3)
  warnings = [r for r in caplog.records if "running uncached" in r.getMessage()]
  assert len(warnings) == 1 and "a_file" in warnings[0].getMessage()


def test_tilde_is_the_home_directory(folder, tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(folder.parent))
  arrays = data.load_arrays(None, "train[:3]", image_folder="~/root", cache=False)
  assert arrays["image"].shape == (3, 8, 8, 3)
  with pytest.raises(data.DatasetNotFoundError, match="does not exist"):
    data.load_arrays("cifar10", "train", data_dir="~/no_such_tfds", source="tfds")


@pytest.mark.parametrize("train,evaluation,overlap", [
    ("train[:45000]", "train[45000:]", None),
    ("train[:90%]", "train[90%:]", None),
    ("train[:45000]", "test", None),
    ("train", "train[45000:]", 5000),
    ("train[:90%]", "train[-10000:]", 5000),
    ("train[:49000]", "train[48000:49500]", 1000),
])
def test_eval_split_overlapping_train_is_an_error(train, evaluation, overlap):
  if overlap is None:
    data.check_splits_disjoint("cifar10", train, evaluation)
  else:
    with pytest.raises(ValueError, match=rf"overlaps .* in {overlap} examples"):
      data.check_splits_disjoint("cifar10", train, evaluation)


def test_missing_data_dir_is_not_created(tmp_path):
  typo = tmp_path / "tensorflow_datasetz"
  t0 = time.time()
  with pytest.raises(data.DatasetNotFoundError, match="tensorflow_datasetz.*does not exist"):
    data.load_arrays("cifar10", "train", data_dir=str(typo), source="tfds")
  assert not typo.exists() and time.time() - t0 < 30


@pytest.mark.tf
def test_offline_tfds_download_fails_within_seconds(tmp_path, monkeypatch):
  # Offline, the error comes within seconds (tfds' own retries would take minutes). Offline is
  # made certain with a host that cannot resolve.
  monkeypatch.setitem(_sources._TFDS_HOSTS, "cifar10", "tfds-host.invalid")
  t0 = time.time()
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load_arrays("cifar10", "train", data_dir=str(tmp_path), source="tfds")
  assert time.time() - t0 < 30
  msg = str(err.value)
  assert "\n" not in msg and "tfds-host.invalid is unreachable" in msg and "image_folder" in msg
  assert list(tmp_path.iterdir()) == []  # nothing created in the data_dir


def test_source_selection(tmp_path, monkeypatch):
  assert data.resolve_source("auto", image_folder="x") == "folder"
  assert data.resolve_source("auto", data_dir="x") == "tfds"
  monkeypatch.setattr(_sources, "has_tensorflow", lambda: False)
  assert data.resolve_source("auto") == "download"
  monkeypatch.setattr(_sources, "has_tensorflow", lambda: True)
  assert data.resolve_source("auto") == "tfds"
  assert data.resolve_source("download") == "download"
  with pytest.raises(ValueError, match="'tdfs'"):
    data.resolve_source("tdfs")
  with pytest.raises(ValueError, match="needs `image_folder`"):
    data.resolve_source("folder")
  with pytest.raises(ValueError, match="contradict"):
    data.load_arrays("cifar10", "train", image_folder=tmp_path, source="download")


def test_missing_tensorflow_is_one_line_naming_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
  assert not data.has_tensorflow()
  with pytest.raises(data.TensorFlowMissingError) as err:
    _sources.import_tf()
  assert "pip install 'jaxcnn[tf]'" in str(err.value) and "\n" not in str(err.value)
  assert isinstance(err.value, ImportError)
