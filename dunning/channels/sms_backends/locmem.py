"""An SMS backend for tests: messages are kept in :data:`outbox` (a list).

Like Django's locmem email backend: empty ``outbox`` between tests yourself
(``outbox.clear()``). ``failures`` (an option) maps a phone number to the
:class:`~.base.SmsResult` its messages get instead of being kept, so that tests can
simulate a provider refusing a number or being down.
"""

from __future__ import annotations

import itertools

from .base import BaseSmsBackend, SmsResult

#: Every message the locmem backend has "sent", oldest first.
outbox = []

_ids = itertools.count(1)


class SmsBackend(BaseSmsBackend):
    def __init__(self, *, failures=None, **options):
        super().__init__(**options)
        self.failures = dict(failures or {})

    def send_message(self, message):
        failure = self.failures.get(message.to)
        if failure is not None:
            if isinstance(failure, BaseException):
                raise failure
            return failure
        outbox.append(message)
        return SmsResult(True, message_id=f"locmem-{next(_ids)}")
