"""Settings of the qcluster processes of tests/test_scale.py and the load script
tests/benchmarks/load_qcluster.py: the distributed deployment on one machine.

PostgreSQL (``PGDATABASE``, default ``dunning``, at ``PGHOST``:``PGPORT``) and django-q2's
Redis broker at 127.0.0.1:6379 (``DUNNING_REDIS_DB``, default 0). Every process of one test
or load run uses the same queue, ``DUNNING_Q_NAME``; give each run its own name so that
runs of several people on one Redis never take each other's tasks.

Environment:

* ``DUNNING_Q_WORKERS``: workers per cluster (default 4);
* ``DUNNING_Q_TIMEOUT`` / ``DUNNING_Q_RETRY``: django-q2's ``timeout`` and ``retry``;
* ``DUNNING_MAIL_FILE``: where tests.recording_backend.EmailBackend appends every message;
* ``DUNNING_BATCH_SIZE``, ``DUNNING_SHARDS``, ``DUNNING_OUTBOX_STALE_AFTER``: DUNNING keys;
* ``DUNNING_PAUSE_SCRIPT``: see tests.recording_backend.PausingAdapter.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DUNNING

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "dunning"),
        "USER": os.environ.get("PGUSER", "dunning"),
        "PASSWORD": os.environ.get("PGPASSWORD", "dunning"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "TEST": {"NAME": os.environ.get("PGTESTDATABASE", "test_dunning")},
    }
}

Q_CLUSTER = {
    "name": os.environ.get("DUNNING_Q_NAME", "dunning-scale"),
    "workers": int(os.environ.get("DUNNING_Q_WORKERS", "4")),
    "redis": {
        "host": "127.0.0.1",
        "port": 6379,
        "db": int(os.environ.get("DUNNING_REDIS_DB", "0")),
        "socket_connect_timeout": 5,
    },
    "timeout": int(os.environ.get("DUNNING_Q_TIMEOUT", "120")),
    "retry": int(os.environ.get("DUNNING_Q_RETRY", "240")),
    # One task at a time per worker from the queue (the default prefetches workers^2).
    "queue_limit": int(os.environ.get("DUNNING_Q_WORKERS", "4")),
    "save_limit": 0,
    "log_level": os.environ.get("DUNNING_Q_LOG_LEVEL", "WARNING"),
}

EMAIL_BACKEND = "tests.recording_backend.EmailBackend"

DUNNING = {
    **DUNNING,
    "ADAPTER": "tests.recording_backend.PausingAdapter",
    # django-q2 workers are daemonic and may not fork: the engine renders in-process there
    # anyway; said here so that a worker's CPU is exactly one core.
    "RENDER_PROCESSES": 1,
}
for _key, _cast in (("BATCH_SIZE", int), ("SHARDS", int), ("OUTBOX_STALE_AFTER", int)):
    if os.environ.get(f"DUNNING_{_key}"):
        DUNNING[_key] = _cast(os.environ[f"DUNNING_{_key}"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django-q": {"handlers": ["console"], "level": Q_CLUSTER["log_level"], "propagate": False},
        "dunning": {"handlers": ["console"], "level": "WARNING"},
    },
}
