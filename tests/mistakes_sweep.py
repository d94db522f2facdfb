"""The user-mistakes sweep: >= 200 wrong inputs, each run and classified.

Every case is a small callable plus what a user should get:

* ``expect='error'``: an exception whose message is one line and names the value(s) listed in
  ``names`` (each entry a string, or a tuple of alternatives; matched case-insensitively);
* ``expect='accept'``: a result that ``check`` accepts (``check`` returns ``None``/``True`` when
  the adapted result is right, else a string saying what is wrong). ``must_accept`` cases are
  inputs jaxcnn promises to accept (a model given by name, uint8 images in ``fit``): an error
  there counts as raw, not clean.

A case may carry a mistake class (``cls``, ``'1'`` to ``'11'``) that groups related mistakes in
the per-class table (``'1'``: an input of the wrong rank, ``'4'``: labels out of range,
``'10'``: a layer's arguments, ...).

Each outcome is classified:

* **clean**: a user-facing exception (``ValueError``, ``TypeError``, ``KeyError``, ``OSError``
  kinds such as ``FileNotFoundError``/``DatasetNotFoundError``, ``NonFiniteError``, or, for the
  CLI, a non-zero exit whose stderr, less absl log lines and a ``(--traceback ...)``/``--help``
  hint, is one line) whose message is one line of at most ``MAX_LEN`` characters and names the
  value;
* **raw**: raw or misleading: any other exception type (``ZeroDivisionError``, ``MLIRError``,
  ``AttributeError``, Flax scope errors, ...), a multi-line message or a ``Traceback`` on the
  CLI's stderr, a message that does not name the value, or no result within the case's timeout;
* **silent**: no error where one was expected, or an accepted result that ``check`` rejects;
* **fine**: accepted, and ``check`` agrees the result is right.

Run (from the repository root; ``--no-cli`` skips the cases that start ``python -m
experiments.train``; the whole sweep takes a few minutes on 2 cores)::

    python tests/mistakes_sweep.py --no-cli
    python tests/mistakes_sweep.py --json /tmp/mistakes.json

Against another checkout (APIs missing there count as what the user would see), run this file
from that checkout's root::

    cd OTHER_CHECKOUT && PYTHONPATH=. python THIS_CHECKOUT/tests/mistakes_sweep.py

Nothing is downloaded: tfds cases use non-existent local ``data_dir``s with ``download=False``,
and the one slow-failure case (a mistyped ``data_dir`` with downloads on) runs in a child
process whose sockets fail at once. Data cases use tiny class-per-folder copies written to a
temporary directory, and the decoded-folder cache goes there too (``JAXCNN_CACHE_DIR``).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

MAX_LEN = 400  # a message of about 300 characters, with room for a temporary path in it
AREAS = ("functional", "layers", "data", "keras", "cli")
KINDS = ("clean", "raw", "silent", "fine")
USER_TYPES = (ValueError, TypeError, KeyError, FileNotFoundError, NotADirectoryError,
              IsADirectoryError, PermissionError, FileExistsError)
USER_TYPE_NAMES = {"NonFiniteError", "DatasetNotFoundError", "SystemExit", "UsageError"}
ROOT = os.getcwd()  # the checkout under test: run from its root
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet TensorFlow's C++ start-up lines
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


class CaseTimeout(BaseException):
  """Raised by the alarm; a BaseException so that library ``except Exception`` cannot eat it."""


@dataclasses.dataclass
class Outcome:
  """An error or a result seen in a child process (the CLI), in the classifier's terms."""
  error: bool
  type: str = ""
  message: str = ""
  value: Any = None


@dataclasses.dataclass
class Case:
  area: str
  name: str
  fn: Callable[[], Any]
  expect: str  # 'error' | 'accept'
  names: tuple = ()
  check: Callable[[Any], Any] | None = None
  cls: str = ""  # its mistake class ('1'..'11', the module docstring), or '' for none
  timeout: float = 60.0
  cli: bool = False
  must_accept: bool = False
  forbid: tuple = ()


CASES: list[Case] = []


def E(area, name, fn, names=(), *, cls="", timeout=60.0, cli=False, forbid=()):
  """Registers a case that must fail with one line naming ``names``."""
  CASES.append(Case(area, name, fn, "error", tuple(names), None, cls, timeout, cli, False,
                    tuple(forbid)))


def A(area, name, fn, check=None, *, cls="", timeout=60.0, cli=False, must=False):
  """Registers a case that should be accepted, with ``check`` on the result."""
  CASES.append(Case(area, name, fn, "accept", (), check, cls, timeout, cli, must))


# ---------------------------------------------------------------------------------------------
# Fixtures: tiny data on disk, small arrays, a trained state; each built once, on first use.
# ---------------------------------------------------------------------------------------------

TMP = tempfile.mkdtemp(prefix="jaxcnn-mistakes-")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")
_lock = threading.Lock()


def once(fn):
  """Memoises a zero-argument fixture (thread-safe: CLI cases run on worker threads)."""
  box = {}
  lock = threading.Lock()

  @functools.wraps(fn)
  def wrapper():
    with lock:
      if "v" not in box:
        box["v"] = fn()
      return box["v"]
  return wrapper


def _write_folder(root, classes, per_class, shape, seed=0, ext=".png"):
  import numpy as np
  from PIL import Image
  rng = np.random.default_rng(seed)
  for c in classes:
    d = os.path.join(root, "train", c)
    os.makedirs(d, exist_ok=True)
    for i in range(per_class):
      px = rng.integers(0, 256, shape, dtype=np.uint8)
      img = Image.fromarray(px[..., 0] if shape[-1] == 1 else px)
      img.save(os.path.join(d, f"{i:04d}{ext}"))
  return root


@once
def tiny_mnist():
  """``train/<0..9>/NNNN.png``, 5 grey 28x28 images per class (50 images)."""
  return _write_folder(os.path.join(TMP, "tiny_mnist"), [str(i) for i in range(10)], 5,
                       (28, 28, 1))


@once
def tiny_cifar():
  """``train/<cifar class>/NNNN.png``, 5 RGB 32x32 images per class (50 images)."""
  return _write_folder(os.path.join(TMP, "tiny_cifar"), CIFAR_CLASSES, 5, (32, 32, 3), seed=1)


def fresh_folder(tag, classes=None, per_class=2, shape=(32, 32, 3)):
  """A new small folder (for cases that break or change it)."""
  return _write_folder(os.path.join(TMP, tag), classes or CIFAR_CLASSES, per_class, shape,
                       seed=hash(tag) % 1000)


def a_file(tag="a_file.txt"):
  path = os.path.join(TMP, tag)
  with open(path, "w") as f:
    f.write("not a directory\n")
  return path


def key(i=0):
  import jax
  return jax.random.PRNGKey(i)


def randn(*shape, seed=0):
  import numpy as np
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@once
def xy_mnist():
  """64 float images in [0, 1] ``[64, 28, 28, 1]`` and int labels 0..9."""
  import numpy as np
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (64, 28, 28, 1)).astype(np.uint8)
  return x, (np.arange(64) % 10).astype(np.int32)


def x01():
  import numpy as np
  x, y = xy_mnist()
  return x.astype(np.float32) / 255.0, y


@once
def xy_cifar():
  import numpy as np
  rng = np.random.default_rng(1)
  return (rng.random((32, 32, 32, 3), dtype=np.float32),
          (np.arange(32) % 10).astype(np.int32))


def small_mlp():
  from jaxcnn import models
  return models.get_model("mlp", hidden=(16,), dropout=0.0)


def fit_quiet(model, data, **kw):
  from jaxcnn import train
  kw.setdefault("epochs", 1)
  kw.setdefault("batch_size", 16)
  kw.setdefault("verbose", 0)
  return train.fit(model, data, **kw)


@once
def baseline():
  """``fit`` of the small MLP on the [0, 1] float images: the reference for adapted inputs."""
  return fit_quiet(small_mlp(), x01())


@once
def mlp_state():
  return baseline().state


@once
def cnn_state():
  """A freshly initialised tutorial-CNN state (32x32x3); no training needed for shape cases."""
  import optax
  from jaxcnn import models, train
  return train.create_train_state(models.get_model("tutorial_cnn"), key(), (1, 32, 32, 3),
                                  optax.adam(1e-3))


def close(a, b, rtol=1e-4, atol=1e-5):
  import numpy as np
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    return f"shape {a.shape} != expected {b.shape}"
  if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
    return f"max |diff| {np.nanmax(np.abs(a - b)):.3g}"
  return None


def has_nan(y):
  import numpy as np
  return None if np.isnan(np.asarray(y, np.float64)).any() else "NaN input gave a NaN-free output"


def shape_is(*shape):
  def check(y):
    import numpy as np
    s = tuple(np.shape(y))
    return None if s == shape else f"shape {s}, expected {shape}"
  return check


def init(module, *shape, **kw):
  """``module.init`` traced only (``jax.eval_shape``): every check runs, nothing compiles."""
  import jax
  import jax.numpy as jnp
  return jax.eval_shape(lambda: module.init(key(), jnp.ones(shape), **kw))


def ev_apply(module, variables, x_shape, **kw):
  """``module.apply(variables, ones(x_shape))`` traced only; ``variables`` may be shapes."""
  import jax
  import jax.numpy as jnp
  return jax.eval_shape(lambda v: module.apply(v, jnp.ones(x_shape), **kw), variables)


def apply_(module, shape, x_shape=None, **kw):
  import jax
  import jax.numpy as jnp
  v = module.init(key(), jnp.ones(shape))
  return jax.eval_shape(lambda: module.apply(v, jnp.ones(x_shape or shape), **kw))


# ---------------------------------------------------------------------------------------------
# Functional ops
# ---------------------------------------------------------------------------------------------

def _F():
  from jaxcnn import functional as F
  return F


def conv_ref(x, w):
  """Independent float64 cross-correlation, VALID, stride 1 (NHWC, HWIO)."""
  import numpy as np
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  kh, kw = w.shape[:2]
  out = np.zeros((x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1, w.shape[3]))
  for i in range(out.shape[1]):
    for j in range(out.shape[2]):
      out[:, i, j] = np.einsum("bhwc,hwco->bo", x[:, i:i + kh, j:j + kw], w)
  return out


