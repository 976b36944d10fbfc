"""The main job (experiments/main_job.py): its table and a tiny run."""

import os

import pytest

from experiments import main_job


def test_table_has_one_line_per_method_and_explains_every_column():
  rows = [("source_only", [40.04], [99.0], 51.2),
          ("dann", [52.5], [98.44], 60.0), ("cdan_e", [38.0], [97.0], 0.0)]
  text = main_job.format_table(
      rows, source="digits/a", target="digits/b", seeds=[0], steps=2000,
      pictures=[("dann", "runs/x/embedding_tsne.png")])
  lines = text.splitlines()
  header = next(i for i, l in enumerate(lines) if l.startswith("method"))
  body = lines[header + 2:header + 5]
  assert [l.split()[0] for l in body] == ["source_only", "dann", "cdan_e"]
  assert body[0].split()[1:] == ["40.0", "-", "99.0", "51"]
  assert body[1].split()[1:] == ["52.5", "+12.5", "98.4", "60"]
  assert body[2].split()[1:3] == ["38.0", "-2.0"]
  # Every column is explained on its own line below the table.
  for name, _ in main_job.COLUMNS:
    assert any(l.startswith(f"  {name}: ") for l in lines), name
  assert "seed 0" in text and "±" not in text and "mean" not in text
  assert "digits/a -> digits/b" in lines[0]
  assert "  dann: runs/x/embedding_tsne.png" in lines
  # Columns line up: every numeric cell ends where its header ends.
  ends = [lines[header].index("target acc %") + len("target acc %")]
  assert all(l[:ends[0]].endswith(l.split()[1]) for l in body)


def test_table_over_seeds_gives_mean_and_std():
  rows = [("source_only", [40.0, 42.0, 44.0], [99.0, 99.0, 99.0], 30.0),
          ("ddan", [60.0, 61.0, 62.0], [98.0, 99.0, 100.0], 90.0)]
  text = main_job.format_table(rows, source="a/b", target="c/d",
                               seeds=[1, 2, 3], steps=1000)
  assert "mean ± std over seeds 1, 2, 3" in text.splitlines()[0]
  row = [l for l in text.splitlines() if l.startswith("ddan ")][0]
  assert row.split("  ")[0] == "ddan"
  assert "61.0 ± 1.0" in row and "+19.0" in row and "99.0 ± 1.0" in row


def test_unknown_method_names_the_config_folder():
  with pytest.raises(ValueError, match="no config file.*known: .*dann"):
    main_job.method_config("no_such_method")


def test_quick_run_trains_tabulates_and_writes_pictures(tmp_path):
  root = str(tmp_path / "main")
  text = main_job.run(["dann"], root=root, quick=True, steps=4, plots="pca")
  lines = text.splitlines()
  assert any(l.startswith("source_only ") for l in lines)
  assert any(l.startswith("dann ") for l in lines)
  picture = os.path.join(
      main_job.workdir_of(root, "dann", main_job.common.DEFAULT_SOURCE,
                          main_job.common.DEFAULT_TARGET, 0),
      "embedding_pca.png")
  assert os.path.isfile(picture)
  assert f"  dann: {picture}" in lines
  # A second call reads the finished runs back (0 s) and gives the same table.
  again = main_job.run(["dann"], root=root, quick=True, steps=4, plots="none")
  row = lambda t: [l for l in t.splitlines() if l.startswith("dann ")][0]
  assert row(again).split()[1:4] == row(text).split()[1:4]
  assert row(again).split()[-1] == "0"
