# Two commands from a fresh clone: `make demo`, then `make test`. Needs python3 (>= 3.10) and make.
# The work is done by scripts/dev.sh (also the install of .ci/run); without make:
# `sh scripts/dev.sh demo` and `sh scripts/dev.sh test`.

PYTHON ?= python3
DEMO_DIR ?= unifocal-demo
ARGS ?=
DEV = PYTHON="$(PYTHON)" DEMO_DIR="$(DEMO_DIR)" sh scripts/dev.sh

.DEFAULT_GOAL := help
.PHONY: help demo test venv

help:
	@echo "make demo   create .venv if needed (a few minutes, once), train a small U-Net with the Unified"
	@echo "            Focal loss on the built-in phantom, print its metrics and where its run folder,"
	@echo "            figure and predictions are (DEMO_DIR=$(DEMO_DIR); ARGS=\"--epochs 5\" passes options on)"
	@echo "make test   the same .venv, then the test suite: python -m pytest -q \$$ARGS"
	@echo "            (real-data tests read UNIFOCAL_DATA; unset, the same default as .ci/run)"
	@echo "make venv   create or update .venv only (the development install under constraints/ci.txt);"
	@echo "            reinstalls only when pyproject.toml or constraints/ci.txt changed"
	@echo "make help   this list"
	@echo "PYTHON=python3.12 make ... picks the interpreter that creates .venv (>= 3.10; now: $(PYTHON))"

demo:
	@$(DEV) demo $(ARGS)

test:
	@$(DEV) test $(ARGS)

venv:
	@$(DEV) install .venv
