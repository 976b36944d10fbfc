"""Label-free validators against hand-computed values on small arrays."""

import numpy as np
import pytest

from tlax.train import validators as V


def test_entropy_hand_values():
  p = np.array([[1.0, 0.0], [0.5, 0.5]])
  assert V.entropy_score(p) == pytest.approx(-np.log(2) / 2)


def test_bnm_hand_values():
  # Rows e1, e2: singular values 1, 1 -> nuclear norm 2, over n = 2 rows.
  assert V.bnm_score(np.eye(2)) == pytest.approx(1.0)
  # Identical rows (1, 0): rank one, singular value sqrt(2).
  assert V.bnm_score(np.array([[1.0, 0.0], [1.0, 0.0]])) == pytest.approx(
      np.sqrt(2) / 2)
  # Diverse confident predictions score higher than collapsed ones.
  assert V.bnm_score(np.eye(3)) > V.bnm_score(np.tile([1.0, 0, 0], (3, 1)))


def test_snd_hand_values():
  p = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  t = 0.5
  # Row 0: similarities to rows 1, 2 are 1 and 0 -> softmax of (2, 0).
  q0 = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
  h0 = -(q0 * np.log(q0)).sum()
  # Row 2: similarities to rows 0, 1 are both 0 -> uniform, entropy log 2.
  expected = (2 * h0 + np.log(2)) / 3
  assert V.snd_score(p, temperature=t) == pytest.approx(expected)


def test_class_ami_perfect_and_random():
  rng = np.random.default_rng(0)
  centres = np.eye(3) * 10
  y = np.repeat(np.arange(3), 20)
  f = centres[y] + rng.normal(scale=0.1, size=(60, 3))
  assert V.class_ami_score(f, np.eye(3)[y]) == pytest.approx(1.0)
  shuffled = np.eye(3)[rng.permutation(y)]
  assert V.class_ami_score(f, shuffled) < 0.2


def test_mixval_hand_values():
  # A model that predicts class 1 whenever the first input is > 0.5.
  predict = lambda x: np.stack([1 - x[:, 0], x[:, 0]], 1)
  x = np.array([[1.0], [0.0], [1.0], [0.0]], np.float32)
  probs = predict(x)
  i, j, inter = V.mix_pairs(probs.argmax(1), seed=0)
  mixed = 0.55 * x[i] + 0.45 * x[j]
  hit = predict(mixed).argmax(1) == probs.argmax(1)[i]
  parts = [hit[inter].mean()] + ([hit[~inter].mean()] if (~inter).any()
                                 else [])
  assert V.mixval_score(predict, x, probs) == pytest.approx(np.mean(parts))
  assert V.mixval_score(predict, x, probs) == pytest.approx(1.0)


def test_reverse_recovers_separable_labels():
  rng = np.random.default_rng(1)
  ys = np.repeat([0, 1], 30)
  fs = np.c_[ys * 4.0 - 2, rng.normal(size=60)]
  ft = np.c_[ys * 4.0 - 2 + 0.5, rng.normal(size=60)]
  good = np.eye(2)[ys]
  wrong = np.eye(2)[1 - ys]
  assert V.reverse_score(ft, good, fs, ys) == pytest.approx(1.0)
  assert V.reverse_score(ft, wrong, fs, ys) == pytest.approx(0.0)


def test_scores_dispatch_and_errors():
  logits = np.array([[3.0, 0.0], [0.0, 3.0], [2.0, 1.0]])
  out = V.scores(("entropy", "bnm", "snd"), target_logits=logits,
                 target_features=logits)
  assert out["entropy"] == pytest.approx(V.entropy_score(V.softmax(logits)))
  with pytest.raises(KeyError, match="known"):
    V.scores(("oracle",), target_logits=logits, target_features=logits)
  with pytest.raises(ValueError, match="finite"):
    V.entropy_score(np.array([[np.nan, 1.0]]))
  with pytest.raises(ValueError, match="lam"):
    V.mixval_score(lambda x: x, logits, V.softmax(logits), lam=0.4)


def test_trainer_records_validators_and_selects(tmp_path):
  from experiments.configs import source_only  # pylint: disable=g-import-not-at-top
  from tlax import train  # pylint: disable=g-import-not-at-top
  config = source_only.get_config("quick")
  config.validators = V.VALIDATORS
  result = train.train_and_evaluate(config, tmp_path)
  evals = train.read_metrics(tmp_path / "metrics.jsonl", type="eval")
  for name in V.VALIDATORS:
    values = [r[f"val_{name}"] for r in evals]
    assert all(np.isfinite(values)), name
    pick = result["selected_by"][name]
    best = max(evals, key=lambda r: (r[f"val_{name}"], r["step"]))
    assert pick["step"] == best["step"]
    assert pick["target_accuracy"] == best["target_accuracy"]
  with pytest.raises(KeyError, match="known"):
    config.validators = ("oracle",)
    train.train_and_evaluate(config, tmp_path / "other")


def _fake_run(root, method, seed, evals):
  import json  # pylint: disable=g-import-not-at-top
  run = root / method / "a--b" / str(seed)
  run.mkdir(parents=True)
  with open(run / "metrics.jsonl", "w") as f:
    for r in evals:
      f.write(json.dumps({"type": "eval", **r}) + "\n")
  (run / "result.json").write_text("{}")


def test_validators_table_gaps_and_flags(tmp_path):
  from experiments import validators_table as vt  # pylint: disable=g-import-not-at-top
  _fake_run(tmp_path, "source_only", 0, [
      {"step": 1, "target_accuracy": 50.0, "source_val_accuracy": 90.0}])
  _fake_run(tmp_path, "dann", 0, [
      {"step": 1, "target_accuracy": 70.0, "source_val_accuracy": 80.0,
       "val_snd": 1.0},
      {"step": 2, "target_accuracy": 40.0, "source_val_accuracy": 95.0,
       "val_snd": 2.0}])
  rows = {r["selector"]: r for r in vt.summarise(vt.collect(str(tmp_path)))}
  # final on dann: 40 (gap 30, below 50); on source_only: gap 0.
  assert rows["final"]["mean_gap"] == pytest.approx(15.0)
  assert rows["final"]["below_source_only"] == 1
  assert rows["val_snd"]["runs"] == 1 and rows["val_snd"]["worst_gap"] == 30
  assert "dann a--b seed 0" in rows["src_val"]["worst_run"]
