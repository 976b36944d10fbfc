"""DSN: Domain Separation Networks.

Bousmalis, Trigeorgis, Silberman, Krishnan & Erhan, "Domain Separation
Networks", NeurIPS 2016.

The classifier's feature extractor is the *shared* encoder ``E_c`` (its
head input, ``"embedding"``, is the shared code ``h_c``); each domain has a
*private* encoder ``E_p^s``, ``E_p^t`` (:class:`networks.PrivateEncoder`,
code of the same size); a *shared decoder* ``D`` (:class:`networks.SharedDecoder`)
reconstructs each input from ``h_c + h_p``::

    loss = L_task + alpha L_recon + beta L_difference + gamma L_similarity

* ``L_task``: the weighted source risk (instance weights ``v_i``);
* ``L_recon``: the scale-invariant MSE ``(1/k)||x - x_hat||^2 -
  (1/k^2)(sum(x - x_hat))^2`` (per example, averaged), on both domains;
* ``L_difference``: the soft orthogonality ``||H_c^T H_p||_F^2`` between
  the shared and private codes of a batch, per domain, computed as in the
  released TensorFlow code (``difference_loss``: each code centred over the
  batch and its rows scaled to unit norm, then the mean of the squared
  entries of the correlation matrix);
* ``L_similarity``: the DANN loss on the shared codes (gradient reversal +
  domain classifier, the paper's best variant), with the reversal ramped by
  DANN's ``2 / (1 + exp(-10 p)) - 1`` (the released ports switch it on
  after a fixed number of steps instead).

Defaults ``alpha = 0.01``, ``beta = 0.075``, ``gamma = 0.25``: the values of
the widely used PyTorch port (fungtion/DSN) for MNIST -> MNIST-M; the
official README's MNIST -> MNIST-M command uses ``gamma = 0.251``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from tlax import losses
from tlax.methods import common
from tlax.methods import contract
from tlax.methods import networks


def dsn(model, num_classes: int, *, total_steps: int,
        alpha: float = 0.01,
        beta: float = 0.075,
        gamma: float = 0.25,
        shared_layer: str = "embedding",
        private_hidden: Sequence[int] = (256,),
        decoder_hidden: Sequence[int] = (256,),
        disc_hidden: Sequence[int] = (1024, 1024),
        disc_dropout: float = 0.5,
        grl_gamma: float = 10.0,
        align_start: int = 0) -> contract.Method:
  """DSN: shared/private encoders, shared decoder, difference + similarity.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    alpha, beta, gamma: weights of the reconstruction, difference and
      similarity losses (swept).
    shared_layer: the shared code ``h_c`` (a layer of the classifier).
    private_hidden, decoder_hidden: MLP widths of the private encoders and
      the decoder on feature vectors.
    disc_hidden, disc_dropout, grl_gamma, align_start: the DANN similarity
      loss, as :func:`tlax.methods.dann.dann`.

  Returns:
    A :class:`tlax.methods.contract.Method`.
  """
  del num_classes
  common.check_align_start(align_start, total_steps)
  classify = common.classifier_fn(model)
  disc = networks.DomainDiscriminator(hidden=tuple(disc_hidden),
                                      dropout=float(disc_dropout))

  def nets(code_dim, x_shape):
    private = networks.PrivateEncoder(code_dim, hidden=tuple(private_hidden))
    decoder = networks.SharedDecoder(out_shape=tuple(x_shape),
                                     hidden=tuple(decoder_hidden))
    return private, decoder

  def extra_init(rng, batch, params, state):
    x = jnp.asarray(batch["xs"])[:2]
    logits, feats, _ = classify(params, state, x, train=False)
    code = common.select_layer(shared_layer, logits, feats)
    private, decoder = nets(code.shape[-1], x.shape[1:])
    r1, r2, r3, r4 = jax.random.split(rng, 4)
    extra = {
        "private_source": private.init(r1, x)["params"],
        "private_target": private.init(r2, x)["params"],
        "decoder": decoder.init(r3, code)["params"],
        "discriminator": disc.init(r4, code)["params"],
    }
    return extra, {}

  def loss(params, state, batch, rng, step, hparams):
    rng_model, rng_disc = jax.random.split(rng)
    out, state = common.forward_domains(classify, params, state, batch,
                                        rng_model)
    cls_loss, metrics = common.supervised_loss(out, batch)
    xs, xt = jnp.asarray(batch["xs"]), jnp.asarray(batch["xt"])
    hc_s = common.select_layer(shared_layer, *out["s"])
    hc_t = common.select_layer(shared_layer, *out["t"])
    private, decoder = nets(hc_s.shape[-1], xs.shape[1:])
    hp_s = private.apply({"params": params["private_source"]}, xs)
    hp_t = private.apply({"params": params["private_target"]}, xt)
    dec = lambda h: decoder.apply({"params": params["decoder"]}, h)
    recon = (losses.scale_invariant_mse(xs, dec(hc_s + hp_s))
             + losses.scale_invariant_mse(xt, dec(hc_t + hp_t)))
    diff = (losses.difference_loss(hc_s, hp_s)
            + losses.difference_loss(hc_t, hp_t))
    coeff = common.alignment_schedule(step, total_steps, align_start,
                                      gamma=float(grl_gamma))
    h = losses.gradient_reversal(jnp.concatenate([hc_s, hc_t], 0), coeff)
    d = disc.apply({"params": params["discriminator"]}, h, train=True,
                   rngs={"dropout": rng_disc})
    ns = hc_s.shape[0]
    sim = losses.dann_domain_loss(d[:ns], d[ns:])
    value = (cls_loss + hparams["alpha"] * recon + hparams["beta"] * diff
             + hparams["gamma"] * sim)
    metrics.update(loss=value, recon_loss=recon, difference_loss=diff,
                   similarity_loss=sim, align_loss=sim,
                   align_weight=hparams["gamma"] * coeff,
                   domain_acc=0.5 * (
                       jnp.mean((d[:ns] > 0).astype(jnp.float32))
                       + jnp.mean((d[ns:] < 0).astype(jnp.float32))))
    return value, (metrics, state)

  predict, features = contract.eval_fns(model)
  return contract.Method(
      init=common.init_with(model, extra_init), loss=loss, predict=predict,
      features=features, name="dsn",
      hparams={"alpha": alpha, "beta": beta, "gamma": gamma})
