"""DomainBed's random hyper-parameter search (experiments/dg_search.py)."""

import importlib
import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import dg_search
from tlax.methods import generalization

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _search(*args, timeout=600):
  """``python -m experiments.dg_search *args`` from the repository root."""
  return subprocess.run([sys.executable, "-m", "experiments.dg_search", *args],
                        cwd=_REPO, capture_output=True, text=True,
                        timeout=timeout)


def test_every_algorithm_has_distributions_of_its_own_options():
  assert set(dg_search.DISTRIBUTIONS) == set(generalization.DG_METHODS)
  for alg, dists in dg_search.DISTRIBUTIONS.items():
    params = inspect.signature(generalization.DG_METHODS[alg]).parameters
    for name, (default, _) in dists.items():
      section, option = name.split(".")
      assert section == "method"
      arg = "lambda_" if option == "lambda" else option
      assert arg in params, (alg, option)
      # Draw 0 is the factory's own default.
      assert params[arg].default == pytest.approx(default), (alg, option)


def test_draw_zero_is_the_defaults_and_draws_are_reproducible():
  assert dg_search.draw_hparams("irm", 0, 2) == {
      "optimizer.lr": 1e-3, "batch_per_domain": 64,
      "method.lambda": 100.0, "method.anneal_steps": 500}
  a = dg_search.draw_hparams("irm", 3, 1)
  assert a == dg_search.draw_hparams("irm", 3, 1)
  assert a != dg_search.draw_hparams("irm", 3, 2)  # trials draw anew
  assert a != dg_search.draw_hparams("irm", 4, 1)


def test_draws_follow_domainbeds_ranges():
  lr, batch, lam, anneal = [], [], [], []
  for d in range(1, 301):
    h = dg_search.draw_hparams("irm", d, 0)
    lr.append(h["optimizer.lr"])
    batch.append(h["batch_per_domain"])
    lam.append(h["method.lambda"])
    anneal.append(h["method.anneal_steps"])
  log_lr = np.log10(lr)
  assert -4.5 <= log_lr.min() and log_lr.max() <= -2.5
  assert log_lr.min() < -4.2 and log_lr.max() > -2.8  # the whole range
  assert 8 <= min(batch) and max(batch) <= 512
  assert all(isinstance(b, int) for b in batch + anneal)
  assert -1 <= np.log10(lam).min() and np.log10(lam).max() <= 5
  assert 1 <= min(anneal) and max(anneal) <= 10_000


def test_bad_algorithm_and_draw_are_named():
  with pytest.raises(ValueError, match="'irn'.*erm"):
    dg_search.draw_hparams("irn", 1, 0)
  with pytest.raises(ValueError, match="draw must be >= 0"):
    dg_search.draw_hparams("erm", -1, 0)


def test_config_for_applies_the_draw_trial_and_test_domain():
  c = dg_search.config_for("colored_mnist", "vrex", "colored_mnist/plus90",
                           draw=2, trial=1, steps=30)
  h = dg_search.draw_hparams("vrex", 2, 1)
  assert c.method.name == "vrex" and c.seed == 1 and c.steps == 30
  assert c.target == "colored_mnist/plus90"
  assert c.source == "colored_mnist/plus80+colored_mnist/minus90"
  assert c.batch_size == 2 * h["batch_per_domain"]
  assert c.optimizer.lr == h["optimizer.lr"]
  assert c.method["lambda"] == h["method.lambda"]
  assert c.method.anneal_steps == h["method.anneal_steps"]
  with pytest.raises(ValueError, match="'colored_mnist/minus80'.*plus90"):
    dg_search.config_for("colored_mnist", "erm", "colored_mnist/minus80",
                         0, 0)
  # A domain's own name, without its collection, is enough.
  short = dg_search.config_for("colored_mnist", "vrex", "plus90", draw=2,
                               trial=1, steps=30)
  assert (short.source, short.target) == (c.source, c.target)
  assert c.image_size == 16
  small = dg_search.config_for("pacs", "erm", "sketch", 0, 0, image_size=8)
  assert small.image_size == 8 and small.target == "pacs/sketch"
  with pytest.raises(ValueError, match="feature vectors"):
    dg_search.config_for("office_caltech10", "erm", None, 0, 0,
                         image_size=16)


def test_config_for_sets_the_steps_of_every_dataset_config():
  # Some configs leave eval_every to the trainer (None); others set it.
  for dataset in dg_search.datasets():
    c = dg_search.config_for(dataset, "erm", None, 1, 0, steps=40)
    assert c.steps == 40 and c.checkpoint_every == 40, dataset
    assert c.eval_every is None or c.eval_every <= 40, dataset


