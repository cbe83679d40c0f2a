"""The book builds without executing its notebooks, with warnings as errors (-W -n).

A broken cross-reference, citation or table-of-contents entry fails here in seconds; the
notebooks' code itself is run by nbval (see pyproject.toml).
"""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_book_builds_strictly_without_execution(tmp_path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "--config", str(tmp_path / "_config.yml"),
         "--path-output", str(tmp_path), "--builder", "html", "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").exists() or (html / "book" / "intro.html").exists()
    page = (html / "book" / "principles.html").read_text()
    assert "colab.research.google.com" in page, "every notebook page has a Colab launch button"
