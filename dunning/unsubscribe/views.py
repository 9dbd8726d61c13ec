"""The unsubscribe page and the one-click POST (see the package's docstring)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from ..conf import dunning_settings
from ..hosts import get_adapter
from ..models.policy import Channel
from ..portal.resend import fresh_link
from ..portal.tokens import InvalidToken
from ..portal.views import page_language
from .links import ONE_CLICK, read_token
from .optout import has_opted_out, opt_out


def is_one_click(request):
    """Whether a POST's body is exactly ``List-Unsubscribe=One-Click`` (RFC 8058)."""
    try:
        data = request.POST
    except Exception:  # noqa: BLE001 - an unreadable body is not a one-click POST
        return False
    return list(data.keys()) == [ONE_CLICK[0]] and data.getlist(ONE_CLICK[0]) == [ONE_CLICK[1]]


def find_customer(access):
    """The CustomerRow of the link's customer, or None when they no longer exist."""
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
