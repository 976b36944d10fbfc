"""Geodesic flow kernel (GFK), as MEDA's manifold feature learning uses it.

Gong, Shi, Sha and Grauman, "Geodesic flow kernel for unsupervised domain
adaptation", CVPR 2012. With ``Ps, Pt`` the ``d``-dimensional PCA bases of
the source and target (``D x d``, orthonormal columns), the geodesic
``Phi(t)`` on the Grassmann manifold from ``span(Ps)`` (t = 0) to
``span(Pt)`` (t = 1) gives the kernel

.. math::

   G = \\int_0^1 \\Phi(t) \\Phi(t)^\\top dt,
   \\qquad \\langle x_i, x_j \\rangle_G = x_i^\\top G x_j .

Closed form (as MATLAB ``GFK_core`` computes it with a generalised SVD of
``[Ps, null(Ps')]' * Pt``): with ``Ps' Pt = U1 cos(Theta) V'`` (the principal
angles ``Theta``) and ``Rs U2 = -(I - Ps Ps') Pt V / sin(Theta)`` (unit
columns; the minus sign is MATLAB's ``V2 = -V2``),

.. math::

   G = [P_s U_1,\\; R_s U_2]
       \\begin{bmatrix} \\Lambda_1 & \\Lambda_2 \\\\ \\Lambda_2 & \\Lambda_3
       \\end{bmatrix}
       [P_s U_1,\\; R_s U_2]^\\top,

``Lambda1 = 1/2 (1 + sin 2T / 2T)``, ``Lambda2 = 1/2 (cos 2T - 1) / 2T``,
``Lambda3 = 1/2 (1 - sin 2T / 2T)`` (diagonal). ``B = [Ps U1, Rs U2]`` has
orthonormal columns, so ``G`` has rank ``2d`` and
``sqrtm(G) = B sqrtm(Lambda) B'`` costs ``O(D d^2)`` instead of an
``O(D^3)`` matrix square root. Only the first ``d`` source directions enter
``G`` (completing the source basis by ``null(Ps')`` as MATLAB's ``GFK_Map``
does changes nothing: ``Rs U2`` depends only on ``Ps`` and ``Pt``).

MEDA's features are ``X sqrtm(G)`` (MATLAB ``real(G^0.5)``, i.e. negative
eigenvalues of ``G`` clipped to 0), in all ``D`` original dimensions. Their
inner products equal those of the ``2d``-dimensional coordinates
``X B sqrtm(Lambda)``, which :meth:`GFK.transform` returns with
``reduced=True`` and which MEDA works with.

Difference to the MATLAB code: at a principal angle of exactly 0 MATLAB's
``max(theta, 1e-20)`` gives ``Lambda1 = Lambda3 = 1/2`` instead of the limits
1 and 0; this code uses the limits (``sinc``). For angles that are not
exactly zero the two agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tlax.shallow import base


def _top_pcs(x, d: int):
  """First ``d`` principal directions (``D x d``) of the rows of ``x``.

  MATLAB ``pca``: centred data; the eigenvectors of the smaller of the two
  Gram matrices (``D x D`` covariance or ``n x n``), largest first.
  """
  x = x - jnp.mean(x, axis=0, keepdims=True)
  n, dim = x.shape
  if n >= dim:
    _, vecs = jnp.linalg.eigh(x.T @ x)
    return vecs[:, ::-1][:, :d]
  vals, vecs = jnp.linalg.eigh(x @ x.T)
  vals, vecs = vals[::-1][:d], vecs[:, ::-1][:, :d]
  p = x.T @ vecs / jnp.sqrt(jnp.maximum(vals, jnp.finfo(x.dtype).tiny))
  return p / jnp.linalg.norm(p, axis=0, keepdims=True)


pca_basis = jax.jit(_top_pcs, static_argnames="d")
pca_basis.__doc__ = """First ``d`` principal directions (``D x d``) of ``x``'s rows (jitted)."""


