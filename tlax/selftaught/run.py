"""The self-taught family runner: ``config.runner = "tlax.selftaught.run:run"``.

One run is one representation (``config.method.name``: a learner of
:data:`tlax.selftaught.learners.LEARNERS`, or ``stc`` for clustering) on one
task (``config.source`` -> ``config.target``) with one seed.

``config.protocol == "classification"`` (self-taught learning): the learner
is fitted on the unlabelled source and the protocol of
:mod:`tlax.selftaught.protocol` is run for every ``k`` of ``config.ks``;
``result.json`` holds ``k1``, ``k5``, ... (target accuracy, percent) and
``target_accuracy`` (the largest ``k``). The seed sets the learner's
initialisation and the labelled draws.

``config.protocol == "clustering"`` (self-taught clustering): the target is
clustered with the source as unlabelled auxiliary data. ``result.json`` holds
``nmi.<algorithm>`` and ``acc.<algorithm>`` (percent) for ``stc``,
``kmeans`` and ``spectral`` on the target alone, and ``kmeans_selftaught``
and ``spectral_selftaught`` on sparse codes learned from the auxiliary data.
On image tasks with ``config.clustering.image_features = "visual_words"``,
``stc`` clusters visual-word counts learned from the auxiliary images
(:func:`visual_words`), and ``stc_pixels`` (STC on pixel intensities) and
``kmeans_words`` (k-means on the same visual words) are added.

Domain names:
  * any :func:`tlax.data.load_domain` name; image domains are made grey and
    flattened at ``config.image_size``;
  * ``<name>[a-b]`` keeps the classes ``a..b`` only (e.g.
    ``digits/sklearn[5-9]``), relabelled ``0..``;
  * ``photos/sklearn`` (source only): square grey patches of
    ``config.image_size`` cut at several scales from scikit-learn's two
    sample photographs, ``config.n_patches`` of them.

A finished run rerun with the same config returns its ``result.json``; a
different config in the same workdir is refused, naming the differing keys.
"""

from __future__ import annotations

import json
import os
import re
import time

import jax
import numpy as np

from tlax.selftaught import clustering as clustering_lib
from tlax.selftaught import learners as learners_lib
from tlax.selftaught import protocol as protocol_lib

PHOTOS = "photos/sklearn"
_CLASS_RANGE = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<lo>\d+)-(?P<hi>\d+)\]$")


def parse_domain(spec: str):
  """``(name, (lo, hi) or None)`` of ``"name"`` or ``"name[lo-hi]"``."""
  m = _CLASS_RANGE.match(spec)
  if m:
    lo, hi = int(m["lo"]), int(m["hi"])
    if lo > hi:
      raise ValueError(f"Empty class range in {spec!r}: {lo} > {hi}.")
    return m["name"], (lo, hi)
  if "[" in spec or "]" in spec:
    raise ValueError(f"Cannot read the domain {spec!r}; write a class range "
                     "as 'name[lo-hi]', e.g. 'digits/sklearn[5-9]'.")
  return spec, None


def photo_patches(size: int, n: int, seed: int) -> np.ndarray:
  """``n`` grey ``size x size`` patches of the scikit-learn sample photos.

  Patches are cut at random positions of each photograph shrunk by 2, 4 and
  8 (equal shares), so they show edges and textures at several scales.
  Returns ``(n, size * size)`` float32 in [0, 1].
  """
  from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
  from tlax.data import domains  # pylint: disable=g-import-not-at-top
  photos = [np.asarray(im, np.float32) / 255.0
            for im in load_sample_images().images]
  grey = [p @ np.array([0.299, 0.587, 0.114], np.float32) for p in photos]
  rng = np.random.default_rng(seed)
  pyramids = []
  for g in grey:
    for f in (2, 4, 8):
      h, w = g.shape[0] // f, g.shape[1] // f
      pyramids.append(domains.resize_images(g[None, :, :, None], (h, w))[0,
                                                                         ..., 0])
  out = np.empty((n, size * size), np.float32)
  for i in range(n):
    p = pyramids[i % len(pyramids)]
    r = rng.integers(0, p.shape[0] - size + 1)
    c = rng.integers(0, p.shape[1] - size + 1)
    out[i] = p[r:r + size, c:c + size].ravel()
  return out


