"""The translated editions: complete where they claim to be, faithful to the markup, not stale.

A translation lives in gettext catalogues, ``locales/<language>/LC_MESSAGES/<page>.po``, which
``make translations`` makes from the English sources (Sphinx's gettext builder, then
sphinx-intl; see README.md, "Translations"). These tests read the catalogues and the sources
only; nothing is built.

- **Complete.** Every message of the pages in ``COMPLETE`` has a translation, and none is
  fuzzy (sphinx-intl marks a message fuzzy when its English changed; Sphinx ignores fuzzy
  translations, so the English would show).
- **Faithful.** Each translation keeps its message's MyST roles with their targets
  (``{cite}`key```, ``{numref}`label```, ``{doc}`Title <target>``` keeps ``target``; the title
  may be translated), its ``$...$`` maths, its inline code and its link URLs, as multisets.
- **Not stale**, checked two ways, so that the failure says what to do:

  1. every translated message still occurs in its page's source. Sphinx extracts a paragraph,
     heading, table cell, caption or alt text as its Markdown source with the line breaks
     turned into spaces, so once runs of whitespace are collapsed to one space in both, the
     message is a substring of the page's text (``scripts/book_i18n.py``'s ``doc_text``: the
     Markdown of the page, of a notebook its markdown cells and figure captions, without code
     blocks; for the root page also the part captions of ``_toc.yml``). A message that is no
     longer there was changed or deleted in English. This needs no parser, so it cannot drift
     from Sphinx's extraction the way a re-implementation of it could;
  2. ``locales/sources.json`` holds the SHA-256 of each page's text as of the last
     ``make translations``; for a complete page it must equal the hash of the current text.
     This catches what check 1 cannot: English text *added* since the catalogue was made,
     which would otherwise stay English in the translated page.
"""

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"

_spec = importlib.util.spec_from_file_location("book_i18n", ROOT / "scripts" / "book_i18n.py")
book_i18n = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book_i18n)

# language -> pages whose catalogues are fully translated
COMPLETE = {"zh_CN": ["book/intro", "book/principles"]}

CATALOGUES = sorted(LOCALES.glob("*/LC_MESSAGES/**/*.po"))


def page_of(po: Path) -> str:
    """locales/zh_CN/LC_MESSAGES/book/intro.po -> book/intro"""
    return Path(*po.relative_to(LOCALES).parts[2:]).with_suffix("").as_posix()


def catalogue(language: str, page: str):
    with open(LOCALES / language / "LC_MESSAGES" / f"{page}.po", "rb") as f:
        return read_po(f)


def translated(cat):
    """(msgid, msgstr) of the messages with a translation that Sphinx uses (not fuzzy)."""
    return [(m.id, m.string) for m in cat if m.id and m.string and not m.fuzzy]


ROLE = re.compile(r"\{([\w:+-]+)\}`([^`]*)`")
CODE = re.compile(r"(`+)(.+?)\1")
MATH = re.compile(r"\$\$?([^$]+)\$\$?")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def markup(text: str) -> dict[str, Counter]:
    """The parts of a message a translation must keep unchanged."""
    roles = Counter()
    for name, content in ROLE.findall(text):
        explicit = re.fullmatch(r"(.*?)\s*<([^<>]+)>", content, flags=re.S)
        roles[name, explicit.group(2) if explicit else content] += 1
    rest = ROLE.sub(" ", text)
    code = Counter(m.group(2) for m in CODE.finditer(rest))
    rest = CODE.sub(" ", rest)
    return {
        "roles": roles,
        "inline code": code,
        "maths": Counter(MATH.findall(rest)),
        "links": Counter(LINK.findall(rest)),
    }


def test_the_markup_of_a_message_is_read_as_intended():
    parts = markup(
        "See {doc}`Title <target>` and {cite}`a2020b`, $x_i$ in `f(x)`, [t](https://u.v/w)."
    )
    assert parts["roles"] == Counter({("doc", "target"): 1, ("cite", "a2020b"): 1})
    assert parts["inline code"] == Counter({"f(x)": 1})
    assert parts["maths"] == Counter({"x_i": 1})
    assert parts["links"] == Counter({"https://u.v/w": 1})
    assert markup("{numref}`fig-a` $a$")["maths"] != markup("{numref}`fig-a` $b$")["maths"]


def test_there_are_catalogues_for_the_complete_pages():
    for language, pages in COMPLETE.items():
        for page in pages:
            assert (LOCALES / language / "LC_MESSAGES" / f"{page}.po").is_file(), (
                f"no catalogue for {page} in {language}: run `make translations`"
            )


@pytest.mark.parametrize(
    "language,page", [(lang, page) for lang, pages in COMPLETE.items() for page in pages]
)
def test_every_message_of_a_complete_page_is_translated(language, page):
    cat = catalogue(language, page)
    messages = [m for m in cat if m.id]
    assert messages, f"{page}: the catalogue has no messages"
    missing = [m.id for m in messages if not m.string or m.fuzzy]
    assert not missing, f"{language} {page}: untranslated or fuzzy:\n" + "\n".join(missing)


@pytest.mark.parametrize("po", CATALOGUES, ids=lambda p: str(p.relative_to(LOCALES)))
def test_translations_keep_roles_maths_code_and_links(po):
    with open(po, "rb") as f:
        cat = read_po(f)
    wrong = []
    for msgid, msgstr in translated(cat):
        original, translation = markup(msgid), markup(msgstr)
        for kind in original:
            if original[kind] != translation[kind]:
                wrong.append(f"{kind} differ in\n  {msgid}\n  {msgstr}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("po", CATALOGUES, ids=lambda p: str(p.relative_to(LOCALES)))
def test_translated_messages_still_occur_in_the_source(po):
    page = page_of(po)
    with open(po, "rb") as f:
        messages = translated(read_po(f))
    if not messages:  # nothing translated yet, or messages of templates (sphinx.po)
        return
    text = book_i18n.doc_text(page)
    stale = [msgid for msgid, _ in messages if book_i18n.normalise(msgid) not in text]
    assert not stale, (
        f"{po.relative_to(ROOT)}: these messages are no longer in {page} (changed or deleted "
        "in English); run `make translations` and translate what it marks fuzzy or adds:\n"
        + "\n".join(stale)
    )


@pytest.mark.parametrize("page", sorted({p for pages in COMPLETE.values() for p in pages}))
def test_catalogues_of_complete_pages_were_made_from_the_current_text(page):
    recorded = json.loads((LOCALES / "sources.json").read_text())
    assert recorded.get(page) == book_i18n.text_hash(page), (
        f"the text of {page} changed since its catalogues were made: run `make translations`, "
        "then translate the new and fuzzy messages"
    )
