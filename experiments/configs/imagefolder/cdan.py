r"""cdan in the deep domain-adaptation recipe on an image-folder tree
(:mod:`experiments.configs.imagefolder.recipe`).

COMMAND (a torchvision ResNet-50 weight file, an Office-31 tree):
  python -m experiments.run --config=experiments/configs/imagefolder/cdan.py \
    --config.model.pretrained=resnet50.safetensors \
    --config.source=office31/amazon --config.target=office31/webcam \
    --config.seed=0 --workdir=runs/imagefolder/cdan/office31_amazon--office31_webcam/0

Any tree: `--config.source=imagefolder/<domain> --config.target=imagefolder/<domain>
--config.domain_options.root=<tree>`.
"""

from experiments.configs.imagefolder import recipe


def get_config(arg: str | None = None):
  """The recipe for cdan; ``arg``: quick, plumbing, method items."""
  return recipe.recipe("cdan", arg)
