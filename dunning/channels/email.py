"""Email through Django's email API, as django-anymail messages.

Every message is an ``AnymailMessage`` whose ``tags`` include the step key and whose
``metadata`` carries ``dunning_case``, ``dunning_step`` and ``customer`` (as strings, the
form every ESP accepts and returns in its tracking events), so any ``EMAIL_BACKEND`` works
and ESP events can be matched back to the case.
"""

from __future__ import annotations

import logging

from anymail.exceptions import AnymailError
from anymail.message import AnymailMessage
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.utils.translation import gettext as _

from ..conf import dunning_settings
from .base import Channel, Outcome, Outgoing

logger = logging.getLogger("dunning.email")

_validate_email = EmailValidator()

# anymail_status values that mean the ESP will never deliver the message.
REJECTED = {"rejected", "invalid"}


class EmailChannel(Channel):
    key = "email"

    def __init__(self, connection=None):
        self.connection = connection
        self._suppressed = None

    @property
    def suppressed(self):
        """Suppressed address -> reason (see ``dunning.tracking``): loaded with one query
        the first time a run asks, then kept for the channel's life (one run)."""
        if self._suppressed is None:
            from ..models import Suppression

            self._suppressed = dict(Suppression.objects.values_list("address", "reason"))
        return self._suppressed

    def recipient(self, customer):
        address = (customer.email or "").strip()
        if not address:
            return "", _("no email address")
        try:
            _validate_email(address)
        except ValidationError:
            return "", _("invalid email address: %(address)s") % {"address": address}
        reason = self.suppressed.get(address.lower())
        if reason is not None:
            return "", _("suppressed: %(reason)s") % {"reason": reason}
        return address, ""

    def build(self, outgoing: Outgoing):
        message = AnymailMessage(
            subject=outgoing.subject,
            body=outgoing.text,
            from_email=dunning_settings.FROM_EMAIL or settings.DEFAULT_FROM_EMAIL,
            to=[outgoing.recipient],
            reply_to=list(dunning_settings.REPLY_TO or []),
            tags=["dunning", outgoing.step_key],
            metadata={
                "dunning_case": str(outgoing.case_id),
                "dunning_step": outgoing.step_key,
                "customer": str(outgoing.customer_id),
            },
        )
        if outgoing.html:
            message.attach_alternative(outgoing.html, "text/html")
        return message

    def send(self, messages):
        if not messages:
            return []
        connection = self.connection or mail.get_connection(fail_silently=False)
        try:
            connection.send_messages(messages)
        except Exception:
            # Find out which message failed: send each on its own.
            logger.warning("Batch send failed; retrying message by message", exc_info=True)
            return [self._send_one(connection, m) for m in messages]
        return [self._outcome(m) for m in messages]

    def _send_one(self, connection, message):
        try:
            connection.send_messages([message])
        except (AnymailError, OSError, Exception) as exc:  # noqa: B014 - record every failure
            return Outcome(False, reason=f"{type(exc).__name__}: {exc}"[:2000])
        return self._outcome(message)

    @staticmethod
    def _outcome(message):
        status = getattr(message, "anymail_status", None)
        message_id = ""
        if status is not None and status.message_id:
            message_id = str(status.message_id)
            statuses = set(status.status or ())
            if statuses and statuses <= REJECTED:
                return Outcome(False, reason=_("rejected by the ESP: %(s)s") % {"s": ", ".join(sorted(statuses))}, message_id=message_id)
        return Outcome(True, message_id=message_id)
