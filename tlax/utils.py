"""Small helpers shared across tlax that depend on nothing else in it."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np


def import_object(spec: str, *, what: str = "object") -> Any:
  """The object named ``"package.module:attribute"``.

  Args:
    spec: a module path and an attribute name separated by one colon, e.g.
      ``"my_losses:energy_distance"``.
    what: what the object is, for error messages ("loss", "method", ...).

  Raises:
    ValueError: ``spec`` is not of that form.
    ImportError: the module cannot be imported (the message names it).
    AttributeError: the module has no such attribute.
  """
  if not isinstance(spec, str) or spec.count(":") != 1:
    raise ValueError(f"A {what} given by path must be written "
                     f"'package.module:name', got {spec!r}.")
  module_name, attr = spec.split(":")
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ImportError(f"Cannot import module {module_name!r} for {what} "
                      f"{spec!r}: {e}. Is it on PYTHONPATH (the current "
                      "folder is, for python -m)?") from e
  try:
    return getattr(module, attr)
  except AttributeError:
    raise AttributeError(f"Module {module_name!r} has no {what} {attr!r} "
                         f"(from {spec!r}).") from None


def subsample(n: int, max_points: int, seed: int = 0) -> np.ndarray:
  """Sorted indices of at most ``max_points`` of ``n`` (seeded)."""
  if n <= max_points:
    return np.arange(n)
  return np.sort(np.random.RandomState(seed).choice(n, max_points,
                                                    replace=False))
