"""Django admin for django-dunning: policies, templates, cases and their timeline.

(The collections workbench, previews and the dashboard build on this.)"""

from django.contrib import admin
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV, XLSX

from ..engine import actions as services
from ..hosts import get_customer_model, get_invoice_model
from ..models import (
    Case,
    CaseCharge,
    CaseEvent,
    CaseStep,
    ChannelBreaker,
    Customer,
    Dispute,
    Invoice,
    Run,
)
from . import agency as agency_admin  # noqa: F401 (registers the cases at agencies)
from . import caselist, casepage, dashboard, delivery, payments, portal, views, workbench  # noqa: F401 (delivery, payments register)
from . import letters as letters_admin  # registers the letter admin; the case page's letters
from . import notices as notices_admin  # noqa: F401 (registers the notice admin)
from . import webhooks as webhooks_admin  # noqa: F401 (registers the webhook admins)
from .policy import MessageTemplateAdmin, PolicyAdmin, StepInline
from .readonly import ReadOnlyAdminMixin
from .resources import CustomerResource, InvoiceResource, export_cases_csv

__all__ = ["CaseAdmin", "MessageTemplateAdmin", "PolicyAdmin", "StepInline"]


class DisputeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Dispute
    extra = 0
    fields = ["invoice_number", "reason", "opened_at", "opened_by", "resolved_at", "resolution"]
    readonly_fields = fields


class CaseChargeInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Reminder fees and interest the case was charged (dunning.charging): a record of
    what was handed to the host, never edited."""

    model = CaseCharge
    extra = 0
    fields = ["created_at", "step_key", "kind", "invoice_number", "amount", "currency",
              "period_start", "period_end", "rate"]
    readonly_fields = fields


@admin.register(Case)
class CaseAdmin(workbench.WorkbenchMixin, admin.ModelAdmin):
    list_display = ["pk", "customer", "status", "amount_overdue", "days_overdue",
                    "last_step_key", "last_step_on", "next_due_on", "suspended", "needs_person",
                    "paused_until", "assigned_to", "policy", "opened_on"]
    list_filter = ["status", "needs_person", "suspended", "policy", "last_step_key",
                   "assigned_to", caselist.DaysOverdueFilter, caselist.AmountFilter,
                   caselist.CurrencyFilter, workbench.BrokenPromiseFilter,
                   caselist.DisputeFilter,
                   caselist.CallQueueFilter, "agency", "agency_status"]
    list_select_related = ["customer", "policy", "assigned_to"]
    # Searched by search_cases (customer name and email through the field mapping,
    # invoice numbers, case number); the admin shows its search box when this is set.
    search_fields = ["pk"]
    search_help_text = gettext_lazy(
        "Customer name or email, invoice number, or case number."
    )
    # A case changes state through the run and the workbench actions only (each with its
    # rules, permission, timeline entry and signal); the form edits the policy and the
    # "needs a person" flag, nothing else.
    readonly_fields = ["customer", "status", "opened_on", "opened_at", "opened_in",
                       "closed_on", "last_step_key", "last_step_on", "next_due_on",
                       "suspended", "updated_at", "assigned_to", "paused_until",
                       "pause_reason", "promised_on", "promised_amount"]
    actions = [workbench.assign, workbench.add_note, workbench.log_call, workbench.pause,
               workbench.resume, workbench.escalate, workbench.send_now, workbench.write_off,
               workbench.record_promise, workbench.open_dispute, workbench.resolve_disputes,
               portal.revoke_portal_links, export_cases_csv]
    date_hierarchy = "opened_on"
    inlines = [DisputeInline, CaseChargeInline]
    change_list_template = "dunning/admin/case_change_list.html"
    change_form_template = "dunning/admin/case_change_form.html"

    def has_add_permission(self, request):
        return False  # the run opens cases

    def has_delete_permission(self, request, obj=None):
        # A case is the root of its audit trail (steps, events, letters...): never deleted
        # in the admin. A data-protection request: `manage.py dunning erase` (docs/privacy.md).
        return False

    def get_queryset(self, request):
        return caselist.annotate_owing(super().get_queryset(request))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "policy" in form.changed_data:
            services.record(obj, CaseEvent.Kind.NOTE, request.user,
                             _("Policy changed to %(policy)s.") % {"policy": obj.policy},
                             policy=obj.policy.key)

    def get_search_results(self, request, queryset, search_term):
        return caselist.search_cases(queryset, search_term), False

    @admin.display(description=gettext_lazy("amount overdue"), ordering=caselist.AMOUNT)
    def amount_overdue(self, case):
        return caselist.amount_display(case)

    @admin.display(description=gettext_lazy("days overdue"), ordering=caselist.OLDEST_DUE)
    def days_overdue(self, case):
        days = caselist.days_overdue(case)
        return "-" if days is None else days

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        # A redirect (after an action) or an error page has no change list to total.
        cl = (getattr(response, "context_data", None) or {}).get("cl")
        if cl is not None:
            response.context_data["dunning_totals"] = caselist.totals(cl.queryset)
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        case = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if case is not None:
            extra_context.update(
                timeline=sorted(
                    casepage.timeline(case) + letters_admin.case_letter_entries(case, request),
                    key=lambda entry: entry["at"]),
                case_buttons=casepage.buttons(self, request, case),
                case_owing=caselist.totals(Case.objects.filter(pk=case.pk)),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("tomorrow/", wrap(lambda request: views.plan_view(self, request)),
                 name="dunning_case_plan"),
            path("dashboard/", wrap(lambda request: dashboard.dashboard_view(self, request)),
                 name="dunning_case_dashboard"),
            path("<int:case_id>/hold-back/",
                 wrap(lambda request, case_id: views.hold_back_view(self, request, case_id)),
                 name="dunning_case_hold_back"),
            path("<int:case_id>/act/<str:action>/",
                 wrap(lambda request, case_id, action: casepage.act_view(
                     self, request, case_id, action)),
                 name="dunning_case_act"),
            *super().get_urls(),
        ]


@admin.register(CaseStep)
class CaseStepAdmin(delivery.OutboxActionsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Actions for steps in state "unknown" and their permission: see delivery.py.
    list_display = ["case", "step_key", "executed_on", "recipient", "status", "reason",
                    "attempts", "next_attempt_at"]
    list_filter = ["status", "step_key", "channel"]
    search_fields = ["recipient", "step_key"]
    list_select_related = ["case"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # "Abandoned": the run's process stopped without recording an end (its lease ran out).
    list_display = ["as_of", "status", "started_at", "finished_at", "lease_expires_at", "host",
                    "summary"]
    list_filter = ["status", "as_of"]


@admin.register(ChannelBreaker)
class ChannelBreakerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: which channel's provider cannot be reached, and until when its messages
    wait (dunning.engine.breaker)."""

    list_display = ["channel", "failures", "open_until", "reason", "changed_at"]

    def has_delete_permission(self, request, obj=None):
        # Deleting the row closes the breaker at once (the provider is known to be back).
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def delete_model(self, request, obj):
        self.delete_queryset(request, type(obj)._default_manager.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        from django.utils import timezone

        from ..engine.breaker import release

        for breaker in queryset:
            release(breaker, timezone.now())
        super().delete_queryset(request, queryset)


# The shipped default models, when the host has not swapped them.
if get_customer_model() is Customer:

    @admin.register(Customer)
    class CustomerAdmin(ImportExportMixin, admin.ModelAdmin):
        resource_classes = [CustomerResource]
        import_formats = [CSV, XLSX]
        export_formats = [CSV, XLSX]
        list_display = ["name", "email", "language", "timezone"]
        search_fields = ["name", "email"]


if get_invoice_model() is Invoice:

    @admin.register(Invoice)
    class InvoiceAdmin(ImportExportMixin, admin.ModelAdmin):
        # Invoices name their customer by email address (column customer_email).
        resource_classes = [InvoiceResource]
        import_formats = [CSV, XLSX]
        export_formats = [CSV, XLSX]
        list_display = ["number", "customer", "amount_due", "currency", "due_date"]
        list_filter = ["currency"]
        search_fields = ["number"]
        raw_id_fields = ["customer"]
        date_hierarchy = "due_date"

