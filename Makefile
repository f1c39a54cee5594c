# The two commands that matter: `make demo` and `make test`. Everything runs from a venv
# in .venv that these targets create and keep in step with the requirements files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS := requirements-edge.txt requirements-central.txt requirements-dev.txt

.PHONY: help venv test test-fault lint compat units pytest bench demo clean

help:
	@echo "make demo    one-box demo: central, embedded broker, simulated agents"
	@echo "make test    ruff, Python 3.8 check of edge/ and shared/, the whole pytest suite"
	@echo "make test-fault  the fault, abuse and security scenarios (docs/faults.md)"
	@echo "make bench   benchmarks under bench/ (each prints one JSON line of figures)"

venv: $(STAMP)

$(STAMP): $(REQS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "central needs Python 3.10+; set PYTHON=python3.x" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# vermin finds 3.9+ standard library use that ruff's syntax check cannot see.
compat: $(STAMP)
	$(VENV)/bin/vermin -q --no-tips --violations -t=3.8- edge shared

# systemd units shipped under deploy/ are checked where systemd-analyze exists.
UNITS := $(wildcard deploy/*/*.service deploy/*/*.timer deploy/*.service deploy/*.timer)
units:
	@if command -v systemd-analyze >/dev/null 2>&1 && [ -n "$(UNITS)" ]; then \
	  echo "systemd-analyze verify $(UNITS)"; \
	  SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no $(UNITS); \
	else echo "units: nothing to verify or no systemd-analyze; skipped"; fi

pytest: $(STAMP)
	$(PY) -m pytest -m "not fault" $(PYTEST_ARGS)

# End-to-end fault, abuse and security scenarios (docs/faults.md): minutes, so not in make test.
test-fault: $(STAMP)
	$(PY) -m pytest -m fault tests/fault $(PYTEST_ARGS)

test: lint compat units pytest

bench: $(STAMP)
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

# One box: embedded broker (amqtt), central on embedded chDB, three simulated sites with
# 14 days of history, live traffic; prints the page URL; Ctrl-C stops everything.
# DEMO_ARGS passes flags, e.g. make demo DEMO_ARGS="--days 3 --http-addr 127.0.0.1:9090".
demo: $(STAMP)
	$(PY) -m demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
