"""tlax.data.task_from_arrays and training on the user's own arrays."""

import numpy as np
import pytest

import tlax
from experiments.configs import source_only
from tlax import train


def _arrays(n=120, d=6, shift=0.5, seed=0):
  rng = np.random.default_rng(seed)
  xs = rng.normal(size=(n, d)).astype(np.float32)
  ys = (xs[:, 0] > 0).astype(np.int64)
  xt = rng.normal(size=(n, d)).astype(np.float32) + shift
  yt = (xt[:, 0] > shift).astype(np.int64)
  return xs, ys, xt, yt


def test_task_shapes_and_transductive_target():
  xs, ys, xt, yt = _arrays()
  task = tlax.data.task_from_arrays(xs, ys, xt, yt, seed=3)
  assert task.num_classes == 2 and task.input_shape == (6,)
  assert len(task.xs) + len(task.xs_val) == len(xs)
  np.testing.assert_array_equal(task.xt, xt)
  np.testing.assert_array_equal(task.yt_test, yt)
  assert task.transductive and task.info["target_labels"]


def test_images_and_separate_test_set():
  rng = np.random.default_rng(1)
  xs = rng.random((40, 8, 8, 1))
  task = tlax.data.task_from_arrays(xs, np.arange(40) % 4, xs[:30],
                                    xt_test=xs[30:], yt_test=np.arange(10) % 4)
  assert task.source.kind == "image" and task.num_classes == 4
  assert not task.transductive and len(task.yt_test) == 10


@pytest.mark.parametrize("kwargs,match", [
    (dict(ys=np.array([0.5] * 120)), "integer class labels"),
    (dict(ys=np.zeros(119, int)), "vector of 120 labels"),
    (dict(xt=np.zeros((120, 5), np.float32)), "same shape per example"),
    (dict(xs=np.full((120, 6), np.nan)), "NaN or infinite"),
    (dict(xs=np.zeros((120, 2, 3))), r"\(N, D\)"),
    (dict(ys=-np.ones(120, int)), "negative labels"),
    (dict(ys=np.array(["a"] * 120)), "integer class labels"),
    (dict(num_classes=1), "labels go up to 1"),
])
def test_bad_arrays_are_named(kwargs, match):
  xs, ys, xt, _ = _arrays()
  args = dict(xs=xs, ys=ys, xt=xt)
  num_classes = kwargs.pop("num_classes", None)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    tlax.data.task_from_arrays(**args, num_classes=num_classes)


@pytest.mark.parametrize("fraction", [1.0, -0.1, float("nan")])
def test_bad_source_val_fraction_is_named(fraction):
  xs, ys, xt, _ = _arrays()
  with pytest.raises(ValueError, match=r"source_val_fraction must be in "
                     r"\[0, 1\)"):
    tlax.data.task_from_arrays(xs, ys, xt, source_val_fraction=fraction)


def test_train_on_arrays_with_and_without_target_labels(tmp_path):
  xs, ys, xt, yt = _arrays()
  config = source_only.get_config("quick")
  with_labels = train.train_and_evaluate(
      config, tmp_path / "a", task=tlax.data.task_from_arrays(xs, ys, xt, yt))
  assert 0 <= with_labels["target_accuracy"] <= 100
  assert with_labels["source"] == "arrays/source"
  assert with_labels["config"]["task_fingerprint"]
  without = train.train_and_evaluate(
      config, tmp_path / "b", task=tlax.data.task_from_arrays(xs, ys, xt))
  assert without["target_accuracy"] is None
  assert without["selected"]["source_val_accuracy"] is not None
  assert without["selected_dev"]["dev_risk"] is not None
  # The same weights either way: only the reporting differs.
  assert without["source_val_accuracy"] == with_labels["source_val_accuracy"]


def test_workdir_refuses_other_arrays(tmp_path):
  xs, ys, xt, yt = _arrays()
  config = source_only.get_config("quick")
  train.train_and_evaluate(config, tmp_path,
                           task=tlax.data.task_from_arrays(xs, ys, xt, yt))
  other = tlax.data.task_from_arrays(xs, ys, xt + 1.0, yt)
  with pytest.raises(train.ConfigMismatchError, match="task_fingerprint"):
    train.train_and_evaluate(config, tmp_path, task=other)


def test_public_api_attributes():
  import importlib  # pylint: disable=g-import-not-at-top
  for name in ("losses", "methods", "models", "data", "train", "shallow"):
    assert getattr(tlax, name) is importlib.import_module(f"tlax.{name}")
  for name in ("TCA", "JDA", "BDA", "MEDA", "GFK", "CORAL", "KMM",
               "NearestNeighbor", "LinearSVM", "TrAdaBoost"):
    assert hasattr(tlax.shallow, name), name
  with pytest.raises(AttributeError):
    tlax.not_a_module  # pylint: disable=pointless-statement
  x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
  assert float(tlax.losses.mk_mmd(x, x)) == pytest.approx(0.0, abs=1e-6)
