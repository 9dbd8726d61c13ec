# django-dunning: `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-sqlite test-host test-postgres test-wheel test-browser screenshots lint bench load-qcluster clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) manage.py migrate --verbosity 0
	$(PY) manage.py demo

# The whole suite: SQLite on the shipped models, a host with its own models, the wheel,
# PostgreSQL when one is reachable (.ci/run starts one) and the browser. Every suite runs
# even when an earlier one failed; the summary at the end names the ones that failed.
SUITES := lint test-sqlite test-host test-wheel test-postgres test-browser
# The clock a suite runs at: an HH:MM (Europe/Berlin) for .ci/at (tests/clock.py), or empty
# for the real time. .ci/run sets a night hour for SQLite and a day hour for PostgreSQL.
SQLITE_AT ?=
POSTGRES_AT ?=
at = $(if $(1),bash .ci/at $(1) ,)

test: $(STAMP)
	@failed=""; \
	for suite in $(SUITES); do \
		echo "==> make $$suite"; \
		start=$$(date +%s); \
		if $(MAKE) --no-print-directory $$suite; then status=passed; \
		else status=FAILED; failed="$$failed $$suite"; fi; \
		summary="$$summary$$(printf '  %-14s %-7s %5ss' $$suite $$status $$(( $$(date +%s) - start )))\n"; \
	done; \
	echo; echo "==> make test: summary"; printf "$$summary"; \
	if [ -n "$$failed" ]; then echo "make test FAILED:$$failed"; exit 1; fi; \
	echo "make test passed: every suite"

lint: $(STAMP)
	$(PY) -m ruff check dunning tests example_project
	$(VENV)/bin/lint-imports  # the layers of docs/architecture.md (pyproject.toml)
	$(PY) manage.py makemigrations --check --dry-run --verbosity 1

test-sqlite: $(STAMP)
	$(call at,$(SQLITE_AT))$(PY) -m pytest -p no:cacheprovider --ignore=tests/host --ignore=tests/ledger --ignore=tests/test_wheel.py --ignore=tests/browser

# Two hosts: tests/host_app (renamed fields, an adapter) and tests/ledger_app (shaped like
# django-ledger: the worked example of docs/hosts.md). Both run even when the first fails.
test-host: $(STAMP)
	$(call at,$(SQLITE_AT))$(PY) -m pytest -p no:cacheprovider --ds=tests.settings_host tests/host; \
	host=$$?; \
	$(call at,$(SQLITE_AT))$(PY) -m pytest -p no:cacheprovider --ds=tests.settings_ledger tests/ledger \
	&& exit $$host

test-wheel: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider tests/test_wheel.py

test-postgres: $(STAMP)
	@if $(PY) tests/pg_available.py; then \
		DUNNING_TEST_DB=postgres $(call at,$(POSTGRES_AT))$(PY) -m pytest -p no:cacheprovider --ignore=tests/host --ignore=tests/ledger --ignore=tests/test_wheel.py --ignore=tests/browser; \
	else \
		echo "PostgreSQL is not reachable: the PostgreSQL suite was not run (bash .ci/run starts one)."; \
		if [ -n "$$CI" ]; then exit 1; fi; \
	fi

# Playwright driving Debian's Chromium (apt-get install chromium); never downloads a browser.
test-browser: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider tests/browser

# Retakes docs/screenshots/*.png from a seeded demo data set.
screenshots: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider tests/browser/screenshots.py

bench: $(STAMP)
	$(PY) tests/benchmarks/bench_run.py

# 50,000 due cases through 1, 2 and 4 django-q2 workers (Redis broker, PostgreSQL):
# needs `bash .ci/postgres.sh` and `bash .ci/redis.sh` first.
load-qcluster: $(STAMP)
	$(PY) tests/benchmarks/load_qcluster.py

clean:
	rm -rf $(VENV) build dist example_project/*.sqlite3 example_project/sent_mail
