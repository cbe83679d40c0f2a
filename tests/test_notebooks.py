"""The chapters' notebooks: stored clean, listed in the table of contents, and set up alike."""

import json
import re
from pathlib import Path

import pytest
import yaml

from sslbook.results import REPOSITORY_URL

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("**/*.ipynb"))


def cells(path):
    return json.loads(path.read_text())["cells"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "book/ should hold the chapters' notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name}: clear the outputs before committing"
            assert cell["execution_count"] is None, f"{path.name}: execution counts must be null"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_the_setup_cell_that_installs_from_the_book_repository(path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"]
    assert url == REPOSITORY_URL, "sslbook.results.REPOSITORY_URL and _config.yml must agree"
    first_code = next(c for c in cells(path) if c["cell_type"] == "code")
    source = "".join(first_code["source"])
    installs = re.findall(r'%pip install --quiet "sslbook @ git\+(\S+?)@main"', source)
    assert installs == [url], f"{path.name}: the setup cell should install sslbook from {url}"
    assert "sslbook.pick_device()" in source and "sslbook.profile()" in source


def test_every_notebook_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*(\S+)", toc))
    for path in NOTEBOOKS:
        assert str(path.relative_to(ROOT).with_suffix("")) in listed, (
            f"{path} missing from _toc.yml"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figure_cells_show_nothing_but_their_figure(path):
    # myst-nb gives a figure cell's label to each of its displayed outputs; a second display (a
    # table) would carry the same label, and the executed build fails on the duplicate target
    for cell in cells(path):
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if cell["cell_type"] == "code" and figure:
            source = "".join(cell["source"])
            shows = re.findall(r"^\s*(display)\(", source, flags=re.M)
            assert not shows, f"{path.name}: figure cell {figure['name']} also calls {shows}"
