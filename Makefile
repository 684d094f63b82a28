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

.PHONY: install demo test bench browser

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $@

demo: install
	$(BIN)/dedup models build
	$(BIN)/dedup run seeds/ --out report/

# the browser test of report.html needs Debian's chromium: installed here when
# running as root (CI), otherwise that one test is skipped with its reason
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the browser test of report.html will be skipped"; \
	  else \
	    echo "chromium missing and not root: the browser test of report.html will be skipped"; \
	  fi; \
	}

test: install browser
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 $(BIN)/pytest
