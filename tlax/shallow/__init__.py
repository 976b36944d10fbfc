"""Closed-form transfer: feature maps, instance weights and baselines.

Estimators with a ``fit`` / ``transform`` / ``predict`` API on NumPy arrays::

    import tlax
    jda = tlax.shallow.JDA(k=30, lam=1.0).fit(xs, ys, xt)
    yt_pred = jda.predict(xt)

Feature transfer: :class:`TCA`, :class:`JDA`, :class:`BDA`, :class:`MEDA`
(with :class:`GFK`), :class:`CORAL`. Instance weighting: :class:`KMM`,
:class:`DomainClassifierWeights`, :class:`TrAdaBoost` (and the functions
:func:`kmm_weights`, :func:`domain_classifier_weights`). Baselines:
:class:`NearestNeighbor`, :class:`LinearSVM`, :class:`LinearSVMClassifier`.
"""

from tlax.shallow.base import ShallowInputError
from tlax.shallow.baselines import LinearSVM
from tlax.shallow.baselines import LinearSVMClassifier
from tlax.shallow.baselines import NearestNeighbor
from tlax.shallow.feature import BDA
from tlax.shallow.feature import CORAL
from tlax.shallow.feature import JDA
from tlax.shallow.feature import TCA
from tlax.shallow.gfk import GFK
from tlax.shallow.meda import MEDA
from tlax.shallow.weighting import DomainClassifierWeights
from tlax.shallow.weighting import KMM
from tlax.shallow.weighting import TrAdaBoost
from tlax.shallow.weighting import domain_classifier_weights
from tlax.shallow.weighting import kmm_weights

__all__ = [
    "BDA", "CORAL", "DomainClassifierWeights", "GFK", "JDA", "KMM",
    "LinearSVM", "LinearSVMClassifier", "MEDA", "NearestNeighbor",
    "ShallowInputError", "TCA", "TrAdaBoost", "domain_classifier_weights",
    "kmm_weights",
]
