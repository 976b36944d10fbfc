"""The self-taught protocol and the family runner on tiny embedded data."""

import importlib
import json

import numpy as np
import pytest

from tlax import train
from tlax.selftaught import learners as L
from tlax.selftaught import protocol as P
from tlax.selftaught import run as R

_CLS = "experiments.configs.selftaught.classification"
_CLU = "experiments.configs.selftaught.clustering"


def _config(module, arg):
  return importlib.import_module(module).get_config(arg)


def test_draw_labelled_takes_k_per_class_and_rejects_large_k():
  y = np.repeat(np.arange(3), [4, 5, 6])
  idx = P.draw_labelled(y, 3, np.random.default_rng(0))
  assert np.bincount(y[idx]).tolist() == [3, 3, 3]
  with pytest.raises(P.ProtocolInputError,
                     match="k=4 labels per class.*class 0 has 4.*k <= 3"):
    P.draw_labelled(y, 4, np.random.default_rng(0))
  assert len(P.draw_labelled(y, 4, np.random.default_rng(0),
                             leave_one=False)) == 12
  with pytest.raises(P.ProtocolInputError, match="integer >= 1"):
    P.draw_labelled(y, 0, np.random.default_rng(0))


def test_protocol_on_separable_target_and_its_errors():
  rng = np.random.default_rng(1)
  y = np.repeat(np.arange(2), 20)
  x = rng.normal(size=(40, 3)) + 4 * y[:, None]
  out = P.self_taught_accuracy(L.Raw(), rng.normal(size=(30, 3)), (x, y),
                               (x, y), ks=(1, 5), transductive=True)
  assert out["accuracy"] == {1: 100.0, 5: 100.0}
  with pytest.raises(P.ProtocolInputError, match="k=20 labels per class"):
    P.self_taught_accuracy(L.Raw(), x, (x, y), (x, y), ks=(20,),
                           transductive=True)
  with pytest.raises(P.ProtocolInputError, match="3 features per example and the unlabelled source 4"):
    P.self_taught_accuracy(L.Raw(), np.ones((5, 4)), (x, y), (x, y), ks=(1,))
  with pytest.raises(L.FeatureLearnerInputError, match="all zeros"):
    P.self_taught_accuracy(L.Raw(), np.zeros((5, 3)), (x, y), (x, y), ks=(1,))


def test_domain_specs_and_photo_patches():
  assert R.parse_domain("digits/sklearn[5-9]") == ("digits/sklearn", (5, 9))
  assert R.parse_domain("fonts/letters") == ("fonts/letters", None)
  with pytest.raises(ValueError, match="name\\[lo-hi\\]"):
    R.parse_domain("digits/sklearn[5]")
  p = R.photo_patches(8, 12, seed=0)
  assert p.shape == (12, 64) and 0 <= p.min() and p.max() <= 1 and p.std() > 0


def test_quick_classification_config_runs_and_reuses_its_result(tmp_path):
  config = _config(_CLS, "sparse_coding,quick")
  result = train.run_experiment(config, tmp_path)
  assert set(result) >= {"k1", "k5", "target_accuracy", "config"}
  assert 40.0 <= result["k5"] <= 100.0        # 5 classes: chance is 20%
  with open(tmp_path / "result.json") as f:
    assert json.load(f)["method"] == "sparse_coding"
  assert train.run_experiment(config, tmp_path)["k1"] == result["k1"]
  other = _config(_CLS, "sparse_coding,quick")
  other.C = 10.0
  with pytest.raises(train.ConfigMismatchError, match="C: requested 10.0"):
    train.run_experiment(other, tmp_path)


def test_quick_conv_sparse_coding_config_runs(tmp_path):
  """The convolutional learner gets the task's image shape from the runner
  and its atoms are drawn at the window size."""
  config = _config(_CLS, "conv_sparse_coding,quick")
  config.plots = True
  result = train.run_experiment(config, tmp_path)
  assert 40.0 <= result["k5"] <= 100.0        # 5 classes: chance is 20%
  n_atoms = config.learner.conv_sparse_coding.n_atoms
  assert result["n_features"] == 2 * 2 * 2 * n_atoms
  assert (tmp_path / "atoms.png").exists()


def test_conv_sparse_coding_refuses_a_feature_task():
  config = _config(_CLS, "conv_sparse_coding,quick")
  config.source = "office_caltech10/amazon"
  with pytest.raises(ValueError, match="office_caltech10/amazon -> "
                     "digits/sklearn.*not an image task"):
    R.make_learner(config, 0, image_shape=None)


def test_k_too_large_is_skipped_or_raises(tmp_path):
  config = _config(_CLS, "raw,quick")
  config.ks = (1, 500)
  result = train.run_experiment(config, tmp_path / "skip")
  assert result["skipped_ks"] == [500] and "k1" in result
  config.ks_too_large = "error"
  with pytest.raises(P.ProtocolInputError, match="k=500 labels per class"):
    train.run_experiment(config, tmp_path / "error")


