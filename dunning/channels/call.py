"""Phone calls: a step on this channel puts the case in the collectors' call queue.

Nothing leaves the system: "sending" a call step records the rendered message as the
call's script on the case timeline (a ``call-queued`` event) and flags the case "needs a
person". The case stays in the call queue (admin: Cases, filter "In the call queue") until
a collector logs a call on it (the workbench's "Log a call", with its outcome), which
clears the flag like any handled case. Quiet hours for calls apply when the step is
queued; the collector places the call.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .base import Channel, Outcome, Outgoing


@dataclass(slots=True)
class QueuedCall:
    case_id: object
    step_key: str
    number: str
    script: str


class CallChannel(Channel):
    key = "call"

    def recipient(self, customer):
        """The customer's number in E.164 (a fixed line will do), or why there is none."""
        from .sms import default_region, normalize_phone

        return normalize_phone(getattr(customer, "phone", "") or "", default_region(),
                               mobile=False)

    def build(self, outgoing: Outgoing):
        script = outgoing.text.strip()
        if outgoing.subject and not script.startswith(outgoing.subject):
            script = f"{outgoing.subject}\n\n{script}"
        return QueuedCall(outgoing.case_id, outgoing.step_key, outgoing.recipient, script)

    def send(self, messages) -> list[Outcome]:
        """Queue the calls: one timeline event each (one INSERT) and the cases flagged."""
        from ..models import Case, CaseEvent

        if not messages:
            return []
        now = timezone.now()
        with transaction.atomic():
            events = CaseEvent.objects.bulk_create([
                CaseEvent(case_id=m.case_id, kind=CaseEvent.Kind.CALL_QUEUED, created_at=now,
                          message=m.script, data={"step": m.step_key, "number": m.number})
                for m in messages
            ])
            Case.objects.filter(pk__in={m.case_id for m in messages}).update(needs_person=True)
        return [Outcome(True, message_id=f"call:{event.pk}") for event in events]
