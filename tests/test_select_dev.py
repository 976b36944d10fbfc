"""experiments/select_dev.py: the DEV choice of a hyperparameter per run."""

import json

import pytest

from experiments import select_dev
from experiments import sweep

TASK = ("office_caltech10/amazon", "office_caltech10/webcam")


def _write_run(root, seed, evals):
  run = root / "coral" / sweep.task_dir(*TASK) / str(seed)
  run.mkdir(parents=True)
  with open(run / "metrics.jsonl", "w") as f:
    f.write(json.dumps({"type": "train", "step": 1, "loss": 1.0}) + "\n")
    for step, risk, acc in evals:
      f.write(json.dumps({"type": "eval", "step": step, "dev_risk": risk,
                          "target_accuracy": acc}) + "\n")
  (run / "result.json").write_text("{}")


def test_choice_uses_dev_risk_only(tmp_path):
  # Candidate "1" has the better target accuracy, "0.1" the lower DEV risk:
  # the choice must follow the DEV risk.
  a, b = tmp_path / "a", tmp_path / "b"
  for seed in (0, 1):
    _write_run(a, seed, [(10, 0.5, 80.0), (20, 0.4, 90.0)])
    _write_run(b, seed, [(10, 0.2, 60.0), (20, 0.3, 65.0)])
  groups = [("t", [TASK])]
  choices = select_dev.run("coral", [("1", str(a)), ("0.1", str(b))], groups,
                           ["0", "1"])
  for c in choices[TASK]:
    assert c["final"] == ("0.1", 65.0)        # final-step risk 0.3 < 0.4
    assert c["dev"] == ("0.1", 10, 60.0)      # lowest risk of all: 0.2
  table = select_dev.make_table("coral", "lambda", choices, groups,
                                ["1", "0.1"])
  assert "| 65.0 ± 0.0 | 60.0 ± 0.0 | 0.1 x2 |" in table


def test_ties_prefer_earlier_candidate_and_later_step():
  evals = {"1": [{"step": 5, "dev_risk": 0.1, "target_accuracy": 1.0},
                 {"step": 9, "dev_risk": 0.1, "target_accuracy": 2.0}],
           "0.1": [{"step": 9, "dev_risk": 0.1, "target_accuracy": 3.0}]}
  assert select_dev.choose(evals)["dev"] == ("1", 9, 2.0)
  assert select_dev.choose(evals)["final"] == ("1", 2.0)


def test_missing_or_dev_less_runs_raise(tmp_path):
  with pytest.raises(FileNotFoundError, match="not finished"):
    select_dev.read_evals(str(tmp_path / "nowhere"))
  _write_run(tmp_path, 0, [(10, None, 50.0)])
  with pytest.raises(ValueError, match="no DEV risk"):
    select_dev.read_evals(str(tmp_path / "coral" / sweep.task_dir(*TASK) /
                              "0"))
