"""The development-task choice of conv_sparse_coding's settings
(experiments/selftaught_dev.py)."""

import pathlib
import re

from absl import flags
from absl.testing import flagsaver
import pytest

from experiments import selftaught_dev
from experiments import sweep
from experiments.configs.selftaught import classification

_REPO = pathlib.Path(__file__).resolve().parents[1]


def test_dev_tasks_share_no_target_example_with_the_reported_tasks():
  reported = {t for _, t in sweep.TASK_GROUPS["selftaught"]}
  dev = [t for _, t in sweep.TASK_GROUPS[selftaught_dev.GROUP]]
  assert len(dev) == len(reported)
  # The one shared domain, the rendered letters, is drawn with another seed.
  assert reported & set(dev) == {"fonts/letters"}
  c = selftaught_dev.make_config(6, 2, "mnist_usps/usps", "fonts/letters", 0)
  default = classification.get_config("conv_sparse_coding")
  assert c.domain_options.fonts_letters.seed != default.domain_options[
      "fonts_letters"].get("seed", 0)


def test_grid_runs_picks_the_best_average_and_rebuilds(tmp_path, monkeypatch):
  monkeypatch.setitem(sweep.TASK_GROUPS, selftaught_dev.GROUP,
                      [("digits/sklearn[5-9]", "digits/sklearn[0-4]")])
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  out = tmp_path / "dev.md"
  args = dict(patches=["3", "5"], pools=["1", "2"], seeds=["0"],
              root=str(tmp_path / "runs"), out=str(out), quick=True)
  with flagsaver.flagsaver(**args):
    assert selftaught_dev.main(["selftaught_dev"]) == 0
  text = out.read_text()
  rows = re.findall(r"^\| (\d) \| (\d) \| ([\d.]+) \| (\**)([\d.]+)\** \|$",
                    text, re.M)
  assert len(rows) == 4
  averages = {(int(p), int(g)): float(a) for p, g, _, _, a in rows}
  best = [(int(p), int(g)) for p, g, _, bold, _ in rows if bold]
  assert best == [max(averages, key=averages.get)]
  assert f"(patch {best[0][0]}, pool {best[0][1]})" in text
  assert (tmp_path / "runs" / "p3_pool1" /
          "digits_sklearn[5-9]--digits_sklearn[0-4]" / "0" /
          "result.json").exists()
  # --table_only reads the same runs back and writes the same page.
  out.unlink()
  with flagsaver.flagsaver(table_only=True, **args):
    assert selftaught_dev.main(["selftaught_dev"]) == 0
  assert out.read_text() == text
  with flagsaver.flagsaver(**{**args, "pools": ["0"]}):
    with pytest.raises(Exception, match="--pools takes integers >= 1"):
      selftaught_dev.main(["selftaught_dev"])


def test_config_holds_the_setting_the_dev_page_chose():
  page = _REPO / "docs" / "results_self_taught_dev.md"
  if not page.exists():
    pytest.skip("no development page")
  m = re.search(r"\(patch (\d+), pool (\d+)\)", page.read_text())
  assert m, "the page names no chosen setting"
  assert (classification.PATCH, classification.POOL) == (int(m[1]), int(m[2]))
