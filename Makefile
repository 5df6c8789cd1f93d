# statusdb: after cloning, `make demo` and `make test` are all you need (see README.md).
#
#   make demo   create .venv if missing, install statusdb, run `statusdb demo` on a local cluster
#   make test   create .venv if missing, install statusdb[dev], run make lint and pytest side by side
#   make lint   ruff (check + format --check) + mypy + squawk + plpgsql_check + the docs build + the sync-twin check
#   make docs   build the documentation site (docs/, mkdocs.yml) into site/
#   make schema regenerate schema/current.sql, docs/schema.md and schema/{tables,functions,views}/
#   make test-newest  the tests once more against the newest runtime dependencies allowed
#   make sync-twins regenerate the sync twins of the async code (tools/async_to_sync.py)
#   make test-fast  the quick loop: no lint, only the tests that need no database or only `conn`
#               on the shared database (no slow ones, no clones)
#
# Variables: PYTHON (interpreter that creates the venv, default python3), VENV (default .venv),
# PYTEST_ARGS (extra pytest arguments, e.g. PYTEST_ARGS='-k cli -x'), PYTEST_WORKERS (default 4),
# PYTEST_FAST_WORKERS (test-fast's, default 2).
#
# Installs are pinned by constraints-dev.txt (every dev tool and dependency, exact versions), so
# that a new release of ruff, mypy or a library cannot turn CI red by itself; `make constraints`
# re-resolves the newest versions (then run `make test` and commit the file).

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` / `make pytest` (each starts its own cluster); 0 runs the
# suite in one process. 4 on 2 cores: the suite waits (subprocesses, restarts, failover, event
# waits) for part of its time, and two more workers fill those waits for ~6 s of CPU each
# (collection, initdb, the template's migrations). `make test-fast` is CPU-bound: 2 there.
PYTEST_WORKERS ?= 4
PYTEST_FAST_WORKERS ?= 2
# --dist loadgroup: tests marked xdist_group("name") share one worker (tests/test_failover.py
# starts one pg_auto_failover formation for its module); the others are spread as usual.

BIN := $(VENV)/bin
empty :=
space := $(empty) $(empty)
PIP := $(BIN)/python -m pip --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help demo test test-fast test-newest lint ruff format-check mypy squawk async-to-sync sync-twins plpgsql-check docs-check docs pytest \
	schema constraints clean bench bench-large

help:
	@echo "make demo   - install statusdb in $(VENV) and run the demo on a local PostgreSQL"
	@echo "make test   - install statusdb[dev] in $(VENV); make lint and pytest side by side"
	@echo "make test-fast - pytest on the unit and shared-database tests only"
	@echo "make lint   - ruff (check, format --check), mypy, squawk, plpgsql_check, docs build"
	@echo "make docs   - build the documentation site into site/ (preview: $(BIN)/mkdocs serve)"
	@echo "make test-newest - the tests against the newest runtime dependencies allowed"
	@echo "make sync-twins - regenerate the sync twins of the async code (tools/async_to_sync.py)"
	@echo "make schema - regenerate schema/current.sql, docs/schema.md, schema/tables/ (commit them)"
	@echo "make bench  - benchmarks at the small scale (~3 min; bench/README.md)"
	@echo "make bench-large - benchmarks at the full scale (under 20 min)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

CONSTRAINTS := constraints-dev.txt

# Stamp files: reinstall only when pyproject.toml or the pins change (the installs are editable).
$(VENV)/.statusdb-installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -c $(CONSTRAINTS) -e .
	@touch $@

# The dev install (~90 packages) goes through uv (pinned in $(CONSTRAINTS), installed by pip
# first): it downloads in parallel and byte-compiles on every core (~4 s from a clean clone
# against ~17 s for pip's sequential downloads and single-process compile; the .pyc matter: with
# PYTHONDONTWRITEBYTECODE set, as on CI's machine, nothing is cached at import). uv reads PyPI
# only, not pip's configuration; where it cannot install, pip does the same install, compiled
# afterwards by compileall -j 0.
$(VENV)/.statusdb-dev-installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	( $(PIP) install --quiet --no-compile -c $(CONSTRAINTS) uv \
	  && $(BIN)/uv pip install --system-certs --python $(BIN)/python --compile-bytecode -c $(CONSTRAINTS) -e '.[dev]' ) \
	|| { echo "uv could not install: installing with pip"; \
	     $(PIP) install --no-compile -c $(CONSTRAINTS) -e '.[dev]' \
	     && { $(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
	          || echo "compileall: a file did not compile (pip would skip it too); the rest are compiled"; }; }
	@touch $@ $(VENV)/.statusdb-installed

demo: $(VENV)/.statusdb-installed
	$(BIN)/statusdb demo

# lint and pytest side by side: pytest's start-up (compiling, collecting, each worker's cluster
# and template) leaves a core idle for ~10 s, which mypy and the other checks fill (CONTRIBUTING
# "Where the time goes"). pytest is listed first so that it starts at once and lint's checks run
# one after the other in the second job slot; --output-sync prints each one's output whole when
# it ends (pytest's at the end of the run). Either failing fails `make test`; -k lets the other
# finish, so a lint finding and a failing test both show in one run. `make lint pytest` (no -j)
# runs them one after the other as before.
test: $(VENV)/.statusdb-dev-installed
	@$(MAKE) --no-print-directory -k -j2 --output-sync=target pytest lint

lint: ruff format-check mypy squawk async-to-sync plpgsql-check docs-check

# The sync twins are generated from the async code (tools/async_to_sync.py, CONTRIBUTING.md
# "Layout"): this fails when one is stale; `make sync-twins` rewrites them.
async-to-sync: $(VENV)/.statusdb-dev-installed
	$(BIN)/python tools/async_to_sync.py --check

sync-twins: $(VENV)/.statusdb-dev-installed
	$(BIN)/python tools/async_to_sync.py

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

# plpgsql_check over every PL/pgSQL function, on a throwaway migrated cluster; findings must be
# explained in schema/plpgsql_check_allowlist.toml. Skips (with a message) without the extension.
plpgsql-check: $(VENV)/.statusdb-dev-installed
	$(BIN)/python -m schema.plpgsql_lint

# The documentation site must build without a warning (broken links, anchors, docstrings):
# built into a throwaway folder, never committed.
docs-check: $(VENV)/.statusdb-dev-installed
	@site="$$(mktemp -d)"; trap 'rm -rf "$$site"' EXIT; \
	echo "$(BIN)/mkdocs build --strict --site-dir $$site"; \
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir "$$site"

docs: $(VENV)/.statusdb-dev-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
# Coverage of statusdb over the whole suite; pyproject.toml's [tool.coverage.report] holds the
# floor (fail_under) that fails the run.
PYTEST_COV ?= --cov --cov-report=term

pytest: $(VENV)/.statusdb-dev-installed
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_COV) $(PYTEST_ARGS)

test-fast: $(VENV)/.statusdb-dev-installed
	$(BIN)/python -m pytest -n $(PYTEST_FAST_WORKERS) --fast $(PYTEST_ARGS)

# The current schema in one place, and per table (tests/test_schema_current.py fails when these
# are stale): applies the migrations to a throwaway cluster, dumps and documents it.
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

# The same suite against the newest releases pyproject.toml allows of the runtime dependencies
# (psycopg, psycopg-pool, yoyo-migrations, attrs, python-dateutil), dev tools still pinned: so a
# new release that breaks statusdb is found by CI, not by users. .ci/run runs it after `test`.
# The second install upgrades to statusdb's own ranges even where a test-only tool caps lower
# (recurring-ical-events pins python-dateutil < 3; pip warns and goes ahead, as users get it).
NEWEST_VENV ?= .venv-newest
RUNTIME_DEPS := psycopg psycopg-binary psycopg-pool yoyo-migrations attrs python-dateutil

test-newest:
	rm -rf $(NEWEST_VENV)
	$(PYTHON) -m venv $(NEWEST_VENV)
	grep -viE '^($(subst $(space),|,$(RUNTIME_DEPS)))==' $(CONSTRAINTS) > $(NEWEST_VENV)/constraints.txt
	$(NEWEST_VENV)/bin/python -m pip --disable-pip-version-check install --quiet \
		-c $(NEWEST_VENV)/constraints.txt -e '.[dev]'
	$(NEWEST_VENV)/bin/python -c "import tomllib; \
		print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
		> $(NEWEST_VENV)/runtime.txt
	$(NEWEST_VENV)/bin/python -m pip --disable-pip-version-check install --quiet --upgrade \
		-r $(NEWEST_VENV)/runtime.txt 2>&1 | grep -v '^WARNING: Location' || true
	@echo "runtime dependencies under test:"
	@$(NEWEST_VENV)/bin/python -m pip --disable-pip-version-check list 2>/dev/null \
		| grep -iE '^($(subst $(space),|,$(RUNTIME_DEPS))) '
	$(NEWEST_VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(NEWEST_VENV) .mypy_cache .ruff_cache .pytest_cache dist build site

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
