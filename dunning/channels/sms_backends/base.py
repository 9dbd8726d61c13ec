"""The interface every SMS backend implements.

A backend gets a batch of :class:`~dunning.channels.sms.SmsMessage` and returns one
:class:`SmsResult` per message, in the order given. It does not raise for a message it
could not send: the failure is that message's result, and the messages after it are
still tried. Whether a failure is ``transient`` (worth trying again later: a timeout, a
provider outage, a rate limit) decides whether the outbox retries the message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ...failures import describe
from ...plugins import Plugin, Result

logger = logging.getLogger("dunning.sms")


@dataclass(slots=True)
class SmsResult(Result):
    """What became of one message: ``message_id`` is the provider's id of a message it
    took (Twilio's ``SM...`` sid); ``code`` the provider's error code of one it refused."""

    ok: bool
    message_id: str = ""
    reason: str = ""
    transient: bool = False
    code: str = ""


class BaseSmsBackend(Plugin):
    """Base class of SMS backends.

    ``opt_out_codes``: the provider's error codes that mean "the recipient opted out" (a
    STOP reply); a message refused with one opts the customer out of SMS in the consent log.

    Subclasses implement :meth:`send_message` (one message) or override
    :meth:`send_messages` (a provider with a real batch API). ``open()`` and ``close()``
    bracket one batch; the channel calls both, and a backend may also be used as a
    context manager. Keyword arguments come from ``DUNNING["SMS_BACKEND_OPTIONS"]``.
    """

    opt_out_codes: frozenset = frozenset()
    required = ("send_message",)

    @classmethod
    def missing_methods(cls):
        """None when the backend overrides :meth:`send_messages` (a batch API)."""
        if cls.send_messages is not BaseSmsBackend.send_messages:
            return []
        return super().missing_methods()

    def __init__(self, *, fail_silently=False, **options):
        if options:
            raise TypeError(
                f"{type(self).__name__} got unexpected options: {', '.join(sorted(options))}"
            )
        self.fail_silently = fail_silently

    def open(self):
        """Acquire what a batch needs (a connection, a client). Called before
        :meth:`send_messages`; an exception here means nothing was sent."""

    def close(self):
        """Release what :meth:`open` acquired."""

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def send_messages(self, messages) -> list[SmsResult]:
        """Send every message; return one :class:`SmsResult` per message, in order."""
        results = []
        for message in messages:
            try:
                result = self.send_message(message)
            except Exception as exc:  # noqa: BLE001 - every failure is a result
                result = self.failure(exc)
                logger.warning("Sending an SMS to %s failed (%s): %s", message.to,
                               "transient" if result.transient else "permanent", result.reason)
            results.append(result)
        return results

    def send_message(self, message) -> SmsResult:
        raise self.not_implemented("send_message")

    def failure(self, exc) -> SmsResult:
        """The result of a message whose sending raised ``exc``."""
        return SmsResult(False, reason=describe(exc), transient=self.is_transient(exc))

    def is_transient(self, exc) -> bool:
        """Whether trying again later may work. By default: a connection that failed or
        timed out (``OSError``, which ``requests``' errors are); anything else is final."""
        return isinstance(exc, OSError)
