"""Admin of policies, their steps and message templates, and the policy simulator.

Who may change what: the permission ``dunning.edit_policy`` ("Can edit dunning policies,
steps and message templates") is the one switch for writing. Adding, changing and deleting
a policy, its steps (the inline) and its message templates, importing them, and resetting a
template to the shipped text all need it; Django's own add/change/delete permissions of
these three models are ignored (neither needed nor enough), so that one permission, not
nine, decides who edits dunning. Seeing them needs ``view_policy`` (policies and their
steps) or ``view_messagetemplate`` (templates), or ``edit_policy``; a user with view
permissions only gets read-only pages, and a forged POST is refused (403). Superusers have
every permission. Exports need the view permission.

The policy simulator (``<policy>/simulate/``, the "Simulate" button of the change page)
needs the view permission: it reads, never writes.
"""

import datetime

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV, JSON, XLSX

from ..engine.simulate import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MIN_DAYS,
    SimulationError,
    check_days,
    simulate,
)
from ..exceptions import DunningError
from ..inputs import parse_day
from ..models import MessageTemplate, Policy, PolicyRule, RetryStep, Step
from ..models.policy import validate_step_sequence
from ..shipped import shipped_message
from .preview import preview_view
from .resources import MessageTemplateResource, PolicyCSV, PolicyResource

EDIT_POLICY = "dunning.edit_policy"


def can_edit_policies(request):
    """True when the user may edit policies, steps and templates (superusers may)."""
    user = request.user
    return user.is_active and user.has_perm(EDIT_POLICY)


class EditPolicyPermissions:
    """Add, change and delete need ``dunning.edit_policy`` (see the module docstring)."""

    #: The view permissions that let a user see these pages read-only.
    view_permissions = ()

    def has_view_permission(self, request, obj=None):
        user = request.user
        return (
            can_edit_policies(request)
            or any(user.has_perm(f"dunning.{codename}") for codename in self.view_permissions)
            or super().has_view_permission(request, obj)
        )

    def has_add_permission(self, request, *args):
        return can_edit_policies(request)

    def has_change_permission(self, request, obj=None):
        return can_edit_policies(request)

    def has_delete_permission(self, request, obj=None):
        return can_edit_policies(request)

    def has_edit_policy_permission(self, request):
        """For ``@admin.action(permissions=["edit_policy"])``."""
        return can_edit_policies(request)

    def has_import_permission(self, request):
        return can_edit_policies(request)

    def has_export_permission(self, request):
        return self.has_view_or_change_permission(request)


class StepFormSet(BaseInlineFormSet):
    """Checks the steps of a policy as a whole (see validate_step_sequence)."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        steps = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("key"):
                continue
            steps.append((data["key"], data.get("offset_days"), data.get("action") or ""))
        validate_step_sequence(steps)

    def validate_unique(self):
        # validate_step_sequence reports duplicate keys and offsets in plain words.
        pass


class StepInline(EditPolicyPermissions, admin.TabularInline):
    view_permissions = ("view_policy", "view_step")
    model = Step
    formset = StepFormSet
    extra = 0
    fields = ["key", "offset_days", "channel", "fallback_channel", "action", "agency",
              "required", "free_of_charge", "fee_rule"]
    ordering = ["offset_days"]


class RetryStepInline(EditPolicyPermissions, admin.TabularInline):
    """The policy's payment retries (dunning.payments): days after a failed payment."""

    view_permissions = ("view_policy", "view_retrystep")
    model = RetryStep
    extra = 0
    fields = ["key", "offset_days"]
    ordering = ["offset_days"]


def in_use_message(policy, count):
    if count == 1:
        text = _("The policy '%(name)s' is used by 1 case and cannot be deleted; deactivate "
                 "it instead.")
    else:
        text = _("The policy '%(name)s' is used by %(count)d cases and cannot be deleted; "
                 "deactivate it instead.")
    return text % {"name": policy.name, "count": count}


@admin.action(permissions=["delete"], description=gettext_lazy("Delete selected policies"))
def delete_selected(modeladmin, request, queryset):
    """Django's bulk delete, refusing when a selected policy is in use."""
    in_use = modeladmin.policies_in_use(queryset)
    if in_use:
        for policy in in_use:
            modeladmin.message_user(request, in_use_message(policy, policy.case_count),
                                    messages.ERROR)
        return None
    return django_delete_selected(modeladmin, request, queryset)


