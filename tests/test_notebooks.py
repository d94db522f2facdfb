"""The Colab notebooks: built from their sources, one repository address, and each one runs.

Every notebook runs top to bottom in a fresh kernel in quick mode (``JAXCNN_QUICK=1``), from the
repository root, exactly as built; an error in any cell fails the test with the cell's
traceback. Each must finish within :data:`TIME_LIMIT_S` on a 2-core CPU.
"""

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLAB = ROOT / "colab"
TIME_LIMIT_S = 240  # per notebook, quick mode, 2 CPU cores: a ceiling (the test prints the time)

spec = importlib.util.spec_from_file_location("colab_build", COLAB / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

NOTEBOOKS = [build.notebook_name(p) for p in build.sources()]


def test_every_source_has_its_built_notebook_and_they_agree():
  assert NOTEBOOKS, "colab/src holds no notebook source"
  built = {p.stem for p in COLAB.glob("*.ipynb")}
  assert built == set(NOTEBOOKS), "a notebook without a source, or a source never built"
  out = subprocess.run([sys.executable, str(COLAB / "build.py"), "--check"],
                       capture_output=True, text=True)
  assert out.returncode == 0, out.stdout + out.stderr


def test_notebooks_are_committed_without_outputs():
  for name in NOTEBOOKS:
    nb = json.loads((COLAB / f"{name}.ipynb").read_text())
    for cell in nb["cells"]:
      assert not cell.get("outputs") and cell.get("execution_count") is None, name


def test_the_repository_address_is_written_once():
  url = f"github.com/{build.REPO}"
  hits = [p for p in ROOT.rglob("*")
          if p.is_file() and p.suffix in (".py", ".md", ".toml", ".cfg")
          and ".venv" not in p.parts and ".git" not in p.parts
          and p.name != "test_notebooks.py" and url in p.read_text(errors="ignore")]
  assert hits == [], f"the repository address is written outside colab/build.py: {hits}"
  assert f'REPO = "{build.REPO}"' in (COLAB / "build.py").read_text()
  for name in NOTEBOOKS:
    nb = json.loads((COLAB / f"{name}.ipynb").read_text())
    first, install = "".join(nb["cells"][0]["source"]), "".join(nb["cells"][1]["source"])
    assert build.badge(name) in first
    assert f"https://{url} " in install
    assert re.search(rf"colab/{name}\.ipynb\)", first)


def test_percent_format_parser():
  cells = build.parse("# %% [markdown]\n# # Title\n# text\n\n# %%\nx = 1\n\n# %%\n\n")
  assert cells == [("markdown", "# Title\ntext"), ("code", "x = 1")]
  with pytest.raises(ValueError, match="before the first"):
    build.parse("x = 1\n# %%\n")


@pytest.mark.notebook
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom_in_quick_mode(name, tmp_path):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  nb = nbformat.reads((COLAB / f"{name}.ipynb").read_text(), as_version=4)
  env_before = dict(os.environ)
  os.environ.update(JAXCNN_QUICK="1", JAXCNN_NOTEBOOK_OUT=str(tmp_path), MPLBACKEND="agg")
  try:
    client = nbclient.NotebookClient(nb, timeout=TIME_LIMIT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
  finally:
    os.environ.clear()
    os.environ.update(env_before)
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors
  assert seconds < TIME_LIMIT_S, f"{name} took {seconds:.0f} s in quick mode"
  print(f"{name}: {seconds:.1f} s")
