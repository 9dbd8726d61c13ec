"""The payment attempts of dunning.payments, read-only (docs/payments.md)."""

from django.contrib import admin

from ..models import PaymentAttempt
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