def _functional():
  F = _F
  X4 = lambda: randn(2, 6, 6, 3)
  W = lambda cin=3, cout=4, k=3: randn(k, k, cin, cout, seed=2)
  f = "functional"
  # conv: shapes and ranks
  E(f, "conv x rank 3 with a 2-D kernel", lambda: F().conv(randn(2, 6, 6), W()),
    [("rank", "ndim", "dims", "(2, 6, 6)", "[b, w, c]")])
  E(f, "conv x rank 2", lambda: F().conv(randn(6, 6), W()), [("rank", "ndim", "(6, 6)")])
  E(f, "conv x rank 6", lambda: F().conv(randn(1, 2, 2, 2, 2, 3), W()),
    [("rank", "ndim", "(1, 2, 2, 2, 2, 3)")])
  E(f, "conv kernel rank 3 for a 2-D x", lambda: F().conv(X4(), randn(3, 3, 4)),
    [("w", "kernel")])
  E(f, "conv channel mismatch (x C=3, w C_in=4)", lambda: F().conv(X4(), W(cin=4)),
    [("channel", "c_in", "in_channels", "in-channels")])
  E(f, "conv groups=0", lambda: F().conv(X4(), W(), groups=0), ["groups"])
  E(f, "conv groups=2 with C_in=3", lambda: F().conv(X4(), W(cin=1, cout=4), groups=2),
    ["groups"])
  E(f, "conv groups=1.5", lambda: F().conv(X4(), W(), groups=1.5), ["groups", "1.5"])
  E(f, "conv stride=0", lambda: F().conv(X4(), W(), stride=0), ["stride"])
  E(f, "conv stride=-1", lambda: F().conv(X4(), W(), stride=-1), ["stride", "-1"])
  E(f, "conv stride with 3 values for 2-D", lambda: F().conv(X4(), W(), stride=(1, 2, 1)),
    ["stride"])
  E(f, "conv padding='HALF'", lambda: F().conv(X4(), W(), padding="HALF"), ["padding", "HALF"])
  E(f, "conv padding=-1", lambda: F().conv(X4(), W(), padding=-1), ["padding", "-1"])
  E(f, "conv dilation=0", lambda: F().conv(X4(), W(), dilation=0), ["dilation"])
  E(f, "conv kernel 7 on a 6x6 input (VALID)", lambda: F().conv(X4(), W(k=7)),
    [("7", "kernel", "too small", "output size")])
  E(f, "conv bias of the wrong length", lambda: F().conv(X4(), W(), randn(3)),
    [("b", "bias")])
  A(f, "conv padding='same' (lower case)", lambda: F().conv(X4(), W(), padding="same"),
    shape_is(2, 6, 6, 4))
  A(f, "conv int32 images", lambda: F().conv(X4().round().astype("int32"), W()),
    lambda y: close(y, conv_ref(X4().round(), W()), rtol=1e-4, atol=1e-3))
  A(f, "conv uint8 images 0..255 (no overflow)",
    lambda: F().conv((X4() * 0 + 255).astype("uint8"), W()),
    lambda y: close(y, conv_ref(X4() * 0 + 255, W()), rtol=1e-4, atol=1e-2))
  A(f, "conv NaN in x propagates", lambda: F().conv(_nan(X4()), W()), has_nan)
  A(f, "conv nested lists", lambda: F().conv(X4().tolist(), W().tolist()),
    lambda y: close(y, conv_ref(X4(), W()), atol=1e-4))
  E(f, "conv2d on a 1-D input", lambda: F().conv2d(randn(2, 6, 3), randn(3, 3, 4)),
    [("rank", "ndim", "2-d", "conv2d", "(2, 6, 3)")])
  E(f, "conv1d on a 2-D input", lambda: F().conv1d(X4(), randn(3, 3, 4)),
    [("rank", "ndim", "1-d", "conv1d", "(2, 6, 6, 3)")])
  E(f, "conv3d on a 2-D input", lambda: F().conv3d(X4(), W()),
    [("rank", "ndim", "3-d", "conv3d", "(2, 6, 6, 3)")])
  E(f, "convolve groups=0", lambda: F().convolve(X4(), W(), groups=0), ["groups"])
  E(f, "convolve channel mismatch", lambda: F().convolve(X4(), W(cin=2)),
    [("channel", "c_in", "in_channels")])
  E(f, "patches kernel_size=0", lambda: F().patches(X4(), 0), ["kernel_size"])
  E(f, "patches x rank 2", lambda: F().patches(randn(6, 6), 3), [("rank", "ndim", "(6, 6)")])
  E(f, "patches stride=0", lambda: F().patches(X4(), 3, stride=0), ["stride"])
  E(f, "conv_via_patches channel mismatch", lambda: F().conv_via_patches(X4(), W(cin=5)),
    [("channel", "c_in", "in_channels")])
  # pools
  for op in ("max_pool", "avg_pool", "sum_pool"):
    g = lambda op=op: getattr(F(), op)
    E(f, f"{op} window=0", lambda g=g: g()(X4(), 0), ["window"])
    E(f, f"{op} window=-2", lambda g=g: g()(X4(), -2), ["window", "-2"])
    E(f, f"{op} stride=0", lambda g=g: g()(X4(), 2, 0), ["stride"])
    E(f, f"{op} padding='bad'", lambda g=g: g()(X4(), 2, padding="bad"), ["padding", "bad"])
    E(f, f"{op} x rank 2", lambda g=g: g()(randn(6, 6), 2), [("rank", "ndim", "(6, 6)")])
    E(f, f"{op} window 8 on a 6x6 input", lambda g=g: g()(X4(), 8),
      [("8", "window", "too small")])
  E(f, "max_pool window with 3 values for 2-D", lambda: F().max_pool(X4(), (2, 2, 2)),
    ["window"])
  A(f, "max_pool NaN propagates", lambda: F().max_pool(_nan(X4()), 2), has_nan)
  A(f, "avg_pool NaN propagates", lambda: F().avg_pool(_nan(X4()), 2), has_nan)
  A(f, "max_pool int images keep exact values",
    lambda: F().max_pool((X4() * 10).round().astype("int32"), 2),
    lambda y: close(y, _np_pool((X4() * 10).round(), 2, "max")))
  A(f, "avg_pool int images give the exact mean",
    lambda: F().avg_pool((X4() * 10).round().astype("int32"), 2),
    lambda y: close(y, _np_pool((X4() * 10).round(), 2, "mean"), atol=1e-5))
  E(f, "lp_pool p=0", lambda: F().lp_pool(X4(), 0, 2), [("`p`", "p (", "p=", " p ")])
  E(f, "lp_pool p=-1", lambda: F().lp_pool(X4(), -1, 2), ["-1"])
  E(f, "lp_pool p='2' (a string)", lambda: F().lp_pool(X4(), "2", 2), ["'2'"])
  E(f, "lp_pool window=0", lambda: F().lp_pool(X4(), 2, 0), ["window"])
  E(f, "global_avg_pool x rank 2", lambda: F().global_avg_pool(randn(4, 3)),
    [("rank", "ndim", "(4, 3)")])
  A(f, "global_max_pool NaN propagates", lambda: F().global_max_pool(_nan(X4())), has_nan)
  # dropout
  E(f, "dropout rate=1.5", lambda: F().dropout(key(), X4(), 1.5), ["rate", "1.5"])
  E(f, "dropout rate=-0.1", lambda: F().dropout(key(), X4(), -0.1), ["rate", "-0.1"])
  E(f, "dropout rate='0.5' (a string)", lambda: F().dropout(key(), X4(), "0.5"),
    ["rate", "0.5"], cls="11")
  E(f, "dropout key=None", lambda: F().dropout(None, X4(), 0.5), ["key"])
  E(f, "dropout key=0 (an int, not a key)", lambda: F().dropout(0, X4(), 0.5), ["key"])
  A(f, "dropout rate=1.0 drops everything (finite zeros)", lambda: F().dropout(key(), X4(), 1.0),
    lambda y: None if _allzero(y) else "rate=1.0 did not give finite zeros")
  E(f, "channel_dropout rate=2", lambda: F().channel_dropout(key(), X4(), 2.0), ["rate"])
  # dense, flatten, activations
  E(f, "dense x last dim 5 vs w rows 4", lambda: F().dense(randn(2, 5), randn(4, 3)),
    [("5",), ("4",)])
  E(f, "dense w rank 1", lambda: F().dense(randn(2, 4), randn(4)), [("w", "kernel")])
  E(f, "dense bias of the wrong length", lambda: F().dense(randn(2, 4), randn(4, 3), randn(4)),
    [("b", "bias")])
  A(f, "dense on a single vector [in]", lambda: F().dense(randn(4), randn(4, 3)), shape_is(3))
  E(f, "flatten a scalar", lambda: F().flatten(randn()), [("rank", "ndim", "scalar", "()")])
  E(f, "leaky_relu negative_slope='0.1'", lambda: F().leaky_relu(X4(), "0.1"),
    ["negative_slope"])
  E(f, "elu alpha='1'", lambda: F().elu(X4(), "1"), ["alpha"])
  E(f, "get_activation('rleu')", lambda: F().get_activation("rleu"), ["rleu"])
  E(f, "get_activation(5)", lambda: F().get_activation(5), [("5", "int")])
  E(f, "softmax axis=2 on [B, K]", lambda: F().softmax(randn(4, 3), axis=2), ["axis"])
  A(f, "relu NaN propagates", lambda: F().relu(_nan(X4())), has_nan)
  A(f, "softmax NaN propagates", lambda: F().softmax(_nan(randn(4, 3))), has_nan)
  # losses
  lg = lambda: randn(4, 10)
  E(f, "cross_entropy label 10 of 10 classes", lambda: F().cross_entropy(lg(), [1, 2, 10, 3]),
    ["10"], cls="4")
  E(f, "cross_entropy label -1", lambda: F().cross_entropy(lg(), [1, 2, -1, 3]), ["-1"], cls="4")
  E(f, "cross_entropy float labels 2.7", lambda: F().cross_entropy(lg(), [1.0, 2.7, 3.0, 0.0]),
    [("label",)], cls="4")
  E(f, "cross_entropy one-hot labels [B, K]",
    lambda: F().cross_entropy(lg(), __import__("numpy").eye(10, dtype="int32")[:4]),
    [("label",), ("(4, 10)", "one-hot", "rank", "ndim", "[b]")])
  E(f, "cross_entropy rank-1 logits", lambda: F().cross_entropy(randn(10), 3),
    ["logits"], cls="11")
  E(f, "cross_entropy labels length 3 for 4 logits",
    lambda: F().cross_entropy(lg(), [1, 2, 3]), [("3",), ("4",)])
  E(f, "cross_entropy label_smoothing=1.0", lambda: F().cross_entropy(lg(), [1, 2, 3, 4],
                                                                       label_smoothing=1.0),
    ["label_smoothing"])
  E(f, "cross_entropy label_smoothing=-0.1",
    lambda: F().cross_entropy(lg(), [1, 2, 3, 4], label_smoothing=-0.1), ["label_smoothing"])
  A(f, "cross_entropy NaN logits give a NaN loss",
    lambda: F().cross_entropy(_nan(lg()), [1, 2, 3, 4]), has_nan)
  E(f, "mse pred [4, 1] vs target [4] (would broadcast to [4, 4])",
    lambda: F().mse(randn(4, 1), randn(4)), [("(4, 1)", "shape")])
  E(f, "mse pred [3] vs target [4]", lambda: F().mse(randn(3), randn(4)), [("(3,)", "shape")])
  # batch norm
  ones = lambda n: __import__("numpy").ones(n, "float32")
  zeros = lambda n: __import__("numpy").zeros(n, "float32")
  E(f, "batch_norm mean of 4 channels for C=3",
    lambda: F().batch_norm(X4(), ones(3), zeros(3), zeros(4), ones(3), train=False),
    ["mean"])
  E(f, "batch_norm momentum=1.5",
    lambda: F().batch_norm(X4(), ones(3), zeros(3), zeros(3), ones(3), train=True, momentum=1.5),
    ["momentum"])
  E(f, "batch_norm epsilon=-1",
    lambda: F().batch_norm(X4(), ones(3), zeros(3), zeros(3), ones(3), train=True, epsilon=-1.0),
    ["epsilon"])
  E(f, "batch_norm x rank 1",
    lambda: F().batch_norm(randn(3), ones(3), zeros(3), zeros(3), ones(3), train=True),
    [("rank", "ndim", "(3,)")])
  A(f, "batch_norm NaN propagates",
    lambda: F().batch_norm(_nan(X4()), ones(3), zeros(3), zeros(3), ones(3), train=True)[0],
    has_nan)


