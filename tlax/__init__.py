"""tlax: transfer learning in JAX.

The subpackages are attributes of the package, imported on first use::

    import tlax
    tlax.losses.mk_mmd(xs, xt)          # alignment losses
    tlax.shallow.JDA().fit(xs, ys, xt)  # closed-form methods
    tlax.data.task_from_arrays(xs, ys, xt)
    tlax.train.train_and_evaluate(config, workdir, task=task)
"""

import importlib

__version__ = "0.2.0"

_SUBPACKAGES = ("data", "kernels", "losses", "methods", "models",
                "prototypes", "safety", "selftaught", "shallow", "train",
                "transfer", "viz", "zsl")
__all__ = list(_SUBPACKAGES) + ["__version__"]


def __getattr__(name):
  if name in _SUBPACKAGES:
    try:
      return importlib.import_module(f"tlax.{name}")
    except ModuleNotFoundError as e:
      if e.name == f"tlax.{name}":
        raise AttributeError(f"module 'tlax' has no attribute {name!r}") from e
      raise
  raise AttributeError(f"module 'tlax' has no attribute {name!r}")


def __dir__():
  return sorted(__all__)
