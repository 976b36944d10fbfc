r"""Domain generalisation: train on several labelled domains, test on an unseen one.

The algorithms of DomainBed (Gulrajani & Lopez-Paz, "In Search of Lost Domain
Generalization", ICLR 2021) as factories of the method contract
(:mod:`tlax.methods.contract`). They train on the batches of a multi-domain
task (:func:`tlax.data.make_dg_task`): ``xs`` holds ``B/D`` examples of each
of the ``D`` training domains, grouped by domain (rows ``d*B/D ..
(d+1)*B/D - 1`` are domain ``d``), ``ds`` their domain index. The trainer
passes ``num_domains = D`` to every factory here; the unlabelled stream
``xt`` is never read (the test domain is unseen).

Per-domain risks :math:`R_e = \frac{1}{n_e}\sum_{i\in e}
\mathrm{CE}(f(x_i), y_i)` are the building block:

=========== ==============================================================
erm         :math:`\frac1D\sum_e R_e` (Vapnik, 1998)
irm         :math:`\frac1D\sum_e R_e + \lambda\,\|\nabla_{w|w=1}
            R_e(w f)\|^2` (Arjovsky et al., 2019)
vrex        :math:`\frac1D\sum_e R_e + \lambda\,\mathrm{Var}_e(R_e)`
            (Krueger et al., ICML 2021)
group_dro   :math:`\sum_e q_e R_e`, :math:`q_e \propto q_e e^{\eta R_e}`
            (Sagawa et al., ICLR 2020)
mixup       inter-domain Mixup of pairs of domains (Yan et al., 2020)
mldg        meta-learning: meta-train on one domain, meta-test on another,
            first order (Li et al., AAAI 2018); owns its update
coral       :math:`\frac1D\sum_e R_e + \lambda` mean over domain pairs of
            mean and covariance differences (Sun & Saenko, 2016)
mmd         the same with Gaussian-kernel MMD (Li et al., CVPR 2018)
dann        adversarial domain classifier over the ``D`` domains through
            gradient reversal (Ganin et al., JMLR 2016)
cdann       the same, conditioned on the class (Li et al., ECCV 2018)
mixstyle    mixes instance feature statistics across domains (Zhou et al.,
            ICLR 2021), here on the input channels
fishr       matches the per-domain variance of the classifier's gradients
            (Rame et al., ICML 2022)
rsc         representation self-challenging (Huang et al., ECCV 2020)
selfreg     same-class feature and logit self-supervision (Kim et al.,
            ICCV 2021)
=========== ==============================================================

Every method's ``features``/``predict`` are the classifier's own; the
classification head is the ``head`` Dense of :mod:`tlax.models`, applied to
``features["embedding"]`` where a method needs it separately (fishr, rsc).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import optax

from tlax import losses
from tlax.methods import contract
from tlax.methods import networks

Array = jax.Array

# DomainBed's MMD kernel: sum over gamma of exp(-gamma ||x - y||^2).
MMD_GAMMAS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


# ---------------------------------------------------------------------------
# Pure losses (NumPy references in tests/test_generalization.py).
# ---------------------------------------------------------------------------
def per_domain(values: Array, num_domains: int) -> Array:
  """``(B, ...)`` rows grouped by domain -> ``(D, B/D, ...)``."""
  return values.reshape(num_domains, -1, *values.shape[1:])


def domain_risks(logits: Array, labels: Array, num_domains: int) -> Array:
  """``(D,)`` mean cross-entropy of each domain's rows (grouped batch)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return jnp.mean(per_domain(ce, num_domains), axis=1)


def irm_penalty(logits: Array, labels: Array) -> Array:
  r"""IRMv1 penalty of one domain, DomainBed's unbiased two-half estimate.

  .. math:: \nabla_w R^{(1)}(w\,f)\big|_{w=1} \cdot
            \nabla_w R^{(2)}(w\,f)\big|_{w=1}

  where :math:`R^{(1)}, R^{(2)}` are the mean cross-entropies of the even
  and odd rows; the product of the two half-batch gradients is an unbiased
  estimate of :math:`\|\nabla_w R\|^2`.

  Args:
    logits: (n, C) logits of one domain.
    labels: (n,) integer labels.

  Returns:
    Scalar penalty.

  References:
    Arjovsky et al., Invariant Risk Minimization, arXiv:1907.02893, 2019.
  """
  def risk(w, lo, y):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        lo * w, y))
  g1 = jax.grad(risk)(1.0, logits[0::2], labels[0::2])
  g2 = jax.grad(risk)(1.0, logits[1::2], labels[1::2])
  return g1 * g2


