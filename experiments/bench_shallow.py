r"""Speed of the closed-form methods: tlax vs a plain NumPy/SciPy reference.

COMMAND (the one behind docs/shallow_results.md, "Speed"):

  TLAX_DATA_DIR=<data folder> python -m experiments.bench_shallow \
    --methods=jda,meda --kernel=primal

  (``--kernel=linear`` benchmarks the kernel (dual) form; ``--tasks=CA,DW``
  (or ``'C->A,D->W'``, quoted) runs a subset; ``--skip_reference`` times
  tlax alone; ``--threads=1``, the default, runs BLAS and XLA
  single-threaded for both implementations.)

For every Office-Caltech10 task it runs the tlax estimator and a plain
NumPy/SciPy implementation of the SAME algorithm, solved the way the widely
used Python reference code solves it: the MMD matrix ``M`` and the centering
matrix ``H`` formed as dense ``n x n`` arrays (class terms added in a Python
loop over classes), and a general (non-symmetric) ``scipy.linalg.eig`` of the
pencil at every iteration:

- ``kernel="primal"``: ``eig(X M X^T + lam I, X H X^T)`` (``d x d``);
- ``kernel="linear"``: ``eig(K M K^T + lam I, K H K^T)`` (``n x n``, the dual).

It prints per-task times and accuracies of both, totals and the speed ratio.
tlax times include JIT compilation (every task has new shapes).

A method is one entry of :data:`BENCH` (a tlax runner and a reference runner
with the same signature); MEDA is added the same way.
"""

from __future__ import annotations

import os
import sys


def _limit_threads_from_argv(argv):
  """Applies ``--threads=N`` before NumPy/JAX start their thread pools.

  BLAS (NumPy/SciPy and JAX's LAPACK calls) and XLA read their thread counts
  at import; on a shared machine one thread per process avoids the
  spin-waiting that makes multi-threaded timings meaningless.
  """
  n = None
  for i, a in enumerate(argv):
    if a.startswith("--threads="):
      n = a.split("=", 1)[1]
    elif a == "--threads" and i + 1 < len(argv):
      n = argv[i + 1]
  if n is None:
    n = "1"
  if n != "0":
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
      os.environ[var] = n
    if n == "1":
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                 " --xla_cpu_multi_thread_eigen=false"
                                 " intra_op_parallelism_threads=1").strip()


if __name__ == "__main__":
  _limit_threads_from_argv(sys.argv[1:])

# pylint: disable=g-import-not-at-top,wrong-import-position
import argparse
import dataclasses
import time
from typing import Callable

import numpy as np
import scipy.linalg

from experiments import shallow_tables
from tlax.data import files
from tlax.shallow import base

# ------------------------------------------------ NumPy/SciPy references --


def _nn_numpy(zs, ys, zt):
  d = (zs ** 2).sum(1)[None, :] - 2.0 * zt @ zs.T
  return ys[np.argmin(d, axis=1)]


def reference_jda(xs, ys, xt, *, k=30, lam=1.0, T=10, kernel="primal"):
  """JDA as the popular Python reference solves it (dense n x n M, H; eig).

  Same model as the MATLAB code and tlax: unit-norm samples, ``C M0 +
  sum_c Mc`` over its Frobenius norm, the ``k`` smallest eigenvalues of
  ``(X M X^T + lam I, X H X^T)`` (eigenvectors at unit norm), projected
  samples at unit norm, 1-NN pseudo-labels, ``T`` iterations.

  Returns:
    target labels after the last iteration (indices into ``unique(ys)``).
  """
  classes, ys = np.unique(ys, return_inverse=True)
  x = np.concatenate([xs, xt]).T                      # d x n, samples = cols
  x = x / np.maximum(np.linalg.norm(x, axis=0, keepdims=True), 1e-12)
  d, n = x.shape
  ns, nt = xs.shape[0], xt.shape[0]
  num_classes = len(classes)
  e = np.concatenate([np.full(ns, 1.0 / ns), np.full(nt, -1.0 / nt)])[:, None]
  m0 = e @ e.T * num_classes
  h = np.eye(n) - np.ones((n, n)) / n
  if kernel == "primal":
    f = x                                             # d x n
  elif kernel == "linear":
    f = x.T @ x                                       # n x n
  else:
    raise ValueError(kernel)
  yt_pseudo = None
  for _ in range(T):
    mc = np.zeros((n, n))
    if yt_pseudo is not None:
      for c in range(num_classes):
        ec = np.zeros((n, 1))
        ec[np.where(ys == c)[0]] = 1.0 / np.sum(ys == c)
        idx = np.where(yt_pseudo == c)[0]
        if idx.size:
          ec[ns + idx] = -1.0 / idx.size
        mc = mc + ec @ ec.T
    m = m0 + mc
    m = m / np.linalg.norm(m, "fro")
    a = f @ m @ f.T + lam * np.eye(f.shape[0])
    b = f @ h @ f.T
    w, v = scipy.linalg.eig(a, b)
    w = np.real(w)
    w[~np.isfinite(w)] = np.inf
    order = np.argsort(w)[:k]
    proj = np.real(v[:, order])
    proj = proj / np.linalg.norm(proj, axis=0, keepdims=True)
    z = (proj.T @ f).T                                # n x k
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    yt_pseudo = _nn_numpy(z[:ns], ys, z[ns:])
  return classes[yt_pseudo]


