# The two commands that matter: `make demo` and `make test`. Everything runs from a venv
# in .venv that these targets create and keep in step with the requirements files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS := requirements-edge.txt requirements-central.txt requirements-dev.txt

.PHONY: help deps deps-venv deps-test venv test test-fault test-clock lint compat units pytest bench demo clean

help:
	@echo "make demo    one-box demo: central, embedded broker, simulated agents"
	@echo "make test    ruff, Python 3.8 check of edge/ and shared/, the whole pytest suite"
	@echo "make test-fault  the fault, abuse and security scenarios (docs/faults.md)"
	@echo "make test-clock  the date-sensitive tests again at fixed instants (weekend, midnight, DST days)"
	@echo "make deps    the Debian packages the tests need (installed as root, else named)"
	@echo "make bench   benchmarks under bench/ (each prints one JSON line of figures)"

# Debian packages, per need: every target builds .venv (python3-venv brings ensurepip); the
# tests also start mosquitto, drive Debian's Chromium (Playwright's own download does not
# work offline) and make TLS certificates with openssl. As root on Debian the missing ones
# are installed with apt-get; otherwise make stops before anything runs, naming them and
# the command. The Debian mosquitto package may start a broker on 1883: the tests start
# their own on free ports and never use it.
DEPS_venv := python3-venv
DEPS_test := $(DEPS_venv) mosquitto chromium openssl
deps: deps-test

deps-venv deps-test: deps-%:
	@need=""; \
	for pkg in $(DEPS_$*); do \
	  case $$pkg in \
	    python3-venv) test -x $(PY) || $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1 || need="$$need $$pkg";; \
	    mosquitto) command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || need="$$need $$pkg";; \
	    chromium) test -x /usr/bin/chromium || need="$$need $$pkg";; \
	    *) command -v $$pkg >/dev/null 2>&1 || need="$$need $$pkg";; \
	  esac; \
	done; \
	if [ -z "$$need" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make: installing$$need"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$need; \
	else \
	  echo "make: missing Debian packages:$$need; install them with: sudo apt-get install$$need" >&2; \
	  exit 1; \
	fi

venv: $(STAMP)

$(STAMP): $(REQS) | deps-venv
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

pytest: deps-test $(STAMP)
	$(PY) -m pytest -m "not fault" $(PYTEST_ARGS)

# End-to-end fault, abuse and security scenarios (docs/faults.md): minutes, so not in make test.
test-fault: deps-test $(STAMP)
	$(PY) -m pytest -m fault tests/fault $(PYTEST_ARGS)

# The date-sensitive tests (marker "clock") again with every Python process's wall clock,
# and Chromium's, moved to each instant below (UTC; tests/_clock/sitecustomize.py): a
# Saturday, a Sunday, Monday 00:30, 30 s before midnight, 30 s before the 2026 clock changes
# of London (Mar 29, Oct 25, 01:00 UTC) and New York (Mar 8 07:00, Nov 1 06:00 UTC), and
# 30 s before midnight in Kolkata (18:30 UTC). About 2 minutes an instant: .ci/run runs it.
CLOCK_INSTANTS := 2026-12-05T12:00:00Z 2026-12-06T12:00:00Z 2026-12-07T00:30:00Z \
	2026-12-01T23:59:30Z 2026-03-29T00:59:30Z 2026-10-25T00:59:30Z 2026-03-08T06:59:30Z \
	2026-11-01T05:59:30Z 2026-12-02T18:29:30Z
test-clock: deps-test $(STAMP)
	@set -e; for at in $(CLOCK_INSTANTS); do \
	  echo "== the clock at $$at"; \
	  TEST_CLOCK_AT=$$at PYTHONPATH="$(CURDIR)/tests/_clock$${PYTHONPATH:+:$$PYTHONPATH}" \
	    $(PY) -m pytest -m clock -p no:cacheprovider -W ignore::pytest.PytestAssertRewriteWarning \
	    -q $(PYTEST_ARGS); \
	done

test: deps-test lint compat units pytest

bench: $(STAMP)
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b; done

# One box: embedded broker (amqtt), central on embedded chDB, three simulated sites with
# 14 days of history, live traffic; prints the page URL; Ctrl-C stops everything.
# DEMO_ARGS passes flags, e.g. make demo DEMO_ARGS="--days 3 --http-addr 127.0.0.1:9090".
demo: deps-venv $(STAMP)
	$(PY) -m demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
