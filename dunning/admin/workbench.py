"""The collections workbench: what a collector does with cases in the admin.

Every action works on the cases selected in the case changelist, reports per case with
``message_user`` and records a :class:`~dunning.models.CaseEvent` with the acting user on
the case's timeline. Actions that need input (a collector, a note, a call's outcome, a
pause reason, a write-off reason) show an intermediate page first.

What an action does to a case, and when it refuses, is ``dunning.services`` (the REST API
calls the same functions); this module is the admin's forms, pages and messages.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..conf import dunning_settings
from ..engine import actions as services
from ..engine import ondemand
from ..inputs import MAX_NOTE_LENGTH
from ..models import CaseStep
from ..queries import broken_promises, call_block, queue_call_blocks

# The rules live in dunning.services (shared with the REST API); re-exported here.
PAUSED_INDEFINITELY = services.PAUSED_INDEFINITELY
PROMISE_GRACE_DAYS = services.PROMISE_GRACE_DAYS


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
    text = forms.CharField(label=gettext_lazy("Note"), max_length=MAX_NOTE_LENGTH,
                           widget=forms.Textarea(attrs={"rows": 4}))


class CallForm(forms.Form):
    OUTCOMES = services.CALL_OUTCOMES
    outcome = forms.ChoiceField(label=gettext_lazy("Outcome"), choices=OUTCOMES)
    inbound = forms.BooleanField(
        label=gettext_lazy("The customer called us"), required=False,
        help_text=gettext_lazy("An inbound call is no call attempt under Regulation F (a "
                               "conversation still counts)."),
    )
    text = forms.CharField(
        label=gettext_lazy("Notes"), required=False, max_length=MAX_NOTE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4})
    )


class PauseForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=MAX_NOTE_LENGTH,
                             widget=forms.Textarea(attrs={"rows": 3}))
    until = forms.DateField(
        label=gettext_lazy("Paused until"),
        required=False,
        help_text=gettext_lazy("Leave empty to pause until someone resumes the case."),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_until(self):
        return services.check_pause_until(self.cleaned_data["until"])


class WriteOffForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=MAX_NOTE_LENGTH,
                             widget=forms.Textarea(attrs={"rows": 3}))


class PromiseForm(forms.Form):
    date = forms.DateField(
        label=gettext_lazy("Promised payment date"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    amount = forms.DecimalField(
        label=gettext_lazy("Promised amount"), max_digits=14, decimal_places=2,
    )

    def clean_date(self):
        return services.check_promise_date(self.cleaned_data["date"])

    def clean_amount(self):
        return services.check_promise_amount(self.cleaned_data["amount"])


class DisputeForm(forms.Form):
    invoice_number = forms.CharField(label=gettext_lazy("Invoice number"), max_length=255)
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=MAX_NOTE_LENGTH,
                             widget=forms.Textarea(attrs={"rows": 3}))


class ResolveDisputesForm(forms.Form):
    resolution = forms.CharField(
        label=gettext_lazy("Resolution"), max_length=MAX_NOTE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3})
    )


# -- helpers ---------------------------------------------------------------------------
def actor_of(request):
    return request.user if request.user.is_authenticated else None


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


def apply(modeladmin, request, operation, case, *args):
    """``operation(case, *args, actor)`` (a dunning.services function); a refusal is
    shown as a warning and gives None."""
    try:
        return operation(case, *args, actor_of(request))
    except services.CaseActionRefused as refused:
        modeladmin.message_user(request, refused.message, messages.WARNING)
        return None


def call_block_message(block):
    """"No call allowed until <local date/time>: <reason>" for a queries.CallBlock."""
    return _("No call allowed until %(when)s (%(zone)s): %(reason)s") % {
        "when": date_format(block.local_allowed_from, "SHORT_DATETIME_FORMAT"),
        "zone": getattr(block.tz, "key", None) or str(block.tz),
        "reason": block.text,
    }


def only_open(modeladmin, request, case):
    try:
        services.require_open(case)
    except services.CaseNotOpen as refused:
        modeladmin.message_user(request, refused.message, messages.WARNING)
        return False
    return True


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
        services.assign(case, collector, actor_of(request))
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
        services.add_note(case, form.cleaned_data["text"], actor_of(request))
        modeladmin.message_user(request, _("Note added to %(case)s.") % {"case": case},
                                messages.SUCCESS)


@admin.action(description=gettext_lazy("Log a call"), permissions=["change"])
def log_call(modeladmin, request, queryset):
    # Regulation F: the cases waiting in the call queue that may not be called now (a
    # call the customer made to us may still be logged: it is no call attempt).
    cases = {case.pk: case for case in queryset}
    blocks = queue_call_blocks(queryset)
    form, page = ask(
        modeladmin, request, queryset, CallForm, action="log_call",
        title=_("Log a call"), submit=_("Log call"),
        intro=" ".join(f"{cases[pk]}: {call_block_message(block)}"
                       for pk, block in sorted(blocks.items()) if pk in cases),
    )
    if page is not None:
        return page
    outcome = form.cleaned_data["outcome"]
    label = dict(CallForm.OUTCOMES)[outcome]
    for case in queryset:
        services.log_call(case, outcome, form.cleaned_data["text"], actor_of(request),
                          inbound=form.cleaned_data["inbound"])
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
        if apply(modeladmin, request, services.pause, case, reason, until) is None:
            continue
        if until:
            text = _("%(case)s paused until %(date)s.") % {"case": case, "date": until.isoformat()}
        else:
            text = _("%(case)s paused until further notice.") % {"case": case}
        modeladmin.message_user(request, text, messages.SUCCESS)


@admin.action(description=gettext_lazy("Resume dunning"), permissions=["change"])
def resume(modeladmin, request, queryset):
    for case in queryset:
        if apply(modeladmin, request, services.resume, case) is None:
            continue
        modeladmin.message_user(request, _("%(case)s resumed.") % {"case": case},
                                messages.SUCCESS)


@admin.action(description=gettext_lazy("Escalate to a person"), permissions=["change"])
def escalate(modeladmin, request, queryset):
    for case in queryset:
        if apply(modeladmin, request, services.escalate, case) is None:
            continue
        modeladmin.message_user(request, _("%(case)s escalated to a person.") % {"case": case},
                                messages.SUCCESS)


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
    for case in queryset.select_related("customer"):
        if not apply(modeladmin, request, services.write_off, case, reason):
            continue
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
    for case in queryset:
        if apply(modeladmin, request, services.record_promise, case, date, amount) is None:
            continue
        modeladmin.message_user(
            request, _("Promise to pay %(amount)s by %(date)s recorded on %(case)s.")
            % {"case": case, "amount": amount, "date": date.isoformat()}, messages.SUCCESS,
        )


@admin.action(description=gettext_lazy("Open a dispute"), permissions=["change"])
def open_dispute(modeladmin, request, queryset):
    texts = {
        "action": "open_dispute", "title": _("Open a dispute"), "submit": _("Open dispute"),
        "intro": _("A disputed invoice is not demanded, listed or charged until the dispute "
                   "is resolved; the rest of the case is dunned as before. An open dispute "
                   "goes to staff (needs a person) after %(days)s days. Name one of the "
                   "case's open invoices.")
        % {"days": dunning_settings.DISPUTE_ESCALATE_AFTER_DAYS},
    }
    form, page = ask(modeladmin, request, queryset, DisputeForm, **texts)
    if page is not None:
        return page
    number, reason = form.cleaned_data["invoice_number"], form.cleaned_data["reason"]
    # Only the case's own open invoices (services.check_dispute_invoice), in one query; a
    # closed case is reported by apply() below.
    owners = services.owners_of_open_invoice(queryset, number)
    for case in queryset:
        if case.is_open and case.customer_id not in owners:
            form.add_error("invoice_number", services.not_open_invoice(case, number))
    if form.errors:
        return intermediate_page(modeladmin, request, queryset, form=form, **texts)
    for case in queryset:
        if apply(modeladmin, request, services.open_dispute, case, number, reason) is None:
            continue
        modeladmin.message_user(
            request, _("Dispute about %(invoice)s opened on %(case)s; that invoice is not "
                       "demanded until the dispute is resolved.")
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
        resolved = apply(modeladmin, request, services.resolve_disputes, case, resolution)
        if resolved is None:
            continue
        modeladmin.message_user(
            request, _("%(count)s dispute(s) resolved on %(case)s.")
            % {"case": case, "count": resolved}, messages.SUCCESS,
        )


#: Why "send the next step now" left a case alone (see dunning.engine.manual).
SEND_NOW_REFUSED = ondemand.SEND_NOW_REFUSED


@admin.action(description=gettext_lazy("Send the next step now"), permissions=["send_by_hand"])
def send_now(modeladmin, request, queryset):
    """The policy's next step of each selected open case, today, whatever its schedule
    says (a dunning run over these cases only: see dunning.engine.manual)."""
    if not modeladmin.has_send_by_hand_permission(request):  # belt and braces
        modeladmin.message_user(request, _("You may not send steps by hand."), messages.ERROR)
        return
    cases = {case.pk: case for case in queryset}
    outcome = ondemand.send_now(list(cases.values()), actor_of(request))
    for case in outcome.not_open:
        only_open(modeladmin, request, case)
    for pk in outcome.refused:
        modeladmin.message_user(request, outcome.refusal_message(cases[pk]), messages.WARNING)
    for sent in outcome.sent:
        step = sent.step
        if sent.failure:
            modeladmin.message_user(
                request, _("Step %(step)s of %(case)s could not be sent: %(reason)s")
                % {"step": step.step_key, "case": cases[step.case_id], "reason": sent.failure},
                messages.ERROR,
            )
        elif step.status == CaseStep.Status.SENT:
            modeladmin.message_user(
                request, _("Step %(step)s sent to %(case)s.")
                % {"step": step.step_key, "case": cases[step.case_id]}, messages.SUCCESS,
            )
        else:  # a transient failure: the outbox tries again later
            modeladmin.message_user(
                request, _("Step %(step)s of %(case)s is queued: the email service failed "
                           "for now, and it will be tried again.")
                % {"step": step.step_key, "case": cases[step.case_id]}, messages.WARNING,
            )
    if outcome.resolved:
        modeladmin.message_user(
            request, _("%(count)s case(s) were paid already and are now resolved.")
            % {"count": outcome.resolved}, messages.INFO,
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
            return broken_promises(queryset)
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

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        """The case page says so when Regulation F allows no call to a case waiting in
        the call queue (``call_block``); the case is the one the page already loaded."""
        block = call_block(obj) if obj is not None else None
        if block is not None:
            context["call_block"] = call_block_message(block)
        return super().render_change_form(request, context, add=add, change=change,
                                          form_url=form_url, obj=obj)
