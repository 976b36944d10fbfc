"""PixelDA: pixel-level domain adaptation with a conditional GAN.

Bousmalis, Silberman, Dohan, Erhan & Krishnan, "Unsupervised Pixel-Level
Domain Adaptation with Generative Adversarial Networks", CVPR 2017.

A generator ``G(x_s, z)`` (:class:`networks.PixelDAGenerator`, noise ``z``
uniform in [-1, 1]^10 as in the paper) maps source inputs to the target
style; a discriminator ``D`` (:class:`networks.PixelDACritic`) tells real
target inputs from generated ones; the task classifier ``T`` (the model)
learns on both the generated and the source inputs, with their source labels
and instance weights::

    min_{G,T} max_D  L_task(T; x_s, G(x_s, z)) + lambda * L_gan(D, G)
                     + content * mean (G(x_s, z) - x_s)^2

In one step of the generic trainer the min-max is written with
``stop_gradient``: ``D`` learns from ``BCE(D(x_t), 1) + BCE(D(sg(G)), 0)``
and ``G`` from the non-saturating ``BCE(sg(D)(G), 1)`` (Goodfellow et al.,
2014), so one optimiser update trains all three networks.

Defaults: the paper's loss weights are alpha = 0.013 (GAN) and beta = 0.011
(task), a ratio of about 1.2; with the task weight fixed at 1 here,
``lambda = 1``. The content-similarity loss (masked PMSE, used in the paper
for the LineMod renderings) is off by default (``content = 0``); here it is
a plain MSE to the source input (no foreground masks). The paper's
generator has 6 residual blocks of 64 filters with BatchNorm and a tanh
output; here BatchNorm is left out and the output is the input plus a
residual (see :class:`networks.PixelDAGenerator`). ``gen_features``,
``gen_blocks``, ``critic_features`` and ``noise_dim`` are
``config.method`` options; the config file makes the networks smaller for
CPU runs (and says so).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from tlax.methods import networks
from tlax.methods.base import Method
from tlax.methods.base import accuracy
from tlax.methods.base import register
from tlax.methods.base import weighted_cross_entropy


def _bce(logits, label: float):
  return jnp.mean(optax.sigmoid_binary_cross_entropy(
      logits, jnp.full_like(logits, label)))


@register
class PixelDA(Method):
  """Source -> target-style generator; classifier on generated + source."""

  name = "pixelda"
  default_hparams = {"lambda": 1.0, "content": 0.0}

  def __init__(self, ctx):
    super().__init__(ctx)
    opt = lambda k, d: networks.method_option(self, k, d)
    self.noise_dim = int(opt("noise_dim", 10))
    self.generator = networks.PixelDAGenerator(
        features=int(opt("gen_features", 64)),
        num_blocks=int(opt("gen_blocks", 6)))
    self.critic = networks.PixelDACritic(
        features=tuple(opt("critic_features", (64, 128, 256, 512))),
        hidden=tuple(opt("critic_hidden", (512, 512))),
        dropout=float(opt("critic_dropout", 0.1)))

  def _noise(self, rng, n):
    return jax.random.uniform(rng, (n, self.noise_dim), jnp.float32, -1.0, 1.0)

  def init_extra(self, rng, batch, params, state):
    rg, rc = jax.random.split(rng)
    x = jnp.asarray(batch["xs"])[:2]
    g = self.generator.init(rg, x, self._noise(rg, 2))["params"]
    c = self.critic.init(rc, x)["params"]
    return {"generator": g, "critic": c}, {}

  def generate(self, params, x, rng):
    """Source inputs rendered in the target style (for plots)."""
    return self.generator.apply({"params": params["generator"]}, x,
                                self._noise(rng, x.shape[0]))

  def loss(self, params, state, batch, rng, step, hparams):
    del step
    r_model, r_z, r_crit = jax.random.split(rng, 3)
    xs, xt = jnp.asarray(batch["xs"]), jnp.asarray(batch["xt"])
    ns = xs.shape[0]
    fake = self.generate(params, xs, r_z)
    # The task classifier on source and generated inputs (one forward).
    logits, _, state = self.classifier(params, state,
                                       jnp.concatenate([xs, fake], 0),
                                       train=True, rng=r_model)
    ws = batch.get("ws")
    cls_src = weighted_cross_entropy(logits[:ns], batch["ys"], ws)
    cls_fake = weighted_cross_entropy(logits[ns:], batch["ys"], ws)
    cls_loss = 0.5 * (cls_src + cls_fake)
    if "xtl" in batch:
      logits_tl, _, state = self.classifier(params, state, batch["xtl"],
                                            train=True, rng=r_model)
      cls_loss = cls_loss + weighted_cross_entropy(logits_tl, batch["ytl"])
    # The discriminator on real target vs stopped generated inputs ...
    crit = lambda p, x: self.critic.apply({"params": p}, x, train=True,
                                          rngs={"dropout": r_crit})
    d_in = jnp.concatenate([xt, jax.lax.stop_gradient(fake)], 0)
    d_logits = crit(params["critic"], d_in)
    nt = xt.shape[0]
    d_loss = 0.5 * (_bce(d_logits[:nt], 1.0) + _bce(d_logits[nt:], 0.0))
    # ... and the generator against the stopped discriminator.
    g_logits = crit(jax.lax.stop_gradient(params["critic"]), fake)
    g_loss = _bce(g_logits, 1.0)
    content = jnp.mean(jnp.square(fake - xs))
    gan = d_loss + g_loss
    loss = cls_loss + hparams["lambda"] * gan + hparams["content"] * content
    metrics = {
        "loss": loss, "cls_loss": cls_loss, "align_loss": gan,
        "align_weight": hparams["lambda"], "d_loss": d_loss, "g_loss": g_loss,
        "content_loss": content,
        "source_acc": accuracy(logits[:ns], batch["ys"]),
        "generated_acc": accuracy(logits[ns:], batch["ys"]),
        "d_acc": 0.5 * (jnp.mean((d_logits[:nt] > 0).astype(jnp.float32))
                        + jnp.mean((d_logits[nt:] < 0).astype(jnp.float32))),
    }
    return loss, (metrics, state)