def test_config_for_refuses_an_optimizer_the_distributions_do_not_fit(
    monkeypatch):
  module = importlib.import_module("experiments.configs.dg.rotated_mnist")
  original = module.get_config

  def sgd_config(arg=None):
    c = original(arg)
    c.optimizer.name = "sgd"
    return c
  monkeypatch.setattr(module, "get_config", sgd_config)
  with pytest.raises(ValueError, match="'sgd'.*Adam.*rotated_mnist.py"):
    dg_search.config_for("rotated_mnist", "erm", None, 1, 0, steps=40)


def test_scaled_schedules_keep_domainbeds_fraction_of_the_run():
  h = dg_search.draw_hparams("irm", 3, 1)
  c = dg_search.config_for("colored_mnist", "irm", None, 3, 1, steps=300,
                           scale_schedules=True)
  assert c.method.anneal_steps == round(h["method.anneal_steps"] * 300 / 5000)
  assert c.method["lambda"] == h["method.lambda"]  # other draws unchanged
  d0 = dg_search.config_for("colored_mnist", "vrex", None, 0, 0, steps=300,
                            scale_schedules=True)
  assert d0.method.anneal_steps == 30  # DomainBed's 500 of 5,000 steps
  # Algorithms without a schedule are untouched.
  erm = dg_search.config_for("colored_mnist", "erm", None, 0, 0, steps=300,
                             scale_schedules=True)
  assert erm.to_dict() == dg_search.config_for(
      "colored_mnist", "erm", None, 0, 0, steps=300).to_dict()


def test_reset_optimizer_applies_to_the_penalty_schedules_only():
  for alg in ("irm", "vrex", "fishr"):
    c = dg_search.config_for("colored_mnist", alg, None, 2, 0, steps=300,
                             reset_optimizer=True)
    assert c.method.reset_optimizer is True
    plain = dg_search.config_for("colored_mnist", alg, None, 2, 0, steps=300)
    assert "reset_optimizer" not in plain.method
  erm = dg_search.config_for("colored_mnist", "erm", None, 0, 0, steps=300,
                             reset_optimizer=True)
  assert erm.to_dict() == dg_search.config_for(
      "colored_mnist", "erm", None, 0, 0, steps=300).to_dict()


def test_selection_rules_choose_per_trial():
  rec = {
      ("irm", "t", 0, 0): {"val": 90.0, "test": 10.0},
      ("irm", "t", 1, 0): {"val": 80.0, "test": 60.0},
      ("irm", "t", 0, 1): {"val": 70.0, "test": 20.0},
      ("irm", "t", 1, 1): {"val": 70.0, "test": 30.0},  # tie: draw 0 wins
  }
  assert dg_search.select(rec, "training-domain validation") == {
      ("irm", "t"): [10.0, 20.0]}
  assert dg_search.select(rec, "test-domain oracle") == {
      ("irm", "t"): [60.0, 30.0]}
  with pytest.raises(ValueError, match="selection"):
    dg_search.select(rec, "best")
  lines = dg_search.table(rec, ["irm", "erm"], ["t"],
                          "training-domain validation")
  assert lines[2] == "| irm | 15.0 ± 7.1 (2) | 15.0 |"
  assert lines[3] == "| erm | - | - |"


def test_table_counts_held_out_domains_above_erm():
  rec = {}
  for dom, erm, irm in (("a", 50.0, 60.0), ("b", 70.0, 70.0),
                        ("c", 40.0, 45.0)):
    rec[("erm", dom, 0, 0)] = {"val": 1.0, "test": erm}
    rec[("irm", dom, 0, 0)] = {"val": 1.0, "test": irm}
  lines = dg_search.table(rec, ["erm", "irm", "vrex"], ["a", "b", "c"],
                          "training-domain validation")
  assert lines[0] == "| algorithm | a | b | c | average | above ERM |"
  assert lines[1] == "|---|---:|---:|---:|---:|---:|"
  assert lines[2].endswith("| 53.3 | - |")
  # Above on a and c, equal (not above) on b.
  assert lines[3].endswith("| 58.3 | 2 of 3 |")
  assert lines[4] == "| vrex | - | - | - | - | - |"


