"""Translated editions of the book, made with Sphinx's gettext tools from the one set of sources.

Jupyter Book 1 has no way to hand Sphinx a setting such as ``-D language=zh_CN``, and
``jupyter-book build --config FILE`` reads FILE *instead of* ``_config.yml``. So this script
writes the configuration of each translation build: ``_config.yml`` with a few keys merged in.
The same module is also the small Sphinx extension those builds load, and it records which
English text the catalogues were extracted from. ``make translations`` and ``make book-zh`` run
it (see README.md, "Translations"):

    python scripts/book_i18n.py config gettext _build/i18n/_config.yml   # extract the messages
    python scripts/book_i18n.py config zh_CN _build/zh_CN/_config.yml    # the Chinese book
    python scripts/book_i18n.py record _build/i18n/_build/gettext        # after sphinx-intl update

Messages are extracted without executing any notebook, so a catalogue holds the prose of the
sources and never the outputs of a run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import yaml
from docutils import nodes
from sphinx import addnodes
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util.i18n import docname_to_domain

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
RECORD = LOCALES / "sources.json"  # docname -> sha256 of its text when the catalogues were updated

# Added to _config.yml in every translation build.
COMMON = {
    "sphinx": {
        "local_extensions": {"book_i18n": str(Path(__file__).resolve().parent)},
        "config": {
            "locale_dirs": [str(LOCALES)],
            # One catalogue per page (book/principles.po), not one per folder (book.po).
            "gettext_compact": False,
            # No source line numbers in the catalogues: they would change with every edit.
            "gettext_location": False,
        },
    },
}


def merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in: dictionaries key by key, any other value replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def book_config(target: str, execute: bool = True) -> dict:
    """The configuration of the gettext build (``target="gettext"``) or of a language's book.

    A language's book adds ``locales/<language>/_config.yml`` (its title, for example) and
    shares the execution cache of the English book, so that a notebook `make book` has run
    is not run again.
    """
    config = merge(yaml.safe_load((ROOT / "_config.yml").read_text()), COMMON)
    if target == "gettext":
        # Messages come from the sources alone, never from the outputs of a run. (The project
        # name only goes into the catalogues' headers.)
        extraction = {
            "execute": {"execute_notebooks": "off"},
            "sphinx": {"config": {"project": "sslbook"}},
        }
        return merge(config, extraction)
    edition = LOCALES / target / "_config.yml"
    if edition.is_file():
        config = merge(config, yaml.safe_load(edition.read_text()) or {})
    config = merge(config, {"sphinx": {"config": {"language": target}}})
    if not config.get("execute", {}).get("cache"):
        cache = str(ROOT / "_build" / ".jupyter_cache")  # where `make book` keeps its cache
        config = merge(config, {"execute": {"cache": cache}})
    if not execute:
        config = merge(config, {"execute": {"execute_notebooks": "off"}})
    return config


def normalise(text: str) -> str:
    """Runs of whitespace as one space: how a message compares with the text it came from."""
    return " ".join(text.split())


FENCE = re.compile(r"(`{3,}|~{3,})(.*)")


def drop_code_blocks(markdown: str) -> str:
    """``markdown`` without its fenced code blocks (```python), which hold no messages.

    Fences that open a directive (```{figure}) are kept with their content.
    """
    kept, open_fences = [], []  # open_fences: (fence, is_code), innermost last
    for line in markdown.splitlines():
        stripped = line.strip()
        if open_fences:
            fence, is_code = open_fences[-1]
            if set(stripped) == {fence[0]} and len(stripped) >= len(fence):  # the closing fence
                open_fences.pop()
                if not is_code:
                    kept.append(line)
                continue
            if is_code:  # inside a code block, nothing opens
                continue
        match = FENCE.match(stripped)
        if match:
            is_code = not match.group(2).strip().startswith("{")
            open_fences.append((match.group(1), is_code))
            if is_code:
                continue
        kept.append(line)
    return "\n".join(kept)


def source_path(docname: str) -> Path:
    for suffix in (".md", ".ipynb"):
        if (path := ROOT / f"{docname}{suffix}").is_file():
            return path
    raise FileNotFoundError(f"no source for {docname!r}")


def figure_captions(notebook: dict) -> list[str]:
    """Captions of the figures that code cells make (cell metadata ``mystnb.figure.caption``)."""
    captions = []
    for cell in notebook["cells"]:
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
        if cell["cell_type"] == "code" and figure.get("caption"):
            captions.append(str(figure["caption"]))
    return captions


def toc_captions() -> list[str]:
    """The part captions of _toc.yml: messages of the root page, whose sidebar shows them."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("caption"), str):
                found.append(node["caption"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    return found


def doc_text(docname: str) -> str:
    """Everything a page's messages are extracted from, whitespace normalised.

    The Markdown of a page (of a notebook: its markdown cells and the captions of its figures)
    without fenced code blocks; for the root page also the captions of _toc.yml. Every message
    of the page's catalogue is a substring of this text (see tests/test_translation.py).
    """
    path = source_path(docname)
    if path.suffix == ".ipynb":
        notebook = json.loads(path.read_text())
        parts = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]
        parts += figure_captions(notebook)
    else:
        parts = [path.read_text()]
    if docname == yaml.safe_load((ROOT / "_toc.yml").read_text())["root"]:
        parts += toc_captions()
    return normalise(drop_code_blocks("\n\n".join(parts)))


def text_hash(docname: str) -> str:
    return hashlib.sha256(doc_text(docname).encode()).hexdigest()


def record(pot_dir: Path) -> None:
    """Write the hash of each extracted page's text to locales/sources.json."""
    hashes = {}
    for pot in sorted(pot_dir.rglob("*.pot")):
        docname = pot.relative_to(pot_dir).with_suffix("").as_posix()
        try:
            hashes[docname] = text_hash(docname)
        except FileNotFoundError:  # sphinx.pot: messages of templates, not of a page
            continue
    RECORD.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")


# ---- the Sphinx extension of translation builds --------------------------------------------


class FigureCaptionMessages(SphinxTransform):
    """gettext builds: offer the captions of figures made by code cells as messages.

    myst-nb creates such a caption only around a cell's output, and messages are extracted
    from notebooks that have not run. The translated build has the outputs, and Sphinx's
    Locale transform translates their captions like any other.
    """

    default_priority = 500  # before UIDTransform (880), which marks the nodes gettext collects

    def apply(self, **kwargs) -> None:
        if self.app.builder.name != "gettext":
            return
        path = Path(self.env.doc2path(self.env.docname))
        if path.suffix != ".ipynb":
            return
        for caption in figure_captions(json.loads(path.read_text())):
            # the message myst-nb's caption paragraph gives: its lines joined by spaces
            message = "\n".join(line.strip() for line in caption.strip().splitlines())
            node = nodes.caption(message, message)
            node.source, node.line = str(path), 1
            self.document += node


class TranslateTocCaptions(SphinxTransform):
    """Translated builds: translate the part captions of _toc.yml in the sidebar.

    sphinx-external-toc inserts the toctree (at priority 100) after Sphinx's Locale transform
    (20) has run, so the captions, which the gettext builder does extract, would stay English.
    """

    default_priority = 101

    def apply(self, **kwargs) -> None:
        if self.app.builder.name == "gettext" or self.config.language in (None, "en"):
            return
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        dirs = [str(Path(self.env.srcdir, d)) for d in self.config.locale_dirs]
        catalog, has_catalog = init_locale(dirs, self.config.language, domain)
        if not has_catalog:
            return
        for toctree in self.document.findall(addnodes.toctree):
            caption = toctree.get("rawcaption")
            if caption and (translated := catalog.gettext(caption)) != caption:
                toctree.apply_translated_message(caption, translated)


def setup(app):
    app.add_transform(FigureCaptionMessages)
    app.add_transform(TranslateTocCaptions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="write the configuration of a translation build")
    config.add_argument("target", help='"gettext", or a language code such as zh_CN')
    config.add_argument("output", type=Path, help="the YAML file to write")
    config.add_argument(
        "--no-execute", action="store_true", help="execute no notebook (a quick look at the text)"
    )
    rec = commands.add_parser("record", help="record the text the catalogues were made from")
    rec.add_argument("pot_dir", type=Path, help="the gettext build's output folder")
    args = parser.parse_args(argv)
    if args.command == "config":
        args.output.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(book_config(args.target, not args.no_execute), allow_unicode=True)
        args.output.write_text(f"# Written by scripts/book_i18n.py from _config.yml\n{text}")
    else:
        record(args.pot_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