def vrex_penalty(risks: Array) -> Array:
  r"""V-REx penalty :math:`\frac1D\sum_e (R_e - \bar R)^2` (the variance).

  References:
    Krueger et al., Out-of-Distribution Generalization via Risk
    Extrapolation (REx), ICML 2021.
  """
  return jnp.mean(jnp.square(risks - jnp.mean(risks)))


def group_dro_weights(q: Array, risks: Array, eta) -> Array:
  r"""Group DRO's exponentiated-gradient step :math:`q_e \propto q_e
  e^{\eta R_e}` (normalised to sum 1; the risks are not differentiated).

  References:
    Sagawa et al., Distributionally Robust Neural Networks for Group Shifts,
    ICLR 2020.
  """
  q = q * jnp.exp(eta * jax.lax.stop_gradient(risks))
  return q / jnp.sum(q)


def penalty_weight(lam, step, anneal_steps: int):
  """IRM/VREx/Fishr schedule: 1 for the first ``anneal_steps``, then ``lam``."""
  return jnp.where(step >= anneal_steps, lam, 1.0)


def with_optimizer_reset(method: contract.Method, at_step: int,
                         enabled=True) -> contract.Method:
  """``method`` with its optimiser state reset at step ``at_step``.

  DomainBed restarts Adam when the IRM, VREx and Fishr penalty weights switch
  on, because its moment estimates were made for the gradients of the
  unpenalised loss. The returned method owns its update: the gradient of
  ``method.loss``, then ``tx.init(params)`` in place of the optimiser state
  at step ``at_step`` (inside the jitted step), then ``lr * tx.update``, as
  the trainer's own update. ``enabled`` False (or a bool-like 0) returns
  ``method`` unchanged.

  Raises:
    ValueError: ``enabled`` is not a bool, 0 or 1.
  """
  if isinstance(enabled, jax.core.Tracer) or enabled not in (
      True, False, 0, 1, 0.0, 1.0):
    raise ValueError(f"{method.name}: reset_optimizer must be True or False "
                     f"(or 1 / 0), got {enabled!r}.")
  if not enabled:
    return method
  at_step = int(at_step)

  def update(params, state, opt_state, batch, rng, step, hparams, *, tx, lr):
    def loss_fn(p):
      return method.loss(p, state, batch, rng, step, hparams)
    (value, (metrics, new_state)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(params)
    fresh = tx.init(params)
    opt_state = jax.tree.map(
        lambda f, o: jnp.where(step == at_step, f, o), fresh, opt_state)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, jax.tree.map(
        lambda u: (lr * u).astype(u.dtype), updates))
    leaves = [jnp.sum(jnp.square(g.astype(jnp.float32)))
              for g in jax.tree.leaves(grads)]
    return params, new_state, opt_state, {
        **metrics, "loss": value, "grad_norm": jnp.sqrt(sum(leaves))}

  return method._replace(update=update, init_opt=lambda tx, p: tx.init(p))


def mixup_pairs(x: Array, y: Array, num_domains: int, perm: Array,
                lams: Array):
  r"""Inter-domain Mixup inputs of DomainBed's random pairs of domains.

  Domain ``perm[k]`` is mixed with ``perm[(k + 1) % D]``:
  :math:`\tilde x = \lambda_k x_i + (1 - \lambda_k) x_j`.

  Args:
    x: (B, ...) inputs grouped by domain.
    y: (B,) labels.
    num_domains: ``D``.
    perm: (D,) permutation of the domains.
    lams: (D,) mixing weights.

  Returns:
    ``(x_mix, y_i, y_j, lam)``: (D, B/D, ...) mixed inputs, the two label
    sets (D, B/D) and (D,) weights.

  References:
    Yan et al., Improve Unsupervised Domain Adaptation with Mixup Training,
    arXiv:2001.00677, 2020; Wang et al., Heterogeneous Domain
    Generalization via Domain Mixup, ICASSP 2020.
  """
  xd, yd = per_domain(x, num_domains), per_domain(y, num_domains)
  xi, xj = xd[perm], xd[jnp.roll(perm, -1)]
  yi, yj = yd[perm], yd[jnp.roll(perm, -1)]
  lam = lams.reshape((-1,) + (1,) * (xi.ndim - 1))
  return lam * xi + (1.0 - lam) * xj, yi, yj, lams


