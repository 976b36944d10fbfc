r"""Classification by comparison: prototype heads, prototypical networks,
supervised contrastive learning.

A linear head gives every feature a fixed meaning per class ("yellow means
chicken"); a classifier that compares an image with examples of each class
(prototypes) or learns an embedding where same-class images are close
(contrastive learning) is the source material's proposal against semantic
bias. Three factories of the method contract (:mod:`tlax.methods.contract`):

* :func:`prototype_head`: a cosine classifier, learned class prototypes
  :math:`w_k` and logits :math:`\cos(f(x), w_k) / \tau`, trained with
  cross-entropy.
* :func:`protonet`: prototypical networks (Snell et al., 2017): each
  source batch is an episode, its first ``support_fraction`` the support
  set, the rest the queries (:func:`tlax.losses.prototypical_loss`);
  ``n_way > 0`` restricts each episode to ``n_way`` random classes.
* :func:`supcon`: supervised contrastive learning (Khosla et al., 2020) on
  the source embeddings (:func:`tlax.losses.supervised_contrastive`), with
  an optional cross-entropy term on the network's own head.

All three predict with the nearest class mean in embedding space: class
means of the source embeddings, kept as an exponential moving average in
the method state (``state["prototypes"]``); :func:`prototype_head` predicts
with its learned prototypes. All three take the same two transfer terms:

* ``align`` (``"coral"`` or ``"mmd"``, weight ``lambda``): an alignment loss
  between source and target embeddings (:func:`tlax.losses.coral`,
  :func:`tlax.losses.mk_mmd`);
* ``ssl_weight``: a self-supervised contrastive term (NT-Xent,
  :func:`tlax.losses.nt_xent`) over source and target images together, two
  views by random translation and Gaussian noise: it relates each domain's
  features to the shared ones without labels; on RGB images the views also
  differ in colour (``colour_jitter``), so the term asks for colour-invariant
  embeddings without any class label.

References:
  Snell, Swersky & Zemel, Prototypical Networks for Few-shot Learning,
  NeurIPS 2017. Khosla et al., Supervised Contrastive Learning, NeurIPS
  2020. Chen et al., A Simple Framework for Contrastive Learning of Visual
  Representations, ICML 2020.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tlax import losses
from tlax.losses import contrastive
from tlax.methods import contract

ALIGNMENTS = ("none", "coral", "mmd")


def _check(align, metric, momentum):
  if align not in ALIGNMENTS:
    raise ValueError(f"Unknown align {align!r}; use one of "
                     f"{', '.join(ALIGNMENTS)}.")
  if metric not in ("euclidean", "cosine"):
    raise ValueError(f"Unknown metric {metric!r}; use 'euclidean' or "
                     "'cosine'.")
  if not 0.0 <= momentum < 1.0:
    raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")


def _check_temperature(**temperatures) -> None:
  for name, t in temperatures.items():
    if not isinstance(t, (int, float)) or not 0.0 < t < float("inf"):
      raise ValueError(f"{name} must be a finite number > 0 (it divides the "
                       f"logits), got {t!r}.")


def _views(x, rng, shift: int, noise: float, colour_jitter: bool = True):
  """A random view of every example: translation by up to ``shift`` pixels,
  colour distortion (RGB images: a random channel order and per-channel
  gains in [0.3, 1], SimCLR's strongest augmentation) and Gaussian noise."""
  k1, k2, k3, k4 = jax.random.split(rng, 4)
  if x.ndim == 4 and x.shape[-1] == 3 and colour_jitter:
    perm = jax.vmap(lambda k: jax.random.permutation(k, 3))(
        jax.random.split(k3, x.shape[0]))
    x = jnp.take_along_axis(x, perm[:, None, None, :], -1)
    x = x * jax.random.uniform(k4, (x.shape[0], 1, 1, 3), x.dtype, 0.3, 1.0)
  if x.ndim == 4 and shift > 0:
    d = jax.random.randint(k1, (x.shape[0], 2), -shift, shift + 1)
    x = jax.vmap(lambda im, s: jnp.roll(im, (s[0], s[1]), (0, 1)))(x, d)
  return x + noise * jax.random.normal(k2, x.shape, x.dtype)


def _build(model, num_classes, *, name, main_loss, metric, temperature,
           momentum, align, lambda_, ssl_weight, ssl_temperature, shift,
           noise, colour_jitter=True, learned_prototypes=False):
  """The shared init / loss / predict of the three factories."""
  _check(align, metric, momentum)
  _check_temperature(temperature=temperature, ssl_temperature=ssl_temperature)
  c = int(num_classes)

  def embed(params, state, x, train, rng=None):
    logits, feats, state = contract.apply_classifier(model, params, state, x,
                                                     train=train, rng=rng)
    return feats["embedding"], logits, state

  def init(rng, batch):
    k_model, k_proto = jax.random.split(rng)
    params, state = contract.init_classifier(model, k_model, batch["xs"])
    emb = embed(params, state, batch["xs"][:1], False)[0]
    d = emb.shape[-1]
    state = {**state, "prototypes": jnp.zeros((c, d), jnp.float32),
             "seen": jnp.zeros((c,), jnp.float32)}
    if learned_prototypes:
      params = {**params, "prototypes": 0.1 * jax.random.normal(
          k_proto, (c, d), jnp.float32)}
    return params, state

  def update_prototypes(state, emb, ys):
    e = jax.lax.stop_gradient(emb)
    if metric == "cosine":
      e = contrastive.l2_normalize(e)
    means, counts = contrastive.class_prototypes(e, ys, c)
    present = (counts > 0)[:, None]
    old, seen = state["prototypes"], state["seen"][:, None] > 0
    mixed = jnp.where(seen, momentum * old + (1 - momentum) * means, means)
    return {**state, "prototypes": jnp.where(present, mixed, old),
            "seen": state["seen"] + (counts > 0)}

  def loss(params, state, batch, rng, step, hparams):
    del step
    k_drop, k_main, k_v1, k_v2, k_drop2 = jax.random.split(rng, 5)
    xs, ys = batch["xs"], batch["ys"]
    emb_s, logits, state = embed(params, state, xs, True, k_drop)
    value, metrics = main_loss(params, emb_s, logits, ys, batch, k_main)
    if align != "none" or ssl_weight > 0:
      emb_t, _, state = embed(params, state, batch["xt"], True, k_drop2)
    if align != "none":
      term = (losses.coral(emb_s, emb_t) if align == "coral"
              else losses.mk_mmd(emb_s, emb_t))
      value = value + hparams["lambda"] * term
      metrics["align"] = term
    if ssl_weight > 0:
      x = jnp.concatenate([xs, batch["xt"]], 0)
      v1, _, state = embed(params, state,
                           _views(x, k_v1, shift, noise, colour_jitter), True,
                           k_v1)
      v2, _, state = embed(params, state,
                           _views(x, k_v2, shift, noise, colour_jitter), True,
                           k_v2)
      term = contrastive.masked_mean(*contrastive.nt_xent(v1, v2,
                                                          ssl_temperature))
      value = value + ssl_weight * term
      metrics["ssl"] = term
    state = update_prototypes(state, emb_s, ys)
    return value, (metrics, state)

  def features(params, state, x):
    emb, logits, _ = embed(params, state, x, False)
    return {"embedding": emb, "logits": logits}

  def predict(params, state, x):
    emb = embed(params, state, x, False)[0]
    protos = params["prototypes"] if learned_prototypes else state[
        "prototypes"]
    return contrastive.prototype_logits(emb, protos, metric, temperature)

  return contract.Method(init=init, loss=loss, predict=predict,
                         features=features, hparams={"lambda": lambda_},
                         name=name)


def prototype_head(model, num_classes, *, total_steps, temperature=0.1,
                   align="none", lambda_=1.0, ssl_weight=0.0,
                   ssl_temperature=0.1, shift=2, noise=0.1, colour_jitter=True,
                   momentum=0.9):
  """Cosine prototype classifier trained with cross-entropy (module doc).

  Args:
    model: a :mod:`tlax.models` network (its own head is not used).
    num_classes: number of classes.
    total_steps: unused (no schedule).
    temperature: :math:`\\tau` of the cosine logits.
    align, lambda_, ssl_weight, ssl_temperature, shift, noise,
      colour_jitter: the transfer
      terms (module doc).
    momentum: of the class-mean EMA kept for inspection.

  Returns:
    A :class:`tlax.methods.contract.Method`.
  """
  del total_steps

  def main_loss(params, emb, logits, ys, batch, rng):
    del logits, rng
    z = contrastive.prototype_logits(emb, params["prototypes"], "cosine",
                                     temperature)
    value = contract.weighted_cross_entropy(z, ys, batch["ws"])
    return value, {"source_acc": contract.accuracy(z, ys)}

  return _build(model, num_classes, name="prototype_head",
                main_loss=main_loss, metric="cosine", temperature=temperature,
                momentum=momentum, align=align, lambda_=lambda_,
                ssl_weight=ssl_weight, ssl_temperature=ssl_temperature,
                shift=shift, noise=noise,
                colour_jitter=colour_jitter, learned_prototypes=True)


def protonet(model, num_classes, *, total_steps, n_way=0,
             support_fraction=0.5, metric="euclidean", temperature=1.0,
             momentum=0.9, align="none", lambda_=1.0, ssl_weight=0.0,
             ssl_temperature=0.1, shift=2, noise=0.1, colour_jitter=True):
  """Prototypical networks, one episode per source batch (module doc).

  Args:
    model, num_classes, total_steps: the contract's arguments.
    n_way: classes per episode, drawn at random each step; 0 uses every
      class with a support example in the batch.
    support_fraction: the share of the batch used as the support set.
    metric, temperature: of :func:`tlax.losses.prototype_logits`.
    momentum: of the class-mean EMA used to predict.
    align, lambda_, ssl_weight, ssl_temperature, shift, noise,
      colour_jitter: the transfer
      terms (module doc).

  Returns:
    A :class:`tlax.methods.contract.Method`.
  """
  del total_steps
  if not 0.0 < support_fraction < 1.0:
    raise ValueError(f"support_fraction must be in (0, 1), got "
                     f"{support_fraction!r}.")
  if not 0 <= int(n_way) <= int(num_classes):
    raise ValueError(f"n_way must be in [0, num_classes={num_classes}], got "
                     f"{n_way!r}.")

  def main_loss(params, emb, logits, ys, batch, rng):
    del params, logits, batch
    n = emb.shape[0]
    is_support = jnp.arange(n) < max(1, int(round(support_fraction * n)))
    class_mask = None
    if n_way:
      chosen = jax.random.permutation(rng, num_classes)[:n_way]
      class_mask = jnp.zeros((num_classes,), bool).at[chosen].set(True)
    per, valid = contrastive.prototypical_loss(
        emb, ys, is_support, num_classes, metric=metric,
        temperature=temperature, class_mask=class_mask)
    return contrastive.masked_mean(per, valid), {
        "episode_queries": jnp.sum(valid).astype(jnp.float32)}

  return _build(model, num_classes, name="protonet", main_loss=main_loss,
                metric=metric, temperature=temperature, momentum=momentum,
                align=align, lambda_=lambda_, ssl_weight=ssl_weight,
                ssl_temperature=ssl_temperature, shift=shift, noise=noise,
                colour_jitter=colour_jitter)


def supcon(model, num_classes, *, total_steps, temperature=0.1,
           ce_weight=0.0, momentum=0.9, align="none", lambda_=1.0,
           ssl_weight=0.0, ssl_temperature=0.1, shift=2, noise=0.1,
           colour_jitter=True):
  """Supervised contrastive learning with a prototype head (module doc).

  Args:
    model, num_classes, total_steps: the contract's arguments.
    temperature: :math:`\\tau` of SupCon and of the cosine prototype logits.
    ce_weight: weight of a cross-entropy term on the network's own head.
    momentum: of the class-mean EMA used to predict.
    align, lambda_, ssl_weight, ssl_temperature, shift, noise,
      colour_jitter: the transfer
      terms (module doc).

  Returns:
    A :class:`tlax.methods.contract.Method`.
  """
  del total_steps

  def main_loss(params, emb, logits, ys, batch, rng):
    del params, rng
    per, has_pos = contrastive.supervised_contrastive(emb, ys, temperature)
    value = contrastive.masked_mean(per, has_pos)
    metrics = {"supcon": value}
    if ce_weight:
      value = value + ce_weight * contract.weighted_cross_entropy(
          logits, ys, batch["ws"])
    return value, metrics

  return _build(model, num_classes, name="supcon", main_loss=main_loss,
                metric="cosine", temperature=temperature, momentum=momentum,
                align=align, lambda_=lambda_, ssl_weight=ssl_weight,
                ssl_temperature=ssl_temperature, shift=shift, noise=noise,
                colour_jitter=colour_jitter)

