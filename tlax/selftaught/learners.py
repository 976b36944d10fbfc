"""Unsupervised feature learners for self-taught learning, in JAX.

Every learner has the same two-call API::

    learner = SparseCoding(n_atoms=128, alpha=0.1, seed=0)
    learner.fit(x_unlabelled)          # (N, D) float array
    z = learner.transform(x)           # (M, K) features

``fit`` learns a representation from unlabelled data only; ``transform``
encodes any data of the same width. The numerical work of each learner is a
pure jitted function over arrays (the objectives are exported for tests and
for reuse): :func:`sparse_coding_objective`, :func:`fista_codes`,
:func:`dictionary_update`, :func:`sparse_autoencoder_loss`,
:func:`kl_sparsity`, :func:`denoising_autoencoder_loss`,
:func:`conv_sparse_features`.

Learners:
  * :class:`Raw`: the identity (the raw-feature baseline).
  * :class:`PCA`: principal components (the linear baseline).
  * :class:`SparseCoding`: dictionary learning with L1-regularised codes
    (Raina et al., 2007; Lee et al., 2007), codes by FISTA alternating with
    block-coordinate dictionary updates (Mairal et al., 2009).
  * :class:`SparseAutoencoder`: one sigmoid hidden layer with the KL sparsity
    penalty, trained by L-BFGS (Ng's UFLDL sparse autoencoder).
  * :class:`DenoisingAutoencoder`: masking-noise denoising autoencoder
    (Vincent et al., 2008), trained by Adam on minibatches.
  * :class:`ConvSparseCoding`: a sparse-coding dictionary of small image
    windows, applied to every window and pooled over image regions
    (:func:`conv_sparse_features`; Coates & Ng, 2011).

``atoms(learner)`` gives the learned basis (dictionary atoms, encoder weights
or principal directions), and :func:`plot_atoms` draws them as an image grid.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array


class FeatureLearnerInputError(ValueError):
  """Bad input to a feature learner (shape, NaNs, all zeros, sizes)."""


def check_unlabelled(x, *, name: str, what: str = "x") -> np.ndarray:
  """Validates a 2-D float data matrix and returns it as float32.

  Raises:
    FeatureLearnerInputError: not 2-D, empty, NaN or infinite values, or every
      entry zero (nothing to learn from).
  """
  x = np.asarray(x)
  if x.ndim != 2:
    raise FeatureLearnerInputError(
        f"{name}: {what} must be 2-D (n_examples, n_features), got shape "
        f"{x.shape}; flatten images first (x.reshape(len(x), -1)).")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise FeatureLearnerInputError(f"{name}: {what} is empty, shape {x.shape}.")
  x = x.astype(np.float32)
  if not np.isfinite(x).all():
    rows = int((~np.isfinite(x)).any(axis=1).sum())
    raise FeatureLearnerInputError(
        f"{name}: {what} contains NaN or infinite values in {rows} of "
        f"{len(x)} rows; remove or impute them before fitting.")
  if not np.any(x):
    raise FeatureLearnerInputError(
        f"{name}: {what} is all zeros; there is no structure to learn. "
        "Check the data loading (e.g. images divided twice by 255).")
  return x


class _Learner:
  """Shared validation of ``fit``/``transform`` inputs."""
  name = "learner"
  n_features_in_: int | None = None

  def _check_fit(self, x):
    x = check_unlabelled(x, name=type(self).__name__, what="unlabelled data")
    self.n_features_in_ = x.shape[1]
    return x

  def _check_transform(self, x):
    if self.n_features_in_ is None:
      raise RuntimeError(f"{type(self).__name__}: call fit(x) before "
                         "transform(x).")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != self.n_features_in_:
      raise FeatureLearnerInputError(
          f"{type(self).__name__}: transform expects (n, "
          f"{self.n_features_in_}) inputs like the fitted data, got shape "
          f"{x.shape}.")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
      raise FeatureLearnerInputError(
          f"{type(self).__name__}: transform input contains NaN or infinite "
          "values.")
    return x

  def fit_transform(self, x):
    return self.fit(x).transform(x)


# ---------------------------------------------------------------------------
# Raw and PCA.
# ---------------------------------------------------------------------------
class Raw(_Learner):
  """The identity map: raw features, the baseline every learner must beat."""
  name = "raw"

  def fit(self, x):
    self._check_fit(x)
    return self

  def transform(self, x):
    return self._check_transform(x)


class PCA(_Learner):
  r"""Principal component analysis fitted on the unlabelled data.

  .. math::
    z = (x - \mu) V_{:K}, \qquad X - \mu = U S V^\top

  Args:
    n_components: number of components ``K`` (at most ``min(N, D)``).
    whiten: divide each component by its standard deviation.
  """
  name = "pca"

  def __init__(self, n_components: int = 64, whiten: bool = False):
    self.n_components = int(n_components)
    self.whiten = bool(whiten)

  def fit(self, x):
    x = self._check_fit(x)
    k = self.n_components
    if not 1 <= k <= min(x.shape):
      raise FeatureLearnerInputError(
          f"PCA: n_components={k} but the data ({x.shape[0]} examples x "
          f"{x.shape[1]} features) allow at most {min(x.shape)}; lower "
          "n_components.")
    self.mean_, self.components_, self.scale_ = _pca_fit(jnp.asarray(x), k)
    return self

  def transform(self, x):
    x = self._check_transform(x)
    z = (jnp.asarray(x) - self.mean_) @ self.components_.T
    if self.whiten:
      z = z / self.scale_
    return np.asarray(z)

  @property
  def atoms(self):
    return np.asarray(self.components_)


@functools.partial(jax.jit, static_argnums=1)
def _pca_fit(x, k):
  mean = x.mean(axis=0)
  _, s, vt = jnp.linalg.svd(x - mean, full_matrices=False)
  scale = jnp.maximum(s[:k] / jnp.sqrt(max(x.shape[0] - 1, 1)), 1e-12)
  return mean, vt[:k], scale


# ---------------------------------------------------------------------------
# Sparse coding.
# ---------------------------------------------------------------------------
def soft_threshold(x: Array, t) -> Array:
  """The proximal operator of ``t * |.|_1``: ``sign(x) * max(|x| - t, 0)``."""
  return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0.0)


def sparse_coding_objective(x: Array, codes: Array, dictionary: Array,
                            alpha) -> Array:
  r"""The sparse-coding objective, averaged over examples.

  .. math::
    f(A, D) = \frac{1}{N} \sum_{i=1}^N \Big( \tfrac12 \lVert x_i - a_i D
    \rVert_2^2 + \alpha \lVert a_i \rVert_1 \Big),
    \qquad \lVert d_k \rVert_2 \le 1

  (the objective of scikit-learn's ``DictionaryLearning``, per example).

  Args:
    x: data ``(N, D)``.
    codes: codes ``A`` ``(N, K)``.
    dictionary: atoms as rows ``D`` ``(K, D)``.
    alpha: L1 weight.

  Returns:
    The scalar objective.

  References:
    Lee, Battle, Raina & Ng, Efficient sparse coding algorithms, NIPS 2007.
  """
  r = x - codes @ dictionary
  return (0.5 * jnp.sum(r * r) + alpha * jnp.sum(jnp.abs(codes))) / x.shape[0]


def _lipschitz(dictionary):
  # Largest eigenvalue of D D^T: the Lipschitz constant of the smooth part.
  return jnp.maximum(jnp.linalg.eigvalsh(dictionary @ dictionary.T)[-1], 1e-8)


def fista_codes(x: Array, dictionary: Array, alpha, codes0: Array,
                n_steps: int) -> Array:
  r"""L1-regularised codes by FISTA (accelerated proximal gradient).

  Minimises :func:`sparse_coding_objective` over the codes ``A`` for a fixed
  dictionary, from ``codes0``:

  .. math::
    A_{t+1} = \mathcal{S}_{\alpha/L}\big(Y_t - (Y_t D D^\top - X D^\top)/L
    \big), \quad Y_{t+1} = A_{t+1} + \tfrac{s_t - 1}{s_{t+1}}(A_{t+1} - A_t)

  with ``L`` the largest eigenvalue of ``D D^T`` and ``S`` the soft threshold.

  Args:
    x: data ``(N, D)``.
    dictionary: ``(K, D)``.
    alpha: L1 weight.
    codes0: starting codes ``(N, K)`` (zeros, or the previous codes).
    n_steps: number of FISTA iterations (static under jit).

  Returns:
    Codes ``(N, K)``.

  References:
    Beck & Teboulle, A fast iterative shrinkage-thresholding algorithm for
    linear inverse problems, SIAM J. Imaging Sciences 2009.
  """
  gram = dictionary @ dictionary.T
  cov = x @ dictionary.T
  lip = _lipschitz(dictionary)

  def body(_, carry):
    a, y, s = carry
    a_new = soft_threshold(y - (y @ gram - cov) / lip, alpha / lip)
    s_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * s * s))
    y_new = a_new + ((s - 1.0) / s_new) * (a_new - a)
    return a_new, y_new, s_new

  a, _, _ = jax.lax.fori_loop(0, n_steps, body,
                              (codes0, codes0, jnp.ones((), x.dtype)))
  return a


def dictionary_update(dictionary: Array, gram: Array, cross: Array,
                      n_sweeps: int = 1) -> Array:
  r"""Block-coordinate descent on the atoms, each kept in the unit ball.

  With ``G = A^T A`` and ``B = A^T X``, each atom in turn is set to the
  minimiser of the quadratic part over that atom, then projected:

  .. math::
    u_k = d_k + (B_k - G_k D) / G_{kk}, \qquad
    d_k = u_k / \max(\lVert u_k \rVert_2, 1)

  Atoms whose code column is all zero (``G_kk = 0``) are left unchanged.

  Args:
    dictionary: ``(K, D)``.
    gram: ``A^T A`` ``(K, K)``.
    cross: ``A^T X`` ``(K, D)``.
    n_sweeps: passes over all atoms (static under jit).

  Returns:
    The updated dictionary ``(K, D)``.

  References:
    Mairal, Bach, Ponce & Sapiro, Online dictionary learning for sparse
    coding, ICML 2009 (Algorithm 2).
  """
  k = dictionary.shape[0]

  def atom(j, d):
    gjj = gram[j, j]
    u = d[j] + (cross[j] - gram[j] @ d) / jnp.maximum(gjj, 1e-12)
    u = u / jnp.maximum(jnp.linalg.norm(u), 1.0)
    return d.at[j].set(jnp.where(gjj > 1e-12, u, d[j]))

  return jax.lax.fori_loop(0, n_sweeps * k, lambda i, d: atom(i % k, d),
                           dictionary)


@functools.partial(jax.jit, static_argnames=("n_iter", "code_steps"))
def learn_dictionary(x: Array, dictionary0: Array, alpha, *, n_iter: int,
                     code_steps: int):
  """Alternates :func:`fista_codes` and :func:`dictionary_update`.

  Returns:
    ``(dictionary, codes, objectives)`` with the objective after each
    iteration, shape ``(n_iter,)``.
  """
  codes0 = jnp.zeros((x.shape[0], dictionary0.shape[0]), x.dtype)

  def body(carry, _):
    d, a = carry
    a = fista_codes(x, d, alpha, a, code_steps)
    d = dictionary_update(d, a.T @ a, a.T @ x)
    return (d, a), sparse_coding_objective(x, a, d, alpha)

  (d, a), objectives = jax.lax.scan(body, (dictionary0, codes0), None,
                                    length=n_iter)
  return d, a, objectives


@functools.partial(jax.jit, static_argnames=("n_steps",))
def _encode(x, dictionary, alpha, *, n_steps):
  codes0 = jnp.zeros((x.shape[0], dictionary.shape[0]), x.dtype)
  return fista_codes(x, dictionary, alpha, codes0, n_steps)


class SparseCoding(_Learner):
  r"""Dictionary learning with L1-regularised codes (self-taught learning).

  Fits ``D`` (``n_atoms`` unit-norm atoms) and codes ``A`` minimising
  :func:`sparse_coding_objective` by alternating ``code_steps`` warm-started
  FISTA iterations on all codes with one block-coordinate sweep over the
  atoms, ``n_iter`` times, all in one jitted ``lax.scan``. ``transform`` gives
  the codes of new data for the fixed dictionary (FISTA from zero,
  ``transform_steps`` iterations): Raina et al.'s features.

  Inputs are centred by the mean of the unlabelled data (stored and
  subtracted again in ``transform``) when ``center=True``.

  Args:
    n_atoms: dictionary size ``K``; at most the number of examples.
    alpha: L1 weight of the codes.
    n_iter: alternations.
    code_steps: FISTA iterations per alternation.
    transform_steps: FISTA iterations of ``transform``.
    center: subtract the mean of the unlabelled data.
    seed: the initial atoms are ``K`` distinct examples drawn with this seed.

  Attributes:
    dictionary_: ``(K, D)`` atoms; objectives_: objective per iteration.

  References:
    Raina, Battle, Lee, Packer & Ng, Self-taught learning: transfer learning
    from unlabeled data, ICML 2007.
  """
  name = "sparse_coding"

  def __init__(self, n_atoms: int = 128, alpha: float = 0.1, *,
               n_iter: int = 50, code_steps: int = 20,
               transform_steps: int = 100, center: bool = True, seed: int = 0):
    if alpha <= 0:
      raise FeatureLearnerInputError(
          f"SparseCoding: alpha must be > 0, got {alpha!r}.")
    self.n_atoms, self.alpha = int(n_atoms), float(alpha)
    self.n_iter, self.code_steps = int(n_iter), int(code_steps)
    self.transform_steps, self.center = int(transform_steps), bool(center)
    self.seed = int(seed)

  def initial_dictionary(self, x: np.ndarray) -> np.ndarray:
    """``n_atoms`` distinct examples (non-zero), scaled to unit norm."""
    norms = np.linalg.norm(x, axis=1)
    usable = np.flatnonzero(norms > 1e-8)
    if self.n_atoms > len(usable):
      raise FeatureLearnerInputError(
          f"SparseCoding: n_atoms={self.n_atoms} is larger than the "
          f"{len(usable)} non-zero examples the data allow (shape "
          f"{x.shape}); use n_atoms <= {len(usable)} or more unlabelled data.")
    rng = np.random.default_rng(self.seed)
    idx = rng.choice(usable, self.n_atoms, replace=False)
    return x[idx] / norms[idx, None]

  def fit(self, x):
    x = self._check_fit(x)
    if self.n_atoms < 1:
      raise FeatureLearnerInputError(
          f"SparseCoding: n_atoms must be >= 1, got {self.n_atoms}.")
    self.mean_ = x.mean(axis=0) if self.center else np.zeros(x.shape[1],
                                                             np.float32)
    xc = x - self.mean_
    d0 = self.initial_dictionary(xc)
    d, _, obj = learn_dictionary(jnp.asarray(xc), jnp.asarray(d0),
                                 jnp.float32(self.alpha), n_iter=self.n_iter,
                                 code_steps=self.code_steps)
    self.dictionary_ = np.asarray(d)
    self.objectives_ = np.asarray(obj)
    return self

  def transform(self, x):
    x = self._check_transform(x) - self.mean_
    return np.asarray(_encode(jnp.asarray(x), jnp.asarray(self.dictionary_),
                              jnp.float32(self.alpha),
                              n_steps=self.transform_steps))

  @property
  def atoms(self):
    return self.dictionary_


# ---------------------------------------------------------------------------
# Sparse autoencoder (UFLDL).
# ---------------------------------------------------------------------------
def kl_sparsity(rho, rho_hat: Array) -> Array:
  r"""KL divergence between Bernoulli(rho) and Bernoulli(rho_hat), summed.

  .. math::
    \sum_j \rho \log\frac{\rho}{\hat\rho_j}
    + (1 - \rho) \log\frac{1 - \rho}{1 - \hat\rho_j}

  Args:
    rho: target mean activation (scalar in (0, 1)).
    rho_hat: mean activation of each hidden unit ``(H,)``, in (0, 1).

  Returns:
    Scalar.
  """
  return jnp.sum(rho * jnp.log(rho / rho_hat)
                 + (1.0 - rho) * jnp.log((1.0 - rho) / (1.0 - rho_hat)))


def sparse_autoencoder_loss(params, x: Array, rho, beta, weight_decay,
                            linear_decoder: bool = False) -> Array:
  r"""The sparse autoencoder cost of the UFLDL tutorial.

  .. math::
    h = \sigma(x W_1 + b_1), \quad \hat x = g(h W_2 + b_2), \\
    J = \frac{1}{N}\sum_i \tfrac12 \lVert \hat x_i - x_i \rVert^2
      + \tfrac{\lambda}{2}(\lVert W_1\rVert^2 + \lVert W_2 \rVert^2)
      + \beta\, \mathrm{KL}(\rho \,\Vert\, \hat\rho),
    \quad \hat\rho = \frac1N \sum_i h_i

  with ``g`` the sigmoid, or the identity when ``linear_decoder``.

  Args:
    params: ``{"w1": (D, H), "b1": (H,), "w2": (H, D), "b2": (D,)}``.
    x: data ``(N, D)``.
    rho: target sparsity. beta: weight of the sparsity penalty.
    weight_decay: ``lambda``.
    linear_decoder: identity output (for unbounded inputs).

  Returns:
    Scalar cost.

  References:
    Ng, Sparse autoencoder, CS294A lecture notes (UFLDL), 2011.
  """
  h = jax.nn.sigmoid(x @ params["w1"] + params["b1"])
  out = h @ params["w2"] + params["b2"]
  if not linear_decoder:
    out = jax.nn.sigmoid(out)
  rec = 0.5 * jnp.sum((out - x) ** 2) / x.shape[0]
  decay = 0.5 * weight_decay * (jnp.sum(params["w1"] ** 2)
                                + jnp.sum(params["w2"] ** 2))
  rho_hat = jnp.clip(h.mean(axis=0), 1e-6, 1.0 - 1e-6)
  return rec + decay + beta * kl_sparsity(rho, rho_hat)


def _init_autoencoder(key, d, h):
  # UFLDL's initialisation: uniform in +-sqrt(6 / (D + H + 1)).
  r = math.sqrt(6.0 / (d + h + 1))
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.uniform(k1, (d, h), jnp.float32, -r, r),
          "b1": jnp.zeros((h,), jnp.float32),
          "w2": jax.random.uniform(k2, (h, d), jnp.float32, -r, r),
          "b2": jnp.zeros((d,), jnp.float32)}


@functools.partial(jax.jit, static_argnames=("steps", "linear_decoder"))
def _train_sparse_autoencoder(params, x, rho, beta, weight_decay, *, steps,
                              linear_decoder):
  fun = functools.partial(sparse_autoencoder_loss, x=x, rho=rho, beta=beta,
                          weight_decay=weight_decay,
                          linear_decoder=linear_decoder)
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(fun)

  def step(carry, _):
    p, s = carry
    value, grad = value_and_grad(p, state=s)
    updates, s = opt.update(grad, s, p, value=value, grad=grad, value_fn=fun)
    return (optax.apply_updates(p, updates), s), value

  (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None,
                                     length=steps)
  return params, losses


class SparseAutoencoder(_Learner):
  """Sparse autoencoder with the KL sparsity penalty, trained by L-BFGS.

  ``transform`` gives the hidden activations ``sigmoid(x W1 + b1)``.

  Args:
    n_hidden: hidden units ``H``.
    rho: target mean activation. beta: sparsity weight.
    weight_decay: L2 weight ``lambda``.
    steps: L-BFGS iterations (UFLDL: 400).
    linear_decoder: identity output layer (inputs outside [0, 1]).
    seed: initialisation.

  References:
    Ng, Sparse autoencoder, CS294A lecture notes (UFLDL), 2011.
  """
  name = "sparse_autoencoder"

  def __init__(self, n_hidden: int = 196, rho: float = 0.1, beta: float = 3.0,
               weight_decay: float = 3e-3, *, steps: int = 400,
               linear_decoder: bool = False, seed: int = 0):
    if not 0.0 < rho < 1.0:
      raise FeatureLearnerInputError(
          f"SparseAutoencoder: rho must be in (0, 1), got {rho!r}.")
    self.n_hidden, self.rho, self.beta = int(n_hidden), float(rho), float(beta)
    self.weight_decay, self.steps = float(weight_decay), int(steps)
    self.linear_decoder, self.seed = bool(linear_decoder), int(seed)

  def fit(self, x):
    x = self._check_fit(x)
    if not self.linear_decoder and (x.min() < 0 or x.max() > 1):
      raise FeatureLearnerInputError(
          "SparseAutoencoder: a sigmoid decoder reconstructs inputs in "
          f"[0, 1], got values in [{x.min():.3g}, {x.max():.3g}]; rescale "
          "them or pass linear_decoder=True.")
    params = _init_autoencoder(jax.random.PRNGKey(self.seed), x.shape[1],
                               self.n_hidden)
    params, losses = _train_sparse_autoencoder(
        params, jnp.asarray(x), self.rho, self.beta, self.weight_decay,
        steps=self.steps, linear_decoder=self.linear_decoder)
    self.params_ = jax.device_get(params)
    self.losses_ = np.asarray(losses)
    return self

  def transform(self, x):
    x = self._check_transform(x)
    return np.asarray(jax.nn.sigmoid(jnp.asarray(x) @ self.params_["w1"]
                                     + self.params_["b1"]))

  @property
  def atoms(self):
    return np.asarray(self.params_["w1"]).T


# ---------------------------------------------------------------------------
# Denoising autoencoder.
# ---------------------------------------------------------------------------
def denoising_autoencoder_loss(params, x: Array, mask: Array) -> Array:
  r"""Reconstruction of clean inputs from masked ones (masking noise).

  .. math::
    h = \mathrm{relu}((m \odot x) W_1 + b_1),\quad
    \hat x = h W_2 + b_2,\quad
    J = \frac1N \sum_i \tfrac12 \lVert \hat x_i - x_i \rVert_2^2

  Args:
    params: ``{"w1", "b1", "w2", "b2"}`` as in
      :func:`sparse_autoencoder_loss`.
    x: clean inputs ``(N, D)``.
    mask: ``(N, D)`` of 0/1 (1 keeps the input).

  Returns:
    Scalar cost.

  References:
    Vincent, Larochelle, Bengio & Manzagol, Extracting and composing robust
    features with denoising autoencoders, ICML 2008.
  """
  h = jax.nn.relu((x * mask) @ params["w1"] + params["b1"])
  out = h @ params["w2"] + params["b2"]
  return 0.5 * jnp.sum((out - x) ** 2) / x.shape[0]


@functools.partial(jax.jit, static_argnames=("steps", "batch_size"))
def _train_denoising(params, x, key, noise, lr, *, steps, batch_size):
  tx = optax.adam(lr)
  grad_fn = jax.value_and_grad(denoising_autoencoder_loss)

  def step(carry, k):
    p, s = carry
    k1, k2 = jax.random.split(k)
    idx = jax.random.randint(k1, (batch_size,), 0, x.shape[0])
    xb = x[idx]
    mask = jax.random.bernoulli(k2, 1.0 - noise, xb.shape).astype(xb.dtype)
    loss, g = grad_fn(p, xb, mask)
    updates, s = tx.update(g, s, p)
    return (optax.apply_updates(p, updates), s), loss

  (params, _), losses = jax.lax.scan(step, (params, tx.init(params)),
                                     jax.random.split(key, steps))
  return params, losses


def floored_std(x: np.ndarray) -> np.ndarray:
  """Per-feature standard deviation of ``x`` (rows are examples), floored
  at a tenth of its mean over the features."""
  std = x.std(axis=0)
  return np.maximum(std, max(0.1 * float(std.mean()), 1e-12))


class DenoisingAutoencoder(_Learner):
  """Denoising autoencoder with masking noise (ReLU code, linear decoder).

  ``transform`` gives the ReLU code of the clean input, ``relu(x W1 + b1)``.
  Inputs are standardised by the mean and standard deviation of the
  unlabelled data (per feature; the deviation floored at a tenth of the
  mean deviation, :func:`floored_std`, as the protocol's scaling).

  Args:
    n_hidden: code size. noise: fraction of inputs set to zero.
    steps, batch_size, lr: Adam training.
    seed: initialisation and noise.

  References:
    Vincent, Larochelle, Bengio & Manzagol, ICML 2008.
  """
  name = "denoising_autoencoder"

  def __init__(self, n_hidden: int = 256, noise: float = 0.3, *,
               steps: int = 2000, batch_size: int = 128, lr: float = 1e-3,
               seed: int = 0):
    if not 0.0 <= noise < 1.0:
      raise FeatureLearnerInputError(
          f"DenoisingAutoencoder: noise must be in [0, 1), got {noise!r}.")
    self.n_hidden, self.noise = int(n_hidden), float(noise)
    self.steps, self.batch_size, self.lr = int(steps), int(batch_size), lr
    self.seed = int(seed)

  def fit(self, x):
    x = self._check_fit(x)
    self.mean_ = x.mean(axis=0)
    # An input (nearly) constant on the unlabelled data (MNIST's border
    # pixels) would otherwise reach thousands on a domain where it varies
    # (the font letters' backgrounds) and swamp every code there.
    self.scale_ = floored_std(x)
    xs = (x - self.mean_) / self.scale_
    key = jax.random.PRNGKey(self.seed)
    k_init, k_train = jax.random.split(key)
    params = _init_autoencoder(k_init, x.shape[1], self.n_hidden)
    params, losses = _train_denoising(
        params, jnp.asarray(xs), k_train, self.noise, self.lr,
        steps=self.steps, batch_size=min(self.batch_size, len(x)))
    self.params_ = jax.device_get(params)
    self.losses_ = np.asarray(losses)
    return self

  def transform(self, x):
    x = (self._check_transform(x) - self.mean_) / self.scale_
    return np.asarray(jax.nn.relu(jnp.asarray(x) @ self.params_["w1"]
                                  + self.params_["b1"]))

  @property
  def atoms(self):
    return np.asarray(self.params_["w1"]).T


# ---------------------------------------------------------------------------
# Convolutional sparse-coding features (patch dictionary, pooled encoding).
# ---------------------------------------------------------------------------
def image_patches(images: Array, patch: int) -> Array:
  """Every ``patch x patch`` window of grey images, stride 1.

  Args:
    images: ``(n, h, w)``.
    patch: the window side.

  Returns:
    ``(n, h - patch + 1, w - patch + 1, patch * patch)``; the last axis is
    the window in row-major order (``images[i, r:r+p, c:c+p].ravel()``).
  """
  return jax.lax.conv_general_dilated_patches(
      images[..., None], (patch, patch), (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def normalise_patches(patches: Array, eps) -> Array:
  """Per-window brightness and contrast normalisation: each window minus its
  mean, divided by ``sqrt(variance + eps)`` (Coates, Lee & Ng, 2011)."""
  centred = patches - patches.mean(-1, keepdims=True)
  return centred / jnp.sqrt(centred.var(-1, keepdims=True) + eps)


def zca_whitening(x: np.ndarray, eps: float):
  """``(mean, W)`` with ``(x - mean) @ W`` ZCA-whitened:
  ``W = V diag(1 / sqrt(lambda + eps)) V^T`` from the covariance's
  eigen-decomposition."""
  mean = x.mean(axis=0)
  cov = np.cov(x - mean, rowvar=False)
  lam, vec = np.linalg.eigh(cov)
  w = (vec / np.sqrt(np.maximum(lam, 0.0) + eps)) @ vec.T
  return mean.astype(np.float32), w.astype(np.float32)


def pool_grid(maps: Array, grid: int) -> Array:
  """Sums ``(n, h, w, k)`` feature maps over a ``grid x grid`` partition of
  the positions (the last ``h % grid`` rows and ``w % grid`` columns are
  dropped); returns ``(n, grid * grid * k)``, region-major."""
  n, h, w, k = maps.shape
  hh, ww = h // grid, w // grid
  maps = maps[:, :hh * grid, :ww * grid]
  return maps.reshape(n, grid, hh, grid, ww, k).sum((2, 4)).reshape(n, -1)


@functools.partial(jax.jit, static_argnames=("patch", "grid"))
def conv_sparse_features(images: Array, mean: Array, whitening: Array,
                         dictionary: Array, threshold, contrast_eps, *,
                         patch: int, grid: int) -> Array:
  r"""Pooled soft-threshold features of every window of the images.

  Each window is normalised (:func:`normalise_patches`), whitened
  (``(p - mean) @ whitening``) and projected on the atoms, ``z = D p``; the
  split-sign soft-threshold code ``[max(z - t, 0), max(-z - t, 0)]``
  (Coates & Ng, ICML 2011) is summed over a ``grid x grid`` partition of the
  positions (:func:`pool_grid`).

  Returns:
    ``(n, grid * grid * 2K)``: positive parts of every region, then negative
    parts.
  """
  p = normalise_patches(image_patches(images, patch), contrast_eps)
  z = ((p - mean) @ whitening) @ dictionary.T
  return jnp.concatenate([pool_grid(jax.nn.relu(z - threshold), grid),
                          pool_grid(jax.nn.relu(-z - threshold), grid)], -1)


class ConvSparseCoding(_Learner):
  r"""Sparse coding of small image windows, applied convolutionally.

  ``fit`` draws ``n_patches`` random ``patch x patch`` windows of the
  unlabelled images, normalises their brightness and contrast, ZCA-whitens
  them and learns a dictionary of ``n_atoms`` atoms on them with
  :class:`SparseCoding`. ``transform`` encodes every window of an image
  (stride 1) with the split-sign soft-threshold code at ``alpha`` and sums
  the codes over a ``pool x pool`` grid of image regions
  (:func:`conv_sparse_features`): ``pool * pool * 2 * n_atoms`` features.
  Raina et al. learned their image bases on small patches likewise; the
  encoding and pooling follow Coates & Ng.

  Args:
    image_shape: ``(h, w)`` of the flattened grey images; None: square,
      side ``sqrt(D)``.
    patch: the window side.
    n_atoms, alpha, n_iter, code_steps: the patch dictionary
      (:class:`SparseCoding`); ``alpha`` is also the encoding's threshold.
    n_patches: windows drawn from the unlabelled images for ``fit``.
    pool: the pooling grid's side.
    contrast_eps, zca_eps: regularisers of the window normalisation and the
      whitening.
    batch_size: images encoded per jitted call.
    seed: the windows drawn and the dictionary's initial atoms.

  Attributes:
    dictionary_: ``(K, patch * patch)`` atoms (whitened space);
    objectives_: the dictionary objective per alternation; atom_shape:
    ``(patch, patch)``.

  References:
    Raina, Battle, Lee, Packer & Ng, ICML 2007; Coates, Lee & Ng, AISTATS
    2011; Coates & Ng, ICML 2011.
  """
  name = "conv_sparse_coding"

  def __init__(self, image_shape=None, *, patch: int = 6, n_atoms: int = 128,
               alpha: float = 0.2, n_patches: int = 50000, pool: int = 2,
               n_iter: int = 30, code_steps: int = 20,
               contrast_eps: float = 0.01, zca_eps: float = 0.1,
               batch_size: int = 256, seed: int = 0):
    if alpha <= 0:
      raise FeatureLearnerInputError(
          f"ConvSparseCoding: alpha must be > 0, got {alpha!r}.")
    for field, value in (("patch", patch), ("pool", pool),
                         ("n_patches", n_patches), ("batch_size", batch_size)):
      if int(value) < 1:
        raise FeatureLearnerInputError(
            f"ConvSparseCoding: {field} must be >= 1, got {value!r}.")
    self.image_shape = None if image_shape is None else tuple(
        int(v) for v in image_shape)
    self.patch, self.n_atoms = int(patch), int(n_atoms)
    self.alpha = float(alpha)
    self.n_patches, self.pool = int(n_patches), int(pool)
    self.n_iter, self.code_steps = int(n_iter), int(code_steps)
    self.contrast_eps, self.zca_eps = float(contrast_eps), float(zca_eps)
    self.batch_size, self.seed = int(batch_size), int(seed)

  @property
  def atom_shape(self):
    return (self.patch, self.patch)

  def _shape(self, d):
    if self.image_shape is None:
      side = int(round(math.sqrt(d)))
      if side * side != d:
        raise FeatureLearnerInputError(
            f"ConvSparseCoding: rows of {d} values are not square images; "
            "pass image_shape=(h, w).")
      shape = (side, side)
    else:
      shape = self.image_shape
    if shape[0] * shape[1] != d:
      raise FeatureLearnerInputError(
          f"ConvSparseCoding: image_shape={shape} has {shape[0] * shape[1]} "
          f"pixels but the rows have {d} values.")
    maps = (shape[0] - self.patch + 1, shape[1] - self.patch + 1)
    if min(maps) < 1:
      raise FeatureLearnerInputError(
          f"ConvSparseCoding: patch={self.patch} is larger than the "
          f"{shape[0]}x{shape[1]} images; use patch <= {min(shape)}.")
    if self.pool > min(maps):
      raise FeatureLearnerInputError(
          f"ConvSparseCoding: pool={self.pool} is larger than the "
          f"{maps[0]}x{maps[1]} window positions of {shape[0]}x{shape[1]} "
          f"images with patch={self.patch}; use pool <= {min(maps)}.")
    return shape

  def fit(self, x):
    x = self._check_fit(x)
    self.shape_ = self._shape(x.shape[1])
    images = x.reshape(len(x), *self.shape_)
    rng = np.random.default_rng(self.seed)
    h, w = self.shape_[0] - self.patch + 1, self.shape_[1] - self.patch + 1
    idx = rng.integers(0, len(x), self.n_patches)
    rows = rng.integers(0, h, self.n_patches)
    cols = rng.integers(0, w, self.n_patches)
    # (n, h, w, p, p) view of every window, gathered at the drawn positions.
    all_windows = np.lib.stride_tricks.sliding_window_view(
        images, (self.patch, self.patch), axis=(1, 2))
    windows = all_windows[idx, rows, cols].reshape(self.n_patches, -1)
    windows = np.asarray(normalise_patches(jnp.asarray(windows),
                                           self.contrast_eps))
    self.mean_, self.whitening_ = zca_whitening(windows, self.zca_eps)
    coder = SparseCoding(self.n_atoms, self.alpha, n_iter=self.n_iter,
                         code_steps=self.code_steps, center=False,
                         seed=self.seed)
    coder.fit((windows - self.mean_) @ self.whitening_)
    self.dictionary_ = coder.dictionary_
    self.objectives_ = coder.objectives_
    return self

  def transform(self, x):
    x = self._check_transform(x)
    images = x.reshape(len(x), *self.shape_)
    args = (jnp.asarray(self.mean_), jnp.asarray(self.whitening_),
            jnp.asarray(self.dictionary_), jnp.float32(self.alpha),
            jnp.float32(self.contrast_eps))
    # Every call sees a full batch (the last one zero-padded), so the
    # encoding compiles once per batch size.
    n, b = len(images), min(self.batch_size, len(images))
    padded = np.zeros((-(-n // b) * b, *self.shape_), np.float32)
    padded[:n] = images
    out = [np.asarray(conv_sparse_features(
        jnp.asarray(padded[i:i + b]), *args, patch=self.patch,
        grid=self.pool)) for i in range(0, len(padded), b)]
    return np.concatenate(out)[:n]

  @property
  def atoms(self):
    return self.dictionary_


LEARNERS = {
    "raw": Raw,
    "pca": PCA,
    "sparse_coding": SparseCoding,
    "sparse_autoencoder": SparseAutoencoder,
    "denoising_autoencoder": DenoisingAutoencoder,
    "conv_sparse_coding": ConvSparseCoding,
}


def get_learner(name: str, **kwargs) -> _Learner:
  """A learner of :data:`LEARNERS` by name, built with ``kwargs``."""
  if name not in LEARNERS:
    raise KeyError(f"Unknown feature learner {name!r}; valid: "
                   f"{', '.join(LEARNERS)}.")
  return LEARNERS[name](**kwargs)


def plot_atoms(atoms, image_shape, path=None, *, n: int = 100,
               cell_inches: float = 0.5, dpi: int = 80, title=None):
  """Draws learned atoms (rows of ``atoms``) as a grid of images.

  Each atom is scaled to its own [min, max] (grey colour map).

  Args:
    atoms: ``(K, prod(image_shape))`` array, e.g. ``learner.atoms``.
    image_shape: ``(H, W)`` of one atom.
    path: if given, the figure is saved there (PNG) and closed.
    n: at most this many atoms (the first ones).

  Returns:
    The figure (None when saved).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  atoms = np.asarray(atoms)
  h, w = image_shape
  if atoms.ndim != 2 or atoms.shape[1] != h * w:
    raise ValueError(f"atoms of shape {atoms.shape} are not rows of "
                     f"{h}x{w} images.")
  atoms = atoms[:n]
  cols = int(math.ceil(math.sqrt(len(atoms))))
  rows = int(math.ceil(len(atoms) / cols))
  fig, axes = plt.subplots(rows, cols, squeeze=False,
                           figsize=(cols * cell_inches, rows * cell_inches))
  for ax in axes.ravel():
    ax.axis("off")
  for ax, a in zip(axes.ravel(), atoms):
    a = a.reshape(h, w)
    lo, hi = a.min(), a.max()
    ax.imshow((a - lo) / max(hi - lo, 1e-12), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout(pad=0.1)
  if path is not None:
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return None
  return fig