def _nan(x):
  x = x.copy()
  x.flat[0] = float("nan")
  return x


def _allzero(y):
  import numpy as np
  y = np.asarray(y)
  return np.isfinite(y).all() and (y == 0).all()


def _np_pool(x, k, how):
  import numpy as np
  b, h, w, c = x.shape
  x = x[:, :h // k * k, :w // k * k].reshape(b, h // k, k, w // k, k, c)
  return getattr(np, how)(x, axis=(2, 4))


# ---------------------------------------------------------------------------------------------
# Layers, models, shapes, metrics
# ---------------------------------------------------------------------------------------------

def _L():
  from jaxcnn import layers
  return layers


def _M():
  from jaxcnn import models
  return models


def _layers():
  L, M = _L, _M
  a = "layers"
  X = (1, 8, 8, 3)
  E(a, "Conv(0, 3)", lambda: init(L().Conv(0, 3), *X), ["features"], cls="10")
  E(a, "Conv(-1, 3)", lambda: init(L().Conv(-1, 3), *X), ["features", "-1"], cls="10")
  E(a, "Conv(16.5, 3)", lambda: init(L().Conv(16.5, 3), *X), ["features", "16.5"], cls="10")
  E(a, "Conv('16', 3)", lambda: init(L().Conv("16", 3), *X), ["features"], cls="10")
  E(a, "Conv(16, 0)", lambda: init(L().Conv(16, 0), *X), ["kernel_size"], cls="10")
  E(a, "Conv(16, 3, stride=0)", lambda: init(L().Conv(16, 3, stride=0), *X), ["stride"],
    cls="10")
  E(a, "Conv(16, 3, padding='HALF')", lambda: init(L().Conv(16, 3, padding="HALF"), *X),
    ["padding"], cls="10")
  E(a, "Conv(16, 3, dilation=0)", lambda: init(L().Conv(16, 3, dilation=0), *X), ["dilation"],
    cls="10")
  E(a, "Conv(16, 3, groups=0)", lambda: init(L().Conv(16, 3, groups=0), *X), ["groups"],
    cls="10")
  E(a, "Conv(16, 3, groups=5) on 3 channels", lambda: init(L().Conv(16, 3, groups=5), *X),
    ["groups"], cls="10")
  E(a, "Conv(16, 3, activation='rleu')", lambda: init(L().Conv(16, 3, activation="rleu"), *X),
    ["rleu"], cls="10")
  E(a, "Conv kernel 5 on a 3x3 input (names the layer)",
    lambda: init(L().Sequential([L().Conv(4, 3), L().Conv(4, 5)]), 1, 5, 5, 3),
    [("conv",), ("5",)], cls="10")
  E(a, "Conv kernel (3, 3) on a rank-3 input", lambda: init(L().Conv(4, (3, 3)), 1, 8, 8),
    [("rank", "ndim", "(1, 8, 8)", "kernel_size", "[b, w, c]")], cls="1")
  E(a, "Dense(0)", lambda: init(L().Dense(0), 1, 4), ["features"], cls="10")
  E(a, "Dense(-5)", lambda: init(L().Dense(-5), 1, 4), ["features", "-5"], cls="10")
  E(a, "Dense(2.5)", lambda: init(L().Dense(2.5), 1, 4), ["features", "2.5"], cls="10")
  E(a, "Dense('10')", lambda: init(L().Dense("10"), 1, 4), ["features"], cls="10")
  E(a, "Dense(10, activation='bogus')", lambda: init(L().Dense(10, activation="bogus"), 1, 4),
    ["bogus"], cls="10")
  E(a, "MaxPool(0)", lambda: init(L().MaxPool(0), *X), ["window"], cls="10")
  E(a, "MaxPool(2, stride=0)", lambda: init(L().MaxPool(2, stride=0), *X), ["stride"], cls="10")
  E(a, "MaxPool(2, padding='bad')", lambda: init(L().MaxPool(2, padding="bad"), *X),
    ["padding"], cls="10")
  E(a, "MaxPool(5) on a 3x3 map (names the layer)",
    lambda: init(L().Sequential([L().Conv(4, 6), L().MaxPool(5)]), *X),
    [("pool",), ("5",)], cls="10")
  E(a, "AvgPool(-1)", lambda: init(L().AvgPool(-1), *X), ["window", "-1"], cls="10")
  E(a, "LpPool(p=0, window=2)", lambda: init(L().LpPool(0, 2), *X), [("`p`", "p (", "p=")],
    cls="10")
  E(a, "LpPool(p=2, window=0)", lambda: init(L().LpPool(2, 0), *X), ["window"], cls="10")
  E(a, "Dropout(1.5)", lambda: init(L().Dropout(1.5), *X), ["rate", "1.5"], cls="10")
  E(a, "Dropout(-0.5)", lambda: init(L().Dropout(-0.5), *X), ["rate", "-0.5"], cls="10")
  E(a, "Dropout('0.5') (a string)", lambda: init(L().Dropout("0.5"), *X), ["rate", "0.5"],
    cls="11")
  E(a, "Dropout(0.5) train=True without a dropout rng",
    lambda: apply_(L().Dropout(0.5), X, train=True), [("dropout",), ("rng", "key")])
  E(a, "ChannelDropout(2.0)", lambda: init(L().ChannelDropout(2.0), *X), ["rate"], cls="10")
  E(a, "BatchNorm(momentum=1.5)", lambda: init(L().BatchNorm(momentum=1.5), *X), ["momentum"],
    cls="10")
  E(a, "BatchNorm(epsilon=-1)", lambda: init(L().BatchNorm(epsilon=-1.0), *X), ["epsilon"],
    cls="10")
  E(a, "BatchNorm train=True with immutable batch_stats",
    lambda: apply_(L().BatchNorm(), X, train=True), ["batch_stats"])
  E(a, "BatchNorm apply with params only (no batch_stats)",
    lambda: ev_apply(L().BatchNorm(), {"params": init(L().BatchNorm(), *X)["params"]}, X),
    ["batch_stats"])
  E(a, "Activation('rleu')", lambda: init(L().Activation("rleu"), *X), ["rleu"], cls="10")
  E(a, "Sequential([])", lambda: init(L().Sequential([]), *X), [("empty", "layers")])
  E(a, "Sequential with a non-callable 5", lambda: init(L().Sequential([L().Flatten(), 5]), *X),
    [("5",)])
  # models by name and kwargs
  E(a, "get_model('tutorial-cnn')", lambda: M().get_model("tutorial-cnn"), ["tutorial-cnn"])
  E(a, "get_model('resnet')", lambda: M().get_model("resnet"), ["resnet"])
  E(a, "get_model(None)", lambda: M().get_model(None), ["None"])
  E(a, "get_model('mlp', hiden=(64,)) (typo)", lambda: M().get_model("mlp", hiden=(64,)),
    ["hiden"])
  E(a, "get_model('mlp', num_classes=0)", lambda: M().get_model("mlp", num_classes=0),
    ["num_classes"])
  E(a, "get_model('mlp', num_classes=2.5)",
    lambda: init(M().get_model("mlp", num_classes=2.5), 1, 28, 28, 1), ["num_classes"])
  E(a, "get_model('tutorial_cnn', dtype='float16')",
    lambda: init(M().get_model("tutorial_cnn", dtype="float16"), 1, 32, 32, 3),
    ["float16"], cls="11")
  E(a, "get_model('tutorial_cnn', dtype='int32')",
    lambda: init(M().get_model("tutorial_cnn", dtype="int32"), 1, 32, 32, 3), ["int32"])
  E(a, "get_model('stridenet', head='avg')", lambda: M().get_model("stridenet", head="avg"),
    ["head", "avg"])
  E(a, "get_model('mlp', dropout=1.5)",
    lambda: init(M().get_model("mlp", dropout=1.5), 1, 28, 28, 1), ["dropout", "1.5"])
  E(a, "get_model('mlp', hidden=(0,))",
    lambda: init(M().get_model("mlp", hidden=(0,)), 1, 28, 28, 1), [("hidden", "features")])
  E(a, "get_model('tutorial_cnn', hidden=0)",
    lambda: init(M().get_model("tutorial_cnn", hidden=0), 1, 32, 32, 3),
    [("hidden", "features")])
  # spatial rank (class 1) and input shapes
  E(a, "tutorial_cnn init on [B, H, W] (28, 28)",
    lambda: init(M().get_model("tutorial_cnn"), 1, 28, 28),
    [("(1, 28, 28)", "rank 3", "3-d", "ndim", "[b, h, w]")], cls="1")
  E(a, "stridenet init on [B, H, W] (32, 32)",
    lambda: init(M().get_model("stridenet"), 1, 32, 32),
    [("(1, 32, 32)", "rank 3", "3-d", "ndim", "[b, h, w]")], cls="1")
  E(a, "tutorial_cnn init on a 5-D input", lambda: init(M().get_model("tutorial_cnn"),
                                                        1, 4, 32, 32, 3),
    [("(1, 4, 32, 32, 3)", "rank 5", "5-d", "ndim")], cls="1")
  E(a, "summary(tutorial_cnn, (32, 32, 3)) without a batch axis",
    lambda: _summary(M().get_model("tutorial_cnn"), (32, 32, 3)),
    [("(32, 32, 3)", "rank 3", "batch", "ndim")], cls="1")
  A(a, "mlp init on [B, H, W] flattens (no channel axis needed)",
    lambda: init(M().get_model("mlp"), 1, 28, 28), lambda v: None)
  E(a, "tutorial_cnn on an 8x8 image (too small; names the layer)",
    lambda: init(M().get_model("tutorial_cnn"), 1, 8, 8, 3), [("conv", "pool")], cls="10")
  E(a, "apply with 1 channel after init with 3",
    lambda: ev_apply(M().get_model("tutorial_cnn"),
                     init(M().get_model("tutorial_cnn"), 1, 32, 32, 3), (1, 32, 32, 1)),
    [("channel", "(3, 3, 1, 32)", "(3, 3, 3, 32)", "shape")])
  E(a, "mlp trained on 28x28x1 applied to 32x32x3",
    lambda: ev_apply(M().get_model("mlp"), init(M().get_model("mlp"), 1, 28, 28, 1),
                     (1, 32, 32, 3)),
    [("784", "3072", "shape")])
  E(a, "apply with variables['params'] instead of variables",
    lambda: ev_apply(M().get_model("mlp"), init(M().get_model("mlp"), 1, 28, 28, 1)["params"],
                     (1, 28, 28, 1)),
    [("params",)])
  A(a, "summary() repr is short (no dataclass dump in a notebook)",
    lambda: _summary(M().get_model("tutorial_cnn"), (1, 32, 32, 3)),
    lambda s: None if len(repr(s)) < 2000 else f"repr is {len(repr(s))} characters")
  E(a, "conv_output_shape kernel 0",
    lambda: __import__("jaxcnn.shapes").shapes.conv_output_shape((1, 8, 8, 3), 0, 4),
    ["kernel_size"])
  E(a, "conv_output_shape input rank 2",
    lambda: __import__("jaxcnn.shapes").shapes.conv_output_shape((8, 3), 3, 4),
    [("(8, 3)", "rank", "input_shape")])
  # metrics
  me = lambda: __import__("jaxcnn.metrics").metrics
  E(a, "accuracy with rank-1 logits", lambda: me().accuracy(randn(10), __import__("numpy")
                                                            .asarray(3)), ["logits"], cls="11")
  E(a, "confusion_matrix with label 10 of 10 classes",
    lambda: me().confusion_matrix(__import__("numpy").asarray([1, 10]),
                                  __import__("numpy").asarray([1, 2]), 10), ["10"], cls="4")
  E(a, "confusion_matrix num_classes=0",
    lambda: me().confusion_matrix(__import__("numpy").asarray([0]),
                                  __import__("numpy").asarray([0]), 0), ["num_classes"])
  E(a, "top_k_accuracy k=0", lambda: me().top_k_accuracy(randn(4, 10), __import__("numpy")
                                                         .asarray([1, 2, 3, 4]), k=0), ["k"])
  E(a, "top_k_accuracy k=20 with 10 classes",
    lambda: me().top_k_accuracy(randn(4, 10), __import__("numpy").asarray([1, 2, 3, 4]), k=20),
    ["20"])


def _summary(model, shape):
  from jaxcnn import inspect
  with contextlib.redirect_stdout(io.StringIO()):
    return inspect.summary(model, shape)


# ---------------------------------------------------------------------------------------------
# Data loaders
# ---------------------------------------------------------------------------------------------

def _D():
  from jaxcnn import data
  return data


def mk(name="mnist", split="train", batch_size=10, **kw):
  kw.setdefault("train", True)
  if "image_folder" not in kw and "data_dir" not in kw:
    kw["image_folder"] = tiny_mnist() if name == "mnist" else tiny_cifar()
  return _D().make_loader(name, split, batch_size, **kw)


def _n_examples(loader):
  return getattr(loader, "num_examples", None)


def _data():
  D = _D
  d = "data"
  nodir = lambda tag="typo": os.path.join(TMP, "no_such_dir", tag)
  E(d, "get_info('cifar-10')", lambda: D().get_info("cifar-10"), ["cifar-10"])
  E(d, "make_loader('cifar100')", lambda: mk("cifar100"), ["cifar100"])
  E(d, "make_loader(None) from tfds", lambda: D().make_loader(None, "train", 8, train=True),
    ["name"])
  E(d, "split 'tran' (typo) of a folder", lambda: mk(split="tran"), ["tran"])
  E(d, "split 'validation' of a folder with only train", lambda: mk(split="validation"),
    ["validation"])
  E(d, "split 'train[:200%]'", lambda: mk(split="train[:200%]"), ["200%"])
  E(d, "split 'train[30:10]' (empty)", lambda: mk(split="train[30:10]"),
    [("train[30:10]", "30:10", "empty")])
  E(d, "split 'train[:abc]'", lambda: mk(split="train[:abc]"), ["abc"])
  E(d, "split 'train[:45000]' of a 50-image folder",
    lambda: mk(split="train[:45000]"), ["45000"])
  E(d, "batch_size=0", lambda: mk(batch_size=0), ["batch_size"])
  E(d, "batch_size=-1", lambda: mk(batch_size=-1), ["batch_size", "-1"])
  E(d, "batch_size=2.5", lambda: mk(batch_size=2.5), ["batch_size", "2.5"])
  E(d, "batch_size='32' (a string)", lambda: mk(batch_size="32"), ["batch_size"])
  E(d, "train batch_size 64 > 50 examples", lambda: mk(batch_size=64), ["64"])
  E(d, "kind='tfds'", lambda: mk(kind="tfds"), ["tfds"])
  E(d, "augment=('crop', 'flipp')", lambda: mk(augment=("crop", "flipp")), ["flipp"])
  E(d, "make_augment('crop,flipp')", lambda: D().augment.make_augment("crop,flipp"), ["flipp"])
  A(d, "augment='crop,flip' (a string)", lambda: mk(augment="crop,flip"),
    lambda ld: None if _n_examples(ld) == 50 else f"num_examples {_n_examples(ld)}")
  E(d, "image_folder does not exist", lambda: mk(image_folder=nodir()), ["typo"])
  E(d, "image_folder is a plain file", lambda: mk(image_folder=a_file()), ["a_file.txt"])
  E(d, "image_folder points at root/train, not root",
    lambda: mk(image_folder=os.path.join(tiny_mnist(), "train")), [("train",)])
  E(d, "cifar10 with a folder of MNIST classes", lambda: mk("cifar10", image_folder=tiny_mnist()),
    [("class",)])
  E(d, "mnist with a folder of RGB 32x32 images",
    lambda: mk("mnist", image_folder=fresh_folder("rgb_digits", [str(i) for i in range(10)])),
    [("(32, 32", "32x32", "shape")])
  E(d, "an empty class folder", lambda: mk("cifar10", image_folder=_empty_class()), ["truck"])
  E(d, "a corrupt image file", lambda: mk("cifar10", image_folder=_corrupt()), ["0000.png"])
  E(d, "one image of another size", lambda: mk("cifar10", image_folder=_odd_size(),
                                              cache=False), [("0001.png", "(30, 30", "30x30")])
  A(d, "name=None with a folder computes statistics",
    lambda: mk(None, image_folder=tiny_cifar()),
    lambda ld: None if _n_examples(ld) == 50 else f"num_examples {_n_examples(ld)}")
  E(d, "mean of 1 value for 3 channels", lambda: mk("cifar10", mean=(0.5,), std=(0.2,)),
    ["mean"])
  E(d, "std=0", lambda: mk("mnist", mean=(0.1,), std=(0.0,)), ["std"])
  E(d, "process_index=3 of 2", lambda: mk(process_index=3, process_count=2), ["process_index"])
  E(d, "tfds data_dir that does not exist (download=False)",
    lambda: mk("cifar10", data_dir=nodir("tfds"), download=False, kind="device"),
    [("tfds", "no_such_dir")])
  E(d, "tfds split 'test' offline (download=False)",
    lambda: D().load_arrays("mnist", "test", data_dir=nodir("tfds2"), download=False),
    [("mnist",)])
  E(d, "DeviceLoader.epoch(start_step=-1)", lambda: list(mk().epoch(0, start_step=-1)),
    ["start_step"])
  E(d, "DeviceLoader.epoch(start_step=99) past the epoch",
    lambda: list(mk().epoch(0, start_step=99)), ["99"])
  E(d, "normalize with 2 means for 1 channel",
    lambda: D().normalize(__import__("numpy").zeros((1, 4, 4, 1), "uint8"), (0.1, 0.2),
                          (0.3, 0.3)), ["mean"])
  A(d, "'~' in image_folder is expanded", _tilde, lambda ld: None if _n_examples(ld) == 50
    else f"num_examples {_n_examples(ld)}", cls="11", must=True)
  A(d, "cache serves new pixels after an image is overwritten in place", _stale_cache,
    lambda r: r, cls="5")
  A(d, "unwritable cache dir falls back to running uncached", _bad_cache,
    lambda r: r, cls="8", must=True)
  E(d, "mistyped data_dir with downloads on fails within 30 s and creates nothing",
    _slow_tfds, [("data_dir", "tfds", "typo")], cls="7", timeout=90)


def _empty_class():
  root = fresh_folder("empty_class", per_class=1)
  d = os.path.join(root, "train", "truck")
  for f in os.listdir(d):
    os.unlink(os.path.join(d, f))
  return root


def _corrupt():
  root = fresh_folder("corrupt", per_class=2)
  with open(os.path.join(root, "train", "cat", "0000.png"), "wb") as f:
    f.write(b"this is not a png")
  return root


def _odd_size():
  import numpy as np
  from PIL import Image
  root = fresh_folder("odd_size", per_class=2)
  Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(
      os.path.join(root, "train", "dog", "0001.png"))
  return root


def _tilde():
  old = os.environ.get("HOME")
  os.environ["HOME"] = TMP
  try:
    tiny_mnist()
    return mk(image_folder="~/tiny_mnist")
  finally:
    if old is None:
      del os.environ["HOME"]
    else:
      os.environ["HOME"] = old


def _stale_cache():
  import numpy as np
  from PIL import Image
  root = fresh_folder("stale", per_class=1)
  a1 = _D().load_arrays("cifar10", "train", image_folder=root)
  path = os.path.join(root, "train", "airplane", "0000.png")
  Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(path)  # in place: same inode, so
  # the class folder's modification time does not change
  a2 = _D().load_arrays("cifar10", "train", image_folder=root)
  i = int(np.flatnonzero(a2["label"] == 0)[0])
  if (a2["image"][i] == 7).all():
    return None
  same = (a2["image"][i] == a1["image"][i]).all()
  return "served the old pixels from the cache" if same else "pixels are neither old nor new"


def _bad_cache():
  root = fresh_folder("badcache", per_class=1)
  cache_dir = os.path.join(a_file("cache_is_a_file"), "cache")
  arrays = _D().load_arrays("cifar10", "train", image_folder=root, cache_dir=cache_dir)
  n = arrays["label"].shape[0]
  return None if n == 10 else f"{n} images, expected 10"


_SLOW_TFDS = r"""
import os, socket, sys, time
def _refuse(*a, **k):
  raise OSError(101, 'Network is unreachable (mocked by tests/mistakes_sweep.py)')
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = lambda *a, **k: (_ for _ in ()).throw(socket.gaierror(-3, 'offline (mock)'))
from jaxcnn import data
t = time.time()
try:
  data.load_arrays('cifar10', 'train', data_dir=sys.argv[1])
except BaseException as e:
  msg = str(e).strip()
  print('ERR', type(e).__name__, round(time.time() - t, 1), sep='\t')
  print(msg)
  sys.exit(0)
print('OK', round(time.time() - t, 1), sep='\t')
"""


def _slow_tfds():
  typo = os.path.join(TMP, "tensorflow_datsets_typo")
  r = _run([sys.executable, "-c", _SLOW_TFDS, typo], timeout=35)
  if r is None:
    return Outcome(True, "Timeout", "no answer within 35 s (download retries?)")
  rc, out, err, secs = r
  lines = out.splitlines()
  if not lines:
    return Outcome(True, "crash", (err.strip().splitlines() or ["no output"])[-1])
  head = lines[0].split("\t")
  if head[0] == "OK":
    return f"loaded something from a mistyped data_dir in {head[1]} s"
  typ, took = head[1], float(head[2])
  msg = "\n".join(lines[1:])
  if took > 30:
    return Outcome(True, typ, f"after {took:.0f} s: {msg}")
  if os.path.exists(typo):
    return Outcome(True, typ, f"created the mistyped tree {typo!r}: {msg}")
  return Outcome(True, typ, msg)


# ---------------------------------------------------------------------------------------------
# The Keras-like API: fit / evaluate / predict / plots
# ---------------------------------------------------------------------------------------------

def _T():
  from jaxcnn import train
  return train


def loss_like_baseline(h):
  b = baseline()
  if not hasattr(h, "get") or "loss" not in h:
    return f"no 'loss' in {type(h).__name__}"
  return close(h["loss"], b["loss"], rtol=1e-3, atol=1e-4)


def finite_loss(h):
  import numpy as np
  return None if np.isfinite(h["loss"]).all() else f"loss {h['loss']}"


def _keras():
  import numpy as np
  T = _T
  k = "keras"
  xs = lambda: x01()[0]
  ys = lambda: x01()[1]
  A(k, "fit('mlp', ...) with a model name", lambda: fit_quiet("mlp", x01()), finite_loss,
    cls="9", must=True)
  A(k, "fit on uint8 images scales them like x / 255",
    lambda: fit_quiet(small_mlp(), xy_mnist()), loss_like_baseline, cls="9", must=True)
  E(k, "fit epochs=0", lambda: fit_quiet(small_mlp(), x01(), epochs=0), ["epochs"], cls="9")
  E(k, "fit epochs=-1", lambda: fit_quiet(small_mlp(), x01(), epochs=-1), ["epochs", "-1"],
    cls="9")
  E(k, "fit epochs=2.5", lambda: fit_quiet(small_mlp(), x01(), epochs=2.5), ["epochs", "2.5"])
  E(k, "fit epochs='3'", lambda: fit_quiet(small_mlp(), x01(), epochs="3"), ["epochs"])
  E(k, "fit batch_size=0", lambda: fit_quiet(small_mlp(), x01(), batch_size=0), ["batch_size"])
  E(k, "fit batch_size=-4", lambda: fit_quiet(small_mlp(), x01(), batch_size=-4),
    ["batch_size", "-4"])
  E(k, "fit batch_size=3.5", lambda: fit_quiet(small_mlp(), x01(), batch_size=3.5),
    ["batch_size", "3.5"])
  E(k, "fit batch_size 128 > 64 examples", lambda: fit_quiet(small_mlp(), x01(), batch_size=128),
    ["128"])
  E(k, "fit label 10 of 10 classes",
    lambda: fit_quiet(small_mlp(), (xs(), _with(ys(), 5, 10))), ["10"], cls="4",
    forbid=("step None",))
  E(k, "fit label -1", lambda: fit_quiet(small_mlp(), (xs(), _with(ys(), 7, -1))), ["-1"],
    cls="4")
  E(k, "fit float labels 2.7 (would be truncated)",
    lambda: fit_quiet(small_mlp(), (xs(), _with(ys().astype("float32"), 3, 2.7))),
    [("label",)], cls="4")
  A(k, "fit integral float labels 3.0", lambda: fit_quiet(small_mlp(),
                                                          (xs(), ys().astype("float32"))),
    loss_like_baseline, cls="4")
  A(k, "fit labels shaped [N, 1]", lambda: fit_quiet(small_mlp(), (xs(), ys()[:, None])),
    loss_like_baseline)
  E(k, "fit one-hot labels [N, 10]",
    lambda: fit_quiet(small_mlp(), (xs(), np.eye(10, dtype="int32")[ys()])),
    [("label", "y")])
  E(k, "fit x 64 examples, y 60", lambda: fit_quiet(small_mlp(), (xs(), ys()[:60])),
    [("64",), ("60",)])
  E(k, "fit [B, H, W] images to tutorial_cnn",
    lambda: fit_quiet(_M().get_model("tutorial_cnn"), (xs()[..., 0], ys())),
    [("(64, 28, 28)", "(16, 28, 28)", "(1, 28, 28)", "rank 3", "[b, h, w]", "ndim")], cls="1")
  A(k, "fit [B, H, W] images to the mlp (flattens)",
    lambda: fit_quiet(small_mlp(), (xs()[..., 0], ys())), loss_like_baseline)
  E(k, "fit validation images of another shape",
    lambda: fit_quiet(small_mlp(), x01(), validation_data=(randn(8, 32, 32, 3), ys()[:8])),
    [("(8, 32, 32, 3)", "32, 32, 3", "784", "3072", "shape")])
  E(k, "fit validation label 10", lambda: fit_quiet(small_mlp(), x01(), validation_data=(
      xs()[:8], _with(ys()[:8], 2, 10))), ["10"], cls="4")
  E(k, "fit patience without validation_data", lambda: fit_quiet(small_mlp(), x01(),
                                                                 patience=2), ["patience"])
  E(k, "fit optimizer='adamm'", lambda: fit_quiet(small_mlp(), x01(), optimizer="adamm"),
    ["adamm"])
  E(k, "fit learning_rate=-1", lambda: fit_quiet(small_mlp(), x01(), learning_rate=-1.0),
    ["learning_rate"])
  E(k, "fit learning_rate=0", lambda: fit_quiet(small_mlp(), x01(), learning_rate=0.0),
    ["learning_rate"])
  E(k, "fit learning_rate='1e-3' (a string)",
    lambda: fit_quiet(small_mlp(), x01(), learning_rate="1e-3"), ["learning_rate"])
  E(k, "fit schedule='cosinee'", lambda: fit_quiet(small_mlp(), x01(), schedule="cosinee"),
    ["cosinee"])
  E(k, "fit label_smoothing=1.5", lambda: fit_quiet(small_mlp(), x01(), label_smoothing=1.5),
    ["label_smoothing"])
  E(k, "fit parallel='pmapp'", lambda: fit_quiet(small_mlp(), x01(), parallel="pmapp"),
    ["pmapp"])
  E(k, "fit data given as a dict", lambda: fit_quiet(small_mlp(), {"image": xs(),
                                                                    "label": ys()}),
    [("dict", "data")])
  E(k, "fit x only, no labels", lambda: fit_quiet(small_mlp(), xs()), [("data", "y", "pair")])
  E(k, "fit NaN in images", lambda: fit_quiet(small_mlp(), (_nan(xs()), ys())),
    [("nan", "finite")], forbid=("step None",))
  E(k, "fit diverging learning_rate=1e30 (sgd)",
    lambda: fit_quiet(small_mlp(), x01(), optimizer="sgd", learning_rate=1e30),
    [("nan", "finite", "diverg")], cls="6", forbid=("step None",))
  E(k, "fit a model class instead of an instance",
    lambda: fit_quiet(_L().Dense, x01()), [("model",)], cls="9")
  # evaluate
  E(k, "evaluate label 10 of 10 classes",
    lambda: T().evaluate(mlp_state(), (xs(), _with(ys(), 4, 10))), ["10"], cls="4")
  E(k, "evaluate float labels 2.7",
    lambda: T().evaluate(mlp_state(), (xs(), _with(ys().astype("float32"), 1, 2.7))),
    [("label",)], cls="4")
  E(k, "evaluate batch_size=0", lambda: T().evaluate(mlp_state(), x01(), batch_size=0),
    ["batch_size"])
  E(k, "evaluate 32x32x3 images on a 28x28x1 state",
    lambda: T().evaluate(mlp_state(), (randn(8, 32, 32, 3), ys()[:8])),
    [("(8, 32, 32, 3)", "32, 32, 3", "784", "3072", "shape")])
  E(k, "evaluate [B, H, W] images on a CNN state",
    lambda: T().evaluate(cnn_state(), (randn(8, 32, 32), ys()[:8])),
    [("(8, 32, 32)", "rank 3", "[b, h, w]", "ndim")], cls="1")
  A(k, "evaluate uint8 images like x / 255",
    lambda: (T().evaluate(mlp_state(), xy_mnist()), T().evaluate(mlp_state(), x01())),
    lambda r: close(r[0]["loss"], r[1]["loss"], rtol=1e-4), cls="9")
  E(k, "evaluate(model, ...) instead of a state",
    lambda: T().evaluate(small_mlp(), x01()), [("state",)])
  E(k, "evaluate x only, no labels", lambda: T().evaluate(mlp_state(), xs()),
    [("data", "y", "pair")])
  A(k, "evaluate(history, ...) uses history.state",
    lambda: (T().evaluate(baseline(), x01()), T().evaluate(mlp_state(), x01())),
    lambda r: close(r[0]["loss"], r[1]["loss"]))
  # predict
  E(k, "predict batch_size=0", lambda: T().predict(mlp_state(), xs(), batch_size=0),
    ["batch_size"], cls="9")
  E(k, "predict batch_size=-1", lambda: T().predict(mlp_state(), xs(), batch_size=-1),
    ["batch_size", "-1"], cls="9")
  E(k, "predict [B, H, W] on a CNN state", lambda: T().predict(cnn_state(), randn(4, 32, 32)),
    [("(4, 32, 32)", "rank 3", "[b, h, w]", "ndim")], cls="1")
  E(k, "predict one image without a batch axis",
    lambda: T().predict(cnn_state(), randn(32, 32, 3)),
    [("(32, 32, 3)", "batch", "rank 3")], cls="1")
  A(k, "predict uint8 images like x / 255",
    lambda: (T().predict(mlp_state(), xy_mnist()[0]), T().predict(mlp_state(), xs())),
    lambda r: close(r[0], r[1], rtol=1e-4, atol=1e-4), cls="9")
  E(k, "predict(model, x) instead of a state", lambda: T().predict(small_mlp(), xs()),
    [("state",)])
  E(k, "predict 3-channel images on a 1-channel state",
    lambda: T().predict(mlp_state(), randn(4, 28, 28, 3)),
    [("(4, 28, 28, 3)", "28, 28, 3", "2352", "784", "shape", "channel")])
  A(k, "predict(history, x) uses history.state",
    lambda: (T().predict(baseline(), xs()), T().predict(mlp_state(), xs())),
    lambda r: close(r[0], r[1]))
  # plots
  pl = lambda: __import__("jaxcnn.plots").plots
  A(k, "plot_curves(history) on fit's own History", lambda: pl().plot_curves(baseline()),
    _is_figure, cls="9", must=True)
  E(k, "plot_curves(history.state)", lambda: pl().plot_curves(mlp_state()), ["history"])
  E(k, "plot_confusion of a 1-D matrix", lambda: pl().plot_confusion(np.arange(10)),
    [("matrix", "(10,)")])
  E(k, "plot_confusion with 3 class names for 10 classes",
    lambda: pl().plot_confusion(np.eye(10, dtype=int), ["a", "b", "c"]),
    [("class_names", "3")])


def _is_figure(fig):
  try:
    from matplotlib.figure import Figure
    import matplotlib.pyplot as plt
  except ImportError:
    return "matplotlib missing"
  if isinstance(fig, Figure):
    plt.close(fig)
    return None
  return f"returned {type(fig).__name__}, not a Figure"


def _with(a, i, v):
  a = a.copy()
  a[i] = v
  return a


# ---------------------------------------------------------------------------------------------
# The CLI: python -m experiments.train, in a child process
# ---------------------------------------------------------------------------------------------

LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")
HINT_LINE = re.compile(r"^\(--traceback|^Pass --help")
_children: set = set()


def _run(cmd, timeout, env=None, **kw):
  """``(rc, stdout, stderr, seconds)`` or ``None`` on timeout (the child is killed)."""
  t = time.time()
  p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       cwd=ROOT, env=env or _env(), start_new_session=True, **kw)
  _children.add(p)
  try:
    out, err = p.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    return None
  finally:
    _children.discard(p)
  return p.returncode, out, err, time.time() - t


