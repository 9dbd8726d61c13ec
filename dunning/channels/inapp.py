"""In-app notices: a banner inside the host's own site (docs/inapp.md).

The channel has the shape of every channel (dunning.channels.base.Channel), but its
"sending" is writing a :class:`dunning.models.Notice` row that the host shows:

- :meth:`InAppChannel.recipient` always reaches the customer (they exist: the notice is
  theirs); the step's recipient is recorded as ``"in-app"``;
- :meth:`InAppChannel.build` turns the rendered message into an unsaved Notice: the
  subject is its title, the first paragraph of the plain text (after a salutation such
  as "Dear Ada,") its text, at most ``DUNNING["INAPP_MAX_CHARS"]`` characters, cut at a
  word; its action the portal link (found in the text, else made for the customer), else
  ``COMPANY["update_payment_url"]``; its level from the step key;
- :meth:`InAppChannel.send` writes a batch with one INSERT and reports
  ``Outcome(ok, message_id="notice:<pk>")`` per message. A ``payment-received`` message
  is an information ("thank you") and resolves the customer's other notices, so the
  warning banner disappears by itself once the customer paid (the receiver in
  dunning.notices_receivers does the same on ``case_resolved`` for customers whose policy
  has no in-app step).
"""

from __future__ import annotations

import datetime
import logging
import re
from contextlib import nullcontext

from django.db import DEFAULT_DB_ALIAS, DatabaseError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from ..conf import dunning_settings
from ..failures import describe
from ..models.policy import PAYMENT_RECEIVED
from .base import Channel, Outcome, Outgoing

logger = logging.getLogger("dunning.inapp")

#: The recipient recorded for an in-app step.
RECIPIENT = "in-app"

#: Words in a step key that make its notice urgent (``danger``).
URGENT_WORDS = ("final", "suspension", "termination")

URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
URL_TRAILING = ".,;:!?)]}'\""
#: A paragraph that only greets ("Dear Ada,", "Hallo Ada,"): skipped for the summary.
SALUTATION_MAX = 80


def setting(name):
    """A setting of this channel (``INAPP_*`` in dunning.conf)."""
    return getattr(dunning_settings, name)


def level_for(step_key):
    """The level of a step's notice: ``info`` for payment-received, ``danger`` for a step
    whose key names the end of the road (final, suspension, termination), else
    ``warning``."""
    from ..models import Notice

    key = (step_key or "").lower()
    if key == PAYMENT_RECEIVED:
        return Notice.Level.INFO
    if any(word in key for word in URGENT_WORDS):
        return Notice.Level.DANGER
    return Notice.Level.WARNING


def _is_salutation(paragraph):
    return ("\n" not in paragraph and len(paragraph) <= SALUTATION_MAX
            and paragraph.rstrip().endswith(","))


def shorten(text, max_chars):
    """``text`` as one line of at most ``max_chars`` characters, cut at the last word
    that leaves room for an ellipsis (a first word longer than that is cut inside)."""
    text = " ".join((text or "").split())
    max_chars = max(int(max_chars), 1)
    if len(text) <= max_chars:
        return text
    room = max_chars - 1
    cut = text.rfind(" ", 0, room + 1)
    prefix = text[:cut] if cut > 0 else text[:room]
    return prefix.rstrip(" ,;:-") + "\u2026"


def summary(text, max_chars):
    """The first paragraph of a rendered plain text that is not a salutation, shortened
    to ``max_chars`` (see :func:`shorten`)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", (text or "").replace("\r\n", "\n"))]
    paragraphs = [p for p in paragraphs if p]
    while len(paragraphs) > 1 and _is_salutation(paragraphs[0]):
        paragraphs.pop(0)
    return shorten(paragraphs[0], max_chars) if paragraphs else ""


def portal_link_in(text):
    """The first link in ``text`` to the customer's self-service page (under
    ``PORTAL_BASE_URL``), or ""."""
    base = dunning_settings.PORTAL_BASE_URL or ""
    if not base:
        return ""
    if not base.endswith("/"):
        base += "/"
    for match in URL.finditer(text or ""):
        link = match.group(0).rstrip(URL_TRAILING)
        if link.startswith(base + "portal/"):
            return link
    return ""


def action_for(outgoing: Outgoing):
    """(label, URL) of the notice's button: the portal link in the text or one made for
    the customer, else ``COMPANY["update_payment_url"]``, else none."""
    from ..portal.tokens import portal_url

    link = portal_link_in(outgoing.text) or portal_url(outgoing.customer_id)
    if link:
        return _("Settle your account"), link
    update = (dunning_settings.COMPANY or {}).get("update_payment_url") or ""
    if update:
        return _("Update payment method"), str(update)
    return "", ""


class InAppChannel(Channel):
    key = "in_app"

    def __init__(self, using=None):
        #: The database the notices are written to (None: the default one).
        self.using = using or DEFAULT_DB_ALIAS

    def recipient(self, customer):
        return RECIPIENT, ""

    def build(self, outgoing: Outgoing):
        from ..models import Notice

        level = level_for(outgoing.step_key)
        language = getattr(outgoing, "language", "") or None
        with translation.override(language) if language else nullcontext():
            label, url = ("", "") if level == Notice.Level.INFO else action_for(outgoing)
            label = str(label)
        title = " ".join((outgoing.subject or "").split())[:255]
        text = summary(outgoing.text, setting("INAPP_MAX_CHARS"))
        if not title and not text:
            raise ValueError(_("the notice is empty"))
        if not title:
            title, text = shorten(text, 255), ""
        expires_at = None
        days = setting("INAPP_INFO_DAYS")
        if level == Notice.Level.INFO and days is not None:
            expires_at = timezone.now() + datetime.timedelta(days=float(days))
        return Notice(
            customer_id=outgoing.customer_id,
            case_id=outgoing.case_id,
            step_key=outgoing.step_key[:64],
            level=level,
            title=title,
            text=text,
            action_label=label[:100],
            action_url=url[:2000],
            expires_at=expires_at,
        )

    def send(self, messages):
        """Write the batch's notices with one INSERT (and, for payment-received ones,
        resolve the customer's other notices). A database error wrote nothing (one
        transaction): every message is a transient failure, tried again later."""
        from ..models import Notice

        messages = list(messages)
        if not messages:
            return []
        now = timezone.now()
        for notice in messages:
            notice.created_at = now
        manager = Notice.objects.db_manager(self.using)
        try:
            with transaction.atomic(using=self.using):
                created = manager.bulk_create(messages)
                new = [n.pk for n in created if n.pk is not None]
                for notice in created:
                    if notice.step_key == PAYMENT_RECEIVED:
                        manager.get_queryset().resolve_for(
                            notice.customer_id, case=notice.case_id, now=now, keep=new,
                            include_thanks=True,
                        )
        except DatabaseError as exc:
            logger.warning("Could not write in-app notices", exc_info=True)
            reason = describe(exc)
            return [Outcome(False, reason=reason, transient=True) for _ in messages]
        return [Outcome(True, message_id=f"notice:{n.pk}" if n.pk is not None else "")
                for n in created]
