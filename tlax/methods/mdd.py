r"""MDD: Margin Disparity Discrepancy.

Zhang, Liu, Long & Jordan, "Bridging Theory and Algorithm for Domain
Adaptation", ICML 2019.

The classifier ``f`` on features ``psi(x)`` gets an auxiliary (adversarial)
classifier ``f'`` on the same features. With ``h = argmax f`` the
prediction of ``f`` (a constant) and ``p' = softmax(f')``, the empirical
margin disparity discrepancy
(:func:`tlax.losses.margin_disparity_discrepancy`) is::

    D_gamma = gamma * mean_s log p'_h(x_s) + mean_t log(1 - p'_h(x_t))

``f'`` maximises it (it agrees with ``f`` on the source and disagrees on
the target); ``f`` and the features minimise the source risk plus ``eta``
times it::

    min_{f, psi}  (1/Ns) sum_i v_i CE(f(x_i), y_i) + eta * D_gamma
    max_{f'}      D_gamma

One loss does both: ``f'`` sees the features through a gradient reversal
layer with coefficient ``eta_p``, and the loss is ``CE - D_gamma``, so
``f'`` ascends ``D_gamma`` and the features descend ``eta_p * D_gamma``.
``f`` itself gets no gradient from ``D_gamma`` (it enters through
``argmax`` only), as in the paper.

Defaults (the authors' implementation and TLlib's ``mdd.py``):

* ``margin`` ``gamma = 4`` (the paper's Office-31 value and TLlib's
  default; the paper uses 2 on VisDA); swept (``hparams["margin"]``);
* ``eta_p = lambda * (2 / (1 + exp(-s / ramp_steps)) - 1)`` after ``s``
  steps: DANN's ramp (:func:`tlax.losses.grl_lambda_schedule`) over the
  fixed horizon of TLlib's warm-start reversal layer, ``ramp_steps =
  1000``, rising to ``lambda = 0.1`` with trade-off 1; swept
  (``hparams["lambda"]``). DANN's own ramp spans the whole run (``ramp_steps
  = steps / 10``); on digits trained from scratch that reaches the
  reversal while ``f`` is still at chance, and the features and ``f'``
  diverge (in a MNIST -> USPS run with DANN's ramp over 2,000 steps and the
  unshifted target term the loss was NaN at step 150), so MDD keeps the
  slower warm start;
* ``f'`` is TLlib's head on the head input ``features["embedding"]``:
  ``Dense(1024) -> ReLU -> Dropout(0.5) -> Dense(C)`` (``adv_hidden``,
  ``adv_dropout``). A linear ``f'`` (``adv_hidden = ()``) loses the game on
  LeNet digits trained from scratch: the features win both terms, the
  gradient norm grows and the loss was NaN at step 776 of 2,000 on MNIST ->
  USPS, where this ``f'`` stays stable;
* the learning-rate annealing ``mu_p = mu_0 / (1 + 10 p)^0.75`` with SGD
  momentum 0.9 is the trainer's ``optimizer.schedule = "dann"``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from tlax import losses
from tlax.methods import common
from tlax.methods import contract
from tlax.methods import networks

ADV = "adversarial_classifier"


def mdd(model, num_classes: int, *, total_steps: int,
        lambda_: float = 0.1,
        margin: float = 4.0,
        adv_hidden: Sequence[int] = (1024,),
        adv_dropout: float = 0.5,
        ramp_steps: int = 1000,
        align_start: int = 0,
        shift: float = 1e-6) -> contract.Method:
  """MDD: an adversarial auxiliary classifier behind gradient reversal.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    lambda_: the maximum reversal coefficient ``eta`` (config key
      ``lambda``; swept).
    margin: the margin factor ``gamma`` of the source disparity (swept).
    adv_hidden, adv_dropout: hidden widths (ReLU, dropout) of ``f'``;
      ``()`` is a linear ``f'``.
    ramp_steps: the reversal coefficient is ``lambda * (2 / (1 + exp(-s /
      ramp_steps)) - 1)`` after ``s`` steps of alignment (DANN's ramp over a
      fixed horizon; TLlib's warm start uses 1,000).
    align_start: steps without the discrepancy term before the ramp starts.
    shift: ``epsilon`` of the target term ``log(1 - p' + epsilon)``
      (:func:`tlax.losses.margin_disparity_discrepancy`).

  Returns:
    A :class:`tlax.methods.contract.Method` with an
    ``"adversarial_classifier"`` network (``f'``); metrics add
    ``align_loss`` (``-D_gamma``), ``align_weight`` (``eta_p``) and
    ``adv_agreement_s`` / ``adv_agreement_t`` (how often ``argmax f'`` equals
    ``argmax f`` on each domain).
  """
  if int(num_classes) < 2:
    raise ValueError(f"mdd needs at least 2 classes, got {num_classes}.")
  align_start = common.check_align_start(align_start, total_steps)
  ramp_steps = float(ramp_steps)
  if not ramp_steps > 0:
    raise ValueError(f"config.method.ramp_steps must be > 0, got "
                     f"{ramp_steps}.")
  classify = common.classifier_fn(model)
  adv = networks.DomainDiscriminator(hidden=tuple(int(w) for w in adv_hidden),
                                     dropout=float(adv_dropout),
                                     num_outputs=int(num_classes))

  def extra_init(rng, batch, params, state):
    _, feats, _ = classify(params, state, jnp.asarray(batch["xs"])[:2],
                           train=False)
    return {ADV: adv.init(rng, feats["embedding"])["params"]}, {}

  def loss(params, state, batch, rng, step, hparams):
    rng_model, rng_adv = jax.random.split(rng)
    out, state = common.forward_domains(classify, params, state, batch,
                                        rng_model)
    cls_loss, metrics = common.supervised_loss(out, batch)
    (ls, fs), (lt, ft) = out["s"], out["t"]
    s = jnp.maximum(jnp.asarray(step, jnp.float32) - align_start, 0.0)
    coeff = hparams["lambda"] * losses.grl_lambda_schedule(s / ramp_steps,
                                                           gamma=1.0)
    h = losses.gradient_reversal(
        jnp.concatenate([fs["embedding"], ft["embedding"]], 0), coeff)
    z = adv.apply({"params": params[ADV]}, h, train=True,
                  rngs={"dropout": rng_adv}).astype(jnp.float32)
    ns = ls.shape[0]
    disc = losses.margin_disparity_discrepancy(ls, z[:ns], lt, z[ns:],
                                               hparams["margin"], shift=shift)
    disc_t = losses.margin_disparity_discrepancy(ls, z[:ns], lt, z[ns:], 0.0,
                                                 shift=shift)
    value = cls_loss - disc
    agree = lambda l, a: jnp.mean(
        (jnp.argmax(l, -1) == jnp.argmax(a, -1)).astype(jnp.float32))
    metrics.update(loss=value, align_loss=-disc, align_weight=coeff,
                   disparity_s=(disc_t - disc) / jnp.maximum(
                       hparams["margin"], 1e-12),
                   disparity_t=-disc_t,
                   adv_agreement_s=agree(ls, z[:ns]),
                   adv_agreement_t=agree(lt, z[ns:]))
    return value, (metrics, state)

  predict, features = contract.eval_fns(model)
  return contract.Method(init=common.init_with(model, extra_init), loss=loss,
                         predict=predict, features=features,
                         hparams={"lambda": lambda_, "margin": margin},
                         name="mdd")
