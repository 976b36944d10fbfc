"""Sphinx configuration of the tlax documentation (MyST markdown, myst-nb).

Build (from the repository root):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The example notebooks in ``notebooks/`` are copied into ``docs/notebooks/``
and executed during the build in their quick mode (``TLAX_QUICK=1``); a
failing cell fails the build.
"""

import os
import pathlib
import shutil
import sys

_DOCS = pathlib.Path(__file__).resolve().parent
_ROOT = _DOCS.parent
sys.path.insert(0, str(_ROOT))
os.environ.setdefault("TLAX_QUICK", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The notebooks live at the top level; Sphinx reads only its source folder.
_NB_OUT = _DOCS / "notebooks"
if (_ROOT / "notebooks").is_dir():
  _NB_OUT.mkdir(exist_ok=True)
  for nb in sorted((_ROOT / "notebooks").glob("*.ipynb")):
    shutil.copy2(nb, _NB_OUT / nb.name)

import tlax  # pylint: disable=g-import-not-at-top,wrong-import-position

project = "tlax"
author = "The tlax authors"
release = tlax.__version__
version = tlax.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "img/README.md"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "none"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

html_theme = "furo"
html_title = f"tlax {release}"
suppress_warnings = ["myst.header", "myst.xref_missing"]