def _gfk_factors(ps, pt):
  """``(B, Lam)`` with ``G = B Lam B'``; ``ps`` ``D x k`` (k >= d), ``pt`` ``D x d``."""
  d = pt.shape[1]
  ps = ps[:, :d]
  a1 = ps.T @ pt                                  # cos of the angles (SVD)
  u1, gam, vt = jnp.linalg.svd(a1)
  v = vt.T
  resid = pt @ v - ps @ (a1 @ v)                  # (I - Ps Ps') Pt V
  sig = jnp.linalg.norm(resid, axis=0)
  tiny = jnp.finfo(pt.dtype).tiny
  rs_u2 = -resid / jnp.maximum(sig, tiny)[None, :]   # MATLAB: V2 = -V2
  rs_u2 = jnp.where(sig[None, :] > 0, rs_u2, 0.0)
  theta = jnp.arctan2(sig, gam)                   # robust acos(gam)
  s2 = jnp.sinc(2.0 * theta / jnp.pi)             # sin(2T) / 2T
  l1 = 0.5 * (1.0 + s2)
  l2 = -0.5 * jnp.sin(theta) * jnp.sinc(theta / jnp.pi)   # (cos 2T - 1)/4T
  l3 = 0.5 * (1.0 - s2)
  b = jnp.concatenate([ps @ u1, rs_u2], axis=1)
  lam = jnp.block([[jnp.diag(l1), jnp.diag(l2)], [jnp.diag(l2), jnp.diag(l3)]])
  return b, lam


def _sqrt_psd(lam):
  """Symmetric square root of a symmetric matrix, negative eigenvalues -> 0."""
  vals, vecs = jnp.linalg.eigh(0.5 * (lam + lam.T))
  return (vecs * jnp.sqrt(jnp.maximum(vals, 0.0))) @ vecs.T


@jax.jit
def gfk_kernel(ps, pt):
  """The geodesic flow kernel ``G`` (``D x D``) between two subspaces.

  Args:
    ps: ``D x k`` orthonormal source basis, ``k >= d``; only its first ``d``
      columns enter (MATLAB passes the completed basis ``[Ps, null(Ps')]``).
    pt: ``D x d`` orthonormal target basis (MATLAB ``Pt(:, 1:d)``).

  Returns:
    ``G``, symmetric positive semi-definite of rank ``2d`` (when
    ``2d <= D`` and no principal angle is 0).
  """
  b, lam = _gfk_factors(ps, pt)
  return b @ lam @ b.T


@jax.jit
def _factors_and_projection(ps, pt):
  b, lam = _gfk_factors(ps, pt)
  return b, lam, b @ _sqrt_psd(lam)


def pca_basis_host(x, d: int):
  """:func:`pca_basis` with LAPACK's ``?syevr`` computing only the ``d``
  wanted eigenvectors (SciPy, on the host, in ``x``'s dtype).

  XLA:CPU's ``eigh`` has no eigenvalue subset: on Office-Caltech10's SURF
  features (800 x 800 covariance, float64) it took about 3x as long as this.
  The subspace agrees with :func:`pca_basis` to rounding.
  """
  import scipy.linalg  # pylint: disable=g-import-not-at-top
  x = np.asarray(x)
  x = x - x.mean(axis=0, keepdims=True)
  n, dim = x.shape
  gram = x.T @ x if n >= dim else x @ x.T
  m = gram.shape[0]
  k = min(d, m)
  vals, vecs = scipy.linalg.eigh(gram, subset_by_index=[m - k, m - 1],
                                 driver="evr", check_finite=False)
  vals, vecs = vals[::-1], vecs[:, ::-1]
  if n >= dim:
    return np.ascontiguousarray(vecs)
  p = x.T @ vecs / np.sqrt(np.maximum(vals, np.finfo(x.dtype).tiny))
  return p / np.linalg.norm(p, axis=0, keepdims=True)


