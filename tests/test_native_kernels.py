"""The native conv + bias + max-pool kernel (tlax/kernels) against XLA."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax.kernels import native
from tlax.kernels import conv as L
from tlax.models.lenet import LeNet

# Subprocesses, compiled C++, notebooks or benchmarks: not in the quick suite.
pytestmark = pytest.mark.slow

needs_native = pytest.mark.skipif(
    not native.available(),
    reason=f"native kernels unavailable: {native.unavailable_reason()}")


def _reference(x, w, b, padding):
  """XLA's convolution, the bias, tlax's max_pool (first-maximum rule)."""
  return L.max_pool(L.conv2d(x, w, (1, 1), padding, impl="xla") + b, 2)


def _inputs(shape, kernel, seed=0):
  k = jax.random.split(jax.random.key(seed), 4)
  x = jax.random.normal(k[0], shape)
  w = 0.3 * jax.random.normal(k[1], kernel)
  b = jax.random.normal(k[2], kernel[-1:])
  return x, w, b, k[3]


# (input shape, kernel shape, padding): LeNet's conv1 at 16x16 (SAME) and
# 28x28 (VALID), several input channels, channel counts that are not a
# multiple of 16 or exceed one 64-channel group, odd outputs (the pool
# floors), asymmetric padding.
CASES = [
    ((3, 16, 16, 1), (5, 5, 1, 32), ((2, 2), (2, 2))),
    ((2, 28, 28, 1), (5, 5, 1, 20), ((0, 0), (0, 0))),
    ((2, 9, 11, 3), (5, 5, 3, 20), ((0, 0), (0, 0))),
    ((2, 8, 8, 2), (3, 3, 2, 17), ((1, 1), (1, 1))),
    ((2, 7, 6, 2), (3, 3, 2, 70), ((1, 2), (0, 1))),
    ((1, 5, 5, 4), (2, 2, 4, 130), ((0, 1), (1, 0))),
]


@needs_native
@pytest.mark.parametrize("shape,kernel,padding", CASES)
def test_conv_pool_matches_xla(shape, kernel, padding):
  x, w, b, kg = _inputs(shape, kernel)
  ref = _reference(x, w, b, padding)
  got = jax.jit(lambda *a: native.conv_pool(*a, padding))(x, w, b)
  assert got.shape == ref.shape
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
  g = jax.random.normal(kg, ref.shape)
  loss = lambda f: (lambda *a: jnp.sum(f(*a) * g))
  want = jax.grad(loss(lambda *a: _reference(*a, padding)),
                  argnums=(0, 1, 2))(x, w, b)
  have = jax.jit(jax.grad(loss(lambda *a: native.conv_pool(*a, padding)),
                          argnums=(0, 1, 2)))(x, w, b)
  for name, a, c in zip(("dx", "dw", "db"), want, have):
    np.testing.assert_allclose(c, a, rtol=1e-4, atol=1e-4, err_msg=name)


@needs_native
def test_conv_pool_ties_go_to_first_maximum():
  # A zero kernel makes every window's four outputs equal (the bias): the
  # whole gradient must go to each window's top-left position, as with
  # layers.max_pool (nn.max_pool's rule), not be split between them.
  x = jax.random.normal(jax.random.key(1), (2, 6, 6, 1))
  w, b = jnp.zeros((3, 3, 1, 4)), jnp.arange(4.0)
  pad = ((1, 1), (1, 1))
  y = native.conv_pool(x, w, b, pad)
  np.testing.assert_array_equal(y, jnp.broadcast_to(b, (2, 3, 3, 4)))
  dw = jax.grad(lambda w: jnp.sum(native.conv_pool(x, w, b, pad)))(w)
  want = jax.grad(lambda w: jnp.sum(_reference(x, w, b, pad)))(w)
  np.testing.assert_allclose(dw, want, rtol=1e-5, atol=1e-5)
  # Top-left outputs only: the centre tap sums x at even rows and columns.
  np.testing.assert_allclose(dw[1, 1, 0], jnp.sum(x[:, ::2, ::2, 0]),
                             rtol=1e-5)


@needs_native
def test_conv_pool_propagates_nan():
  x, w, b, _ = _inputs((1, 8, 8, 1), (3, 3, 1, 16))
  x = x.at[0, 0, 0, 0].set(jnp.nan)
  y = native.conv_pool(x, w, b, ((1, 1), (1, 1)))
  assert bool(jnp.isnan(y[0, 0, 0]).all())       # its window reads the NaN
  assert not bool(jnp.isnan(y[0, 2:, 2:]).any())  # far windows do not


@needs_native
def test_conv_pool_vmap():
  x, w, b, _ = _inputs((3, 2, 8, 8, 1), (5, 5, 1, 8))
  pad = ((2, 2), (2, 2))
  got = jax.vmap(lambda x: native.conv_pool(x, w, b, pad))(x)
  want = jnp.stack([_reference(xi, w, b, pad) for xi in x])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@needs_native
def test_conv_pool_rejects_bad_input():
  x, w, b, _ = _inputs((1, 8, 8, 2), (3, 3, 2, 4))
  with pytest.raises(ValueError, match="do not fit"):
    native.conv_pool(x[..., :1], w, b, ((1, 1), (1, 1)))
  with pytest.raises(ValueError, match="do not fit"):
    native.conv_pool(x, w, b[:3], ((1, 1), (1, 1)))
  with pytest.raises(ValueError, match="padding"):
    native.conv_pool(x, w, b, ((3, 3), (1, 1)))
  with pytest.raises(ValueError, match="no pooled output"):
    native.conv_pool(x[:, :3, :3], w, b, ((0, 0), (0, 0)))


@needs_native
def test_conv_auto_uses_native_kernel_for_pooled_patch_convs():
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 1))
  h = jax.random.normal(jax.random.key(1), (4, 8, 8, 32))
  text = lambda conv, v: jax.jit(
      lambda v: conv.apply(conv.init(jax.random.key(2), v), v, pool=2)
  ).lower(v).as_text()
  conv = L.Conv(32, 5)
  assert "tlax_conv_pool_fwd" in text(conv, x)                # conv1
  assert "tlax_conv_pool_fwd" not in text(L.Conv(48, 5), h)   # Winograd
  assert "tlax_conv_pool_fwd" not in text(L.Conv(32, 5, impl="patches"), x)
  # The same values as the unfused layer.
  params = conv.init(jax.random.key(2), x)
  fused = conv.apply(params, x, pool=2)
  plain = L.max_pool(L.Conv(32, 5, impl="patches").apply(params, x), 2)
  np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="impl='native'"):
    L.Conv(32, 5, strides=2, impl="native").init(jax.random.key(0), x,
                                                 pool=2)
  with pytest.raises(ValueError, match="impl='native'"):
    L.conv2d(x, jnp.zeros((5, 5, 1, 4)), impl="native")
  with pytest.raises(ValueError, match="pool=2"):
    L.Conv(32, 5, impl="native").init(jax.random.key(0), x)


@needs_native
def test_lenet_train_grads_match_without_native_kernel():
  x = jax.random.uniform(jax.random.key(0), (8, 16, 16, 1))
  y = jnp.arange(8) % 10
  fast = LeNet(num_classes=10, conv_impl="native")
  slow = LeNet(num_classes=10, conv_impl="patches")
  params = fast.init(jax.random.key(1), x)

  def loss(model):
    def f(p):
      logits, _ = model.apply(p, x)
      return jnp.mean(jax.nn.logsumexp(logits, -1)
                      - jnp.take_along_axis(logits, y[:, None], -1)[:, 0])
    return f

  lf, gf = jax.jit(jax.value_and_grad(loss(fast)))(params)
  ls, gs = jax.jit(jax.value_and_grad(loss(slow)))(params)
  np.testing.assert_allclose(lf, ls, rtol=1e-5)
  for a, c in zip(jax.tree.leaves(gf), jax.tree.leaves(gs)):
    np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)


def test_native_disabled_by_environment_falls_back():
  # A fresh process with TLAX_NATIVE=0: no kernel, the LeNet still runs on
  # the XLA forms and gives the values the native kernel would.
  code = (
      "import jax, jax.numpy as jnp\n"
      "from tlax.kernels import native\n"
      "from tlax.models.lenet import LeNet\n"
      "assert not native.available(), native.unavailable_reason()\n"
      "assert 'TLAX_NATIVE=0' in native.unavailable_reason()\n"
      "m = LeNet(num_classes=10, conv_impl='auto')\n"
      "x = jnp.ones((2, 16, 16, 1))\n"
      "p = m.init(jax.random.key(0), x)\n"
      "t = jax.jit(lambda p, x: m.apply(p, x)).lower(p, x).as_text()\n"
      "assert 'tlax_conv_pool' not in t\n"
      "print('ok')\n")
  env = dict(os.environ, TLAX_NATIVE="0", JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip() == "ok"


def test_build_errors_say_why(monkeypatch, tmp_path):
  monkeypatch.setenv("TLAX_KERNEL_CACHE", str(tmp_path))
  monkeypatch.setattr(native, "_compiler", lambda: None)
  with pytest.raises(native.NativeBuildError, match="no C\\+\\+ compiler"):
    native.build()


@pytest.mark.skipif(native._compiler() is None, reason="no C++ compiler")
def test_build_reports_compiler_errors_and_caches(monkeypatch, tmp_path):
  monkeypatch.setenv("TLAX_KERNEL_CACHE", str(tmp_path))
  monkeypatch.setattr(native, "CXXFLAGS",
                      native.CXXFLAGS + ("-fno-such-flag-tlax",))
  with pytest.raises(native.NativeBuildError, match="no-such-flag-tlax"):
    native.build()
  assert not list(tmp_path.glob("*.so"))  # nothing half-built left behind
  monkeypatch.undo()
  monkeypatch.setenv("TLAX_KERNEL_CACHE", str(tmp_path))
  path = native.build()
  assert os.path.dirname(path) == str(tmp_path)
  mtime = os.path.getmtime(path)
  assert native.build() == path and os.path.getmtime(path) == mtime


@needs_native
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,k,n", [(256, 32, 48), (13, 7, 37), (5, 64, 130),
                                   (1, 1, 1)])
def test_bmm_matches_einsum(trans_a, trans_b, m, k, n):
  ka, kb, kg = jax.random.split(jax.random.key(m + n), 3)
  batch = 3
  a = jax.random.normal(ka, (batch, k, m) if trans_a else (batch, m, k))
  b = jax.random.normal(kb, (batch, n, k) if trans_b else (batch, k, n))

  def ref(a, b):
    a = jnp.swapaxes(a, 1, 2) if trans_a else a
    b = jnp.swapaxes(b, 1, 2) if trans_b else b
    return jnp.einsum("bmk,bkn->bmn", a, b, precision="highest")

  nat = jax.jit(lambda a, b: native.bmm(a, b, trans_a=trans_a,
                                        trans_b=trans_b))
  got = nat(a, b)
  assert got.shape == (batch, m, n)
  np.testing.assert_allclose(got, ref(a, b), rtol=1e-5, atol=1e-4)
  g = jax.random.normal(kg, got.shape)
  want = jax.grad(lambda a, b: jnp.sum(ref(a, b) * g), (0, 1))(a, b)
  have = jax.jit(jax.grad(lambda a, b: jnp.sum(nat(a, b) * g), (0, 1)))(a, b)
  for name, x, y in zip(("da", "db"), want, have):
    np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-4, err_msg=name)


@needs_native
def test_bmm_rejects_bad_shapes_and_forward_mode():
  a, b = jnp.ones((2, 3, 4)), jnp.ones((2, 4, 5))
  with pytest.raises(ValueError, match="contracted sizes differ"):
    native.bmm(a, b, trans_b=True)
  with pytest.raises(ValueError, match="one batch size"):
    native.bmm(a, b[:1])
  with pytest.raises(ValueError, match="one batch size"):
    native.bmm(a[0], b[0])
  with pytest.raises(TypeError, match="custom_vjp"):  # reverse mode only
    jax.jvp(native.bmm, (a, b), (a, b))


@needs_native
def test_winograd_products_native_and_xla_agree(monkeypatch):
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 32))
  w = 0.1 * jax.random.normal(jax.random.key(1), (5, 5, 32, 48))
  pad = ((2, 2), (2, 2))
  # A new function each time: jit's trace cache would keep the first form.
  f = lambda: lambda x, w: jnp.sum(jnp.sin(L.conv2d_winograd(x, w, pad)))
  assert "tlax_bmm" in jax.jit(f()).lower(x, w).as_text()
  nat = jax.jit(jax.value_and_grad(f(), (0, 1)))(x, w)
  monkeypatch.setenv("TLAX_NATIVE", "0")
  assert "tlax_bmm" not in jax.jit(f()).lower(x, w).as_text()
  xla = jax.jit(jax.value_and_grad(f(), (0, 1)))(x, w)
  for a, c in zip(jax.tree.leaves(nat), jax.tree.leaves(xla)):
    np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)
