r"""Runs one experiment: trains, evaluates, writes ``<workdir>/result.json``.

  python -m experiments.run --config=experiments/configs/<method>.py \
    --config.source=<collection/domain> --config.target=<collection/domain> \
    --config.seed=<n> --workdir=<dir>

A killed run resumes from its last checkpoint when started again with the
same flags; a finished one returns its result at once. The last line printed
is the result summary as JSON.
"""

import json

from absl import app
from absl import flags
from ml_collections import config_flags

from tlax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (experiments/configs/*.py).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Folder for checkpoints, metrics and results.")
flags.mark_flags_as_required(["config", "workdir"])

SUMMARY_KEYS = ("method", "source", "target", "seed", "steps",
                "target_accuracy", "source_val_accuracy", "selected",
                "wall_time_s", "device")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  train.quiet_orbax_logs()
  keys = SUMMARY_KEYS
  if _CONFIG.value.get("stage", None) == "pretrain":
    # Pretraining stage (issue 6): pmap data parallelism over the local
    # devices, tlax/train/parallel.py; same workdir layout and result.json.
    from tlax.train import parallel  # pylint: disable=g-import-not-at-top
    result = parallel.pretrain_and_evaluate(_CONFIG.value, _WORKDIR.value)
    keys += ("source_test_accuracy", "images_per_sec", "num_devices")
  else:
    result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(json.dumps({k: result.get(k) for k in keys}))


if __name__ == "__main__":
  app.run(main)
