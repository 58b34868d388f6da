# `make test` and `make demo` do all set-up on a fresh machine (Python venv, npm, Debian
# packages: chromium for the browser tests, redis-server for the shared-state tests, nginx for
# the TLS deployment test). `make demo` installs only what the demo runs (no test tools).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test demo lint bench clean deps debs mutation

# The runtime dependencies only: all `make demo` needs (it runs from the project folder).
$(VENV)/.runtime: requirements.txt
	@echo "installing the Python dependencies (pip)..."
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# Everything: the runtime, the test and lint tools, the package itself.
$(VENV)/.installed: $(VENV)/.runtime requirements-dev.txt pyproject.toml
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# chopsticks asks for Node 22 and Node 20 runs it: npm's screen of EBADENGINE warnings becomes
# one line (--loglevel=error keeps real errors). --ignore-scripts: the only install script is
# sqlite3's native build (minutes when no prebuilt binary downloads), and chopsticks loads
# sqlite3 only with --db, which the dev chain does not use (it keeps its state in memory).
node_modules/.installed: package.json package-lock.json
	@echo "installing chopsticks (npm, about a minute the first time)..."
	npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
	@node -e 'const v = process.versions.node; if (+v.split(".")[0] < 22) console.log("note: chopsticks asks for Node 22; Node " + v + " runs it")'
	touch $@

# Debian packages the tests start: each command and the package that provides it
DEBS := chromium:chromium redis-server:redis-server etcd:etcd-server nginx:nginx
debs:
	@missing="$$(for pair in $(DEBS); do command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; done)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

deps: $(VENV)/.installed node_modules/.installed debs

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --no-cache .

# The contract and security tests again, with the state in Redis (a real redis-server)
REDIS_TESTS := tests/test_api_contract.py tests/test_security.py tests/test_did_login_replay.py \
	tests/test_refresh.py tests/test_oidc.py tests/test_relying_party.py tests/test_token_claims.py \
	tests/test_onetime_store.py tests/test_form_post.py tests/test_authorize_requests.py \
	tests/test_userinfo.py tests/test_revocation.py tests/test_introspection.py tests/conformance \
	tests/test_admin.py tests/test_login_policies.py

test: deps lint
	$(PY) -m pytest
	OPENDID_TEST_STORE=redis $(PY) -m pytest $(REDIS_TESTS)

# VERBOSE=1 shows the servers' output here instead of in instance/dev/*.log
# (pip and npm download at the same time)
demo:
	@$(MAKE) --no-print-directory -j2 $(VENV)/.runtime node_modules/.installed
	@$(PY) -m opendid.devtools.demo

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
