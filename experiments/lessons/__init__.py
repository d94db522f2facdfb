"""The course's lessons as runnable experiments: one module per lesson, one runner.

    python -m experiments.lessons --list
    python -m experiments.lessons conv_by_hand [--quick] [--out DIR] [--image-folder PATH]
    python -m experiments.lessons --all --quick

A lesson is a module ``experiments/lessons/<name>.py`` (not starting with ``_``) that defines

* a module docstring: the lesson it reproduces, the command, hardware, run time and what it
  prints, as measured;
* ``TITLE = "..."`` (one line) and optionally ``LESSON = <course lesson number>`` (sort order)
  and ``TRAINS = True`` when it trains a network (the runner and its notebook then call
  ``jaxcnn.cpu.enable()`` first);
* ``run(out: pathlib.Path, *, quick=False, image_folder=None, seed=0) -> dict`` that prints its
  results, writes PNG figures into ``out`` and returns
  ``{"figures": [(filename, caption), ...], "results": {name: number or short text, ...}}``.

Lessons are discovered by scanning this package, so a new file is a new lesson.
:func:`run_lesson` calls one and writes ``out/index.md``, the gallery with a caption per figure.
"""

from __future__ import annotations

import importlib
import pathlib
import pkgutil
import time
from types import ModuleType
from typing import Any

from experiments.lessons import _common


def discover() -> dict[str, ModuleType]:
  """``{name: module}`` of every lesson in this package, in course order (``LESSON``, then name).

  A module without ``TITLE`` and ``run`` is skipped (a helper, not a lesson).
  """
  found = []
  for info in pkgutil.iter_modules(__path__):
    if info.name.startswith("_"):
      continue
    module = importlib.import_module(f"{__name__}.{info.name}")
    if hasattr(module, "TITLE") and callable(getattr(module, "run", None)):
      found.append((getattr(module, "LESSON", 99), info.name, module))
  return {name: module for _, name, module in sorted(found, key=lambda t: (t[0], t[1]))}


def run_lesson(name: str, out: str | pathlib.Path, *, quick: bool = False,
               image_folder: str | None = None, seed: int = 0) -> dict[str, Any]:
  """Runs lesson ``name`` into ``out`` and writes ``out/index.md``; returns the lesson's dict
  plus ``"seconds"`` (wall time of the run)."""
  lessons = discover()
  if name not in lessons:
    raise ValueError(f"unknown lesson {name!r}; known lessons: {', '.join(lessons)}")
  module = lessons[name]
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  result = module.run(out, quick=quick, image_folder=image_folder, seed=seed)
  seconds = time.perf_counter() - start
  mode = "quick (synthetic or tiny data)" if quick else "full"
  _common.write_gallery(out, module.TITLE, result["figures"], result["results"],
                        header=f"`python -m experiments.lessons {name}"
                               f"{' --quick' if quick else ''}`: {mode} run, "
                               f"seed {seed}, {seconds:.1f} s.")
  return {**result, "seconds": seconds}
