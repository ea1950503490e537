# Two entry points (see README.md): `make suite` and `make test`.
# Both create .venv on first use and install the package with its dependencies.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROFILE ?= demo
SUITE_ARGS ?=
PYTEST_ARGS ?=
LAB_ARGS ?=
STUDENT_DIR ?= student

.PHONY: install suite test notebooks lab student clean-venv

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

# Sync each notebooks/NN_name.py with its .ipynb, both ways: the side edited since the last sync wins
# (outputs stripped); refused when both were edited (then: incseg sync-notebooks --prefer py|ipynb).
notebooks: $(STAMP)
	$(BIN)/python -m incseg_lib.cli sync-notebooks

# JupyterLab in the project's environment, with the kernel "incseg" registered in it.
lab: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name incseg --display-name "Python (incseg)"
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

# Student copies of the notebooks (exercise solutions removed, checks kept) into $(STUDENT_DIR)/.
student: $(STAMP)
	$(BIN)/incseg student --out $(STUDENT_DIR)

clean-venv:
	rm -rf $(VENV)
