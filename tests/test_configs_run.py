"""A short run of every method's config through the trainer, on tiny data.

``experiments/configs/<method>.py:quick`` (the embedded default task, a small
MLP), cut to two steps: the config resolves, the method builds, the jitted
step runs, evaluation and both label-free selections (source validation and
DEV) are recorded, and ``result.json`` is written.
"""

import importlib
import json
import pathlib

import numpy as np
import pytest

from tlax import train

# Every method config; pretrain.py and finetune.py (which needs a pretrained
# checkpoint) run in tests/test_parallel.py and tests/test_finetune_methods.py.
_DIR = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "configs"
CONFIGS = sorted(p.stem for p in _DIR.glob("*.py")
                 if p.stem not in ("__init__", "common", "pretrain",
                                   "finetune"))


@pytest.mark.parametrize("name", CONFIGS)
def test_quick_config_runs_two_steps(name, tmp_path):
  config = importlib.import_module(
      f"experiments.configs.{name}").get_config("quick")
  config.steps = 2
  config.log_every = config.eval_every = config.checkpoint_every = 2
  result = train.train_and_evaluate(config, tmp_path)
  assert result["method"] == name and result["steps"] == 2
  assert 0.0 <= result["target_accuracy"] <= 100.0
  assert result["selected"]["step"] == 2
  assert result["selected_dev"]["step"] == 2
  assert np.isfinite(result["selected_dev"]["dev_risk"])
  with open(tmp_path / "result.json") as f:
    assert json.load(f)["method"] == name


def test_config_argument_sets_hyperparameters():
  coral = importlib.import_module("experiments.configs.coral")
  # Options the config does not set take the factory's defaults.
  assert coral.get_config()["method"]["lambda"] == 1.0
  assert coral.get_config()["method"]["layers"] == ("logits",)
  config = coral.get_config("quick, lambda=0.1")
  assert config.method["lambda"] == pytest.approx(0.1) and config.steps == 10
  with pytest.raises(ValueError, match="valid: 'quick'.*lambda"):
    coral.get_config("lamda=0.1")
  with pytest.raises(ValueError, match="not a number"):
    coral.get_config("lambda=small")
  with pytest.raises(ValueError, match="Unknown config argument 'fast'"):
    importlib.import_module("experiments.configs.source_only").get_config(
        "fast")
