"""Email backends of tests/test_outbox.py: real Django email backends (no mocks) that keep
a record of every message they accepted, across instances.

* :class:`FlakyBackend` fails a deterministic-random share (10%) of send attempts with a
  transient error, half as an SMTP disconnect, half as an ESP's HTTP 503 (anymail);
* :class:`FaultyBackend` refuses a share of connection opens (or every one, during an
  outage) and fails a share of the messages handed over with a transient error;
* :class:`ScriptedBackend` raises, for an address, the exceptions of its script one per
  attempt, then accepts the message;
* :class:`FileBackend` (for child processes, see tests/outbox_runner.py) appends every
  message it accepts to a file and can kill its own process with SIGKILL right after the
  N-th, that is after the ESP took it and before the run could record it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import smtplib
from collections import Counter
from types import SimpleNamespace

from anymail.exceptions import AnymailAPIError
from django.core.mail.backends.base import BaseEmailBackend

from dunning.channels.email import EmailChannel
from dunning.hosts import FieldMapAdapter


def key_of(message):
    metadata = getattr(message, "metadata", None) or {}
    return (metadata.get("dunning_case"), metadata.get("dunning_step"))


def esp_error(status, text="try again later"):
    """An anymail API error as an ESP's HTTP answer ``status`` raises it."""
    response = SimpleNamespace(reason=text, text=text, json=lambda: {"message": text})
    return AnymailAPIError(f"ESP API response {status}", status_code=status, response=response,
                           esp_name="TestESP")


class RecordingBackend(BaseEmailBackend):
    delivered: list = []  # (case, step) of every accepted message, in order
    tries: Counter = Counter()  # (case, step) -> messages handed over, accepted or not
    opened = 0  # connections opened

    @classmethod
    def reset(cls):
        RecordingBackend.delivered = []
        RecordingBackend.tries = Counter()
        RecordingBackend.opened = 0

    def open(self):
        RecordingBackend.opened += 1
        return True

    def fail(self, message, attempt):
        """The exception to raise for this attempt of ``message``, or None."""
        return None

    def send_messages(self, messages):
        for message in messages:
            key = key_of(message)
            RecordingBackend.tries[key] += 1
            error = self.fail(message, RecordingBackend.tries[key])
            if error is not None:
                raise error
            RecordingBackend.delivered.append(key)
        return len(messages)


class FlakyBackend(RecordingBackend):
    rate = 0.10
    seed = "outbox"

    def fail(self, message, attempt):
        # By address and step, not case pk: the same draws on SQLite and PostgreSQL.
        _case, step = key_of(message)
        draw = random.Random(f"{self.seed}:{','.join(message.to)}:{step}:{attempt}").random()
        if draw >= self.rate:
            return None
        if draw < self.rate / 2:
            return smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return esp_error(503, "Service Unavailable")


class FaultyBackend(RecordingBackend):
    """An ESP with faults on both sides of the hand-over, deterministic-random:

    * ``refuse_rate`` of connection opens are refused (``ConnectionRefusedError``: nothing
      was handed over), and every open is while ``down`` (an outage);
    * ``transient_rate`` of the messages handed over are refused with a transient error
      (half an SMTP disconnect, half an ESP's HTTP 503): it reached the ESP, not sent.

    ``metadata`` keeps the ``dunning_idempotency_key`` and ``esp_extra`` of every message
    handed over."""

    refuse_rate = 0.10
    transient_rate = 0.30
    down = False
    seed = "faults"
    opens = 0  # opens tried, refused or not
    refused = 0
    metadata: list = []

    @classmethod
    def reset(cls):
        RecordingBackend.reset()
        FaultyBackend.opens = FaultyBackend.refused = 0
        FaultyBackend.down = False
        FaultyBackend.metadata = []

    def open(self):
        FaultyBackend.opens += 1
        draw = random.Random(f"{self.seed}:open:{FaultyBackend.opens}").random()
        if FaultyBackend.down or draw < self.refuse_rate:
            FaultyBackend.refused += 1
            raise ConnectionRefusedError(111, "Connection refused")
        return super().open()

    def send_messages(self, messages):
        for message in messages:
            FaultyBackend.metadata.append(
                (key_of(message), message.metadata.get("dunning_idempotency_key"),
                 getattr(message, "esp_extra", None)))
        return super().send_messages(messages)

    def fail(self, message, attempt):
        # Drawn by address and step, not by case pk: PostgreSQL does not reset its
        # sequences between tests, so pks would give other draws in every session.
        _case, step = key_of(message)
        draw = random.Random(f"{self.seed}:{','.join(message.to)}:{step}:{attempt}").random()
        if draw >= self.transient_rate:
            return None
        if draw < self.transient_rate / 2:
            return smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return esp_error(503, "Service Unavailable")


class ScriptedBackend(RecordingBackend):
    script: dict = {}  # address -> [exception or None, ...], one per attempt

    def fail(self, message, attempt):
        steps = ScriptedBackend.script.get(message.to[0], [])
        return steps[attempt - 1] if attempt <= len(steps) else None


class FileBackend(BaseEmailBackend):
    """One JSON line per accepted message in ``$OUTBOX_MAIL_FILE``; with
    ``$OUTBOX_KILL_AFTER=N`` the process kills itself (SIGKILL: no cleanup, no except
    clause, no atexit) right after writing the N-th message."""

    handed = 0

    def send_messages(self, messages):
        for message in messages:
            case, step = key_of(message)
            line = json.dumps({"case": case, "step": step, "to": list(message.to)}) + "\n"
            with open(os.environ["OUTBOX_MAIL_FILE"], "a", encoding="utf-8") as stream:
                stream.write(line)
                stream.flush()
                os.fsync(stream.fileno())
            FileBackend.handed += 1
            if FileBackend.handed == int(os.environ.get("OUTBOX_KILL_AFTER") or 0):
                os.kill(os.getpid(), signal.SIGKILL)
            hook = os.environ.get("OUTBOX_DROP_DB_AFTER")
            if hook and FileBackend.handed == int(hook):
                terminate_own_database_backend()
        return len(messages)


def terminate_own_database_backend():
    """End this process's PostgreSQL session from another connection, as a failover or
    a database restart would: the run's next statement on it fails."""
    import psycopg
    from django.db import connection

    pid = connection.connection.info.backend_pid
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], password=settings["PASSWORD"],
        host=settings["HOST"], port=settings["PORT"], autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


class DroppingAdapter(FieldMapAdapter):
    """The default adapter, except that its ``$OUTBOX_DROP_DB_IN_BATCH``-th look-up of
    customers (made inside a batch's transaction) first ends the run's database session."""

    calls = 0

    def customer_rows(self, pks):
        DroppingAdapter.calls += 1
        if DroppingAdapter.calls == int(os.environ.get("OUTBOX_DROP_DB_IN_BATCH") or 0):
            terminate_own_database_backend()
        return super().customer_rows(pks)


class DroppingChannel(EmailChannel):
    """The email channel, except that building its ``$OUTBOX_DROP_DB_ON_BUILD``-th message
    (after the batch's transaction committed, before the outbox leases the batch) first
    ends the run's database session: the lease, outside any transaction, fails."""

    built = 0

    def build(self, outgoing):
        DroppingChannel.built += 1
        if DroppingChannel.built == int(os.environ.get("OUTBOX_DROP_DB_ON_BUILD") or 0):
            terminate_own_database_backend()
        return super().build(outgoing)
