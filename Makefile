# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: demo test install install-test install-dev peers lint bench

demo: install
	./scripts/bootstrap
	sealgate demo

install:
	$(PIP) install -q -e .

install-test:
	$(PIP) install -q -e '.[test]'

install-dev:
	$(PIP) install -q -e '.[test,dev]'

peers:
	cd tests/peers && npm ci --no-audit --no-fund --loglevel=error

test: install-test
	./scripts/bootstrap
	$(MAKE) -s peers
	$(PYTHON) -m pytest -q

lint: install-dev
	ruff check gate tests bench action
	ruff format --check gate tests bench action
	mypy gate

bench: install-test
	$(PYTHON) bench/verify_bench.py
	$(PYTHON) bench/gate_bench.py
	$(PYTHON) bench/watch_bench.py
	$(PYTHON) bench/ledger_bench.py
	$(PYTHON) bench/latency_bench.py
