"""Settings of the child processes of tests/test_outbox.py: tests.settings (the database
from DUNNING_TEST_DB / PGDATABASE / DUNNING_SQLITE_NAME) with email through
tests.flaky_backend.FileBackend, rendering in the run's own process, and
OUTBOX_STALE_AFTER, OUTBOX_CHUNK_SIZE and RUN_LEASE_SECONDS from the environment."""

import os

from tests.settings import *  # noqa: F403

EMAIL_BACKEND = "tests.flaky_backend.FileBackend"
DUNNING = {  # noqa: F405
    **DUNNING,  # noqa: F405
    "RENDER_PROCESSES": 1,
    "OUTBOX_STALE_AFTER": int(os.environ.get("DUNNING_OUTBOX_STALE_AFTER") or 600),
    "OUTBOX_CHUNK_SIZE": int(os.environ.get("DUNNING_OUTBOX_CHUNK_SIZE") or 50),
    "RUN_LEASE_SECONDS": int(os.environ.get("DUNNING_RUN_LEASE_SECONDS") or 900),
}
if os.environ.get("OUTBOX_DROP_DB_IN_BATCH"):
    DUNNING["ADAPTER"] = "tests.flaky_backend.DroppingAdapter"
if os.environ.get("OUTBOX_DROP_DB_ON_BUILD"):
    DUNNING["EMAIL_CHANNEL"] = "tests.flaky_backend.DroppingChannel"
