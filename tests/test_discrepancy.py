"""The generic discrepancy method: the loss named in the config."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax import losses
from tlax import methods
from tlax.methods import contract
from tlax.methods import discrepancy
from tlax.models import get_model

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _batch(seed=0):
  r = np.random.RandomState(seed)
  return {"xs": r.randn(8, 5).astype(np.float32),
          "ys": np.arange(8, dtype=np.int32) % 3,
          "ws": np.ones(8, np.float32),
          "xt": (r.randn(8, 5) + 1.0).astype(np.float32)}


def _build(name, **options):
  model = get_model("mlp", 3, hidden=(16,))
  return contract.call_factory(methods.get_method(name), options, model=model,
                               num_classes=3, total_steps=10)


def _align(m, batch):
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  hp = {k: jnp.float32(v) for k, v in m.hparams.items()}
  _, (metrics, _) = m.loss(params, state, batch, jax.random.key(1),
                           jnp.int32(5), hp)
  return params, state, metrics


@pytest.mark.parametrize("name", sorted(discrepancy.PRESETS))
def test_presets_are_keyword_arguments_of_the_one_method(name):
  batch = _batch()
  preset = _build(name)
  kwargs = {k.rstrip("_"): v for k, v in discrepancy.PRESETS[name].items()}
  explicit = _build("discrepancy", **kwargs)
  _, _, a = _align(preset, batch)
  _, _, b = _align(explicit, batch)
  assert preset.hparams == explicit.hparams
  assert float(a["loss"]) == float(b["loss"])
  assert float(a["align_loss"]) == float(b["align_loss"])


def test_dan_sums_mk_mmd_over_its_layers():
  batch = _batch()
  m = _build("dan")
  params, state, metrics = _align(m, batch)
  fs = m.features(params, state, batch["xs"])
  ft = m.features(params, state, batch["xt"])
  ls = m.predict(params, state, batch["xs"])
  lt = m.predict(params, state, batch["xt"])
  want = (losses.mk_mmd(fs["embedding"], ft["embedding"], "mean:5",
                        estimator="unbiased")
          + losses.mk_mmd(ls, lt, "mean:5", estimator="unbiased"))
  np.testing.assert_allclose(float(metrics["align_loss"]), float(want),
                             rtol=1e-5)
  np.testing.assert_allclose(
      float(metrics["align_loss_embedding"]) + float(
          metrics["align_loss_logits"]), float(want), rtol=1e-5)


def test_loss_by_import_path_and_kwargs(tmp_path, monkeypatch):
  (tmp_path / "my_losses.py").write_text(textwrap.dedent("""
      import jax.numpy as jnp

      def mean_gap(xs, xt, scale=1.0):
        return scale * jnp.sum((xs.mean(0) - xt.mean(0)) ** 2)
  """))
  monkeypatch.syspath_prepend(str(tmp_path))
  batch = _batch()
  m1 = _build("discrepancy", loss="my_losses:mean_gap")
  m3 = _build("discrepancy", loss="my_losses:mean_gap",
              loss_kwargs={"scale": 3.0})
  params, state, a = _align(m1, batch)
  _, _, b = _align(m3, batch)
  fs = m1.features(params, state, batch["xs"])["embedding"]
  ft = m1.features(params, state, batch["xt"])["embedding"]
  want = float(jnp.sum((fs.mean(0) - ft.mean(0)) ** 2))
  np.testing.assert_allclose(float(a["align_loss"]), want, rtol=1e-5)
  np.testing.assert_allclose(float(b["align_loss"]), 3 * want, rtol=1e-5)


def test_unknown_loss_and_squash_are_named():
  with pytest.raises(KeyError, match="Unknown loss 'nope'.*mk_mmd"):
    _build("discrepancy", loss="nope")
  with pytest.raises(ValueError, match="squash"):
    _build("discrepancy", squash="tanh")


@pytest.mark.slow
def test_a_loss_of_ones_own_trains_from_the_command_line(tmp_path):
  """A loss in a file outside tlax, chosen with command-line overrides only."""
  (tmp_path / "energy_losses.py").write_text(textwrap.dedent("""
      import jax.numpy as jnp

      def energy_distance(xs, xt):
        def mean_dist(a, b):
          d = jnp.sum((a[:, None] - b[None]) ** 2, -1)
          return jnp.mean(jnp.sqrt(d + 1e-12))
        return (2 * mean_dist(xs, xt) - mean_dist(xs, xs)
                - mean_dist(xt, xt))
  """))
  env = {**os.environ,
         "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.run",
       "--config=experiments/configs/discrepancy.py:quick",
       "--config.method.loss=energy_losses:energy_distance",
       "--config.method.layers=('embedding','logits')",
       "--config.method.warmup=True", "--config.steps=4",
       f"--workdir={workdir}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((workdir / "result.json").read_text())
  assert result["method"] == "discrepancy"
  assert result["config"]["method"]["loss"] == "energy_losses:energy_distance"
  records = [json.loads(line) for line in
             (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in records if r.get("type") == "train"]
  assert train and all(np.isfinite(r["align_loss"]) for r in train)
  assert all(r["align_loss"] > 0 for r in train)
  assert "align_loss_logits" in train[-1]
