"""README stays true: its example runs, and CI runs exactly its test command."""

import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
  return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_main_and_the_test_command():
  main, tests = _blocks("bash")[:2]
  assert "python -m experiments.train" in main
  assert "-m pytest" in tests
  assert README.index(main) < README.index(tests) < README.index("## What is inside")


def test_ci_runs_the_readme_test_command():
  # .ci/run greps README for the line; the same grep must find the README's second command.
  out = subprocess.run(
      ["grep", "-m1", "-E", r"^python3 -m venv .*-m pytest", "README.md"],
      cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
  assert out == _blocks("bash")[1].strip()
  assert "grep -m1 -E '^python3 -m venv .*-m pytest' README.md" in (ROOT / ".ci" / "run").read_text()


def test_readme_python_example_runs(capsys):
  exec(compile(_blocks("python")[0], "README.md", "exec"), {})
  assert "Total params: 122,570" in capsys.readouterr().out
