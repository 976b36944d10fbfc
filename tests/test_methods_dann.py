"""A short DANN run on sklearn -> MNIST-M beats source-only (fixed seed).

The embedded task ``digits/sklearn -> digits/mnistm`` (16x16x3, LeNet, no
files needed), 300 steps of batch 64 + 64 with the default settings (SGD
momentum 0.9, DANN learning-rate annealing), seed 0, both runs through
the runner. DANN uses the paper's MNIST domain
classifier (``flat -> 100 -> 1``, Ganin et al. 2016, Fig. 4). Expected on
the CPU: source-only 45.4 %, DANN 48.5 % (final step).

Each run is a ``python -m experiments.run`` process at XLA:CPU's default
backend optimisation level: the rest of the suite compiles at level 0
(tests/conftest.py), which compiles faster, but these 600 LeNet steps run
more slowly at level 0 than the time it saves.
"""

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

STEPS = 300


def _run(name, workdir, *overrides):
  env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") +
             " --xla_backend_optimization_level=3")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.run",
       f"--config=experiments/configs/{name}.py", f"--workdir={workdir}",
       f"--config.steps={STEPS}", f"--config.eval_every={STEPS}",
       "--config.progress=False", "--config.seed=0",
       "--config.source=digits/sklearn", "--config.target=digits/mnistm",
       *overrides],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads((workdir / "result.json").read_text())


def test_dann_beats_source_only_on_sklearn_to_mnistm(tmp_path):
  source_only = _run("source_only", tmp_path / "source_only")
  dann = _run("dann", tmp_path / "dann", "--config.method.disc_hidden=(100,)")
  assert dann["steps"] == source_only["steps"] == STEPS
  assert dann["config"]["method"]["disc_hidden"] == [100]
  assert dann["target_accuracy"] > source_only["target_accuracy"] + 1.0, (
      dann["target_accuracy"], source_only["target_accuracy"])