def _env(**extra):
  env = dict(os.environ)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env.setdefault("JAX_PLATFORMS", "cpu")
  env.update(extra)
  return env


def cli_outcome(r, what="run"):
  """Classifier terms for a finished CLI child: an error Outcome, or ``('ok', out, err)``."""
  if r is None:
    return Outcome(True, "Timeout", f"{what}: no result within the timeout")
  rc, out, err, _ = r
  if rc == 0:
    return Outcome(False, value=(out, err))
  if "Traceback (most recent call last)" in err:
    last = [l for l in err.strip().splitlines() if l.strip()][-1]
    return Outcome(True, "Traceback", last)
  lines = [l for l in err.strip().splitlines()
           if l.strip() and not LOG_LINE.match(l) and not HINT_LINE.match(l)]
  if not lines:
    return Outcome(True, "NoMessage", f"exit status {rc} with no message")
  return Outcome(True, "SystemExit", "\n".join(lines))


CFG = {"cifar": "jaxcnn/configs/cifar10_tutorial.py",
       "mnist": "jaxcnn/configs/mnist_mlp.py"}


def tiny_flags(data="mnist", steps=2):
  folder = tiny_mnist() if data == "mnist" else tiny_cifar()
  return [f"--config.data.image_folder={folder}", "--config.data.train_split=train[:40]",
          "--config.data.eval_split=train[40:]", "--config.batch_size=8",
          "--config.eval_batch_size=10", f"--config.num_train_steps={steps}",
          "--config.checkpoint_every_steps=0", "--config.progress=False"]


