"""What the command lines share: quiet TensorFlow start-up and errors worded in flags.

A command line prints a user's mistake as one line (``error: ...``). Two things stand in the
way of that, and both belong to the script, never to the library (importing jaxcnn changes no
environment variable and no logging setting):

* TensorFlow, when a data source imports it, writes its C++ start-up notices (oneDNN, absl's
  pre-init warning) to stderr, and tensorflow-datasets logs warnings through absl;
  :func:`quiet_tensorflow` keeps both off unless the user asked for them.
* The library names a setting by its key (`` `image_folder` ``); on the command line the user
  types a flag (``--config.data.image_folder``). :func:`in_flags` rewords a message.
"""

from __future__ import annotations

import os
import re

from absl import flags, logging

#: The keys of ``config.data`` a data error may name, by their library name.
DATA_KEYS = ("image_folder", "data_dir", "source", "loader", "train_split", "eval_split",
             "test_split")


def quiet_tensorflow() -> None:
  """Before TensorFlow is imported: its C++ log at warnings and above
  (``TF_CPP_MIN_LOG_LEVEL=2``), its oneDNN math kernels off (``TF_ENABLE_ONEDNN_OPTS=0``: TF
  only reads and augments data here, and TF 2.21 announces those kernels on stderr before any
  log level applies), and absl's Python log at warnings (unless ``--verbosity`` was given: the
  run's own warnings, such as "resuming from step N" with progress off, must show). A
  variable the user set wins. Call it in ``main``, after flags are parsed."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def in_flags(message: str, flag: dict[str, str] | None = None) -> str:
  """``message`` with each `` `key` `` of :data:`DATA_KEYS` replaced by the flag that sets it:
  ``--config.data.<key>`` by default, or ``flag[key]`` (e.g. ``{'image_folder':
  '--image-folder'}``).

  >>> in_flags("set `image_folder` to a folder")
  'set `--config.data.image_folder` to a folder'
  """
  flag = flag or {}

  def word(m: re.Match) -> str:
    key = m.group(1)
    return f"`{flag.get(key, f'--config.data.{key}')}`"

  return re.sub(r"`(" + "|".join(DATA_KEYS) + r")`", word, message)
