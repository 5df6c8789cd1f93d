# statusdb: after cloning, `make demo` and `make test` are all you need (see README.md).
#
#   make demo   create .venv if missing, install statusdb, run `statusdb demo` on a local cluster
#   make test   create .venv if missing, install statusdb[dev], run ruff, mypy, squawk, pytest
#   make lint   ruff + mypy + squawk only
#
# Variables: PYTHON (interpreter that creates the venv, default python3), VENV (default .venv),
# PYTEST_ARGS (extra pytest arguments, e.g. PYTEST_ARGS='-k cli -x').

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help demo test lint ruff mypy squawk pytest clean bench bench-large

help:
	@echo "make demo   - install statusdb in $(VENV) and run the demo on a local PostgreSQL"
	@echo "make test   - install statusdb[dev] in $(VENV); ruff, mypy, squawk, pytest"
	@echo "make lint   - ruff, mypy and squawk only"
	@echo "make bench  - benchmarks at the small scale (~3 min; bench/README.md)"
	@echo "make bench-large - benchmarks at the full scale (under 20 min)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files: reinstall only when pyproject.toml changes (the installs are editable).
$(VENV)/.statusdb-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.statusdb-dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.statusdb-installed

demo: $(VENV)/.statusdb-installed
	$(BIN)/statusdb demo

test: lint pytest

lint: ruff mypy squawk

ruff: $(VENV)/.statusdb-dev-installed
	$(BIN)/ruff check .

mypy: $(VENV)/.statusdb-dev-installed
	$(BIN)/mypy

squawk: $(VENV)/.statusdb-dev-installed
	@if ls migrations/*.sql >/dev/null 2>&1; then \
		echo "$(BIN)/squawk --config .squawk.toml migrations/*.sql"; \
		$(BIN)/squawk --config .squawk.toml migrations/*.sql; \
	else \
		echo "squawk: no migrations/*.sql yet, nothing to lint"; \
	fi

pytest: $(VENV)/.statusdb-dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache dist build

# Benchmarks (bench/README.md): each run starts its own throwaway PostgreSQL cluster, loads a
# deterministic dataset, prints a table and writes bench/results.json. BENCH_ARGS passes extra
# arguments, e.g. BENCH_ARGS='--case "page view"'.
BENCH_ARGS ?=

$(VENV)/.statusdb-bench-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[bench]'
	@touch $@

bench: $(VENV)/.statusdb-bench-installed
	$(BIN)/python -m bench --scale small $(BENCH_ARGS)

bench-large: $(VENV)/.statusdb-bench-installed
	$(BIN)/python -m bench --scale large $(BENCH_ARGS)
