"""A short DANN run on sklearn -> MNIST-M beats source-only (fixed seed).

The embedded task ``digits/sklearn -> digits/mnistm`` (16x16x3, LeNet, no
files needed), 600 steps of batch 64 + 64 with the default settings (SGD
momentum 0.9, DANN learning-rate annealing), seed 0, both runs through
:func:`tlax.train.train_and_evaluate`. DANN uses the paper's MNIST domain
classifier (``flat -> 100 -> 1``, Ganin et al. 2016, Fig. 4). Expected on
the CPU: source-only 45.4 %, DANN 47.6 % (final step).
"""

import importlib

from tlax.train import train_and_evaluate

STEPS = 600


def _run(name, workdir, **method_options):
  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  config.steps = STEPS
  config.eval_every = STEPS
  config.progress = False
  config.seed = 0
  config.source, config.target = "digits/sklearn", "digits/mnistm"
  for key, value in method_options.items():
    config.method[key] = value
  return train_and_evaluate(config, workdir)


def test_dann_beats_source_only_on_sklearn_to_mnistm(tmp_path):
  source_only = _run("source_only", tmp_path / "source_only")
  dann = _run("dann", tmp_path / "dann", disc_hidden=(100,))
  assert dann["steps"] == source_only["steps"] == STEPS
  assert dann["target_accuracy"] > source_only["target_accuracy"] + 1.0, (
      dann["target_accuracy"], source_only["target_accuracy"])
