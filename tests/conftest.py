"""Shared test set-up.

Benchmark-file tests need the public files; they use $TLAX_DATA_DIR, or
../shared/data beside the checkout when that exists (as in CI), and are
skipped with a visible reason otherwise.
"""

import os
import pathlib

import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]
_SHARED = _REPO.parent / "shared" / "data"
if not os.environ.get("TLAX_DATA_DIR") and _SHARED.is_dir():
  os.environ["TLAX_DATA_DIR"] = str(_SHARED)

# Tests compare float32 results with NumPy references and with each other at
# float32 tolerances. On GPUs JAX's default matmul/convolution precision is
# TF32 (about 3 decimal digits), which those comparisons cannot pass; ask for
# full float32 (no effect on the CPU, where float32 is always exact).
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")

# Keep test runs hermetic: TFDS builds and caches go to a temporary folder.
os.environ.setdefault("TLAX_CACHE_DIR", str(_REPO / ".pytest_cache" / "tlax"))

# Most of the suite's time is XLA compiling small programs that then run a
# few steps. XLA:CPU's backend optimisation level 0 compiles them two to
# three times faster (the LLVM passes are skipped; convolutions and matrix
# products still call the same library kernels; 30 steps of the quick DANN
# config log the same losses to the last bit at levels 0 and 3). A level
# given in XLA_FLAGS comes later and wins.
#
# jaxlib 0.10's XLA:CPU also compiles these programs about a quarter faster
# with its classic elementwise fusion emitters than with the MLIR fusion
# emitters it uses by default (same kernels for convolutions and matrix
# products). One value computed in two fusions may then differ in the last
# bit, so tests comparing two programs allow float32 rounding. The flag is
# set only for that jaxlib: XLA aborts on a flag it does not know, and other
# versions may not have this one.
def _jaxlib_minor() -> tuple[int, ...]:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    return tuple(int(p) for p in metadata.version("jaxlib").split(".")[:2])
  except (metadata.PackageNotFoundError, ValueError):
    return ()


_TEST_XLA_FLAGS = ["--xla_backend_optimization_level=0"]
if _jaxlib_minor() == (0, 10):
  _TEST_XLA_FLAGS.append("--xla_cpu_use_fusion_emitters=false")
os.environ["XLA_FLAGS"] = " ".join(
    f for f in (*_TEST_XLA_FLAGS, os.environ.get("XLA_FLAGS", "")) if f)

# Many tests compile the same programs (the quick configs' train steps, in
# this process and in the subprocesses they start): JAX's persistent
# compilation cache, shared by the xdist workers and inherited by the
# subprocesses, compiles each once. Entries are keyed by the program, the
# compile options and the jax/jaxlib versions, so reuse is always safe.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(_REPO / ".pytest_cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def _benchmark_files_available() -> bool:
  from tlax.data import files  # pylint: disable=g-import-not-at-top
  return files.available()


@pytest.fixture(scope="session")
def data_dir():
  """The benchmark data directory; skips the test when the files are absent."""
  if not _benchmark_files_available():
    pytest.skip("benchmark files not found: set TLAX_DATA_DIR to a folder with "
                "office_caltech10_surf/, mnist_usps/ and coil20/ (public files: "
                "https://github.com/chamwen/JPDA/tree/master/data)")
  return os.environ["TLAX_DATA_DIR"]


@pytest.fixture
def x64():
  """Runs the test with 64-bit JAX arrays (float64 reference tolerances)."""
  import jax  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):
    yield
