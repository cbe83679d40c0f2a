# Two commands for a newcomer: `make book` and `make test`. Each creates .venv and installs
# requirements.txt when needed. `make bench` runs the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Every notebook runs at smoke scale in tests; `make book` uses the profile's default
# (smoke on a CPU, full on CUDA) unless SSLBOOK_PROFILE is set.
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: book test bench lint clean venv

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

BENCH_INSTALLED := $(VENV)/.bench-installed

$(BENCH_INSTALLED): $(INSTALLED) bench/requirements.txt
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $(BENCH_INSTALLED)

bench: $(BENCH_INSTALLED)
	$(PY) bench/run_all.py

lint: $(INSTALLED)
	$(VENV)/bin/ruff check sslbook tests bench
	$(VENV)/bin/ruff format --check sslbook tests bench

clean:
	rm -rf _build
