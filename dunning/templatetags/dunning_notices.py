"""Template tags of in-app notices (docs/inapp.md).

``{% load dunning_notices %}``, then

* ``{% dunning_notice_banner customer %}``: the customer's newest active notice as a
  banner (dunning/notices/banner.html) with its action link and a dismiss button, or
  nothing. ``styles=False`` leaves out the small ``<style>`` block (for a strict
  Content-Security-Policy, or your own CSS);
* ``{% dunning_active_notices customer as notices %}``: the active notices, newest
  first, for your own markup.

``customer`` is a customer instance or its pk; None or "" shows nothing (no query).
"""

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

register = template.Library()


def _customer_given(customer):
    return customer is not None and customer != ""


def safe_action_url(url):
    """``url`` when it is an http(s) or site-relative link, else "" (never a
    ``javascript:`` link, whoever set it)."""
    url = (url or "").strip()
    lowered = url.lower()
    if lowered.startswith(("https://", "http://")) or (url.startswith("/") and not url.startswith("//")):
        return url
    return ""


@register.simple_tag
def dunning_active_notices(customer):
    """The customer's active notices, newest first (a list)."""
    from ..models import Notice

    if not _customer_given(customer):
        return []
    return list(Notice.objects.active_for(customer))


@register.inclusion_tag("dunning/notices/banner.html", takes_context=True)
def dunning_notice_banner(context, customer, styles=True, mark_seen=True):
    """The newest active notice of ``customer`` as a banner. Showing it records when the
    customer first saw it (``seen_at``) unless ``mark_seen=False``."""
    from ..models import Notice

    notice = None
    if _customer_given(customer):
        notice = Notice.objects.active_for(customer).first()
    result = {"notice": notice, "styles": styles, "dismiss_url": "", "next": "",
              "action_url": ""}
    if notice is None:
        return result
    if mark_seen and notice.seen_at is None:
        now = timezone.now()
        Notice.objects.filter(pk=notice.pk, seen_at__isnull=True).update(seen_at=now)
        notice.seen_at = now
    try:
        result["dismiss_url"] = reverse("dunning:notice-dismiss", args=[notice.pk])
    except NoReverseMatch:
        pass  # dunning.urls is not included: no dismiss button
    request = context.get("request")
    if request is not None:
        result["next"] = request.get_full_path()
    result["action_url"] = safe_action_url(notice.action_url)
    return result
