# The same commands locally and in CI.  Every install step lives here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test stress lint bench wrk peers clean dify-sdk pythons test-pythons pg-ha-deps pg-ha

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/pluginkv serve

# dify_plugin in virtual environments of its own (never in .venv: it monkey-patches
# its process with gevent): 0.7.4, and 0.10.2 on Python 3.12; the tests under
# tests/dify build them too, on first use.
dify-sdk: install
	$(PY) tests/dify/sdk_venv.py

test: install pg-ha-deps peers
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

stress: install pg-ha-deps wrk
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# The contract suite on the other Pythons pluginkv supports, each in a venv of its own
# (.venv-3.12, .venv-3.13), from pyenv's interpreters or python3.X on PATH.
OTHER_PYTHONS ?= 3.12 3.13

pythons:
	@for v in $(OTHER_PYTHONS); do \
		venv=.venv-$$v; \
		if [ ! -f $$venv/.installed-stamp ] || [ pyproject.toml -nt $$venv/.installed-stamp ]; then \
			py=$$(ls -d "$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)"/versions/$$v.*/bin/python 2>/dev/null | sort -V | tail -1); \
			[ -n "$$py" ] || py=$$(command -v python$$v) || { echo "no Python $$v: install it with pyenv or as python$$v on PATH" >&2; exit 1; }; \
			rm -rf $$venv && $$py -m venv $$venv \
				&& $$venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' \
				&& touch $$venv/.installed-stamp || exit 1; \
		fi; \
	done

test-pythons: pythons
	@for v in $(OTHER_PYTHONS); do \
		echo "== the contract suite on Python $$v"; \
		.venv-$$v/bin/python -m pytest -q -p no:cacheprovider tests/test_contract.py $(PYTEST_ARGS) || exit 1; \
	done

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# bench_server.py loads the service with wrk, a Debian package.
wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } \
		|| sudo apt-get install -y -qq wrk

# bench_peers.py measures the service against Redis (appendfsync always) and etcd, each
# started on free ports in a temporary directory; Debian packages: redis-server (with
# redis-tools' redis-benchmark) and etcd-server. make test runs its smoke test.
peers: wrk
	@{ command -v redis-server && command -v redis-benchmark && command -v etcd; } >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && apt-get install -y -qq redis-server redis-tools etcd-server; } \
		|| sudo apt-get install -y -qq redis-server redis-tools etcd-server

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

bench: install wrk peers
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_postgres.py  # PostgreSQL on 127.0.0.1:5432, or --url / PLUGINKV_BENCH_POSTGRES_URL
	$(PY) benchmarks/bench_http_clients.py
	$(PY) benchmarks/bench_server.py
	$(PY) benchmarks/bench_peers.py
	$(PY) benchmarks/bench_put_breakdown.py
	$(PY) benchmarks/bench_write_floor.py
	$(PY) benchmarks/bench_host.py  # builds dify_plugin's environment on first use

clean:
	rm -rf $(VENV) .venv-3.* .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
