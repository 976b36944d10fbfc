r"""Source-only: train on the labelled source, test on the target.

The lower bound every transfer method is compared with: the weighted source
classification risk only (:func:`tlax.methods.source_only`).

COMMAND:
  python -m experiments.run --config=experiments/configs/source_only.py \
    --config.source=office_caltech10/amazon \
    --config.target=office_caltech10/webcam --config.seed=0 \
    --workdir=runs/source_only/amazon-webcam/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/source_only.py:quick \
    --workdir=/tmp/tlax_quick

Training settings per benchmark collection come from
``experiments/configs/common.py`` (``AUTO``) unless set on the command line.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The source-only config; ``arg``: :func:`common.apply_arg`."""
  config = common.base_config()
  config.method.name = "source_only"
  common.apply_arg(config, arg)
  return config
