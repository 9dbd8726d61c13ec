"""An SMS backend that writes each batch to a file of its own (for development)."""

from __future__ import annotations

import datetime
import os
import uuid

from django.core.exceptions import ImproperlyConfigured

from ...conf import dunning_settings
from .base import SmsResult
from .console import SmsBackend as ConsoleBackend


class SmsBackend(ConsoleBackend):
    """Writes every batch to a new file ``<timestamp>-<random>.log`` in ``file_path``
    (default: ``DUNNING["SMS_FILE_PATH"]``), in the console backend's format."""

    def __init__(self, *, file_path=None, **options):
        super().__init__(**options)
        path = file_path or dunning_settings.SMS_FILE_PATH
        if not path:
            raise ImproperlyConfigured(
                "The file SMS backend needs a folder: set DUNNING['SMS_FILE_PATH'] "
                "(or the option 'file_path')."
            )
        self.file_path = os.path.abspath(os.fspath(path))
        if os.path.exists(self.file_path) and not os.path.isdir(self.file_path):
            raise ImproperlyConfigured(
                f"DUNNING['SMS_FILE_PATH'] = {self.file_path!r} exists and is not a folder."
            )
        try:
            os.makedirs(self.file_path, exist_ok=True)
        except OSError as exc:
            raise ImproperlyConfigured(
                f"Could not create the SMS folder {self.file_path!r}: {exc}"
            ) from exc
        if not os.access(self.file_path, os.W_OK):
            raise ImproperlyConfigured(f"The SMS folder {self.file_path!r} is not writable.")

    def batch_file_name(self):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        return os.path.join(self.file_path, f"{stamp}-{uuid.uuid4().hex[:8]}.log")

    def send_messages(self, messages):
        if not messages:
            return []
        with self._lock, open(self.batch_file_name(), "x", encoding="utf-8") as stream:
            self.write_batch(stream, messages)
        return [SmsResult(True) for _ in messages]
