# Two commands for a newcomer: `make book` and `make test`. Each creates .venv and installs
# requirements.txt when needed. `make bench` runs the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Every notebook runs at smoke scale in tests; `make book` uses the profile's default
# (smoke on a CPU, full on CUDA) unless SSLBOOK_PROFILE is set.
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: book test bench lint clean venv translations book-zh

venv: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(INSTALLED)

book: $(INSTALLED)
	$(VENV)/bin/jupyter-book build . --builder html -W -n --keep-going
	@echo "Open _build/html/index.html"

test: $(INSTALLED)
	SSLBOOK_PROFILE=smoke $(PY) -m pytest

# Translated editions, with Sphinx's gettext tools (README.md, "Translations"). The sources stay
# English; a translation is a set of catalogues, locales/<language>/LC_MESSAGES/<page>.po.
# `make translations` extracts the messages of every page (a gettext build that executes no
# notebook) and merges them into the catalogues of each language in LANGUAGES: new messages
# come in untranslated, changed ones marked fuzzy. It records the text they came from in
# locales/sources.json, which tests/test_translation.py checks.
LANGUAGES := zh_CN
I18N := $(PY) scripts/book_i18n.py
POT_DIR := _build/i18n/_build/gettext

translations: $(INSTALLED)
	$(I18N) config gettext _build/i18n/_config.yml
	$(VENV)/bin/jupyter-book build . --config _build/i18n/_config.yml --path-output _build/i18n \
		--builder custom --custom-builder gettext
	$(VENV)/bin/sphinx-intl update --pot-dir $(POT_DIR) --locale-dir locales \
		$(addprefix --language ,$(LANGUAGES))
	$(I18N) record $(POT_DIR)

# The Chinese book, built like `make book` but with language zh_CN. Its notebooks' outputs come
# from the English book's execution cache (_build/.jupyter_cache), keyed on the code cells only,
# so a notebook that `make book` has run is not run again. With a cold cache (or changed code)
# the notebooks run here, as in `make book`, and their outputs go into that same cache.
book-zh: translations
	$(I18N) config zh_CN _build/zh_CN/_config.yml
	$(VENV)/bin/jupyter-book build . --config _build/zh_CN/_config.yml --path-output _build/zh_CN \
		--builder html -W -n --keep-going
	@echo "Open _build/zh_CN/_build/html/index.html"

BENCH_INSTALLED := $(VENV)/.bench-installed

$(BENCH_INSTALLED): $(INSTALLED) bench/requirements.txt
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $(BENCH_INSTALLED)

bench: $(BENCH_INSTALLED)
	$(PY) bench/run_all.py

lint: $(INSTALLED)
	$(VENV)/bin/ruff check sslbook tests bench scripts
	$(VENV)/bin/ruff format --check sslbook tests bench scripts

clean:
	rm -rf _build