@admin.register(Policy)
class PolicyAdmin(EditPolicyPermissions, ImportExportMixin, admin.ModelAdmin):
    view_permissions = ("view_policy",)
    # Adds a "Simulate" link to the object tools of the change form.
    change_form_template = "dunning/admin/simulate_change_form.html"
    # Steps and templates travel with their policy (JSON columns of PolicyResource).
    resource_classes = [PolicyResource]
    # No XLSX: the templates column of a policy outgrows a spreadsheet cell (32,767
    # characters); templates alone travel as XLSX through MessageTemplateAdmin.
    import_formats = [PolicyCSV, JSON]
    export_formats = [PolicyCSV, JSON]
    list_display = ["name", "key", "is_active", "min_gap_days", "grace_days"]
    list_filter = ["is_active"]
    search_fields = ["name", "key"]
    fieldsets = [
        (None, {"fields": ["key", "name", "description", "is_active", "min_gap_days",
                           "grace_days", "minimum_balance"]}),
        (gettext_lazy("Compliance guards"), {
            "classes": ["collapse"],
            "description": gettext_lazy("When and how often customers are contacted (see "
                             "docs/compliance.md)."),
            "fields": ["quiet_hours", "frequency_caps", "exclude_weekends", "weekend_days",
                       "holidays", "regulation_f"],
        }),
        (gettext_lazy("Fees and interest"), {
            "classes": ["collapse"],
            "description": gettext_lazy("Charged with each reminder, listed in the message "
                             "and handed to your invoicing (see docs/fees.md)."),
            "fields": ["fee_rule", "interest_rule", "business_debtors"],
        }),
    ]
    inlines = [StepInline, RetryStepInline]
    actions = [delete_selected]

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Ours replaces Django's site-wide action of the same name.
        if "delete_selected" in actions and self.has_delete_permission(request):
            actions["delete_selected"] = (
                delete_selected, "delete_selected", delete_selected.short_description
            )
        return actions

    @staticmethod
    def policies_in_use(queryset):
        return list(
            queryset.annotate(case_count=Count("cases")).filter(case_count__gt=0).order_by("key")
        )

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.cases.exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and super().has_delete_permission(request, obj):
            count = obj.cases.count()
            if count:
                self.message_user(request, in_use_message(obj, count), messages.ERROR)
                return HttpResponseRedirect(
                    reverse("admin:dunning_policy_change", args=[obj.pk],
                            current_app=self.admin_site.name)
                )
        return super().delete_view(request, object_id, extra_context)

    def delete_queryset(self, request, queryset):
        in_use = self.policies_in_use(queryset)
        for policy in in_use:
            self.message_user(request, in_use_message(policy, policy.case_count), messages.ERROR)
        queryset.filter(~Q(pk__in=[p.pk for p in in_use])).delete()

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/simulate/",
                self.admin_site.admin_view(self.simulate_view),
                name=f"{opts.app_label}_{opts.model_name}_simulate",
            ),
            *super().get_urls(),
        ]

    def simulate_view(self, request, object_id):
        return simulate_view(self, request, object_id)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(EditPolicyPermissions, ImportExportMixin, admin.ModelAdmin):
    view_permissions = ("view_messagetemplate",)
    resource_classes = [MessageTemplateResource]
    import_formats = [CSV, XLSX, JSON]
    export_formats = [CSV, XLSX, JSON]
    # variant and weight: A/B variants of a step's message (dunning.variants).
    list_display = ["step_key", "variant", "weight", "language", "channel", "policy", "subject",
                    "updated_at"]
    list_filter = ["policy", "channel", "language", "step_key", "variant"]
    search_fields = ["subject", "step_key", "variant"]
    actions = ["reset_to_shipped"]
    # Adds a "Preview" link to the object tools of the change form.
    change_form_template = "dunning/admin/preview_change_form.html"

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name=f"{opts.app_label}_{opts.model_name}_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request, object_id):
        return preview_view(self, request, object_id)

    @admin.action(permissions=["edit_policy"],
                  description=gettext_lazy("Reset to the shipped text"))
    def reset_to_shipped(self, request, queryset):
        if not can_edit_policies(request):  # belt and braces: the action is not offered
            raise PermissionDenied
        for template in queryset.order_by("policy", "step_key", "language"):
            shipped = shipped_message(template.language.lower(), template.step_key,
                                      template.channel)
            if shipped is None:
                self.message_user(
                    request,
                    _("%(template)s: there is no shipped text for this step and language; "
                      "left unchanged.") % {"template": template},
                    messages.WARNING,
                )
                continue
            template.subject, template.text_body, template.html_body = shipped
            template.save(update_fields=["subject", "text_body", "html_body", "updated_at"])
            self.message_user(
                request,
                _("%(template)s: reset to the shipped text.") % {"template": template},
                messages.SUCCESS,
            )


# -- the simulator --------------------------------------------------------------------------
CHART_BAR_WIDTH = 300  # px of the longest bar
CHART_BAR_HEIGHT = 14
CHART_LABEL_WIDTH = 170
CHART_GROUP_GAP = 12
CHART_LEGEND_HEIGHT = 24


