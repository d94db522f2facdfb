"""write_image_folder is the inverse of read_image_folder: same pixels, labels and order."""

import numpy as np
import pytest

from jaxcnn import data


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_keeps_pixels_labels_and_order(tmp_path, channels):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (12, 5, 6, channels), dtype=np.uint8)
  labels = np.array([0, 1, 2] * 4)
  root = data.write_image_folder(tmp_path / "copy", images, labels, ["a", "b", "c"])
  arrays, names = data.read_image_folder(root, "train", cache=False)
  assert names == ("a", "b", "c")
  np.testing.assert_array_equal(arrays["label"], labels)
  np.testing.assert_array_equal(arrays["image"], images)


def test_bad_inputs_name_the_value(tmp_path):
  x = np.zeros((2, 4, 4, 3), np.uint8)
  with pytest.raises(ValueError, match=r"label 5 at index 1 is outside \[0, 2\)"):
    data.write_image_folder(tmp_path / "r", x, np.array([0, 5]), ["a", "b"])
  with pytest.raises(ValueError, match="must be uint8"):
    data.write_image_folder(tmp_path / "r", x.astype(np.float32), np.array([0, 1]), ["a", "b"])
  (tmp_path / "file").write_text("")
  with pytest.raises(ValueError, match="is not a folder"):
    data.write_image_folder(tmp_path / "file", x, np.array([0, 1]), ["a", "b"])
