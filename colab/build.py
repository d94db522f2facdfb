"""Builds ``colab/*.ipynb`` from their sources (the source of truth): ``colab/src/*.py``, and
one ``lesson_<name>.ipynb`` per lesson in ``experiments/lessons/`` (which runs the lesson and
shows its figures inline, so a lesson and its notebook cannot disagree).

Each source is a plain Python file in the "percent" format: cells start with ``# %%`` (code)
or ``# %% [markdown]`` (markdown, every line a ``# `` comment). The build puts the same four
cells in front of every notebook, so they cannot drift apart:

1. the title (the source's first markdown cell) with an "Open in Colab" badge;
2. the install cell: on Colab, clone the repository and install jaxcnn (which keeps Colab's
   jax, flax and optax as they are); elsewhere nothing;
3. ``QUICK``: ``JAXCNN_QUICK=1`` (as the tests set it) shrinks data and epochs to seconds;
4. the device check (:func:`jaxcnn.runtime.device_report`): which devices JAX uses, and a
   warning when the machine's accelerator is not among them. A notebook that trains (a lesson
   with ``TRAINS = True``, or a source in :data:`TRAINING_SOURCES`) first calls
   ``jaxcnn.cpu.enable()``, which must come before JAX starts.

The notebooks are written without outputs, so they diff as cleanly as their sources.
``tests/test_notebooks.py`` checks they are in sync and runs each one in quick mode.

    python colab/build.py          # rewrite colab/*.ipynb and README.md's Colab table
    python colab/build.py --check  # exit 1 if any of them is out of date
"""

from __future__ import annotations

import ast
import json
import pathlib
import sys

# The one place the repository's address is written: badges and install cells use it.
REPO = "jaxcnn/jaxcnn"
BRANCH = "main"

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = HERE / "src"
LESSONS = HERE.parent / "experiments" / "lessons"

INSTALL = f"""\
import os, sys
if "google.colab" in sys.modules:  # on Colab: fetch jaxcnn; installing it leaves jax/flax/optax as they are
    if not os.path.isdir("/content/jaxcnn"):
        !git clone -q --depth 1 https://github.com/{REPO} /content/jaxcnn
        %pip install -q -e /content/jaxcnn
    %cd /content/jaxcnn"""

QUICK = """\
# CI runs every notebook top to bottom with JAXCNN_QUICK=1: tiny data, a few steps.
QUICK = os.environ.get("JAXCNN_QUICK", "0") == "1"
print("quick mode" if QUICK else "full mode")"""

CPU_ENABLE = """\
import jaxcnn.cpu
jaxcnn.cpu.enable()  # before JAX starts; on a CPU: measured XLA flags, conv tuning, compile cache
"""

DEVICE_CHECK = """\
from jaxcnn.runtime import device_report
BACKEND = device_report()  # says plainly when JAX is on the CPU although the machine has a TPU/GPU"""


def badge(name: str) -> str:
  url = f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/colab/{name}.ipynb"
  return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def parse(text: str) -> list[tuple[str, str]]:
  """``[(kind, source)]`` cells of a percent-format file; kind is 'code' or 'markdown'."""
  cells: list[tuple[str, list[str]]] = []
  for line in text.splitlines():
    if line.startswith("# %%"):
      cells.append(("markdown" if "[markdown]" in line else "code", []))
    elif cells:
      cells[-1][1].append(line)
    elif line.strip():
      raise ValueError(f"text before the first '# %%' cell marker: {line!r}")
  out = []
  for kind, lines in cells:
    if kind == "markdown":
      lines = [l[2:] if l.startswith("# ") else l.lstrip("#") for l in lines]
    src = "\n".join(lines).strip("\n")
    if src:
      out.append((kind, src))
  return out


# The colab/src notebooks that train a network (each lesson says so itself: TRAINS = True).
TRAINING_SOURCES = ("quickstart", "speedrun", "train_cifar10")


