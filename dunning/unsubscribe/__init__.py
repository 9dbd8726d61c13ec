"""The unsubscribe link of every dunning email: the token, the page and the opt-out.

Every email that is not a legally required notice carries a link
``<PORTAL_BASE_URL>unsubscribe/<token>/`` in its text and HTML footer and in the RFC 2369 /
RFC 8058 headers ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (see
:func:`list_unsubscribe_headers`), so mail programs show their own "unsubscribe" button.

* **The token** names a customer and a channel, signed with Django's signing and a salt of
  its own (a portal token does not work here, nor the other way round). It never expires
  (mail programs offer the button on old messages too) but is revocable: the admin's
  "Revoke the self-service links" (``PortalRevocation``) voids every link of the customer
  issued until then, and so does dropping the secret key from ``SECRET_KEY_FALLBACKS``.
* **GET** shows a small page with one button and changes nothing (mail scanners open every
  link). **POST** from that page (CSRF-protected) opts the customer out of the token's
  channel. A POST whose body is exactly ``List-Unsubscribe=One-Click`` (RFC 8058, posted
  by the mail provider, without a CSRF token) does the same without a page.
* **The opt-out** (:func:`opt_out`) appends ``Consent(topic="channel:<channel>",
  granted=False)`` to the consent log, only when the customer has not opted out already,
  and notes it on the open case's timeline (``consent``). The run then skips the steps on
  that channel, except legally required notices (``Step.required``).

Token functions import nothing heavy at module level: ``dunning.rendering`` uses them.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from urllib.parse import quote

from django.core import signing
from django.db import transaction
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from ..conf import dunning_settings
from ..portal.tokens import InvalidToken

logger = logging.getLogger("dunning.unsubscribe")

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
    from ..models import PortalRevocation

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


# -- the opt-out ---------------------------------------------------------------------------
def has_opted_out(customer_pk, channel):
    from ..models.consent import channel_topic, current_choices

    topic = channel_topic(channel)
    key = str(customer_pk)
    return current_choices([key], prefix=topic).get(key, {}).get(topic) is False


def opt_out(customer_pk, channel, source=None, message=""):
    """Opt the customer out of ``channel``: a ``Consent`` entry (not granted, made through
    ``source``, default "unsubscribe") and a ``consent`` event on their open case.
    Nothing when they have opted out already; returns whether an entry was written.

    The public way for a host to record an opt-out it received itself (a text message
    "STOP" from its SMS provider, an email to ``UNSUBSCRIBE_MAILTO``)."""
    from ..hosts import get_customer_model
    from ..models import Case, Consent
    from ..models.consent import channel_topic
    from ..portal.services import channel_label, log_consent

    source = source or Consent.Source.UNSUBSCRIBE
    with transaction.atomic():
        # Two opt-outs of one customer at once (a one-click POST and the page) queue here
        # on databases that lock rows, so the second sees the first and adds nothing.
        list(get_customer_model()._default_manager.select_for_update()
             .filter(pk=customer_pk).values_list("pk", flat=True))
        if has_opted_out(customer_pk, channel):
            return False
        case = Case.objects.filter(customer_id=customer_pk, status=Case.Status.OPEN).first()
        log_consent(customer_pk, case, [(channel_topic(channel), False)],
                    message or _("Opted out of %(channel)s with the unsubscribe link.")
                    % {"channel": channel_label(channel)}, source=source)
    return True


#: Email events of the ESP (anymail's event types) that are the customer's choice, with
#: the source their consent entry records.
ESP_OPT_OUTS = {"unsubscribed": "unsubscribe", "complained": "bounce"}


def opt_out_by_esp_event(case_id, event_type):
    """An ESP reported ``unsubscribed`` or ``complained`` (spam) for a message of case
    ``case_id``: the customer is opted out of email in the consent log (source
    "unsubscribe" or "bounce"). Called by dunning.tracking."""
    from ..models import Case

    source = ESP_OPT_OUTS.get(event_type)
    customer_id = Case.objects.filter(pk=case_id).values_list("customer_id", flat=True).first()
    if source is None or customer_id is None:
        return False
    return opt_out(customer_id, "email", source, _(
        "Opted out of email: the email service reported %(event)s.") % {"event": event_type})


# -- the views -----------------------------------------------------------------------------
def is_one_click(request):
    """Whether a POST's body is exactly ``List-Unsubscribe=One-Click`` (RFC 8058)."""
    try:
        data = request.POST
    except Exception:  # noqa: BLE001 - an unreadable body is not a one-click POST
        return False
    return list(data.keys()) == [ONE_CLICK[0]] and data.getlist(ONE_CLICK[0]) == [ONE_CLICK[1]]


def find_customer(access):
    """The CustomerRow of the link's customer, or None when they no longer exist."""
    from django.core.exceptions import ValidationError

    from ..hosts import get_adapter

    try:
        rows = get_adapter().customer_rows([access.customer_key])
    except (ValueError, TypeError, ValidationError):
        return None
    return next((row for key, row in rows.items() if str(key) == access.customer_key), None)


def private(response):
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "same-origin"  # the token must not leak to other sites
    response["X-Robots-Tag"] = "noindex"
    return response


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    """``unsubscribe/<token>/``: the page (GET; its POST needs the CSRF token), or the
    mail provider's one-click POST (no CSRF token, nothing but the RFC 8058 body)."""
    if request.method == "POST" and is_one_click(request):
        return one_click(request, token)
    return page(request, token)


def one_click(request, token):
    try:
        access = read_token(token)
    except InvalidToken as exc:
        raise Http404("not an unsubscribe link") from exc
    if find_customer(access) is None:
        raise Http404("no such customer")
    opt_out(access.customer_key, access.channel)
    return private(HttpResponse(_("Unsubscribed."), content_type="text/plain; charset=utf-8"))


@csrf_protect
def page(request, token):
    from ..models.policy import Channel
    from ..portal.resend import fresh_link
    from ..portal.views import page_language

    try:
        access = read_token(token)
        customer = find_customer(access)
    except InvalidToken:
        customer = None
    if customer is None:
        response = TemplateResponse(request, "dunning/unsubscribe/page.html", {
            "language": translation.get_language(), "state": "broken",
        }, status=404)
        response.render()
        return private(response)
    language = page_language(request, customer)
    with translation.override(language):
        if request.method == "POST":
            opt_out(access.customer_key, access.channel)
            state = "done"
        else:
            state = "opted-out" if has_opted_out(access.customer_key, access.channel) else "ask"
        response = TemplateResponse(request, "dunning/unsubscribe/page.html", {
            "language": language,
            "state": state,
            "channel": access.channel,
            "channel_label": dict(Channel.choices).get(access.channel, access.channel),
            "portal_url": fresh_link(request, access.customer_key),
            "can_return": access.channel in (dunning_settings.PORTAL_CHANNELS or ()),
        })
        response.render()
    return private(response)
