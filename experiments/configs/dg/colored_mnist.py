r"""ColoredMNIST (DomainBed): train on +90% and +80%, test on -90%.

Environments built from the MNIST-USPS digits (:mod:`tlax.data.dg_domains`);
LeNet on 16x16 two-channel images, Adam (DomainBed's MNIST settings: lr 1e-3,
no weight decay). The argument: :mod:`experiments.configs.dg.common`.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/dg/colored_mnist.py:irm \
    --config.seed=0 --workdir=runs/dg/irm/colored_mnist--minus90/0

Quick mode (tests): ``--config=experiments/configs/dg/colored_mnist.py:quick``.
"""

from experiments.configs.dg import common as dg_common

DOMAINS = ("colored_mnist/plus90", "colored_mnist/plus80",
           "colored_mnist/minus90")


def get_config(arg: str | None = None):
  return dg_common.dg_config(
      "+".join(DOMAINS[:2]), DOMAINS[2], arg, **{
          "model.name": "lenet", "steps": 1000, "eval_every": 100,
          "optimizer.name": "adam", "optimizer.lr": 1e-3,
          "optimizer.schedule": "constant", "optimizer.weight_decay": 0.0})
