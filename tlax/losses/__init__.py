"""Alignment losses: pure JAX functions on feature arrays.

Alignment losses take a source and a target batch of features and return a
scalar; per-example helpers (entropy, entropy weights) return per-example
values. Everything works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``;
half-precision inputs are computed in float32.

Modules::

  kernels      Gaussian (multi-bandwidth, one shared distance matrix),
               linear and polynomial kernels; bandwidth specs.
  mmd_losses   linear_mmd (DDC), mmd, mk_mmd (DAN), jmmd (JAN),
               class_conditional_mmd (DSAN local MMD, JDA/BDA/MEDA).
  moments      coral (Deep CORAL), cmd (central moment discrepancy).
  contrastive  class_prototypes, prototype_logits, prototypical_loss
               (prototypical networks), supervised_contrastive (SupCon),
               nt_xent (SimCLR), masked_mean.
  adversarial  gradient_reversal, grl_lambda_schedule, dann_domain_loss,
               cdan_multilinear, entropy_weights,
               margin_disparity_discrepancy (MDD).
  distance     proxy_a_distance.
  dynamic      dynamic distribution alignment with fixed or learned mu.
  separation   scale_invariant_mse, difference_loss (DSN);
               domain_confusion_loss, soft_label_loss (SDT).
  semisupervised  pseudo_label_cross_entropy (FixMatch family),
               self_adaptive_fairness (FreeMatch), softmax_mse (mean teacher).
"""

from tlax.losses.adversarial import cdan_multilinear
from tlax.losses.adversarial import cdan_random_projection
from tlax.losses.adversarial import dann_domain_loss
from tlax.losses.adversarial import entropy
from tlax.losses.adversarial import entropy_weights
from tlax.losses.adversarial import gradient_reversal
from tlax.losses.adversarial import grl_lambda_schedule
from tlax.losses.adversarial import margin_disparity_discrepancy
from tlax.losses.contrastive import class_prototypes
from tlax.losses.contrastive import l2_normalize
from tlax.losses.contrastive import masked_mean
from tlax.losses.contrastive import nt_xent
from tlax.losses.contrastive import prototype_logits
from tlax.losses.contrastive import prototypical_loss
from tlax.losses.contrastive import supervised_contrastive
from tlax.losses.distance import a_distance_from_error
from tlax.losses.distance import proxy_a_distance
from tlax.losses.dynamic import DynamicMuEstimator
from tlax.losses.dynamic import DynamicMuState
from tlax.losses.dynamic import dynamic_distribution_alignment
from tlax.losses.dynamic import dynamic_mmd
from tlax.losses.dynamic import dynamic_mu_estimator
from tlax.losses.dynamic import mu_from_a_distances
from tlax.losses.kernels import gaussian_kernel
from tlax.losses.kernels import gaussian_kernel_matrices
from tlax.losses.kernels import gaussian_sigmas
from tlax.losses.kernels import linear_kernel
from tlax.losses.kernels import pairwise_sq_distances
from tlax.losses.kernels import polynomial_kernel
from tlax.losses.mmd_losses import class_conditional_mmd
from tlax.losses.mmd_losses import jmmd
from tlax.losses.mmd_losses import linear_mmd
from tlax.losses.mmd_losses import mk_mmd
from tlax.losses.mmd_losses import mmd
from tlax.losses.moments import cmd
from tlax.losses.moments import coral
from tlax.losses.separation import difference_loss
from tlax.losses.separation import domain_confusion_loss
from tlax.losses.separation import scale_invariant_mse
from tlax.losses.separation import soft_label_loss
from tlax.losses.semisupervised import pseudo_label_cross_entropy
from tlax.losses.semisupervised import self_adaptive_fairness
from tlax.losses.semisupervised import softmax_mse

__all__ = [
    "class_prototypes",
    "l2_normalize",
    "masked_mean",
    "nt_xent",
    "prototype_logits",
    "prototypical_loss",
    "supervised_contrastive",
    "DynamicMuEstimator",
    "DynamicMuState",
    "a_distance_from_error",
    "cdan_multilinear",
    "cdan_random_projection",
    "class_conditional_mmd",
    "cmd",
    "coral",
    "dann_domain_loss",
    "difference_loss",
    "domain_confusion_loss",
    "dynamic_distribution_alignment",
    "dynamic_mmd",
    "dynamic_mu_estimator",
    "entropy",
    "entropy_weights",
    "gaussian_kernel",
    "gaussian_kernel_matrices",
    "gaussian_sigmas",
    "gradient_reversal",
    "grl_lambda_schedule",
    "jmmd",
    "linear_kernel",
    "linear_mmd",
    "margin_disparity_discrepancy",
    "mk_mmd",
    "mmd",
    "mu_from_a_distances",
    "pairwise_sq_distances",
    "polynomial_kernel",
    "proxy_a_distance",
    "pseudo_label_cross_entropy",
    "scale_invariant_mse",
    "self_adaptive_fairness",
    "soft_label_loss",
    "softmax_mse",
]
