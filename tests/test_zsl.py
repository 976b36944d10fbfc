"""Zero-shot learning: semantic spaces, methods, protocols, GBU reader, runner."""

import dataclasses
import importlib
import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
import scipy.linalg

from tlax import models
from tlax.zsl import data as zsl_data
from tlax.zsl import features
from tlax.zsl import gbu
from tlax.zsl import methods
from tlax.zsl import protocols
from tlax.zsl import run as zsl_run
from tlax.zsl import semantic

METHODS = sorted(methods.METHODS)
_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "experiments" / (
    "configs/zsl")
CONFIGS = sorted(p.stem for p in _CONFIGS.glob("*.py")
                 if p.stem not in ("__init__", "common"))


# ---------------------------------------------------------------------------
# Semantic spaces.
# ---------------------------------------------------------------------------
def test_seven_segment_codes_are_unique_and_hand_checked():
  t = semantic.seven_segment_table()
  assert t.shape == (10, 7)
  assert len({tuple(r) for r in t}) == 10
  np.testing.assert_array_equal(t[1], [0, 1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(t[8], np.ones(7))
  assert t[7].sum() == 3 and t[4].sum() == 4


def test_identical_attribute_rows_name_both_classes():
  t = semantic.SEVEN_SEGMENT.copy()
  t[7] = t[1]
  with pytest.raises(semantic.SemanticSpaceError,
                     match="'one' and 'seven' have identical rows"):
    semantic.check_class_embeddings(t, semantic.DIGIT_NAMES,
                                    source="my_table.csv")
  with pytest.raises(semantic.SemanticSpaceError, match="all zeros"):
    semantic.check_class_embeddings(np.eye(3)[[0, 1]] * 0 + [[1, 0, 0],
                                                            [0, 0, 0]])
  with pytest.raises(semantic.SemanticSpaceError, match="3 rows but 2"):
    semantic.check_class_embeddings(np.eye(3), ["a", "b"])


def test_binarise_keeps_binary_tables_and_thresholds_continuous_ones():
  b, th = semantic.binarise(semantic.SEVEN_SEGMENT)
  np.testing.assert_array_equal(b, semantic.SEVEN_SEGMENT)
  s = np.array([[0.1, 2.0], [0.3, 0.0], [0.8, 1.0]])
  b, th = semantic.binarise(s)
  np.testing.assert_allclose(th, [0.4, 1.0])
  np.testing.assert_array_equal(b, [[0, 1], [0, 0], [1, 0]])


def test_user_word_vectors_and_unknown_names():
  vecs = {"cat": [1.0, 0.0], "dog": [0.0, 2.0], "car": [1.0, 1.0]}
  s = semantic.word_vectors(["dog", "cat"], vectors=vecs)
  np.testing.assert_allclose(s, [[0, 1], [1, 0]])
  with pytest.raises(KeyError, match=r"\['zebra', 'yak'\]"):
    semantic.word_vectors(["cat", "zebra", "yak"], vectors=vecs)
  with pytest.raises(semantic.SemanticSpaceError, match="identical"):
    semantic.word_vectors(["cat", "kitty"],
                          vectors={"cat": [1, 0], "kitty": [2, 0]})


def test_wordllama_vectors_offline():
  pytest.importorskip("wordllama")
  names = semantic.CLASS_NAMES["pacs"]
  s = semantic.word_vectors(names)
  assert s.shape == (7, 256)
  np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, rtol=1e-5)
  sim = s @ s.T
  # Animals are closer to each other than to a guitar.
  assert sim[names.index("horse"), names.index("elephant")] > sim[
      names.index("horse"), names.index("guitar")]
  with pytest.raises(KeyError, match="no known word token"):
    semantic.word_vectors(["dog", "   "])


# ---------------------------------------------------------------------------
# Methods on synthetic data where features are a linear image of attributes.
# ---------------------------------------------------------------------------
def synthetic_split(num_classes=20, dim=24, attrs=8, per_class=30, seed=0,
                    noise=0.3, num_unseen=5):
  rng = np.random.default_rng(seed)
  s = (rng.random((num_classes, attrs)) < 0.5).astype(np.float32)
  s[:, 0] = 1.0  # no empty rows
  while len({tuple(r) for r in s}) < num_classes:
    s = (rng.random((num_classes, attrs)) < 0.5).astype(np.float32)
    s[:, 0] = 1.0
  proj = rng.normal(size=(attrs, dim))
  seen, unseen = protocols.class_split(num_classes, num_unseen, seed)

  def images(classes, n):
    y = np.repeat(classes, n)
    x = s[y] @ proj + noise * rng.normal(size=(len(y), dim))
    return x.astype(np.float32), y
  xtr, ytr = images(seen, per_class)
  xts, yts = images(seen, per_class // 3)
  xtu, ytu = images(unseen, per_class // 3)
  names = tuple(f"c{i}" for i in range(num_classes))
  return protocols.ZSLSplit(xtr, ytr, xts, yts, xtu, ytu,
                            semantic.l2_normalise(s), seen, unseen, names,
                            "synthetic").check()


FAST = {"steps": 150}


def _method(name):
  opts = FAST if name in ("dap", "sje", "ale", "devise", "conse") else {}
  return methods.get_method(name, **opts)


@pytest.mark.parametrize("name", METHODS)
def test_method_learns_unseen_classes(name):
  split = synthetic_split()
  split = zsl_run.extract_features(split, "raw", "center_l2")
  m, params, scores = protocols.fit_and_evaluate(
      _method(name), split, jax.random.PRNGKey(0))
  assert scores["unseen"].shape == (len(split.y_test_unseen), 20)
  # Chance is 20%: every method must do much better on this easy problem,
  # ConSE less so (it can only mix the seen classes' embeddings).
  assert m["zsl_accuracy"] >= (50.0 if name == "conse" else 90.0), m
  assert 0.0 <= m["gzsl_h"] <= 100.0
  assert method_embed_shape(name, params, split) == (4, 8)


def method_embed_shape(name, params, split):
  return tuple(np.shape(_method(name).embed(params, split.x_test_seen[:4])))


def test_eszsl_matches_closed_form_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 6))
  y = rng.integers(0, 4, 40)
  s = rng.normal(size=(4, 3))
  gamma, lam = 0.5, 2.0
  params = methods.eszsl(gamma=gamma, lambda_=lam).fit(None, x, y, s)
  yy = -np.ones((40, 4))
  yy[np.arange(40), y] = 1
  v = (np.linalg.inv(x.T @ x + gamma * np.eye(6)) @ x.T @ yy @ s
       @ np.linalg.inv(s.T @ s + lam * np.eye(3)))
  np.testing.assert_allclose(params["w"], v, rtol=1e-4, atol=1e-5)
  # The n < d branch (push-through identity) gives the same map.
  xw = rng.normal(size=(5, 9))
  p1 = methods.eszsl(gamma=gamma).fit(None, xw, y[:5], s)
  v1 = (np.linalg.inv(xw.T @ xw + gamma * np.eye(9)) @ xw.T
        @ np.where(np.eye(4)[y[:5]] > 0, 1.0, -1.0) @ s
        @ np.linalg.inv(s.T @ s + np.eye(3)))
  np.testing.assert_allclose(p1["w"], v1, rtol=1e-4, atol=1e-5)


def test_sae_solves_its_sylvester_equation():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(30, 7))
  y = rng.integers(0, 4, 30)
  s = rng.normal(size=(4, 3))
  lam = 0.3
  w = np.asarray(methods.sae(lambda_=lam).fit(None, x, y, s)["w"], np.float64)
  st, xt = s[y].T, x.T
  lhs = st @ st.T @ w + lam * w @ xt @ xt.T
  np.testing.assert_allclose(lhs, (1 + lam) * st @ xt.T, rtol=1e-3, atol=1e-3)