def mixstyle(x: Array, perm: Array, lam: Array, eps: float = 1e-6) -> Array:
  r"""MixStyle: mixes per-instance channel statistics of two examples.

  .. math:: \mathrm{MixStyle}(x) = \gamma_{mix}\frac{x - \mu(x)}{\sigma(x)}
            + \beta_{mix},\quad \gamma_{mix} = \lambda\sigma(x) + (1-\lambda)
            \sigma(x_{\pi}),\ \beta_{mix} = \lambda\mu(x) +
            (1-\lambda)\mu(x_{\pi})

  with :math:`\mu, \sigma` the mean and standard deviation over the spatial
  positions of each channel (not differentiated).

  Args:
    x: (B, H, W, C) images or feature maps.
    perm: (B,) the partner of each row.
    lam: (B,) mixing weights.
    eps: added to the variance.

  Returns:
    (B, H, W, C) array.

  References:
    Zhou et al., Domain Generalization with MixStyle, ICLR 2021.
  """
  if x.ndim != 4:
    raise ValueError(f"mixstyle needs (B, H, W, C) images, got shape "
                     f"{x.shape}: use it with image domains.")
  mu = jax.lax.stop_gradient(jnp.mean(x, axis=(1, 2), keepdims=True))
  sig = jax.lax.stop_gradient(
      jnp.sqrt(jnp.var(x, axis=(1, 2), keepdims=True) + eps))
  lam = lam[:, None, None, None]
  mu_mix = lam * mu + (1 - lam) * mu[perm]
  sig_mix = lam * sig + (1 - lam) * sig[perm]
  return (x - mu) / sig * sig_mix + mu_mix


def mean_covariance_gap(xi: Array, xj: Array) -> Array:
  r"""DomainBed's CORAL penalty: :math:`\mathrm{mean}((\mu_i-\mu_j)^2) +
  \mathrm{mean}((C_i - C_j)^2)`; the covariance term is
  ``4 * tlax.losses.coral`` (which divides by :math:`4d^2`)."""
  mean_diff = jnp.mean(jnp.square(jnp.mean(xi, 0) - jnp.mean(xj, 0)))
  return mean_diff + 4.0 * losses.coral(xi, xj)


def gaussian_mmd(xi: Array, xj: Array) -> Array:
  r"""DomainBed's MMD penalty: biased MMD^2 with the kernel
  :math:`\sum_\gamma e^{-\gamma\|x-y\|^2}`, ``gamma`` in :data:`MMD_GAMMAS`
  (``tlax.losses.mk_mmd`` with unit kernel weights)."""
  sigmas = jnp.sqrt(0.5 / jnp.asarray(MMD_GAMMAS, jnp.float32))
  return losses.mk_mmd(xi, xj, sigmas, weights=jnp.ones(len(MMD_GAMMAS)))


def pairwise_mean(fn, feats: Array) -> Array:
  """Mean of ``fn(feats[i], feats[j])`` over domain pairs ``i < j``."""
  d = feats.shape[0]
  vals = [fn(feats[i], feats[j]) for i in range(d) for j in range(i + 1, d)]
  return jnp.mean(jnp.stack(vals))


def head_gradients(embedding: Array, logits: Array, labels: Array) -> Array:
  r"""Per-example gradients of the cross-entropy w.r.t. a linear head.

  For :math:`z = W^\top f + b`, :math:`\nabla_W \mathrm{CE} = f\,(p - e_y)^\top`
  and :math:`\nabla_b \mathrm{CE} = p - e_y`; returns them flattened and
  concatenated, shape (n, d*C + C).
  """
  delta = jax.nn.softmax(logits) - jax.nn.one_hot(labels, logits.shape[-1])
  gw = embedding[:, :, None] * delta[:, None, :]
  return jnp.concatenate([gw.reshape(len(delta), -1), delta], axis=1)


def fishr_penalty(grad_variances: Array) -> Array:
  r"""Fishr: :math:`\frac1D\sum_e \|v_e - \bar v\|^2` of the per-domain
  gradient variances ``(D, P)``.

  References:
    Rame et al., Fishr: Invariant Gradient Variances for Out-of-Distribution
    Generalization, ICML 2022.
  """
  mean = jnp.mean(grad_variances, axis=0)
  return jnp.mean(jnp.sum(jnp.square(grad_variances - mean), axis=1))


