# Two entry points (see README.md): `make suite` and `make test`.
# Both create .venv on first use and install exactly the versions pinned in requirements.lock.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROFILE ?= demo
SUITE_ARGS ?=
PYTEST_ARGS ?=
LAB_ARGS ?=
STUDENT_DIR ?= student
UV_VERSION ?= 0.13.9

.PHONY: install install-latest suite test lint notebooks lab student lock lock-check lock-outdated clean-venv

# The lock is checked first (offline: was it compiled from today's pyproject.toml?), then installed
# with hashes; the package itself goes in without dependencies (they all come from the lock).
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "incseg needs Python 3.11 or newer; set PYTHON=python3.x")'
	@$(PYTHON) tools/lock.py check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The newest releases pyproject.toml allows, not the lock (numbers may then differ from docs/results.md).
install-latest:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(STAMP)

suite: $(STAMP)
	$(BIN)/incseg suite --profile $(PROFILE) $(SUITE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check incseg_lib tests benchmarks tools notebooks
	$(BIN)/ruff format --check incseg_lib tests benchmarks tools notebooks
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Regenerate requirements.lock from pyproject.toml (needs the network); review the diff, commit both.
# uv (pinned) lives in a venv of its own, so a stale lock never blocks making a new one.
LOCK_VENV := $(VENV)-lock
$(LOCK_VENV)/bin/uv:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

lock: $(LOCK_VENV)/bin/uv
	UV=$(LOCK_VENV)/bin/uv $(PYTHON) tools/lock.py compile

lock-check:
	$(PYTHON) tools/lock.py check

# What a fresh resolve would pin differently today (needs the network); changes nothing.
lock-outdated: $(LOCK_VENV)/bin/uv
	UV=$(LOCK_VENV)/bin/uv $(PYTHON) tools/lock.py outdated

# Sync each notebooks/NN_name.py with its .ipynb, both ways: the side edited since the last sync wins
# (outputs stripped); refused when both were edited (then: incseg sync-notebooks --prefer py|ipynb).
notebooks: $(STAMP)
	$(BIN)/python -m incseg_lib.cli sync-notebooks

# JupyterLab in the project's environment, with the kernel "incseg" registered in it.
lab: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name incseg --display-name "Python (incseg)"
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

# Student copies of the notebooks (exercise solutions removed, checks kept) into $(STUDENT_DIR)/,
# made from the .py sources once they are synced with any edit made in Jupyter.
student: $(STAMP)
	$(BIN)/python -m incseg_lib.cli sync-notebooks
	$(BIN)/incseg student --out $(STUDENT_DIR)

clean-venv:
	rm -rf $(VENV)
