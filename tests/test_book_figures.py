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
