"""The sweep's tables (experiments/sweep.py) from fake results."""

import pathlib

import numpy as np
import pytest

from experiments import sweep

GROUPS = [("office_caltech10", [("office_caltech10/amazon",
                                 "office_caltech10/webcam"),
                                ("office_caltech10/dslr",
                                 "office_caltech10/caltech")])]


def _results():
  out = {}
  for m, base in (("source_only", 40.0), ("dann", 50.0)):
    for i, (s, t) in enumerate(GROUPS[0][1]):
      for seed in (0, 1, 2):
        acc = base + 10 * i + seed
        out[(m, s, t, seed)] = {
            "target_accuracy": acc,
            "selected": {"target_accuracy": acc - 1},
            "selected_dev": ({"target_accuracy": acc - 2}
                             if m == "dann" else None)}
  return out


def test_task_layout_means_stds_and_averages():
  text = sweep.make_table(_results(), GROUPS, ["source_only", "dann"],
                          [0, 1, 2])
  rows = [l for l in text.splitlines() if l.startswith("| ")]
  assert rows[0].split(" | ")[1:4] == ["source_only final",
                                       "source_only src-val selected",
                                       "source_only DEV selected"]
  aw = rows[1].strip("| ").split(" | ")
  assert aw[0] == "amazon → webcam"
  assert aw[1] == "41.0 ± 1.0" and aw[2] == "40.0 ± 1.0"
  assert aw[3] == "-"            # no DEV record for source_only
  assert aw[6] == "49.0 ± 1.0"   # dann DEV selected
  avg = rows[-1].strip("| ").split(" | ")
  # per-seed averages of the two tasks: 45, 46, 47 -> 46.0 ± 1.0
  assert avg[1] == "**46.0 ± 1.0**"


def test_method_layout():
  text = sweep.make_method_table(_results(), GROUPS, ["source_only", "dann"],
                                 [0, 1, 2], columns=("final", "dev"))
  assert "### office_caltech10: final" in text
  assert "### office_caltech10: DEV selected" in text
  final = text.split("### office_caltech10: DEV selected")[0]
  rows = [l for l in final.splitlines() if l.startswith("| ")]
  assert rows[0] == "| method | amazon → webcam | dslr → caltech | average |"
  assert rows[2].strip("| ").split(" | ") == [
      "dann", "51.0 ± 1.0", "61.0 ± 1.0", "**56.0 ± 1.0**"]


def test_cells_say_how_many_seeds_when_runs_are_missing():
  results = _results()
  del results[("dann", "office_caltech10/amazon", "office_caltech10/webcam", 1)]
  text = sweep.make_method_table(results, GROUPS, ["dann"], [0, 1, 2],
                                 columns=("final",))
  row = [l for l in text.splitlines() if l.startswith("| dann")][0]
  # seeds 0 and 2: 50, 52; the average needs every run
  assert row.strip("| ").split(" | ") == [
      "dann", "51.0 ± 1.4 (2 of 3 seeds)", "61.0 ± 1.0", "-"]


def test_unknown_column():
  with pytest.raises(ValueError, match="Unknown column"):
    sweep.make_table(_results(), GROUPS, ["dann"], [0],
                     columns=("best step",))
  # Any result.json field is a column; absent fields show as "-".
  table = sweep.make_table(_results(), GROUPS, ["dann"], [0],
                           columns=("no_such_field",))
  assert "| - |" in table


def test_table_only_reads_finished_runs_and_trains_nothing(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  source, target = GROUPS[0][1][0]
  run = tmp_path / "runs" / "source_only" / sweep.task_dir(source, target)
  (run / "0").mkdir(parents=True)
  (run / "0" / "result.json").write_text(json.dumps(
      {"target_accuracy": 42.0, "selected": {"target_accuracy": 41.0},
       "selected_dev": None, "device": "cpu", "wall_time_s": 1.0}))
  out = tmp_path / "table.md"
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    config = (pathlib.Path(__file__).resolve().parents[1] / "experiments" /
              "configs" / "source_only.py")
    flags.FLAGS(["sweep", f"--config={config}",
                 f"--tasks={source}:{target}", "--seeds=0,1",
                 f"--root={tmp_path / 'runs'}", f"--out={out}",
                 "--table_only"])
    sweep.main(["sweep"])
  text = out.read_text()
  assert "1 of 2 runs finished" in text
  assert "| 42.0 (1 of 2 seeds) | 41.0 (1 of 2 seeds) | - |" in text
  assert not (run / "1").exists()   # the missing seed was not trained


def test_provenance_names_each_device_and_jax_version_of_the_runs():
  one = {"a": {"device": "cpu:cpu", "jax_version": "0.10.2"},
         "b": {"device": "cpu:cpu", "jax_version": "0.10.2"}}
  assert sweep.provenance(one) == "on cpu:cpu; jax 0.10.2"
  mixed = {**one, "c": {"device": "gpu:H100", "jax_version": "0.11.2"}}
  assert sweep.provenance(mixed) == (
      "on cpu:cpu (2 runs), gpu:H100 (1 run); "
      "jax 0.10.2 (2 runs), 0.11.2 (1 run)")


def _sweep_flags(tmp_path, *extra):
  from absl import flags  # pylint: disable=g-import-not-at-top
  config = (pathlib.Path(__file__).resolve().parents[1] / "experiments" /
            "configs" / "source_only.py")
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["sweep", f"--config={config}", "--tasks=default", "--seeds=0",
               f"--root={tmp_path / 'runs'}", "--table_only", *extra])


def test_a_column_no_finished_result_has_is_refused(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  from tlax.train import workdir  # pylint: disable=g-import-not-at-top
  source, target = sweep.TASK_GROUPS["default"][0]
  run = tmp_path / "runs" / "source_only" / sweep.task_dir(source, target)
  (run / "0").mkdir(parents=True)
  (run / "0" / "result.json").write_text(json.dumps(
      {"target_accuracy": 42.0, "wall_time_s": 1.0}))
  out = tmp_path / "table.md"
  with flagsaver.flagsaver():
    _sweep_flags(tmp_path, f"--out={out}", "--columns=final,nope")
    with pytest.raises(workdir.RunError, match="--columns: no finished "
                       "result has the field 'nope'.*target_accuracy"):
      sweep._sweep()  # pylint: disable=protected-access
  assert not out.exists()


def test_out_that_is_a_folder_is_refused_before_anything_runs(tmp_path):
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  from tlax.train import workdir  # pylint: disable=g-import-not-at-top
  with flagsaver.flagsaver():
    _sweep_flags(tmp_path, f"--out={tmp_path}")
    with pytest.raises(workdir.RunError, match="--out .* is a folder"):
      sweep._sweep()  # pylint: disable=protected-access
