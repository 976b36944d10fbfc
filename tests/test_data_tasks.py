"""Tasks and paired batches: splits, pairing errors, seeded iteration."""

import numpy as np
import pytest

import tlax.data as td

SYN = {"target": {"n_train": 300, "n_test": 60}}


def _rows(x):
  return {r.tobytes() for r in np.asarray(x).reshape(len(x), -1)}


@pytest.fixture(scope="module")
def task():
  # Rendered target images carry noise, so rows are unique: disjointness can
  # be checked on the arrays themselves.
  return td.make_task("digits/sklearn", "digits/syndigits", channels=3,
                      seed=0, target_labeled_per_class=3, domain_options=SYN)


def test_task_arrays(task):
  assert task.input_shape == (16, 16, 3) and task.num_classes == 10
  assert task.xs.shape[1:] == task.input_shape
  assert task.xt.shape[1:] == task.input_shape
  assert task.xs.dtype == np.float32 and task.ys.dtype == np.int32
  assert not task.transductive
  assert not hasattr(task, "yt")
  n_src = len(task.source.splits["train"][1])
  assert len(task.xs) + len(task.xs_val) == n_src
  assert abs(len(task.xs_val) / n_src - 0.1) < 0.02
  assert set(np.unique(task.ys_val)) == set(range(10))
  assert not _rows(task.xs) & _rows(task.xs_val)


def test_few_labelled_target_examples(task):
  assert np.bincount(task.ytl, minlength=10).tolist() == [3] * 10
  assert len(task.xtl) == 30
  assert len(task.xt) + len(task.xtl) == 300
  assert not _rows(task.xtl) & _rows(task.xt_test)
  assert not _rows(task.xtl) & _rows(task.xt)
  assert not _rows(task.xt) & _rows(task.xt_test)
  assert len(task.xt_test) == 60


def test_no_labelled_target_gives_empty_arrays():
  t = td.make_task("digits/sklearn", "digits/mnistm", channels=1)
  assert t.xtl.shape == (0, 16, 16, 1) and t.ytl.shape == (0,)


def test_too_many_labelled_per_class_is_explained():
  with pytest.raises(ValueError, match="target_labeled_per_class=40"):
    td.make_task("digits/sklearn", "digits/syndigits", channels=3,
                 target_labeled_per_class=40, domain_options=SYN)


def test_shape_mismatch_says_what_to_set():
  with pytest.raises(td.DomainShapeError) as e:
    td.make_task("digits/sklearn", "digits/mnistm")
  msg = str(e.value)
  assert "(16,16,1)" in msg and "(16,16,3)" in msg
  assert "channels=3" in msg and "--config.channels" in msg
  with pytest.raises(td.DomainShapeError, match="image_size"):
    td.make_task("digits/sklearn", "digits/syndigits", channels=3,
                 domain_options={"target": {"image_size": 20, **SYN["target"]}})


def test_unknown_task_domain_lists_names():
  with pytest.raises(KeyError, match="digits/mnistm"):
    td.make_task("digits/sklearn", "nope/nope")


def test_make_task_is_deterministic_and_seeded():
  a = td.make_task("digits/sklearn", "digits/mnistm", channels=3, seed=1,
                   target_labeled_per_class=2)
  b = td.make_task("digits/sklearn", "digits/mnistm", channels=3, seed=1,
                   target_labeled_per_class=2)
  c = td.make_task("digits/sklearn", "digits/mnistm", channels=3, seed=2,
                   target_labeled_per_class=2)
  np.testing.assert_array_equal(a.xtl, b.xtl)
  np.testing.assert_array_equal(a.ys_val, b.ys_val)
  assert not np.array_equal(a.xtl, c.xtl)


def test_batches_pure_function_of_seed_and_step(task):
  p1 = td.PairedBatches(task, 32, seed=7, labeled_batch_size=5)
  p2 = td.PairedBatches(task, 32, seed=7, labeled_batch_size=5)
  for step in (0, 3, 41):
    b1, b2 = p1.batch(step), p2.batch(step)
    assert b1.keys() == b2.keys() == {"xs", "ys", "ws", "xt", "xtl", "ytl"}
    for k in b1:
      np.testing.assert_array_equal(b1[k], b2[k])
  other = td.PairedBatches(task, 32, seed=8).batch(3)
  assert not np.array_equal(other["ys"], p1.batch(3)["ys"])


def test_resuming_equals_continuing(task):
  p = td.PairedBatches(task, 50, seed=0, target_batch_size=20)
  it = p.iterate()
  straight = [next(it) for _ in range(12)]
  resumed = td.PairedBatches(task, 50, seed=0, target_batch_size=20).iterate(7)
  for k in range(7, 12):
    b = next(resumed)
    for key in b:
      np.testing.assert_array_equal(b[key], straight[k][key])


def test_each_epoch_covers_every_source_example_once(task):
  bs = 64
  p = td.PairedBatches(task, bs, seed=3)
  n = len(task.xs)
  assert p.steps_per_epoch == -(-n // bs)
  idx = np.concatenate([p.indices(s)["xs"] for s in range(3 * n // bs + 1)])
  for e in range(3):
    assert sorted(idx[e * n:(e + 1) * n]) == list(range(n))
  assert not np.array_equal(idx[:n], idx[n:2 * n])  # a new order each epoch
  # The batches hold exactly those examples.
  b = p.batch(2)
  np.testing.assert_array_equal(b["ys"], task.ys[p.indices(2)["xs"]])


def test_epoch_permutation_seed_convention(task):
  p = td.PairedBatches(task, 16, seed=11)
  want = np.random.default_rng([11, 0, 0]).permutation(len(task.xs))[:16]
  np.testing.assert_array_equal(p.indices(0)["xs"], want)
  want_t = np.random.default_rng([11, 1, 0]).permutation(len(task.xt))[16:32]
  np.testing.assert_array_equal(p.indices(1)["xt"], want_t)


def test_batch_larger_than_a_domain(task):
  p = td.PairedBatches(task, 16, seed=0, labeled_batch_size=64)
  b = p.batch(0)
  assert b["xtl"].shape[0] == 64
  assert np.bincount(b["ytl"], minlength=10).min() >= 6  # two full epochs


def test_source_weights_normalised_and_element_spec(task):
  w = np.arange(len(task.xs), dtype=np.float64) + 1.0
  p = td.PairedBatches(task, 32, seed=0, source_weights=w)
  np.testing.assert_allclose(p.source_weights.mean(), 1.0, rtol=1e-5)
  b = p.batch(0)
  np.testing.assert_allclose(b["ws"], (w / w.mean())[p.indices(0)["xs"]],
                             rtol=1e-6)
  spec = p.element_spec
  assert set(spec) == set(b)
  for k, v in b.items():
    assert spec[k].shape == v.shape and spec[k].dtype == v.dtype
  ones = td.PairedBatches(task, 32, seed=0).batch(0)["ws"]
  assert ones.dtype == np.float32 and np.all(ones == 1.0)


def test_bad_batch_arguments(task):
  with pytest.raises(ValueError, match="source_weights"):
    td.PairedBatches(task, 8, seed=0, source_weights=np.ones(3))
  with pytest.raises(ValueError, match="non-negative"):
    td.PairedBatches(task, 8, seed=0,
                     source_weights=-np.ones(len(task.xs)))
  t0 = td.make_task("digits/sklearn", "digits/mnistm", channels=3)
  with pytest.raises(ValueError, match="target_labeled_per_class"):
    td.PairedBatches(t0, 8, seed=0, labeled_batch_size=4)