def load_arrays(spec: str, config, *, split: str = "train", **extra_options):
  """``(x, y, domain info)``: flattened grey examples of one domain split.

  ``y`` is None for :data:`PHOTOS`. ``info`` has ``transductive``,
  ``num_classes`` and ``image_shape`` (None for feature domains).
  """
  import tlax.data as td  # pylint: disable=g-import-not-at-top
  size = image_size(config)
  if spec == PHOTOS:
    x = photo_patches(size, int(config.n_patches), int(config.seed))
    return x, None, {"transductive": False, "num_classes": 0,
                     "image_shape": (size, size)}
  name, classes = parse_domain(spec)
  options = dict(config.domain_options.get(name.replace("/", "_"), {}))
  options.update(extra_options)
  probe = td.load_domain(name, data_dir=config.data_dir, **options)
  if probe.kind == "image":
    dom = td.load_domain(name, image_size=size, channels=1,
                         data_dir=config.data_dir, **options)
    shape = (size, size)
  else:
    dom, shape = probe, None
  x, y = dom.splits[split]
  x = np.asarray(x, np.float32).reshape(len(x), -1)
  y = np.asarray(y)
  n_classes = dom.num_classes
  if classes is not None:
    lo, hi = classes
    if hi >= dom.num_classes:
      raise ValueError(f"{spec}: class {hi} out of range; {name} has "
                       f"{dom.num_classes} classes (0..{dom.num_classes - 1}).")
    keep = (y >= lo) & (y <= hi)
    x, y = x[keep], y[keep] - lo
    n_classes = hi - lo + 1
  return x, y, {"transductive": dom.transductive, "num_classes": n_classes,
                "image_shape": shape}


def image_size(config) -> int:
  """``config.image_size``, or 32 for a COIL-20 target and 16 otherwise."""
  if config.image_size:
    return int(config.image_size)
  return 32 if config.target.startswith("coil20/") else 16


def make_learner(config, seed, image_shape=None):
  """The learner ``config.method.name`` with its settings from
  ``config.learner``, seeded (all but ``raw`` and ``pca``); image learners
  get ``image_shape`` and refuse a task without one."""
  kwargs = dict(config.learner.get(config.method.name, {}))
  if config.method.name not in ("raw", "pca"):
    kwargs["seed"] = seed
  if config.method.name == "conv_sparse_coding":
    if image_shape is None:
      raise ValueError(
          f"conv_sparse_coding learns image windows, but {config.source} -> "
          f"{config.target} is not an image task; use an image source and "
          "target, or another learner.")
    kwargs["image_shape"] = image_shape
  return learners_lib.get_learner(config.method.name, **kwargs)


def _finished(config, workdir):
  """The stored result of this config in ``workdir``, or None."""
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  return trainer.stored_result(workdir, trainer.config_to_dict(config))


def _write(result, workdir):
  from tlax.train.metrics_log import write_atomic  # pylint: disable=g-import-not-at-top
  write_atomic(os.path.join(workdir, "result.json"),
               json.dumps(result, indent=2) + "\n")


