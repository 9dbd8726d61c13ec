"""Delivery tracking: django-anymail's ``tracking`` signal -> the executed step.

Every message the email channel sends carries the ESP's message id (stored on the
``CaseStep``) and the metadata ``dunning_case`` / ``dunning_step``. An ESP webhook posted to
anymail's views (``path("anymail/", include("dunning.anymail_urls"))``) fires ``tracking``; the
receiver in ``receivers.py`` hands each event to :func:`record_tracking_event`, which

* finds the step by message id, else by the metadata;
* records the event once (``DeliveryEvent.event_id`` is unique: an ESP that retries a
  webhook, even many times at once, changes nothing the second time);
* sets the step's latest delivery status (an older event arriving late does not
  overwrite a newer one);
* for a hard bounce, a spam complaint or an unsubscribe, suppresses the address (the email
  channel refuses it from then on) and flags the case for a person; a complaint or an
  unsubscribe also opts the customer out of email in the consent log (source ``bounce``
  or ``unsubscribe``, see docs/unsubscribe.md);
* settles a step in state "unknown" (its sender died while handing it to the ESP, see
  docs/outbox.md): any event of the ESP about the message proves that the ESP took it, so
  the step becomes ``sent``; an ESP that reports it ``rejected`` or ``failed`` (never sent)
  makes it ``failed``. Such a step has no message id yet: it is found by its metadata.

Events for mail that is not dunning mail are ignored, and so are metadata that cannot be
ours (a ``dunning_case`` that is no database id). NUL characters, which PostgreSQL refuses
in text, are dropped from every field kept.

A body that passed the ESP's authentication but that anymail cannot parse (an impossible
date, ...) would make anymail's view answer 500, and the ESP retry it for ever. Sites that
include ``dunning.anymail_urls`` instead of ``anymail.urls`` get anymail's views wrapped by
:func:`tolerant_view`: such a body is kept as an
:class:`~dunning.models.UnreadableTrackingEvent` with its reason, for staff, and answered
200 (the only answer every ESP takes as "stop retrying"; a 4xx is retried by most).
"""

from __future__ import annotations

import hashlib
import json
import logging

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from ..failures import describe
from ..inputs import parse_id, without_nul
from ..models import Case, CaseEvent, CaseStep, DeliveryEvent, Suppression
from ..models.tracking import normalize_address
from ..unsubscribe.optout import opt_out_by_esp_event

logger = logging.getLogger("dunning.tracking")

# anymail's normalized event types that end all mail to the address.
SUPPRESSING = {
    "bounced": Suppression.Reason.BOUNCED,
    "complained": Suppression.Reason.COMPLAINED,
    "unsubscribed": Suppression.Reason.UNSUBSCRIBED,
}

# Bounces an ESP reports as "bounced" although the address may work again later.
SOFT_BOUNCE_TYPES = {"SoftBounce"}  # Postmark's bounce Type

# anymail's event types saying the ESP took a message but never sent it.
NOT_SENT = {"rejected", "failed"}
# Event types that tell nothing about whether the message went out.
UNTELLING = {"unknown", "inbound", "inbound_failed"}

# The raw payload kept per event is capped; a bigger one keeps only its top-level keys.
MAX_PAYLOAD_CHARS = 8000


def _text(value, limit):
    """``value`` as text fit to store: NUL characters dropped, cut at ``limit``."""
    return without_nul(str(value or ""))[:limit]


