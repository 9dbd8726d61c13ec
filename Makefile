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
# and PostgreSQL when one is reachable (.ci/run starts one; see tests/README in the docs).
test: $(STAMP) lint test-sqlite test-host test-wheel test-postgres test-browser

lint: $(STAMP)
	$(PY) -m ruff check dunning tests example_project
	$(PY) manage.py makemigrations --check --dry-run --verbosity 1

test-sqlite: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider --ignore=tests/host --ignore=tests/test_wheel.py --ignore=tests/browser

test-host: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider --ds=tests.settings_host tests/host

test-wheel: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider tests/test_wheel.py

test-postgres: $(STAMP)
	@if $(PY) tests/pg_available.py; then \
		DUNNING_TEST_DB=postgres $(PY) -m pytest -p no:cacheprovider --ignore=tests/host --ignore=tests/test_wheel.py --ignore=tests/browser; \
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