# ---------------------------------------------------------------------------
# Factories.
# ---------------------------------------------------------------------------
def _classifier(model, num_classes, name):
  predict, features = contract.eval_fns(model)

  def init(rng, batch):
    return contract.init_classifier(model, rng, batch["xs"])
  return init, predict, features


def _forward(model, params, state, x, rng):
  logits, feats, state = contract.apply_classifier(
      model, params, state, x, train=True, rng=rng)
  return logits, feats["embedding"], state


def _head(params, embedding):
  head = params["model"]["head"]
  return embedding @ head["kernel"].astype(embedding.dtype) + head["bias"]


def _metrics(logits, labels, risks, **extra):
  return {"source_acc": contract.accuracy(logits, labels),
          "erm_loss": jnp.mean(risks), **extra}


def _risk_method(name, model, num_classes, num_domains, objective,
                 hparams=None, extra_init=None):
  """A method whose loss is ``objective(risks, logits, emb, batch, ...)``."""
  init_model, predict, features = _classifier(model, num_classes, name)

  def init(rng, batch):
    params, state = init_model(rng, batch)
    if extra_init is not None:
      params, state = extra_init(rng, batch, params, state)
    return params, state

  def loss(params, state, batch, rng, step, hp):
    logits, emb, state = _forward(model, params, state, batch["xs"], rng)
    risks = domain_risks(logits, batch["ys"], num_domains)
    value, extra, state = objective(params, state, batch, rng, step, hp,
                                    logits, emb, risks)
    return value, (_metrics(logits, batch["ys"], risks, **extra), state)

  return contract.Method(init=init, loss=loss, predict=predict,
                         features=features, hparams=dict(hparams or {}),
                         name=name)


def _check_domains(num_domains, name, minimum=2):
  if num_domains is None or int(num_domains) < minimum:
    raise ValueError(
        f"{name} needs a multi-domain task with at least {minimum} training "
        f"domains (config.source = 'a+b+...'), got num_domains="
        f"{num_domains!r}.")
  return int(num_domains)


def _check_hparam(method: str, name: str, value, *, positive: bool = False,
                  at_most: float | None = None) -> None:
  """A hyper-parameter must be a finite number >= 0 (> 0, <= at_most)."""
  if isinstance(value, jax.core.Tracer):
    return  # swept values are checked by the trainer
  try:
    v = float("nan") if isinstance(value, bool) else float(value)
  except (TypeError, ValueError):
    v = float("nan")
  if not (math.isfinite(v) and (v > 0 if positive else v >= 0)
          and (at_most is None or v <= at_most)):
    low = "(0" if positive else "[0"
    high = "inf)" if at_most is None else f"{at_most:g}]"
    rng = f"{low}, {high}"
    raise ValueError(f"{method}: {name} must be a finite number in {rng}, "
                     f"got {value!r}.")


def erm(model, num_classes, *, total_steps, num_domains=None):
  """Empirical risk minimisation over the pooled training domains."""
  del total_steps
  d = _check_domains(num_domains, "erm", 1)

  def objective(params, state, batch, rng, step, hp, logits, emb, risks):
    return jnp.mean(risks), {}, state
  return _risk_method("erm", model, num_classes, d, objective)


def irm(model, num_classes, *, total_steps, num_domains=None, lambda_=100.0,
        anneal_steps=500, reset_optimizer=False):
  """IRMv1: ERM plus ``lambda`` times the mean per-domain IRM penalty
  (:func:`irm_penalty`), weight 1 for the first ``anneal_steps``; the loss
  is divided by the weight when it exceeds 1 (as the IRM authors' code).
  ``reset_optimizer``: restart the optimiser at ``anneal_steps``, as
  DomainBed does (:func:`with_optimizer_reset`)."""
  del total_steps
  d = _check_domains(num_domains, "irm")
  _check_hparam("irm", "lambda", lambda_)

  def objective(params, state, batch, rng, step, hp, logits, emb, risks):
    lo, y = per_domain(logits, d), per_domain(batch["ys"], d)
    pen = jnp.mean(jax.vmap(irm_penalty)(lo, y))
    w = penalty_weight(hp["lambda"], step, anneal_steps)
    value = (jnp.mean(risks) + w * pen) / jnp.maximum(w, 1.0)
    return value, {"penalty": pen}, state
  return with_optimizer_reset(
      _risk_method("irm", model, num_classes, d, objective,
                   {"lambda": lambda_}), anneal_steps, reset_optimizer)


