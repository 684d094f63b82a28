# The two commands of the README:
#   make demo   installs everything into .venv, builds the default model, runs dedup on seeds/
#   make test   installs everything into .venv, then runs the linter and the whole test suite
# torch is installed first and pinned: a CPU build of 2.13.0 lies on local disk
# here, while an unpinned torch pulled by another package would be a multi-GB
# CUDA build (see ../shared/notes/machine.md).

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
TORCH = torch==2.13.0

.PHONY: install demo test bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/dedup models build
	$(BIN)/dedup run seeds/ --out report/

test: install
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 $(BIN)/pytest
