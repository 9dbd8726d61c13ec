"""Django admin for django-dunning: policies, templates, cases and their timeline.

(The collections workbench, previews and the dashboard build on this.)"""

from django.contrib import admin
from django.urls import path
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV, XLSX

from ..hosts import get_customer_model, get_invoice_model
from ..models import (
    Case,
    CaseEvent,
    CaseStep,
    Customer,
    Dispute,
    Invoice,
    Run,
)
from . import dashboard, delivery, views, workbench  # noqa: F401 (delivery registers)
from .policy import MessageTemplateAdmin, PolicyAdmin, StepInline
from .resources import CustomerResource, InvoiceResource, export_cases_csv

__all__ = ["CaseAdmin", "MessageTemplateAdmin", "PolicyAdmin", "StepInline"]


class ReadOnlyAdminMixin:
    """Log and timeline rows are written by the engine only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CaseStepInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CaseStep
    extra = 0
    fields = ["executed_on", "step_key", "channel", "recipient", "status", "reason", "sent_at"]
    readonly_fields = fields
    ordering = ["created_at", "pk"]


class CaseEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CaseEvent
    extra = 0
    fields = ["created_at", "kind", "message", "actor"]
    readonly_fields = fields


class DisputeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Dispute
    extra = 0
    fields = ["invoice_number", "reason", "opened_at", "opened_by", "resolved_at", "resolution"]
    readonly_fields = fields


@admin.register(Case)
class CaseAdmin(workbench.WorkbenchMixin, admin.ModelAdmin):
    list_display = ["pk", "customer", "status", "last_step_key", "last_step_on", "next_due_on",
                    "suspended", "needs_person", "paused_until", "assigned_to", "policy",
                    "opened_on"]
    list_filter = ["status", "needs_person", "suspended", "policy", "last_step_key",
                   "assigned_to", workbench.BrokenPromiseFilter]
    list_select_related = ["customer", "policy", "assigned_to"]
    raw_id_fields = ["customer"]
    readonly_fields = ["opened_on", "opened_at", "opened_in", "closed_on", "last_step_key",
                       "last_step_on", "updated_at", "assigned_to", "paused_until",
                       "pause_reason", "promised_on", "promised_amount"]
    actions = [workbench.assign, workbench.add_note, workbench.log_call, workbench.pause,
               workbench.resume, workbench.escalate, workbench.write_off,
               workbench.record_promise, workbench.open_dispute, workbench.resolve_disputes,
               export_cases_csv]
    date_hierarchy = "opened_on"
    inlines = [CaseStepInline, CaseEventInline, DisputeInline]
    change_list_template = "dunning/admin/case_change_list.html"

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
            *super().get_urls(),
        ]


@admin.register(CaseStep)
class CaseStepAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["case", "step_key", "executed_on", "recipient", "status", "reason"]
    list_filter = ["status", "step_key", "channel"]
    search_fields = ["recipient", "step_key"]
    list_select_related = ["case"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["as_of", "status", "started_at", "finished_at", "host", "summary"]
    list_filter = ["status"]


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