def _fit_gfk(xs, xt, d):
  """PCA bases on the host (:func:`pca_basis_host`, LAPACK through SciPy:
  the same computation whatever the accelerator), then the
  ``n``-independent factors (one program per ``D, d``)."""
  ps, pt = (jnp.asarray(pca_basis_host(x, d)) for x in (xs, xt))
  return (ps, pt) + _factors_and_projection(ps, pt)


class GFK:
  """Geodesic flow kernel features, and 1-NN in them.

  ``GFK(dim=20).fit(Xs, ys, Xt)``: PCA bases of each domain (``dim``
  components), the kernel ``G``; ``transform(X)`` gives ``X sqrtm(G)``
  (``reduced=True``: the equivalent ``2 dim`` coordinates), ``predict(X)``
  the 1-NN label from the source in that space (the GFK + 1-NN baseline of
  Gong et al.). ``ys`` may be None when only the features are wanted.

  Attributes after fit: ``ps_``, ``pt_``: ``D x dim`` PCA bases;
  ``basis_`` (``B``, ``D x 2 dim``) and ``lam_`` (``2 dim x 2 dim``) with
  ``G = B lam B'``; ``proj_ = B sqrtm(lam)`` (so ``X sqrtm(G) = X proj_ B'``
  and ``X proj_`` are the reduced coordinates).
  """

  def __init__(self, dim: int = 20):
    self.dim = base.integer(dim, "dim", "GFK")

  def fit(self, xs, ys=None, xt=None):
    if xt is None:
      raise base.ShallowInputError("GFK: fit needs the target features Xt.")
    if ys is None:
      ys_check = np.zeros(len(np.asarray(xs)), np.int64)
      ys_check[:1] = 1  # validation only: labels are not used
      xs, _, xt, _ = base.check_inputs(xs, ys_check, xt, name="GFK",
                                       min_classes=1)
      self.classes_, self.ys_ = None, None
    else:
      xs, ys, xt, self.classes_ = base.check_inputs(xs, ys, xt, name="GFK")
      self.ys_ = ys
    check_dim(self.dim, xs, xt, "GFK")
    with jax.enable_x64(True):
      out = _fit_gfk(jnp.asarray(xs), jnp.asarray(xt), self.dim)
      self.ps_, self.pt_, self.basis_, self.lam_, self.proj_ = (
          np.asarray(a) for a in out)
    self.n_features_ = xs.shape[1]
    self.zs_ = xs @ self.proj_
    return self

  @property
  def kernel_(self):
    """``G`` (``D x D``)."""
    return self.basis_ @ self.lam_ @ self.basis_.T

  def transform(self, x, reduced: bool = False):
    """``X sqrtm(G)`` (``n x D``), or with ``reduced`` the ``n x 2 dim``
    coordinates that have the same inner products."""
    x = base.check_features(x, self.n_features_, name="GFK")
    z = x @ self.proj_
    return z if reduced else z @ self.basis_.T

  def predict(self, x):
    if self.ys_ is None:
      raise base.ShallowInputError("GFK: predict needs source labels in fit.")
    z = self.transform(x, reduced=True)
    return self.classes_[base.nearest_neighbor_predict(self.zs_, self.ys_, z)]

  def fit_predict(self, xs, ys, xt):
    return self.fit(xs, ys, xt).predict(xt)


def check_dim(dim: int, xs, xt, name: str) -> None:
  """Raises ShallowInputError when ``dim`` PCA components do not exist."""
  limit = min(xs.shape[0] - 1, xt.shape[0] - 1, xs.shape[1])
  if dim < 1 or dim > limit:
    raise base.ShallowInputError(
        f"{name}: subspace dimension dim={dim} must be in [1, {limit}] "
        f"(at most min(n_source - 1, n_target - 1, n_features) principal "
        f"components exist; got {xs.shape[0]} source, {xt.shape[0]} target "
        f"samples with {xs.shape[1]} features).")
