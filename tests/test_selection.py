"""Label-free model selection: the DEV importance-weighted risk."""

import numpy as np
import pytest

from tlax.train import selection


def test_dev_risk_constant_weights_is_the_mean():
  losses = np.array([0.5, 1.0, 2.0, 0.1])
  risk, eta = selection.dev_risk(losses, np.ones(4))
  assert eta == 0.0
  assert risk == pytest.approx(losses.mean())


def test_dev_risk_formula():
  rng = np.random.default_rng(0)
  l, w = rng.random(50), rng.random(50) * 3
  wl = w * l
  eta = -np.cov(wl, w)[0, 1] / np.var(w, ddof=1)
  risk, got_eta = selection.dev_risk(l, w)
  assert got_eta == pytest.approx(eta)
  assert risk == pytest.approx(wl.mean() + eta * w.mean() - eta)


def test_dev_risk_estimates_the_target_risk_under_covariate_shift():
  """Source x ~ N(0, 1), target x ~ N(1, 1), loss l(x) = x^2: the target
  risk is E_t[x^2] = 2; the true density ratio exp(x - 1/2) reweights the
  source losses. The plain source mean (about 1) is far off; the DEV
  estimate is close, and its spread over repetitions is below the plain
  importance-weighted mean's."""
  rng = np.random.default_rng(1)
  dev, iw = [], []
  for _ in range(200):
    x = rng.normal(size=2000)
    w = np.exp(x - 0.5)
    dev.append(selection.dev_risk(x**2, w)[0])
    iw.append(np.mean(w * x**2))
  assert np.mean(dev) == pytest.approx(2.0, abs=0.1)
  assert np.std(dev) < np.std(iw)


def test_dev_risk_errors():
  with pytest.raises(ValueError, match="equal-length"):
    selection.dev_risk(np.ones(3), np.ones(4))
  with pytest.raises(ValueError, match="finite"):
    selection.dev_risk(np.array([1.0, np.nan]), np.ones(2))
