# kiemke: `make demo` to see it work, `make test` to prove it, `make bench` to measure it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint typecheck bench bench-deps system-deps clean help wheel deb msi

help:
	@echo "make demo   - install, start a collector on SQLite, report this machine, keep serving"
	@echo "make test   - install everything and run every test (lint, unit, end to end)"
	@echo "make bench  - run the benchmarks in bench/ and print numbers against the budget"
	@echo "make wheel  - dist/kiemke-<version>-py3-none-any.whl (default rules included)"
	@echo "make deb    - dist/kiemke-agent_<version>_amd64.deb and kiemke-collector_<version>_amd64.deb"
	@echo "make msi    - dist/kiemke-agent-<version>-x64.msi (Windows agent, built with wixl)"

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[collector,test]'
	touch $(STAMP)

# Debian packages the tests use as real components (Prometheus and promtool, Alertmanager,
# ClamAV, CUPS, iproute2 for network namespaces, ping, Chromium + chromedriver for the
# console). Installed only when missing.
system-deps:
	@bash deploy/install-test-deps.sh

demo: $(STAMP)
	$(BIN)/python -u -m kiemke.demo

lint: $(STAMP)
	$(BIN)/ruff check kiemke tests bench dashboards

# mypy at default settings on kiemke/ (0 errors); the modules pyproject.toml lists are --strict.
typecheck: $(STAMP)
	$(BIN)/mypy kiemke

# The suite waits far more than it computes (servers starting, outages, timeouts), so it
# runs in TEST_WORKERS processes; tests/conftest.py keeps together what must share a worker.
# Then the `exclusive` tests (latency and request-volume figures) run alone. Exit code 5 is
# pytest's "no test selected", when PYTEST_ARGS picks tests of one phase only.
TEST_WORKERS ?= 3
PYTEST  = $(BIN)/python -m pytest -q -p no:cacheprovider

test: $(STAMP) system-deps lint typecheck
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup -m "not exclusive" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PYTEST) -m exclusive $(PYTEST_ARGS) || [ $$? -eq 5 ]

# Debian packages the benchmarks need (wrk, the HTTP load generator). Installed only when missing.
bench-deps:
	@bash deploy/install-bench-deps.sh

bench: $(STAMP) bench-deps
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Packages (docs/deployment.md, deploy/windows/README.md); pip fetches dependencies from PyPI.
wheel: $(STAMP)
	$(BIN)/python deploy/build_packages.py wheel --out dist

deb: $(STAMP)
	$(BIN)/python deploy/build_packages.py deb --out dist

msi: $(STAMP)
	$(BIN)/python deploy/build_packages.py msi --out dist

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache demo-data
