"""The schematic figures the chapters show: every diagram is used, with its alt text."""

import json
import re

from sslbook.diagrams import ALT_TEXT, DIAGRAMS
from sslbook.provenance import REPO_ROOT

BOOK = REPO_ROOT / "book"
FIGURE = re.compile(r"```\{figure\} figures/(\w+)\.svg\n((?::\w+:.*\n)*)")


def _pages():
    yield "intro.md", (BOOK / "intro.md").read_text()
    for path in sorted(BOOK.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield (
            path.name,
            "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"),
        )


def test_every_diagram_appears_in_the_book_with_its_alt_text():
    used = {}
    for page, text in _pages():
        for name, options in FIGURE.findall(text):
            assert (BOOK / "figures" / f"{name}.svg").is_file(), (page, name)
            alt = re.search(r"^:alt: (.*)$", options, re.M)
            assert alt and alt.group(1) == ALT_TEXT[name], (page, name)
            used[name] = page
    assert set(used) == set(DIAGRAMS), set(DIAGRAMS) - set(used)


def test_every_chapter_has_a_schematic_key_takeaways_and_worked_solutions():
    for page, text in _pages():
        if not page.endswith(".ipynb"):
            continue
        assert FIGURE.search(text), f"{page}: no schematic from book/figures"
        assert "```{admonition} Key takeaways" in text, f"{page}: no key takeaways box"
        exercises = re.search(r"^## Exercises\n(.*?)(?=^## |\Z)", text, re.M | re.S)
        assert exercises, f"{page}: no exercises"
        asked = len(re.findall(r"^\d+\. \*\*", exercises.group(1), re.M))
        solved = len(re.findall(r"^:::\{dropdown\} Solution \d+", text, re.M))
        assert asked and solved == asked, f"{page}: {asked} exercises, {solved} solutions"