def merge_flags(base, extra):
  """``base + extra``, dropping the ``--config.key=`` flags of ``base`` that ``extra`` sets."""
  keys = {a.split("=", 1)[0] for a in extra if a.startswith("--") and "=" in a}
  return [a for a in base if a.split("=", 1)[0] not in keys] + list(extra)


# A run that goes on until it is stopped: no early stopping (mnist_mlp has patience 3).
LONG_RUN = ["--config.checkpoint_every_steps=50", "--config.patience=0"]


def workdir(tag):
  return os.path.join(TMP, "runs", tag)


def cli(*args, cfg="mnist", wd=None, timeout=90, tiny=True, data=None, steps=2):
  cmd = [sys.executable, "-m", "experiments.train"]
  if cfg:
    cmd.append(f"--config={CFG.get(cfg, cfg)}")
  if wd is not False:
    cmd.append(f"--workdir={wd or workdir(str(time.time_ns()))}")
  tiny = tiny_flags(data or ("cifar" if cfg == "cifar" else "mnist"), steps) if tiny else []
  cmd += merge_flags(tiny, args)
  return _run(cmd, timeout)


def C(name, args=(), names=(), *, cls="", cfg="mnist", wd=None, tiny=True, forbid=(),
      timeout=90):
  """A CLI case that must exit with one line naming ``names``."""
  E("cli", name, lambda: cli_outcome(cli(*args, cfg=cfg, wd=wd() if callable(wd) else wd,
                                         tiny=tiny, timeout=timeout)),
    names, cls=cls, cli=True, forbid=forbid, timeout=timeout + 30)


