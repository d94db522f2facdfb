"""The shipped experiment configs: ``get_config()`` returns a ``ConfigDict``.

Each module here starts from :func:`jaxcnn.train.config.defaults` (every key at its default:
the course's recipe) and overrides the keys its recipe changes; the keys, their defaults and
their checks live in :mod:`jaxcnn.train.config` only. They ship with ``pip install jaxcnn``, so
a notebook can ``from jaxcnn.configs import cifar10_tutorial``.

The training CLI takes a config by name or by path (``:arg`` is passed to ``get_config``)::

    python -m experiments.train --config cifar10_tutorial --workdir DIR
    python -m experiments.train --config jaxcnn/configs/cifar10_tutorial.py --workdir DIR
    python -m experiments.speedrun --config speedrun:cpu70

Adding a config: write ``jaxcnn/configs/<name>.py`` with a ``get_config()``.

>>> from jaxcnn.configs import cifar10_tutorial
>>> config = cifar10_tutorial.get_config()
>>> config.data.source = 'download'  # no TensorFlow needed
"""

import pathlib

from jaxcnn import _checks

NAMES = tuple(sorted(p.stem for p in pathlib.Path(__file__).parent.glob("*.py")
                     if not p.stem.startswith("_")))


def path(name: str) -> str:
  """The file of config ``name`` (``'cifar10_tutorial'``), for command lines; a ``:arg`` suffix
  is kept (``'speedrun:cpu70'``). Raises one line naming the known configs."""
  stem, sep, arg = name.partition(":")
  _checks.choice(stem, "config", NAMES, fix="or give a config file by path")
  return str(pathlib.Path(__file__).parent / f"{stem}.py") + sep + arg


def resolve_argv(argv: list[str]) -> list[str]:
  """A command line with ``--config NAME[:arg]`` replaced by :func:`path` of ``NAME``; a value
  that is a file path (has a ``/``, ends in ``.py`` or exists) is kept as it is."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg == "--config" and i + 1 < len(out):
      j, value = i + 1, out[i + 1]
    elif arg.startswith("--config="):
      j, value = i, arg[len("--config="):]
    else:
      continue
    stem = value.partition(":")[0]
    if "/" in stem or stem.endswith(".py") or pathlib.Path(stem).exists():
      continue
    try:
      resolved = path(value)
    except ValueError as e:
      raise ValueError(f"`--config` (={value!r}): {e}") from None
    out[j] = resolved if j != i else f"--config={resolved}"
  return out
