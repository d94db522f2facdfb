"""The jaxcnn import graph is acyclic: every module-to-module import, including the ones inside
functions, goes from a higher layer to a lower one (a cycle means a bottom layer reaches up)."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jaxcnn"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
  """``{module: {jaxcnn modules it imports}}`` from the source (nothing is imported)."""
  modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
  graph: dict[str, set[str]] = {m: set() for m in modules}
  for name, path in modules.items():
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
      targets = []
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative import
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                          + ([base] if base else []))
        # `from jaxcnn import layers` imports the module jaxcnn.layers; `from x import f`, x.
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                   for a in node.names]
      for t in targets:
        while t and t not in modules:
          t = t.rpartition(".")[0]
        if t and t != name and t.startswith("jaxcnn"):
          # The package's __init__ only re-exports: an import of `jaxcnn.x` loads `jaxcnn`
          # first, but that is not an edge of ours unless we import the package itself.
          graph[name].add(t)
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  state: dict[str, int] = {}
  stack: list[str] = []

  def visit(n):
    state[n] = 1
    stack.append(n)
    for m in sorted(graph[n]):
      if state.get(m) == 1:
        return stack[stack.index(m):] + [m]
      if m not in state:
        found = visit(m)
        if found:
          return found
    stack.pop()
    state[n] = 2
    return None

  for n in sorted(graph):
    if n not in state:
      found = visit(n)
      if found:
        return found
  return None


# Recipes built on the engine sit above it and may import it; the shipped configs are built on
# the schema (jaxcnn.train.config).
ABOVE_TRAIN = {"jaxcnn.recipes", "jaxcnn.recipes.airbench", "jaxcnn.recipes.base", "jaxcnn.configs",
               *(f"jaxcnn.configs.{p.stem}" for p in (ROOT / "configs").glob("*.py"))}


def test_the_jaxcnn_import_graph_is_acyclic():
  graph = import_graph()
  assert "jaxcnn.train.loop" in graph and "jaxcnn.train.steps" in graph["jaxcnn.train.loop"]
  assert "jaxcnn.train.run" in graph["jaxcnn.recipes.airbench"]
  cycle = find_cycle(graph)
  assert cycle is None, " -> ".join(cycle)


def test_train_and_data_import_only_downwards():
  """Nothing below ``jaxcnn.train`` imports it, and ``jaxcnn.data`` imports no model code."""
  graph = import_graph()
  for module, deps in graph.items():
    if not module.startswith("jaxcnn.train") and module not in ABOVE_TRAIN:
      assert not any(d.startswith("jaxcnn.train") for d in deps), (module, deps)
    if module.startswith("jaxcnn.data"):
      assert not deps & {"jaxcnn.layers", "jaxcnn.models", "jaxcnn.functional"}, module


def test_the_cycle_finder_finds_a_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set()}) is None


if __name__ == "__main__":  # python tests/test_import_graph.py: print the graph
  for module, deps in sorted(import_graph().items()):
    print(f"{module}: {', '.join(sorted(deps)) or '-'}")
  print("cycle:", find_cycle(import_graph()))
