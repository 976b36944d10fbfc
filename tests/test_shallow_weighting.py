"""Instance weights (KMM, domain-classifier ratios, TrAdaBoost) vs references."""

import jax
import numpy as np
import pytest
import scipy.optimize
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from tlax.shallow import base
from tlax.shallow import weighting


def _shifted_gaussians(seed, ns=40, nt=30, dim=2):
  rng = np.random.default_rng(seed)
  xs = rng.normal(size=(ns, dim))
  xt = rng.normal(size=(nt, dim)) * 0.7 + 0.8
  return xs, xt


def test_projection_onto_box_and_slab_is_the_qp_solution():
  rng = np.random.default_rng(0)
  for lo, hi in ((2.0, 3.0), (9.0, 12.0), (0.0, 100.0)):
    v = rng.normal(size=12)
    with jax.enable_x64(True):
      p = np.asarray(weighting.project_box_slab(v, 1.5, lo, hi))
    cons = [{"type": "ineq", "fun": lambda b: b.sum() - lo},
            {"type": "ineq", "fun": lambda b: hi - b.sum()}]
    ref = scipy.optimize.minimize(
        lambda b: 0.5 * ((b - v) ** 2).sum(), np.clip(v, 0, 1.5),
        jac=lambda b: b - v, bounds=[(0, 1.5)] * 12, constraints=cons,
        method="SLSQP", options={"ftol": 1e-14, "maxiter": 500}).x
    np.testing.assert_allclose(p, ref, atol=1e-6)
    assert lo - 1e-9 <= p.sum() <= hi + 1e-9


def test_kmm_matches_slsqp():
  xs, xt = _shifted_gaussians(1)
  b_upper, eps = 5.0, 0.2
  with jax.enable_x64(True):
    ns, nt = len(xs), len(xt)
    gamma = 0.5
    kss = np.exp(-gamma * ((xs[:, None] - xs[None]) ** 2).sum(-1))
    kst = np.exp(-gamma * ((xs[:, None] - xt[None]) ** 2).sum(-1))
  kappa = ns / nt * kst.sum(1)
  w = weighting.kmm_weights(xs, xt, gamma=gamma, B=b_upper, eps=eps)
  lo, hi = ns * (1 - eps), ns * (1 + eps)
  cons = [{"type": "ineq", "fun": lambda b: b.sum() - lo,
           "jac": lambda b: np.ones_like(b)},
          {"type": "ineq", "fun": lambda b: hi - b.sum(),
           "jac": lambda b: -np.ones_like(b)}]
  ref = scipy.optimize.minimize(
      lambda b: 0.5 * b @ kss @ b - kappa @ b, np.ones(ns),
      jac=lambda b: kss @ b - kappa, bounds=[(0, b_upper)] * ns,
      constraints=cons, method="SLSQP",
      options={"ftol": 1e-15, "maxiter": 2000}).x
  obj = lambda b: 0.5 * b @ kss @ b - kappa @ b
  assert obj(w) <= obj(ref) + 1e-6 * abs(obj(ref))
  np.testing.assert_allclose(w, ref, atol=2e-3 * b_upper)
  assert np.all(w >= -1e-12) and np.all(w <= b_upper + 1e-12)
  assert lo - 1e-6 <= w.sum() <= hi + 1e-6


def test_kmm_weights_reduce_mmd_and_favour_target_region():
  xs, xt = _shifted_gaussians(2, ns=80, nt=60)
  est = weighting.KMM().fit(xs, xt)
  w = est.weights_
  assert w.shape == (80,) and isinstance(w, np.ndarray)

  def mmd2(weights):
    g = 0.5
    k = lambda a, b: np.exp(-g * ((a[:, None] - b[None]) ** 2).sum(-1))
    ws = weights / weights.sum()
    return (ws @ k(xs, xs) @ ws - 2 * ws @ k(xs, xt).mean(1)
            + k(xt, xt).mean())

  assert mmd2(w) < 0.5 * mmd2(np.ones(80))
  # Sources near the target mean get more weight than far ones.
  d = np.linalg.norm(xs - 0.8, axis=1)
  assert w[d < np.median(d)].mean() > 2 * w[d >= np.median(d)].mean()


def test_logistic_regression_matches_sklearn():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(120, 4))
  y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 + rng.normal(size=120)
       > 0).astype(float)
  with jax.enable_x64(True):
    w, b = weighting.logistic_regression_fit(x, y, 0.5)
  ref = LogisticRegression(C=0.5, tol=1e-12, max_iter=10000).fit(x, y)
  np.testing.assert_allclose(np.asarray(w), ref.coef_[0], atol=1e-6)
  assert float(b) == pytest.approx(ref.intercept_[0], abs=1e-6)


def test_logistic_regression_stops_at_the_optimum_of_a_harder_problem():
  # Many features, nearly separable classes: Newton needs several damped
  # steps; stopping on the Newton decrement must still reach the optimum.
  rng = np.random.default_rng(5)
  x = rng.normal(size=(400, 60))
  y = (x[:, :3].sum(1) + 0.3 * rng.normal(size=400) > 0).astype(float)
  with jax.enable_x64(True):
    w, b = weighting.logistic_regression_fit(x, y, 10.0)
    w3, _ = weighting.logistic_regression_fit(x, y, 10.0, n_iter=3)
  ref = LogisticRegression(C=10.0, tol=1e-12, max_iter=10000).fit(x, y)
  np.testing.assert_allclose(np.asarray(w), ref.coef_[0], atol=1e-6)
  assert float(b) == pytest.approx(ref.intercept_[0], abs=1e-6)
  # Three steps are not enough here: the loop really iterates further.
  assert np.max(np.abs(np.asarray(w3) - ref.coef_[0])) > 1e-3


