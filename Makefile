# The same commands locally and in CI.  Every install step lives here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test stress lint bench wrk clean dify-sdk pg-ha-deps pg-ha

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/pluginkv serve

# dify_plugin in a virtual environment of its own (never in .venv: it monkey-patches
# its process with gevent); the tests under tests/dify build it too, on first use.
dify-sdk: install
	$(PY) tests/dify/sdk_venv.py

test: install pg-ha-deps
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

stress: install pg-ha-deps
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy

# bench_server.py loads the service with wrk, a Debian package.
wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } \
		|| sudo apt-get install -y -qq wrk

# tests/test_failover.py builds a PostgreSQL cluster with automatic failover from
# pg_auto_failover, a Debian package (pg_autoctl, and the monitor's extension).
pg-ha-deps:
	@command -v pg_autoctl >/dev/null || { [ "$$(id -u)" = 0 ] \
		&& apt-get install -y -qq postgresql-15-auto-failover; } \
		|| sudo apt-get install -y -qq postgresql-15-auto-failover

# The same cluster to try by hand: a monitor and two nodes in a temporary
# directory on free ports (STANDBYS=2: three nodes, one standby always in
# sync); prints the URL, removes everything on Ctrl-C.
pg-ha: install pg-ha-deps
	$(PY) -m tests.ha $(STANDBYS)

bench: install wrk
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_postgres.py  # PostgreSQL on 127.0.0.1:5432, or --url / PLUGINKV_BENCH_POSTGRES_URL
	$(PY) benchmarks/bench_http_clients.py
	$(PY) benchmarks/bench_server.py
	$(PY) benchmarks/bench_write_floor.py
	$(PY) benchmarks/bench_host.py  # builds dify_plugin's environment on first use

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
