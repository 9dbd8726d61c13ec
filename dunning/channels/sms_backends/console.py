"""An SMS backend that writes each message to standard output (for development)."""

from __future__ import annotations

import sys
import threading

from .base import BaseSmsBackend, SmsResult


class SmsBackend(BaseSmsBackend):
    """Writes every message of a batch to ``stream`` (default ``sys.stdout``), in the
    manner of Django's console email backend."""

    separator = "-" * 79

    def __init__(self, *, stream=None, **options):
        super().__init__(**options)
        self.stream = stream or sys.stdout
        self._lock = threading.RLock()

    def format_message(self, message):
        from ..sms import segments

        encoding, count = segments(message.body)
        lines = [f"To: {message.to}"]
        if message.sender:
            lines.append(f"From: {message.sender}")
        for key, value in sorted((message.metadata or {}).items()):
            lines.append(f"X-{key}: {value}")
        lines.append(f"Segments: {count} ({encoding})")
        lines.append("")
        lines.append(message.body)
        return "\n".join(lines)

    def write_batch(self, stream, messages):
        for message in messages:
            stream.write(self.format_message(message) + "\n")
            stream.write(self.separator + "\n")

    def send_messages(self, messages):
        if not messages:
            return []
        with self._lock:
            self.write_batch(self.stream, messages)
            self.stream.flush()
        return [SmsResult(True) for _ in messages]
