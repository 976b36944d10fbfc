r"""Office-Caltech10 SURF: three domains train, one held out.

800-d SURF features, the MLP and Adam of the Office-Caltech10 settings. The
argument: :mod:`experiments.configs.dg.common`.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/dg/office_caltech10.py:erm \
    --config.seed=0 --workdir=runs/dg/erm/office_caltech10--webcam/0
"""

from experiments.configs.dg import common as dg_common

DOMAINS = ("office_caltech10/amazon", "office_caltech10/caltech",
           "office_caltech10/dslr", "office_caltech10/webcam")
IMAGES = False  # 800-d SURF feature vectors: no image size applies


def get_config(arg: str | None = None):
  return dg_common.dg_config("+".join(DOMAINS[:3]), DOMAINS[3], arg,
                             steps=500)
