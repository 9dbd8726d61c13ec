"""The collections workbench: what a collector does with cases in the admin.

Every action works on the cases selected in the case changelist, reports per case with
``message_user`` and records a :class:`~dunning.models.CaseEvent` with the acting user on
the case's timeline. Actions that need input (a collector, a note, a call's outcome, a
pause reason, a write-off reason) show an intermediate page first.
"""

import datetime
import logging

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import signals
from ..engine import manual
from ..hosts import get_adapter
from ..models import Case, CaseEvent, CaseInvoice, CaseStep, Dispute

logger = logging.getLogger(__name__)

#: "Paused without an end date": the engine compares dates, so a date far away will do.
PAUSED_INDEFINITELY = datetime.date(9999, 12, 31)

#: Days after a promised payment date before dunning goes on by itself.
PROMISE_GRACE_DAYS = 3


# -- forms -----------------------------------------------------------------------------
class AssignForm(forms.Form):
    collector = forms.ModelChoiceField(
        label=gettext_lazy("Collector"),
        queryset=get_user_model()._default_manager.none(),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["collector"].queryset = (
            get_user_model()._default_manager.filter(is_staff=True, is_active=True)
        )


class NoteForm(forms.Form):
    text = forms.CharField(label=gettext_lazy("Note"), widget=forms.Textarea(attrs={"rows": 4}))


class CallForm(forms.Form):
    OUTCOMES = [
        ("reached", gettext_lazy("Reached")),
        ("no-answer", gettext_lazy("No answer")),
        ("promised", gettext_lazy("Promised to pay")),
        ("refused", gettext_lazy("Refused to pay")),
    ]
    outcome = forms.ChoiceField(label=gettext_lazy("Outcome"), choices=OUTCOMES)
    text = forms.CharField(
        label=gettext_lazy("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 4})
    )


class PauseForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 3}))
    until = forms.DateField(
        label=gettext_lazy("Paused until"),
        required=False,
        help_text=gettext_lazy("Leave empty to pause until someone resumes the case."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_until(self):
        until = self.cleaned_data["until"]
        if until is not None and until <= timezone.localdate():
            raise forms.ValidationError(_("The end of a pause must lie in the future."))
        return until


class WriteOffForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 3}))


class PromiseForm(forms.Form):
    date = forms.DateField(
        label=gettext_lazy("Promised payment date"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    amount = forms.DecimalField(
        label=gettext_lazy("Promised amount"), max_digits=14, decimal_places=2,
    )

    def clean_date(self):
        date = self.cleaned_data["date"]
        if date < timezone.localdate():
            raise forms.ValidationError(_("The promised date must be today or later."))
        return date

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount <= 0:
            raise forms.ValidationError(_("The promised amount must be greater than zero."))
        return amount


class DisputeForm(forms.Form):
    invoice_number = forms.CharField(label=gettext_lazy("Invoice number"), max_length=255)
    reason = forms.CharField(label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 3}))


class ResolveDisputesForm(forms.Form):
    resolution = forms.CharField(
        label=gettext_lazy("Resolution"), widget=forms.Textarea(attrs={"rows": 3})
    )


# -- helpers ---------------------------------------------------------------------------
def record(case, kind, request, message="", **data):
    return CaseEvent.objects.create(
        case=case, kind=kind, created_at=timezone.now(), message=message, data=data,
        actor=request.user if request.user.is_authenticated else None,
    )


def intermediate_page(modeladmin, request, queryset, *, form, action, title, submit,
                      intro="", danger=False):
    """The page between choosing an action and applying it (posted back to the changelist)."""
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": opts,
        "title": title,
        "intro": intro,
        "form": form,
        "cases": list(queryset),
        "action": action,
        "submit": submit,
        "danger": danger,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media + form.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "dunning/admin/workbench_action.html", context)


def bound_form(form_class, request):
    """The form bound to the POST of the intermediate page, or None on the first visit."""
    if "apply" in request.POST:
        return form_class(request.POST)
    return None


def ask(modeladmin, request, queryset, form_class, **page):
    """``(form, None)`` once the intermediate page was posted back valid, else
    ``(None, the intermediate page)`` asking for it (again, with its errors)."""
    form = bound_form(form_class, request)
    if form is not None and form.is_valid():
        return form, None
    return None, intermediate_page(
        modeladmin, request, queryset, form=form or form_class(), **page
    )


def only_open(modeladmin, request, case):
    if case.status != Case.Status.OPEN:
        modeladmin.message_user(
            request,
            _("%(case)s is not open; left unchanged.") % {"case": case},
            messages.WARNING,
        )
        return False
    return True


def recheck_from(case):
    """A next check date that lets the next run decide again for ``case``."""
    return case.last_step_on or case.opened_on


