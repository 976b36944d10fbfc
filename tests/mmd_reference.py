"""NumPy references for the MMD-family tests, written directly with loops.

Shared by ``test_losses_mmd.py`` (values) and ``test_losses_mmd_grads.py``
(gradients, low precision).
"""

import numpy as np


def _data(ns=7, nt=9, d=5, seed=0, shift=0.4):
  rng = np.random.default_rng(seed)
  xs = rng.normal(size=(ns, d))
  xt = rng.normal(size=(nt, d)) * 1.3 + shift
  return xs, xt


def ref_sqdist(a, b):
  out = np.zeros((len(a), len(b)))
  for i in range(len(a)):
    for j in range(len(b)):
      out[i, j] = np.sum((a[i] - b[j]) ** 2)
  return out


def ref_pooled_pairs(xs, xt):
  z = np.concatenate([xs, xt])
  return [np.sum((z[i] - z[j]) ** 2) for i in range(len(z))
          for j in range(len(z)) if i != j]


def ref_sigmas(spec, xs, xt):
  """sigma_k with 2 sigma_k^2 = stat * base^k (kernels docstring)."""
  if not isinstance(spec, str):
    return np.atleast_1d(np.asarray(spec, float))
  parts = spec.split(":")
  stat = parts[0]
  num = int(parts[1]) if len(parts) > 1 else 1
  base = float(parts[2]) if len(parts) > 2 else 2.0
  pairs = ref_pooled_pairs(xs, xt)
  s = np.mean(pairs) if stat == "mean" else np.median(pairs)
  ks = [k - num // 2 for k in range(num)]
  return np.sqrt(np.array([s * base ** k / 2 for k in ks]))


def ref_k(a, b, sigmas, weights=None):
  sigmas = np.atleast_1d(sigmas)
  if weights is None:
    weights = np.full(len(sigmas), 1 / len(sigmas))
  d2 = np.sum((a - b) ** 2)
  return sum(w * np.exp(-d2 / (2 * s * s)) for s, w in zip(sigmas, weights))


def ref_mmd_from_kernel(k, xs, xt, estimator):
  ns, nt = len(xs), len(xt)
  if estimator == "linear":
    m = min(ns, nt) // 2
    h = 0.0
    for i in range(m):
      x1, x2, y1, y2 = xs[2 * i], xs[2 * i + 1], xt[2 * i], xt[2 * i + 1]
      h += k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
    return h / m
  ss = sum(k(xs[i], xs[j]) for i in range(ns) for j in range(ns)
           if estimator == "biased" or i != j)
  tt = sum(k(xt[i], xt[j]) for i in range(nt) for j in range(nt)
           if estimator == "biased" or i != j)
  st = sum(k(xs[i], xt[j]) for i in range(ns) for j in range(nt))
  if estimator == "biased":
    return ss / ns**2 + tt / nt**2 - 2 * st / (ns * nt)
  return ss / (ns * (ns - 1)) + tt / (nt * (nt - 1)) - 2 * st / (ns * nt)


def ref_mk_mmd(xs, xt, spec, weights=None, estimator="biased"):
  if estimator == "linear" and isinstance(spec, str) and "median" in spec:
    raise NotImplementedError
  sig = ref_sigmas(spec, xs, xt)
  return ref_mmd_from_kernel(lambda a, b: ref_k(a, b, sig, weights), xs, xt,
                             estimator)


def ref_jmmd(xs_l, xt_l, specs, estimator="biased"):
  sigs = [ref_sigmas(s, a, b) for s, a, b in zip(specs, xs_l, xt_l)]
  ns, nt = len(xs_l[0]), len(xt_l[0])
  # index-based kernel over the pooled sample: entries < ns are source.
  pooled = [np.concatenate([a, b]) for a, b in zip(xs_l, xt_l)]

  def k(i, j):
    return np.prod([ref_k(z[i], z[j], s) for z, s in zip(pooled, sigs)])

  src = np.arange(ns)[:, None]
  tgt = np.arange(ns, ns + nt)[:, None]
  return ref_mmd_from_kernel(lambda a, b: k(int(a[0]), int(b[0])), src, tgt,
                             estimator)


def ref_conditional(xs, xt, ys, pt, sigmas, kernel="gaussian",
                    reduction="mean"):
  """DSAN local MMD with the class mask of DSAN."""
  sig = ref_sigmas(sigmas, xs, xt) if kernel == "gaussian" else None
  k = ((lambda a, b: ref_k(a, b, sig)) if kernel == "gaussian"
       else (lambda a, b: float(a @ b)))
  C = pt.shape[1]
  total, count = 0.0, 0
  for c in range(C):
    src = [i for i in range(len(xs)) if ys[i] == c]
    if not src or not any(np.argmax(pt[j]) == c for j in range(len(xt))):
      continue
    count += 1
    ws = np.zeros(len(xs))
    ws[src] = 1 / len(src)
    wt = pt[:, c] / pt[:, c].sum()
    for i in range(len(xs)):
      for j in range(len(xs)):
        total += ws[i] * ws[j] * k(xs[i], xs[j])
    for i in range(len(xt)):
      for j in range(len(xt)):
        total += wt[i] * wt[j] * k(xt[i], xt[j])
    for i in range(len(xs)):
      for j in range(len(xt)):
        total -= 2 * ws[i] * wt[j] * k(xs[i], xt[j])
  return total / max(count, 1) if reduction == "mean" else total
