"""Native CPU kernels, built on first use (XLA FFI custom calls).

* ``conv_pool(x, w, b, padding)``: a stride-1 NHWC/HWIO convolution, its
  bias and a 2x2/2 max-pool in one pass, with its gradients as two more
  kernels (the parameters', and the input's only where it is used). At
  LeNet sizes XLA:CPU spends most of such a layer's time in memory passes
  around the matmul (the patch matrix, the bias add, the pooling mask and
  its gradient); one pass over the input does all of it.
  :class:`tlax.kernels.conv.Conv` uses it for ``Conv(...)(x, pool=2)``
  where ``impl="auto"`` would take the patch matmul.
* ``bmm(a, b)``: a batched float32 matmul, for the 64 small channel
  products of Winograd's convolution
  (:func:`tlax.kernels.conv.conv2d_winograd`).

Both split the batch over XLA's intra-op thread pool. The C++ source
(``tlax/kernels/conv_pool.cc``) is compiled with the host's C++ compiler
(``$CXX``, else ``g++``/``c++``/``clang++``) into a cache directory
(``$TLAX_KERNEL_CACHE``, else ``~/.cache/tlax/kernels``), keyed by the
source, the flags, jaxlib's version and the CPU, and loaded with ctypes.
:func:`available` says whether that worked; when it did not (no compiler:
a RuntimeWarning says why, once), with ``TLAX_NATIVE=0`` (read when a
function is traced), or off the CPU, tlax's layers use their XLA forms,
which compute the same values. Reverse-mode autodiff only
(``jax.custom_vjp``): ``jax.jvp`` through them raises JAX's error; set
``TLAX_NATIVE=0`` for forward mode.

Under ``jax.vmap`` (many runs trained as one program) the custom calls are
declared ``vmap_method="sequential"``: a vmapped kernel is a loop over the
mapped axis, one call per run, not one batched call. These kernels are used
only when a model asks for them (``conv_impl="native"`` or ``"auto"``,
:mod:`tlax.kernels.conv`); the default models (``nn.Conv``) vmap into one
batched XLA program.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings

import jax
import jax.numpy as jnp
import numpy as np

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "conv_pool.cc")
CXXFLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w")
_TARGETS = {"tlax_conv_pool_fwd": "TlaxConvPoolFwd",
            "tlax_conv_pool_bwd_params": "TlaxConvPoolBwdParams",
            "tlax_conv_pool_bwd_input": "TlaxConvPoolBwdInput",
            "tlax_bmm": "TlaxBatchedMatmul"}


class NativeBuildError(RuntimeError):
  """The native kernels could not be compiled or loaded."""


def _compiler() -> str | None:
  for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
    if name and shutil.which(name):
      return shutil.which(name)
  return None


def _cpu_id() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith(("flags", "Features")):
          return line
  except OSError:
    pass
  return platform.processor() or platform.machine()


def cache_dir() -> str:
  return os.environ.get("TLAX_KERNEL_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "tlax", "kernels")


def build(force: bool = False) -> str:
  """Compiles the kernels (once per source, flags, jaxlib and CPU); returns
  the shared library's path. Raises :class:`NativeBuildError`."""
  import jaxlib  # pylint: disable=g-import-not-at-top
  cxx = _compiler()
  if cxx is None:
    raise NativeBuildError("no C++ compiler found (set $CXX, or install g++)")
  with open(SOURCE, "rb") as f:
    src = f.read()
  key = hashlib.sha256(b"\0".join([
      src, " ".join(CXXFLAGS).encode(), jaxlib.__version__.encode(),
      _cpu_id().encode(), cxx.encode()])).hexdigest()[:16]
  out = os.path.join(cache_dir(), f"conv_pool_{key}.so")
  if os.path.exists(out) and not force:
    return out
  os.makedirs(cache_dir(), exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache_dir())
  os.close(fd)
  cmd = [cxx, *CXXFLAGS, "-I", jax.ffi.include_dir(), SOURCE, "-o", tmp]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
      raise NativeBuildError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    os.replace(tmp, out)  # atomic: concurrent builders both end up right
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return out


