"""Email through Django's email API, as django-anymail messages.

Every message is an ``AnymailMessage`` whose ``tags`` include the step key and whose
``metadata`` carries ``dunning_case``, ``dunning_step`` and ``customer`` (as strings, the
form every ESP accepts and returns in its tracking events), so any ``EMAIL_BACKEND`` works
and ESP events can be matched back to the case. A message that is not a legally required
notice carries the ``List-Unsubscribe`` headers of its unsubscribe link (docs/unsubscribe.md).
"""

from __future__ import annotations

import logging
import smtplib
import socket

from anymail.exceptions import (
    AnymailAPIError,
    AnymailConfigurationError,
    AnymailError,
    AnymailRecipientsRefused,
)
from anymail.message import AnymailMessage
from django.conf import settings
from django.core import mail
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import EmailValidator
from django.utils.translation import gettext as _

from ..conf import dunning_settings
from ..failures import describe
from ..models.tracking import is_suppressed
from ..unsubscribe.links import list_unsubscribe_headers
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
        reason = is_suppressed(address, self.suppressed)  # plain or hashed (an erased customer)
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
                **outgoing.metadata(),
                # The same on every try of the step: an ESP log search, a tracking event
                # or an ESP's duplicate check can tell a second try of it.
                "dunning_idempotency_key": outgoing.idempotency_key,
            },
            # RFC 2369 / RFC 8058 one-click unsubscribe; none on a legally required notice.
            headers=list_unsubscribe_headers(outgoing.unsubscribe_url, required=outgoing.required),
        )
        field = dunning_settings.OUTBOX_IDEMPOTENCY_ESP_EXTRA
        if field:
            # An ESP whose send API takes an idempotency key sends a retried message of
            # a step whose first try is "state unknown" at most once.
            message.esp_extra = {field: outgoing.idempotency_key}
        if outgoing.html:
            message.attach_alternative(outgoing.html, "text/html")
        return message

    def send(self, messages):
        """Hand each message to the email backend on its own, over one connection, and
        report what became of each: a failure never makes the channel send a message
        again (retrying is the outbox's job, and only for transient failures)."""
        if not messages:
            return []
        own = self.connection is None
        connection = self.connection or mail.get_connection(fail_silently=False)
        outcomes, is_open, down = [], False, None
        try:
            for message in messages:
                if down is not None:
                    # The backend could not be reached: the rest is not tried now.
                    outcomes.append(down)
                    continue
                if not is_open:
                    try:
                        open_connection(connection)
                    except Exception as exc:  # noqa: BLE001 - every failure is an outcome
                        # Nothing was handed over: the rest is not tried now, and no
                        # message is charged an attempt (the outbox pauses the channel).
                        logger.warning("Could not connect to the email backend", exc_info=True)
                        down = failure(exc)
                        down.transient, down.reached = True, False
                        outcomes.append(down)
                        continue
                    is_open = True
                try:
                    count = connection.send_messages([message])
                except Exception as exc:  # noqa: BLE001 - every failure is an outcome
                    outcome = failure(exc)
                    if not outcome.reached:
                        # An ESP's API that could not be connected to (anymail opens its
                        # HTTP connection while sending): as above.
                        logger.warning("Could not connect to the email backend: %s",
                                       outcome.reason)
                        down = outcome
                        outcomes.append(outcome)
                        continue
                    logger.warning("Sending to %s failed (%s): %s", message.to,
                                   "transient" if outcome.transient else "permanent", outcome.reason)
                    if outcome.transient and own and not answered(exc):
                        # The connection may be broken: start the next message afresh.
                        close_quietly(connection)
                        is_open = False
                    outcomes.append(outcome)
                    continue
                if count == 0:
                    outcomes.append(Outcome(False, reason=_("the email backend did not send it")))
                    continue
                outcomes.append(self._outcome(message))
        finally:
            if is_open and own:
                close_quietly(connection)
        return outcomes

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


#: Tries of opening a connection before the provider counts as unreachable (a single
#: refused connection on a flaky network is tried again at once).
OPEN_TRIES = 2


def open_connection(connection):
    for attempt in range(1, OPEN_TRIES + 1):
        try:
            connection.open()
            return
        except Exception:
            if attempt == OPEN_TRIES:
                raise
            logger.info("Connecting to the email backend failed; trying once more",
                        exc_info=True)


def answered(exc):
    """Whether an ESP's API answered the send with an HTTP status (a 503, a 429): the
    connection works, there is no need to open another."""
    return isinstance(exc, AnymailAPIError) and getattr(exc, "status_code", None) is not None


def close_quietly(connection):
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail too
        logger.debug("Closing the email connection failed", exc_info=True)


def failure(exc):
    """The Outcome of a message whose sending raised ``exc``: transient when trying again
    later may work (see :func:`is_transient`), not reached when the connection to the
    provider could not be opened (see :func:`never_reached`)."""
    if never_reached(exc):
        return Outcome(False, reason=describe(exc), transient=True, reached=False)
    return Outcome(False, reason=describe(exc), transient=is_transient(exc))


def never_reached(exc):
    """Whether a failed send certainly handed nothing to the provider: the connection
    could not be opened (refused, a name that does not resolve, a connect timeout, an
    SMTP server that refused the connection), found anywhere in the exception's chain
    (anymail wraps the requests error, which wraps urllib3's). A timeout or a reset while
    sending may have reached it: not this."""
    try:
        from requests.exceptions import ConnectTimeout
    except ImportError:  # pragma: no cover - anymail depends on requests
        ConnectTimeout = ()  # noqa: N806
    try:
        from urllib3.exceptions import NewConnectionError
    except ImportError:  # pragma: no cover
        NewConnectionError = ()  # noqa: N806
    unreached = (ConnectionRefusedError, socket.gaierror, smtplib.SMTPConnectError,
                 ConnectTimeout, NewConnectionError)
    seen, stack = set(), [exc]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, unreached):
            return True
        stack.extend([error.__cause__, error.__context__, getattr(error, "reason", None),
                      *getattr(error, "args", ())])
    return False


def is_transient(exc):
    """Whether a failed send is worth trying again later.

    Transient: the ESP's API answered 429 or 5xx or not at all (anymail), the SMTP server
    answered 4xx (to the sender, the data or every recipient), the connection failed or
    timed out, and configuration problems (a wrong ESP key or SMTP password is fixed by
    a person; the message should go out then). Permanent: a rejected recipient or message
    (an ESP's 4xx, SMTP 5xx) and anything else (a message the backend cannot send will
    not get better by waiting).
    """
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        if status is None:
            return True  # no answer: a timeout or a connection error
        if status in (401, 403):
            return True  # the ESP refused our credentials: a configuration problem
        return status == 429 or status >= 500
    if isinstance(exc, (AnymailConfigurationError, ImproperlyConfigured)):
        return True
    if isinstance(exc, AnymailError):
        return False  # an invalid address, an unsupported feature, ...
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in (exc.recipients or {}).values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(exc, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError,
                        smtplib.SMTPAuthenticationError, smtplib.SMTPHeloError)):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPException):
        return False
    # Timeouts, refused or reset connections, DNS failures (requests' errors are OSErrors).
    return isinstance(exc, OSError)
