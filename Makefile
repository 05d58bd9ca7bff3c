# Developer commands. `make demo` runs the movie app; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint demo stack bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(BIN)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The demo needs Flask, PyJWT (signed profiles) and uWSGI: a few MB, not the test extra.
$(BIN)/.demo-installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[flask,jwt]' 'uwsgi>=2.0.23'
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Foreground uWSGI on 127.0.0.1:$(DEMO_PORT) behind the development front end; Ctrl-C stops it.
# MOVIES_DB and SHIBWSGI_* in the environment are passed on (see app/demo-uwsgi.ini).
# uWSGI replaces the recipe's shell (exec) and gets SIGTERM when make dies (setpriv
# --pdeathsig; die-on-term in the ini), so killing a background `make demo` stops it too.
DEMO_PORT ?= 8080
demo: $(BIN)/.demo-installed
	@echo "Demo at http://127.0.0.1:$(DEMO_PORT) — development front end, never expose it"
	DEMO_PORT=$(DEMO_PORT) exec setpriv --pdeathsig TERM -- $(BIN)/uwsgi --ini app/demo-uwsgi.ini

# The shipped configs with their real module, the identity provider the tests use and uWSGI
# serving the movie app, all on loopback (tests/stack_cli.py); prints the URL, the test users and
# the doctor commands; Ctrl-C stops everything. PROFILE: shibboleth, openidc, mellon or oauth2-proxy.
# Needs apache2 with the module (or nginx), and shibd for shibboleth; the test extra has the rest.
PROFILE ?= shibboleth
STACK_PORT ?= 8443
stack: $(BIN)/.installed
	exec setpriv --pdeathsig TERM -- $(BIN)/python tests/stack_cli.py $(PROFILE) --port $(STACK_PORT)

# The bench extra: py-spy, to profile the full stack's workers.
$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

# Benchmarks, not part of the test suite: prints a table, writes bench/results/latest.{json,txt}
# and the full stack's worker profile, bench/results/fullstack-profile.txt.
# Starts (and always stops) redis-server, uWSGI and Apache on loopback when installed; ~4 minutes.
bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench

# Soak, not part of the test suite: Apache + mod_auth_openidc, two uWSGI nodes, redis-server and
# a provider on loopback under mixed load for SOAK_SECONDS (default 180); prints requests,
# errors, p50/p99 and each worker's RSS at start and end; fails on an error or RSS growth.
SOAK_SECONDS ?= 180
soak: $(BIN)/.installed
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS)
