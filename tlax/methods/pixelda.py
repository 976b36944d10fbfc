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

In one step the min-max is written with ``stop_gradient``: ``D`` learns from ``BCE(D(x_t), 1) + BCE(D(sg(G)), 0)``
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
``gen_blocks``, ``critic_features`` and ``noise_dim`` are options of
:func:`pixelda`; the config file makes the networks smaller for CPU runs
(and says so). :func:`generate` renders source inputs in the target style
(for plots).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from tlax.methods import common
from tlax.methods import contract
from tlax.methods import networks


def _bce(logits, label: float):
  return jnp.mean(optax.sigmoid_binary_cross_entropy(
      logits, jnp.full_like(logits, label)))


def _noise(rng, n, noise_dim):
  return jax.random.uniform(rng, (n, noise_dim), jnp.float32, -1.0, 1.0)


def generate(params, x, rng, *, gen_features: int = 64, gen_blocks: int = 6,
             noise_dim: int = 10):
  """Source inputs ``x`` rendered in the target style by a trained
  :func:`pixelda` (``params["generator"]``; the options as given to it)."""
  generator = networks.PixelDAGenerator(features=int(gen_features),
                                        num_blocks=int(gen_blocks))
  return generator.apply({"params": params["generator"]}, x,
                         _noise(rng, x.shape[0], int(noise_dim)))


def pixelda(model, num_classes: int, *, total_steps: int,
            lambda_: float = 1.0,
            content: float = 0.0,
            noise_dim: int = 10,
            gen_features: int = 64,
            gen_blocks: int = 6,
            critic_features: Sequence[int] = (64, 128, 256, 512),
            critic_hidden: Sequence[int] = (512, 512),
            critic_dropout: float = 0.1) -> contract.Method:
  """PixelDA: a source -> target-style generator; the classifier learns on
  generated and source inputs.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    lambda_: weight of the GAN losses (config key ``lambda``; swept).
    content: weight of the content-similarity MSE (swept).
    noise_dim: size of the noise ``z``.
    gen_features, gen_blocks: the generator's width and residual blocks.
    critic_features, critic_hidden, critic_dropout: the discriminator.

  Returns:
    A :class:`tlax.methods.contract.Method`.
  """
  del num_classes, total_steps
  noise_dim = int(noise_dim)
  generator = networks.PixelDAGenerator(features=int(gen_features),
                                        num_blocks=int(gen_blocks))
  critic = networks.PixelDACritic(features=tuple(critic_features),
                                  hidden=tuple(critic_hidden),
                                  dropout=float(critic_dropout))
  classify = common.classifier_fn(model)

  def extra_init(rng, batch, params, state):
    del params, state
    rg, rc = jax.random.split(rng)
    x = jnp.asarray(batch["xs"])[:2]
    g = generator.init(rg, x, _noise(rg, 2, noise_dim))["params"]
    c = critic.init(rc, x)["params"]
    return {"generator": g, "critic": c}, {}

  def loss(params, state, batch, rng, step, hparams):
    del step
    r_model, r_z, r_crit = jax.random.split(rng, 3)
    xs, xt = jnp.asarray(batch["xs"]), jnp.asarray(batch["xt"])
    ns = xs.shape[0]
    fake = generator.apply({"params": params["generator"]}, xs,
                           _noise(r_z, ns, noise_dim))
    # The task classifier on source and generated inputs (one forward).
    logits, _, state = classify(params, state, jnp.concatenate([xs, fake], 0),
                                train=True, rng=r_model)
    ws = batch.get("ws")
    cls_src = contract.weighted_cross_entropy(logits[:ns], batch["ys"], ws)
    cls_fake = contract.weighted_cross_entropy(logits[ns:], batch["ys"], ws)
    cls_loss = 0.5 * (cls_src + cls_fake)
    if "xtl" in batch:
      logits_tl, _, state = classify(params, state, batch["xtl"], train=True,
                                     rng=r_model)
      cls_loss = cls_loss + contract.weighted_cross_entropy(logits_tl,
                                                            batch["ytl"])
    # The discriminator on real target vs stopped generated inputs ...
    crit = lambda p, x: critic.apply({"params": p}, x, train=True,
                                     rngs={"dropout": r_crit})
    d_in = jnp.concatenate([xt, jax.lax.stop_gradient(fake)], 0)
    d_logits = crit(params["critic"], d_in)
    nt = xt.shape[0]
    d_loss = 0.5 * (_bce(d_logits[:nt], 1.0) + _bce(d_logits[nt:], 0.0))
    # ... and the generator against the stopped discriminator.
    g_logits = crit(jax.lax.stop_gradient(params["critic"]), fake)
    g_loss = _bce(g_logits, 1.0)
    content_loss = jnp.mean(jnp.square(fake - xs))
    gan = d_loss + g_loss
    value = (cls_loss + hparams["lambda"] * gan
             + hparams["content"] * content_loss)
    metrics = {
        "loss": value, "cls_loss": cls_loss, "align_loss": gan,
        "align_weight": hparams["lambda"], "d_loss": d_loss, "g_loss": g_loss,
        "content_loss": content_loss,
        "source_acc": contract.accuracy(logits[:ns], batch["ys"]),
        "generated_acc": contract.accuracy(logits[ns:], batch["ys"]),
        "d_acc": 0.5 * (jnp.mean((d_logits[:nt] > 0).astype(jnp.float32))
                        + jnp.mean((d_logits[nt:] < 0).astype(jnp.float32))),
    }
    return value, (metrics, state)

  predict, features = contract.eval_fns(model)
  return contract.Method(
      init=common.init_with(model, extra_init), loss=loss, predict=predict,
      features=features, name="pixelda",
      hparams={"lambda": lambda_, "content": content})
