r"""Where tlax's MEDA spends its time, and float64 against float32.

Two measurements behind docs/shallow_results.md ("Speed"), one BLAS/XLA
thread, on Office-Caltech10 SURF (``$TLAX_DATA_DIR``):

* ``--part=profile``: caltech -> amazon (n = 2081), GFK alone and the whole
  MEDA fit, with the adaptive mu (C + 1 SVM fits per iteration) and with a
  fixed mu (no SVM), each twice (the second run is warm);
* ``--part=dtype``: all 12 tasks with ``MEDA(dtype="float64")`` and
  ``MEDA(dtype="float32")``: each task fitted twice and the second fit
  timed; prints the accuracies (they agree task by task) and the totals.

COMMAND:
  TLAX_DATA_DIR=<data folder> python experiments/profile_meda.py --part=profile
  TLAX_DATA_DIR=<data folder> python experiments/profile_meda.py --part=dtype
"""

import os
import sys

if __name__ == "__main__":
  os.environ["XLA_FLAGS"] = ("--xla_cpu_multi_thread_eigen=false "
                             "intra_op_parallelism_threads=1")
  os.environ["OPENBLAS_NUM_THREADS"] = "1"

# pylint: disable=g-import-not-at-top,wrong-import-position
import argparse
import time

import numpy as np

from tlax.data import files
from tlax.shallow import gfk
from tlax.shallow import meda

DOMAINS = ("caltech", "amazon", "webcam", "dslr")


def _load(name):
  return files.load_features(f"office_caltech10/{name}")


def profile():
  xs, ys = _load("caltech")
  xt, yt = _load("amazon")
  for mu in (None, 0.5):
    for _ in range(2):
      t = time.perf_counter()
      gfk.GFK(20).fit(xs, ys, xt).transform(xs, reduced=True)
      t_gfk = time.perf_counter() - t
      t = time.perf_counter()
      m = meda.MEDA(mu=mu).fit(xs, ys, xt)
      t_all = time.perf_counter() - t
      print(f"mu={mu}: GFK {t_gfk:.2f} s, MEDA fit {t_all:.2f} s, accuracy "
            f"{100 * np.mean(m.target_labels_ == yt):.2f}, iterations "
            f"{m.n_iter_run_}, SVM Newton steps {m.svm_steps_.tolist()}")


def dtypes():
  data = {d: _load(d) for d in DOMAINS}
  for dt in ("float64", "float32"):
    accs, total = [], 0.0
    for s in DOMAINS:
      for t in DOMAINS:
        if s == t:
          continue
        (xs, ys), (xt, yt) = data[s], data[t]
        meda.MEDA(dtype=dt).fit(xs, ys, xt)
        t0 = time.perf_counter()
        m = meda.MEDA(dtype=dt).fit(xs, ys, xt)
        total += time.perf_counter() - t0
        accs.append(round(100 * float(np.mean(m.target_labels_ == yt)), 2))
    print(f"{dt}: average {np.mean(accs):.2f}, warm total {total:.1f} s, "
          f"per task {accs}")


if __name__ == "__main__":
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--part", choices=("profile", "dtype"), required=True)
  a = p.parse_args(sys.argv[1:])
  profile() if a.part == "profile" else dtypes()
