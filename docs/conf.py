"""Sphinx configuration of the jaxcnn manual.

    pip install -e '.[docs]'
    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m http.server -d docs/_build/html

Pages are MyST Markdown; the API reference is generated from the docstrings (autodoc +
autosummary; napoleon reads their Google-style ``Args:``/``Returns:``). The build is strict
(``-W``, ``nitpicky``): a broken link or an unresolved reference fails it. Tables that the code
knows (the config keys, the model zoo's counts, the Colab notebooks) are generated at build time
by ``docs/_ext/jaxcnn_docs.py``, so they cannot drift from the code.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's jaxcnn, experiments and colab/build.py
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import jaxcnn  # noqa: E402

project = "jaxcnn"
author = "the jaxcnn authors"
copyright = "the jaxcnn authors"  # pylint: disable=redefined-builtin
release = version = jaxcnn.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_copybutton",
    "jaxcnn_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "README.md"]
templates_path = ["_templates"]
html_static_path = ["_static"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The API reference: every public module's members, one page per module.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# Not autodoc_preserve_defaults: it rewrites functions' __defaults__ in place, and the build
# calls jaxcnn (the zoo table) after autodoc has run.
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as fields: a dataclass field is described once

# Strict: every reference must resolve. CI builds without a network, so there is no
# intersphinx; references into other libraries are let through by name, and only those.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jaxlib|flax|optax|orbax|numpy|np|jnp|matplotlib|ml_collections|"
               r"tensorflow|tf|tensorflow_datasets|tfds|PIL|scipy|torch|absl|tensorboardX|"
               r"tqdm|typing|typing_extensions|collections|collections\.abc|dataclasses|"
               r"pathlib|os|enum|functools|types|concurrent|threading|contextlib|abc|"
               r"numbers|io|json|logging)(\..*)?"),
    # Builtins and typing names autodoc writes from annotations.
    (r"py:.*", r"(int|float|str|bool|bytes|dict|list|tuple|set|frozenset|object|type|slice|"
               r"complex|callable|None|NoneType|Ellipsis|Any|Callable|Sequence|Mapping|"
               r"Iterable|Iterator|Generator|Hashable|MutableMapping|Literal|Union|Optional|"
               r"Self|TypeVar|PathLike|Exception|ValueError|TypeError|KeyError|OSError|"
               r"RuntimeError|FileNotFoundError|KeyboardInterrupt|BaseException|"
               r"Array|ArrayLike|PRNGKey|DTypeLike|Shape|PyTree|ndarray|Figure|Axes|Module|"
               r"ConfigDict|FrozenConfigDict|GradientTransformation|Mesh|NamedSharding|"
               r"PartitionSpec|Sharding|Device|Tracer|dtype|optional|"
               # type aliases of jax, flax and optax, as their annotations name them
               r"AxisName|ArrayTree|Dtype|PrecisionLike|Params|Updates|OptState|ScalarOrSchedule)"),
]

html_theme = "furo"
html_title = f"jaxcnn {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
