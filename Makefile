# Campaign Pool — the two set-up commands: `make run` and `make test`.
# Everything is installed into a project virtualenv (.venv) and node_modules on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ASSETS := portal/static/vendor/.installed-stamp

.PHONY: run test lint install assets clean worker

install: $(STAMP) $(ASSETS)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# Front-end libraries come from package.json (npm registry), never from a CDN or a committed copy.
$(ASSETS): package.json
	npm install --no-audit --no-fund --loglevel=error
	node scripts/copy-assets.mjs
	touch $@

assets: $(ASSETS)

run: install
	$(BIN)/flask --app app serve

worker: install
	$(BIN)/rq worker --with-scheduler --url "$$REDIS_URL" seeding default

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) node_modules portal/static/vendor .pytest_cache
