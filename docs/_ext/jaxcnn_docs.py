"""Sphinx directives that write the manual's tables from the code, and reference resolution.

* ``{config-keys}``: every key of :mod:`jaxcnn.train.config` (its type, default and meaning),
  read from the schema itself, so the table cannot drift from what ``validate`` accepts.
* ``{model-zoo}``: every registered model with its trainable parameters and MACs per image,
  counted by :func:`jaxcnn.inspect.summary` under ``jax.eval_shape`` (no weights are made).
* ``{colab-notebooks}``: the notebooks table, from ``colab/build.py`` (the same rows README
  holds between its markers).

Objects are documented once, in the module that defines them; a reference through a package
that re-exports one (``jaxcnn.train.fit`` for ``jaxcnn.train.keras.fit``) is resolved to that
page by importing the name, so docstrings may name an object the way users import it.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  """A Markdown table (the pages are MyST: cells take `code` and {role}`target`)."""
  lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
  lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
  return lines


class ConfigKeys(SphinxDirective):
  """The table of every config key: dotted name, type, default, meaning."""
  has_content = False

  def run(self) -> list[nodes.Node]:
    from jaxcnn.train import config as config_lib
    rows = []
    for name, field in config_lib.fields().items():
      meta = field.metadata
      default = meta["default"]
      if isinstance(default, dict) or type(default).__name__ == "mappingproxy":
        default = dict(default)
      type_name = field.type if isinstance(field.type, str) else getattr(field.type, "__name__",
                                                                       str(field.type))
      rows.append([f"`{name}`", f"`{type_name}`", f"`{default!r}`",
                   meta["doc"] or "-"])
    lines = _table(["key", "type", "default", "meaning"], rows)
    container = nodes.container()
    self.state.nested_parse(StringList(lines, source="jaxcnn.train.config"), self.content_offset,
                            container)
    return container.children


def zoo_rows() -> list[tuple[str, str, int, int, tuple[int, ...]]]:
  """``(name, class, params, MACs per image, input shape)`` for every registered model."""
  from jaxcnn import inspect
  from jaxcnn.models import MODELS, get_model
  rows = []
  for name in sorted(MODELS):
    if name == "cifar_resnet":  # a family (any depth 6n+2); its members are listed by name
      continue
    model = get_model(name)
    shape = (1, 28, 28, 1) if name == "mlp" else (1, 32, 32, 3)
    s = inspect.summary(model, shape, print_fn=None)
    rows.append((name, type(model).__name__, s.trainable_params, s.total_macs, shape[1:]))
  return rows


class ModelZoo(SphinxDirective):
  """The table of every registered model: its class, trainable parameters and MACs."""
  has_content = False

  def run(self) -> list[nodes.Node]:
    rows = [[f"`{name}`", f"{{class}}`~jaxcnn.models.{cls}`", f"{params:,}", f"{macs:,}",
             "x".join(map(str, shape))]
            for name, cls, params, macs, shape in zoo_rows()]
    lines = _table(["name", "class", "parameters", "MACs per image", "input"], rows)
    container = nodes.container()
    self.state.nested_parse(StringList(lines, source="jaxcnn.models"), self.content_offset,
                            container)
    return container.children


class ColabNotebooks(SphinxDirective):
  """The notebooks table from ``colab/build.py`` (badge, notebook, what it shows)."""
  has_content = False

  def run(self) -> list[nodes.Node]:
    root = self.env.app.srcdir.parent
    sys.path.insert(0, str(root / "colab"))
    try:
      import build  # colab/build.py
    finally:
      sys.path.pop(0)
    rows = []
    for name, what in build.shown():
      link = (f"[Open in Colab](https://colab.research.google.com/github/{build.REPO}/blob/"
              f"{build.BRANCH}/colab/{name}.ipynb)")
      rows.append([link, f"`colab/{name}.ipynb`", what])
    lines = _table(["open", "notebook", "what it shows"], rows)
    container = nodes.container()
    self.state.nested_parse(StringList(lines, source="colab/build.py"), self.content_offset,
                            container)
    return container.children


# ------------------------------------------------------------------ the API reference pages

API_DIR = "api/generated"
#: id(object) -> the dotted name under which the API reference documents it.
DOCUMENTED: dict[int, str] = {}


def public_modules() -> list[str]:
  """Every public module of jaxcnn (no ``_private`` part), packages before their modules."""
  import pkgutil
  import jaxcnn
  names = ["jaxcnn"]
  for info in pkgutil.walk_packages(jaxcnn.__path__, "jaxcnn."):
    if not any(part.startswith("_") for part in info.name.split(".")):
      names.append(info.name)
  return sorted(names)


def _defined_in(obj: Any) -> str | None:
  module = getattr(obj, "__module__", None)
  return module if isinstance(module, str) else None


def _is_private(modname: str | None) -> bool:
  return modname is None or any(p.startswith("_") for p in modname.split("."))


def _members(modname: str, documented: set[str]):
  """``(own, elsewhere, constants)``: the names this module's page documents with their
  docstrings, ``(name, canonical)`` for the ones it re-exports from another documented public
  module, and its undocumented UPPER_CASE constants (listed by name and value)."""
  import inspect as pyinspect
  module = importlib.import_module(modname)
  names = getattr(module, "__all__", None)
  if names is None:
    names = [n for n, v in vars(module).items()
             if not n.startswith("_") and ((pyinspect.isfunction(v) or pyinspect.isclass(v))
                                           and _defined_in(v) == modname or n.isupper())]
  attribute_docs = _attribute_docs(modname)
  own, elsewhere, constants = [], [], []
  for name in names:
    obj = getattr(module, name)
    if pyinspect.ismodule(obj):
      continue
    home = _defined_in(obj) if (pyinspect.isfunction(obj) or pyinspect.isclass(obj)) else None
    if home and home != modname and home in documented and not _is_private(home):
      elsewhere.append((name, f"{home}.{getattr(obj, '__qualname__', name)}"))
    elif pyinspect.isfunction(obj) or pyinspect.isclass(obj):
      if obj.__doc__:
        own.append(name)
    elif name in attribute_docs:
      own.append(name)
    elif name.isupper():
      constants.append(name)
  return own, elsewhere, constants


def _attribute_docs(modname: str) -> set[str]:
  from sphinx.pycode import ModuleAnalyzer
  try:
    analyzer = ModuleAnalyzer.for_module(modname)
    return {name for (_, name) in analyzer.find_attr_docs()}
  except Exception:  # pylint: disable=broad-except
    return set()


def write_api_pages(app: Sphinx) -> None:
  """``docs/api/generated/<module>.rst`` for every public module, and the map that resolves a
  reference to the one place an object is documented."""
  out = app.srcdir / API_DIR
  out.mkdir(parents=True, exist_ok=True)
  modules = public_modules()
  documented = set(modules)
  pages = {}
  for modname in modules:
    own, elsewhere, constants = _members(modname, documented)
    module = importlib.import_module(modname)
    for name in own:
      DOCUMENTED.setdefault(id(getattr(module, name)), f"{modname}.{name}")
    lines = [modname, "=" * len(modname), "", f".. automodule:: {modname}", "   :no-members:",
             ""]
    if own or elsewhere:
      lines += [".. rubric:: Contents", "", ".. autosummary::", "   :nosignatures:", ""]
      lines += [f"   {n}" for n in own]
      lines += [f"   {_relative(canonical, modname)}" for _, canonical in elsewhere]
      lines.append("")
    children = [m for m in modules if m.rpartition(".")[0] == modname]
    if children:
      lines += [".. rubric:: Modules", ""]
      lines += [f"* :mod:`{m}`" for m in children]
      lines.append("")
    for name in own:
      obj = getattr(module, name)
      kind = _kind(obj)
      lines += [f".. auto{kind}:: {modname}.{name}"]
      if kind == "data" and len(repr(obj)) > 120:
        lines.append("   :no-value:")
      lines.append("")
    for name in constants:
      DOCUMENTED.setdefault(id(getattr(module, name)), f"{modname}.{name}")
      value = repr(getattr(module, name))
      lines += [f".. py:data:: {modname}.{name}"]
      if len(value) <= 120:
        lines.append(f"   :value: {value}")
      lines.append("")
    pages[modname] = "\n".join(lines)
  for modname, text in pages.items():
    path = out / f"{modname}.rst"
    if not path.exists() or path.read_text() != text:
      path.write_text(text)
  index = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
  index += [f"   {m}" for m in modules]
  text = "\n".join(index) + "\n"
  path = out / "index.rst"
  if not path.exists() or path.read_text() != text:
    path.write_text(text)


def _relative(name: str, modname: str) -> str:
  return name[len(modname) + 1:] if name.startswith(modname + ".") else name


def _kind(obj: Any) -> str:
  import inspect as pyinspect
  if pyinspect.isclass(obj):
    return "exception" if issubclass(obj, BaseException) else "class"
  if callable(obj):
    return "function"
  return "data"


# ------------------------------------------------------------------ references through re-exports

def _import(dotted: str) -> Any:
  parts = dotted.split(".")
  for i in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:i]))
    except ImportError:
      continue
    try:
      for attr in parts[i:]:
        obj = getattr(obj, attr)
    except AttributeError:
      return None
    return obj
  return None


def _documented_name(target: str, modname: str | None, classname: str | None) -> str | None:
  """Where the API reference documents ``target`` (as written in a docstring, relative to the
  module and class it appears in), or None."""
  target = target.lstrip("~.")
  candidates = []
  if modname:
    parts = modname.split(".")
    if classname:
      candidates.append(f"{modname}.{classname}.{target}")
    candidates += [".".join(parts[:i] + [target]) for i in range(len(parts), 0, -1)]
  candidates.append(target)
  for full in candidates:
    if not full.startswith("jaxcnn"):
      continue
    obj = _import(full)
    if obj is None:
      continue
    if id(obj) in DOCUMENTED:
      return DOCUMENTED[id(obj)]
    owner, _, attr = full.rpartition(".")  # a method or attribute of a documented class
    parent = _import(owner)
    if parent is not None and id(parent) in DOCUMENTED:
      return f"{DOCUMENTED[id(parent)]}.{attr}"
  return None


def _missing_reference(app: Sphinx, env, node, contnode):
  if node.get("refdomain") != "py":
    return None
  name = _documented_name(node.get("reftarget", ""), node.get("py:module"),
                          node.get("py:class"))
  if not name or name == node.get("reftarget"):
    return None
  domain = env.get_domain("py")
  for typ in (node.get("reftype"), "obj"):
    new = domain.resolve_xref(env, node["refdoc"], app.builder, typ, name, node, contnode)
    if new is not None:
      return new
  return None


def setup(app: Sphinx) -> dict[str, Any]:
  app.add_directive("config-keys", ConfigKeys)
  app.add_directive("model-zoo", ModelZoo)
  app.add_directive("colab-notebooks", ColabNotebooks)
  app.connect("builder-inited", write_api_pages)
  app.connect("missing-reference", _missing_reference)
  return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
