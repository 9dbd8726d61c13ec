"""A case's history as one list: what the case page and the API show.

The executed steps (each message with its outcome and the ESP's tracking events), the case
events (actions with who took them, signals, errors, notes, calls, promises, pauses) and the
closed disputes, merged by time. Read-only: the past is not edited.
"""

from django.utils.translation import gettext as _

from ..models import ActorKind, CaseEvent, CaseStep, DeliveryEvent, Dispute


def call_outcome(data):
    """A logged call's outcome, marked when the customer called us (Regulation F)."""
    outcome = data.get("outcome", "")
    if outcome and data.get("inbound"):
        return _("%(outcome)s (the customer called)") % {"outcome": outcome}
    return outcome


def actor_label(event):
    """Who did it, as the timeline says it: the customer, a user by name (an API client
    marked), the run, or the system (a webhook, the scheduler)."""
    kind = event.actor_kind
    if kind == ActorKind.CUSTOMER:
        return _("the customer (self-service page)")
    name = event.actor.get_username() if event.actor_id and event.actor else ""
    if kind == ActorKind.API:
        return _("%(user)s (API)") % {"user": name} if name else _("an API client")
    if name:  # a staff user (and the events recorded before actor_kind existed)
        return name
    if kind == ActorKind.STAFF:
        return _("a staff user (deleted)")
    return _("dunning run") if event.run_id else _("system")


def timeline(case):
    """The case's history as dicts sorted by time (four queries, whatever its length):
    ``{"at", "kind", "label", "text", "by", "outcome"}`` (and ``"by_kind"``, one of
    :class:`~dunning.models.ActorKind`, for case events)."""
    entries = []
    steps = list(CaseStep.objects.filter(case=case).order_by("created_at", "pk"))
    deliveries = {}
    for event in DeliveryEvent.objects.filter(case_step__case=case).order_by("timestamp", "pk"):
        deliveries.setdefault(event.case_step_id, []).append(event)
    for step in steps:
        outcome = step.get_status_display()
        if step.reason:
            outcome = f"{outcome}: {step.reason}"
        entries.append({
            "at": step.sent_at or step.created_at,
            "kind": "message",
            "label": _("Message %(step)s (%(channel)s)") % {"step": step.step_key,
                                                           "channel": step.channel},
            "text": step.recipient,
            "by": "",
            "outcome": outcome,
            "status": step.status,
            "delivery": [
                {"at": e.timestamp, "event": e.event_type, "description": e.description}
                for e in deliveries.get(step.pk, [])
            ],
        })
    for event in CaseEvent.objects.filter(case=case).select_related("actor").order_by(
        "created_at", "pk"
    ):
        entries.append({
            "at": event.created_at,
            "kind": event.kind,
            "label": event.get_kind_display(),
            "text": event.message,
            "by": actor_label(event),
            "by_kind": event.actor_kind,
            "outcome": call_outcome(event.data or {}),
        })
    for dispute in Dispute.objects.filter(case=case).select_related("opened_by"):
        if dispute.resolved_at:
            entries.append({
                "at": dispute.resolved_at, "kind": "dispute-closed",
                "label": _("Dispute about %(invoice)s closed") % {
                    "invoice": dispute.invoice_number},
                "text": dispute.resolution, "by": "", "outcome": "",
            })
    entries.sort(key=lambda e: e["at"])
    return entries
