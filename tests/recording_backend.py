"""Test helpers that work across processes (qcluster workers): an email backend that
records every message in one file, and an adapter that can hold one worker inside a batch.

``EmailBackend`` appends one JSON line per message to ``$DUNNING_MAIL_FILE`` with
``O_APPEND`` and one ``write()`` per line, so that the lines of several processes never
mix. Each line has the anymail metadata (case, step, customer), the recipient and the pid.

``PausingAdapter`` (the shipped field-map adapter) reads ``$DUNNING_PAUSE_SCRIPT``, a JSON
object ``{"on_batch": K, "paused": PATH, "resume": PATH}``: the first process whose K-th
batch reaches ``invoice_rows`` (inside the batch's transaction, its cases claimed) creates
``paused`` with its pid in it and waits until ``resume`` exists (at most 120 s). The
other processes, and later batches, carry on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from django.core.mail.backends.base import BaseEmailBackend

from dunning.hosts import FieldMapAdapter


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        path = os.environ["DUNNING_MAIL_FILE"]
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for message in email_messages:
                metadata = getattr(message, "metadata", None) or {}
                line = json.dumps({
                    "case": metadata.get("dunning_case"),
                    "step": metadata.get("dunning_step"),
                    "customer": metadata.get("customer"),
                    "to": list(message.to),
                    "pid": os.getpid(),
                }) + "\n"
                os.write(fd, line.encode())
        finally:
            os.close(fd)
        return len(email_messages)


def read_mail(path):
    """The recorded messages (a missing file: none)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class PausingAdapter(FieldMapAdapter):
    batches = 0  # batches of this process

    def invoice_rows(self, queryset):
        script = os.environ.get("DUNNING_PAUSE_SCRIPT")
        if script:
            PausingAdapter.batches += 1
            pause(json.loads(script), PausingAdapter.batches)
        return super().invoice_rows(queryset)


def pause(script, batch):
    if batch != script["on_batch"]:
        return
    try:
        fd = os.open(script["paused"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return  # another process holds the pause
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    deadline = time.monotonic() + 120
    while not os.path.exists(script["resume"]) and time.monotonic() < deadline:
        time.sleep(0.01)