def run(config, workdir, **unused_kwargs) -> dict:
  """Runs one self-taught experiment and writes ``<workdir>/result.json``.

  Args:
    config: a config of ``experiments/configs/selftaught/`` (fields
      ``protocol``, ``method.name``, ``source``, ``target``, ``seed``,
      ``ks``, ``learner.<name>``, ``classifier``, ``C``, ``image_size``,
      ``clustering.*``).
    workdir: the run folder.

  Returns:
    The result dict.
  """
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  workdir = os.path.abspath(os.fspath(workdir))
  os.makedirs(workdir, exist_ok=True)
  previous = _finished(config, workdir)
  if previous is not None:
    return previous
  t0 = time.time()
  if config.protocol == "classification":
    result = _run_classification(config, workdir)
  elif config.protocol == "clustering":
    result = _run_clustering(config, workdir)
  else:
    raise ValueError(f"config.protocol must be 'classification' or "
                     f"'clustering', got {config.protocol!r}.")
  result.update({
      "method": config.method.name, "source": config.source,
      "target": config.target, "seed": int(config.seed),
      "wall_time_s": time.time() - t0,
      "device": jax.devices()[0].device_kind,
      "jax_version": jax.__version__,
      "config": trainer.config_to_dict(config),
  })
  _write(result, workdir)
  return result


def _run_classification(config, workdir):
  seed = int(config.seed)
  xu, _, src_info = load_arrays(config.source, config)
  xtr, ytr, info = load_arrays(config.target, config, split="train")
  if info["transductive"]:
    xte, yte = xtr, ytr
  else:
    xte, yte, _ = load_arrays(config.target, config, split="test")
  if len(xu) > int(config.max_unlabelled):
    idx = np.random.default_rng(seed).choice(len(xu), int(config.max_unlabelled),
                                             replace=False)
    xu = xu[np.sort(idx)]
  ks, skipped = [], []
  for k in config.ks:
    try:
      protocol_lib.draw_labelled(ytr, k, np.random.default_rng(0),
                                 leave_one=info["transductive"])
      ks.append(int(k))
    except protocol_lib.ProtocolInputError:
      if config.ks_too_large != "skip":
        raise
      skipped.append(int(k))
  if not ks:
    raise protocol_lib.ProtocolInputError(
        f"Every k of config.ks={tuple(config.ks)} is too large for "
        f"{config.target} (skipped: {skipped}); use smaller ks.")
  if src_info["image_shape"] != info["image_shape"]:
    shape = None  # feature data on one side: no image learner applies
  else:
    shape = info["image_shape"]
  learner = make_learner(config, seed, shape)
  out = protocol_lib.self_taught_accuracy(
      learner, xu, (xtr, ytr), (xte, yte), ks=tuple(ks), seed=seed,
      transductive=info["transductive"], classifier=config.classifier,
      C=float(config.C))
  result = {f"k{k}": acc for k, acc in out["accuracy"].items()}
  result["target_accuracy"] = out["accuracy"][max(out["accuracy"])]
  result.update(skipped_ks=skipped, n_unlabelled=len(xu), n_features=out["n_features"],
                fit_time_s=out["fit_time_s"])
  if hasattr(learner, "objectives_"):
    result["final_objective"] = float(learner.objectives_[-1])
  if hasattr(learner, "losses_"):
    result["final_loss"] = float(learner.losses_[-1])
  shape = getattr(learner, "atom_shape", None) or (src_info["image_shape"]
                                                   or info["image_shape"])
  atoms = getattr(learner, "atoms", None)
  if config.plots and atoms is not None and shape is not None:
    learners_lib.plot_atoms(atoms, shape, os.path.join(workdir, "atoms.png"),
                            n=64, title=f"{config.method.name} atoms, "
                            f"{config.source}")
  return result


