r"""mdd in the deep domain-adaptation recipe on an image-folder tree
(:mod:`experiments.configs.imagefolder.recipe`).

COMMAND (a torchvision ResNet-50 weight file, an Office-31 tree):
  python -m experiments.run --config=experiments/configs/imagefolder/mdd.py \
    --config.model.pretrained=resnet50.safetensors \
    --config.source=office31/amazon --config.target=office31/webcam \
    --config.seed=0 --workdir=runs/imagefolder/mdd/office31_amazon--office31_webcam/0

Any tree: `--config.source=imagefolder/<domain> --config.target=imagefolder/<domain>
--config.domain_options.root=<tree>`.

MDD's own options keep the factory's defaults: margin gamma = 4 (the
paper's Office-31 value, TLlib's default on Office-31 and Office-Home;
``--config=experiments/configs/imagefolder/mdd.py:margin=2`` for VisDA, the
paper's value there), a reversal coefficient rising to lambda = 0.1 over
TLlib's 1,000-step warm start, and TLlib's auxiliary classifier ``f'``
(Dense 1024, ReLU, dropout 0.5, Dense) on the 256-d bottleneck, learning at
the full rate. TLlib's MDD scripts differ from the recipe in the bottleneck
(1024-d on Office-31, 2048-d on Office-Home) and in the main head (the same
two-layer shape as ``f'``; the recipe's head is one Dense layer).
"""

from experiments.configs.imagefolder import recipe


def get_config(arg: str | None = None):
  """The recipe for mdd; ``arg``: quick, plumbing, method items."""
  return recipe.recipe("mdd", arg)
