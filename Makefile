# kiemke: `make demo` to see it work, `make test` to prove it, `make bench` to measure it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint typecheck bench bench-deps system-deps clean help

help:
	@echo "make demo   - install, start a collector on SQLite, report this machine, keep serving"
	@echo "make test   - install everything and run every test (lint, unit, end to end)"
	@echo "make bench  - run the benchmarks in bench/ and print numbers against the budget"

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
	$(BIN)/python -m kiemke.demo

lint: $(STAMP)
	$(BIN)/ruff check kiemke tests bench dashboards

# mypy at default settings on kiemke/ (0 errors); the modules pyproject.toml lists are --strict.
typecheck: $(STAMP)
	$(BIN)/mypy kiemke

test: $(STAMP) system-deps lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Debian packages the benchmarks need (wrk, the HTTP load generator). Installed only when missing.
bench-deps:
	@bash deploy/install-bench-deps.sh

bench: $(STAMP) bench-deps
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo-data
