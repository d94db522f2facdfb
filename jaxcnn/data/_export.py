"""Arrays to a class-per-folder copy: the inverse of :func:`jaxcnn.data.read_image_folder`."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import numpy as np


def write_image_folder(root: str | os.PathLike, images: np.ndarray, labels: np.ndarray,
                       class_names: Sequence[str], *, split: str = "train") -> pathlib.Path:
  """Writes ``images`` as lossless PNGs into ``root/split/<class name>/<rank>.png``.

  The layout ``read_image_folder`` and ``image_folder=`` read (and tfds' ``ImageFolder``), with
  files named by their rank within their class, so each class keeps its images' order. The
  reader interleaves the classes by rank, so arrays already in that order (as the reader
  returns them) come back identical, pixels and labels.
  Use it to hand a subset of a dataset to another tool, or to make a small copy for a demo.

  Args:
    root: the folder to write (created; an existing file of the same name is an error).
    images: ``uint8 [N, H, W, C]`` with ``C`` 1 or 3.
    labels: ``int [N]`` in ``[0, len(class_names))``.
    class_names: one folder per class, in label order.
    split: the split folder's name.

  Returns:
    ``root`` as a path.

  >>> import tempfile
  >>> x = np.zeros((2, 4, 4, 3), np.uint8); y = np.array([0, 1])
  >>> write_image_folder(tempfile.mkdtemp(), x, y, ['cat', 'dog']).is_dir()
  True
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images, labels = np.asarray(images), np.asarray(labels)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"`images` must be uint8 [N, H, W, 1 or 3], got {images.dtype} "
                     f"{images.shape}")
  if labels.shape != images.shape[:1]:
    raise ValueError(f"`labels` shape {labels.shape} does not match {images.shape[0]} images")
  k = len(class_names)
  bad = np.flatnonzero((labels < 0) | (labels >= k))
  if bad.size:
    raise ValueError(f"label {int(labels[bad[0]])} at index {int(bad[0])} is outside "
                     f"[0, {k}) for {k} class names")
  root = pathlib.Path(root).expanduser()
  if root.exists() and not root.is_dir():
    raise ValueError(f"`root` (={str(root)!r}) exists and is not a folder")
  rank = np.zeros(k, np.int64)
  for image, label in zip(images, labels):
    folder = root / split / class_names[label]
    folder.mkdir(parents=True, exist_ok=True)
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    Image.fromarray(pixels).save(folder / f"{rank[label]:05d}.png")
    rank[label] += 1
  return root
