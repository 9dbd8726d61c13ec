"""The adapter of the worked example in docs/hosts.md (a host shaped like django-ledger).

docs/hosts.md shows this class and tests/settings_ledger.py's DUNNING verbatim;
tests/ledger/test_ledger.py checks that they agree.
"""

from django.db.models import DecimalField, ExpressionWrapper, F

from dunning.hosts import FieldMapAdapter


class LedgerAdapter(FieldMapAdapter):
    # django-ledger's amount_due is the invoice total: the open balance is what is left
    # of it after amount_paid.
    computed_invoice_fields = frozenset({"amount_due"})

    def invoice_expression(self, name):
        if name == "amount_due":
            return ExpressionWrapper(
                F("amount_due") - F("amount_paid"),
                output_field=DecimalField(max_digits=20, decimal_places=2),
            )
        return super().invoice_expression(name)

    def invoices(self):
        # Approved invoices are dunned; paid ones stay for the customer's history (their
        # balance is 0); drafts, invoices in review, canceled and void ones are not debts.
        return super().invoices().filter(invoice_status__in=["approved", "paid"])