# -- actions ---------------------------------------------------------------------------
@admin.action(description=gettext_lazy("Assign to a collector"), permissions=["change"])
def assign(modeladmin, request, queryset):
    form, page = ask(
        modeladmin, request, queryset, AssignForm, action="assign",
        title=_("Assign cases to a collector"), submit=_("Assign"),
    )
    if page is not None:
        return page
    collector = form.cleaned_data["collector"]
    for case in queryset:
        with transaction.atomic():
            Case.objects.filter(pk=case.pk).update(assigned_to=collector)
            record(case, CaseEvent.Kind.ASSIGNED,
                   request, _("Assigned to %(user)s.") % {"user": collector.get_username()},
                   user=collector.pk, username=collector.get_username())
        modeladmin.message_user(
            request, _("%(case)s assigned to %(user)s.")
            % {"case": case, "user": collector.get_username()}, messages.SUCCESS,
        )


@admin.action(description=gettext_lazy("Add a note"), permissions=["change"])
def add_note(modeladmin, request, queryset):
    form, page = ask(
        modeladmin, request, queryset, NoteForm, action="add_note",
        title=_("Add a note"), submit=_("Add note"),
    )
    if page is not None:
        return page
    for case in queryset:
        record(case, CaseEvent.Kind.NOTE, request, form.cleaned_data["text"])
        modeladmin.message_user(request, _("Note added to %(case)s.") % {"case": case},
                                messages.SUCCESS)


@admin.action(description=gettext_lazy("Log a call"), permissions=["change"])
def log_call(modeladmin, request, queryset):
    form, page = ask(
        modeladmin, request, queryset, CallForm, action="log_call",
        title=_("Log a call"), submit=_("Log call"),
    )
    if page is not None:
        return page
    outcome = form.cleaned_data["outcome"]
    label = dict(CallForm.OUTCOMES)[outcome]
    for case in queryset:
        record(case, CaseEvent.Kind.CALL, request, form.cleaned_data["text"], outcome=outcome)
        modeladmin.message_user(
            request, _("Call logged on %(case)s: %(outcome)s.") % {"case": case, "outcome": label},
            messages.SUCCESS,
        )


@admin.action(description=gettext_lazy("Pause dunning"), permissions=["change"])
def pause(modeladmin, request, queryset):
    form, page = ask(
        modeladmin, request, queryset, PauseForm, action="pause",
        title=_("Pause dunning"), submit=_("Pause"),
        intro=_("A paused case gets no dunning step until the pause ends or someone "
                    "resumes it."),
    )
    if page is not None:
        return page
    reason, until = form.cleaned_data["reason"], form.cleaned_data["until"]
    for case in queryset:
        if not only_open(modeladmin, request, case):
            continue
        with transaction.atomic():
            Case.objects.filter(pk=case.pk).update(
                paused_until=until or PAUSED_INDEFINITELY, pause_reason=reason,
                next_due_on=recheck_from(case),
            )
            record(case, CaseEvent.Kind.PAUSED, request, reason,
                   until=until.isoformat() if until else None)
        if until:
            text = _("%(case)s paused until %(date)s.") % {"case": case, "date": until.isoformat()}
        else:
            text = _("%(case)s paused until further notice.") % {"case": case}
        modeladmin.message_user(request, text, messages.SUCCESS)


@admin.action(description=gettext_lazy("Resume dunning"), permissions=["change"])
def resume(modeladmin, request, queryset):
    for case in queryset:
        if not only_open(modeladmin, request, case):
            continue
        if case.paused_until is None:
            modeladmin.message_user(request, _("%(case)s is not paused.") % {"case": case},
                                    messages.WARNING)
            continue
        with transaction.atomic():
            Case.objects.filter(pk=case.pk).update(
                paused_until=None, pause_reason="", next_due_on=recheck_from(case)
            )
            record(case, CaseEvent.Kind.RESUMED, request)
        modeladmin.message_user(request, _("%(case)s resumed.") % {"case": case},
                                messages.SUCCESS)


@admin.action(description=gettext_lazy("Escalate to a person"), permissions=["change"])
def escalate(modeladmin, request, queryset):
    for case in queryset:
        if not only_open(modeladmin, request, case):
            continue
        with transaction.atomic():
            Case.objects.filter(pk=case.pk).update(needs_person=True)
            record(case, CaseEvent.Kind.ESCALATED, request)
        modeladmin.message_user(request, _("%(case)s escalated to a person.") % {"case": case},
                                messages.SUCCESS)


def send_written_off(case):
    for receiver, response in signals.case_written_off.send_robust(
        sender=Case, case=case, customer=case.customer
    ):
        if isinstance(response, Exception):
            logger.error("case_written_off receiver %r failed for case %s", receiver, case.pk,
                         exc_info=response)
            CaseEvent.objects.create(
                case=case, kind=CaseEvent.Kind.SIGNAL_ERROR, created_at=timezone.now(),
                message=f"case_written_off: {type(response).__name__}: {response}"[:2000],
            )


