# statusdb: after cloning, `make demo` and `make test` are all you need (see README.md).
#
#   make demo   create .venv if missing, install statusdb, run `statusdb demo` on a local cluster
#   make test   create .venv if missing, install statusdb[dev], run ruff, mypy, squawk, pytest
#               (every test, with statusdb's coverage and its floor)
#   make test-fast  the quick loop: no lint, only the tests that need no database or only `conn`
#               on the shared database (no slow ones, no clones); under a minute
#   make lint   ruff (check + format --check) + mypy + squawk only
#   make schema regenerate schema/current.sql and docs/schema.md from the migrations
#
# Variables: PYTHON (interpreter that creates the venv, default python3), VENV (default .venv),
# PYTEST_ARGS (extra pytest arguments, e.g. PYTEST_ARGS='-k cli -x').
#
# Installs are pinned by constraints-dev.txt (every dev tool and dependency, exact versions), so
# that a new release of ruff, mypy or a library cannot turn CI red by itself; `make constraints`
# re-resolves the newest versions (then run `make test` and commit the file).

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` / `make pytest` (each starts its own cluster); 0 runs the
# suite in one process.
PYTEST_WORKERS ?= 2

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help demo test test-fast lint ruff format-check mypy squawk pytest schema constraints clean \
	bench bench-large

help:
	@echo "make demo   - install statusdb in $(VENV) and run the demo on a local PostgreSQL"
	@echo "make test   - install statusdb[dev] in $(VENV); ruff, mypy, squawk, pytest"
	@echo "make test-fast - pytest on the unit and shared-database tests only (< 1 min)"
	@echo "make lint   - ruff (check, format --check), mypy and squawk only"
	@echo "make schema - regenerate schema/current.sql and docs/schema.md (commit them)"
	@echo "make bench  - benchmarks at the small scale (~3 min; bench/README.md)"
	@echo "make bench-large - benchmarks at the full scale (under 20 min)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

CONSTRAINTS := constraints-dev.txt

# Stamp files: reinstall only when pyproject.toml or the pins change (the installs are editable).
$(VENV)/.statusdb-installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -c $(CONSTRAINTS) -e .
	@touch $@

$(VENV)/.statusdb-dev-installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -c $(CONSTRAINTS) -e '.[dev]'
	@touch $@ $(VENV)/.statusdb-installed

demo: $(VENV)/.statusdb-installed
	$(BIN)/statusdb demo

test: lint pytest

lint: ruff format-check mypy squawk

ruff: $(VENV)/.statusdb-dev-installed
	$(BIN)/ruff check .

# Every Python file is kept in `ruff format` style (Markdown excluded in pyproject.toml).
FORMAT_PATHS ?= .

format-check: $(VENV)/.statusdb-dev-installed
	$(BIN)/ruff format --check $(FORMAT_PATHS)

mypy: $(VENV)/.statusdb-dev-installed
	$(BIN)/mypy

squawk: $(VENV)/.statusdb-dev-installed
	@if ls migrations/*.sql >/dev/null 2>&1; then \
		echo "$(BIN)/squawk --config .squawk.toml migrations/*.sql"; \
		$(BIN)/squawk --config .squawk.toml migrations/*.sql; \
	else \
		echo "squawk: no migrations/*.sql yet, nothing to lint"; \
	fi

# Coverage of statusdb over the whole suite; pyproject.toml's [tool.coverage.report] holds the
# floor (fail_under) that fails the run.
PYTEST_COV ?= --cov --cov-report=term

pytest: $(VENV)/.statusdb-dev-installed
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_COV) $(PYTEST_ARGS)

test-fast: $(VENV)/.statusdb-dev-installed
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --fast $(PYTEST_ARGS)

# The current schema in one place (tests/test_schema_current.py fails when these are stale):
# applies the migrations to a throwaway cluster, dumps and documents it.
schema: $(VENV)/.statusdb-dev-installed
	$(BIN)/python -m schema.generate

# Re-resolve the pins: a scratch venv gets the newest versions pyproject.toml allows.
constraints: | $(BIN)/python
	rm -rf .constraints-venv
	$(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/python -m pip --disable-pip-version-check install --quiet -e '.[dev]'
	{ echo "# Exact versions of statusdb's dependencies and dev tools, used by every \`make\` install"; \
	  echo "# (pip install -c). Regenerate with \`make constraints\`, then run \`make test\`."; \
	  .constraints-venv/bin/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS)
	rm -rf .constraints-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache dist build

# Benchmarks (bench/README.md): each run starts its own throwaway PostgreSQL cluster, loads a
# deterministic dataset, prints a table and writes bench/results.json. BENCH_ARGS passes extra
# arguments, e.g. BENCH_ARGS='--case "page view"'.
BENCH_ARGS ?=

$(VENV)/.statusdb-bench-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -c $(CONSTRAINTS) -e '.[bench]'
	@touch $@

bench: $(VENV)/.statusdb-bench-installed
	$(BIN)/python -m bench --scale small $(BENCH_ARGS)

bench-large: $(VENV)/.statusdb-bench-installed
	$(BIN)/python -m bench --scale large $(BENCH_ARGS)
