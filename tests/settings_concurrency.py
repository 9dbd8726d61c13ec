"""Settings of the child processes of tests/test_concurrency.py.

tests.settings (the database from DUNNING_TEST_DB / PGDATABASE / DUNNING_SQLITE_NAME) with
email through a real backend that writes every message to a file in $DUNNING_MAIL_DIR.
"""

import os

from tests.settings import *  # noqa: F403

EMAIL_BACKEND = "tests.concurrency_runner.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("DUNNING_MAIL_DIR", "")

if os.environ.get("DUNNING_OUTBOX_STALE_AFTER"):
    DUNNING = {**DUNNING, "OUTBOX_STALE_AFTER": int(os.environ["DUNNING_OUTBOX_STALE_AFTER"])}  # noqa: F405