@admin.action(description=gettext_lazy("Write off"), permissions=["write_off"])
def write_off(modeladmin, request, queryset):
    if not modeladmin.has_write_off_permission(request):  # belt and braces
        modeladmin.message_user(request, _("You may not write off cases."), messages.ERROR)
        return None
    form, page = ask(
        modeladmin, request, queryset, WriteOffForm, action="write_off",
        title=_("Write off cases"), submit=_("Yes, write them off"), danger=True,
        intro=_("Written-off cases are closed for good: their invoices get no further "
                    "dunning message. This cannot be undone here."),
    )
    if page is not None:
        return page
    reason = form.cleaned_data["reason"]
    today = timezone.localdate()
    adapter = get_adapter()
    for case in queryset.select_related("customer"):
        if not only_open(modeladmin, request, case):
            continue
        with transaction.atomic():
            updated = Case.objects.filter(pk=case.pk, status=Case.Status.OPEN).update(
                status=Case.Status.WRITTEN_OFF, closed_on=today, next_due_on=None,
            )
            if not updated:
                continue
            # Link the invoices the case covered, as a termination does, so that they
            # are not dunned again in a new case.
            invoice_pks = adapter.overdue_invoices(today + datetime.timedelta(days=1)).filter(
                **{adapter.customer_annotation: case.customer_id}
            ).values_list("pk", flat=True)
            CaseInvoice.objects.bulk_create(
                [CaseInvoice(case=case, invoice_id=pk) for pk in invoice_pks],
                ignore_conflicts=True,
            )
            record(case, CaseEvent.Kind.WRITTEN_OFF, request, reason)
            case.status, case.closed_on, case.next_due_on = Case.Status.WRITTEN_OFF, today, None
            transaction.on_commit(lambda case=case: send_written_off(case))
        modeladmin.message_user(request, _("%(case)s written off.") % {"case": case},
                                messages.SUCCESS)
    return None


@admin.action(description=gettext_lazy("Record a promise to pay"), permissions=["change"])
def record_promise(modeladmin, request, queryset):
    form, page = ask(
        modeladmin, request, queryset, PromiseForm, action="record_promise",
        title=_("Record a promise to pay"), submit=_("Record promise"),
        intro=_("Dunning pauses until %(days)s days after the promised date; if the "
                    "invoices are not paid by then, it goes on by itself.")
        % {"days": PROMISE_GRACE_DAYS},
    )
    if page is not None:
        return page
    date, amount = form.cleaned_data["date"], form.cleaned_data["amount"]
    until = date + datetime.timedelta(days=PROMISE_GRACE_DAYS)
    for case in queryset:
        if not only_open(modeladmin, request, case):
            continue
        # A promise never shortens a longer pause (a dispute, a pause until further notice).
        paused_until = max(until, case.paused_until) if case.paused_until else until
        with transaction.atomic():
            Case.objects.filter(pk=case.pk).update(
                promised_on=date, promised_amount=amount,
                paused_until=paused_until, next_due_on=paused_until,
            )
            record(case, CaseEvent.Kind.PROMISE, request,
                   _("Promised to pay %(amount)s by %(date)s.")
                   % {"amount": amount, "date": date.isoformat()},
                   date=date.isoformat(), amount=str(amount))
        modeladmin.message_user(
            request, _("Promise to pay %(amount)s by %(date)s recorded on %(case)s.")
            % {"case": case, "amount": amount, "date": date.isoformat()}, messages.SUCCESS,
        )


@admin.action(description=gettext_lazy("Open a dispute"), permissions=["change"])
def open_dispute(modeladmin, request, queryset):
    form, page = ask(
        modeladmin, request, queryset, DisputeForm, action="open_dispute",
        title=_("Open a dispute"), submit=_("Open dispute"),
        intro=_("A disputed case gets no dunning step until its disputes are resolved."),
    )
    if page is not None:
        return page
    number, reason = form.cleaned_data["invoice_number"], form.cleaned_data["reason"]
    actor = request.user if request.user.is_authenticated else None
    for case in queryset:
        if not only_open(modeladmin, request, case):
            continue
        with transaction.atomic():
            dispute = Dispute.objects.create(
                case=case, invoice_number=number, reason=reason, opened_by=actor
            )
            Case.objects.filter(pk=case.pk).update(
                paused_until=PAUSED_INDEFINITELY, next_due_on=recheck_from(case)
            )
            record(case, CaseEvent.Kind.DISPUTE, request, reason,
                   dispute=dispute.pk, invoice_number=number)
        modeladmin.message_user(
            request, _("Dispute about %(invoice)s opened on %(case)s; dunning is paused.")
            % {"case": case, "invoice": number}, messages.SUCCESS,
        )


