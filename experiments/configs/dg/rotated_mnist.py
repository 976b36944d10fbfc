r"""RotatedMNIST (DomainBed): five rotations train, the sixth is held out.

Environments 0, 15, ..., 75 degrees built from the MNIST-USPS digits
(:mod:`tlax.data.dg_domains`); LeNet on 16x16 images, Adam lr 1e-3. The
argument: :mod:`experiments.configs.dg.common`.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/dg/rotated_mnist.py:erm \
    --config.seed=0 --workdir=runs/dg/erm/rotated_mnist--75/0
"""

from experiments.configs.dg import common as dg_common

DOMAINS = tuple(f"rotated_mnist/{a}" for a in (0, 15, 30, 45, 60, 75))


def get_config(arg: str | None = None):
  return dg_common.dg_config(
      "+".join(DOMAINS[:5]), DOMAINS[5], arg, **{
          "model.name": "lenet", "steps": 1000, "eval_every": 100,
          "optimizer.name": "adam", "optimizer.lr": 1e-3,
          "optimizer.schedule": "constant", "optimizer.weight_decay": 0.0})