def test_domain_classifier_weights_estimate_the_density_ratio():
  rng = np.random.default_rng(4)
  xs = rng.normal(size=(2000, 1))
  xt = rng.normal(size=(1000, 1)) + 0.5
  w = weighting.DomainClassifierWeights(C=10.0, clip=(0, 1e3)).fit(
      xs, xt).weights_
  true = np.exp(0.5 * xs[:, 0] - 0.125)   # N(0.5, 1) / N(0, 1)
  assert w.mean() == pytest.approx(1.0)
  assert np.corrcoef(w, true)[0, 1] > 0.98
  np.testing.assert_allclose(w, true / true.mean(), rtol=0.25)
  clipped = weighting.domain_classifier_weights(xs, xt, clip=(0.0, 1.5))
  assert clipped.mean() == pytest.approx(1.0)
  # Many ratios sit at the cap (they share the largest value).
  assert np.sum(np.isclose(clipped, clipped.max())) > 100


def _label(x, angle, offset):
  return (x @ np.array([np.cos(angle), np.sin(angle)]) > offset).astype(int)


def _transfer_problem(seed, n_src=400, n_tgt_lab=10, n_test=1000):
  """Two classes in 2-D. The target concept labels 70% of the source; the
  rest follows a conflicting rule. The target inputs are shifted/scaled and
  only ``n_tgt_lab`` of them are labelled."""
  rng = np.random.default_rng(seed)
  xs = rng.normal(size=(n_src, 2))
  ys = _label(xs, 0.35, 0.2)
  bad = rng.random(n_src) < 0.3
  ys[bad] = _label(xs[bad], 1.8, -0.3)
  xt = rng.normal(size=(n_tgt_lab + n_test, 2)) * 1.2 + 0.3
  yt = _label(xt, 0.35, 0.2)
  return xs, ys, xt[:n_tgt_lab], yt[:n_tgt_lab], xt[n_tgt_lab:], yt[n_tgt_lab:]


def test_tradaboost_beats_target_only_and_pooled():
  gains, pooled_gains = [], []
  for seed in range(5):
    xs, ys, xl, yl, xtest, ytest = _transfer_problem(seed)
    tr = weighting.TrAdaBoost(n_estimators=20).fit(xs, ys, xl, yl)
    acc_tr = base.accuracy(ytest, tr.predict(xtest))
    only = LogisticRegression(max_iter=1000).fit(xl, yl)
    pooled = LogisticRegression(max_iter=1000).fit(np.r_[xs, xl],
                                                   np.r_[ys, yl])
    gains.append(acc_tr - base.accuracy(ytest, only.predict(xtest)))
    pooled_gains.append(acc_tr - base.accuracy(ytest, pooled.predict(xtest)))
    assert tr.source_weights_.shape == (len(xs),)
    assert tr.source_weights_.mean() == pytest.approx(1.0)
  assert np.mean(gains) > 3.0 and np.sum(np.asarray(gains) > 0) >= 4
  assert np.mean(pooled_gains) > 3.0


def test_tradaboost_downweights_conflicting_source():
  xs, ys, xl, yl, _, _ = _transfer_problem(0, n_tgt_lab=40)
  tr = weighting.TrAdaBoost(
      n_estimators=20,
      base=DecisionTreeClassifier(max_depth=2, random_state=0)).fit(
          xs, ys, xl, yl)
  agrees = ys == _label(xs, 0.35, 0.2)
  assert tr.source_weights_[agrees].mean() > 2 * tr.source_weights_[
      ~agrees].mean()
  votes = tr.decision_function(xl)
  assert votes.shape == (40, 2)


@pytest.mark.parametrize("make", [
    lambda xs, xt: (xs[:, :1], xt),
    lambda xs, xt: (xs[:0], xt),
    lambda xs, xt: (xs, xt[:0]),
    lambda xs, xt: (np.where(np.eye(*xs.shape) > 0, np.nan, xs), xt),
    lambda xs, xt: (xs, np.where(np.eye(*xt.shape) > 0, -np.inf, xt)),
    lambda xs, xt: (xs[0], xt),
], ids=["dims", "empty_src", "empty_tgt", "nan", "inf", "1d"])
def test_bad_inputs_raise(make):
  xs, xt = _shifted_gaussians(5, ns=10, nt=8)
  args = make(xs, xt)
  with pytest.raises(base.ShallowInputError):
    weighting.kmm_weights(*args)
  with pytest.raises(base.ShallowInputError):
    weighting.DomainClassifierWeights().fit(*args)


def test_tradaboost_bad_inputs():
  xs, ys, xl, yl, _, _ = _transfer_problem(0)
  with pytest.raises(base.ShallowInputError):
    weighting.TrAdaBoost().fit(xs, np.zeros_like(ys), xl, yl)  # one class
  with pytest.raises(base.ShallowInputError):
    weighting.TrAdaBoost().fit(xs, ys, xl, yl[:-1])
  with pytest.raises(base.ShallowInputError):
    weighting.TrAdaBoost().fit(xs, ys, xl, yl + 5)  # unseen target class
  with pytest.raises(base.ShallowInputError):
    weighting.TrAdaBoost().fit(xs, ys, xl[:, :1], yl)