@functools.lru_cache(maxsize=None)
def _load() -> str | None:
  """Builds and registers the kernels once; ``None`` on success, else why
  not (also warned, once)."""
  try:
    lib = ctypes.cdll.LoadLibrary(build())
    for target, symbol in _TARGETS.items():
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(
          getattr(lib, symbol)), platform="cpu")
  except Exception as e:  # pylint: disable=broad-except
    # Any failure (no compiler, a compile error, an unloadable library, an
    # XLA that rejects the handlers) leaves the XLA forms in place.
    warnings.warn(f"tlax native kernels unavailable, using XLA forms: {e}",
                  RuntimeWarning, stacklevel=3)
    return str(e)
  return None


def disabled() -> bool:
  """``TLAX_NATIVE=0`` (or ``false``/``no``) turns the kernels off."""
  return os.environ.get("TLAX_NATIVE", "1").strip().lower() in (
      "0", "false", "no", "off")


def unavailable_reason(backend: str | None = None) -> str | None:
  """Why the kernels cannot run on ``backend`` (default: JAX's), or
  ``None`` when they can (building them on the first call)."""
  if (backend or jax.default_backend()) != "cpu":
    return f"backend {backend or jax.default_backend()!r} is not the CPU"
  if disabled():
    return "disabled by TLAX_NATIVE=0"
  return _load()


def available(backend: str | None = None) -> bool:
  """Whether the native kernels can run on ``backend`` (default: JAX's)."""
  return unavailable_reason(backend) is None


def _pooled_size(h, kh, lo, hi):
  return (h + lo + hi - kh + 1) // 2


def _attrs(padding):
  return {"pad_top": np.int64(padding[0][0]),
          "pad_left": np.int64(padding[1][0])}


def _fwd_call(x, w, b, padding):
  n, h, wd, _ = x.shape
  kh, kw, _, cout = w.shape
  ph = _pooled_size(h, kh, *padding[0])
  pw = _pooled_size(wd, kw, *padding[1])
  shape = (n, ph, pw, cout)
  return jax.ffi.ffi_call(
      "tlax_conv_pool_fwd",
      (jax.ShapeDtypeStruct(shape, jnp.float32),
       jax.ShapeDtypeStruct(shape, jnp.uint8)),
      vmap_method="sequential")(x, w, b, **_attrs(padding))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv_pool(x, w, b, padding):
  return _fwd_call(x, w, b, padding)[0]


def _conv_pool_fwd(x, w, b, padding):
  y, idx = _fwd_call(x, w, b, padding)
  return y, (x, w, idx)


def _conv_pool_bwd(padding, res, g):
  x, w, idx = res
  g = g.astype(jnp.float32)
  dw, db = jax.ffi.ffi_call(
      "tlax_conv_pool_bwd_params",
      (jax.ShapeDtypeStruct(w.shape, jnp.float32),
       jax.ShapeDtypeStruct(w.shape[-1:], jnp.float32)),
      vmap_method="sequential")(x, idx, g, **_attrs(padding))
  dx = jax.ffi.ffi_call(
      "tlax_conv_pool_bwd_input", jax.ShapeDtypeStruct(x.shape, jnp.float32),
      vmap_method="sequential")(w, idx, g, **_attrs(padding))
  return dx, dw, db


_conv_pool.defvjp(_conv_pool_fwd, _conv_pool_bwd)


def conv_pool_problem(x_shape, w_shape, padding) -> str | None:
  """Why :func:`conv_pool` cannot take an ``x_shape`` input, a ``w_shape``
  kernel and explicit ``padding``; ``None`` when it can."""
  if len(x_shape) != 4 or len(w_shape) != 4 or x_shape[-1] != w_shape[2]:
    return f"x {tuple(x_shape)} and w {tuple(w_shape)} do not fit (NHWC, HWIO)."
  for (lo, hi), size, k in zip(padding, x_shape[1:3], w_shape[:2]):
    if lo < 0 or hi < 0 or lo >= k or hi >= k:
      return f"padding {tuple(padding)} must be in [0, k)."
    if size + lo + hi - k + 1 < 2:
      return (f"a {tuple(x_shape[1:3])} input gives no pooled output with a "
              f"{tuple(w_shape[:2])} kernel and padding {tuple(padding)}.")
  return None


