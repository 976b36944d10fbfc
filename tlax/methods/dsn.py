"""DSN: Domain Separation Networks.

Bousmalis, Trigeorgis, Silberman, Krishnan & Erhan, "Domain Separation
Networks", NeurIPS 2016.

The classifier's feature extractor is the *shared* encoder ``E_c`` (its
head input, ``"embedding"``, is the shared code ``h_c``); each domain has a
*private* encoder ``E_p^s``, ``E_p^t`` (:class:`networks.PrivateEncoder`,
code of the same size); a *shared decoder* ``D`` (:class:`networks.SharedDecoder`)
reconstructs each input from ``h_c + h_p``::

    loss = L_task + alpha L_recon + beta L_difference + gamma L_similarity

* ``L_task``: the weighted source risk (DESIGN.md's ``v_i``);
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

import jax
import jax.numpy as jnp

from tlax import losses
from tlax.methods import networks
from tlax.methods.base import Method
from tlax.methods.base import register


@register
class DSN(Method):
  """Shared/private encoders, shared decoder, difference + DANN similarity."""

  name = "dsn"
  default_hparams = {"alpha": 0.01, "beta": 0.075, "gamma": 0.25}

  def __init__(self, ctx):
    super().__init__(ctx)
    opt = lambda k, d: networks.method_option(self, k, d)
    self.shared_layer = opt("shared_layer", "embedding")
    self.private_hidden = tuple(opt("private_hidden", (256,)))
    self.decoder_hidden = tuple(opt("decoder_hidden", (256,)))
    self.disc = networks.DomainDiscriminator(
        hidden=tuple(opt("disc_hidden", (1024, 1024))),
        dropout=float(opt("disc_dropout", 0.5)))
    self.grl_gamma = float(opt("grl_gamma", 10.0))
    self.private = None
    self.decoder = None

  def _nets(self, code_dim, x_shape):
    private = networks.PrivateEncoder(code_dim, hidden=self.private_hidden)
    decoder = networks.SharedDecoder(out_shape=tuple(x_shape),
                                     hidden=self.decoder_hidden)
    return private, decoder

  def init_extra(self, rng, batch, params, state):
    x = jnp.asarray(batch["xs"])[:2]
    logits, feats, _ = self.classifier(params, state, x, train=False)
    code = networks.select_layer(self.shared_layer, logits, feats)
    private, decoder = self._nets(code.shape[-1], x.shape[1:])
    r1, r2, r3, r4 = jax.random.split(rng, 4)
    extra = {
        "private_source": private.init(r1, x)["params"],
        "private_target": private.init(r2, x)["params"],
        "decoder": decoder.init(r3, code)["params"],
        "discriminator": self.disc.init(r4, code)["params"],
    }
    return extra, {}

  def loss(self, params, state, batch, rng, step, hparams):
    rng_model, rng_disc = jax.random.split(rng)
    out, state = networks.forward_domains(self, params, state, batch,
                                          rng_model)
    cls_loss, metrics = networks.supervised_loss(out, batch)
    xs, xt = jnp.asarray(batch["xs"]), jnp.asarray(batch["xt"])
    hc_s = networks.select_layer(self.shared_layer, *out["s"])
    hc_t = networks.select_layer(self.shared_layer, *out["t"])
    private, decoder = self._nets(hc_s.shape[-1], xs.shape[1:])
    hp_s = private.apply({"params": params["private_source"]}, xs)
    hp_t = private.apply({"params": params["private_target"]}, xt)
    dec = lambda h: decoder.apply({"params": params["decoder"]}, h)
    recon = (losses.scale_invariant_mse(xs, dec(hc_s + hp_s))
             + losses.scale_invariant_mse(xt, dec(hc_t + hp_t)))
    diff = losses.difference_loss(hc_s, hp_s) + losses.difference_loss(hc_t, hp_t)
    coeff = networks.alignment_schedule(self, step, gamma=self.grl_gamma)
    h = losses.gradient_reversal(jnp.concatenate([hc_s, hc_t], 0), coeff)
    d = self.disc.apply({"params": params["discriminator"]}, h, train=True,
                        rngs={"dropout": rng_disc})
    ns = hc_s.shape[0]
    sim = losses.dann_domain_loss(d[:ns], d[ns:])
    loss = (cls_loss + hparams["alpha"] * recon + hparams["beta"] * diff
            + hparams["gamma"] * sim)
    metrics.update(loss=loss, recon_loss=recon, difference_loss=diff,
                   similarity_loss=sim, align_loss=sim,
                   align_weight=hparams["gamma"] * coeff,
                   domain_acc=0.5 * (
                       jnp.mean((d[:ns] > 0).astype(jnp.float32))
                       + jnp.mean((d[ns:] < 0).astype(jnp.float32))))
    return loss, (metrics, state)
