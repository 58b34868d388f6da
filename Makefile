# `make test` and `make demo` do all set-up on a fresh machine (Python venv, npm, chromium).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test demo lint bench clean deps chromium mutation

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	@echo "installing chopsticks (npm, about a minute the first time)..."
	npm ci --no-audit --no-fund
	touch $@

chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

deps: $(VENV)/.installed node_modules/.installed chromium

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --no-cache .

test: deps lint
	$(PY) -m pytest

demo: $(VENV)/.installed node_modules/.installed
	$(PY) -m opendid.devtools.demo

bench: deps
	$(PY) -m opendid.bench chain
	$(PY) -m opendid.bench logins

# Mutation testing of the security-critical modules (docs/mutation.md); not part of `make test`.
# A fresh run; MUTANTS="'opendid.store.onetime*'" narrows it; MUTATION_ARGS="--focus stable"
# runs verification/credentials/onetime with their focused tests; MUTATION_ARGS=--survivors
# re-tests the last survivors. Prints the per-module table (`... -m opendid.devtools.mutation summary`).
MUTANTS ?=
MUTATION_ARGS ?=
mutation: $(VENV)/.installed node_modules/.installed
	$(PY) -m opendid.devtools.mutation run $(MUTATION_ARGS) $(MUTANTS)

clean:
	rm -rf $(VENV) node_modules test-output instance/dev mutants
