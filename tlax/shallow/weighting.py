"""Instance weights for covariate shift: KMM, domain-classifier ratios, TrAdaBoost.

Each method returns plain NumPy weights of shape ``(n_source,)`` with mean 1
(``KMM`` keeps its own scale, ``sum ~ n_source``), ready to be passed as the
per-example weights of a weighted source loss (the deep trainer's
``batch["ws"]``)::

    ws = KMM().fit(Xs, Xt).weights_
    ws = DomainClassifierWeights().fit(Xs, Xt).weights_
    ws = TrAdaBoost().fit(Xs, ys, Xt_l, yt_l).source_weights_

References:
  Huang, Smola, Gretton, Borgwardt and Schoelkopf. Correcting sample
  selection bias by unlabeled data. NIPS 2006 (KMM); Gretton et al.,
  Covariate shift by kernel mean matching, in "Dataset Shift in Machine
  Learning", MIT Press 2009 (the settings ``B = 1000``,
  ``eps = (sqrt(ns) - 1) / sqrt(ns)``).
  Bickel, Brueckner and Scheffer. Discriminative learning under covariate
  shift. JMLR 2009 (density ratios from a domain classifier).
  Dai, Yang, Xue and Yu. Boosting for transfer learning. ICML 2007
  (TrAdaBoost).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from tlax.shallow import base
from tlax.shallow import base as _base
from tlax.shallow import kernels


def _check_domains(xs, xt, name):
  ys_dummy = np.zeros(len(np.asarray(xs)) if np.ndim(xs) else 0, np.int64)
  xs, _, xt, _ = base.check_inputs(xs, ys_dummy, xt, name=name,
                                   min_classes=1)
  return xs, xt


# --------------------------------------------------------------------------
# Kernel mean matching.


def project_box_slab(v, upper, lo, hi, n_bisect: int = 100):
  """Euclidean projection onto ``{b : 0 <= b <= upper, lo <= sum(b) <= hi}``.

  The projection is ``clip(v - tau, 0, upper)`` with the scalar ``tau``
  (the multiplier of the active sum constraint) found by bisection; ``tau``
  is 0 when the clipped ``v`` already satisfies the sum constraint. Pure JAX.
  """
  clipped = jnp.clip(v, 0.0, upper)
  total = jnp.sum(clipped)
  target = jnp.where(total > hi, hi, lo)

  def body(_, lohi):
    a, b = lohi
    mid = 0.5 * (a + b)
    big = jnp.sum(jnp.clip(v - mid, 0.0, upper)) > target
    return jnp.where(big, mid, a), jnp.where(big, b, mid)

  t_lo, t_hi = jax.lax.fori_loop(
      0, n_bisect, body, (jnp.min(v) - upper, jnp.max(v)))
  tau = 0.5 * (t_lo + t_hi)
  inside = (total >= lo) & (total <= hi)
  return jnp.where(inside, clipped, jnp.clip(v - tau, 0.0, upper))


@functools.partial(jax.jit, static_argnames=("max_iter",))
def kmm_qp(kmat, kappa, upper, lo, hi, max_iter: int = 5000,
           tol: float = 1e-10):
  """Solves KMM's QP by accelerated projected gradient (FISTA + restart).

  .. math::

     \\min_b\\; \\tfrac12 b^\\top K b - \\kappa^\\top b
     \\quad\\text{s.t.}\\quad 0 \\le b \\le B,\\; lo \\le \\textstyle\\sum_i b_i
     \\le hi.

  Step ``1/L`` with ``L`` a power-iteration estimate of ``lambda_max(K)``
  (times 1.1); gradient-based adaptive restart (O'Donoghue & Candes 2015);
  stops when a step moves ``b`` by less than ``tol * max(1, |b|)``.

  Returns:
    ``(b, n_iterations)``.
  """
  n = kmat.shape[0]
  dt = kmat.dtype
  vec = jnp.ones((n,), dt) / math.sqrt(n)

  def power(_, v):
    w = kmat @ v
    return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(dt).tiny)

  vec = jax.lax.fori_loop(0, 100, power, vec)
  lip = 1.1 * jnp.maximum(vec @ (kmat @ vec), jnp.finfo(dt).tiny)
  proj = functools.partial(project_box_slab, upper=upper, lo=lo, hi=hi)
  b0 = proj(jnp.full((n,), (lo + hi) / (2.0 * n), dt))

  def cond(state):
    _, _, _, k, moved = state
    return (k < max_iter) & moved

  def body(state):
    b, y, t, k, _ = state
    b_new = proj(y - (kmat @ y - kappa) / lip)
    restart = jnp.dot(y - b_new, b_new - b) > 0
    t = jnp.where(restart, 1.0, t)
    t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
    y_new = jnp.where(restart, b_new, b_new + (t - 1.0) / t_new * (b_new - b))
    step = jnp.linalg.norm(b_new - b)
    moved = step > tol * jnp.maximum(1.0, jnp.linalg.norm(b_new))
    return b_new, y_new, t_new, k + 1, moved

  b, _, _, k, _ = jax.lax.while_loop(
      cond, body, (b0, b0, jnp.asarray(1.0, dt), jnp.asarray(0, jnp.int32),
                   jnp.asarray(True)))
  return b, k


def kmm_objective(b, kmat, kappa):
  """``0.5 b' K b - kappa' b``."""
  return 0.5 * b @ kmat @ b - kappa @ b


def kmm_weights(xs, xt, kernel: str = "rbf", gamma=None, B: float = 1000.0,
                eps=None, max_iter: int = 5000, tol: float = 1e-10):
  """Kernel mean matching weights of the source samples (Huang et al. 2006).

  Minimises ``|| (1/ns) sum_i b_i phi(xs_i) - (1/nt) sum_j phi(xt_j) ||^2``
  over ``0 <= b <= B``, ``|sum b - ns| <= ns eps``: the QP of :func:`kmm_qp`
  with ``K = k(xs, xs)``, ``kappa_i = (ns / nt) sum_j k(xs_i, xt_j)``.

  Args:
    xs, xt: ``(ns, d)``, ``(nt, d)``.
    kernel: ``"rbf"`` or ``"linear"``.
    gamma: RBF ``exp(-gamma |a - b|^2)``; default
      :func:`tlax.shallow.kernels.default_gamma` of the pooled samples.
    B: upper bound of a weight.
    eps: sum tolerance; default ``(sqrt(ns) - 1) / sqrt(ns)``.

  Returns:
    ``(ns,)`` float64 NumPy weights (their mean is within ``eps`` of 1).
  """
  xs, xt = _check_domains(xs, xt, "kmm_weights")
  if kernel not in ("rbf", "linear"):
    raise ValueError(f"kmm_weights: kernel must be 'rbf' or 'linear', got "
                     f"{kernel!r}.")
  ns, nt = len(xs), len(xt)
  if eps is None:
    eps = (math.sqrt(ns) - 1.0) / math.sqrt(ns)
  fn = "kmm_weights"
  base.real(B, "B", fn, low=0.0, low_open=True)
  base.real(eps, "eps", fn, low=0.0)
  base.real(gamma, "gamma", fn, low=0.0, low_open=True, none_ok=True)
  base.integer(max_iter, "max_iter", fn)
  base.real(tol, "tol", fn, low=0.0, low_open=True)
  lo, hi = max(ns * (1.0 - eps), 0.0), ns * (1.0 + eps)
  if lo > ns * B:
    raise ValueError(f"kmm_weights: infeasible, B={B} cannot reach a sum "
                     f"of {lo}.")
  with jax.enable_x64(True):
    xs_j, xt_j = jnp.asarray(xs), jnp.asarray(xt)
    if kernel == "rbf" and gamma is None:
      gamma = kernels.default_gamma(jnp.concatenate([xs_j, xt_j]))
    kss = kernels.kernel(kernel, xs_j, gamma=gamma)
    kst = kernels.kernel(kernel, xs_j, xt_j, gamma=gamma)
    kappa = (ns / nt) * jnp.sum(kst, axis=1)
    b, _ = kmm_qp(kss, kappa, float(B), lo, min(hi, ns * B),
                  max_iter=max_iter, tol=tol)
    return np.asarray(b)


class KMM:
  """Kernel mean matching: ``KMM(...).fit(Xs, Xt).weights_`` (``(ns,)``)."""

  def __init__(self, kernel: str = "rbf", gamma=None, B: float = 1000.0,
               eps=None, max_iter: int = 5000, tol: float = 1e-10):
    self.kernel, self.gamma, self.B, self.eps = kernel, gamma, B, eps
    self.max_iter, self.tol = max_iter, tol

  def fit(self, xs, xt):
    self.weights_ = kmm_weights(xs, xt, kernel=self.kernel, gamma=self.gamma,
                                B=self.B, eps=self.eps,
                                max_iter=self.max_iter, tol=self.tol)
    return self

  def fit_transform(self, xs, xt):
    return self.fit(xs, xt).weights_


# --------------------------------------------------------------------------
# Density ratios from a domain classifier.


@functools.partial(jax.jit, static_argnames=("n_iter",))
def logistic_regression_fit(x, y, C=1.0, n_iter: int = 50):
  """L2-regularised logistic regression by Newton's method (pure JAX).

  ``min_{w, b} 0.5 |w|^2 + C sum_i log(1 + exp(-s_i (x_i w + b)))`` with
  ``s_i = 2 y_i - 1`` for ``y`` in {0, 1}; the bias is not penalised (as
  scikit-learn's ``LogisticRegression(C=C)``). Newton steps are damped by a
  backtracking factor so the objective never increases. The iterations stop
  after the step whose Newton decrement ``-g . delta / 2`` is below
  ``eps ** 0.75 * (1 + |objective|)`` (``eps`` of the input's dtype: about
  ``2e-12`` in float64), or after ``n_iter`` steps: the step after a small
  decrement brings the error to the dtype's rounding (Newton's method
  converges quadratically near the optimum), so stopping there gives the
  same solution as running all ``n_iter`` steps.

  Returns:
    ``(w, b)``.
  """
  n, d = x.shape
  dt = x.dtype
  xa = jnp.concatenate([x, jnp.ones((n, 1), dt)], axis=1)
  s = 2.0 * y.astype(dt) - 1.0
  reg = jnp.ones((d + 1,), dt).at[-1].set(0.0)

  def objective(theta):
    return 0.5 * jnp.sum(reg * theta * theta) + C * jnp.sum(
        jnp.logaddexp(0.0, -s * (xa @ theta)))

  steps = 0.5 ** jnp.arange(30, dtype=dt)

  tol = jnp.finfo(dt).eps ** 0.75

  def body(carry):
    i, theta, _ = carry
    f = xa @ theta
    p = jax.nn.sigmoid(-s * f)             # d/dmargin of the loss = -p
    g = reg * theta - C * xa.T @ (s * p)
    h = (xa * (C * p * (1.0 - p))[:, None]).T @ xa + jnp.diag(reg + 1e-10)
    delta = -jnp.linalg.solve(h, g)
    js = jax.vmap(lambda t: objective(theta + t * delta))(steps)
    best = jnp.argmin(js)
    j0 = objective(theta)
    theta = jnp.where(js[best] < j0, theta + steps[best] * delta, theta)
    decrement = -0.5 * jnp.dot(g, delta)
    # A non-finite decrement (singular Hessian) stops too: nothing improves.
    done = ((decrement <= tol * (1.0 + jnp.abs(j0)))
            | ~jnp.isfinite(decrement))
    return i + 1, theta, done

  def cond(carry):
    i, _, done = carry
    return (i < n_iter) & ~done

  _, theta, _ = jax.lax.while_loop(
      cond, body, (0, jnp.zeros((d + 1,), dt), False))
  return theta[:-1], theta[-1]


def domain_classifier_weights(xs, xt, C: float = 1.0, clip=(0.0, 20.0),
                              standardize: bool = True):
  """Density-ratio weights ``p_t(x) / p_s(x)`` from a domain classifier.

  A logistic regression separates source (0) from target (1); Bayes' rule
  gives ``p_t(x) / p_s(x) = p(t|x) / p(s|x) * ns / nt = exp(logit) ns / nt``.
  The ratios are clipped to ``clip`` and normalised to mean 1.

  Args:
    xs, xt: source and target features.
    C: inverse L2 strength of the classifier.
    clip: ``(low, high)`` bounds on the ratio before the normalisation.
    standardize: z-score the features with the pooled mean and std first.

  Returns:
    ``(ns,)`` float64 NumPy weights with mean 1.
  """
  xs, xt = _check_domains(xs, xt, "domain_classifier_weights")
  low, high = (float(c) for c in clip)
  if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low < high):
    raise base.ShallowInputError(
        f"domain_classifier_weights: clip must be (low, high) with "
        f"0 <= low < high, finite; got {tuple(clip)!r}.")
  ns, nt = len(xs), len(xt)
  x = np.concatenate([xs, xt])
  if standardize:
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
  y = np.concatenate([np.zeros(ns), np.ones(nt)])
  with jax.enable_x64(True):
    w, b = logistic_regression_fit(jnp.asarray(x), jnp.asarray(y), float(C))
    logit = np.asarray(jnp.asarray(x[:ns]) @ w + b)
  ratio = np.exp(np.clip(logit, -700, 700)) * ns / nt
  ratio = np.clip(ratio, clip[0], clip[1])
  return ratio / ratio.mean()


class DomainClassifierWeights:
  """``DomainClassifierWeights(C=1.0).fit(Xs, Xt).weights_`` (mean 1)."""

  def __init__(self, C: float = 1.0, clip=(0.0, 20.0),
               standardize: bool = True):
    self.C, self.clip, self.standardize = C, clip, standardize

  def fit(self, xs, xt):
    base.real(self.C, "C", "DomainClassifierWeights", low=0.0, low_open=True)
    self.weights_ = domain_classifier_weights(
        xs, xt, C=self.C, clip=self.clip, standardize=self.standardize)
    return self

  def fit_transform(self, xs, xt):
    return self.fit(xs, xt).weights_


# --------------------------------------------------------------------------
# TrAdaBoost.


class TrAdaBoost:
  """TrAdaBoost (Dai et al., ICML 2007) for a few labelled target samples.

  Boosting over the union of the (differently distributed) source data and a
  small labelled target set: misclassified SOURCE samples are down-weighted
  by the fixed factor ``beta = 1 / (1 + sqrt(2 ln n_s / N))``, misclassified
  TARGET samples up-weighted by ``beta_t^-1`` with ``beta_t = e_t / (1 - e_t)``
  and ``e_t`` the weighted error on the target part (capped below 1/2). The
  final classifier is the ``ln(1 / beta_t)``-weighted vote of the second
  half of the learners (Dai et al.'s rule; for two classes exactly their
  ``prod beta_t^-h_t(x) >= prod beta_t^-1/2``; for more classes the
  indicator ``[h_t(x) != y]`` replaces ``|h_t(x) - y|``).

  Args:
    n_estimators: boosting rounds ``N``.
    base: a scikit-learn classifier accepting ``sample_weight`` (cloned each
      round); default ``LogisticRegression(max_iter=1000)`` (Dai et al. used
      an SVM; any reweightable learner works).

  Attributes after fit: ``estimators_``, ``betas_`` (``beta_t``), ``errors_``,
  ``source_weights_`` (final source weights, mean 1: a per-example weight for
  a weighted source loss), ``target_weights_``, ``classes_``.
  """

  def __init__(self, n_estimators: int = 20, base=None):
    self.n_estimators = _base.integer(n_estimators, "n_estimators",
                                      "TrAdaBoost")
    self.base = base

  def _make_base(self):
    from sklearn import base as skbase  # pylint: disable=g-import-not-at-top
    if self.base is None:
      from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
      return LogisticRegression(max_iter=1000)
    return skbase.clone(self.base)

  def fit(self, xs, ys, xt, yt):
    xs, ys_i, xt, classes = base.check_inputs(xs, ys, xt, name="TrAdaBoost",
                                              min_classes=2)
    yt = np.asarray(yt)
    if yt.ndim != 1 or yt.shape[0] != xt.shape[0]:
      raise base.ShallowInputError(
          f"TrAdaBoost: target labels yt must have shape ({xt.shape[0]},), "
          f"got {yt.shape}.")
    unknown = np.setdiff1d(np.unique(yt), classes)
    if unknown.size:
      raise base.ShallowInputError(
          f"TrAdaBoost: target labels {unknown.tolist()} do not occur in the "
          f"source labels {classes.tolist()}.")
    yt_i = np.searchsorted(classes, yt)
    self.classes_ = classes
    ns, nt = len(xs), len(xt)
    x = np.concatenate([xs, xt])
    y = np.concatenate([ys_i, yt_i])
    w = np.ones(ns + nt)
    beta_src = 1.0 / (1.0 + math.sqrt(2.0 * math.log(ns) / self.n_estimators))
    self.estimators_, self.betas_, self.errors_ = [], [], []
    for _ in range(self.n_estimators):
      p = w / w.sum()
      est = self._make_base().fit(x, y, sample_weight=p * (ns + nt))
      wrong = (est.predict(x) != y).astype(np.float64)
      err = float(np.sum(w[ns:] * wrong[ns:]) / np.sum(w[ns:]))
      err = min(max(err, 1e-10), 0.499)
      beta_t = err / (1.0 - err)
      w[:ns] *= beta_src ** wrong[:ns]
      w[ns:] *= beta_t ** (-wrong[ns:])
      w /= w.max()  # rescaling only, against under/overflow
      self.estimators_.append(est)
      self.betas_.append(beta_t)
      self.errors_.append(err)
    self.betas_ = np.asarray(self.betas_)
    self.errors_ = np.asarray(self.errors_)
    self.source_weights_ = w[:ns] / w[:ns].mean()
    self.target_weights_ = w[ns:] / w[ns:].mean()
    self.n_features_ = xs.shape[1]
    return self

  def decision_function(self, x):
    """``(n, C)`` weighted votes ``sum_{t >= N/2} ln(1/beta_t) [h_t(x) = c]``."""
    x = base.check_features(x, self.n_features_, name="TrAdaBoost")
    start = math.ceil(self.n_estimators / 2) - 1
    votes = np.zeros((len(x), len(self.classes_)))
    for est, beta_t in zip(self.estimators_[start:], self.betas_[start:]):
      votes[np.arange(len(x)), est.predict(x)] += math.log(1.0 / beta_t)
    return votes

  def predict(self, x):
    return self.classes_[np.argmax(self.decision_function(x), axis=1)]
