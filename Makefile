# The two set-up commands (README.md): `make demo` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

## Install and start the proxy on the built-in demo profile (mock provider, no keys, no network).
demo: $(VENV)/.installed
	$(BIN)/llmgw serve

## Install everything the tests need and run the whole suite (tests/agents/ installs the coding agents it runs
## from the npm registry into ~/.cache/llmgw-test-agents, or $$LLMGW_AGENTS_CACHE, once; ensure-node puts a
## Node.js 22 from the npm registry there too when the system's is older than Gemini CLI's 20).
test: $(VENV)/.installed-test
	./scripts/ensure-redis
	./scripts/ensure-postgres
	./scripts/ensure-node
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

## The benchmark (not part of the tests): see bench/README.md.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py
