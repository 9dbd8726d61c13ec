"""Exit 0 when the PostgreSQL test database settings reach a server, else 1."""

import os
import sys

try:
    import psycopg
except ImportError:
    sys.exit(1)

try:
    psycopg.connect(
        dbname="postgres",
        user=os.environ.get("PGUSER", "dunning"),
        password=os.environ.get("PGPASSWORD", "dunning"),
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
        connect_timeout=3,
    ).close()
except Exception as exc:  # noqa: BLE001
    print(f"PostgreSQL: {exc}", file=sys.stderr)
    sys.exit(1)
