r"""Runs one experiment: trains, evaluates, writes ``<workdir>/result.json``.

  python -m experiments.run --config=experiments/configs/<method>.py \
    --config.source=<collection/domain> --config.target=<collection/domain> \
    --config.seed=<n> --workdir=<dir>

A killed run resumes from its last checkpoint when started again with the
same flags; a finished one returns its result at once. The last line printed
is the result summary as JSON.

SIGINT (Ctrl-C) and SIGTERM (preemption) save a checkpoint at the next step
boundary, print ``interrupted at step N; run the same command to resume``
and exit with 130 / 143. Errors of the run itself (another process in the
workdir, a config that differs from the workdir's, a full disk, NaN/inf in
training, a damaged checkpoint) are printed as one ``error:`` line, exit 1.
"""

import json
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from tlax import train
from tlax.train import workdir as workdir_lib

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


def _run(config, workdir):
  result = train.run_experiment(config, workdir)
  if config.get("plots", None) and not config.get("runner", None):
    # t-SNE/PCA of source and target features and the learning curves, as
    # PNGs in the workdir (config.plots = "tsne" or "pca"), for runs of the
    # trainer; the families with their own runner (config.runner) make
    # their own figures from the same field.
    from tlax.viz import embedding  # pylint: disable=g-import-not-at-top
    kind = config.plots if isinstance(config.plots, str) else "tsne"
    embedding.plot_run(workdir, embedding=kind)
  print(json.dumps(summary(result)))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  train.quiet_orbax_logs()
  code = workdir_lib.run_cli(_run, _CONFIG.value, _WORKDIR.value)
  sys.stdout.flush()
  if code:
    sys.exit(code)


if __name__ == "__main__":
  app.run(main, flags_parser=workdir_lib.parse_flags)
