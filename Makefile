# Campaign Pool: `make run` serves the portal on http://127.0.0.1:5000, `make test` runs the suite.
# Both set everything up on first use: a project virtualenv (.venv) from pyproject.toml and the
# portal's front-end libraries from package.json (node_modules, copied to portal/static/vendor).
# Nothing is needed beforehand but python3 (3.11+, with venv) and npm; see README.md.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ASSETS := portal/static/vendor/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 5000
PIP    := $(BIN)/python -m pip --quiet --disable-pip-version-check
CHROMIUM ?= /usr/bin/chromium

.PHONY: help install assets browser prometheus run worker test lint mutate format clean

help:
	@echo "make run     serve the portal on http://$(HOST):$(PORT) (SQLite + in-process queue by default;"
	@echo "             set DATABASE_URL / REDIS_URL for PostgreSQL and Redis)"
	@echo "make test    run the test suite (set TEST_DATABASE_URL / TEST_REDIS_URL for PostgreSQL + Redis)"
	@echo "make worker  run an RQ worker against REDIS_URL (production-style deployments)"
	@echo "make lint    ruff, import-linter (layers) and mypy"
	@echo "make mutate  mutation testing of the critical modules (slow; GROUPS=\"claim input\" for some)"

install: $(STAMP) $(ASSETS)

# Rebuilt when pyproject.toml changes. A venv that exists but lacks pip (python3-venv missing
# when it was made) is recreated rather than half-used.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python && $(BIN)/python -m pip --version >/dev/null 2>&1 || \
		{ rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[dev]'
	@touch $@

# Front-end libraries come from package.json (npm registry), never from a CDN or a committed copy.
$(ASSETS): package.json
	npm install --no-audit --no-fund --loglevel=error
	node scripts/copy-assets.mjs
	@touch $@

assets: $(ASSETS)

# Browser tests drive the system Chromium through Playwright (which installs no browser itself).
# Installed from Debian when missing and we can (root, or sudo without a password); otherwise
# the browser tests say what is missing and skip.
browser:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; \
		elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
		else echo "note: $(CHROMIUM) is missing; browser tests will be skipped"; exit 0; fi; \
		echo "installing chromium for the browser tests ..."; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium \
			|| echo "note: could not install chromium; browser tests will be skipped"; \
	fi

# The metrics tests start a real Prometheus and run promtool (Debian's `prometheus` package),
# installed like chromium above when missing and we can; otherwise those tests skip, saying so.
prometheus:
	@if ! command -v prometheus >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; \
		elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
		else echo "note: prometheus is missing; the metrics server tests will be skipped"; exit 0; fi; \
		echo "installing prometheus for the metrics tests ..."; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus \
			|| echo "note: could not install prometheus; the metrics server tests will be skipped"; \
	fi

run: install
	$(BIN)/flask --app app serve --host $(HOST) --port $(PORT)

worker: install
	@test -n "$$REDIS_URL" || { echo "REDIS_URL is not set: without it, 'make run' runs jobs itself"; exit 1; }
	$(BIN)/rq worker --with-scheduler --worker-class jobs.worker.AppWorker --url "$$REDIS_URL" seeding default

test: install browser prometheus
	$(BIN)/pytest $(PYTEST_ARGS)

# ruff (style and bugs), import-linter (the layers of docs/architecture.md) and mypy (strict on
# portal/ and jobs/; the options are in pyproject.toml [tool.mypy]).
# Mutation testing (docs/testing.md): not part of `make test` or CI, it takes tens of minutes.
# PostgreSQL groups use TEST_DATABASE_URL (default: the local server).
mutate: install
	$(BIN)/python scripts/mutate.py $(GROUPS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules portal/static/vendor .pytest_cache .ruff_cache *.egg-info
