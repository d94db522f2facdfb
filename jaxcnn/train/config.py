"""The run configuration: every key once, with its type, default, check and meaning.

A run is configured by one :class:`Config` (frozen), made by :func:`validate` from an
``ml_collections.ConfigDict`` (what a config file's ``get_config()`` returns and the command line
overrides), a plain mapping, or a ``Config``. Every key, its default and its check live here and
nowhere else: :func:`defaults` builds the ``ConfigDict`` of every key at its default, and the
shipped configs in :mod:`jaxcnn.configs` start from it and override a few keys. The training code
reads the validated ``Config`` (``config.batch_size``), never a default of its own.

The defaults are the course's recipe (the Keras CIFAR-10 tutorial: the tutorial CNN, Adam at
1e-3, batch 32, 10 epochs, no augmentation).

>>> config = defaults()
>>> config.learning_rate = 0.01
>>> cfg = validate(config)
>>> cfg.learning_rate, cfg.optimizer, cfg.data.name
(0.01, 'adam', 'cifar10')
>>> validate({'batch_size': 0})
Traceback (most recent call last):
...
ValueError: `batch_size` (=0) must be an int >= 1
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import types
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
from ml_collections import config_dict

from jaxcnn import _checks

Check = Callable[[Any, str], Any]


def _key(default: Any, doc: str, check: Check | None = None) -> Any:
  """A schema key: its default, one line of meaning, and ``check(value, name) -> value``."""
  metadata = {"default": default, "doc": doc, "check": check}
  if isinstance(default, Mapping):  # read-only, but unhashable: a dataclass wants a factory
    return dataclasses.field(default_factory=lambda: default, metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


# -- the checks a key can have (each raises one line naming the key and its value) ----------------

def _int(low: int) -> Check:
  return lambda v, name: _checks.positive_int(v, name, low=low)


def _number(low: float, high: float | None = None, *, low_open: bool = False,
            high_closed: bool = False) -> Check:
  return lambda v, name: _checks.number(v, name, low, high, low_closed=not low_open,
                                        high_closed=high_closed)


def _bool(v: Any, name: str) -> bool:
  return _checks.boolean(v, name)


def _choice(choices: Callable[[], Any] | tuple[str, ...]) -> Check:
  return lambda v, name: _checks.choice(v, name, choices() if callable(choices) else choices)


def _optional_str(v: Any, name: str) -> str | None:
  if v is not None and not isinstance(v, str):
    raise ValueError(f"`{name}` (={v!r}) must be a string or None")
  return v or None


def _path(v: Any, name: str) -> str | None:
  """An optional path; ``~`` means the home directory, as in a shell."""
  v = _optional_str(v, name)
  return None if v is None else os.path.expanduser(v)


def _address(v: Any, name: str) -> str | None:
  """``'host:port'`` or None."""
  v = _optional_str(v, name)
  if v is not None:
    host, _, port = v.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
      raise ValueError(f"`{name}` (={v!r}) must be 'host:port' (e.g. '10.0.0.1:1234')")
  return v


def _str(v: Any, name: str) -> str:
  if not isinstance(v, str):
    raise ValueError(f"`{name}` (={v!r}) must be a string")
  return v


def _numbers(v: Any, name: str) -> tuple[float, ...]:
  if not isinstance(v, (tuple, list)) or not all(_checks.is_real_number(e) for e in v):
    raise ValueError(f"`{name}` (={v!r}) must be a tuple of numbers")
  return tuple(float(e) for e in v)


def _mapping(v: Any, name: str) -> Mapping[str, Any]:
  if hasattr(v, "to_dict"):
    v = v.to_dict()
  if not isinstance(v, Mapping):
    raise ValueError(f"`{name}` (={v!r}) must be a mapping of keyword arguments")
  return types.MappingProxyType(dict(v))


def _models() -> tuple[str, ...]:
  from jaxcnn import models  # pylint: disable=g-import-not-at-top
  return tuple(sorted(models.MODELS))


def _optimizers() -> tuple[str, ...]:
  from jaxcnn.train import optim  # pylint: disable=g-import-not-at-top
  return tuple(optim.OPTIMIZERS)


def _dataset_name(v: Any, name: str) -> str:
  """Any non-empty name: cifar10 | mnist, a folder's (with image_folder), or a tfds dataset's
  (checked together with image_folder in _check_together)."""
  if not isinstance(v, str) or not v.strip():
    raise ValueError(f"`{name}` (={v!r}) must be a dataset name: cifar10, mnist, 'folder' (with "
                     "`data.image_folder`) or a tfds dataset such as 'cifar100'")
  return v.strip()


def _color_modes() -> tuple[str, ...]:
  return ("auto", "rgb", "grayscale")


def _interpolations() -> tuple[str, ...]:
  from jaxcnn.data import _folder  # pylint: disable=g-import-not-at-top
  return _folder.INTERPOLATIONS


def _sources() -> tuple[str, ...]:
  from jaxcnn import data  # pylint: disable=g-import-not-at-top
  return tuple(data.SOURCES)


def _schedules() -> tuple[str, ...]:
  from jaxcnn.train import optim  # pylint: disable=g-import-not-at-top
  return optim.SCHEDULES


PARALLEL_MODES = ("none", "pmap", "mesh")
MODEL_APIS = ("linen", "nnx")
DTYPES = ("float32", "bfloat16", "auto")
LOADERS = ("device", "stream", "host")
NORMALIZATIONS = ("dataset", "unit")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """``config.data``: which examples a run reads and how they are prepared."""
  name: str = _key("cifar10", "the dataset: 'cifar10' | 'mnist' | 'folder' (a folder of your own "
                   "images, with image_folder) | any tfds image-classification dataset "
                   "('cifar100', 'imagenette', ...)", _dataset_name)
  train_split: str = _key("train[:45000]", "tfds split syntax ('train[:90%]' ...)", _str)
  eval_split: str = _key("train[45000:]", "evaluated every `eval_every_epochs` epochs; "
                         "must not overlap train_split", _str)
  test_split: str | None = _key(None, "evaluated once after training with the best (or final) "
                                "model, written to test_metrics.json (None: none)", _optional_str)
  data_dir: str | None = _key(None, "tfds data dir (must exist)", _path)
  image_folder: str | None = _key(None, "a folder of images, root/<class>/<image> or "
                                  "root/<split>/<class>/<image> (for cifar10/mnist: a copy of "
                                  "them, or its .tar.gz)", _path)
  image_size: int = _key(0, "folders and tfds datasets: resize every image to image_size x "
                         "image_size (0: their own size, which must be one size)", _int(0))
  color_mode: str = _key("auto", "folders and tfds datasets: 'auto' (rgb for a folder, a tfds "
                         "dataset's own channels) | 'rgb' | 'grayscale'", _choice(_color_modes))
  crop_to_aspect_ratio: bool = _key(False, "resize the largest centred window of the target's "
                                    "aspect ratio instead of stretching (as Keras)", _bool)
  interpolation: str = _key("bilinear", "the resize filter (as Keras): 'bilinear' | 'nearest' | "
                            "'bicubic' | 'area' | 'lanczos3'", _choice(_interpolations))
  validation_split: float = _key(0.0, "folders: > 0 draws this fraction of the files (shuffled "
                                 "with `seed`, as Keras) as the eval set and the rest as the "
                                 "train set; the splits then only name the split folder",
                                 _number(0.0, 1.0))
  source: str = _key("auto", "'auto' (the folder if set, else tfds where TensorFlow is "
                     "installed, else 'download') | 'tfds' | 'download' | 'folder'",
                     _choice(_sources))
  loader: str = _key("device", "'device' (the whole split on the accelerator) | 'stream' "
                     "(tf.data; cifar10/mnist) | 'host' (read, decode, resize and augment on host "
                     "threads with bounded memory: data bigger than memory)", _choice(LOADERS))
  augment: str = _key("", "comma-separated augmentations ('crop,flip'; '' = none); with loader "
                       "'host': 'random_resized_crop' | 'flip' | 'crop'", _str)
  normalize: str = _key("dataset", "'dataset' ((x / 255 - mean) / std per channel) | 'unit' "
                        "(x / 255 only, as the Keras tutorials)", _choice(NORMALIZATIONS))

  @property
  def augment_spec(self) -> tuple[str, ...] | None:
    """``augment`` as a :func:`jaxcnn.data.augment.make_augment` spec: 'crop,flip' ->
    ('crop', 'flip'); ``None`` for no augmentation."""
    spec = tuple(s.strip() for s in self.augment.split(",") if s.strip())
    return spec or None


@dataclasses.dataclass(frozen=True)
class Config:
  """A validated run configuration (see the module docstring); build it with :func:`validate`.

  Nested ``data`` is a :class:`DataConfig`; ``model_kwargs`` and ``recipe`` are read-only
  mappings. ``dataclasses.replace`` makes a changed copy (re-validate it with :func:`validate`).
  """
  model: str = _key("tutorial_cnn", "a jaxcnn.models name", _choice(_models))
  model_kwargs: Mapping[str, Any] = _key(
      types.MappingProxyType({}), "the model factory's keyword arguments "
      "(`--config.model_kwargs.hidden=512`: declare them in the config file)", _mapping)
  model_api: str = _key("linen", "the model's front end: 'linen' (jaxcnn.models) | 'nnx' (the "
                        "same model as a Flax NNX module of jaxcnn.nnx layers; same initial "
                        "variables, same checkpoints)", _choice(MODEL_APIS))
  seed: int = _key(0, "initialisation, data order, augmentation and dropout", _int(0))
  batch_size: int = _key(32, "the global batch (all devices, all processes)", _int(1))
  eval_batch_size: int = _key(0, "the evaluation batch (0: batch_size)", _int(0))
  num_epochs: float = _key(10.0, "passes over the train split; a fraction ends mid-epoch "
                           "(ceil(num_epochs * steps_per_epoch) steps)", _number(0.0))
  num_train_steps: int = _key(-1, "when > 0, the number of steps (overrides num_epochs); -1 or "
                              "0: num_epochs decides", _int(-1))
  parallel: str = _key("none", "'none' (one device) | 'pmap' (local devices) | 'mesh' (all "
                       "devices; preferred)", _choice(PARALLEL_MODES))
  distributed: bool = _key(False, "one process of a multi-process job: jax.distributed."
                           "initialize() with the four keys below before anything touches a "
                           "device (docs/multi_process.md)", _bool)
  coordinator_address: str | None = _key(
      None, "distributed: 'host:port' of process 0, the same on every process (None: "
      "detected on Cloud TPU and SLURM, or $JAX_COORDINATOR_ADDRESS)", _address)
  num_processes: int = _key(0, "distributed: processes in the job (0: detected)", _int(0))
  process_id: int = _key(-1, "distributed: this process's index in [0, num_processes) "
                         "(-1: detected)", _int(-1))
  heartbeat_timeout_seconds: int = _key(
      30, "distributed: a process silent this long counts as lost, and the others stop "
      "naming it and the last checkpoint (a process that dies is noticed at once)", _int(5))

  optimizer: str = _key("adam", "a registered optimiser: 'adam' | 'adamw' | 'sgd' | "
                        "'sgd_nesterov' (jaxcnn.train.register_optimizer adds one)",
                        _choice(_optimizers))
  learning_rate: float = _key(1e-3, "the peak learning rate", _number(0.0, low_open=True))
  schedule: str = _key("constant", "'constant' | 'cosine' | 'warmup_cosine' | 'onecycle' | "
                       "'piecewise'", _choice(_schedules))
  warmup_epochs: float = _key(1.0, "warmup_cosine: epochs of linear warm-up", _number(0.0))
  lr_boundaries_epochs: tuple[float, ...] = _key(
      (), "piecewise: epochs at which the rate is multiplied by lr_decay_factor (empty: at 50% "
      "and 75% of training)", _numbers)
  lr_decay_factor: float = _key(0.1, "piecewise: the factor at each boundary",
                                _number(0.0, low_open=True))
  momentum: float = _key(0.9, "sgd / sgd_nesterov momentum (0: none)", _number(0.0))
  nesterov: bool = _key(False, "sgd: Nesterov momentum", _bool)
  b1: float = _key(0.9, "adam / adamw: first-moment decay", _number(0.0, 1.0))
  b2: float = _key(0.999, "adam / adamw: second-moment decay", _number(0.0, 1.0))
  eps: float = _key(1e-7, "adam / adamw: epsilon (Keras's default; optax's is 1e-8)",
                    _number(0.0))
  weight_decay: float = _key(0.0, "on kernels only (ndim > 1); decoupled for adamw and "
                             "sgd_nesterov, an L2 term for adam and sgd", _number(0.0))
  grad_clip_norm: float = _key(0.0, "clip the gradient's global norm (0: off)", _number(0.0))
  label_smoothing: float = _key(0.0, "of the training loss only", _number(0.0, 1.0))
  ema: float = _key(0.0, "decay of an average of the variables used for evaluation (0: off)",
                    _number(0.0, 1.0))
  ema_warmup: bool = _key(False, "ema decay min(ema, (1 + t) / (10 + t))", _bool)
  ema_every: int = _key(1, "update the average every k steps", _int(1))
  dtype: str = _key("float32", "compute dtype ('auto': float32 on a CPU, bfloat16 on a "
                    "TPU/GPU); parameters stay float32", _choice(DTYPES))

  patience: int = _key(0, "early stopping: evaluations without a better eval loss before "
                       "stopping and restoring the best epoch (0: off)", _int(0))
  early_stopping_min_delta: float = _key(0.0, "the least decrease of eval loss that counts",
                                         _number(0.0))
  eval_every_epochs: int = _key(1, "evaluate after every k-th epoch (and the last)", _int(1))
  plots: bool = _key(True, "redraw curves.png and confusion.png after each evaluation", _bool)
  checkpoint_every_epoch: bool = _key(True, "save at every epoch end (else only every "
                                      "checkpoint_every_steps, the best epoch and the end)",
                                      _bool)
  checkpoint_every_steps: int = _key(0, "also save every N steps (0: epoch ends only)", _int(0))
  async_checkpoints: bool = _key(True, "write checkpoints in a background thread", _bool)
  log_every_steps: int = _key(50, "steps between host syncs (NaN check, progress bar; 0: "
                              "epoch ends)", _int(0))
  progress: bool = _key(True, "the progress bar and epoch lines (process 0)", _bool)
  tensorboard: bool = _key(False, "per-epoch scalars in workdir/tensorboard (no TensorFlow "
                           "needed)", _bool)
  recipe: Mapping[str, Any] = _key(
      types.MappingProxyType({}), "a named recipe and its settings (`recipe.name`; see "
      "jaxcnn.recipes), supplying the optimiser, loss, evaluation and augmentation", _mapping)
  data: DataConfig = _key(DataConfig(), "what the run reads", None)

  def to_dict(self) -> dict[str, Any]:
    """Plain nested dicts and lists (JSON-ready), every key included."""
    return _plain(self)

  def to_json(self, **kwargs: Any) -> str:
    return json.dumps(self.to_dict(), **kwargs)

  # -- derived values, computed in one place -------------------------------------------------
  @property
  def eval_batch(self) -> int:
    """The evaluation batch size (``eval_batch_size``, or ``batch_size`` when it is 0)."""
    return self.eval_batch_size or self.batch_size

  def total_steps(self, steps_per_epoch: int) -> int:
    """Optimiser steps of the whole run: ``num_train_steps`` when > 0, else
    ``ceil(num_epochs * steps_per_epoch)``."""
    if self.num_train_steps > 0:
      return self.num_train_steps
    return math.ceil(self.num_epochs * steps_per_epoch - 1e-9)


def _plain(value: Any) -> Any:
  if dataclasses.is_dataclass(value):
    return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
  if isinstance(value, Mapping):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, tuple):
    return [_plain(v) for v in value]
  return value


def fields(cls: type = Config, prefix: str = "") -> dict[str, dataclasses.Field]:
  """Every key of the schema by dotted name (``'data.name'``), in declaration order."""
  out = {}
  for f in dataclasses.fields(cls):
    if f.name == "data":
      out.update(fields(DataConfig, f"{prefix}{f.name}."))
    else:
      out[f"{prefix}{f.name}"] = f
  return out


def check_key(key: str, value: Any) -> Any:
  """``value`` checked as the one key ``key`` (dotted), without the checks that relate keys."""
  f = fields().get(key)
  if f is None:
    raise KeyError(unknown_key_message(key))
  check = f.metadata["check"]
  return value if check is None else check(value, key)


def doc(key: str) -> str:
  """The one-line meaning of a dotted key.

  >>> doc('batch_size')
  'the global batch (all devices, all processes)'
  """
  return fields()[key].metadata["doc"]


def defaults() -> ml_collections.ConfigDict:
  """Every key at its default, as the ``ConfigDict`` a config file starts from.

  Keys whose default is None are typed placeholders (so ``--config.data.image_folder=...`` can
  set a string); ``model_kwargs`` and ``recipe`` are empty ``ConfigDict`` s that a config file
  fills with the keys its model or recipe takes.
  """
  config = ml_collections.ConfigDict()
  for name, f in fields().items():
    node = config
    *parents, leaf = name.split(".")
    for p in parents:
      if p not in node:
        node[p] = ml_collections.ConfigDict()
      node = node[p]
    default = f.metadata["default"]
    if default is None:
      node[leaf] = config_dict.placeholder(str)
    elif isinstance(default, Mapping):
      node[leaf] = ml_collections.ConfigDict(dict(default))
    else:
      node[leaf] = default
  return config


def _as_nested_dict(config: Any) -> dict[str, Any]:
  if isinstance(config, Config):
    return config.to_dict()
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  if not isinstance(config, Mapping):
    raise TypeError(f"a config must be a ConfigDict, a mapping or a jaxcnn.train.Config, not "
                    f"a {type(config).__name__}")
  return {k: (_as_nested_dict(v) if isinstance(v, Mapping) and k == "data" else v)
          for k, v in config.items()}


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping) and f"{prefix}{k}" == "data":
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def unknown_key_message(key: str) -> str:
  """'unknown config key `x`; did you mean `y`?' (or where the keys are documented)."""
  close = difflib.get_close_matches(key, list(fields()), n=1, cutoff=0.6)
  hint = (f"did you mean `{close[0]}`?" if close else
          "the keys are documented in jaxcnn/train/config.py")
  return f"unknown config key `{key}`; {hint}"


def validate(config: Any) -> Config:
  """Checks every key and returns the frozen :class:`Config`; raises one line naming the bad
  key and value (``ValueError``).

  ``config``: a ``ConfigDict``, a mapping (missing keys take their defaults; an unknown key is
  an error with a did-you-mean) or a :class:`Config` (returned as it is: it was validated when
  it was made). Checks that need more than one key: ``num_epochs`` and ``num_train_steps`` not
  both empty, the distributed keys only with ``distributed``, batch sizes that split evenly over
  the devices of ``parallel`` (left to :func:`jaxcnn.train.train_and_evaluate` in a
  distributed run, whose devices are known only once it has joined the job), a known
  augmentation, an existing ``data.image_folder``.
  """
  if isinstance(config, Config):
    return config
  given = _flatten(_as_nested_dict(config))
  schema = fields()
  unknown = sorted(set(given) - set(schema))
  if unknown:
    raise ValueError(unknown_key_message(unknown[0]))
  values: dict[str, Any] = {}
  for name, f in schema.items():
    value = given.get(name, f.metadata["default"])
    check = f.metadata["check"]
    values[name] = check(value, name) if check is not None else value
  data = DataConfig(**{k.split(".", 1)[1]: v for k, v in values.items()
                       if k.startswith("data.")})
  cfg = Config(**{k: v for k, v in values.items() if not k.startswith("data.")}, data=data)
  _check_together(cfg)
  return cfg


def _check_together(cfg: Config) -> None:
  if cfg.num_epochs == 0 and cfg.num_train_steps <= 0:
    raise ValueError("nothing to train: `num_epochs` (=0) and `num_train_steps` "
                     f"(={cfg.num_train_steps}) are both <= 0")
  _check_distributed(cfg)
  import jax  # pylint: disable=g-import-not-at-top
  if not cfg.distributed or jax.distributed.is_initialized():
    # Counting devices starts JAX's backends, which a distributed run must not do before
    # jax.distributed.initialize: train_and_evaluate checks these once it has joined the job.
    check_batch_sizes(cfg)
  _check_model_kwargs(cfg.model, cfg.model_kwargs)
  if cfg.data.loader == "host":
    from jaxcnn.data import _stream  # pylint: disable=g-import-not-at-top
    _stream.make_host_augment(cfg.data.augment_spec)
  else:
    from jaxcnn.data import augment  # pylint: disable=g-import-not-at-top
    augment.make_augment(cfg.data.augment_spec)  # an unknown name fails here, not mid-run
  if cfg.data.image_folder and not os.path.exists(cfg.data.image_folder):
    raise ValueError(f"`data.image_folder` (={cfg.data.image_folder!r}) does not exist")
  _check_dataset(cfg.data)


def _check_dataset(data: DataConfig) -> None:
  """How ``data.name`` and ``data.image_folder`` go together (jaxcnn.data.dataset_kind), and
  the keys each kind of dataset takes."""
  from jaxcnn.data import _datasets  # pylint: disable=g-import-not-at-top
  if data.name == _datasets.FOLDER and not data.image_folder:
    raise ValueError("`data.name` (='folder') needs `data.image_folder`: the folder of "
                     "`<class>/<image>` folders to read")
  kind = _datasets.dataset_kind(data.name, data.image_folder)
  if data.validation_split and kind != "folder":
    raise ValueError(f"`data.validation_split` (={data.validation_split}) splits a folder of "
                     f"images; dataset {data.name!r} has its splits: set `data.train_split` and "
                     "`data.eval_split`")
  if kind == "builtin":
    return
  if data.loader == "stream":
    raise ValueError(f"`data.loader` (='stream', tf.data) reads cifar10/mnist; for {data.name!r} "
                     "use 'device' (in memory) or 'host' (streamed from disk)")
  if data.source not in ("auto", "folder" if kind == "folder" else "tfds"):
    raise ValueError(f"`data.source` (={data.source!r}) does not apply to dataset "
                     f"{data.name!r}; leave it 'auto'")
  if kind == "tfds":
    try:
      from jaxcnn.data import _tfds_any  # pylint: disable=g-import-not-at-top
      _tfds_any.check_name(data.name, "data.name")
    except ImportError:
      raise ValueError(f"`data.name` (={data.name!r}) is not cifar10, mnist or 'folder' (with "
                       "`data.image_folder`); other names are tfds datasets, which need "
                       "`pip install tensorflow-datasets`") from None


def check_batch_sizes(cfg: Config) -> None:
  """Batch sizes that split evenly over the devices of ``cfg.parallel`` (counts devices)."""
  from jaxcnn.train import parallel  # pylint: disable=g-import-not-at-top
  parallel.check_batch_size(cfg.batch_size, cfg.parallel, "batch_size")
  if cfg.eval_batch_size:
    parallel.check_batch_size(cfg.eval_batch_size, cfg.parallel, "eval_batch_size")


_DISTRIBUTED_KEYS = ("coordinator_address", "num_processes", "process_id")


def _check_distributed(cfg: Config) -> None:
  given = [k for k in _DISTRIBUTED_KEYS if getattr(cfg, k) != fields()[k].metadata["default"]]
  if given and not cfg.distributed:
    raise ValueError(f"`{given[0]}` (={getattr(cfg, given[0])!r}) is set but `distributed` is "
                     "False; add --config.distributed=True")
  if cfg.num_processes and cfg.process_id >= cfg.num_processes:
    raise ValueError(f"`process_id` (={cfg.process_id}) must be smaller than `num_processes` "
                     f"(={cfg.num_processes})")
  if cfg.distributed and cfg.parallel == "none":
    raise ValueError("`parallel` (='none') uses one device of one process; a distributed run "
                     "needs 'mesh' (or 'pmap')")


def _check_model_kwargs(model: str, kwargs: Mapping[str, Any]) -> None:
  """Each key of ``model_kwargs`` must be a keyword argument of the model's factory."""
  import inspect  # pylint: disable=g-import-not-at-top
  from jaxcnn import models  # pylint: disable=g-import-not-at-top
  if not kwargs:
    return
  params = inspect.signature(models.MODELS[model]).parameters
  if any(p.kind == p.VAR_KEYWORD for p in params.values()):
    return
  takes = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY
           and n not in ("num_classes", "dtype", "axis_name")]
  for key in kwargs:
    if key not in takes:
      raise ValueError(f"`model_kwargs.{key}` is not an argument of model {model!r} (it "
                       f"takes: {', '.join(takes) or 'none'}); use a config written for "
                       f"{model!r}")


def as_config(config: Any) -> Config:
  """:func:`validate`, for functions that take a config in any form."""
  return validate(config)