@admin.action(description=gettext_lazy("Resolve disputes"), permissions=["change"])
def resolve_disputes(modeladmin, request, queryset):
    form, page = ask(
        modeladmin, request, queryset, ResolveDisputesForm,
        action="resolve_disputes", title=_("Resolve disputes"), submit=_("Resolve"),
        intro=_("Resolves every open dispute of the selected cases; dunning then "
                    "goes on."),
    )
    if page is not None:
        return page
    resolution = form.cleaned_data["resolution"]
    for case in queryset:
        with transaction.atomic():
            resolved = Dispute.objects.filter(case=case, resolved_at__isnull=True).update(
                resolved_at=timezone.now(), resolution=resolution
            )
            if not resolved:
                text = _("%(case)s has no open dispute.") % {"case": case}
                level = messages.WARNING
            else:
                if case.is_open and not case.disputes.filter(resolved_at__isnull=True).exists():
                    Case.objects.filter(pk=case.pk).update(
                        paused_until=None, next_due_on=recheck_from(case)
                    )
                record(case, CaseEvent.Kind.DISPUTE_RESOLVED, request, resolution,
                       resolved=resolved)
                text = _("%(count)s dispute(s) resolved on %(case)s.") % {
                    "case": case, "count": resolved}
                level = messages.SUCCESS
        modeladmin.message_user(request, text, level)


#: Why "send the next step now" left a case alone (see dunning.engine.manual).
SEND_NOW_REFUSED = {
    manual.REFUSED_DONE: gettext_lazy("%(case)s has no step left to send."),
    manual.REFUSED_TODAY: gettext_lazy("%(case)s already had a step today; one a day is the most."),
    manual.REFUSED_PAUSED: gettext_lazy("%(case)s is paused; resume it first."),
    manual.REFUSED_MINIMUM: gettext_lazy("%(case)s owes less than its policy's minimum balance."),
}


@admin.action(description=gettext_lazy("Send the next step now"), permissions=["send_by_hand"])
def send_now(modeladmin, request, queryset):
    """The policy's next step of each selected open case, today, whatever its schedule
    says (a dunning run over these cases only: see dunning.engine.manual)."""
    if not modeladmin.has_send_by_hand_permission(request):  # belt and braces
        modeladmin.message_user(request, _("You may not send steps by hand."), messages.ERROR)
        return
    cases = {case.pk: case for case in queryset}
    for case in cases.values():
        if case.status != Case.Status.OPEN:
            only_open(modeladmin, request, case)
    actor = request.user if request.user.is_authenticated else None
    run = manual.send_next_step_now(
        [pk for pk, case in cases.items() if case.status == Case.Status.OPEN], actor=actor
    )
    for pk, why in run.refused.items():
        modeladmin.message_user(request, SEND_NOW_REFUSED[why] % {"case": cases[pk]},
                                messages.WARNING)
    failures = dict(run.result.failures)
    sent = CaseStep.objects.filter(run=run.run, case_id__in=list(cases)).select_related("case")
    for step in sent:
        if step.case_id in failures or step.status == CaseStep.Status.FAILED:
            modeladmin.message_user(
                request, _("Step %(step)s of %(case)s could not be sent: %(reason)s")
                % {"step": step.step_key, "case": cases[step.case_id],
                   "reason": failures.get(step.case_id) or step.reason},
                messages.ERROR,
            )
        else:
            modeladmin.message_user(
                request, _("Step %(step)s sent to %(case)s.")
                % {"step": step.step_key, "case": cases[step.case_id]}, messages.SUCCESS,
            )
    if run.result.resolved:
        modeladmin.message_user(
            request, _("%(count)s case(s) were paid already and are now resolved.")
            % {"count": run.result.resolved}, messages.INFO,
        )


class BrokenPromiseFilter(admin.SimpleListFilter):
    """Open cases whose promised payment date has passed (paid cases are resolved by
    the run, so an open case is still owing)."""

    title = gettext_lazy("Broken promise")
    parameter_name = "broken_promise"

    def lookups(self, request, model_admin):
        return [("yes", _("Yes"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(status=Case.Status.OPEN,
                                   promised_on__lt=timezone.localdate())
        return queryset


WORKBENCH_ACTIONS = [assign, add_note, log_call, pause, resume, escalate, send_now, write_off,
                     record_promise, open_dispute, resolve_disputes]


class WorkbenchMixin:
    """Permission checks of the workbench actions, for the CaseAdmin."""

    def has_write_off_permission(self, request, obj=None):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.write_off")

    def has_send_by_hand_permission(self, request, obj=None):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.send_by_hand")
