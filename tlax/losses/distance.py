r"""Proxy A-distance, estimated with a linear classifier trained in JAX.

The A-distance :math:`d_\mathcal A(P, Q) = 2\sup_{A}|P(A) - Q(A)|` over the
sets a hypothesis class can carve out is estimated by training a domain
classifier and measuring its held-out error :math:`\epsilon`:
:math:`\hat d_\mathcal A = 2(1 - 2\epsilon)` (Ben-David et al. 2007, 2010).
2 means the domains are perfectly separable, 0 (or below, by chance) that a
linear classifier cannot tell them apart.

References:
  Ben-David et al., Analysis of Representations for Domain Adaptation,
  NeurIPS 2007; A theory of learning from different domains, Machine
  Learning 2010.
  Ganin et al., Domain-Adversarial Training of Neural Networks, JMLR 2016
  (proxy A-distance of learned features).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tlax.losses import _validation as val

Array = jax.Array


def a_distance_from_error(err: Any) -> Array:
  r""":math:`2(1 - 2\epsilon)` from a domain classifier's error rate."""
  return 2.0 * (1.0 - 2.0 * jnp.asarray(err))


def split_halves(key: Array, ns: int, nt: int):
  """The random train/test split used by :func:`proxy_a_distance`.

  Returns ``(perm_s, perm_t)``: permutations of each domain's indices; the
  first ``n // 2`` entries train, the rest test.
  """
  ks, kt = jax.random.split(key)
  return jax.random.permutation(ks, ns), jax.random.permutation(kt, nt)


def _balanced_logistic(w, b, xs, xt, l2):
  fs = xs @ w + b
  ft = xt @ w + b
  return (0.5 * jnp.mean(jax.nn.softplus(-fs))
          + 0.5 * jnp.mean(jax.nn.softplus(ft)) + 0.5 * l2 * jnp.sum(w * w))


def _lipschitz(xs, xt, l2, iters=30):
  """Upper estimate of the Lipschitz constant of the balanced logistic grad.

  Hessian <= 1/4 (0.5 Xs'Xs/ns + 0.5 Xt'Xt/nt) (with a bias column) + l2;
  its top eigenvalue by power iteration, times 1.1 for safety.
  """
  one_s = jnp.ones((xs.shape[0], 1), xs.dtype)
  one_t = jnp.ones((xt.shape[0], 1), xt.dtype)
  a = jnp.concatenate([xs, one_s], axis=1)
  c = jnp.concatenate([xt, one_t], axis=1)

  def mv(v):
    return 0.5 * a.T @ (a @ v) / a.shape[0] + 0.5 * c.T @ (c @ v) / c.shape[0]

  def body(_, v):
    u = mv(v)
    return u / jnp.maximum(jnp.linalg.norm(u), jnp.finfo(u.dtype).tiny)

  v0 = jnp.ones((a.shape[1],), a.dtype) / jnp.sqrt(a.shape[1])
  v = jax.lax.fori_loop(0, iters, body, v0)
  lam = jnp.dot(v, mv(v))
  return 1.1 * 0.25 * lam + l2


def fit_linear_domain_classifier(xs: Array, xt: Array, l2: float,
                                 num_steps: int):
  """Balanced L2-regularised logistic regression, source = positive class.

  Nesterov-accelerated gradient descent with step 1/L (no host round trips;
  a fixed number of steps, so it is jittable and deterministic).
  Returns ``(w, b)``.
  """
  step = 1.0 / _lipschitz(xs, xt, l2)
  grad = jax.grad(_balanced_logistic, argnums=(0, 1))
  w0 = jnp.zeros((xs.shape[1],), xs.dtype)
  b0 = jnp.zeros((), xs.dtype)

  def body(k, carry):
    w, b, w_prev, b_prev = carry
    beta = k / (k + 3.0)
    yw = w + beta * (w - w_prev)
    yb = b + beta * (b - b_prev)
    gw, gb = grad(yw, yb, xs, xt, l2)
    return yw - step * gw, yb - step * gb, w, b

  w, b, _, _ = jax.lax.fori_loop(0, num_steps, body, (w0, b0, w0, b0))
  return w, b


