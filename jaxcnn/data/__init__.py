"""Input pipelines: CIFAR-10 / MNIST from tfds or a local copy, batched, augmented on the device.

Every loader yields plain dicts ``{'image': float [B, H, W, C] normalised, 'label': int32 [B]}``
(+ ``'mask': float32 [B]`` for eval loaders, which pad the last batch). Order, shuffling and
augmentation are a pure function of ``(seed, epoch, step)``, so ``loader.epoch(e, start_step=s)``
resumes exactly; process ``p`` of a multi-process run yields its rows of each global batch, the
same global batches as one process would (see :class:`DeviceLoader` and :func:`make_loader`).

Sources (all take tfds split syntax: ``'train[:45000]'``, ``'train[45000:]'``, ``'train[90%:]'``),
chosen by ``source=`` (``data.source`` in a config; ``'auto'`` by default, see
:func:`resolve_source`):

  * ``'tfds'``: ``tfds.load`` (optionally from a prepared ``data_dir``, which must exist;
    ``download=False`` never touches the network; offline, a needed download fails in seconds):
    :func:`load_arrays`, or streamed by :meth:`StreamLoader.from_tfds`. Needs TensorFlow
    (``pip install 'jaxcnn[tf]'``); imported lazily.
  * ``'download'``: the official CIFAR-10 python archive / MNIST IDX files, MD5-checked, cached
    atomically in ``$JAXCNN_CACHE_DIR/downloads``, decoded with numpy; no TensorFlow. ``'auto'``
    picks it where TensorFlow is absent (a Colab TPU runtime). Offline, the official files
    copied by hand to ``$JAXCNN_CACHE_DIR/downloads/<file name>`` are used (MD5-checked too).
  * ``'folder'``: a class-per-folder copy ``root/<split>/<class>/<image>``, or its ``.tar.gz``
    read in place (``image_folder=``; ``'auto'`` picks it whenever ``image_folder`` is set):
    decoded with PIL on threads, cached as ``.npz`` keyed by every file's size and mtime (a
    read-only cache runs uncached, with one warning). Files are ordered classes round-robin,
    so any slice is class-balanced and reproducible.
  * :class:`DeviceLoader`: the whole split on the accelerator as uint8 (CIFAR-10: 150 MB);
    permutation, gather, augmentation and normalisation in one jitted function.

Quick start::

    from jaxcnn import data
    train = data.make_loader('cifar10', 'train[:45000]', 256, train=True, seed=0,
                             augment=('crop', 'flip'),
                             image_folder='../shared/data/cifar10_jpeg_train.tar.gz')
    val = data.make_loader('cifar10', 'train[45000:]', 1000, train=False,
                           image_folder='../shared/data/cifar10_jpeg_train.tar.gz')
    for batch in train.epoch(0):
      ...

Colab TPU: which route works (checked against public reports, 2025; not run on a live TPU here)
  * TPU runtimes no longer ship TensorFlow: googlecolab/colabtools#5185 ("ModuleNotFoundError:
    No module named 'tensorflow' in the TPUv2-8 runtime", 2025-03).
  * TensorFlow's TPU build cannot sit beside JAX there: ``tensorflow-tpu`` pins its own
    ``libtpu`` (googlecolab/colabtools#5209, "Cannot install tensorflow-tpu in TPU runtime"), and
    after ``pip install tensorflow tensorflow-tpu`` JAX reports "cloud_tpu_init failed: module
    'libtpu' has no attribute 'get_library_path'" and falls back to CPU
    (jax-ml/jax#29989, "Cannot Initialize TPU on Google Colab", 2025-07). Even when both load,
    whichever of TF and JAX opens the TPU first holds it ("ioctl failed";
    googlecolab/colabtools#4567, "Cannot load TF and jax together in colab").
  * ``tfds.data_source`` reads ``array_record`` files without TensorFlow
    (https://www.tensorflow.org/datasets/tfless_tfds), but the prepared CIFAR-10/MNIST copies are
    TFRecord and preparing them needs TF, so it is not a drop-in route for these datasets.

  Choice: the notebooks use the TensorFlow-free routes, ``source='download'`` (what ``'auto'``
  picks there) or ``image_folder=`` (a class-per-folder copy or its tarball; PIL decoding), with
  :class:`DeviceLoader`; nothing in them imports TensorFlow, and ``pip install jaxcnn`` installs
  none. The tfds/tf.data route is for machines with TF: it needs the *CPU* build
  (``pip install 'jaxcnn[tf]'`` installs tensorflow-cpu on Linux), which has no TPU kernels and
  no libtpu, and TF is imported lazily with every GPU/TPU hidden from it
  (``tf.config.set_visible_devices([], 'GPU'/'TPU')``), so JAX keeps the accelerator.
"""

from jaxcnn.data import augment
from jaxcnn.data._datasets import (dataset_info, dataset_kind, image_folder_dataset,
                                   make_dataset_loader)
from jaxcnn.data._folder import FolderFiles, ImageSpec, scan_folder
from jaxcnn.data._stream import HostLoader
from jaxcnn.data._export import write_image_folder
from jaxcnn.data._info import DATASETS, DatasetInfo, DatasetNotFoundError, compute_mean_std, get_info
from jaxcnn.data._loaders import DeviceLoader, StreamLoader, make_loader, normalize
from jaxcnn.data._sources import (SOURCES, TensorFlowMissingError, default_cache_dir,
                                  has_tensorflow, list_image_folder, load_arrays,
                                  read_image_folder, resolve_source)
from jaxcnn.data._split import check_splits_disjoint, parse_split, resolve_split, shard_range

__all__ = [
    "DATASETS", "DatasetInfo", "DatasetNotFoundError", "DeviceLoader", "FolderFiles",
    "HostLoader", "ImageSpec", "SOURCES", "StreamLoader", "TensorFlowMissingError", "augment",
    "check_splits_disjoint", "compute_mean_std", "dataset_info", "dataset_kind",
    "default_cache_dir", "get_info", "has_tensorflow", "image_folder_dataset",
    "list_image_folder", "load_arrays", "make_dataset_loader", "make_loader", "normalize",
    "parse_split", "read_image_folder", "resolve_source", "resolve_split", "scan_folder",
    "shard_range", "write_image_folder",
]
