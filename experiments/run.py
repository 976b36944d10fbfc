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

def summary(result: dict) -> dict:
  """The scalar fields of a result (and its selections), for the last line."""
  return {k: v for k, v in result.items()
          if k != "config" and (not isinstance(v, (dict, list))
                                or k.startswith("selected"))}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  train.quiet_orbax_logs()
  result = train.run_experiment(_CONFIG.value, _WORKDIR.value)
  print(json.dumps(summary(result)))


if __name__ == "__main__":
  app.run(main)
