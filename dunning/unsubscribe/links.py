"""The unsubscribe token and link a message carries (see the package's docstring)."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from urllib.parse import quote

from django.core import signing

from ..conf import dunning_settings
from ..models import PortalRevocation
from ..portal.tokens import InvalidToken

SALT = "dunning.unsubscribe"

#: The channels whose messages carry an unsubscribe link. Text messages do not (every
#: character counts; the carrier's STOP keyword opts out, see docs/unsubscribe.md);
#: letters, in-app notices and calls have no link to click.
LINKED_CHANNELS = ("email",)

#: The body of an RFC 8058 one-click unsubscribe POST.
ONE_CLICK = ("List-Unsubscribe", "One-Click")


@dataclass(frozen=True)
class UnsubscribeAccess:
    #: The host customer's pk as text.
    customer_key: str
    #: The channel the link stops ("email").
    channel: str
    #: When the link was issued (seconds since the epoch).
    issued: float


def _seconds(issued):
    if issued is None:
        return time.time()
    if isinstance(issued, datetime.datetime):
        return issued.timestamp()
    return float(issued)


# -- the token and the link ----------------------------------------------------------------
def make_token(customer_pk, channel="email", issued=None):
    """The token of the unsubscribe link of customer ``customer_pk`` for ``channel``;
    ``issued`` (a datetime or seconds since the epoch; default now) makes it
    reproducible: the same values give the same token."""
    payload = {"c": str(customer_pk), "h": str(channel), "i": round(_seconds(issued), 6)}
    # A Signer, not signing.dumps: no timestamp of its own, so the link never expires and
    # the text and the header of a message carry the very same link.
    return signing.Signer(salt=SALT).sign_object(payload)


def read_token(token):
    """The :class:`UnsubscribeAccess` a token grants, or raise ``InvalidToken``
    (tampered, revoked or not a token of this kind)."""
    try:
        payload = signing.Signer(salt=SALT).unsign_object(token)
        access = UnsubscribeAccess(str(payload["c"]), str(payload["h"]), float(payload["i"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken(str(exc)) from exc
    if not access.customer_key or not access.channel:
        raise InvalidToken("empty")
    revoked = (
        PortalRevocation.objects.filter(customer_key=access.customer_key)
        .values_list("revoked_at", flat=True)
        .first()
    )
    if revoked is not None and access.issued <= revoked.timestamp():
        raise InvalidToken("revoked")
    return access


def unsubscribe_url(customer_pk, channel="email", issued=None):
    """The absolute unsubscribe link ("" when ``PORTAL_BASE_URL`` is not set)."""
    base = dunning_settings.PORTAL_BASE_URL
    if not base or customer_pk is None:
        return ""
    if not base.endswith("/"):
        base += "/"
    return f"{base}unsubscribe/{make_token(customer_pk, channel, issued)}/"


def message_link(customer_pk, channel="email", *, required=False, issued=None):
    """The unsubscribe link a message carries: "" for a legally required notice (it goes
    even to customers who opted out, so it offers no opt-out) and on a channel without
    links (:data:`LINKED_CHANNELS`)."""
    if required or channel not in LINKED_CHANNELS:
        return ""
    return unsubscribe_url(customer_pk, channel, issued)


def list_unsubscribe_headers(url, *, required=False):
    """The ``List-Unsubscribe`` (RFC 2369) and ``List-Unsubscribe-Post`` (RFC 8058)
    headers of a message with unsubscribe link ``url``; none for a required notice or
    without a link. ``DUNNING["UNSUBSCRIBE_MAILTO"]`` adds a ``mailto:`` whose subject
    carries the token (for a host that reads that mailbox, see docs/unsubscribe.md)."""
    if required or not url:
        return {}
    targets = [f"<{url}>"]
    mailto = dunning_settings.UNSUBSCRIBE_MAILTO
    if mailto:
        token = url.rstrip("/").rsplit("/", 1)[-1]
        targets.append(f"<mailto:{mailto}?subject={quote('unsubscribe ' + token)}>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


