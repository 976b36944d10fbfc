r"""DomainBed's random hyper-parameter search and its tables.

For every test domain, algorithm, hyper-parameter draw and trial, one run of
``experiments/configs/dg/<dataset>.py`` (the other domains of the dataset
train it); then, per trial, the draw a selection rule prefers, and the test
accuracy of that draw, mean ± std over trials (Gulrajani & Lopez-Paz, ICLR
2021). Draw 0 is the default hyper-parameters; draw ``d > 0`` samples
DomainBed's distributions (:data:`DISTRIBUTIONS`, the "small images" ones:
ColoredMNIST, RotatedMNIST) seeded by ``(algorithm, draw, trial)``. The
trial is the run's seed (data split, initialisation, batches).

Selection rules, both at each run's final step as in DomainBed:
``training-domain validation`` (the draw with the best accuracy on the
training domains' held-out 20%) and the ``test-domain oracle`` (the draw
with the best test-domain accuracy: it reads the test labels, reported
separately and labelled as such).

COMMAND:
  python -m experiments.dg_search --dataset=colored_mnist \
    --algorithms=erm,irm,vrex --draws=5 --trials=3 --steps=300 \
    --root=runs/dg_search --out=docs/results_dg_search.md

Finished runs are read back, so the command can be stopped and rerun;
``--table_only`` tabulates the finished runs without running any.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from typing import Any, Callable, Mapping

from absl import app
from absl import flags
import numpy as np

from experiments import pages
from experiments.configs import common

# tlax option -> (default, sampler of a numpy Generator), per algorithm.
# DomainBed's names: irm_lambda, irm_penalty_anneal_iters, vrex_lambda,
# vrex_penalty_anneal_iters, groupdro_eta, mixup_alpha, mldg_beta,
# mmd_gamma (CORAL, MMD), lambda and mlp_width (DANN, CDANN), Fishr's
# lambda, penalty_anneal_iters and ema, rsc_f/b_drop_factor. DomainBed's
# other DANN options (separate learning rates, discriminator steps, gradient
# penalty, beta1) have no counterpart in tlax's DANN and are not drawn.
_LOG_U = lambda lo, hi: (lambda r: float(10 ** r.uniform(lo, hi)))
DISTRIBUTIONS: dict[str, dict[str, tuple[Any, Callable]]] = {
    "erm": {},
    "irm": {"method.lambda": (100.0, _LOG_U(-1, 5)),
            "method.anneal_steps": (500, lambda r: int(10 ** r.uniform(0, 4)))},
    "vrex": {"method.lambda": (10.0, _LOG_U(-1, 5)),
             "method.anneal_steps": (500,
                                     lambda r: int(10 ** r.uniform(0, 4)))},
    "group_dro": {"method.eta": (0.01, _LOG_U(-3, -1))},
    "mixup": {"method.alpha": (0.2, _LOG_U(-1, 1))},
    "mldg": {"method.beta": (1.0, _LOG_U(-1, 1))},
    "coral_dg": {"method.lambda": (1.0, _LOG_U(-1, 1))},
    "mmd_dg": {"method.lambda": (1.0, _LOG_U(-1, 1))},
    "dann_dg": {"method.lambda": (1.0, _LOG_U(-2, 2)),
                "method.disc_width": (256,
                                      lambda r: int(2 ** r.uniform(6, 10)))},
    "cdann": {"method.lambda": (1.0, _LOG_U(-2, 2)),
              "method.disc_width": (256, lambda r: int(2 ** r.uniform(6, 10)))},
    "mixstyle": {},
    "fishr": {"method.lambda": (1000.0, _LOG_U(1, 4)),
              "method.anneal_steps": (1500,
                                      lambda r: int(r.uniform(0, 5000))),
              "method.ema": (0.95, lambda r: float(r.uniform(0.90, 0.99)))},
    "rsc": {"method.drop_f": (1 / 3, lambda r: float(r.uniform(0, 0.5))),
            "method.drop_b": (1 / 3, lambda r: float(r.uniform(0, 0.5)))},
    "selfreg": {},
}
# Every algorithm (DomainBed, small images): learning rate and the batch
# size per training domain.
COMMON = {
    "optimizer.lr": (1e-3, _LOG_U(-4.5, -2.5)),
    "batch_per_domain": (64, lambda r: int(2 ** r.uniform(3, 9))),
}
SELECTIONS = ("training-domain validation", "test-domain oracle")
# DomainBed's steps per run: its schedules (the penalty anneal steps of IRM,
# VREx and Fishr) are drawn for runs of this length.
DOMAINBED_STEPS = 5000
# The algorithms whose optimiser DomainBed restarts when the penalty weight
# switches on.
RESET_ALGORITHMS = ("irm", "vrex", "fishr")


def _rng(algorithm: str, name: str, draw: int, trial: int):
  digest = hashlib.sha256(
      f"{algorithm}/{name}/{draw}/{trial}".encode()).digest()
  return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def draw_hparams(algorithm: str, draw: int, trial: int) -> dict[str, Any]:
  """The hyper-parameters of one draw: the defaults for ``draw == 0``, else
  one sample of each distribution (its own stream per name, so adding a
  hyper-parameter leaves the others' values unchanged)."""
  if algorithm not in DISTRIBUTIONS:
    raise ValueError(f"Unknown algorithm {algorithm!r}; valid: "
                     f"{', '.join(DISTRIBUTIONS)}.")
  if draw < 0:
    raise ValueError(f"draw must be >= 0, got {draw}.")
  out = {}
  for name, (default, sample) in {**COMMON,
                                  **DISTRIBUTIONS[algorithm]}.items():
    out[name] = default if draw == 0 else sample(
        _rng(algorithm, name, draw, trial))
  return out


def config_for(dataset: str, algorithm: str, test_domain: str | None,
               draw: int, trial: int, steps: int | None = None,
               quick: bool = False, image_size: int | None = None,
               scale_schedules: bool = False, reset_optimizer: bool = False,
               final_eval_only: bool = False):
  """The run's config: the dataset's config for ``algorithm`` with the
  draw's hyper-parameters, ``seed = trial`` and, if given, another test
  domain (the dataset's other domains train) and another image size;
  ``quick``: the config's quick mode (tests). ``scale_schedules``: the
  drawn step counts (``method.anneal_steps``) are multiplied by
  ``steps / DOMAINBED_STEPS`` and rounded, so that a penalty switches on at
  the same fraction of a shorter run as in DomainBed's 5,000 steps.
  ``reset_optimizer``: the algorithms with a penalty schedule (IRM, VREx,
  Fishr) restart the optimiser when their penalty switches on, as
  DomainBed does (``method.reset_optimizer``). ``final_eval_only``: the
  run evaluates only at its last step, the one both selection rules read
  (no accuracy curve; faster)."""
  module = importlib.import_module(f"experiments.configs.dg.{dataset}")
  c = module.get_config(algorithm + (",quick" if quick else ""))
  if image_size:
    check_image_size(module, dataset, image_size)
    c.image_size = int(image_size)
  if test_domain:
    domains = list(module.DOMAINS)
    test_domain = resolve_domain(module, dataset, test_domain)
    c.source = "+".join(d for d in domains if d != test_domain)
    c.target = test_domain
  n_train = len(str(c.source).split("+"))
  for name, value in draw_hparams(algorithm, draw, trial).items():
    if name == "batch_per_domain":
      c.batch_size = int(value) * n_train
    else:
      common.set_dotted(c, name, value)
  c.seed = int(trial)
  c.progress = False
  if steps:
    c.steps = int(steps)
    if c.eval_every is not None:  # None: the trainer's steps // 10
      c.eval_every = min(int(c.eval_every), int(steps))
  if final_eval_only:
    c.eval_every = int(c.steps)
  if scale_schedules and "anneal_steps" in c.method:
    c.method.anneal_steps = int(round(
        int(c.method.anneal_steps) * int(c.steps) / DOMAINBED_STEPS))
  if reset_optimizer and algorithm in RESET_ALGORITHMS:
    c.method.reset_optimizer = True
  # One checkpoint, at the end: a search run is short, and saving at every
  # evaluation cost about a fifth of an Office-Caltech10 run.
  c.checkpoint_every = int(c.steps)
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  optimizer = trainer.resolve_config(c).optimizer.name
  if optimizer != "adam" and not quick:  # quick: a few steps for the tests
    raise ValueError(
        f"The {dataset} config trains with {optimizer!r}, but the search "
        "draws learning rates from DomainBed's distribution for Adam; set "
        f"optimizer.name = 'adam' in experiments/configs/dg/{dataset}.py.")
  return c


def check_image_size(module, dataset: str, size: int) -> None:
  """ValueError unless ``size`` (pixels) can apply to ``dataset``: at least
  4, and a dataset of images (its config module does not set
  ``IMAGES = False``)."""
  if size < 4:
    raise ValueError(f"--image_size: {size} must be >= 4.")
  if not getattr(module, "IMAGES", True):
    raise ValueError(f"--image_size: the {dataset} domains are feature "
                     "vectors, not images.")


def resolve_domain(module, dataset: str, name: str) -> str:
  """The domain of ``module.DOMAINS`` that ``name`` names, in full or by its
  last part ("plus90" for "colored_mnist/plus90"); ValueError naming the
  valid ones otherwise."""
  domains = list(module.DOMAINS)
  if name in domains:
    return name
  short = [d for d in domains if d.rsplit("/", 1)[-1] == name]
  if len(short) == 1:
    return short[0]
  raise ValueError(
      f"--test_domains: {name!r} is not a domain of {dataset}; valid: "
      f"{', '.join(d.rsplit('/', 1)[-1] for d in domains)}.")


def final_record(workdir: str) -> dict | None:
  """The last evaluation record of a finished run (``metrics.jsonl``)."""
  last = None
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line:
        record = json.loads(line)
        if record.get("type") == "eval":
          last = record
  return last


def select(records: Mapping[tuple, Mapping[str, float]], selection: str
           ) -> dict[tuple, list[float]]:
  """``{(algorithm, test_domain): [test accuracy of the chosen draw, one per
  trial]}`` from ``records[(algorithm, test_domain, draw, trial)] =
  {"val": ..., "test": ...}`` (final-step accuracies)."""
  if selection not in SELECTIONS:
    raise ValueError(f"selection {selection!r} not in {SELECTIONS}.")
  key = "val" if selection == SELECTIONS[0] else "test"
  groups: dict[tuple, dict[int, list]] = {}
  for (alg, dom, draw, trial), r in records.items():
    groups.setdefault((alg, dom), {}).setdefault(trial, []).append(
        (r[key], r["test"], draw))
  out = {}
  for cell, trials in groups.items():
    # Ties go to the lower draw (the defaults first).
    out[cell] = [max(runs, key=lambda t: (t[0], -t[2]))[1]
                 for _, runs in sorted(trials.items())]
  return out


def table(records, algorithms, domains, selection: str) -> list[str]:
  """Markdown rows: the chosen draws' test accuracy per algorithm and
  held-out domain, the average, and (when ERM has a result on every
  domain) on how many held-out domains the algorithm's mean is above
  ERM's."""
  chosen = select(records, selection)
  short = [d.split("/")[-1] for d in domains]
  erm = [chosen.get(("erm", d)) for d in domains]
  vs_erm = "erm" in algorithms and all(erm)
  lines = ["| algorithm | " + " | ".join(short) + " | average |"
           + (" above ERM |" if vs_erm else ""),
           "|---|" + "---:|" * (len(domains) + 1 + vs_erm)]
  for alg in algorithms:
    cells, means, above = [], [], 0
    for d, e in zip(domains, erm):
      v = chosen.get((alg, d))
      if not v:
        cells.append("-")
        continue
      means.append(np.mean(v))
      above += bool(vs_erm and np.mean(v) > np.mean(e))
      std = np.std(v, ddof=1) if len(v) > 1 else 0.0
      cells.append(f"{np.mean(v):.1f} ± {std:.1f} ({len(v)})")
    complete = len(means) == len(domains)
    avg = f"{np.mean(means):.1f}" if complete else "-"
    extra = ""
    if vs_erm:
      extra = (" - |" if alg == "erm" or not complete
               else f" {above} of {len(domains)} |")
    lines.append(f"| {alg} | " + " | ".join(cells) + f" | {avg} |" + extra)
  return lines


def page(records, algorithms, domains, draws, trials, command, minutes,
         device: str = "", table_only: bool = False,
         dataset: str = "") -> str:
  where = f" on {device}" if device else ""
  how = ("Tabulated from the finished runs (the same command without "
         "`--table_only` runs the missing ones) with:" if table_only else
         "Run and tabulated with (finished runs are read back):")
  title = "# Domain generalisation: random hyper-parameter search"
  out = [title + (f" ({dataset})" if dataset else ""), "",
         how, "",
         "```", command, "```", "",
         f"{len(records)} runs ({len(draws)} draws x {len(trials)} trials "
         "per algorithm and test domain; draw 0 = the defaults), "
         f"{minutes:.1f} min of training wall time{where}. Test-domain "
         "accuracy "
         "(%) of the draw each rule chooses per trial, at the final step; "
         "mean ± std over trials (ddof=1; the number of trials in "
         "brackets). Distributions: `experiments/dg_search.py` "
         "(DomainBed's, small images).", ""]
  for selection in SELECTIONS:
    label = (" (**oracle**: chooses by test-domain labels)"
             if selection == SELECTIONS[1] else "")
    out += [f"## {selection}{label}", ""]
    out += table(records, algorithms, domains, selection) + [""]
  return "\n".join(out)


def datasets() -> list[str]:
  """The dataset configs of ``experiments/configs/dg/`` (those with
  ``DOMAINS``)."""
  folder = os.path.join(os.path.dirname(__file__), "configs", "dg")
  names = []
  for f in sorted(os.listdir(folder)):
    if f.endswith(".py") and not f.startswith("_") and f != "common.py":
      module = importlib.import_module(f"experiments.configs.dg.{f[:-3]}")
      if hasattr(module, "DOMAINS"):
        names.append(f[:-3])
  return names


FLAGS = flags.FLAGS


def _define_flags():
  flags.DEFINE_string("dataset", "colored_mnist",
                      "A config of experiments/configs/dg/.")
  flags.DEFINE_list("algorithms", ["erm", "irm", "vrex"], "Algorithms.")
  flags.DEFINE_list("test_domains", [], "Held-out domains (default: the "
                    "config's own test domain).")
  flags.DEFINE_integer("draws", 5, "Hyper-parameter draws (0 = defaults).")
  flags.DEFINE_integer("trials", 3, "Trials (seeds) per draw.")
  flags.DEFINE_integer("steps", None, "Steps per run (default: the config's).")
  flags.DEFINE_integer("image_size", None, "Image side in pixels (default: "
                       "the config's); the runs go under "
                       "<root>/<dataset>_<size>px.")
  flags.DEFINE_bool("scale_schedules", False, "Scale the drawn anneal steps "
                    f"by steps / {DOMAINBED_STEPS} (DomainBed's run length); "
                    "the runs go under <root>/<dataset>[_<size>px]_scaled.")
  flags.DEFINE_bool("reset_optimizer", False, "IRM, VREx and Fishr restart "
                    "Adam when their penalty switches on, as DomainBed does; "
                    "the runs of every algorithm go under "
                    "<root>/<dataset>[_<size>px][_scaled]_reset.")
  flags.DEFINE_bool("final_eval_only", False, "Evaluate each run only at "
                    "its last step, the one the selection rules read (no "
                    "accuracy curves, less time per run); the runs go under "
                    "<root>/<dataset>[...]_final.")
  flags.DEFINE_string("root", "runs/dg_search", "Root of the workdirs.")
  flags.DEFINE_string("out", None, "Markdown page to write.")
  flags.DEFINE_bool("quick", False, "The configs' quick mode (tests).")
  flags.DEFINE_bool("table_only", False, "Run nothing; tabulate the "
                    "finished runs (a missing cell shows '-').")


def main(argv):
  del argv
  from tlax import train  # pylint: disable=g-import-not-at-top
  train.quiet_orbax_logs()
  if FLAGS.draws < 1 or FLAGS.trials < 1:
    raise app.UsageError("--draws and --trials must be >= 1.")
  for alg in FLAGS.algorithms:
    if alg not in DISTRIBUTIONS:
      raise app.UsageError(f"--algorithms: {alg!r} not in "
                           f"{', '.join(DISTRIBUTIONS)}.")
  try:
    module = importlib.import_module(f"experiments.configs.dg.{FLAGS.dataset}")
  except ModuleNotFoundError:
    raise app.UsageError(
        f"--dataset: {FLAGS.dataset!r} is not a config of "
        f"experiments/configs/dg/; valid: {', '.join(datasets())}.") from None
  try:
    for dom in FLAGS.test_domains:
      resolve_domain(module, FLAGS.dataset, dom)
    if FLAGS.image_size is not None:
      check_image_size(module, FLAGS.dataset, FLAGS.image_size)
    # The dataset's config itself (its optimiser) before any run starts.
    config_for(FLAGS.dataset, (FLAGS.algorithms or ["erm"])[0], None, 1, 0,
               FLAGS.steps, FLAGS.quick, FLAGS.image_size)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  folder = (FLAGS.dataset
            + (f"_{FLAGS.image_size}px" if FLAGS.image_size else "")
            + ("_scaled" if FLAGS.scale_schedules else "")
            + ("_reset" if FLAGS.reset_optimizer else "")
            + ("_final" if FLAGS.final_eval_only else ""))
  domains = list(FLAGS.test_domains) or [None]
  # Runs whose programs have the same shapes (every trial of draw 0, the
  # evaluation and initialisation of every run) compile once.
  pages.enable_compilation_cache(FLAGS.root)
  draws, trials = range(FLAGS.draws), range(FLAGS.trials)
  records, failures, seconds, names, devices = {}, [], 0.0, [], set()
  total = len(domains) * len(FLAGS.algorithms) * len(draws) * len(trials)
  done = 0
  for dom in domains:
    for alg in FLAGS.algorithms:
      for d in draws:
        for t in trials:
          c = config_for(FLAGS.dataset, alg, dom, d, t, FLAGS.steps,
                         FLAGS.quick, FLAGS.image_size, FLAGS.scale_schedules,
                         FLAGS.reset_optimizer, FLAGS.final_eval_only)
          name = str(c.target)
          if name not in names:
            names.append(name)
          wd = os.path.join(FLAGS.root, folder, name.replace("/", "_"),
                            alg, f"draw{d}", f"trial{t}")
          done += 1
          result = pages.run_or_read(
              wd, lambda c=c: c, FLAGS.table_only, failures,
              f"dg_search [{done}/{total}]: {alg} -> {name} draw {d} "
              f"trial {t}")
          if result is None:
            continue
          last = final_record(wd)
          records[(alg, name, d, t)] = {
              "val": last["train_domain_val_accuracy"],
              "test": result["test_domain_accuracy"]}
          seconds += float(result.get("wall_time_s", 0.0))
          devices.add(f"{result.get('device', '?')}, jax "
                      f"{result.get('jax_version', '?')}")
  if FLAGS.table_only and not records:
    return pages.nothing_finished("dg_search", FLAGS.root,
                                  "algorithms and test domains")
  command = "python -m experiments.dg_search " + " ".join(sys.argv[1:])
  text = page(records, FLAGS.algorithms, names, draws, trials, command,
              seconds / 60, "; ".join(sorted(devices)), FLAGS.table_only,
              FLAGS.dataset)
  return pages.finish(text, failures, FLAGS.out)


if __name__ == "__main__":
  _define_flags()
  app.run(pages.command_line(main))
