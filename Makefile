# The two commands in the README: `make serve` and `make test`.
# Each one creates what it needs (a local .venv; Chromium for the browser tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export NO_MKDOCS_2_WARNING := 1

.PHONY: serve test lint build check site bench bench-quick accuracy chromium wheel-check

# pyproject.toml declares ranges; constraints.txt pins the versions the generated files are
# made with, so the project's own environment always has those.
$(VENV)/.docs-installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes derive 2>/dev/null || true  # its name before 0.1.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[docs]'
	touch $@

$(VENV)/.test-installed: pyproject.toml constraints.txt $(VENV)/.docs-installed
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

## serve: regenerate code and pages, then serve the site on http://127.0.0.1:8000
## (--dirty: an edit renders only the pages it changes; derive/mkdocs_hook.py renders them all
## when the nav, the failure banner or the config changes)
serve: $(VENV)/.docs-installed
	$(PY) -m derive build
	$(PY) -m mkdocs serve --dirty -a 127.0.0.1:8000

## test: lint, the generated files current, then the whole test suite, browser tests included
test: $(VENV)/.test-installed chromium lint
	$(PY) -m derive check
	$(PY) -m pytest

## lint: ruff's rules (pyproject.toml [tool.ruff.lint]) and its formatting, on the hand-written code
lint: $(VENV)/.docs-installed
	$(PY) -m ruff check derive tests
	$(PY) -m ruff format --check derive tests

## site: build the static site into site/ (what CI checks with --strict)
site: $(VENV)/.docs-installed
	$(PY) -m derive build
	$(PY) -m mkdocs build --strict

build: $(VENV)/.docs-installed
	$(PY) -m derive build

check: $(VENV)/.docs-installed
	$(PY) -m derive check

## wheel-check: build the sdist and wheel, install the wheel without extras beside NumPy one
## minor version older than constraints.txt's and beside PyTorch, run every generated function
wheel-check: $(VENV)/.test-installed
	PY=$(PY) .ci/wheel-check

bench: $(VENV)/.test-installed
	$(PY) -m derive.bench

bench-quick: $(VENV)/.test-installed
	$(PY) -m derive.bench --quick

accuracy: $(VENV)/.test-installed
	$(PY) -m derive.accuracy

# Debian's Chromium for the browser tests (Playwright's own download cannot work here).
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium missing: run 'sudo apt-get install -y chromium' (the browser tests are skipped without it)"; fi; }
