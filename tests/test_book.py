"""The book builds without executing its notebooks, and every warning is an error.

A broken cross-reference, citation or table-of-contents entry fails here in seconds; the
notebooks' code itself is run by nbval (see pyproject.toml) and by ``make book``.

One kind of warning cannot be avoided without execution: a figure made by a code cell (cell
metadata ``mystnb.figure.name``) only exists once the cell has run, so a ``{numref}`` to it is
unresolved here. Such a warning is accepted only for a label that some cell declares; a
reference to any other label still fails.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def declared_figure_labels() -> set[str]:
    labels = set()
    for path in (ROOT / "book").glob("**/*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
            if "name" in figure:
                labels.add(figure["name"])
    return labels


def test_book_builds_strictly_without_execution(tmp_path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [
            str(jupyter_book),
            "build",
            str(ROOT),
            "--config",
            str(tmp_path / "_config.yml"),
            "--path-output",
            str(tmp_path),
            "--builder",
            "html",
            "-n",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, log[-4000:]
    warnings = sorted(set(re.findall(r"^.*WARNING: .*$", log, flags=re.M)))
    figures = declared_figure_labels()
    unexpected = [
        w
        for w in warnings
        if not (m := re.search(r"undefined label: '([^']+)'", w)) or m.group(1) not in figures
    ]
    assert unexpected == [], "\n".join(unexpected)

    page = (tmp_path / "_build" / "html" / "book" / "principles.html").read_text()
    assert "colab.research.google.com/github/" in page, "notebook pages have a Colab button"
    assert 'class="math' in page and "eq-knn" in page, "numbered equations render"
    # MathJax comes with the book (offline copies typeset their maths), not from a CDN
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, flags=re.I)
    assert scripts == ["../_static/mathjax/tex-chtml.js"], scripts
    assert (tmp_path / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file()
