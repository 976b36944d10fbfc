"""Every Python example in README.md runs as pasted, in a fresh process."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = re.findall(r"```python\n(.*?)```",
                      (REPO / "README.md").read_text(), re.S)


def test_readme_has_examples():
  assert len(EXAMPLES) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(index, tmp_path):
  script = tmp_path / "example.py"
  script.write_text(EXAMPLES[index])
  env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
  proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert proc.stdout.strip(), "the example printed nothing"