def vrex(model, num_classes, *, total_steps, num_domains=None, lambda_=10.0,
         anneal_steps=500, reset_optimizer=False):
  """V-REx: ERM plus ``lambda`` times the variance of the domain risks,
  weight 1 for the first ``anneal_steps`` (loss divided by the weight).
  ``reset_optimizer``: restart the optimiser at ``anneal_steps``, as
  DomainBed does (:func:`with_optimizer_reset`)."""
  del total_steps
  d = _check_domains(num_domains, "vrex")
  _check_hparam("vrex", "lambda", lambda_)

  def objective(params, state, batch, rng, step, hp, logits, emb, risks):
    pen = vrex_penalty(risks)
    w = penalty_weight(hp["lambda"], step, anneal_steps)
    value = (jnp.mean(risks) + w * pen) / jnp.maximum(w, 1.0)
    return value, {"penalty": pen}, state
  return with_optimizer_reset(
      _risk_method("vrex", model, num_classes, d, objective,
                   {"lambda": lambda_}), anneal_steps, reset_optimizer)


def group_dro(model, num_classes, *, total_steps, num_domains=None, eta=0.01):
  """Group DRO: the risks weighted by ``q`` (kept in the state), updated by
  :func:`group_dro_weights` at every step."""
  del total_steps
  d = _check_domains(num_domains, "group_dro")
  _check_hparam("group_dro", "eta", eta)

  def extra_init(rng, batch, params, state):
    return params, {**state, "q": jnp.full((d,), 1.0 / d, jnp.float32)}

  def objective(params, state, batch, rng, step, hp, logits, emb, risks):
    q = group_dro_weights(state["q"], risks, hp["eta"])
    return jnp.dot(q, risks), {"q_max": jnp.max(q)}, {**state, "q": q}
  return _risk_method("group_dro", model, num_classes, d, objective,
                      {"eta": eta}, extra_init)


def mixup(model, num_classes, *, total_steps, num_domains=None, alpha=0.2):
  """Inter-domain Mixup (:func:`mixup_pairs`), ``lambda ~ Beta(alpha,
  alpha)`` per pair; the loss mixes the two labels' cross-entropies."""
  del total_steps
  d = _check_domains(num_domains, "mixup")
  _check_hparam("mixup", "alpha", alpha, positive=True)
  init, predict, features = _classifier(model, num_classes, "mixup")

  def loss(params, state, batch, rng, step, hp):
    k_perm, k_lam, k_model = jax.random.split(rng, 3)
    perm = jax.random.permutation(k_perm, d)
    lams = jax.random.beta(k_lam, hp["alpha"], hp["alpha"], (d,))
    xm, yi, yj, lams = mixup_pairs(batch["xs"], batch["ys"], d, perm, lams)
    logits, _, state = contract.apply_classifier(
        model, params, state, xm.reshape(batch["xs"].shape), train=True,
        rng=k_model)
    lo = per_domain(logits, d)
    ce = optax.softmax_cross_entropy_with_integer_labels
    value = jnp.mean(lams * jnp.mean(ce(lo, yi), 1)
                     + (1 - lams) * jnp.mean(ce(lo, yj), 1))
    return value, ({"mixup_loss": value}, state)
  return contract.Method(init=init, loss=loss, predict=predict,
                         features=features, hparams={"alpha": alpha},
                         name="mixup")


