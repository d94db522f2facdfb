"""A folder of your own images (jaxcnn.data._folder, image_folder_dataset, fit(path), the config
keys): Keras's listing, split, resize and crop, skipped files, errors naming the folder."""

import logging
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

from jaxcnn import data
from jaxcnn.data import _datasets, _folder
from jaxcnn.train import config as config_lib

CLASSES = ("circle", "square", "triangle")
FORMATS = ("png", "jpg", "bmp", "gif", "webp")


def make_folder(root, per_class=10, seed=0):
  """Shapes of random colours and sizes, one class per shape, in mixed formats; plus a text
  file, a broken JPEG, a hidden file and a nested sub-folder."""
  rng = np.random.default_rng(seed)
  for c in CLASSES:
    os.makedirs(root / c / "more", exist_ok=True)
    for i in range(per_class):
      w, h = (int(v) for v in rng.integers(20, 70, size=2))
      img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 255, 3)))
      draw = ImageDraw.Draw(img)
      colour = tuple(int(v) for v in rng.integers(0, 255, 3))
      if c == "circle":
        draw.ellipse([w * .2, h * .2, w * .8, h * .8], fill=colour)
      elif c == "square":
        draw.rectangle([w * .2, h * .2, w * .8, h * .8], fill=colour)
      else:
        draw.polygon([(w / 2, h * .1), (w * .9, h * .9), (w * .1, h * .9)], fill=colour)
      where = root / c / "more" if i == 0 else root / c
      img.save(where / f"{i:03d}.{FORMATS[i % len(FORMATS)]}")
  (root / "circle" / "notes.txt").write_text("not an image")
  (root / "square" / "broken.jpg").write_bytes(b"not a jpeg at all")
  (root / "triangle" / ".DS_Store").write_bytes(b"\0\0")
  return root