def reference_lapgraph(x, p):
  """MATLAB ``lapgraph``: cosine kNN graph (``p`` neighbours and the sample
  itself, cosine weights, max-symmetrised), ``I - D^-1/2 W D^-1/2`` dense."""
  n = len(x)
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = xn @ xn.T
  nbr = np.argsort(-sim, axis=1, kind="stable")[:, :p + 1]
  w = np.zeros((n, n))
  rows = np.repeat(np.arange(n), p + 1)
  w[rows, nbr.ravel()] = sim[rows, nbr.ravel()]
  w = np.maximum(w, w.T)
  dinv = np.sqrt(1.0 / w.sum(0))
  return np.eye(n) - dinv[:, None] * w * dinv[None, :]


def reference_meda(xs, ys, xt, *, dim=20, p=10, lam=10.0, eta=0.1, rho=1.0,
                   T=10, svm_tol=1e-3, history=False):
  """MEDA as the MATLAB reference code solves it, in NumPy/SciPy/libsvm.

  ``GFK_Map``: PCA bases from SVDs, the source basis completed by
  ``null(Ps')``, the principal angles from the SVD of the cosine block
  (MATLAB's ``gsvd``), ``G`` formed in all ``D`` dimensions and
  ``real(sqrtm(G))`` (SciPy's Schur square root); the cosine kNN graph
  Laplacian and RBF kernel as dense ``n x n`` arrays; each iteration fits the
  ``C + 1`` linear hinge SVMs of ``estimate_mu`` with libsvm
  (``SVC(kernel="linear", C=1)``: ridge ``1/n``, bias unpenalised) on the
  ``D``-dimensional GFK features, forms the MMD matrix densely (Python loop
  over classes) and solves ``((E + lam M + rho L) K + eta I) beta = E Y``
  with ``np.linalg.solve``. Same settings as ``tlax.shallow.meda.MEDA()``;
  ``svm_tol`` is libsvm's stopping tolerance (tests use a tight one).

  Returns:
    target labels after the last iteration (values of ``ys``); with
    ``history=True`` the list of ``(mu, labels)`` of every iteration.
  """
  from sklearn.svm import SVC  # pylint: disable=g-import-not-at-top
  classes, ys = np.unique(ys, return_inverse=True)
  num_classes = len(classes)

  def pca(x):
    return np.linalg.svd(x - x.mean(0), full_matrices=False)[2].T

  ps, pt = pca(xs), pca(xt)[:, :dim]
  q = np.hstack([ps, scipy.linalg.null_space(ps.T)])
  qpt = q.T @ pt
  u1, gam, vt = np.linalg.svd(qpt[:dim])
  a2 = qpt[dim:] @ vt.T
  v2 = -a2 / np.linalg.norm(a2, axis=0)
  theta = np.arccos(np.clip(gam, -1.0, 1.0))
  sinc2 = np.sin(2 * theta) / 2 / np.maximum(theta, 1e-20)
  b1 = 0.5 * (1 + sinc2)
  b2 = 0.5 * (-1 + np.cos(2 * theta)) / 2 / np.maximum(theta, 1e-20)
  b4 = 0.5 * (1 - sinc2)
  basis = np.hstack([q[:, :dim] @ u1, q[:, dim:] @ v2])
  g = basis @ np.block([[np.diag(b1), np.diag(b2)],
                        [np.diag(b2), np.diag(b4)]]) @ basis.T
  sq_g = np.real(scipy.linalg.sqrtm(g))
  zs, zt = xs @ sq_g, xt @ sq_g
  ns, nt = len(zs), len(zt)
  n = ns + nt
  x = np.concatenate([zs, zt])
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  lap = reference_lapgraph(x, p)
  sq = (x ** 2).sum(1)
  sigma2 = np.sum(np.sqrt(sq)) / n
  kmat = np.exp(-(sq[:, None] + sq[None, :] - 2 * x @ x.T) / (2 * sigma2))
  e = np.diag(np.concatenate([np.ones(ns), np.zeros(nt)]))
  yy = np.concatenate([np.eye(num_classes)[ys], np.zeros((nt, num_classes))])
  cls = _nn_numpy(x[:ns], ys, x[ns:])

  def adist(a, b):
    if len(a) == 0 or len(b) == 0:
      return 2.0
    xx = np.concatenate([a, b])
    yv = np.concatenate([np.ones(len(a)), 2 * np.ones(len(b))])
    err = np.mean(SVC(kernel="linear", C=1.0, tol=svm_tol).fit(xx, yv)
                  .predict(xx) != yv)
    return 2.0 * (1.0 - 2.0 * err)

  steps = []
  for _ in range(T):
    adist_c = np.mean([adist(zs[ys == c], zt[cls == c])
                       for c in range(num_classes)])
    mu = adist_c / (adist_c + adist(zs, zt))
    mu = 1.0 if mu > 1 else (0.0 if mu <= 1e-3 else mu)
    e0 = np.concatenate([np.full(ns, 1.0 / ns), np.full(nt, -1.0 / nt)])
    m0 = np.outer(e0, e0) * num_classes
    mc = np.zeros((n, n))
    for c in range(num_classes):
      ec = np.zeros(n)
      ec[:ns][ys == c] = 1.0 / np.sum(ys == c)
      if np.any(cls == c):
        ec[ns:][cls == c] = -1.0 / np.sum(cls == c)
      mc += np.outer(ec, ec)
    m = (1 - mu) * m0 + mu * mc
    m = m / np.linalg.norm(m, "fro")
    beta = np.linalg.solve((e + lam * m + rho * lap) @ kmat + eta * np.eye(n),
                           e @ yy)
    cls = np.argmax(kmat @ beta, axis=1)[ns:]
    steps.append((mu, classes[cls]))
  return steps if history else classes[cls]


