# allies — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 4000
ALLIES_HOME ?= ./.allies
export DB_PORT ALLIES_HOME

.PHONY: run test test-slow check lint format install clean bench bench-triage fuzz docker-test docs screenshots

# What the install needs from the machine, said in one line before anything runs: the triage's C
# core is compiled at install (gcc, Python's headers) and the venv needs Python's venv module.
define PREFLIGHT
@command -v gcc >/dev/null 2>&1 || { echo "allies: the triage's C core needs a C compiler and Python's headers: sudo apt-get install gcc python3-dev" >&2; exit 1; }
@$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || { echo "allies: the triage's C core needs Python's headers: sudo apt-get install python3-dev" >&2; exit 1; }
@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "allies: Python's venv module is missing: sudo apt-get install python3-venv" >&2; exit 1; }
endef

# `make run` installs what the service needs; the development tools (pytest, ruff, playwright...)
# come with the first target that uses them.
DEV := $(VENV)/.dev-installed

$(BIN)/allies: pyproject.toml setup.py src/allies/triage/_logscan.c  # the C core is compiled at install
	$(PREFLIGHT)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(DEV): $(BIN)/allies
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(DEV) ## Create .venv and install allies with its development tools.

run: $(BIN)/allies ## Start the database (embedded unless DATABASE_URL), seed it if empty, serve the API.
	$(BIN)/allies db seed --if-empty
	$(BIN)/allies serve --port $(PORT)

PYTEST := $(BIN)/pytest -n auto --maxprocesses 4

test: $(DEV) ## The fast tier of the tests, against a real PostgreSQL (all but the `slow` ones).
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

test-slow: $(DEV) ## The slow tier: load and fault tests, schemathesis, the benchmarks on tiny inputs, the docs executed.
	$(PYTEST) -m slow $(PYTEST_ARGS)

check: lint test test-slow ## Everything: lint, the fast tier, the slow tier. CI runs this, then make docker-test.

lint: $(DEV) ## ruff (lint and formatting) and import-linter (the layers of docs/architecture.md).
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(DEV)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docker-test: $(DEV) ## The Docker section of docs/operations.md, run on compose.yaml (needs root; installs Docker if missing).
	docker/test.sh

docs: $(DEV) ## Regenerate the reference of docs/cli.md from the commands' --help.
	$(BIN)/python tests/cli_reference.py

screenshots: $(DEV) ## Regenerate docs/console/*.png: the console's pages in headless Chromium (Debian's chromium).
	$(BIN)/python tests/console_screenshots.py

bench: $(DEV) ## API (full vs bare-bones app, wrk), database (1 M stores), triage: table + docs/benchmarks.md.
	$(BIN)/python bench/bench.py

fuzz: $(DEV) ## Fuzz the triage's C scanning core (libFuzzer + sanitizers; needs clang) for $(FUZZ_SECONDS) s, 300 by default.
	$(BIN)/python tests/fuzz/fuzz_logscan.py --seconds $(or $(FUZZ_SECONDS),300)

bench-triage: $(DEV) ## Case 4: the grep|awk pipeline vs allies logs triage on a generated log.
	$(BIN)/python bench/triage.py --size-mb $(or $(BENCH_MB),1024) $(BENCH_TRIAGE_ARGS)

clean: ## Remove the virtual environment (the data in $(ALLIES_HOME) stays).
	rm -rf $(VENV)
