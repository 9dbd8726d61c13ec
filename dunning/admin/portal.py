"""Staff's side of the self-service page: payment plans to approve or decline, the
customers' late-payment feedback, and revoking a customer's links."""

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..engine import actions as services
from ..models import Case, CaseEvent, Feedback, PaymentPlan
from ..portal import services as portal_services
from ..portal.tokens import revoke_links
from .readonly import ReadOnlyAdminMixin


def _may_work_cases(request):
    return request.user.has_perm(f"{Case._meta.app_label}.change_case")


def _requested_only(modeladmin, request, queryset):
    for plan in queryset.select_related("case"):
        if plan.status != PaymentPlan.Status.REQUESTED:
            modeladmin.message_user(
                request, _("The plan of %(case)s is %(status)s, not requested; left unchanged.")
                % {"case": plan.case, "status": plan.get_status_display()}, messages.WARNING)
            continue
        yield plan


@admin.action(description=gettext_lazy("Approve the requested plans"))
def approve_plans(modeladmin, request, queryset):
    if not _may_work_cases(request):
        modeladmin.message_user(request, _("You may not decide payment plans."), messages.ERROR)
        return
    for plan in _requested_only(modeladmin, request, queryset):
        try:
            portal_services.approve_plan(plan, request.user)
        except services.CaseActionRefused as exc:
            modeladmin.message_user(request, str(exc), messages.WARNING)
            continue
        modeladmin.message_user(request, _("The plan of %(case)s is approved; dunning pauses "
                                           "until its first instalment.") % {"case": plan.case},
                                messages.SUCCESS)


@admin.action(description=gettext_lazy("Decline the requested plans"))
def decline_plans(modeladmin, request, queryset):
    if not _may_work_cases(request):
        modeladmin.message_user(request, _("You may not decide payment plans."), messages.ERROR)
        return
    for plan in _requested_only(modeladmin, request, queryset):
        with transaction.atomic():
            PaymentPlan.objects.filter(pk=plan.pk, status=PaymentPlan.Status.REQUESTED).update(
                status=PaymentPlan.Status.DECLINED, decided_at=timezone.now())
            services.record(plan.case, CaseEvent.Kind.NOTE, request.user,
                            _("Payment plan declined."), plan=plan.pk)
        modeladmin.message_user(request, _("The plan of %(case)s is declined; dunning goes on.")
                                % {"case": plan.case}, messages.SUCCESS)


@admin.register(PaymentPlan)
class PaymentPlanAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Plans customers asked for on their page; those beyond the auto-approval limits wait
    here for a person."""

    list_display = ["case", "status", "instalment_count", "totals_display", "created_at",
                    "decided_at", "auto_approved"]
    list_filter = ["status", "auto_approved"]
    list_select_related = ["case", "case__customer"]
    actions = [approve_plans, decline_plans]
    ordering = ["-created_at", "-pk"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not _may_work_cases(request):
            actions.pop("approve_plans", None)
            actions.pop("decline_plans", None)
        return actions

    @admin.display(description=gettext_lazy("instalments"))
    def instalment_count(self, plan):
        return len(plan.instalments or [])

    @admin.display(description=gettext_lazy("total"))
    def totals_display(self, plan):
        return ", ".join(f"{amount} {currency}" for currency, amount in
                         sorted((plan.totals or {}).items()))


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Why customers say they paid late (from their self-service page)."""

    list_display = ["created_at", "case", "reason", "text"]
    list_filter = ["reason"]
    list_select_related = ["case"]
    date_hierarchy = "created_at"
    search_fields = ["text"]


@admin.action(description=gettext_lazy("Revoke the self-service links"),
              permissions=["change"])
def revoke_portal_links(modeladmin, request, queryset):
    """Every self-service link sent to these cases' customers stops working (the next
    message carries a new one)."""
    for case in queryset:
        revoke_links(case.customer_id)
        services.record(case, CaseEvent.Kind.NOTE, request.user,
                        _("Self-service links revoked."))
        modeladmin.message_user(request, _("The self-service links of %(case)s are revoked.")
                                % {"case": case}, messages.SUCCESS)