@functools.partial(jax.jit, static_argnames=("num_steps", "standardize"))
def _pad_core(xs, xt, key, l2, num_steps, standardize):
  xs = jax.lax.stop_gradient(xs)
  xt = jax.lax.stop_gradient(xt)
  ns, nt = xs.shape[0], xt.shape[0]
  ps, pt = split_halves(key, ns, nt)
  hs, ht = ns // 2, nt // 2
  tr_s, te_s = xs[ps[:hs]], xs[ps[hs:]]
  tr_t, te_t = xt[pt[:ht]], xt[pt[ht:]]
  if standardize:
    tr = jnp.concatenate([tr_s, tr_t])
    mu = jnp.mean(tr, axis=0)
    sd = jnp.sqrt(jnp.var(tr, axis=0) + 1e-12)
    sd = jnp.where(sd > 1e-6, sd, 1.0)
    tr_s, te_s, tr_t, te_t = [(x - mu) / sd for x in (tr_s, te_s, tr_t, te_t)]
  w, b = fit_linear_domain_classifier(tr_s, tr_t, l2, num_steps)
  err_s = jnp.mean((te_s @ w + b) <= 0)
  err_t = jnp.mean((te_t @ w + b) > 0)
  err = 0.5 * (err_s + err_t)
  # NaN/inf features make the classifier's comparisons false, which would
  # read as a plausible error rate: report NaN instead.
  return val.nan_unless(val.all_finite(xs, xt, l2),
                        a_distance_from_error(err).astype(xs.dtype))


def proxy_a_distance(xs: Any, xt: Any, key: Array, *, l2: float = 1e-3,
                     num_steps: int = 300, standardize: bool = True) -> Array:
  r"""Proxy A-distance :math:`2(1 - 2\epsilon)` of two feature sets.

  Each domain is split at random into halves (:func:`split_halves`); a
  linear domain classifier (balanced logistic regression with L2 penalty
  ``l2``, ``num_steps`` of accelerated gradient descent, features
  standardised with the training half's statistics) is trained on the first
  halves and :math:`\epsilon` is its class-balanced error on the second
  halves, :math:`\frac12(\epsilon_s + \epsilon_t)` (the plain error for equal
  sizes). The result lies in [-2, 2]; values near or below 0 mean a linear
  classifier cannot tell the domains apart. Everything runs in JAX (jit and
  vmap over keys work); the estimate is piecewise constant in the
  features, so its gradient is zero (inputs are stop-gradiented).

  Args:
    xs: (ns, d) source features, ``ns >= 2``.
    xt: (nt, d) target features, ``nt >= 2``.
    key: PRNG key for the split.
    l2: L2 penalty on the weights.
    num_steps: gradient steps.
    standardize: standardise features before training.

  Returns:
    Scalar proxy A-distance.

  References:
    Ben-David et al., NeurIPS 2007; Ganin et al., JMLR 2016.
  """
  fn = "proxy_a_distance"
  xs = val.as_features(xs, "xs", fn, min_batch=2)
  xt = val.as_features(xt, "xt", fn, min_batch=2)
  val.check_same_features(xs, xt, fn)
  if val.is_concrete(l2) and not (np.isfinite(float(l2)) and float(l2) >= 0):
    raise ValueError(f"{fn}: l2 must be finite and >= 0; got {l2!r}.")
  if not isinstance(num_steps, int) or num_steps < 1:
    raise ValueError(f"{fn}: num_steps must be an int >= 1; got {num_steps!r}.")
  dt = val.compute_dtype(xs, xt)
  return _pad_core(xs.astype(dt), xt.astype(dt), key, jnp.asarray(l2, dt),
                   num_steps, bool(standardize))