def _without_nul(value):
    """A JSON-able value with NUL characters dropped from every string (keys too)."""
    if isinstance(value, str):
        return without_nul(value)
    if isinstance(value, dict):
        return {without_nul(str(k)): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def find_step(event):
    """The executed step an anymail tracking event is about, or None."""
    message_id = _text(getattr(event, "message_id", None), 255)
    if message_id:
        step = CaseStep.objects.filter(message_id=message_id).only("pk", "case_id", "recipient", "status", "step_key").first()
        if step is not None:
            return step
    metadata = getattr(event, "metadata", None) or {}
    if not isinstance(metadata, dict):
        return None
    case_id, step_key = metadata.get("dunning_case"), metadata.get("dunning_step")
    case_id = parse_id(case_id)
    step_key = _text(step_key, 255)
    if case_id is None or not step_key:
        return None
    return (
        CaseStep.objects.filter(case_id=case_id, step_key=step_key)
        .only("pk", "case_id", "recipient", "status", "step_key")
        .first()
    )


def event_key(event, esp_name):
    """The ESP's event id, or (for events without one, such as Postmark deliveries) a
    digest of what identifies the event, so that a repeated webhook is still one event."""
    if getattr(event, "event_id", None):
        return _text(event.event_id, 255)
    timestamp = event.timestamp.isoformat() if getattr(event, "timestamp", None) else ""
    parts = [esp_name or "", event.event_type or "", event.message_id or "",
             event.recipient or "", timestamp]
    return "dunning:" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def small_payload(esp_event):
    if esp_event is None:
        return {}
    if hasattr(esp_event, "lists") and not isinstance(esp_event, dict):
        esp_event = {k: v if len(v) != 1 else v[0] for k, v in esp_event.lists()}  # QueryDict
    try:
        text = json.dumps(esp_event, default=str)
    except (TypeError, ValueError):
        return {"unreadable": True}
    if len(text) > MAX_PAYLOAD_CHARS:
        keys = sorted(map(str, esp_event)) if isinstance(esp_event, dict) else []
        return {"truncated": True, "keys": [without_nul(key) for key in keys]}
    return _without_nul(json.loads(text))


def suppression_reason(event):
    reason = SUPPRESSING.get(event.event_type)
    if reason == Suppression.Reason.BOUNCED:
        esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
        if esp_event.get("Type") in SOFT_BOUNCE_TYPES:
            return None
    return reason


def record_tracking_event(event, esp_name=""):
    """Record one anymail ``AnymailTrackingEvent``. Returns the new ``DeliveryEvent``, or
    None when the event is not about dunning mail or was recorded before."""
    step = find_step(event)
    if step is None:
        return None
    timestamp = getattr(event, "timestamp", None) or timezone.now()
    recipient = _text(getattr(event, "recipient", None) or step.recipient, 320)
    try:
        with transaction.atomic():
            delivery = DeliveryEvent.objects.create(
                case_step_id=step.pk,
                esp=_text(esp_name, 32),
                event_id=event_key(event, esp_name),
                event_type=_text(event.event_type, 32) or "unknown",
                recipient=recipient,
                timestamp=timestamp,
                reject_reason=_text(getattr(event, "reject_reason", None), 32),
                description=_text(
                    getattr(event, "description", None) or getattr(event, "mta_response", None),
                    2000),
                esp_event=small_payload(getattr(event, "esp_event", None)),
            )
            # The latest event wins; one that arrives late changes nothing.
            CaseStep.objects.filter(pk=step.pk).filter(
                Q(delivery_updated_at__isnull=True) | Q(delivery_updated_at__lte=timestamp)
            ).update(delivery_status=delivery.event_type, delivery_updated_at=timestamp)
            if step.status == CaseStep.Status.UNKNOWN:
                settle_unknown(step, delivery)
            reason = suppression_reason(event)
            address = normalize_address(recipient)
            if reason and address:
                Suppression.objects.get_or_create(
                    address=address, defaults={"reason": reason, "event": delivery}
                )
                Case.objects.filter(pk=step.case_id).update(needs_person=True)
                CaseEvent.objects.create(
                    case_id=step.case_id, kind=CaseEvent.Kind.NOTE, created_at=timezone.now(),
                    message=_("%(address)s is suppressed (%(reason)s): dunning sends it no more email.")
                    % {"address": address, "reason": reason},
                    data={"delivery_event": delivery.pk, "event_type": delivery.event_type},
                )
            # An unsubscribe or a spam complaint is also the customer's choice: an opt-out
            # of email in the consent log (dunning.unsubscribe; once, however often).
            opt_out_by_esp_event(step.case_id, delivery.event_type)
    except IntegrityError:
        if DeliveryEvent.objects.filter(event_id=event_key(event, esp_name)).exists():
            logger.debug("Tracking event %s recorded before", event_key(event, esp_name))
            return None
        raise
    return delivery


def settle_unknown(step, delivery):
    """An ESP event about a step in state "unknown" settles it: the ESP had the message."""
    event_type = delivery.event_type
    if event_type in UNTELLING:
        return
    steps = CaseStep.objects.filter(pk=step.pk, status=CaseStep.Status.UNKNOWN)
    if event_type in NOT_SENT:
        reason = _("the ESP reported it %(event)s: %(description)s") % {
            "event": event_type, "description": delivery.description or delivery.reject_reason,
        }
        changed = steps.update(status=CaseStep.Status.FAILED, reason=reason[:2000])
        message = _("The ESP reported %(event)s for the message of step %(step)s, whose state "
                    "was unknown: it did not go out.")
    else:
        changed = steps.update(status=CaseStep.Status.SENT, sent_at=delivery.timestamp)
        message = _("The ESP reported %(event)s for the message of step %(step)s, whose state "
                    "was unknown: it went out. The step is now sent.")
    if changed:
        CaseEvent.objects.create(
            case_id=step.case_id, kind=CaseEvent.Kind.DELIVERY_CONFIRMED,
            created_at=timezone.now(),
            message=message % {"event": event_type, "step": step.step_key},
            data={"delivery_event": delivery.pk, "event_type": event_type,
                  "case_step": step.pk},
        )


# -- bodies anymail cannot read ---------------------------------------------------------
class _Unreadable(Exception):
    """Raised past anymail's ``post`` once an unreadable body is recorded."""


def _body_text(request):
    try:
        body = request.body.decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 (the stream was read as a form: keep the form)
        try:
            body = json.dumps({k: v if len(v) != 1 else v[0] for k, v in request.POST.lists()})
        except Exception:  # noqa: BLE001
            body = ""
    return without_nul(body)[:MAX_PAYLOAD_CHARS]


def record_unreadable(request, esp_name, exc):
    """Keep a tracking body anymail could not parse, with the reason, for staff."""
    from ..models import UnreadableTrackingEvent

    reason = without_nul(describe(exc, None))[:2000]
    logger.warning("Unreadable %s tracking webhook: %s", esp_name, reason)
    return UnreadableTrackingEvent.objects.create(
        esp=_text(esp_name, 32), reason=reason,
        content_type=_text(request.content_type, 255), body=_body_text(request),
    )


def tolerant_view(view_class, **initkwargs):
    """anymail's webhook view ``view_class`` whose bodies that pass its authentication but
    cannot be parsed are recorded (:func:`record_unreadable`) and answered 200, instead
    of a 500 that the ESP would retry for ever. A request that fails authentication is
    still a 400, a site's misconfiguration still a 500, and an error in a receiver still
    a 500 (the ESP retries: it may be transient)."""
    from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
    from django.http import HttpResponse

    class Tolerant(view_class):
        def parse_events(self, request):
            try:
                return list(super().parse_events(request))
            except (SuspiciousOperation, ImproperlyConfigured):
                raise
            except Exception as exc:  # noqa: BLE001 (any parse error: the body is unreadable)
                record_unreadable(request, self.esp_name, exc)
                raise _Unreadable from exc

        def post(self, request, *args, **kwargs):
            try:
                return super().post(request, *args, **kwargs)
            except _Unreadable:
                return HttpResponse()

    Tolerant.__name__ = Tolerant.__qualname__ = "Tolerant" + view_class.__name__
    Tolerant.__module__ = __name__
    return Tolerant.as_view(**initkwargs)