@once
def finished_run():
  """A tiny run that finished (2 steps): ``(workdir, rc, out, err)``."""
  wd = workdir("first_run")
  r = cli(wd=wd)
  return (wd,) + ((None, "", "timeout") if r is None else r[:3])


@once
def diverged_run():
  wd = workdir("diverged")
  r = cli("--config.optimizer=sgd", "--config.learning_rate=1e30", wd=wd, steps=4)
  return wd, r


def _after_finished(*args):
  wd, rc, _, err = finished_run()
  if rc != 0:
    return Outcome(True, "FixtureFailed", "the first run failed: " + _last(err))
  return cli_outcome(cli(*args, wd=wd), "re-run")


def _last(text):
  lines = [l for l in text.strip().splitlines() if l.strip()]
  return lines[-1] if lines else ""


def _cli_success_output():
  wd, rc, out, err = finished_run()
  if rc != 0:
    return Outcome(True, "FixtureFailed", _last(err))
  return out, err


def _check_success_output(r):
  out, err = r
  bad = [l for l in err.splitlines() if re.search(r"=(\s|$)", l) and "XLA_FLAGS" in l]
  if bad:
    return "logs a flag with an empty value: " + bad[0][-120:]
  if "Traceback" in err:
    return "a traceback on a successful run"
  return None


def _check_rerun_finished(r):
  out, err = r
  text = (out + err).replace(finished_run()[0], "<workdir>").lower()
  if any(w in text for w in ("finished", "already", "complete", "nothing to")):
    return None
  return "re-running a finished run does not say it is finished: " + _last(out + err)[:150]


def _two_runs():
  """Starts a long run, then a second on the same workdir once the first is training."""
  wd = workdir("two_runs")
  base = [sys.executable, "-m", "experiments.train", f"--config={CFG['mnist']}",
          f"--workdir={wd}"] + merge_flags(tiny_flags("mnist", 200000), LONG_RUN)
  first = subprocess.Popen(base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=ROOT, env=_env(), start_new_session=True)
  _children.add(first)
  try:
    if not _wait_for(lambda: _has_checkpoint(wd), 120, first):
      return Outcome(True, "FixtureFailed", "the first run never wrote a checkpoint: "
                     + _last(first.communicate()[1]))
    second = _run(base, timeout=60)
    first_alive = first.poll() is None
    if second is None:
      return "the second run on the same workdir was not refused (still running after 60 s)"
    o = cli_outcome(second, "second run")
    if not first_alive:
      _, err1 = first.communicate()
      return Outcome(True, "Harmed", f"the first run ended (exit status {first.returncode}) "
                     f"while the second ran: {_last(err1)}")
    if not o.error:
      return "the second run on the same workdir exited 0 (not refused)"
    return o
  finally:
    if first.poll() is None:
      os.killpg(first.pid, signal.SIGKILL)
      first.communicate()
    _children.discard(first)