def mldg(model, num_classes, *, total_steps, num_domains=None, beta=1.0):
  """MLDG, first order (as DomainBed): for each random pair of domains
  ``(i, j)``, one inner step of a fresh optimiser on domain ``i``, then the
  gradient of domain ``i``'s risk at the current parameters plus ``beta``
  times the gradient of domain ``j``'s risk after the inner step; their mean
  over pairs is the update direction. Owns its update (one jitted step)."""
  del total_steps
  d = _check_domains(num_domains, "mldg")
  init, predict, features = _classifier(model, num_classes, "mldg")

  def risk(params, state, x, y, rng):
    logits, _, state = contract.apply_classifier(model, params, state, x,
                                                 train=True, rng=rng)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.mean(ce), state

  grad_fn = jax.value_and_grad(risk, has_aux=True)

  def update(params, state, opt_state, batch, rng, step, hparams, *, tx, lr):
    xd, yd = per_domain(batch["xs"], d), per_domain(batch["ys"], d)
    k_perm, rng = jax.random.split(rng)
    perm = jax.random.permutation(k_perm, d)
    total = jax.tree.map(jnp.zeros_like, params)
    objective = 0.0
    for k in range(d):
      i, j = perm[k], perm[(k + 1) % d]
      rng, k1, k2 = jax.random.split(rng, 3)
      (li, state), gi = grad_fn(params, state, xd[i], yd[i], k1)
      inner_updates, _ = tx.update(gi, tx.init(params), params)
      inner = optax.apply_updates(
          params, jax.tree.map(lambda u: lr * u, inner_updates))
      (lj, state), gj = grad_fn(inner, state, xd[j], yd[j], k2)
      total = jax.tree.map(
          lambda t, a, b: t + (a + hparams["beta"] * b) / d, total, gi, gj)
      objective = objective + (li + hparams["beta"] * lj) / d
    updates, opt_state = tx.update(total, opt_state, params)
    params = optax.apply_updates(params,
                                 jax.tree.map(lambda u: lr * u, updates))
    return params, state, opt_state, {"loss": objective}

  def loss(params, state, batch, rng, step, hparams):  # for evaluation tools
    value, state = risk(params, state, batch["xs"], batch["ys"], rng)
    return value, ({}, state)

  return contract.Method(init=init, loss=loss, predict=predict,
                         features=features, hparams={"beta": beta},
                         update=update, init_opt=lambda tx, p: tx.init(p),
                         name="mldg")


def _alignment(name, fn):
  def factory(model, num_classes, *, total_steps, num_domains=None,
              lambda_=1.0):
    del total_steps
    d = _check_domains(num_domains, name)

    def objective(params, state, batch, rng, step, hp, logits, emb, risks):
      pen = pairwise_mean(fn, per_domain(emb.astype(jnp.float32), d))
      return jnp.mean(risks) + hp["lambda"] * pen, {"penalty": pen}, state
    return _risk_method(name, model, num_classes, d, objective,
                        {"lambda": lambda_})
  factory.__name__ = name
  return factory


coral = _alignment("coral", mean_covariance_gap)
coral.__doc__ = """Deep CORAL across domains: ERM plus ``lambda`` times the
mean over domain pairs of :func:`mean_covariance_gap` of the embeddings."""
mmd = _alignment("mmd", gaussian_mmd)
mmd.__doc__ = """MMD-AAE's alignment (DomainBed "MMD"): ERM plus ``lambda``
times the mean over domain pairs of :func:`gaussian_mmd` of the embeddings."""


def _adversarial(name, conditional):
  def factory(model, num_classes, *, total_steps, num_domains=None,
              lambda_=1.0, disc_width=256):
    del total_steps
    d = _check_domains(num_domains, name)
    disc = networks.DomainDiscriminator(hidden=(disc_width, disc_width),
                                        dropout=0.0, num_outputs=d)

    def extra_init(rng, batch, params, state):
      _, emb, _ = contract.apply_classifier(model, params, state,
                                            jnp.asarray(batch["xs"]),
                                            train=False)
      emb = emb["embedding"]
      params = {**params,
                "discriminator": disc.init(jax.random.fold_in(rng, 1),
                                           emb)["params"]}
      if conditional:
        params["class_embedding"] = jnp.zeros((num_classes, emb.shape[-1]),
                                              jnp.float32)
      return params, state

    def objective(params, state, batch, rng, step, hp, logits, emb, risks):
      z = emb.astype(jnp.float32)
      weights = jnp.ones(len(z), jnp.float32)
      if conditional:
        z = z + params["class_embedding"][batch["ys"]]
        counts = jnp.bincount(batch["ys"], length=num_classes)
        weights = 1.0 / counts[batch["ys"]]
      z = losses.gradient_reversal(z, hp["lambda"])
      dlogits = disc.apply({"params": params["discriminator"]}, z)
      dce = optax.softmax_cross_entropy_with_integer_labels(dlogits,
                                                            batch["ds"])
      dloss = jnp.sum(weights * dce) / jnp.sum(weights)
      dacc = contract.accuracy(dlogits, batch["ds"])
      return jnp.mean(risks) + dloss, {"domain_loss": dloss,
                                       "domain_acc": dacc}, state
    return _risk_method(name, model, num_classes, d, objective,
                        {"lambda": lambda_}, extra_init)
  factory.__name__ = name
  return factory


