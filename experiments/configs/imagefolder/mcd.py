r"""mcd in the deep domain-adaptation recipe on an image-folder tree
(:mod:`experiments.configs.imagefolder.recipe`).

COMMAND (a torchvision ResNet-50 weight file, an Office-31 tree):
  python -m experiments.run --config=experiments/configs/imagefolder/mcd.py \
    --config.model.pretrained=resnet50.safetensors \
    --config.source=office31/amazon --config.target=office31/webcam \
    --config.seed=0 --workdir=runs/imagefolder/mcd/office31_amazon--office31_webcam/0

Any tree: `--config.source=imagefolder/<domain> --config.target=imagefolder/<domain>
--config.domain_options.root=<tree>`.

MCD owns its update (three phases per step, one optimiser state for the
network without its head and one for the two classifiers); the recipe's
learning-rate rules apply inside both (the backbone at 0.1x, the bottleneck,
``F1`` = the model's head and ``F2`` = ``classifier2`` at the full rate).
MCD's own options keep the factory's defaults (``n_gen = 4``, discrepancy
weight 1). TLlib's MCD heads are three-layer MLPs on the bottleneck; here
``F1`` and ``F2`` are single Dense layers on the 256-d bottleneck.
"""

from experiments.configs.imagefolder import recipe


def get_config(arg: str | None = None):
  """The recipe for mcd; ``arg``: quick, plumbing, method items."""
  return recipe.recipe("mcd", arg)
