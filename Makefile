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

# The test peers: sigstore-js and Prism from npm, and the pinned Go tools (cosign v2 and v3,
# crane, regctl) from scripts/go-peers, cached between runs. A Go build that fails is reported
# and the tests that need it fail (skip outside CI); the rest still run.
peers:
	cd tests/peers && npm ci --no-audit --no-fund --loglevel=error
	-./scripts/go-peers

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
	$(PYTHON) bench/keyless_bench.py
	$(PYTHON) bench/admission_bench.py