dann = _adversarial("dann", conditional=False)
dann.__doc__ = """DANN over the training domains: a ``D``-way domain
classifier on the embedding, trained through a gradient reversal of weight
``lambda`` (simultaneous updates rather than DomainBed's alternating ones)."""
cdann = _adversarial("cdann", conditional=True)
cdann.__doc__ = """CDANN: DANN whose discriminator sees the embedding plus a
learned embedding of the class, with examples weighted by the inverse count of
their class in the batch (as DomainBed's CDANN)."""


def mixstyle_method(model, num_classes, *, total_steps, num_domains=None,
                    alpha=0.1, p=0.5):
  """MixStyle on the input images: with probability ``p`` per batch, every
  example takes statistics mixed (``lambda ~ Beta(alpha, alpha)``) with the
  example at the same position of the next domain (cross-domain mixing)."""
  del total_steps
  d = _check_domains(num_domains, "mixstyle")
  _check_hparam("mixstyle", "alpha", alpha, positive=True)
  _check_hparam("mixstyle", "p", p, at_most=1.0)

  def objective(params, state, batch, rng, step, hp, logits, emb, risks):
    return jnp.mean(risks), {}, state
  base = _risk_method("mixstyle", model, num_classes, d, objective,
                      {"alpha": alpha, "p": p})

  def loss(params, state, batch, rng, step, hp):
    x = batch["xs"]
    k_lam, k_on, k_model = jax.random.split(rng, 3)
    perm = jnp.roll(jnp.arange(len(x)), -(len(x) // d))
    lam = jax.random.beta(k_lam, hp["alpha"], hp["alpha"], (len(x),))
    on = jax.random.uniform(k_on) < hp["p"]
    x = jnp.where(on, mixstyle(x, perm, lam), x)
    return base.loss(params, state, {**batch, "xs": x}, k_model, step, hp)
  return base._replace(loss=loss)


def fishr(model, num_classes, *, total_steps, num_domains=None,
          lambda_=1000.0, ema=0.95, anneal_steps=1500, reset_optimizer=False):
  """Fishr: ERM plus ``lambda`` times :func:`fishr_penalty` of the per-domain
  variances of the per-example head gradients (:func:`head_gradients`),
  an exponential moving average (``ema``) of them kept in the state.
  ``reset_optimizer``: restart the optimiser at ``anneal_steps``, as
  DomainBed does (:func:`with_optimizer_reset`)."""
  del total_steps
  d = _check_domains(num_domains, "fishr")

  def extra_init(rng, batch, params, state):
    head = params["model"]["head"]
    size = head["kernel"].size + head["bias"].size
    return params, {**state, "fishr_ema": jnp.zeros((d, size), jnp.float32),
                    "fishr_count": jnp.zeros((), jnp.int32)}

  def objective(params, state, batch, rng, step, hp, logits, emb, risks):
    g = head_gradients(emb.astype(jnp.float32), logits.astype(jnp.float32),
                       batch["ys"])
    g = per_domain(g, d)
    var = jnp.mean(jnp.square(g - jnp.mean(g, 1, keepdims=True)), axis=1)
    m = jnp.where(state["fishr_count"] > 0, hp["ema"], 0.0)
    var = m * jax.lax.stop_gradient(state["fishr_ema"]) + (1 - m) * var
    pen = fishr_penalty(var)
    w = penalty_weight(hp["lambda"], step, anneal_steps)
    value = jnp.mean(risks) + w * pen
    state = {**state, "fishr_ema": jax.lax.stop_gradient(var),
             "fishr_count": state["fishr_count"] + 1}
    return value, {"penalty": pen}, state
  return with_optimizer_reset(
      _risk_method("fishr", model, num_classes, d, objective,
                   {"lambda": lambda_, "ema": ema}, extra_init), anneal_steps,
      reset_optimizer)


def rsc_mask(embedding: Array, grads: Array, logits_fn, labels: Array,
             drop_f, drop_b) -> Array:
  """RSC's mask: features whose gradient is in the top ``drop_f`` fraction
  of a row are muted, but only in the rows whose correct-class probability
  falls the most (the top ``drop_b`` fraction) when they are muted."""
  pct_f = jnp.percentile(grads, (1 - drop_f) * 100, axis=1, keepdims=True)
  mask_f = grads < pct_f
  p = jax.nn.softmax(logits_fn(embedding))
  p_muted = jax.nn.softmax(logits_fn(embedding * mask_f))
  onehot = jax.nn.one_hot(labels, p.shape[-1])
  changes = jnp.sum(p * onehot, 1) - jnp.sum(p_muted * onehot, 1)
  pct_b = jnp.percentile(changes, (1 - drop_b) * 100)
  mask_b = changes < pct_b
  return jnp.logical_or(mask_f, mask_b[:, None]).astype(embedding.dtype)


def rsc(model, num_classes, *, total_steps, num_domains=None, drop_f=1 / 3,
        drop_b=1 / 3):
  """Representation self-challenging: the cross-entropy of the head applied
  to the embedding muted by :func:`rsc_mask` (gradients of the correct-class
  logit w.r.t. the embedding choose what to mute)."""
  del total_steps
  d = _check_domains(num_domains, "rsc", 1)

  def objective(params, state, batch, rng, step, hp, logits, emb, risks):
    emb = emb.astype(jnp.float32)
    y = batch["ys"]
    head = functools.partial(_head, params)
    onehot = jax.nn.one_hot(y, num_classes)
    grads = jax.grad(lambda f: jnp.sum(head(f) * onehot))(
        jax.lax.stop_gradient(emb))
    mask = jax.lax.stop_gradient(
        rsc_mask(jax.lax.stop_gradient(emb), grads, head, y, hp["drop_f"],
                 hp["drop_b"]))
    value = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        head(emb * mask), y))
    return value, {"kept": jnp.mean(mask)}, state
  return _risk_method("rsc", model, num_classes, d, objective,
                      {"drop_f": drop_f, "drop_b": drop_b})


