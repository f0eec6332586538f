# polyret: `make demo` (the main job) and `make test` (the suite) each set up everything first.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.polyret-installed
# torch first, pinned: on these machines pip takes the CPU build from local disk; an unpinned
# torch would pull a multi-GB CUDA build.
TORCH   := torch==2.13.0

.PHONY: setup lint test test-all demo docs clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# One pytest worker per logical CPU (decided at run time; at most 4, as a worker with its model copies and
# subprocesses can take a few GB), a test file per worker (module fixtures reused); the `slow` tier
# (more random-kill and torchrun cases of what the suite already checks) is in test-all.
PYTEST  := $(BIN)/python -m pytest -q -n logical --maxprocesses 4 --dist loadfile

# The lint gate (settings in pyproject.toml): ruff's pyflakes + complexity (C901 <= 15) rules, the
# formatter's check, and the function-length limit ruff does not have.
LINTED  := src tests benchmarks tools

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python tools/check_function_length.py src

test: setup lint
	$(PYTEST) -m "not slow"

test-all: setup
	$(PYTEST)

demo: setup
	$(BIN)/polyret demo

# The manual (docs/, mkdocs.yml) into site/; --strict: a broken link, anchor or API reference fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

clean-venv:
	rm -rf $(VENV)