def trains(path: pathlib.Path) -> bool:
  """Whether the notebook built from ``path`` trains (and so calls ``jaxcnn.cpu.enable()``)."""
  if path.parent != LESSONS:
    return path.stem in TRAINING_SOURCES
  return any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "TRAINS" for t in n.targets)
             and isinstance(n.value, ast.Constant) and n.value.value is True
             for n in ast.parse(path.read_text()).body)


def lesson_cells(path: pathlib.Path) -> list[tuple[str, str]]:
  """The cells of the notebook of the lesson at ``path``: its docstring, run, figures inline."""
  tree = ast.parse(path.read_text())
  doc = ast.get_docstring(tree) or ""
  title = next((n.value.value for n in tree.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", None) == "TITLE" for t in n.targets)
                and isinstance(n.value, ast.Constant)), path.stem)
  name = path.stem
  return [
      ("markdown", f"# Lesson: {title}\n\n{doc}"),
      ("code", f"""import pathlib
from IPython.display import Image, Markdown, display
from experiments.lessons import run_lesson

OUT = pathlib.Path(os.environ.get("JAXCNN_NOTEBOOK_OUT", "runs/lessons")) / "{name}"
result = run_lesson("{name}", OUT, quick=QUICK)  # prints what the lesson shows, writes its figures"""),
      ("markdown", "The figures the lesson wrote, each with what to look at:"),
      ("code", """for filename, caption in result["figures"]:
    display(Markdown(f"**{filename}**: {caption}"), Image(filename=str(OUT / filename)))
result["results"]"""),
  ]


def _cell(kind: str, source: str) -> dict:
  cell = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
  if kind == "code":
    cell.update(execution_count=None, outputs=[])
  return cell


def build(path: pathlib.Path) -> str:
  """The notebook JSON (nbformat 4) for the source at ``path`` (a notebook source or a lesson)."""
  name = notebook_name(path)
  cells = lesson_cells(path) if path.parent == LESSONS else parse(path.read_text())
  if not cells or cells[0][0] != "markdown":
    raise ValueError(f"{path}: the first cell must be markdown (the notebook's title)")
  title = cells[0][1] + "\n\n" + badge(name)
  nb = {
      "cells": [_cell("markdown", title), _cell("code", INSTALL), _cell("code", QUICK),
                _cell("code", (CPU_ENABLE if trains(path) else "") + DEVICE_CHECK)]
               + [_cell(k, s) for k, s in cells[1:]],
      "metadata": {
          "accelerator": "TPU",
          "colab": {"provenance": [], "toc_visible": True},
          "kernelspec": {"display_name": "Python 3", "name": "python3"},
          "language_info": {"name": "python"},
      },
      "nbformat": 4,
      "nbformat_minor": 5,
  }
  for i, cell in enumerate(nb["cells"]):
    cell["id"] = f"{name[:24]}-{i}"
  return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def notebook_name(path: pathlib.Path) -> str:
  return f"lesson_{path.stem}" if path.parent == LESSONS else path.stem


def sources() -> list[pathlib.Path]:
  """Every notebook's source: ``colab/src/*.py`` and the lessons (not ``_private`` modules)."""
  lessons = [p for p in sorted(LESSONS.glob("*.py")) if not p.name.startswith("_")]
  return sorted(SOURCES.glob("*.py")) + lessons


