"""Works around a packaging bug of tensorflow-datasets 4.9.10.

``tensorflow_datasets/core/dataset_builder.py`` uses the ``importlib_resources``
backport when it locates a builder's code (every ``download_and_prepare``),
but TFDS declares that dependency only for Python < 3.9, so on a fresh
Python 3.11 environment building any dataset fails with ``ModuleNotFoundError:
No module named 'importlib_resources'`` (tensorflow/datasets issue #11212).
The standard library's ``importlib.resources`` is the same API, so when the
backport is absent we register the standard module under its name. Installing
``importlib_resources`` makes this a no-op.
"""

import importlib
import importlib.resources
import importlib.resources.abc  # pylint: disable=unused-import
import sys


def ensure_importlib_resources() -> None:
  """Makes ``import importlib_resources`` work (see module docstring)."""
  if "importlib_resources" in sys.modules:
    return
  try:
    importlib.import_module("importlib_resources")
  except ImportError:
    sys.modules["importlib_resources"] = importlib.resources