def test_quick_clustering_config_runs(tmp_path):
  result = train.run_experiment(_config(_CLU, "quick"), tmp_path)
  algs = {"stc", "kmeans", "spectral", "kmeans_selftaught",
          "spectral_selftaught", "stc_pixels", "kmeans_words"}
  assert set(result["nmi"]) == algs and set(result["acc"]) == algs
  assert all(0 <= v <= 100 for v in result["nmi"].values())
  assert result["acc"]["kmeans"] > 40.0           # 5 digit classes
  assert np.all(np.diff(result["stc_objectives"]) <= 1e-5)


def test_clustering_visual_words_are_pooled_window_codes_of_the_auxiliary():
  """STC's image input: non-negative pooled window codes of a dictionary
  learned on the auxiliary images; None for pixels or feature data."""
  from tlax.selftaught import run as R  # pylint: disable=g-import-not-at-top
  config = _config(_CLU, "quick")
  xa, _, info = R.load_arrays(config.source, config)
  xt, _, _ = R.load_arrays(config.target, config)
  shape = info["image_shape"]
  words_t, words_a = R.visual_words(config, xt[:20], xa, shape, shape)
  conv = config.learner.conv_sparse_coding
  assert words_t.shape == (20, conv.pool ** 2 * 2 * conv.n_atoms)
  assert words_a.shape[0] == len(xa)
  assert words_t.min() >= 0 and words_a.min() >= 0 and words_t.sum() > 0
  assert R.visual_words(config, xt, xa, None, None) is None
  assert R.visual_words(config, xt, xa, shape, (shape[0] + 1, shape[1])) is None
  config.clustering.image_features = "pixels"
  assert R.visual_words(config, xt, xa, shape, shape) is None
  config.clustering.image_features = "sift"
  with pytest.raises(ValueError, match="image_features='sift'; use "
                     "'visual_words'"):
    R.visual_words(config, xt, xa, shape, shape)
  config.clustering.image_features = "visual_words"
  config.learner.conv_sparse_coding.patch = shape[0] + 1
  with pytest.raises(ValueError, match="larger than the .*"
                     "image_features='pixels'"):
    R.visual_words(config, xt, xa, shape, shape)


def test_clustering_on_pixels_has_no_visual_word_columns(tmp_path):
  config = _config(_CLU, "quick")
  config.clustering.image_features = "pixels"
  result = train.run_experiment(config, tmp_path)
  assert "stc_pixels" not in result["nmi"]
  assert "kmeans_words" not in result["nmi"]


def test_unknown_config_argument():
  with pytest.raises(ValueError, match="a learner \\(raw, pca"):
    _config(_CLS, "ica")


def test_standardiser_does_not_blow_up_features_constant_on_the_source():
  ref = np.array([[0.0, 1.0], [0.0, 3.0], [1e-7, 5.0]])
  scale = P.Standardiser(ref)
  z = scale(np.array([[1.0, 3.0]]))
  # std of column 1 is 1.633; column 0 is floored at 0.1 * mean std.
  np.testing.assert_allclose(scale.std[0], 0.1 * np.mean(ref.std(0)))
  np.testing.assert_allclose(z, [[(1.0 - ref[:, 0].mean()) / scale.std[0], 0.0]],
                             atol=1e-6)
  assert abs(z[0, 0]) < 20


@pytest.mark.slow
def test_runner_cli_with_plots_draws_the_atoms(tmp_path):
  """``python -m experiments.run`` with ``plots = True`` (the default of the
  full config): the family's runner draws its atoms; the trainer's
  embedding plots (which would load the pair as a trainer task) are not
  attempted, and the command exits 0."""
  import os  # pylint: disable=g-import-not-at-top
  import pathlib  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = pathlib.Path(__file__).resolve().parents[1]
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.run",
       "--config=experiments/configs/selftaught/classification.py:"
       "sparse_coding,quick", "--config.plots=True",
       f"--workdir={tmp_path}"],
      cwd=repo, env={**os.environ, "JAX_PLATFORMS": "cpu"},
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (tmp_path / "atoms.png").exists()
  assert json.loads(proc.stdout.strip().splitlines()[-1])["k1"] >= 0


def test_protocol_scales_by_the_labelled_examples():
  """Features that are constant on the unlabelled source but vary on the
  target do not change the result: scaling uses the labelled examples."""
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(3), 30)
  x = rng.normal(size=(90, 4)) + 3 * np.eye(3, 4)[y]
  source = rng.normal(size=(50, 4))
  flat = source.copy()
  flat[:, 3] = 0.0  # constant on the source, varies on the target
  a = P.self_taught_accuracy(L.Raw(), source, (x, y), (x, y), ks=(2, 5),
                             transductive=True, seed=1)
  b = P.self_taught_accuracy(L.Raw(), flat, (x, y), (x, y), ks=(2, 5),
                             transductive=True, seed=1)
  assert a["accuracy"] == b["accuracy"]
  assert a["accuracy"][5] > 80.0