README = HERE.parent / "README.md"
TABLE_START = "<!-- colab-notebooks: written by colab/build.py from NOTEBOOKS_SHOWN -->"
TABLE_END = "<!-- /colab-notebooks -->"
# What each notebook shows, in the order of README's Colab table and the manual's Colab page.
NOTEBOOKS_SHOWN = {
    "quickstart": ("a convolution three ways, a model summary, one training step by hand"),
    "train_cifar10": ("the tutorial CNN and ResNet-20 on CIFAR-10 on the runtime's accelerator "
                      "(bf16 on TPU/GPU): progress, curves, TensorBoard inline, a checkpoint "
                      "reloaded"),
    "speedrun": ("the airbench94 speed recipe (`cpu70` on a CPU, the published `airbench94` on "
                 "a TPU/GPU), seeds back to back, accuracy and time per run"),
    "lesson_photo_walk": ("lesson 1: a photo through conv, ReLU, pooling, dropout, dense, "
                          "softmax"),
    "lesson_conv_by_hand": ("lesson 2: the lecture's convolutions by hand, checked against "
                            "numpy/scipy/jax"),
    "lesson_shapes": ("lesson 3: output-shape and parameter formulas, the quizzes, model "
                      "diagrams"),
    "lesson_edge_filters": ("lesson 4: Sobel, high-pass, the quiz's kernels, the uint8 pitfall, "
                            "border handling"),
    "lesson_cifar10_cnn": ("lesson 5: the TensorFlow tutorial's CNN trained: curves, 'I think "
                           "this is a ...', confusion matrix"),
    "lesson_filters_and_maps": ("lesson 5b: the Keras notebook's CNN: summary, plot_model, "
                                "curves, trained filters and feature maps per layer"),
    "lesson_mnist_mlp": ("lesson 6: an MLP with a validation split, the best model saved and "
                         "tested"),
    "lesson_mlp_vs_cnn": ("lesson 7: MLP vs CNN on centred and shifted digits"),
    "lesson_augmentation": ("lesson 8: augmentation and invariance, measured"),
    "lesson_stride_padding": ("lesson 9: stride, padding, 1x1 convs, global pooling"),
    "lesson_what_cnns_learn": ("lesson 10: activation maximisation, saliency, Grad-CAM, "
                               "occlusion"),
    "lesson_features_during_training": ("lesson 11: filters, feature maps, dead ReLUs per "
                                        "epoch"),
    "lesson_architectures": ("the zoo: parameters, MACs and accuracy on one CPU budget"),
    "lesson_your_own_images": ("after the course: a folder of your own images (any sizes and "
                               "formats), a validation split, predictions named by folder"),
}


def shown() -> list[tuple[str, str]]:
  """``[(notebook name, what it shows)]`` for every notebook built, in table order."""
  names = [notebook_name(p) for p in sources()]
  missing = [n for n in names if n not in NOTEBOOKS_SHOWN]
  if missing:
    raise ValueError(f"say what these notebooks show in NOTEBOOKS_SHOWN: {missing}")
  return [(n, NOTEBOOKS_SHOWN[n]) for n in NOTEBOOKS_SHOWN if n in names]


def readme_table() -> str:
  """README's Colab table (between the markers), one row per notebook with its badge."""
  rows = ["| open | notebook | what it shows |", "| --- | --- | --- |"]
  rows += [f"| {badge(n)} | [`{n}.ipynb`](colab/{n}.ipynb) | {what} |" for n, what in shown()]
  return "\n".join([TABLE_START, *rows, TABLE_END])


def _with_table(readme: str) -> str:
  start, end = readme.find(TABLE_START), readme.find(TABLE_END)
  if start < 0 or end < start:
    raise ValueError(f"README.md lacks the markers {TABLE_START!r} ... {TABLE_END!r}")
  return readme[:start] + readme_table() + readme[end + len(TABLE_END):]


def main(argv: list[str]) -> int:
  check = "--check" in argv
  stale = []
  readme = README.read_text()
  if _with_table(readme) != readme:
    stale.append("README.md (Colab table)")
    if not check:
      README.write_text(_with_table(readme))
  for src in sources():
    target = HERE / f"{notebook_name(src)}.ipynb"
    text = build(src)
    if target.exists() and target.read_text() == text:
      continue
    stale.append(target.name)
    if not check:
      target.write_text(text)
  if check and stale:
    print(f"out of date (run python colab/build.py): {', '.join(stale)}")
    return 1
  print(("rewrote: " + ", ".join(stale)) if stale and not check else "all notebooks up to date")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
