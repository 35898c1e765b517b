# The same commands locally and in CI.  Every install step lives here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test stress lint bench clean dify-sdk

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

test: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

stress: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

bench: install
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_http_clients.py
	$(PY) benchmarks/bench_server.py  # needs wrk: apt-get install wrk
	$(PY) benchmarks/bench_host.py  # builds dify_plugin's environment on first use

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