def test_dap_scores_match_numpy():
  params = {"w": jnp.array([[1.0, -1.0], [0.5, 0.0]]),
            "b": jnp.array([0.0, 0.2]), "threshold": jnp.array([0.5, 0.5]),
            "prior": jnp.array([0.5, 0.25])}
  x = np.array([[1.0, 2.0], [-1.0, 0.0]], np.float32)
  sig = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
  got = methods.dap().scores(params, x, sig)
  p = 1 / (1 + np.exp(-(x @ np.asarray(params["w"]) + [0.0, 0.2])))
  prior = np.array([0.5, 0.25])
  want = np.array([[np.sum(np.log(np.where(z, pi, 1 - pi))
                           - np.log(np.where(z, pr, 1 - pr)))
                    for z in sig] for pi in p for pr in [prior]])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_conse_embedding_by_hand():
  probs = jnp.array([[0.6, 0.3, 0.1]])
  seen = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  np.testing.assert_allclose(methods.conse_embedding(probs, seen, 1), [[1, 0]])
  np.testing.assert_allclose(methods.conse_embedding(probs, seen, 2),
                             [[2 / 3, 1 / 3]], rtol=1e-6)
  np.testing.assert_allclose(methods.conse_embedding(probs, seen, 10),
                             [[0.7, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("make,match", [
    (lambda: methods.eszsl(gamma=float("nan")),
     "eszsl: gamma must be a finite number > 0, got nan"),
    (lambda: methods.eszsl(lambda_=0.0), "eszsl: lambda must be"),
    (lambda: methods.sae(lambda_=-1.0), "sae: lambda must be"),
])
def test_closed_form_hyper_parameters_are_refused(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_dimension_mismatches_are_named():
  split = synthetic_split()
  m = methods.get_method("eszsl")
  params = m.fit(None, split.x_train, np.searchsorted(split.seen,
                                                      split.y_train),
                 split.class_embeddings[split.seen])
  with pytest.raises(ValueError, match="fitted on 24-d features"):
    m.scores(params, split.x_test_unseen[:, :10], split.class_embeddings)
  with pytest.raises(ValueError, match="fitted on 8-d class embeddings"):
    m.scores(params, split.x_test_unseen, split.class_embeddings[:, :5])
  bad = dataclasses.replace(split, x_test_unseen=split.x_test_unseen[:, :5])
  with pytest.raises(protocols.ZSLDataError, match="5-d but training"):
    bad.check()
  with pytest.raises(ValueError, match="labels must index the 15 rows"):
    m.fit(None, split.x_train, split.y_train,
          split.class_embeddings[split.seen])
  with pytest.raises(KeyError, match="Unknown zero-shot method 'lda'"):
    methods.get_method("lda")


def test_unseen_class_without_test_images_is_named():
  split = synthetic_split()
  u = split.unseen[0]
  keep = split.y_test_unseen != u
  bad = dataclasses.replace(split, x_test_unseen=split.x_test_unseen[keep],
                            y_test_unseen=split.y_test_unseen[keep])
  with pytest.raises(protocols.ZSLDataError,
                     match=rf"unseen class\(es\) \['c{u}'\] have no unseen "
                           "test images"):
    bad.check()


def test_deep_compatibility_method_trains_and_scores_unseen():
  model = models.get_model("mlp", 4, hidden=(16,))
  s_all = semantic.SEVEN_SEGMENT
  seen = np.array([0, 1, 2, 3])
  m = methods.compatibility_method(model, 4, total_steps=10,
                                   class_embeddings=s_all[seen], loss="ale")
  rng = np.random.default_rng(0)
  batch = {"xs": rng.normal(size=(8, 5)).astype(np.float32),
           "ys": np.array([0, 1, 2, 3] * 2), "ws": np.ones(8, np.float32)}
  params, state = m.init(jax.random.PRNGKey(0), batch)
  (value, (metrics, _)), grads = jax.value_and_grad(m.loss, has_aux=True)(
      params, state, batch, jax.random.PRNGKey(1), 0, {"margin": 1.0})
  assert np.isfinite(value) and value > 0 and "source_acc" in metrics
  assert float(jnp.abs(grads["compat"]).sum()) > 0
  assert m.predict(params, state, batch["xs"]).shape == (8, 4)
  z = m.features(params, state, batch["xs"])["semantic"]
  assert (z @ s_all.T).shape == (8, 10)
  with pytest.raises(ValueError, match=r"expected \(4, dims\)"):
    methods.compatibility_method(model, 4, total_steps=1,
                                 class_embeddings=s_all)


# ---------------------------------------------------------------------------
# Protocols.
# ---------------------------------------------------------------------------
def test_per_class_accuracy_and_harmonic_mean():
  pred = np.array([0, 0, 1, 1, 1, 2])
  lab = np.array([0, 1, 1, 1, 1, 2])
  # class 0: 1/1, class 1: 3/4, class 2: 1/1 -> mean 11/12.
  assert protocols.per_class_accuracy(pred, lab) == pytest.approx(
      100 * 11 / 12)
  assert protocols.harmonic_mean(60.0, 30.0) == pytest.approx(40.0)
  assert protocols.harmonic_mean(0.0, 0.0) == 0.0
  with pytest.raises(protocols.ZSLDataError, match="class 5 has no test"):
    protocols.per_class_accuracy(pred, lab, [0, 5])


def test_zsl_accuracy_searches_unseen_classes_only():
  scores = np.array([[9.0, 1.0, 2.0], [9.0, 1.0, 3.0]])
  assert protocols.zsl_accuracy(scores, np.array([2, 1]), [1, 2]) == 50.0


def test_calibration_chosen_on_seen_classes_raises_h():
  # Seen class 0 dominates every score by 1; unseen classes 1, 2.
  rng = np.random.default_rng(0)
  y_s = np.zeros(20, int)
  y_u = rng.integers(1, 3, 40)
  def scores(y):
    s = rng.normal(scale=0.1, size=(len(y), 3))
    s[np.arange(len(y)), y] += 1.0
    s[:, 0] += 1.5
    return s
  ss, su = scores(y_s), scores(y_u)
  raw = protocols.gzsl_accuracies(ss, y_s, su, y_u, [0], [1, 2], 3, 0.0)
  gamma, h = protocols.choose_gamma([(ss, y_s, su, y_u, [0], [1, 2], 3)])
  cal = protocols.gzsl_accuracies(ss, y_s, su, y_u, [0], [1, 2], 3, gamma)
  assert raw["gzsl_unseen"] < 10 and cal["gzsl_h"] > 80 > raw["gzsl_h"]
  assert h == pytest.approx(cal["gzsl_h"])


def test_validation_split_uses_seen_classes_only():
  split = synthetic_split()
  val = protocols.validation_split(split, num_val_classes=2, seed=3)
  assert set(val.unseen) < set(split.seen) and len(val.unseen) == 2
  assert set(val.seen) | set(val.unseen) == set(split.seen)
  for y in (val.y_train, val.y_test_seen, val.y_test_unseen):
    assert not set(y.tolist()) & set(split.unseen.tolist())
  val.check()


# ---------------------------------------------------------------------------
# Features and benchmark splits.
# ---------------------------------------------------------------------------
def test_hog_of_a_vertical_edge():
  img = np.zeros((1, 8, 8), np.float32)
  img[:, :, 4:] = 1.0
  h = features.hog(img, cells=2, orientations=4, block_norm=False)
  h = h.reshape(2, 2, 4)
  # Horizontal gradients only (angle 0): all votes in bin 0, in the cells
  # that hold columns 3 and 4 (the right-hand column of cells holds 4).
  assert h[..., 1:].sum() == 0
  np.testing.assert_allclose(h[:, 0, 0], [4.0, 4.0])
  np.testing.assert_allclose(h[:, 1, 0], [4.0, 4.0])


def test_digit_split_cross_domain(data_dir):
  split = zsl_data.make_split("mnist_usps/mnist", "mnist_usps/usps", seed=1,
                              data_dir=data_dir)
  assert len(split.unseen) == 3 and len(split.seen) == 7
  assert split.x_train.shape[1:] == (16, 16)
  assert set(np.unique(split.y_train)) == set(split.seen)
  assert len(split.y_test_seen) + len(split.y_test_unseen) == 1800
  same = zsl_data.make_split("mnist_usps/mnist", "mnist_usps/mnist", seed=1,
                             data_dir=data_dir)
  assert len(same.y_train) + len(same.y_test_seen) + len(
      same.y_test_unseen) == 2000
  fixed = zsl_data.make_split("mnist_usps/mnist", "mnist_usps/usps", seed=0,
                              unseen=["two", "seven"], data_dir=data_dir)
  assert list(fixed.unseen) == [2, 7]
  with pytest.raises(KeyError, match="Unseen class 'ten'"):
    zsl_data.make_split("mnist_usps/mnist", "mnist_usps/usps", seed=0,
                        unseen=["ten"], data_dir=data_dir)


# ---------------------------------------------------------------------------
# GBU reader on a synthetic res101.mat of the release's layout.
# ---------------------------------------------------------------------------
GBU_SET = "APY"


@pytest.fixture
def gbu_dir(tmp_path, data_dir):
  real = pathlib.Path(data_dir) / "zsl_xlsa17" / f"{GBU_SET}_att_splits.mat"
  if not real.is_file():
    pytest.skip(f"{real} not found")
  folder = tmp_path / "data" / "zsl_xlsa17"
  folder.mkdir(parents=True)
  gbu.write_synthetic_att_splits(real, folder / f"{GBU_SET}_att_splits.mat",
                                 images_per_class=6)
  gbu.write_synthetic_res101(real, folder / f"{GBU_SET}_res101.mat",
                             images_per_class=6, dim=2048)
  return tmp_path / "data"


def test_gbu_reader_on_synthetic_res101(gbu_dir):
  att, res = gbu.find_files(GBU_SET, gbu_dir)
  mat = scipy.io.loadmat(res)
  assert mat["features"].shape == (2048, 32 * 6)
  assert mat["labels"].shape == (192, 1) and mat["labels"].min() == 1
  split = gbu.load_gbu(att, res, name="APY")
  assert split.class_embeddings.shape == (32, 64)
  assert split.class_names[:2] == ("aeroplane", "bicycle")
  assert len(split.unseen) == 6 and len(split.seen) == 26
  assert split.x_train.shape == (26 * 4, 2048)
  np.testing.assert_allclose(np.linalg.norm(split.class_embeddings, axis=1),
                             np.linalg.norm(scipy.io.loadmat(att)["att"],
                                            axis=0), rtol=1e-5)


def test_gbu_errors_name_the_file(gbu_dir, tmp_path):
  with pytest.raises(gbu.GBUFileError,
                     match="att_splits.mat not found.*xlsa17.zip"):
    gbu.find_files("AWA2", tmp_path / "nowhere")
  only_att = tmp_path / "only_att" / "zsl_xlsa17"
  only_att.mkdir(parents=True)
  shutil.copy(gbu_dir / "zsl_xlsa17" / f"{GBU_SET}_att_splits.mat", only_att)
  with pytest.raises(gbu.GBUFileError,
                     match=f"GBU {GBU_SET}: res101.mat not found"):
    gbu.find_files(GBU_SET, only_att.parent)
  with pytest.raises(gbu.GBUFileError, match="Unknown GBU data set 'AWA3'"):
    gbu.find_files("AWA3", gbu_dir)
  att, res = gbu.find_files(GBU_SET, gbu_dir)
  mat = scipy.io.loadmat(res)
  bad = tmp_path / "bad_res101.mat"
  scipy.io.savemat(bad, {"features": mat["features"],
                         "labels": mat["labels"] + 40})
  with pytest.raises(gbu.GBUFileError, match="describes 32 classes"):
    gbu.load_gbu(att, bad)
  scipy.io.savemat(bad, {"feats": mat["features"]})
  with pytest.raises(gbu.GBUFileError, match="has no 'features'"):
    gbu.load_gbu(att, bad)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_on_synthetic_gbu(name, gbu_dir):
  split = gbu.load_gbu(*gbu.find_files(GBU_SET, gbu_dir))
  split = zsl_run.extract_features(split, "raw", "center_l2")
  m, _, _ = protocols.fit_and_evaluate(_method(name), split,
                                       jax.random.PRNGKey(0))
  # 6 unseen classes: chance is 16.7%.
  assert m["zsl_accuracy"] > (25.0 if name in ("dap", "conse") else 50.0), m


# ---------------------------------------------------------------------------
# The runner contract.
# ---------------------------------------------------------------------------
def test_every_config_is_listed():
  assert CONFIGS == METHODS


@pytest.mark.parametrize("name", CONFIGS)
def test_quick_config_runs_on_synthetic_gbu(name, gbu_dir, tmp_path):
  from tlax import train  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(
      f"experiments.configs.zsl.{name}").get_config("quick")
  config.source = config.target = f"gbu/{GBU_SET}"
  config.data_dir = str(gbu_dir)
  result = train.run_experiment(config, tmp_path / "run")
  for key in ("zsl_accuracy", "gzsl_seen", "gzsl_unseen", "gzsl_h"):
    assert 0.0 <= result[key] <= 100.0
  assert len(result["split"]["unseen"]) == 6
  for fold in result["validation"]["unseen"]:
    assert not set(fold) & set(result["split"]["unseen"])
  with open(tmp_path / "run" / "result.json") as f:
    assert json.load(f)["method"] == name


def test_runner_returns_stored_result_and_refuses_other_config(gbu_dir,
                                                               tmp_path):
  from experiments.configs.zsl import eszsl  # pylint: disable=g-import-not-at-top
  from tlax import train  # pylint: disable=g-import-not-at-top
  config = eszsl.get_config("quick")
  config.source = config.target = f"gbu/{GBU_SET}"
  config.data_dir = str(gbu_dir)
  first = train.run_experiment(config, tmp_path)
  assert train.run_experiment(config, tmp_path) == first
  config.zsl.num_unseen = 4
  with pytest.raises(train.trainer.ConfigMismatchError,
                     match="zsl.num_unseen"):
    train.run_experiment(config, tmp_path)


def test_config_arguments():
  from experiments.configs.zsl import sje  # pylint: disable=g-import-not-at-top
  c = sje.get_config("quick, margin=0.5")
  assert c.method.margin == 0.5 and c.method.steps == 20
  assert list(c.zsl.grid.weight_decay) == [1e-5]
  with pytest.raises(ValueError, match="valid: 'quick'.*margin"):
    sje.get_config("marginn=1")


@pytest.mark.slow
def test_digits_runner_with_plots(data_dir, tmp_path):
  from experiments.configs.zsl import eszsl  # pylint: disable=g-import-not-at-top
  config = eszsl.get_config("quick")
  config.plots = "tsne"
  result = zsl_run.run(config, tmp_path)
  assert result["split"]["unseen"] == [semantic.DIGIT_NAMES[i] for i in
                                       protocols.class_split(10, 3, 0)[1]]
  assert result["zsl_accuracy"] > 40.0  # chance 33%
  assert (tmp_path / "tsne.png").stat().st_size < 200_000
  assert (tmp_path / "calibration.png").is_file()
