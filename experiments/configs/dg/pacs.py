r"""PACS (DomainBed's folder layout): three domains train, sketch held out.

Images read from ``$TLAX_DATA_DIR/pacs`` resized to 32x32 (cached), a
ResNet-free LeNet trained from scratch (no pretrained weights offline), Adam
lr 1e-3. The argument: :mod:`experiments.configs.dg.common`.

COMMAND:
  python -m experiments.run --config=experiments/configs/dg/pacs.py:erm \
    --config.seed=0 --workdir=runs/dg/erm/pacs--sketch/0
"""

from experiments.configs.dg import common as dg_common

DOMAINS = ("pacs/art_painting", "pacs/cartoon", "pacs/photo", "pacs/sketch")


def get_config(arg: str | None = None):
  return dg_common.dg_config(
      "+".join(DOMAINS[:3]), DOMAINS[3], arg, **{
          "model.name": "lenet", "image_size": 32, "steps": 1000,
          "eval_every": 100, "optimizer.name": "adam", "optimizer.lr": 1e-3,
          "optimizer.schedule": "constant", "optimizer.weight_decay": 0.0})
