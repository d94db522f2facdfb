"""README stays true: it opens with its two commands, CI runs exactly its test command, and its
Python snippets run and print what README says they print."""

import pathlib
import re
import subprocess

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
  return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_main_and_the_test_command():
  main, tests = _blocks("bash")[:2]
  assert README.index("```bash") < README.index("\n## "), "the two commands come first"
  assert "pip install -e . &&" in main, "the main job needs the library alone"
  assert "python -m experiments.train --config cifar10_tutorial" in main
  assert '-m pytest' in tests and '-m "not slow and not notebook"' in tests
  assert README.index(main) < README.index(tests) < README.index("## Install")


def test_ci_runs_the_readme_test_command():
  # .ci/run greps README for the line; the same grep must find the README's second command.
  out = subprocess.run(
      ["grep", "-m1", "-E", r"^python3 -m venv .*-m pytest", "README.md"],
      cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
  assert out == _blocks("bash")[1].strip()
  assert "grep -m1 -E '^python3 -m venv .*-m pytest' README.md" in (ROOT / ".ci" / "run").read_text()


def test_readme_stays_a_front_door():
  assert len(README.splitlines()) <= 200
  for page in re.findall(r"\]\((docs/[\w/]+\.md)\)", README):
    assert (ROOT / page).is_file(), page
  assert (ROOT / "docs" / "_static" / "edge_filters.png").is_file()


def test_readme_snippets_run_and_print_what_readme_says(capsys):
  conv, fit, occlusion = _blocks("python")
  namespace: dict = {}
  exec(compile(conv, "README.md (convolution)", "exec"), namespace)
  assert capsys.readouterr().out.split("\n")[0] == "(1, 26, 26, 1) True"

  exec(compile(fit, "README.md (fit)", "exec"), namespace)
  lines = capsys.readouterr().out.splitlines()
  assert float(lines[0]) >= 0.95  # README shows 1.0: the squares are easy to tell apart
  logits = namespace["logits"]
  assert logits.shape == (8, 10) and logits.dtype == np.float32
  assert (logits.argmax(axis=1) == namespace["y_val"][:8]).all()

  exec(compile(occlusion, "README.md (occlusion)", "exec"), namespace)
  for line in capsys.readouterr().out.splitlines():
    (i, j), (r, k) = eval(line.replace(") (", "), ("))  # "(14, 20) (14, 21)"
    assert abs(i - r) <= 2 and abs(j - k) <= 2, line