# ------------------------------------------------------------- registry --


@dataclasses.dataclass(frozen=True)
class BenchMethod:
  """One benchmarked method.

  Attributes:
    label: printed name.
    tlax: ``(xs, ys, xt, kernel) -> target labels`` with tlax; ``kernel`` is
      the ``--kernel`` flag (a method without that choice ignores it).
    reference: same signature, plain NumPy/SciPy, solved the way the
      reference code solves it.
    preprocess: :func:`tlax.data.files.load_features` preprocessing.
  """
  label: str
  tlax: Callable
  reference: Callable
  preprocess: str = "standard"


_JDA_SURF = dict(k=30, lam=1.0, T=10)   # the published SURF setting


def _tlax_jda(xs, ys, xt, kernel):
  from tlax.shallow import feature  # pylint: disable=g-import-not-at-top
  return feature.JDA(kernel=kernel, **_JDA_SURF).fit_predict(xs, ys, xt)


def _ref_jda(xs, ys, xt, kernel):
  return reference_jda(xs, ys, xt, kernel=kernel, **_JDA_SURF)


def _tlax_meda(xs, ys, xt, kernel):
  del kernel  # MEDA: RBF kernel, the paper's demo settings
  from tlax.shallow import meda  # pylint: disable=g-import-not-at-top
  return meda.MEDA().fit_predict(xs, ys, xt)


def _ref_meda(xs, ys, xt, kernel):
  del kernel
  return reference_meda(xs, ys, xt)


BENCH: dict[str, BenchMethod] = {
    "jda": BenchMethod("JDA", _tlax_jda, _ref_jda),
    "meda": BenchMethod("MEDA", _tlax_meda, _ref_meda),
}

