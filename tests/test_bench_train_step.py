"""experiments/bench_train_step.py runs (a smoke run: it times nothing
that is asserted, it checks the script's steps and its outputs)."""

import json

import pytest

from experiments import bench_train_step as bench

# Subprocesses, compiled C++, notebooks or benchmarks: not in the quick suite.
pytestmark = pytest.mark.slow

FEW = ["--image_size=16", "--rounds=1", "--steps=2", "--warmup=1"]


@pytest.mark.parametrize("sync", ["every", "end"])
def test_tlax_steps_run_and_report(tmp_path, sync, capsys):
  out = tmp_path / "r.json"
  results = bench.main(FEW + ["--frameworks=tlax", f"--sync={sync}",
                              f"--json={out}"])
  assert sorted(results) == ["dann", "source_only"]
  for r in results.values():
    assert r["tlax"]["median_ms"] > 0 and len(r["tlax"]["rounds_ms"]) == 1
    assert r["gflop"] > 0
  # DANN's step does strictly more work than source-only's.
  assert results["dann"]["gflop"] > results["source_only"]["gflop"]
  saved = json.loads(out.read_text())
  assert f"sync {sync}" in saved["header"]
  assert "tlax" in saved["matmul_gflops"]
  assert "speed-up" in capsys.readouterr().out


def test_torch_comparator_runs_on_this_device():
  pytest.importorskip("torch")
  results = bench.main(FEW + ["--methods=dann", "--torch_device=auto"])
  assert results["dann"]["torch"]["median_ms"] > 0
  import jax  # pylint: disable=g-import-not-at-top
  if jax.default_backend() == "cpu":  # both frameworks on the same kind
    assert bench.torch_device("auto") == "cpu"
  assert bench.torch_device("cuda") == "cuda"  # an explicit choice is kept


def test_isolate_runs_each_round_in_its_own_process(tmp_path, capsys):
  out = tmp_path / "r.json"
  results = bench.main(["--image_size=16", "--rounds=2", "--steps=1",
                        "--warmup=1", "--frameworks=tlax",
                        "--methods=source_only", "--isolate",
                        "--matmul_peak=off", f"--json={out}"])
  rounds = results["source_only"]["tlax"]["rounds_ms"]
  assert len(rounds) == 2 and all(r > 0 for r in rounds)
  assert results["source_only"]["gflop"] > 0
  text = capsys.readouterr().out
  assert "round 1/2 tlax" in text and "round 2/2 tlax" in text
  saved = json.loads(out.read_text())
  assert "one process per round" in saved["header"]
  assert saved["matmul_gflops"] == {}


def test_isolate_framework_keeps_one_warm_worker_per_framework(tmp_path,
                                                              capsys):
  out = tmp_path / "r.json"
  results = bench.main(["--image_size=16", "--rounds=2", "--steps=1",
                        "--warmup=1", "--frameworks=tlax",
                        "--isolate=framework", "--matmul_peak=off",
                        f"--json={out}"])
  assert sorted(results) == ["dann", "source_only"]
  for r in results.values():
    assert len(r["tlax"]["rounds_ms"]) == 2
    assert all(t > 0 for t in r["tlax"]["rounds_ms"])
    assert r["gflop"] > 0  # reported by the worker
  assert results["dann"]["gflop"] > results["source_only"]["gflop"]
  text = capsys.readouterr().out
  assert "dann round 2/2: tlax" in text
  assert "one warm process per framework" in json.loads(
      out.read_text())["header"]


def test_isolate_framework_reports_a_failed_worker():
  with pytest.raises(RuntimeError, match="tlax worker exited"):
    bench.main(["--image_size=16", "--rounds=1", "--steps=1", "--warmup=1",
                "--frameworks=tlax", "--methods=no_such_method",
                "--isolate=framework", "--matmul_peak=off"])
