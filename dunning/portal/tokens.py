"""The portal link's token: the customer's pk signed with Django's signing.

``signing.dumps`` signs with a timestamp (so links expire after PORTAL_LINK_MAX_AGE) and
verifies with ``SECRET_KEY`` and every key of ``SECRET_KEY_FALLBACKS`` (so rotating the
secret key keeps links working until the old key is dropped from the fallbacks). The
payload also carries its issue time, which revocation compares with
:class:`~dunning.models.PortalRevocation`: building a link needs no database query, so
the run renders links for thousands of messages at no cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core import signing
from django.utils import timezone

from ..conf import dunning_settings
from ..exceptions import InvalidToken  # noqa: F401 - part of this API
from ..models import PortalRevocation

SALT = "dunning.portal.link"


@dataclass(frozen=True)
class PortalAccess:
    #: The host customer's pk as text.
    customer_key: str
    #: When the link was issued (seconds since the epoch).
    issued: float


def make_token(customer_pk, issued=None):
    """The token of a link for the customer ``customer_pk``."""
    payload = {"c": str(customer_pk), "i": round(time.time() if issued is None else issued, 6)}
    return signing.dumps(payload, salt=SALT, compress=False)


def read_token(token):
    """The :class:`PortalAccess` a token grants, or raise :class:`InvalidToken`."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=dunning_settings.PORTAL_LINK_MAX_AGE)
        access = PortalAccess(str(payload["c"]), float(payload["i"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken(str(exc)) from exc
    revoked = (
        PortalRevocation.objects.filter(customer_key=access.customer_key)
        .values_list("revoked_at", flat=True)
        .first()
    )
    if revoked is not None and access.issued <= revoked.timestamp():
        raise InvalidToken("revoked")
    return access


def token_customer(token):
    """The customer key a token was made for when its signature is good, however old or
    revoked it is (to send a fresh link to the address on file); None for a tampered one."""
    try:
        return str(signing.loads(token, salt=SALT, max_age=None)["c"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def revoke_links(customer_pk):
    """Void every link of the customer issued until now (new links work again)."""
    PortalRevocation.objects.update_or_create(
        customer_key=str(customer_pk), defaults={"revoked_at": timezone.now()}
    )


def portal_url(customer_pk):
    """The absolute link of the customer's page ("" when PORTAL_BASE_URL is not set)."""
    base = dunning_settings.PORTAL_BASE_URL
    if not base or customer_pk is None:
        return ""
    if not base.endswith("/"):
        base += "/"
    return f"{base}portal/{make_token(customer_pk)}/"
