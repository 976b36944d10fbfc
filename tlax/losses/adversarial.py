r"""Adversarial domain alignment: gradient reversal (DANN), the domain
classification loss, CDAN's multilinear conditioning with entropy
weights, and MDD's margin disparity discrepancy.

Typical use inside a loss function (``disc`` is a domain discriminator)::

    lam = grl_lambda_schedule(step / num_steps)
    f = gradient_reversal(jnp.concatenate([fs, ft]), lam)
    logits = disc(params, f)[:, 0]
    loss_adv = dann_domain_loss(logits[:ns], logits[ns:])

Minimising ``loss_adv`` trains the discriminator and, through the reversed
gradient, trains the feature extractor to maximise it.

References:
  Ganin et al., Domain-Adversarial Training of Neural Networks (DANN), JMLR
  2016; Ganin and Lempitsky, Unsupervised Domain Adaptation by
  Backpropagation, ICML 2015.
  Long et al., Conditional Adversarial Domain Adaptation (CDAN), NeurIPS
  2018.
  Zhang, Liu, Long & Jordan, Bridging Theory and Algorithm for Domain
  Adaptation (MDD), ICML 2019.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp

Array = jax.Array


@jax.custom_vjp
def _reverse(x, lam):
  return x


def _reverse_fwd(x, lam):
  return x, lam


def _reverse_bwd(lam, g):
  flipped = jax.tree_util.tree_map(
      lambda t: (-lam).astype(t.dtype) * t, g)
  return flipped, jnp.zeros_like(lam)


_reverse.defvjp(_reverse_fwd, _reverse_bwd)


def gradient_reversal(x: Any, lam: Any = 1.0) -> Any:
  r"""Gradient reversal layer: identity forward, :math:`-\lambda\,g` backward.

  :math:`R_\lambda(x) = x`, :math:`\partial R_\lambda / \partial x =
  -\lambda I` (Ganin & Lempitsky 2015). ``x`` may be any pytree of arrays.
  ``lam`` is an ordinary (traceable) argument, so a schedule such as
  :func:`grl_lambda_schedule` computed from the step inside ``jit`` can feed
  it; it receives a zero gradient. A ``jax.custom_vjp``: reverse mode only
  (``jax.jvp`` / forward mode is not defined for it).

  Args:
    x: array or pytree of arrays.
    lam: scalar reversal strength :math:`\lambda` (float or traced).

  Returns:
    ``x`` unchanged.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> float(jax.grad(lambda x: gradient_reversal(x, 0.5).sum())(1.0))
    -0.5
  """
  lam = jnp.asarray(lam)
  if lam.ndim != 0:
    raise ValueError(f"gradient_reversal: lam must be a scalar; got shape "
                     f"{tuple(lam.shape)}.")
  if not jnp.issubdtype(lam.dtype, jnp.floating):
    lam = lam.astype(jnp.float32)
  return _reverse(x, lam)


def grl_lambda_schedule(progress: Any, gamma: float = 10.0,
                        max_value: float = 1.0) -> Array:
  r"""DANN's reversal schedule :math:`\lambda_p = m\,(\frac{2}{1 +
  \exp(-\gamma p)} - 1)`.

  Rises from 0 at ``progress`` p = 0 to about ``max_value`` at p = 1
  (:math:`\gamma = 10`, Ganin et al. 2016). Traceable in ``progress``.

  Args:
    progress: training progress in [0, 1] (e.g. ``step / num_steps``).
    gamma: steepness.
    max_value: the limit :math:`m`.

  Returns:
    Scalar (or array shaped like ``progress``).
  """
  p = jnp.asarray(progress)
  if not jnp.issubdtype(p.dtype, jnp.floating):
    p = p.astype(jnp.float32)
  return max_value * (2.0 / (1.0 + jnp.exp(-gamma * p)) - 1.0)


def _logits_1d(x, name):
  x = jnp.asarray(x)
  if x.ndim == 2 and x.shape[1] == 1:
    x = x[:, 0]
  if x.ndim != 1:
    raise ValueError(f"dann_domain_loss: {name} must have shape (batch,) or "
                     f"(batch, 1); got {tuple(x.shape)}.")
  if x.shape[0] == 0:
    raise ValueError(f"dann_domain_loss: {name} is an empty batch.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"dann_domain_loss: {name} must be floating logits; got "
                    f"{x.dtype}.")
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def dann_domain_loss(domain_logits_s: Any, domain_logits_t: Any,
                     weights: Optional[Tuple[Any, Any]] = None) -> Array:
  r"""Domain-classification cross-entropy of DANN / CDAN (source = 1).

  .. math:: \frac12\Big(\frac{\sum_i w^s_i\,\mathrm{softplus}(-\ell^s_i)}
     {\sum_i w^s_i} + \frac{\sum_j w^t_j\,\mathrm{softplus}(\ell^t_j)}
     {\sum_j w^t_j}\Big)

  i.e. the binary cross-entropy of a discriminator with logit :math:`\ell`
  that predicts "source", averaged per domain and then over the two domains
  (equal to the pooled mean for equal batch sizes). With ``weights`` this is
  CDAN+E's entropy-conditioned loss (weights from :func:`entropy_weights`,
  normalised per domain by a stop-gradient sum as in CDAN). Feed the
  discriminator through :func:`gradient_reversal` to train the features
  adversarially.

  Args:
    domain_logits_s: (ns,) or (ns, 1) discriminator logits on source.
    domain_logits_t: (nt,) or (nt, 1) discriminator logits on target.
    weights: optional pair ``(weights_s (ns,), weights_t (nt,))``.

  Returns:
    Scalar loss (``log 2`` for a discriminator at chance, logits 0).
  """
  ls = _logits_1d(domain_logits_s, "domain_logits_s")
  lt = _logits_1d(domain_logits_t, "domain_logits_t")
  loss_s = jax.nn.softplus(-ls)
  loss_t = jax.nn.softplus(lt)
  if weights is None:
    return 0.5 * (jnp.mean(loss_s) + jnp.mean(loss_t))
  if not isinstance(weights, (tuple, list)) or len(weights) != 2:
    raise ValueError("dann_domain_loss: weights must be a pair "
                     "(weights_s, weights_t).")
  ws = jnp.asarray(weights[0]).astype(loss_s.dtype)
  wt = jnp.asarray(weights[1]).astype(loss_t.dtype)
  if ws.shape != ls.shape or wt.shape != lt.shape:
    raise ValueError(
        f"dann_domain_loss: weights shapes {tuple(ws.shape)}, "
        f"{tuple(wt.shape)} do not match logits {tuple(ls.shape)}, "
        f"{tuple(lt.shape)}.")
  sg = jax.lax.stop_gradient
  return 0.5 * (jnp.sum(ws * loss_s) / sg(jnp.sum(ws))
                + jnp.sum(wt * loss_t) / sg(jnp.sum(wt)))


def _class_logits(x, name):
  x = jnp.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] < 2:
    raise ValueError(
        f"margin_disparity_discrepancy: {name} must have shape (batch, "
        f"classes) with batch >= 1 and classes >= 2; got {tuple(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"margin_disparity_discrepancy: {name} must be floating "
                    f"logits; got {x.dtype}.")
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def margin_disparity_discrepancy(logits_s: Any, adv_logits_s: Any,
                                 logits_t: Any, adv_logits_t: Any,
                                 margin: Any = 4.0,
                                 shift: float = 1e-6) -> Array:
  r"""MDD's empirical margin disparity discrepancy :math:`D_\gamma`.

  With :math:`h(x) = \arg\max_k f(x)_k` the main classifier's prediction
  (a constant: no gradient flows into ``logits_*``) and :math:`p'(x) =
  \mathrm{softmax}(f'(x))` the auxiliary (adversarial) classifier's
  probabilities,

  .. math:: D_\gamma = \frac{\gamma}{n_s}\sum_{i} \log p'_{h(x^s_i)}(x^s_i)
     + \frac{1}{n_t}\sum_{j} \log\big(1 - p'_{h(x^t_j)}(x^t_j)\big)

  (Zhang et al. 2019: the cross-entropy disparity on the source, the
  modified disparity :math:`\log(1 - p')` on the target). :math:`f'`
  *maximises* it (agree
  with :math:`f` on the source, disagree on the target); the features
  *minimise* it, through :func:`gradient_reversal` in front of :math:`f'`.
  The target term is :math:`\min(\log(1 - p'_k + \epsilon), 0)` with the
  shift :math:`\epsilon` = ``shift`` (the authors' and TLlib's form, 1e-6):
  it is bounded below by :math:`\log \epsilon` and its gradient vanishes
  once :math:`f'` agrees with :math:`f` beyond it, so the features (which
  minimise :math:`D_\gamma`) cannot gain without bound by making :math:`f'`
  ever more confident on the target. :math:`\log(1 - p'_k)` itself is
  computed as :math:`\mathrm{logsumexp}_{j\ne k} z_j -
  \mathrm{logsumexp}_j z_j` (finite for any logits); ``shift = 0`` gives the
  unshifted term.

  Args:
    logits_s: (ns, C) logits of the main classifier :math:`f` on the source.
    adv_logits_s: (ns, C) logits of :math:`f'` on the source.
    logits_t: (nt, C) logits of :math:`f` on the target.
    adv_logits_t: (nt, C) logits of :math:`f'` on the target.
    margin: the margin factor :math:`\gamma` (float or traced scalar; 4 on
      Office-31, 2 on VisDA in the paper).
    shift: :math:`\epsilon \ge 0` in the target term (a Python float).

  Returns:
    Scalar :math:`D_\gamma` (at most 0; both terms are log-probabilities).

  References:
    Zhang, Liu, Long & Jordan, Bridging Theory and Algorithm for Domain
    Adaptation, ICML 2019.
  """
  ls = _class_logits(logits_s, "logits_s")
  zs = _class_logits(adv_logits_s, "adv_logits_s")
  lt = _class_logits(logits_t, "logits_t")
  zt = _class_logits(adv_logits_t, "adv_logits_t")
  if ls.shape != zs.shape or lt.shape != zt.shape or ls.shape[1] != lt.shape[1]:
    raise ValueError(
        "margin_disparity_discrepancy: logits and adversarial logits must "
        f"have equal shapes with the same classes; got logits_s "
        f"{tuple(ls.shape)}, adv_logits_s {tuple(zs.shape)}, logits_t "
        f"{tuple(lt.shape)}, adv_logits_t {tuple(zt.shape)}.")
  num_classes = ls.shape[1]
  hs = jax.nn.one_hot(jnp.argmax(jax.lax.stop_gradient(ls), -1), num_classes,
                      dtype=bool)
  ht = jax.nn.one_hot(jnp.argmax(jax.lax.stop_gradient(lt), -1), num_classes,
                      dtype=bool)
  log_agree_s = jnp.sum(jnp.where(hs, jax.nn.log_softmax(zs, -1), 0.0), -1)
  lse_t = jax.nn.logsumexp(zt, axis=-1)
  log_disagree_t = jax.nn.logsumexp(jnp.where(ht, -jnp.inf, zt), axis=-1)
  log_disagree_t = log_disagree_t - lse_t
  shift = float(shift)
  if shift < 0:
    raise ValueError(f"margin_disparity_discrepancy: shift must be >= 0, got "
                     f"{shift}.")
  if shift > 0:
    log_disagree_t = jnp.minimum(
        jnp.logaddexp(log_disagree_t, jnp.log(jnp.asarray(shift, ls.dtype))),
        0.0)
  margin = jnp.asarray(margin, ls.dtype)
  return margin * jnp.mean(log_agree_s) + jnp.mean(log_disagree_t)


def entropy(probs: Any, axis: int = -1) -> Array:
  r"""Per-example Shannon entropy :math:`-\sum_c p_c \log p_c` (nats)."""
  p = jnp.asarray(probs)
  if not jnp.issubdtype(p.dtype, jnp.floating):
    raise TypeError(f"entropy: probs must be floating; got {p.dtype}.")
  p = p.astype(jnp.promote_types(p.dtype, jnp.float32))
  return -jnp.sum(jax.scipy.special.xlogy(p, p), axis=axis)


def entropy_weights(probs: Any) -> Array:
  r"""CDAN+E example weights :math:`w = 1 + e^{-H(p)}`.

  Confident predictions (low entropy) get weight near 2, uniform ones near
  :math:`1 + 1/C`. Pass ``jax.lax.stop_gradient(probs)`` to keep the weights
  out of the classifier's gradient (as most reimplementations do).

  Args:
    probs: (batch, C) class probabilities.

  Returns:
    (batch,) weights.
  """
  return 1.0 + jnp.exp(-entropy(probs))


def cdan_random_projection(key: Array, feature_dim: int, num_classes: int,
                           output_dim: int = 1024) -> Tuple[Array, Array]:
  """Fixed Gaussian matrices ``(R_f (d, out), R_g (C, out))`` for CDAN's
  randomized multilinear map (drawn once, not trained)."""
  kf, kg = jax.random.split(key)
  return (jax.random.normal(kf, (feature_dim, output_dim)),
          jax.random.normal(kg, (num_classes, output_dim)))


def cdan_multilinear(features: Any, probs: Any,
                     projection: Optional[Sequence[Array]] = None) -> Array:
  r"""CDAN's multilinear conditioning :math:`T(f, g)` of features and
  predictions.

  Without ``projection``: the flattened outer product
  :math:`T_\otimes(f, g) = g \otimes f`, shape (batch, C * d), with
  ``out[b, c * d + i] = probs[b, c] * features[b, i]``. With ``projection =
  (R_f, R_g)`` (see :func:`cdan_random_projection`): the randomized map
  :math:`T_\odot(f, g) = (f R_f) \odot (g R_g) / \sqrt{\mathrm{out}}`, shape
  (batch, out), whose inner products approximate those of
  :math:`T_\otimes` (CDAN uses it when C * d > 4096).

  Args:
    features: (batch, d).
    probs: (batch, C) softmax outputs, used as given: CDAN passes them with
      their gradient stopped (``softmax_output.detach()`` in the authors'
      code, as :mod:`tlax.methods.cdan` does); the map itself does not stop
      it.
    projection: optional pair ``(R_f (d, out), R_g (C, out))``.

  Returns:
    (batch, C * d) or (batch, out) array.
  """
  f = jnp.asarray(features)
  g = jnp.asarray(probs)
  if f.ndim != 2 or g.ndim != 2 or f.shape[0] != g.shape[0]:
    raise ValueError(
        f"cdan_multilinear: need features (batch, d) and probs (batch, C) "
        f"with the same batch; got {tuple(f.shape)} and {tuple(g.shape)}.")
  if projection is None:
    return (g[:, :, None] * f[:, None, :]).reshape(f.shape[0], -1)
  rf, rg = projection
  rf, rg = jnp.asarray(rf), jnp.asarray(rg)
  if rf.shape[0] != f.shape[1] or rg.shape[0] != g.shape[1] or (
      rf.shape[1] != rg.shape[1]):
    raise ValueError(
        f"cdan_multilinear: projection shapes {tuple(rf.shape)}, "
        f"{tuple(rg.shape)} do not fit features {tuple(f.shape)} and probs "
        f"{tuple(g.shape)}.")
  out = rf.shape[1]
  return (f @ rf) * (g @ rg) / jnp.sqrt(jnp.asarray(out, f.dtype))