# ------------------------------------------------------------------- run --


def _timed(fn, *args):
  t0, c0 = time.perf_counter(), time.process_time()
  out = fn(*args)
  return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--methods", default="jda")
  p.add_argument("--kernel", default="primal", choices=("primal", "linear"))
  p.add_argument("--tasks", default="",
                 help="comma-separated subset, e.g. C->A,D->W (default all)")
  p.add_argument("--threads", default="1",
                 help="BLAS/XLA threads for both implementations (set "
                      "before import; 0 leaves the defaults)")
  p.add_argument("--skip_reference", action="store_true")
  p.add_argument("--data_dir", default=None)
  args = p.parse_args(argv)
  tasks = shallow_tables.TASKS["office_caltech10"]
  if args.tasks:
    def key(name):  # "C->A", "C-A" and "CA" name the same task
      return name.replace("-", "").replace(">", "").upper()
    want = {key(w) for w in args.tasks.split(",")}
    tasks = [t for t in tasks if key(shallow_tables.task_name(t)) in want]
    if len(tasks) != len(want):
      p.error(f"unknown task in {args.tasks!r}")
  import jax  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):  # start the JAX runtime before timing anything
    jax.numpy.zeros(()).block_until_ready()
  print(f"# Office-Caltech10 SURF, kernel={args.kernel}, {len(tasks)} tasks, "
        f"threads={args.threads}, {os.cpu_count()} CPU cores visible. "
        "tlax 'cold' includes JIT compilation (JAX runtime started before), "
        "'warm' is a second run.")
  for name in args.methods.split(","):
    spec = BENCH[name]
    data = {}
    rows = []
    print(f"\n{spec.label}: wall seconds (CPU seconds)")
    print(f"{'task':8s} {'tlax cold':>15s} {'tlax warm':>15s} {'acc':>6s} "
          f"{'reference':>17s} {'acc':>6s} {'ratio':>6s} {'agree%':>7s}")
    for task in tasks:
      for dom in task:
        if dom not in data:
          data[dom] = files.load_features(f"office_caltech10/{dom}",
                                          args.data_dir,
                                          preprocess=spec.preprocess)
      (xs, ys), (xt, yt) = data[task[0]], data[task[1]]
      pred, t_cold, c_cold = _timed(spec.tlax, xs, ys, xt, args.kernel)
      _, t_warm, c_warm = _timed(spec.tlax, xs, ys, xt, args.kernel)
      acc = base.accuracy(yt, pred)
      if args.skip_reference:
        t_ref = c_ref = acc_ref = agree = float("nan")
      else:
        pred_ref, t_ref, c_ref = _timed(spec.reference, xs, ys, xt,
                                        args.kernel)
        acc_ref = base.accuracy(yt, pred_ref)
        agree = base.accuracy(pred, pred_ref)
      rows.append((t_cold, c_cold, t_warm, c_warm, acc, t_ref, c_ref,
                   acc_ref))
      print(f"{shallow_tables.task_name(task):8s} {t_cold:6.2f} ({c_cold:6.2f})"
            f" {t_warm:6.2f} ({c_warm:6.2f}) {acc:6.2f} {t_ref:7.2f} "
            f"({c_ref:7.2f}) {acc_ref:6.2f} {t_ref / t_cold:6.1f} "
            f"{agree:7.1f}", flush=True)
    r = np.array(rows).sum(0)
    m = np.array(rows).mean(0)
    print(f"{'total':8s} {r[0]:6.2f} ({r[1]:6.2f}) {r[2]:6.2f} ({r[3]:6.2f}) "
          f"{m[4]:6.2f} {r[5]:7.2f} ({r[6]:7.2f}) {m[7]:6.2f} "
          f"{r[5] / r[0]:6.1f}")
    print(f"{spec.label}, {len(tasks)} tasks: tlax {r[0]:.1f} s cold / "
          f"{r[2]:.1f} s warm, reference {r[5]:.1f} s: tlax is "
          f"{r[5] / r[0]:.1f}x faster cold, {r[5] / r[2]:.1f}x warm "
          f"(CPU time: {r[6] / r[1]:.1f}x / {r[6] / r[3]:.1f}x); mean "
          f"accuracy {m[4]:.2f} vs {m[7]:.2f}")

if __name__ == "__main__":
  main()