def same_class_permutation(labels: Array, rng) -> Array:
  """A random permutation that maps every row to a row of the same class."""
  order = jnp.argsort(labels * 2.0 + jax.random.uniform(rng, labels.shape))
  shuffled = jnp.argsort(labels * 2.0 + jax.random.uniform(
      jax.random.fold_in(rng, 1), labels.shape))
  perm = jnp.zeros_like(order).at[order].set(shuffled)
  return perm


def selfreg(model, num_classes, *, total_steps, num_domains=None):
  """SelfReg without its projection layer: ERM plus, scaled by
  ``min(ERM loss, 1)``, squared distances between each example's embedding
  and logits and those of a random same-class example (``lam`` part) and of
  a Mixup of the two (``1 - lam`` part, ``lam ~ Beta(0.5, 0.5)``)."""
  del total_steps
  d = _check_domains(num_domains, "selfreg", 1)

  def objective(params, state, batch, rng, step, hp, logits, emb, risks):
    y = batch["ys"]
    k1, k2, k3 = jax.random.split(rng, 3)
    p1 = same_class_permutation(y, k1)
    p2 = same_class_permutation(y, k2)
    lam = jax.random.beta(k3, 0.5, 0.5)
    f, z = emb.astype(jnp.float32), logits.astype(jnp.float32)
    mse = lambda a, b: jnp.mean(jnp.square(a - b))
    ind = mse(f, f[p1]) + mse(z, z[p1])
    hdl = (mse(f, lam * f + (1 - lam) * f[p2])
           + mse(z, lam * z + (1 - lam) * z[p2]))
    erm_loss = jnp.mean(risks)
    scale = jnp.minimum(jax.lax.stop_gradient(erm_loss), 1.0)
    value = erm_loss + scale * (lam * ind + (1 - lam) * hdl)
    return value, {"self_reg": ind}, state
  return _risk_method("selfreg", model, num_classes, d, objective)


# name -> factory, merged into tlax.methods.METHODS.
DG_METHODS = {
    "erm": erm, "irm": irm, "vrex": vrex, "group_dro": group_dro,
    "mixup": mixup, "mldg": mldg, "coral_dg": coral, "mmd_dg": mmd,
    "dann_dg": dann, "cdann": cdann, "mixstyle": mixstyle_method,
    "fishr": fishr, "rsc": rsc, "selfreg": selfreg,
}
