"""The collectors' case list: what a case owes, how long it is overdue, filters by bands
and currency, search by customer and invoice number, and totals of what is listed.

The queries themselves live in :mod:`dunning.queries` (the REST API uses them too; see
there how the amounts are annotated); this module is their admin side: the list filters
and the amount as the list shows it.
"""

from django.contrib import admin
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..formatting import format_money
from ..hosts import _to_decimal
from ..queries import (  # noqa: F401 (annotate_owing ... totals: used by CaseAdmin)
    AMOUNT,
    AMOUNT_BANDS,
    DAYS_BANDS,
    DISPUTE_BANDS,
    OLDEST_DUE,
    _locale,
    annotate_owing,
    currencies_owed,
    days_overdue,
    disputed,
    filter_amount_band,
    filter_currency,
    filter_days_band,
    in_call_queue,
    owing_currency,
    search_cases,
    totals,
)


def amount_display(case):
    """The amount a case owes, formatted, or a dash; a case owing in several currencies
    says so (a sum over currencies means nothing)."""
    amount = getattr(case, AMOUNT, None)
    if amount is None:
        return "-"
    currency = owing_currency(case)
    if currency is None:
        return _("several currencies")
    return format_money(_to_decimal(amount), currency, _locale())


# -- filters ---------------------------------------------------------------------------
class DaysOverdueFilter(admin.SimpleListFilter):
    title = gettext_lazy("days overdue")
    parameter_name = "days_overdue"

    def lookups(self, request, model_admin):
        return [(value, label) for value, label, _first, _last in DAYS_BANDS]

    def queryset(self, request, queryset):
        return filter_days_band(queryset, self.value())


class AmountFilter(admin.SimpleListFilter):
    title = gettext_lazy("amount overdue")
    parameter_name = "amount"

    def lookups(self, request, model_admin):
        return [(value, label) for value, label, _low, _high in AMOUNT_BANDS]

    def queryset(self, request, queryset):
        return filter_amount_band(queryset, self.value())


class CallQueueFilter(admin.SimpleListFilter):
    """Cases waiting for a collector's call (a call step queued them; logging a call on
    the case takes it out), the longest waiting first."""

    title = gettext_lazy("call queue")
    parameter_name = "call_queue"

    def lookups(self, request, model_admin):
        return [("waiting", gettext_lazy("In the call queue"))]

    def queryset(self, request, queryset):
        if self.value() == "waiting":
            return in_call_queue(queryset)
        return queryset


class CurrencyFilter(admin.SimpleListFilter):
    """Cases owing in a currency (the currencies open cases owe in: one query)."""

    title = gettext_lazy("currency")
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        return [(code, code) for code in currencies_owed()]

    def queryset(self, request, queryset):
        return filter_currency(queryset, self.value())


class DisputeFilter(admin.SimpleListFilter):
    """Cases with an open dispute, or with one that went to staff after waiting
    DUNNING["DISPUTE_ESCALATE_AFTER_DAYS"] (dunning.engine.holds)."""

    title = gettext_lazy("dispute")
    parameter_name = "dispute"

    def lookups(self, request, model_admin):
        return DISPUTE_BANDS

    def queryset(self, request, queryset):
        return disputed(queryset, self.value())