def _has_checkpoint(wd):
  """A finished checkpoint: a step folder ``checkpoints/latest/<step>``. (The empty ``latest/``
  and ``best/`` folders exist from the start, so their presence says nothing; orbax writes a step
  under a temporary name first.)"""
  d = os.path.join(wd, "checkpoints", "latest")
  return os.path.isdir(d) and any(x.isdigit() for x in os.listdir(d))


def _wait_for(cond, timeout, proc):
  end = time.time() + timeout
  while time.time() < end:
    if cond():
      return True
    if proc.poll() is not None:
      return False
    time.sleep(0.5)
  return False


# ``python -m experiments.train`` as a terminal starts it: with Python's own SIGINT handler. A
# process started in the background by a non-interactive shell (``cmd &``, as a sweep often is)
# inherits SIGINT *ignored*, and Python then installs no handler, so Ctrl-C would never arrive
# and the case would time out for a reason that is the harness's, not jaxcnn's.
TRAIN_WITH_SIGINT = [sys.executable, "-c",
                     "import runpy, signal, sys; "
                     "signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "sys.argv[0] = 'experiments/train.py'; "
                     "runpy.run_module('experiments.train', run_name='__main__', alter_sys=True)"]


def _ctrl_c():
  wd = workdir("ctrl_c")
  cmd = TRAIN_WITH_SIGINT + [f"--config={CFG['mnist']}", f"--workdir={wd}"] + merge_flags(
      tiny_flags("mnist", 200000), LONG_RUN)
  p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                       env=_env(), start_new_session=True)
  _children.add(p)
  try:
    if not _wait_for(lambda: _has_checkpoint(wd), 120, p):
      return Outcome(True, "FixtureFailed",
                     "never wrote a checkpoint: " + _last(p.communicate()[1]))
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    try:
      out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
      os.killpg(p.pid, signal.SIGKILL)
      p.communicate()
      return Outcome(True, "Timeout", "did not stop within 60 s of Ctrl-C")
    if p.returncode == 0:
      return "Ctrl-C exited 0 without saying where it stopped"
    return cli_outcome((p.returncode, out, err, 0), "Ctrl-C")
  finally:
    if p.poll() is None:
      os.killpg(p.pid, signal.SIGKILL)
      p.communicate()
    _children.discard(p)


def _cli():
  c = "cli"
  C("--config.bogus=1 (unknown key)", ["--config.bogus=1"], ["bogus"], cls="2")
  C("--config.data.imagefolder=... (misspelled key)", ["--config.data.imagefolder=/tmp/x"],
    ["imagefolder", "image_folder"], cls="2")
  C("--config.model_kwargs.hiden=16 (typo kwarg)", ["--config.model_kwargs.hiden=(16,)"],
    ["hiden"], cls="2")
  C("--config.learning_rate=abc", ["--config.learning_rate=abc"], ["abc"])
  C("--config.learning_rate=-1", ["--config.learning_rate=-1"], ["learning_rate"])
  C("--config.model=resnet", ["--config.model=resnet"], ["resnet"])
  C("--config.optimizer=adamm", ["--config.optimizer=adamm"], ["adamm"])
  C("--config.batch_size=0", ["--config.batch_size=0"], ["batch_size"])
  C("--config.num_epochs=-1 with num_train_steps=-1",
    ["--config.num_epochs=-1", "--config.num_train_steps=-1"], ["num_epochs"])
  C("--config.parallel=pmapp", ["--config.parallel=pmapp"], ["pmapp"])
  C("--config.dtype=float16", ["--config.dtype=float16"], ["float16"], cls="11")
  C("--config.data.name=cifar100", ["--config.data.name=cifar100"], ["cifar100"])
  C("--config.data.loader=tfds", ["--config.data.loader=tfds"], ["tfds"])
  C("--config.data.augment=crop,flipp", ["--config.data.augment=crop,flipp"], ["flipp"])
  C("--config.data.normalize=std", ["--config.data.normalize=std"], [("std",)])
  C("--config.label_smoothing=1.5", ["--config.label_smoothing=1.5"], ["label_smoothing"])
  C("--config.schedule=cosinee", ["--config.schedule=cosinee"], ["cosinee"])
  C("--config.data.image_folder does not exist",
    ["--config.data.image_folder=" + os.path.join(TMP, "no_such_folder")], ["no_such_folder"])
  C("--config.data.train_split=train[:abc]", ["--config.data.train_split=train[:abc]"], ["abc"])
  C("eval split overlapping the train split",
    ["--config.data.eval_split=train[30:]"], [("overlap",), ("train[30:]", "train[:40]")],
    cls="11")
  C("mnist config on a CIFAR folder", ["--config.data.image_folder=" + TMP + "/tiny_cifar"],
    [("class", "shape", "(32, 32, 3)")])
  C("missing --workdir", [], ["workdir"], wd=False)
  C("missing --config", [], ["config"], cfg=None, tiny=False)
  C("config file does not exist", [], ["no_such_config.py"],
    cfg=os.path.join(TMP, "no_such_config.py"), tiny=False, cls="8")
  C("config file with a syntax error", [], ["broken_config.py"], cfg=_broken_config(),
    tiny=False)
  C("unknown flag --workdri", ["--workdri=/tmp/x"], ["workdri"])
  C("a stray positional argument", ["extra_arg"], ["extra_arg"])
  C("workdir is a file", [], ["workdir_file"], wd=lambda: a_file("workdir_file"), cls="8")
  C("workdir lies under a file", [], ["under_file"],
    wd=lambda: os.path.join(a_file("under_file"), "run"), cls="8")
  C("--config.num_train_steps=2.5", ["--config.num_train_steps=2.5"], ["num_train_steps"])
  E(c, "re-run a workdir with another batch size", lambda: _after_finished(
      "--config.batch_size=4"), ["batch_size"], cli=True, timeout=240)
  A(c, "re-run a finished run says it is finished", lambda: _after_finished(),
    _check_rerun_finished, cls="11", cli=True, timeout=240)
  A(c, "a successful run logs no empty XLA flag and no traceback", _cli_success_output,
    _check_success_output, cli=True, timeout=240)
  A(c, "--config.model_kwargs.hidden=16 on the tutorial config",
    lambda: cli_outcome(cli("--config.model_kwargs.hidden=16", cfg="cifar")),
    lambda r: None, cls="2", cli=True, must=True, timeout=150)
  E(c, "a diverged run names the step of the last good checkpoint",
    lambda: cli_outcome(diverged_run()[1]), [("step",), ("nan", "finite", "diverg")],
    forbid=("step None",), cls="6", cli=True, timeout=150)
  A(c, "re-run a diverged workdir with a smaller learning rate",
    lambda: cli_outcome(cli("--config.optimizer=sgd", "--config.learning_rate=1e-3",
                            wd=diverged_run()[0], steps=4)),
    lambda r: None, cls="6", cli=True, must=True, timeout=300)
  E(c, "two runs on one workdir: the second is refused", _two_runs,
    [("workdir", "lock", "another", "running")], cls="3", cli=True, timeout=300)
  E(c, "Ctrl-C says where it stopped and how to resume", _ctrl_c,
    [("step",), ("resume", "re-run", "rerun")], cls="8", cli=True, timeout=240)


def _broken_config():
  path = os.path.join(TMP, "broken_config.py")
  with open(path, "w") as f:
    f.write("def get_config(:\n  pass\n")
  return path


# ---------------------------------------------------------------------------------------------
# Running and classifying
# ---------------------------------------------------------------------------------------------

def _matches(message, names):
  low = message.lower()
  missing = []
  for group in names:
    alts = (group,) if isinstance(group, str) else tuple(group)
    if not any(a.lower() in low for a in alts):
      missing.append(alts[0] if len(alts) == 1 else "|".join(alts))
  return missing


def _message(e):
  if isinstance(e, KeyError) and e.args:
    return str(e.args[0])
  return str(e)


def _user_facing(type_name, exc=None):
  if exc is not None and isinstance(exc, USER_TYPES):
    return True
  return type_name in USER_TYPE_NAMES


def classify(case, exc=None, value=None, outcome=None):
  """``(kind, first message line)``."""
  if outcome is not None and outcome.error:
    tname, msg, exc = outcome.type, outcome.message, None
  elif exc is not None:
    tname, msg = type(exc).__name__, _message(exc)
  else:
    tname = None
  if tname is not None:
    first = (msg.strip().splitlines() or [""])[0]
    shown = f"{tname}: {first}"[:300]
    if tname in ("Timeout", "CaseTimeout"):
      return "raw", shown
    if not _user_facing(tname, exc):
      return "raw", shown
    if not msg.strip():
      return "raw", shown + " (empty message)"
    if "\n" in msg.strip():
      return "raw", shown + f" (+{len(msg.strip().splitlines()) - 1} more lines)"
    if len(msg.strip()) > MAX_LEN:
      return "raw", shown + f" ({len(msg.strip())} characters)"
    bad = [f for f in case.forbid if f.lower() in msg.lower()]
    if bad:
      return "raw", shown + f" (says {bad[0]!r})"
    if case.expect == "error":
      missing = _matches(msg, case.names)
      if missing:
        return "raw", shown + f" (does not name {', '.join(missing)})"
      return "clean", shown
    if case.must_accept:
      return "raw", shown + " (refused; jaxcnn accepts this input)"
    return "clean", shown
  if outcome is not None:
    value = outcome.value
  if case.expect == "error":
    return "silent", "no error: " + _short(value)
  try:
    verdict = case.check(value) if case.check else None
  except Exception as e:  # pylint: disable=broad-except
    verdict = f"check failed: {type(e).__name__}: {e}"
  if verdict is None or verdict is True:
    return "fine", ""
  return "silent", str(verdict)[:300]


def _short(value):
  if isinstance(value, str):
    return value[:200]
  try:
    import numpy as np
    shape = np.shape(value)
    if shape:
      return f"returned an array of shape {shape}"
  except Exception:  # pylint: disable=broad-except
    pass
  return f"returned {type(value).__name__}"


def _alarm(signum, frame):
  raise CaseTimeout()


