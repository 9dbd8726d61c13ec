"""Delivery tracking: django-anymail's ``tracking`` signal -> the executed step.

Every message the email channel sends carries the ESP's message id (stored on the
``CaseStep``) and the metadata ``dunning_case`` / ``dunning_step``. An ESP webhook posted to
anymail's views (``path("anymail/", include("anymail.urls"))``) fires ``tracking``; the
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

Events for mail that is not dunning mail are ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import Case, CaseEvent, CaseStep, DeliveryEvent, Suppression
from .models.tracking import normalize_address
from .unsubscribe import opt_out_by_esp_event

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


def find_step(event):
    """The executed step an anymail tracking event is about, or None."""
    message_id = str(getattr(event, "message_id", None) or "")[:255]
    if message_id:
        step = CaseStep.objects.filter(message_id=message_id).only("pk", "case_id", "recipient", "status", "step_key").first()
        if step is not None:
            return step
    metadata = getattr(event, "metadata", None) or {}
    if not isinstance(metadata, dict):
        return None
    case_id, step_key = metadata.get("dunning_case"), metadata.get("dunning_step")
    try:
        case_id = int(str(case_id))
    except (TypeError, ValueError):
        return None
    if not step_key:
        return None
    return (
        CaseStep.objects.filter(case_id=case_id, step_key=str(step_key))
        .only("pk", "case_id", "recipient", "status", "step_key")
        .first()
    )


def event_key(event, esp_name):
    """The ESP's event id, or (for events without one, such as Postmark deliveries) a
    digest of what identifies the event, so that a repeated webhook is still one event."""
    if getattr(event, "event_id", None):
        return str(event.event_id)[:255]
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
        return {"truncated": True, "keys": keys}
    return json.loads(text)


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
    recipient = str(getattr(event, "recipient", None) or step.recipient or "")[:320]
    try:
        with transaction.atomic():
            delivery = DeliveryEvent.objects.create(
                case_step_id=step.pk,
                esp=str(esp_name or "")[:32],
                event_id=event_key(event, esp_name),
                event_type=str(event.event_type or "unknown")[:32],
                recipient=recipient,
                timestamp=timestamp,
                reject_reason=str(getattr(event, "reject_reason", None) or "")[:32],
                description=str(
                    getattr(event, "description", None) or getattr(event, "mta_response", None) or ""
                )[:2000],
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
