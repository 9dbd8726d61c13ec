"""Admin for the outbox's delivery side: delivery events, suppressed addresses, and the
staff's two answers to a message in state "unknown" (see docs/outbox.md).

* **Delivery events** (read-only): what the ESP's webhooks reported, per executed step.
* **Unreadable tracking events** (read-only): webhook bodies anymail could not parse.
* **Suppressed addresses**: an address that bounced hard, complained or unsubscribed is
  never emailed again; staff may add one by hand (reason "Added by hand") and delete a
  row to email the address again.
* **Executed steps** (``CaseStepAdmin`` in ``__init__``) get :class:`OutboxActionsMixin`:
  for a step whose sender died while handing it to the ESP ("State unknown, check"),
  "Mark as sent (checked with the ESP)" or "Send again". Both need the
  ``dunning.send_by_hand`` permission and write the acting user on the case's timeline.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ..models import CaseEvent, CaseStep, DeliveryEvent, Suppression, UnreadableTrackingEvent
from ..models.tracking import normalize_address
from .readonly import ReadOnlyAdminMixin


# -- delivery events -----------------------------------------------------------------
@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What the ESP reported; written by webhooks only."""

    list_display = ["timestamp", "event_type", "recipient", "step", "esp", "reject_reason"]
    list_filter = ["event_type", "esp", "reject_reason"]
    search_fields = ["recipient", "event_id", "case_step__step_key", "case_step__message_id"]
    list_select_related = ["case_step"]
    date_hierarchy = "timestamp"
    ordering = ["-timestamp", "-pk"]

    @admin.display(description=gettext_lazy("executed step"), ordering="case_step__step_key")
    def step(self, event):
        return _("%(step)s of case %(case)s") % {
            "step": event.case_step.step_key, "case": event.case_step.case_id,
        }


@admin.register(UnreadableTrackingEvent)
class UnreadableTrackingEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Tracking webhooks anymail could not parse (dunning.anymail_urls); answered 200 so
    the ESP stopped retrying, kept here with the reason."""

    list_display = ["received_at", "esp", "reason"]
    list_filter = ["esp"]
    date_hierarchy = "received_at"
    fields = ["received_at", "esp", "reason", "content_type", "body"]
    readonly_fields = fields


# -- suppressed addresses ------------------------------------------------------------
class SuppressionForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ["address"]
        help_texts = {
            "address": gettext_lazy(
                "Dunning sends this address no more email. Delete the row to email the "
                "address again."
            ),
        }

    def clean_address(self):
        address = normalize_address(self.cleaned_data.get("address"))
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(_("Enter a valid email address.")) from None
        if Suppression.objects.filter(address=address).exists():
            raise ValidationError(_("This address is suppressed already."))
        return address


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Add an address by hand (reason "Added by hand"); delete a row to email the
    address again. A row is never edited."""

    form = SuppressionForm
    list_display = ["address", "reason", "created_at", "event"]
    list_filter = ["reason"]
    search_fields = ["address"]
    search_help_text = gettext_lazy("Delete a row to email the address again.")
    list_select_related = ["event"]
    date_hierarchy = "created_at"

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.reason = Suppression.Reason.MANUAL
        super().save_model(request, obj, form, change)


# -- messages in state "unknown" -----------------------------------------------------
def _unknown_only(modeladmin, request, queryset):
    """The selected steps in state "unknown"; the others are named and left alone."""
    chosen = list(queryset.select_related("case"))
    others = [s for s in chosen if s.status != CaseStep.Status.UNKNOWN]
    if others:
        modeladmin.message_user(
            request,
            _("Left alone (their state is not unknown): %(steps)s")
            % {"steps": ", ".join(f"{s.step_key} ({s.case})" for s in others)},
            messages.WARNING,
        )
    return [s for s in chosen if s.status == CaseStep.Status.UNKNOWN]


def _timeline(step, kind, request, message):
    CaseEvent.objects.create(
        case_id=step.case_id, kind=kind, created_at=timezone.now(), message=message,
        data={"case_step": step.pk, "step_key": step.step_key},
        actor=request.user if request.user.is_authenticated else None,
    )


def _refused(modeladmin, request):
    if modeladmin.has_send_by_hand_permission(request):
        return False
    modeladmin.message_user(request, _("You may not send steps by hand."), messages.ERROR)
    return True


@admin.action(description=gettext_lazy("Mark as sent (checked with the ESP)"),
              permissions=["send_by_hand"])
def mark_sent(modeladmin, request, queryset):
    """The ESP's log shows the message went out: record it as sent (at the time it was
    handed over), never to be sent again."""
    if _refused(modeladmin, request):  # belt and braces: the action is hidden without it
        return
    done = 0
    for step in _unknown_only(modeladmin, request, queryset):
        changed = CaseStep.objects.filter(pk=step.pk, status=CaseStep.Status.UNKNOWN).update(
            status=CaseStep.Status.SENT, sent_at=Coalesce(F("next_attempt_at"), timezone.now()),
        )
        if changed:
            done += 1
            _timeline(step, CaseEvent.Kind.DELIVERY_CONFIRMED, request, _(
                "Step %(step)s marked as sent by hand: the email service's log shows that "
                "its message went out."
            ) % {"step": step.step_key})
    if done:
        modeladmin.message_user(request, ngettext(
            "%(count)d step marked as sent.", "%(count)d steps marked as sent.", done,
        ) % {"count": done}, messages.SUCCESS)


@admin.action(description=gettext_lazy("Send again"), permissions=["send_by_hand"])
def send_again(modeladmin, request, queryset):
    """The ESP's log shows the message did not go out: queue it again; the next drain of
    the outbox (a run, or the periodic drain task) sends it."""
    if _refused(modeladmin, request):
        return
    done = 0
    for step in _unknown_only(modeladmin, request, queryset):
        changed = CaseStep.objects.filter(pk=step.pk, status=CaseStep.Status.UNKNOWN).update(
            status=CaseStep.Status.QUEUED, next_attempt_at=timezone.now(), attempts=0,
            reason="",
        )
        if changed:
            done += 1
            _timeline(step, CaseEvent.Kind.SEND_AGAIN, request, _(
                "Step %(step)s queued to be sent again: the email service's log shows that "
                "its message did not go out."
            ) % {"step": step.step_key})
    if done:
        modeladmin.message_user(request, ngettext(
            "%(count)d step queued to be sent again.", "%(count)d steps queued to be sent again.",
            done,
        ) % {"count": done}, messages.SUCCESS)


class OutboxActionsMixin:
    """The two answers to "state unknown, check", for the executed steps' admin."""

    actions = [mark_sent, send_again]

    def has_send_by_hand_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.send_by_hand")