def visual_words(config, x_target, x_aux, target_shape, aux_shape):
  """``(target, auxiliary)`` visual-word features for STC, or None.

  With ``config.clustering.image_features == "visual_words"`` and images of
  one shape on both sides: a window dictionary learned on the auxiliary
  images (:class:`~tlax.selftaught.learners.ConvSparseCoding` with
  ``config.learner.conv_sparse_coding``, seeded by ``config.seed``), and
  each image's pooled non-negative window codes: ``pool * pool * 2 *
  n_atoms`` features, each atom's positive and negative code mass in each
  image region. None for feature data, images of different shapes, or
  ``image_features == "pixels"``.
  """
  mode = config.clustering.get("image_features", "pixels")
  if mode not in ("visual_words", "pixels"):
    raise ValueError(
        f"config.clustering.image_features={mode!r}; use 'visual_words' "
        "(STC on window codes learned from the auxiliary images) or "
        "'pixels'.")
  if mode == "pixels" or target_shape is None or target_shape != aux_shape:
    return None
  try:
    learner = learners_lib.ConvSparseCoding(
        image_shape=target_shape, seed=int(config.seed),
        **dict(config.learner.conv_sparse_coding)).fit(x_aux)
  except learners_lib.FeatureLearnerInputError as e:
    raise learners_lib.FeatureLearnerInputError(
        f"{e} (STC's visual words for {config.source} -> {config.target}: "
        "set config.learner.conv_sparse_coding.*, a larger "
        "config.image_size, or config.clustering.image_features='pixels'.)"
    ) from e
  return learner.transform(x_target), learner.transform(x_aux)


def _run_clustering(config, workdir):
  del workdir
  seed = int(config.seed)
  c = config.clustering
  xa, _, src_info = load_arrays(config.source, config)
  xt_all, yt, info = load_arrays(config.target, config)
  keep = np.arange(len(yt))
  rng = np.random.default_rng(seed)
  size = int(c.target_size.get(config.target.split("/")[0], 0))
  if size and len(yt) > size:
    # A small target: the same number of examples of every class.
    per = size // info["num_classes"]
    idx = np.concatenate([rng.choice(np.flatnonzero(yt == k),
                                     min(per, int((yt == k).sum())),
                                     replace=False)
                          for k in range(info["num_classes"])])
    keep = np.sort(idx)
  xt, yt = xt_all[keep], yt[keep]
  k = info["num_classes"]
  # Non-negative data for STC (office: raw SURF counts), the domains' own
  # features for the distance-based baselines.
  def nonnegative(spec, x):
    if parse_domain(spec)[0].startswith("office_caltech10/"):
      return load_arrays(spec, config, preprocess="none")[0]
    return x
  xt_nn = nonnegative(config.target, xt_all)[keep]
  xa_nn = nonnegative(config.source, xa)
  labels = {}
  stc_kwargs = dict(n_feature_clusters=int(c.n_feature_clusters),
                    lam=float(c.lam), n_iter=int(c.n_iter),
                    n_init=int(c.get("n_init", 1)), seed=seed)
  words = visual_words(config, xt, xa, info["image_shape"],
                       src_info["image_shape"])
  if words is not None:
    # Images: STC on visual-word counts learned from the auxiliary images
    # (as Dai et al. clustered Caltech-256 images by bags of visual words);
    # STC on pixel intensities and k-means on the same words beside it.
    labels["stc_pixels"] = clustering_lib.self_taught_clustering(
        xt_nn, xa_nn, k, **stc_kwargs).labels
    labels["kmeans_words"] = clustering_lib.kmeans(words[0], k, seed=seed)
    xt_nn, xa_nn = words
  stc = clustering_lib.self_taught_clustering(xt_nn, xa_nn, k, **stc_kwargs)
  labels["stc"] = stc.labels
  labels["kmeans"] = clustering_lib.kmeans(xt, k, seed=seed)
  labels["spectral"] = clustering_lib.spectral(xt, k, seed=seed)
  sc = learners_lib.SparseCoding(**dict(config.learner.sparse_coding),
                                 seed=seed).fit(xa)
  codes = sc.transform(xt)
  labels["kmeans_selftaught"] = clustering_lib.kmeans(codes, k, seed=seed)
  labels["spectral_selftaught"] = clustering_lib.spectral(codes, k, seed=seed)
  return {
      "nmi": {a: clustering_lib.normalized_mutual_info(yt, l)
              for a, l in labels.items()},
      "acc": {a: clustering_lib.clustering_accuracy(yt, l)
              for a, l in labels.items()},
      "n_target": int(len(xt)), "n_aux": int(len(xa)),
      "stc_objectives": [float(v) for v in stc.objectives],
  }
