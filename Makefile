# Two entry points (see README.md): `make suite` and `make test`.
# Both create .venv on first use and install the package with its dependencies.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROFILE ?= demo
SUITE_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install suite test notebooks clean-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "incseg needs Python 3.10 or newer; set PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

suite: $(STAMP)
	$(BIN)/incseg suite --profile $(PROFILE) $(SUITE_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Regenerate the .ipynb files from their jupytext sources (outputs stripped).
notebooks: $(STAMP)
	$(BIN)/python -m incseg_lib.cli sync-notebooks

clean-venv:
	rm -rf $(VENV)