@pytest.fixture()
def folder(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXCNN_CACHE_DIR", str(tmp_path / "cache"))
  return make_folder(tmp_path / "shapes")


def test_scan_lists_classes_and_skips_what_is_not_an_image_in_one_line(folder, caplog):
  with caplog.at_level(logging.WARNING):
    files = _folder.scan_folder(folder)
  assert files.class_names == CLASSES
  assert len(files) == 30 and np.bincount(files.labels).tolist() == [10, 10, 10]
  assert str(folder / "circle" / "more" / "000.png") in files.files  # nested folders count
  lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
  assert len(lines) == 1
  assert "skipped 2 file(s)" in lines[0] and "notes.txt" in lines[0] and "broken.jpg" in lines[0]
  assert ".DS_Store" not in lines[0]


def test_empty_class_folder_is_an_error_naming_it(folder):
  os.makedirs(folder / "hexagon")
  (folder / "hexagon" / "readme.md").write_text("x")
  with pytest.raises(ValueError, match=r"class folder .*hexagon.* holds no readable image"):
    _folder.scan_folder(folder)


def test_images_without_class_folders_say_to_point_at_the_parent(tmp_path):
  Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
  with pytest.raises(ValueError, match="point at the folder above"):
    _folder.scan_folder(tmp_path)
  with pytest.raises(data.DatasetNotFoundError, match="does not exist"):
    _folder.scan_folder(tmp_path / "nope")


def test_split_folder_layout_is_read_too(tmp_path):
  make_folder(tmp_path / "root" / "train", per_class=3)
  files = _folder.scan_folder(tmp_path / "root", split="train")
  assert files.class_names == CLASSES and len(files) == 9


def test_validation_split_is_disjoint_covers_all_and_matches_keras(folder):
  files = _folder.scan_folder(folder)
  train = _folder.split_files(files, 0.2, "training", seed=7)
  val = _folder.split_files(files, 0.2, "validation", seed=7)
  assert len(val) == int(0.2 * 30) and len(train) == 30 - len(val)
  assert not set(train.files) & set(val.files)
  assert sorted(train.files + val.files) == sorted(files.files)
  for subset in (train, val):  # each label still belongs to its file
    for f, label in zip(subset.files, subset.labels):
      assert CLASSES[label] in f.split(os.sep)
  keras_utils = pytest.importorskip("keras.src.utils.dataset_utils")
  # Keras lists jpg/jpeg/png/bmp/gif only: compare on a folder of those.
  for f in folder.rglob("*.webp"):
    f.unlink()
  (folder / "circle" / "notes.txt").unlink()
  (folder / "square" / "broken.jpg").unlink()
  ours = _folder.scan_folder(folder)
  paths, labels, names = keras_utils.index_directory(
      str(folder), "inferred", formats=(".bmp", ".gif", ".jpeg", ".jpg", ".png"), seed=7,
      shuffle=True)
  assert tuple(names) == ours.class_names
  for subset in ("training", "validation"):
    kp, kl = keras_utils.get_training_or_validation_split(paths, labels, 0.2, subset)
    mine = _folder.split_files(ours, 0.2, subset, seed=7)
    assert list(mine.files) == list(kp) and mine.labels.tolist() == list(kl)


@pytest.mark.parametrize("vs,subset,seed,match", [
    (0.2, None, 1, "needs `subset`"),
    (None, "training", 1, "needs `validation_split`"),
    (0.2, "training", None, "needs a `seed`"),
    (1.5, "training", 1, "validation_split"),
    (0.2, "train", 1, "'train'"),
])
def test_split_arguments_are_checked_as_keras_does(vs, subset, seed, match):
  with pytest.raises(ValueError, match=match):
    _folder.check_split_args(vs, subset, seed)


def test_crop_box_and_resize_match_keras_load_img(folder):
  keras_image = pytest.importorskip("keras.src.utils.image_utils")
  for path in sorted(folder.rglob("*.png"))[:4] + sorted(folder.rglob("*.jpg"))[:2]:
    for crop in (False, True):
      for mode in ("rgb", "grayscale"):
        spec = _folder.ImageSpec((24, 40), mode, crop)
        ours = _folder.to_array(_folder.open_image(str(path), str(path)), spec)
        theirs = np.asarray(keras_image.load_img(str(path), color_mode=mode,
                                                 target_size=(24, 40), interpolation="bilinear",
                                                 keep_aspect_ratio=crop), np.uint8)
        np.testing.assert_array_equal(ours, theirs.reshape(ours.shape))
  assert _folder.crop_box(400, 200, (100, 100)) == (100, 0, 300, 200)
  assert _folder.crop_box(200, 400, (50, 100)) == (0, 150, 200, 250)


def test_image_folder_dataset_both_subsets(folder):
  train, val = data.image_folder_dataset(folder, image_size=(16, 20), validation_split=0.2,
                                         subset="both", seed=3, batch_size=4)
  assert train.class_names == val.class_names == CLASSES
  assert (train.num_examples, val.num_examples) == (24, 6)
  batch = next(iter(train.epoch(0)))
  assert batch["image"].shape == (4, 16, 20, 3) and batch["image"].dtype == np.float32
  # Normalised with the training images' statistics: mean ~0, std ~1 over the training set.
  x = np.concatenate([np.asarray(b["image"]) for b in train.epoch(0)])
  assert np.allclose(x.mean((0, 1, 2)), 0.0, atol=0.25) and np.allclose(x.std((0, 1, 2)), 1.0,
                                                                         atol=0.25)
  masks = [np.asarray(b["mask"]) for b in val.epoch(0)]
  assert sum(m.sum() for m in masks) == 6  # every validation image exactly once
  gray = data.image_folder_dataset(folder, image_size=12, color_mode="grayscale", batch_size=5,
                                   shuffle=False)
  assert gray.image_shape == (12, 12, 1) and sum(np.asarray(b["mask"]).sum()
                                                for b in gray.epoch(0)) == 30


def test_own_size_needs_one_size(folder):
  with pytest.raises(ValueError, match="set `image_size`"):
    data.image_folder_dataset(folder, image_size=None, batch_size=4)


def test_fit_on_a_folder_path(folder):
  from jaxcnn.train import fit
  h = fit("tutorial_cnn", str(folder), image_size=(32, 32), validation_split=0.2, epochs=1,
          batch_size=8, seed=1, verbose=0)
  assert h.class_names == CLASSES and len(h["val_loss"]) == 1
  with pytest.raises(ValueError, match="validation_split"):
    fit("tutorial_cnn", (np.zeros((8, 8, 8, 3), np.float32), np.zeros(8, int)),
        validation_split=0.2, verbose=0)


def test_config_keys_and_mistakes(folder):
  cfg = config_lib.validate({"data": {"name": "folder", "image_folder": str(folder),
                                      "image_size": 32, "validation_split": 0.2}})
  assert cfg.data.image_size == 32 and cfg.data.color_mode == "auto"
  for data_cfg, match in [
      ({"name": "folder"}, r"`data.name` \(='folder'\) needs `data.image_folder`"),
      ({"name": "cifar10", "validation_split": 0.2}, "splits a folder"),
      ({"name": "folder", "image_folder": str(folder), "loader": "stream"}, "'stream'"),
      ({"name": "folder", "image_folder": str(folder), "source": "download"}, "'download'"),
      ({"name": "folder", "image_folder": str(folder), "loader": "host",
        "augment": "random_resized_crop,cutout"}, "cutout"),
      ({"name": "folder", "image_folder": str(folder), "validation_split": 1.0},
       "validation_split"),
      ({"name": ""}, "data.name"),
  ]:
    with pytest.raises(ValueError, match=match):
      config_lib.validate({"data": data_cfg})
  config_lib.validate({"data": {"name": "folder", "image_folder": str(folder), "loader": "host",
                                "augment": "random_resized_crop,flip"}})


def test_folder_slices_without_validation_split_are_class_balanced(folder):
  files = _datasets.folder_files(folder, "train[:50%]")
  assert np.bincount(files.labels).tolist() == [5, 5, 5]
  with pytest.raises(ValueError, match="set `validation_split`"):
    _datasets.folder_files(folder, "train[:45000]")


def test_train_and_evaluate_on_a_folder(folder, tmp_path):
  from jaxcnn.train import train_and_evaluate
  config = config_lib.defaults()
  config.data.name = "folder"
  config.data.image_folder = str(folder)
  config.data.image_size = 32
  config.data.validation_split = 0.2
  config.data.loader = "host"
  config.data.augment = "random_resized_crop,flip"
  config.batch_size = 8
  config.num_epochs = 1
  config.progress = False
  config.plots = False
  result = train_and_evaluate(config, tmp_path / "wd")
  assert len(result.history) == 1 and result.history[0]["eval_loss"] is not None


def test_chunked_statistics_equal_the_whole_arrays():
  x = np.random.default_rng(0).integers(0, 256, (70, 5, 4, 3), dtype=np.uint8)
  got = _folder.chunked_mean_std(lambda idx: x[idx], np.arange(70), chunk=16)
  np.testing.assert_allclose(got, data.compute_mean_std(x), rtol=1e-9)


def test_the_cli_trains_on_a_folder_of_mixed_size_images_in_one_line(folder, tmp_path):
  import json
  import pathlib
  import subprocess
  import sys
  root = pathlib.Path(__file__).resolve().parents[1]
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAXCNN_CACHE_DIR=str(tmp_path / "cache"))
  out = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config", "cifar10_tutorial",
       f"--workdir={tmp_path / 'run'}", "--nocpu_acceleration",
       "--config.data.name=folder", f"--config.data.image_folder={folder}",
       "--config.data.image_size=32", "--config.data.validation_split=0.2",
       "--config.num_epochs=1", "--config.batch_size=8", "--config.eval_batch_size=8",
       "--config.progress=False", "--config.plots=False"],
      cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
  assert record["epoch"] == 1 and record["eval_loss"] is not None
  assert "Traceback" not in out.stderr
