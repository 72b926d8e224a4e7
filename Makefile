# Saleor CRM — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
HOST ?= 0.0.0.0
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
CHROMIUM ?= /usr/bin/chromium

.PHONY: help venv graphiql chromium run migrate worker test test-sqlite test-postgres test-saleor saleor-env lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

# GraphiQL's assets, served by the app itself (offline, under its CSP), from npm packages.
GRAPHIQL_VENDOR := plugin/api/graphiql/vendor
GRAPHIQL_PACKAGES := react@18.2.0 react-dom@18.2.0 graphiql@3.8.3

$(GRAPHIQL_VENDOR)/.installed: Makefile
	@rm -rf $(GRAPHIQL_VENDOR) $(GRAPHIQL_VENDOR).tmp && mkdir -p $(GRAPHIQL_VENDOR).tmp
	cd $(GRAPHIQL_VENDOR).tmp && npm pack --silent $(GRAPHIQL_PACKAGES) >/dev/null \
	  && tar -xzf react-18.2.0.tgz package/umd/react.production.min.js \
	  && tar -xzf react-dom-18.2.0.tgz package/umd/react-dom.production.min.js \
	  && tar -xzf graphiql-3.8.3.tgz package/graphiql.min.js package/graphiql.min.css package/LICENSE \
	  && mkdir ../vendor && mv package/umd/* package/graphiql.min.* ../vendor/ \
	  && mv package/LICENSE ../vendor/LICENSE.graphiql
	@rm -rf $(GRAPHIQL_VENDOR).tmp && touch $@

graphiql: $(GRAPHIQL_VENDOR)/.installed ## vendor GraphiQL's assets from npm (make venv does it)

venv: $(BIN)/.installed $(GRAPHIQL_VENDOR)/.installed ## create .venv, install the app with its dev tools and GraphiQL's assets

chromium: ## install Debian's Chromium for the browser tests when it is missing (as root)
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the dashboard browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing: run 'sudo apt-get install -y chromium' (browser tests)" >&2; exit 1; \
	  fi; \
	fi

migrate: venv ## apply database migrations (DATABASE_URL, default SQLite in var/)
	$(BIN)/python -m plugin.cli migrate

run: migrate ## set up and serve the app on $(HOST):$(PORT) (jobs in-process without REDIS_URL)
	@echo "Saleor CRM: paste $${APP_URL:-http://localhost:$(PORT)}/api/manifest into Saleor → Apps → Install external app"
	PORT=$(PORT) $(BIN)/uvicorn plugin.app:app --host $(HOST) --port $(PORT) --proxy-headers

worker: migrate ## run a Dramatiq worker (needs REDIS_URL)
	$(BIN)/python -m plugin.cli worker --processes 1 --threads 4

test: venv ## set up and run every test: SQLite, PostgreSQL with Redis, then against a real Saleor
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres
	$(MAKE) --no-print-directory test-saleor

test-sqlite: venv chromium ## tests on SQLite, jobs in-process
	env -u DATABASE_URL -u REDIS_URL CRM_TEST_DB=sqlite $(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: venv chromium ## tests on PostgreSQL with real Redis
	env -u DATABASE_URL -u REDIS_URL CRM_TEST_DB=postgresql TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) \
		TEST_REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

saleor-env: venv ## build the real Saleor once per machine (~/.cache/saleor-crm; minutes the first time)
	env -u DATABASE_URL TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m tests.real_saleor.environment

test-saleor: saleor-env chromium ## the CRM installed into a real Saleor 3.23.28 (tests/real_saleor)
	env -u DATABASE_URL -u REDIS_URL CRM_REAL_SALEOR=1 CRM_TEST_DB=postgresql \
		TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/python -m pytest $(if $(findstring tests/real_saleor,$(PYTEST_ARGS)),,tests/real_saleor) $(PYTEST_ARGS)

lint: venv ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy plugin webhooks jobs dashboard_extension bench tests

bench: venv ## benchmarks (PostgreSQL); each prints one JSON line of figures
	BENCH_POSTGRES_URL=$(TEST_POSTGRES_URL) $(BIN)/python bench/webhooks.py

clean: ## remove the venv and local data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