def comparison_chart(rows):
    """SVG geometry for pairs of horizontal bars (draft above live), one pair per row:
    rows are (label, draft, live)."""
    largest = max([max(draft, live) for _label, draft, live in rows] + [0])
    group = 2 * CHART_BAR_HEIGHT + 2 + CHART_GROUP_GAP
    bars = []
    for index, (label, draft, live) in enumerate(rows):
        y = CHART_LEGEND_HEIGHT + index * group
        pair = []
        for offset, value, kind in ((0, draft, "draft"), (CHART_BAR_HEIGHT + 2, live, "live")):
            width = round(CHART_BAR_WIDTH * value / largest) if largest else 0
            pair.append({
                "kind": kind, "value": value, "y": y + offset, "width": width,
                "text_y": y + offset + CHART_BAR_HEIGHT - 3,
                "value_x": CHART_LABEL_WIDTH + width + 6,
            })
        bars.append({"label": label, "label_y": y + CHART_BAR_HEIGHT + 4, "pair": pair})
    return {
        "groups": bars,
        "label_width": CHART_LABEL_WIDTH,
        "bar_height": CHART_BAR_HEIGHT,
        "legend_live_x": CHART_LABEL_WIDTH + 120,
        "width": CHART_LABEL_WIDTH + CHART_BAR_WIDTH + 80,
        "height": CHART_LEGEND_HEIGHT + max(len(rows), 1) * group,
    }


def _signed(number):
    return f"+{number}" if number > 0 else ("−" + str(-number) if number < 0 else "0")


def simulate_view(model_admin, request, object_id):
    """GET: what this policy would have sent over the last ?days= days (default 90, up to
    ?as_of=, default today) to the live policy's cases, beside what the live policy sent."""
    opts = model_admin.model._meta
    policy = model_admin.get_object(request, unquote(object_id))
    if policy is None:
        return model_admin._get_obj_does_not_exist_redirect(request, opts, object_id)
    if not model_admin.has_view_or_change_permission(request, policy):
        raise PermissionDenied
    raw_days = request.GET.get("days", "").strip()
    days, error, result, status = DEFAULT_DAYS, "", None, 200
    if raw_days:
        try:
            days = check_days(raw_days)
        except SimulationError:
            error = _("The number of days must be a whole number from %(min)s to %(max)s, "
                      "not '%(value)s'.") % {"min": MIN_DAYS, "max": MAX_DAYS, "value": raw_days}
            status = 400
    as_of, raw_as_of = None, request.GET.get("as_of", "").strip()
    if raw_as_of and not error:
        try:
            as_of = parse_day(raw_as_of)
        except ValueError as exc:
            error = str(exc)
            status = 400
    if not error:
        try:
            result = simulate(policy, days, as_of)
        except DunningError as exc:
            error = str(exc)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "original": policy,
        "title": _("Simulate %(policy)s") % {"policy": policy.name},
        "days": raw_days if error and raw_days else days,
        "as_of": raw_as_of,
        "min_days": MIN_DAYS,
        "max_days": MAX_DAYS,
        "error": error,
        "result": result,
    }
    if result is not None:
        summary = [
            (_("Messages"), "total"),
            (_("Cases messaged"), "cases_messaged"),
            (_("Suspensions"), "suspended"),
            (_("Terminations"), "terminated"),
        ]
        context.update({
            "start": datetime.date.fromisoformat(result["start"]),
            "end": datetime.date.fromisoformat(result["end"]),
            "summary": [
                {"label": label, "name": name, "draft": result["draft"][name],
                 "live": result["live"][name], "difference": _signed(result["difference"][name])}
                for label, name in summary
            ],
            "steps": [{**row, "signed": _signed(row["difference"])} for row in result["steps"]],
            "weeks": [
                {**row, "monday": datetime.date.fromisoformat(row["week"]),
                 "signed": _signed(row["draft"] - row["live"])}
                for row in result["weeks"]
            ],
            "chart": comparison_chart(
                [(row["step_key"], row["draft"], row["live"]) for row in result["steps"]]
            ),
            "is_live_policy": result["policy"]["key"] == result["live_policy"]["key"],
        })
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "dunning/admin/simulate.html", context, status=status)


__all__ = ["MessageTemplateAdmin", "PolicyAdmin", "StepInline", "can_edit_policies",
           "simulate_view"]


@admin.register(PolicyRule)
class PolicyRuleAdmin(EditPolicyPermissions, admin.ModelAdmin):
    """Which policy a new case gets (dunning.segments): tried by priority, first match."""

    view_permissions = ("view_policyrule",)
    list_display = ["priority", "name", "policy", "is_active", "currency", "min_amount",
                    "max_amount", "segments", "history", "assign_to"]
    list_display_links = ["name"]
    list_editable = ["priority", "is_active"]
    list_filter = ["is_active", "policy", "history"]
    search_fields = ["name"]
    autocomplete_fields = []
    raw_id_fields = ["assign_to"]
    fieldsets = [
        (None, {"fields": ["name", "priority", "is_active", "policy", "assign_to"]}),
        (gettext_lazy("Conditions (all must hold)"), {
            "fields": ["currency", "min_amount", "max_amount", "segments", "history",
                       "min_risk", "max_risk"]}),
    ]
