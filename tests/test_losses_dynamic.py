"""Dynamic distribution alignment: fixed mu and the learned-mu estimator.

The learned-mu tests are the evidence for the design in
``tlax/losses/dynamic.py``: on synthetic shifts whose answer is known, the
in-graph proxy A-distances drive mu to it.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tlax import losses


def test_dynamic_mmd_interpolates(x64):
  rng = np.random.default_rng(0)
  xs, xt = rng.normal(size=(8, 4)), rng.normal(size=(9, 4)) + 0.5
  ys = np.array([0, 1, 2, 0, 1, 2, 0, 1])
  pt = rng.dirichlet(np.ones(3), 9)
  marg = losses.mk_mmd(xs, xt, "mean:5")
  cond = losses.class_conditional_mmd(xs, xt, ys, pt)
  for mu in (0.0, 0.3, 1.0):
    want = (1 - mu) * marg + mu * cond
    np.testing.assert_allclose(losses.dynamic_mmd(xs, xt, ys, pt, mu), want,
                               rtol=1e-12)
    np.testing.assert_allclose(
        losses.dynamic_distribution_alignment(marg, cond, mu), want,
        rtol=1e-12)
  # linear kernel: DDC marginal + JDA class-mean gaps
  want = 0.5 * losses.linear_mmd(xs, xt) + 0.5 * losses.class_conditional_mmd(
      xs, xt, ys, pt, kernel="linear")
  np.testing.assert_allclose(
      losses.dynamic_mmd(xs, xt, ys, pt, 0.5, kernel="linear"), want,
      rtol=1e-12)
  # traced mu, grads, vmap over mu
  f = jax.jit(lambda a, mu: losses.dynamic_mmd(a, xt, ys, pt, mu,
                                               sigmas=[1.0, 2.0]))
  check_grads(lambda a: f(a, 0.4), (xs,), order=1,
                            modes=("rev",))
  mus = jnp.linspace(0, 1, 3)
  np.testing.assert_allclose(jax.vmap(lambda m: f(xs, m))(mus),
                             [f(xs, m) for m in mus], rtol=1e-12)


def test_mu_from_a_distances():
  assert float(losses.mu_from_a_distances(0.0, jnp.zeros(3))) == 0.5
  np.testing.assert_allclose(
      losses.mu_from_a_distances(1.0, jnp.array([0.5, 1.5, 9.0]),
                                 jnp.array([True, True, False])),
      1.0 / 2.0)
  np.testing.assert_allclose(
      losses.mu_from_a_distances(1.0, jnp.array([0.5, 1.5]),
                                 class_reduction="sum"), 2.0 / 3.0)
  assert float(losses.a_distance_from_error(0.5)) == 0.0
  assert float(losses.a_distance_from_error(0.0)) == 2.0


def test_mu_snap_is_medas_rounding():
  mu = lambda g, c: float(losses.mu_from_a_distances(g, jnp.asarray(c),
                                                     snap=1e-3))
  assert mu(1.0, [0.5, 1.5]) == 0.5            # inside (1e-3, 1]: unchanged
  assert mu(0.0, [0.0005, 0.0]) == 1.0         # all of it conditional
  assert mu(2.0, [0.001, 0.001]) == 0.0        # at or below 1e-3 -> 0
  assert mu(-1.0, [2.0]) == 1.0                # 2 / 1 = 2 -> clipped to 1
  assert mu(1.0, [-0.5]) == 0.0                # negative -> 0
  assert mu(-1.0, [0.5]) == 0.5                # denominator <= 0 -> 0.5
  # No snap: the same values pass through unrounded.
  assert float(losses.mu_from_a_distances(-1.0, jnp.asarray([2.0]))) == 2.0


# ---------------------------------------------------------------------------
# Learned mu on synthetic shifts with a known answer.
# ---------------------------------------------------------------------------

STEPS, BATCH, DIM = 150, 64, 8


def _domain(rng, n, p_class0, centers):
  """Two classes on axis 0 at ``centers``; class 0 with prob p_class0."""
  y = (rng.random(n) >= p_class0).astype(np.int32)
  x = rng.normal(size=(n, DIM))
  x[:, 0] += np.where(y == 0, centers[0], centers[1])
  return x.astype(np.float32), y


def _stream(scenario, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(STEPS):
    if scenario == "conditional":  # class conditionals swapped, same marginal
      xs, ys = _domain(rng, BATCH, 0.5, (-2, 2))
      xt, yt = _domain(rng, BATCH, 0.5, (2, -2))
    elif scenario == "label":  # label proportions shift, same conditionals
      xs, ys = _domain(rng, BATCH, 0.9, (-2, 2))
      xt, yt = _domain(rng, BATCH, 0.1, (-2, 2))
    else:  # "covariate": every class moves along axis 1
      xs, ys = _domain(rng, BATCH, 0.5, (-2, 2))
      xt, yt = _domain(rng, BATCH, 0.5, (-2, 2))
      xt[:, 1] += 3.0
    out.append((xs, ys, xt, np.eye(2, dtype=np.float32)[yt]))
  return [np.stack(a) for a in zip(*out)]


EST = losses.dynamic_mu_estimator(num_classes=2)


@jax.jit
def _run(xs, ys, xt, pt):
  def body(state, batch):
    state, mu = EST.update(state, *batch)
    return state, mu
  return jax.lax.scan(body, EST.init(DIM), (xs, ys, xt, pt))


@pytest.mark.parametrize("scenario,lo,hi", [
    ("conditional", 0.85, 1.0),   # marginal shift 0, conditional large
    ("label", 0.0, 0.15),         # marginal shift large, conditional 0
    ("covariate", 0.35, 0.65),    # both shifted alike
])
def test_learned_mu_tracks_the_shift(scenario, lo, hi):
  state, mus = _run(*_stream(scenario))
  mu = float(mus[-1])
  assert lo <= mu <= hi, (scenario, mu, state.a_distance_global,
                          state.a_distance_class)
  # smoothed over steps: the last 20 values agree closely
  assert float(jnp.std(mus[-20:])) < 0.05
  if scenario == "conditional":
    assert float(state.a_distance_global) < 0.3
    assert float(state.a_distance_class.min()) > 1.5


def test_estimator_state_is_a_pytree_and_no_feature_gradient():
  est = losses.dynamic_mu_estimator(3, learning_rate=0.1, ema_decay=0.5)
  state = est.init(4)
  leaves = jax.tree_util.tree_leaves(state)
  assert len(leaves) == 11 and state.mu == 0.5
  rng = np.random.default_rng(0)
  fs = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  ft = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
  ys = jnp.array([0, 1, 2, 0, 1, 2])
  pt = jax.nn.softmax(jnp.asarray(rng.normal(size=(5, 3)), jnp.float32))

  def mu_of(fs, ft):
    return est.update(state, fs, ys, ft, pt)[1]

  g = jax.grad(mu_of, argnums=(0, 1))(fs, ft)
  assert float(jnp.abs(g[0]).max()) == 0 and float(jnp.abs(g[1]).max()) == 0
  # integer pseudo-labels and bf16 features work; no retrace for new values
  traces = []

  @jax.jit
  def step(state, fs, ft, yt):
    traces.append(1)
    return est.update(state, fs, ys, ft, yt)

  for i in range(3):
    state, mu = step(state, fs.astype(jnp.bfloat16) + i, ft, ys[:5])
  assert len(traces) == 1 and 0.0 <= float(mu) <= 1.0
  assert state.w_global.dtype == jnp.float32
  # vmap over a batch of states (e.g. runs of a sweep)
  states = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), est.init(4))
  _, mus = jax.vmap(lambda s: est.update(s, fs, ys, ft, pt))(states)
  assert mus.shape == (2,)


def test_dynamic_errors():
  x = np.ones((4, 3), np.float32)
  y = np.zeros(4, np.int32)
  with pytest.raises(ValueError, match="mu must be a scalar"):
    losses.dynamic_mmd(x, x, y, y, jnp.ones(2), 2)
  with pytest.raises(ValueError, match="mu must be finite"):
    losses.dynamic_mmd(x, x, y, y, float("nan"), 2)
  with pytest.raises(ValueError, match="num_classes"):
    losses.dynamic_mu_estimator(0)
  est = losses.dynamic_mu_estimator(2)
  with pytest.raises(ValueError, match="initialised for 5"):
    est.update(est.init(5), x, y, x, y)
  with pytest.raises(ValueError, match="4 entries for 3"):
    est.update(est.init(3), x[:3], y, x, y)
