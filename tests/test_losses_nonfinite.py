"""Losses on bad numbers: NaN/inf inputs and hyper-parameters never give a
plausible value; Gaussian MMD under a large common offset and on collapsed
features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax import losses


def _ref_mk_mmd(xs, xt, num=5, base=2.0):
  """Biased multi-kernel MMD^2 with 'mean:num' bandwidths, float64 NumPy."""
  z = np.concatenate([xs, xt]).astype(np.float64)
  d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
  n = len(z)
  bw = d.sum() / (n * (n - 1))
  ks = [np.exp(-d / (bw * base ** k)) for k in range(-(num // 2),
                                                    num - num // 2)]
  k = sum(ks) / num
  ns = len(xs)
  return (k[:ns, :ns].mean() + k[ns:, ns:].mean()
          - 2 * k[:ns, ns:].mean())


def _data():
  rs = np.random.RandomState(0)
  return (rs.randn(32, 8).astype(np.float32),
          (rs.randn(32, 8) + 0.3).astype(np.float32))


@pytest.mark.parametrize("fn", [
    lambda a, b: losses.mk_mmd(a, b, "mean:5"),
    lambda a, b: losses.jmmd([a], [b]),
    lambda a, b: losses.mmd(a, b)])
def test_gaussian_mmd_is_shift_invariant_in_float32(fn):
  xs, xt = _data()
  plain = float(fn(xs, xt))
  shifted = float(fn(xs + 1000.0, xt + 1000.0))
  assert abs(shifted - plain) / abs(plain) < 1e-4


def test_mk_mmd_with_offset_matches_numpy_reference():
  xs, xt = _data()
  ref = _ref_mk_mmd(xs, xt)
  got = float(losses.mk_mmd(xs + 1000.0, xt + 1000.0, "mean:5"))
  assert abs(got - ref) / ref < 1e-4


@pytest.mark.parametrize("sigmas", ["mean:5", "median"])
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_identical_features_give_zero_loss_and_finite_gradients(sigmas,
                                                                offset):
  z = jnp.full((16, 8), 3.7 + offset, jnp.float32)
  value, grad = jax.value_and_grad(
      lambda a: losses.mk_mmd(a, z, sigmas))(z)
  assert float(value) == 0.0
  assert np.isfinite(np.asarray(grad)).all()
  assert float(jnp.abs(grad).max()) < 1e-3


_NAN = np.array([[np.nan, 1.0]] + [[0.1 * i, 1.0 - 0.1 * i]
                                   for i in range(7)], np.float32)
_INF = np.where(np.isnan(_NAN), np.inf, _NAN).astype(np.float32)
_OK = np.random.RandomState(1).randn(8, 2).astype(np.float32)


@pytest.mark.parametrize("name,fn", [
    ("cmd", lambda a: losses.cmd(a, _OK)),
    ("coral", lambda a: losses.coral(a, _OK)),
    ("mk_mmd mean", lambda a: losses.mk_mmd(a, _OK, "mean:5")),
    ("mk_mmd median", lambda a: losses.mk_mmd(a, _OK, "median")),
    ("mk_mmd fixed", lambda a: losses.mk_mmd(a, _OK, 1.0)),
    ("mmd", lambda a: losses.mmd(a, _OK)),
    ("linear_mmd", lambda a: losses.linear_mmd(a, _OK)),
    ("jmmd", lambda a: losses.jmmd([a], [_OK])),
    ("pairwise", lambda a: losses.pairwise_sq_distances(a, _OK).sum()),
    ("gaussian_kernel", lambda a: losses.gaussian_kernel(a, _OK, 1.0).sum()),
    ("proxy_a_distance",
     lambda a: losses.proxy_a_distance(a, _OK, jax.random.key(0))),
])
@pytest.mark.parametrize("bad", [_NAN, _INF], ids=["nan", "inf"])
def test_non_finite_inputs_never_give_a_plausible_value(name, fn, bad):
  del name
  assert not np.isfinite(np.asarray(fn(bad))).all()


def test_negative_kernel_weights_are_refused_or_nan():
  xs, xt = _data()
  with pytest.raises(ValueError, match="weights must be >= 0"):
    losses.mk_mmd(xs, xt, "mean:3", weights=[1.0, -2.0, 1.0])
  traced = jax.jit(lambda w: losses.mk_mmd(xs, xt, "mean:3", weights=w))
  assert np.isnan(float(traced(jnp.array([1.0, -2.0, 1.0]))))
  assert np.isfinite(float(traced(jnp.array([1.0, 2.0, 1.0]))))


def test_dynamic_mmd_mu_out_of_range():
  xs, xt = _data()
  y = np.arange(32) % 2
  with pytest.raises(ValueError, match=r"mu must be finite and in \[0, 1\]"):
    losses.dynamic_mmd(xs, xt, y, y, 2.0, 2)
  traced = jax.jit(lambda mu: losses.dynamic_mmd(xs, xt, y, y, mu, 2))
  assert np.isnan(float(traced(2.0)))


def test_labels_outside_the_classes_are_refused():
  xs, xt = _data()
  y = np.arange(32) % 3
  # A label >= num_classes is a zero one-hot row: the loss would be 0.
  with pytest.raises(ValueError, match=r"labels_s must be class ids in 0..2"):
    losses.class_conditional_mmd(xs, xt, y + 5, y, num_classes=3)
  with pytest.raises(ValueError, match="num_classes must be an int >= 1"):
    losses.class_conditional_mmd(xs, xt, y, y, num_classes=0)
  with pytest.raises(ValueError, match="num_classes must be an int >= 1"):
    losses.class_prototypes(xs, y, 0)
  with pytest.raises(ValueError, match=r"labels must have shape \(32,\)"):
    losses.class_prototypes(xs, y[:5], 3)


def test_contrastive_losses_refuse_bad_temperatures_and_shapes():
  xs, xt = _data()
  y = np.arange(32) % 4
  with pytest.raises(ValueError, match="temperature must be finite and > 0"):
    losses.supervised_contrastive(xs, y, temperature=-1.0)
  with pytest.raises(ValueError, match=r"labels must have shape \(32,\)"):
    losses.supervised_contrastive(xs, y[:12])
  with pytest.raises(ValueError, match="view1 and view2 must have the same"):
    losses.nt_xent(xs, xt[:20])
  with pytest.raises(ValueError, match="nt_xent: temperature must be"):
    losses.nt_xent(xs, xt, temperature=0.0)
  with pytest.raises(ValueError, match=r"pseudo_label_cross_entropy: logits "
                     r"and probs must have the same shape"):
    losses.pseudo_label_cross_entropy(xs, jax.nn.softmax(xt[:12]))
  with pytest.raises(ValueError, match="softmax_mse: student_logits and "
                     "teacher_logits must have the same shape"):
    losses.softmax_mse(xs, xt[:12])


def test_mu_from_non_finite_a_distances_is_nan():
  d_class = jnp.array([0.5, 1.0])
  assert np.isnan(float(losses.mu_from_a_distances(jnp.nan, d_class)))
  assert np.isnan(float(losses.mu_from_a_distances(
      1.0, jnp.array([jnp.inf, 1.0]))))
  # Finite: (0.5 + 1.0) / 2 / (1.0 + 0.75), and 0.5 when both are 0.
  np.testing.assert_allclose(
      float(losses.mu_from_a_distances(1.0, d_class)), 0.75 / 1.75, 1e-6)
  assert float(losses.mu_from_a_distances(0.0, jnp.zeros(2))) == 0.5