def run_case(case):
  """Runs one case; returns its result dict."""
  t = time.time()
  exc = value = outcome = None
  in_main = threading.current_thread() is threading.main_thread()
  sink = io.StringIO()
  try:
    if in_main:
      signal.signal(signal.SIGALRM, _alarm)
      signal.setitimer(signal.ITIMER_REAL, case.timeout)
    if in_main:  # warnings filters and redirects are process-wide: main thread only
      with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
          contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        value = case.fn()
    else:
      value = case.fn()
    if isinstance(value, Outcome):
      outcome, value = value, None
  except CaseTimeout:
    outcome = Outcome(True, "Timeout", f"no result within {case.timeout:.0f} s")
  except SystemExit as e:  # a library must not exit the notebook
    outcome = Outcome(True, "SystemExit(in-process)", str(e.code))
  except Exception as e:  # pylint: disable=broad-except
    exc = e
  finally:
    if in_main:
      signal.setitimer(signal.ITIMER_REAL, 0)
  if isinstance(value, str):  # a self-checking case saying what went wrong
    kind, note = "silent", value
  else:
    if outcome is not None and outcome.type == "SystemExit(in-process)":
      kind, note = "raw", f"SystemExit inside the library: {outcome.message}"
    else:
      kind, note = classify(case, exc=exc, value=value, outcome=outcome)
  return {"area": case.area, "name": case.name, "class": case.cls, "expect": case.expect,
          "kind": kind, "reason": reason(kind, note), "message": note,
          "seconds": round(time.time() - t, 2), "cli": case.cli}


def reason(kind, note):
  """Why a case is raw or silent, in a few words (for the breakdown table)."""
  if kind == "silent":
    return "no error" if note.startswith("no error") else "wrong result"
  if kind != "raw":
    return ""
  for pattern, why in ((r"^Timeout", "timeout"), (r"^Traceback", "traceback"),
                       (r"more lines\)$", "multi-line message"),
                       (r"\(does not name ", "does not name the value"),
                       (r" characters\)$", "too long"),
                       (r"\(refused; ", "refused an input to accept"),
                       (r"\(says '", "misleading text"), (r"\(empty message\)$", "empty message")):
    if re.search(pattern, note):
      return why
  return "internal exception type"


def build_cases():
  CASES.clear()
  _functional()
  _layers()
  _data()
  _keras()
  _cli()
  names = collections.Counter(c.name for c in CASES)
  dup = [n for n, k in names.items() if k > 1]
  assert not dup, f"duplicate case names: {dup}"
  return list(CASES)


def run_all(cases, *, cli_jobs=2, progress=None):
  """Runs the in-process cases here and the CLI cases on ``cli_jobs`` threads, concurrently."""
  old_cache = os.environ.get("JAXCNN_CACHE_DIR")
  os.environ["JAXCNN_CACHE_DIR"] = os.path.join(TMP, "cache")  # children inherit it
  try:
    return _run_all(cases, cli_jobs, progress)
  finally:
    if old_cache is None:
      os.environ.pop("JAXCNN_CACHE_DIR", None)
    else:
      os.environ["JAXCNN_CACHE_DIR"] = old_cache
    for p in list(_children):
      with contextlib.suppress(Exception):
        os.killpg(p.pid, signal.SIGKILL)


def _run_all(cases, cli_jobs, progress):
  results = {}
  tiny_mnist(), tiny_cifar()  # on disk before any child process is pointed at them
  cli_cases = [c for c in cases if c.cli]
  local = [c for c in cases if not c.cli]
  pool = concurrent.futures.ThreadPoolExecutor(max(cli_jobs, 1)) if cli_cases else None
  futures = {}
  if pool:
    # The slow multi-process cases first, so they do not finish last.
    order = sorted(cli_cases, key=lambda c: -c.timeout)
    futures = {pool.submit(run_case, c): c for c in order}
  for c in local:
    results[c.name] = run_case(c)
    if progress:
      progress(results[c.name])
  for fut in concurrent.futures.as_completed(futures):
    r = fut.result()
    results[r["name"]] = r
    if progress:
      progress(r)
  if pool:
    pool.shutdown()
  return [results[c.name] for c in cases]


def table(results):
  """Counts per area and in total, as rows of text."""
  by = collections.defaultdict(collections.Counter)
  for r in results:
    by[r["area"]][r["kind"]] += 1
    by["total"][r["kind"]] += 1
  head = f"{'area':<12}{'cases':>7}{'clean':>8}{'raw':>6}{'silent':>8}{'fine':>6}"
  rows = [head, "-" * len(head)]
  for area in [a for a in AREAS if a in by] + ["total"]:
    cnt = by[area]
    rows.append(f"{area:<12}{sum(cnt.values()):>7}{cnt['clean']:>8}{cnt['raw']:>6}"
                f"{cnt['silent']:>8}{cnt['fine']:>6}")
  return rows


def markdown(results, title, seconds=None):
  """The counts, the reasons, the mistake classes and the non-clean cases, as Markdown."""
  by = collections.defaultdict(collections.Counter)
  for r in results:
    by[r["area"]][r["kind"]] += 1
    by["total"][r["kind"]] += 1
  out = [f"### {title}", ""]
  if seconds is not None:
    out += [f"{len(results)} cases ({sum(r['cli'] for r in results)} through the CLI), "
            f"{seconds:.0f} s.", ""]
  out += ["| area | cases | clean | raw or misleading | silent | fine |",
          "| --- | ---: | ---: | ---: | ---: | ---: |"]
  for area in [a for a in AREAS if a in by] + ["total"]:
    cnt = by[area]
    name = f"**{area}**" if area == "total" else area
    out.append(f"| {name} | {sum(cnt.values())} | " + " | ".join(str(cnt[k]) for k in KINDS)
               + " |")
  bad = [r for r in results if r["kind"] in ("raw", "silent")]
  why = collections.Counter((r["kind"], r["reason"]) for r in bad)
  if why:
    out += ["", "| raw / silent because | cases |", "| --- | ---: |"]
    for (kind, because), n in sorted(why.items(), key=lambda kv: (kv[0][0], -kv[1])):
      out.append(f"| {kind}: {because} | {n} |")
  by_class = collections.defaultdict(collections.Counter)
  for r in results:
    if r["class"]:
      by_class[int(r["class"])][r["kind"]] += 1
  if by_class:
    out += ["", "| mistake class | cases | clean | raw | silent | fine |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for k in sorted(by_class):
      cnt = by_class[k]
      out.append(f"| {k} | {sum(cnt.values())} | " + " | ".join(str(cnt[x]) for x in KINDS)
                 + " |")
  if bad:
    out += ["", "<details><summary>The raw and silent cases</summary>", "",
            "| kind | area | case | class | what the user sees (first line) |",
            "| --- | --- | --- | --- | --- |"]
    for r in bad:
      msg = re.sub(r"/tmp/jaxcnn-mistakes-[a-z0-9_]+", "$TMP", r["message"][:200])
      msg = msg.replace("|", "\\|").replace("`", "'")
      out.append(f"| {r['kind']} | {r['area']} | {r['name'].replace('|', '/')} | "
                 f"{r['class']} | {msg} |")
    out += ["", "</details>"]
  return "\n".join(out) + "\n"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--no-cli", action="store_true", help="skip the CLI (child-process) cases")
  ap.add_argument("--only-cli", action="store_true", help="run only the CLI cases")
  ap.add_argument("--json", help="write per-case results here")
  ap.add_argument("--area", action="append", choices=AREAS, help="only these areas")
  ap.add_argument("-k", help="only cases whose name contains this (case-insensitive)")
  ap.add_argument("--jobs", type=int, default=2, help="CLI cases run on this many threads")
  ap.add_argument("--markdown", help="write the tables and the raw/silent cases here (Markdown)")
  ap.add_argument("--title", default="jaxcnn user-mistakes sweep", help="the Markdown heading")
  ap.add_argument("-v", "--verbose", action="store_true", help="print every case as it ends")
  args = ap.parse_args(argv)
  t0 = time.time()
  cases = build_cases()
  if args.no_cli:
    cases = [c for c in cases if not c.cli]
  if args.only_cli:
    cases = [c for c in cases if c.cli]
  if args.area:
    cases = [c for c in cases if c.area in args.area]
  if args.k:
    cases = [c for c in cases if args.k.lower() in c.name.lower()]
  done = [0]

  def progress(r):
    done[0] += 1
    if args.verbose:
      print(f"[{done[0]}/{len(cases)}] {r['kind']:<6} {r['area']}: {r['name']} "
            f"({r['seconds']} s) {r['message'][:150]}", flush=True)

  results = run_all(cases, cli_jobs=args.jobs, progress=progress)
  secs = time.time() - t0
  import jaxcnn
  print(f"jaxcnn from {os.path.dirname(jaxcnn.__file__)}; {len(results)} cases "
        f"({sum(r['cli'] for r in results)} through the CLI) in {secs:.0f} s")
  print()
  print("\n".join(table(results)))
  bad = [r for r in results if r["kind"] in ("raw", "silent")]
  why = collections.Counter((r["kind"], r["reason"]) for r in bad)
  if why:
    print("\nraw and silent, by reason:")
    for (kind, because), n in sorted(why.items(), key=lambda kv: (kv[0][0], -kv[1])):
      print(f"  {kind:<7}{n:>4}  {because}")
  by_class = collections.defaultdict(collections.Counter)
  for r in results:
    if r["class"]:
      by_class[int(r["class"])][r["kind"]] += 1
  if by_class:
    print("\nmistake classes (cases: clean / raw / silent / fine):")
    for k in sorted(by_class):
      cnt = by_class[k]
      print(f"  class {k:>2}: {sum(cnt.values()):>3} cases: " +
            " / ".join(str(cnt[x]) for x in KINDS))
  if bad:
    print(f"\nnot clean or fine ({len(bad)}):")
    for r in bad:
      cls = f" [class {r['class']}]" if r["class"] else ""
      print(f"  {r['kind']:<6} {r['area']}: {r['name']}{cls}\n         {r['message'][:240]}")
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(markdown(results, args.title, secs))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"seconds": round(secs, 1), "jaxcnn": os.path.dirname(jaxcnn.__file__),
                 "results": results}, f, indent=1)
  shutil.rmtree(TMP, ignore_errors=True)
  return results


if __name__ == "__main__":
  main()
