"""XLA compiler options of tlax's jitted programs.

XLA:CPU (jax 0.10) hands dots, reductions and convolutions to YNNPACK by
default. Its convolutions measured 1.4-2.3x slower there than through Eigen
on eight of the nine layer shapes of ``experiments/bench_conv_layers.py
--batch 64 --extra`` (forward and both gradients), while its dots are
faster, so the trainer, evaluation and feature functions compile with
YNNPACK for dots and reductions only. The option is a property of the
compiled program, not of the model: a model computes the same function on
every backend, and off the CPU the options are empty.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type":
                "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,"
                "LIBRARY_FUSION_TYPE_REDUCE"}


@functools.lru_cache(maxsize=None)
def _cpu_options_supported() -> bool:
  try:  # an XLA without the option rejects it at compile time
    jax.jit(lambda v: v + 1, compiler_options=_CPU_OPTIONS).lower(
        np.float32(0)).compile()
    return True
  except Exception:  # pylint: disable=broad-except
    return False


def compiler_options(backend: str | None = None) -> dict[str, str]:
  """XLA options for tlax's jitted programs (``{}`` off the CPU).

  On the CPU: XLA's convolutions through Eigen instead of YNNPACK, dots and
  reductions still through YNNPACK. Pass them to your own
  ``jax.jit(..., compiler_options=compiler_options())`` for the same
  convolution speed. Empty off the CPU, when this XLA does not know the
  option, and when ``XLA_FLAGS`` already sets the YNNPACK fusion types (the
  user's setting wins).
  """
  if (backend or jax.default_backend()) != "cpu":
    return {}
  if "ynn_fusion_type" in os.environ.get("XLA_FLAGS", ""):
    return {}
  return dict(_CPU_OPTIONS) if _cpu_options_supported() else {}
