# polyret: `make demo` (the main job) and `make test` (the suite) each set up everything first.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.polyret-installed
# torch first, pinned: on these machines pip takes the CPU build from local disk; an unpinned
# torch would pull a multi-GB CUDA build.
TORCH   := torch==2.13.0

.PHONY: setup test demo clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/polyret demo

clean-venv:
	rm -rf $(VENV)
