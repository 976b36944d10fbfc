"""The shared parts of the many-run scripts (experiments/pages.py)."""

import importlib
import json
import os

import pytest

from experiments import dg_search
from experiments import pages


def test_run_or_read_table_only_reads_and_never_runs(tmp_path, monkeypatch):
  from experiments.configs.dg import colored_mnist  # pylint: disable=g-import-not-at-top
  from tlax import train  # pylint: disable=g-import-not-at-top
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top

  def must_not_run(*args, **kwargs):
    raise AssertionError("table_only ran a config")

  monkeypatch.setattr(train, "run_experiment", must_not_run)
  monkeypatch.setattr(trainer, "run_experiment", must_not_run)
  config = colored_mnist.get_config("erm,quick")
  failures = []
  assert pages.run_or_read(str(tmp_path / "missing"), must_not_run, True,
                           failures, "x") is None
  wd = tmp_path / "done"
  wd.mkdir()
  stored = trainer.config_to_dict(trainer.resolve_config(config))
  (wd / "result.json").write_text(json.dumps(
      {"target_accuracy": 0.5, "config": stored}))
  got = pages.run_or_read(str(wd), lambda: config, True, failures, "x")
  assert got["target_accuracy"] == 0.5
  assert failures == []
  # A finished run of another config is not read as this one's.
  other = colored_mnist.get_config("erm,quick")
  other.steps = int(config.steps) + 5
  assert pages.run_or_read(str(wd), lambda: other, True, failures, "x") is None
  assert len(failures) == 1 and "ConfigMismatchError" in failures[0]
  assert f"steps: requested {other.steps}, workdir has {config.steps}" in (
      failures[0])


def test_run_or_read_records_a_failed_run_and_goes_on(tmp_path, capsys):
  def bad_config():
    raise ValueError("config.steps: -1 must be >= 1")

  failures = []
  wd = str(tmp_path / "run")
  assert pages.run_or_read(wd, bad_config, False, failures, "label 1") is None
  assert capsys.readouterr().out.strip() == "label 1"
  assert failures == [f"{wd}: ValueError: config.steps: -1 must be >= 1"]


def test_run_or_read_does_not_swallow_an_interruption(tmp_path):
  def interrupted():
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    pages.run_or_read(str(tmp_path), interrupted, False, [], "x")


def test_an_interrupted_search_ends_with_one_line_and_the_signal_status(
    capsys):
  from tlax.train import workdir as workdir_lib  # pylint: disable=g-import-not-at-top

  def main(argv):
    del argv
    raise workdir_lib.RunInterrupted(11, 15)

  with pytest.raises(SystemExit) as e:
    pages.command_line(main)(["search"])
  assert e.value.code == 143
  assert capsys.readouterr().err == (
      "interrupted at step 11; run the same command to resume\n")
  assert pages.command_line(lambda argv: 0)(["search"]) == 0


def test_missing_benchmark_files_stop_the_search_with_one_line(
    tmp_path, monkeypatch, capsys):
  monkeypatch.delenv("TLAX_DATA_DIR", raising=False)
  c = dg_search.config_for("colored_mnist", "erm", None, 0, 0, steps=2,
                           quick=True)
  c.data_dir = str(tmp_path / "nowhere")

  def main(argv):
    del argv
    pages.run_or_read(str(tmp_path / "run"), lambda: c, False, [], "run")

  with pytest.raises(SystemExit) as e:
    pages.command_line(main)(["search"])
  assert e.value.code == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "nowhere" in err, err


def test_nothing_finished_says_where_and_fails(capsys):
  assert pages.nothing_finished("script", "runs/x", "seeds") == 1
  err = capsys.readouterr().err
  assert "runs/x" in err and "--table_only" in err


def test_finish_writes_the_page_and_lists_failures(tmp_path):
  out = str(tmp_path / "page.md")
  assert pages.finish("# t", [], out) == 0
  assert open(out).read() == "# t\n"
  assert pages.finish("# t", ["runs/a: ValueError: v"], out) == 1
  assert "- runs/a: ValueError: v" in open(out).read()


def test_compilation_cache_goes_under_the_root(tmp_path):
  import jax
  before = jax.config.jax_compilation_cache_dir
  try:
    pages.enable_compilation_cache(str(tmp_path))
    assert jax.config.jax_compilation_cache_dir == os.path.join(
        str(tmp_path), ".jax_cache")
    assert os.path.isdir(tmp_path / ".jax_cache")
  finally:
    jax.config.update("jax_compilation_cache_dir", before)


def test_resolve_domain_by_full_or_short_name():
  module = importlib.import_module("experiments.configs.dg.colored_mnist")
  assert dg_search.resolve_domain(module, "colored_mnist", "plus90") == (
      "colored_mnist/plus90")
  assert dg_search.resolve_domain(
      module, "colored_mnist", "colored_mnist/minus90") == (
          "colored_mnist/minus90")
  with pytest.raises(ValueError, match="'plus70'.*plus90, plus80, minus90"):
    dg_search.resolve_domain(module, "colored_mnist", "plus70")
