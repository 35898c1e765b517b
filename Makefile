# The same commands locally and in CI.  Every install step lives here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test stress lint bench wrk chromium peers clean dify-sdk pythons test-pythons pg-ha-deps pg-ha docs

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The operator console's one front-end library (Alpine.js, CSP build), from the npm
# registry at the version package-lock.json pins, into a git-ignored node_modules.
CONSOLE := src/pluginkv/server/console
CONSOLE_ASSETS := $(CONSOLE)/node_modules/.package-lock.json

$(CONSOLE_ASSETS): $(CONSOLE)/package.json $(CONSOLE)/package-lock.json
	npm ci --prefix $(CONSOLE) --no-audit --no-fund --loglevel=error
	@touch $(CONSOLE_ASSETS)

install: $(STAMP) $(CONSOLE_ASSETS)

run: install
	$(VENV)/bin/pluginkv serve

# dify_plugin in virtual environments of its own (never in .venv: it monkey-patches
# its process with gevent): 0.7.4, and 0.10.2 on Python 3.12; the tests under
# tests/dify build them too, on first use.
dify-sdk: install
	$(PY) tests/dify/sdk_venv.py

# Branch coverage of the package, the child processes tests start included; below the
# threshold in pyproject.toml ([tool.coverage.report] fail_under) the run fails.
# Two test processes (pytest-xdist): much of the suite waits on child processes and
# sockets, so two share the machine's cores well (a run on 2 cores: 4 min 34 s; in one
# process, over 11 min).
TEST_WORKERS ?= 2
test: install pg-ha-deps chromium peers
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --cov --cov-report=term $(PYTEST_ARGS)

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
		.venv-$$v/bin/python -m pytest -q -p no:cacheprovider tests/test_contract*.py $(PYTEST_ARGS) || exit 1; \
	done

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples tools
	$(VENV)/bin/ruff format --check src tests benchmarks examples tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The settings table in docs/configuration.md and docs/cli-reference.md, rewritten
# from the code (tests/test_docs_reference.py fails while they differ).
docs: install
	$(PY) tools/docs_reference.py -r

# bench_server.py loads the service with wrk, a Debian package.
wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } \
		|| sudo apt-get install -y -qq wrk

# tests/console drive the operator console in Chromium, a Debian package, with
# Playwright for Python (never `playwright install`: it downloads a browser build).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get install -y -qq chromium \
		|| { apt-get update -qq && apt-get install -y -qq chromium; }; }; } \
		|| sudo apt-get install -y -qq chromium

# bench_peers.py measures the service against Redis (appendfsync always) and etcd, each
# started on free ports in a temporary directory; Debian packages: redis-server (with
# redis-tools' redis-benchmark) and etcd-server. make test runs its smoke test.
# bench_http_floor.py needs the same Redis, and wrk; make test runs its smoke test too.
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

bench: install wrk chromium peers
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_wal_pages.py
	$(PY) benchmarks/bench_postgres.py  # PostgreSQL on 127.0.0.1:5432, or --url / PLUGINKV_BENCH_POSTGRES_URL
	$(PY) benchmarks/bench_http_clients.py
	$(PY) benchmarks/bench_server.py
	$(PY) benchmarks/bench_peers.py
	$(PY) benchmarks/bench_http_floor.py  # a do-nothing ASGI app under uvicorn: the floor under bench_peers
	$(PY) benchmarks/bench_put_breakdown.py
	$(PY) benchmarks/bench_processes.py  # two serving processes on one SQLite file
	$(PY) benchmarks/bench_write_floor.py
	$(PY) benchmarks/bench_host.py  # builds dify_plugin's environment on first use
	$(PY) benchmarks/bench_console.py  # fills a store of 1,000,000 keys first
	$(PY) benchmarks/bench_console_live.py  # keeps a key page open two minutes
	$(PY) benchmarks/bench_watchers.py
	$(PY) benchmarks/bench_atomic.py  # SQLite, PostgreSQL on 127.0.0.1:5432 (or --postgres), and 100 watchers over HTTP
	$(PY) benchmarks/bench_scale.py  # fills stores of up to 10^7 keys on SQLite and PostgreSQL: the longest

clean:
	rm -rf $(VENV) .venv-3.* $(CONSOLE)/node_modules .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