def conv_pool(x, w, b, padding) -> jax.Array:
  """``max_pool(conv(x, w, padding) + b, 2)`` in one native pass.

  Args:
    x: ``(n, h, w, cin)`` float32.
    w: ``(kh, kw, cin, cout)`` float32.
    b: ``(cout,)`` float32.
    padding: explicit ``((lo_h, hi_h), (lo_w, hi_w))`` of the stride-1
      convolution.

  Returns:
    ``(n, oh // 2, ow // 2, cout)``: the 2x2/2 max-pool (VALID, odd sizes
    floored) of the convolution's ``(oh, ow)`` output plus ``b``; its
    gradient goes to each window's first maximum, as with
    :func:`tlax.models.layers.max_pool`.
  """
  if b.shape != w.shape[-1:]:
    raise ValueError(f"conv_pool: x {x.shape}, w {w.shape}, b {b.shape} do "
                     "not fit (NHWC, HWIO, (cout,)).")
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  problem = conv_pool_problem(x.shape, w.shape, padding)
  if problem is not None:
    raise ValueError(f"conv_pool: {problem}")
  reason = unavailable_reason()
  if reason is not None:
    raise RuntimeError(f"tlax native kernels are not available: {reason}.")
  dt = jnp.result_type(x, w, b)
  y = _conv_pool(x.astype(jnp.float32), w.astype(jnp.float32),
                 b.astype(jnp.float32), padding)
  return y.astype(dt)


def _bmm_call(a, b, trans_a: bool, trans_b: bool):
  m = a.shape[2] if trans_a else a.shape[1]
  n = b.shape[1] if trans_b else b.shape[2]
  return jax.ffi.ffi_call(
      "tlax_bmm", jax.ShapeDtypeStruct((a.shape[0], m, n), jnp.float32),
      vmap_method="sequential")(a, b, trans_a=trans_a, trans_b=trans_b)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _bmm(a, b, trans_a, trans_b):
  return _bmm_call(a, b, trans_a, trans_b)


def _bmm_fwd(a, b, trans_a, trans_b):
  return _bmm_call(a, b, trans_a, trans_b), (a, b)


def _bmm_bwd(trans_a, trans_b, res, g):
  # c = A @ B with A = op(a), B = op(b): dA = g B^T, dB = A^T g.
  a, b = res
  g = g.astype(jnp.float32)
  da = (_bmm_call(b, g, trans_b, True) if trans_a
        else _bmm_call(g, b, False, not trans_b))
  db = (_bmm_call(g, a, True, trans_a) if trans_b
        else _bmm_call(a, g, not trans_a, False))
  return da, db


_bmm.defvjp(_bmm_fwd, _bmm_bwd)


def bmm(a, b, *, trans_a: bool = False, trans_b: bool = False) -> jax.Array:
  """Batched float32 matmul ``op(a[i]) @ op(b[i])`` by the native kernel.

  ``op`` transposes the last two axes where ``trans_a`` / ``trans_b``.
  ``a``: ``(batch, m, k)`` (``(batch, k, m)`` transposed), ``b``:
  ``(batch, k, n)`` (``(batch, n, k)``). The batch is split over XLA's CPU
  thread pool; each product keeps register tiles of 6 rows by up to 64
  columns. Made for Winograd's many small products
  (:func:`tlax.kernels.conv.conv2d_winograd`), which XLA:CPU's library
  call ran at a fraction of its large-matmul speed. Reverse-mode
  autodiff (its gradients are the same kernel).
  """
  if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
    raise ValueError(f"bmm: a {a.shape} and b {b.shape} must be (batch, ., .)"
                     " with one batch size.")
  k_a = a.shape[1] if trans_a else a.shape[2]
  k_b = b.shape[2] if trans_b else b.shape[1]
  if k_a != k_b:
    raise ValueError(f"bmm: contracted sizes differ ({k_a} and {k_b}) for a "
                     f"{a.shape}, b {b.shape}, trans_a={trans_a}, "
                     f"trans_b={trans_b}.")
  reason = unavailable_reason()
  if reason is not None:
    raise RuntimeError(f"tlax native kernels are not available: {reason}.")
  dt = jnp.result_type(a, b)
  return _bmm(a.astype(jnp.float32), b.astype(jnp.float32), bool(trans_a),
              bool(trans_b)).astype(dt)
