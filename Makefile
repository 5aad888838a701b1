# Entry points: `make demo`, `make test` and `make docs`. Each creates .venv and installs everything first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench docs clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: the pinned CPU build; a bare `torch` would pull gigabytes of CUDA wheels.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all,dev,bench,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/conjugacy reproduce optimizers --out results/optimizers

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples

# The documentation site: warnings are errors; the gallery executes examples/ (about a minute of
# CPU); then headless Chromium loads pages of it (console errors, images). Open
# docs/_build/html/index.html.
docs: $(STAMP)
	MPLBACKEND=Agg $(PY) -m sphinx -b html -W --keep-going docs docs/_build/html
	$(PY) docs/check_site.py docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/bench_spectrum.py

clean:
	rm -rf $(VENV) results .pytest_cache docs/_build docs/auto_examples docs/api/generated docs/sg_execution_times.rst
