"""The documentation site builds with warnings as errors.

The build executes every notebook in ``notebooks/`` in its quick mode
(``TLAX_QUICK=1``, see docs/conf.py), so a failing example, a broken
cross-reference or a malformed docstring of a public name fails this test.
"""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
  env = dict(os.environ, TLAX_QUICK="1", MPLBACKEND="Agg",
             JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
  proc = subprocess.run(
      [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
       "html", "-d", str(tmp_path / "doctrees"), str(REPO / "docs"),
       str(tmp_path / "html")],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
  assert (tmp_path / "html" / "api" / "losses.html").exists()
  notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
  assert len(notebooks) >= 7, [nb.name for nb in notebooks]
  for nb in notebooks:
    page = tmp_path / "html" / "notebooks" / (nb.stem + ".html")
    assert page.exists(), f"{nb.name} is not in the site (docs/index.md toctree)"
    # Every example draws at least one figure, embedded as an image.
    assert "<img" in page.read_text(), f"{nb.name} shows no figure"
