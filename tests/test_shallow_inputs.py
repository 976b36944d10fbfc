"""Closed-form methods refuse bad hyper-parameters and labels by name."""

import numpy as np
import pytest

from tlax.shallow import base
from tlax.shallow import feature
from tlax.shallow import gfk
from tlax.shallow import meda
from tlax.shallow import weighting

NAN, INF = float("nan"), float("inf")


def _problem():
  rs = np.random.RandomState(0)
  return rs.randn(30, 5), np.arange(30) % 3, rs.randn(20, 5) + 0.2


@pytest.mark.parametrize("make,match", [
    (lambda: feature.JDA(k=2.5), "k must be an integer"),
    (lambda: feature.JDA(k=3, lam=NAN), "lam must be a finite number > 0"),
    (lambda: feature.JDA(k=3, T=1.5), "T must be an integer"),
    (lambda: feature.JDA(k=3, kernel="rbf", gamma=NAN),
     "gamma must be a finite number > 0"),
    (lambda: feature.TCA(k=3, lam=INF), "lam must be a finite number"),
    (lambda: feature.BDA(k=3, mu=NAN), "mu must be a finite number"),
    (lambda: feature.CORAL(eps=NAN), "eps must be a finite number"),
])
def test_feature_methods_refuse_bad_hyper_parameters(make, match):
  xs, ys, xt = _problem()
  with pytest.raises(base.ShallowInputError, match=match):
    make().fit(xs, ys, xt)


@pytest.mark.parametrize("kwargs,match", [
    ({"lam": NAN}, "lam must be"), ({"eta": NAN}, "eta must be"),
    ({"rho": INF}, "rho must be"), ({"p": 2.5}, "p must be an integer"),
    ({"dim": 2.5}, "dim must be an integer"), ({"mu": NAN}, "mu must be"),
    ({"T": 0}, "T must be an integer >= 1")])
def test_meda_refuses_bad_hyper_parameters(kwargs, match):
  with pytest.raises(base.ShallowInputError, match=match):
    meda.MEDA(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"gamma": NAN}, "gamma must be"), ({"B": NAN}, "B must be"),
    ({"eps": -1.0}, "eps must be")])
def test_kmm_refuses_bad_hyper_parameters(kwargs, match):
  xs, _, xt = _problem()
  with pytest.raises(base.ShallowInputError, match=match):
    weighting.KMM(**kwargs).fit(xs, xt)


def test_whole_floats_are_integers_fractional_ones_are_not():
  assert gfk.GFK(dim=3.0).dim == 3
  with pytest.raises(base.ShallowInputError, match="dim must be an integer"):
    gfk.GFK(dim=3.5)


def test_continuous_and_nan_labels_are_refused():
  xs, ys, xt = _problem()
  with pytest.raises(base.ShallowInputError, match="non-integer values"):
    base.check_inputs(xs, np.linspace(0, 1, 30), xt)
  with pytest.raises(base.ShallowInputError, match="NaN or inf"):
    base.check_inputs(xs, np.where(ys == 1, np.nan, ys), xt)
  _, idx, _, classes = base.check_inputs(xs, ys.astype(float), xt)
  assert classes.tolist() == [0.0, 1.0, 2.0] and idx.max() == 2


def test_domain_classifier_weights_refuse_a_reversed_clip():
  xs, _, xt = _problem()
  with pytest.raises(base.ShallowInputError, match=r"clip must be \(low, "
                     r"high\) with 0 <= low < high.*\(20.0, 0.0\)"):
    weighting.domain_classifier_weights(xs, xt, clip=(20.0, 0.0))
