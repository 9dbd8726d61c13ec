"""The payment attempts and pre-dunning notices of dunning.payments (read-only,
docs/payments.md) and the consent log."""

from django.contrib import admin

from ..models import Consent, PaymentAttempt, PreDunningNotice
from .readonly import ReadOnlyAdminMixin


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["attempted_at", "customer", "case", "amount", "currency", "method_id",
                    "status", "decline_code", "raw_code", "transaction_id", "next_attempt_at",
                    "next_method_id"]
    list_filter = ["status", "decline_code", "currency"]
    search_fields = ["method_id", "transaction_id", "raw_code"]
    list_select_related = ["customer", "case"]
    raw_id_fields = ["customer", "case", "cycle"]
    date_hierarchy = "attempted_at"


@admin.register(PreDunningNotice)
class PreDunningNoticeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Messages sent before anything was overdue (dunning.payments.predunning)."""

    list_display = ["created_at", "customer", "kind", "method_id", "reference", "status",
                    "recipient", "reason", "sent_at"]
    list_filter = ["kind", "status"]
    search_fields = ["recipient", "method_id", "reference", "message_id"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    date_hierarchy = "created_at"


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    """The consent log. Append-only: staff may record a choice a customer made by phone or
    letter (a new entry); no entry is ever changed or deleted."""

    list_display = ["created_at", "customer_key", "topic", "granted", "source", "actor", "note"]
    list_filter = ["topic", "granted", "source"]
    search_fields = ["customer_key", "note"]
    fields = ["customer_key", "topic", "granted", "note"]
    readonly_fields = []

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.source = Consent.Source.STAFF
        obj.actor = request.user
        super().save_model(request, obj, form, change)