@pytest.mark.slow
def test_search_command_runs_and_writes_the_page(tmp_path):
  out = tmp_path / "page.md"
  args = ["--quick", "--algorithms=erm,vrex", "--draws=2", "--trials=1",
          f"--root={tmp_path / 'runs'}", f"--out={out}"]
  _search(*args).check_returncode()
  text = out.read_text()
  assert "4 runs (2 draws x 1 trials" in text
  assert "**oracle**" in text
  assert "| vrex | " in text and "| erm | " in text
  # Rerunning reads the finished runs back.
  _search(*args).check_returncode()
  assert out.read_text() == text
  # --table_only runs nothing: an algorithm without runs shows "-".
  table_out = tmp_path / "table.md"
  _search("--quick", "--algorithms=erm,vrex,irm", "--draws=2", "--trials=1",
          "--table_only", f"--root={tmp_path / 'runs'}",
          f"--out={table_out}").check_returncode()
  table = table_out.read_text()
  assert "| irm | - | - |" in table
  assert "Tabulated from the finished runs" in table
  assert text.startswith("# Domain generalisation: random hyper-parameter "
                         "search (colored_mnist)\n")
  assert "Run and tabulated with" in text
  erm_row = [l for l in text.splitlines() if l.startswith("| erm |")]
  assert erm_row and all(l in table for l in erm_row)
  assert not (tmp_path / "runs" / "colored_mnist" / "colored_mnist_minus90"
              / "irm").exists()
  # --table_only with another --steps does not read runs of another length
  # as if they were its own: each is named as made with another config.
  proc = _search("--quick", "--algorithms=erm", "--draws=1", "--trials=1",
                 "--steps=7", "--table_only", f"--root={tmp_path / 'runs'}",
                 f"--out={tmp_path / 'steps7.md'}")
  assert proc.returncode == 1
  assert "was made with a different config" in proc.stderr
  assert "steps: requested 7, workdir has" in proc.stderr
  assert not (tmp_path / "steps7.md").exists()


def test_table_only_without_runs_writes_nothing(tmp_path):
  out = tmp_path / "page.md"
  proc = _search("--table_only", "--algorithms=erm", "--draws=1",
                 "--trials=1", f"--root={tmp_path / 'runs'}", f"--out={out}",
                 timeout=120)
  assert proc.returncode == 1
  assert "no finished run under" in proc.stderr
  assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--dataset=nope"], "--dataset: 'nope' is not a config of "
     "experiments/configs/dg/; valid: colored_mnist, digits, "
     "office_caltech10, pacs, rotated_mnist."),
    (["--dataset=office_caltech10", "--test_domains=foo"],
     "--test_domains: 'foo' is not a domain of office_caltech10; valid: "
     "amazon, caltech, dslr, webcam."),
    (["--dataset=office_caltech10", "--image_size=16"],
     "--image_size: the office_caltech10 domains are feature vectors"),
    (["--image_size=2"], "--image_size: 2 must be >= 4."),
])
def test_bad_dataset_and_test_domain_are_named_before_any_run(
    tmp_path, args, message):
  proc = _search("--algorithms=erm", "--draws=1", "--trials=1",
                 f"--root={tmp_path}", *args, timeout=120)
  assert proc.returncode != 0
  assert message in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not os.listdir(tmp_path)


def test_image_size_runs_go_to_their_own_folder(tmp_path):
  out = tmp_path / "page.md"
  _search("--quick", "--algorithms=erm", "--draws=1", "--trials=1",
          "--image_size=8", f"--root={tmp_path / 'runs'}",
          f"--out={out}").check_returncode()
  run = (tmp_path / "runs" / "colored_mnist_8px" / "colored_mnist_minus90"
         / "erm" / "draw0" / "trial0")
  assert (run / "result.json").exists()
  assert '"image_size": 8' in (run / "result.json").read_text()
  assert "--image_size=8" in out.read_text()


def test_scaled_schedule_runs_go_to_their_own_folder(tmp_path):
  def irm_run_config(flag, folder):
    _search("--quick", "--algorithms=irm", "--draws=1", "--trials=1",
            "--steps=3", flag, f"--root={tmp_path}").check_returncode()
    run = (tmp_path / folder / "colored_mnist_minus90" / "irm" / "draw0"
           / "trial0")
    return json.loads((run / "result.json").read_text())["config"]

  config = irm_run_config("--scale_schedules", "colored_mnist_scaled")
  assert config["method"]["anneal_steps"] == 0  # 500 * 3 / 5000, rounded
  config = irm_run_config("--reset_optimizer", "colored_mnist_reset")
  assert config["method"]["reset_optimizer"] is True


def test_final_eval_only_runs_evaluate_once_in_their_own_folder(tmp_path):
  c = dg_search.config_for("colored_mnist", "erm", "plus90", 1, 0,
                           steps=400, final_eval_only=True)
  assert c.eval_every == 400
  assert dg_search.config_for("colored_mnist", "erm", "plus90", 1, 0,
                              steps=400).eval_every < 400
  _search("--quick", "--algorithms=erm", "--draws=1", "--trials=1",
          "--steps=4", "--final_eval_only",
          f"--root={tmp_path}").check_returncode()
  run = (tmp_path / "colored_mnist_final" / "colored_mnist_minus90" / "erm"
         / "draw0" / "trial0")
  evals = [json.loads(line) for line in
           (run / "metrics.jsonl").read_text().splitlines()
           if '"type": "eval"' in line]
  assert [e["step"] for e in evals] == [4]
  assert dg_search.final_record(str(run))["step"] == 4
