from django.db.models import DecimalField, ExpressionWrapper, F

from dunning.hosts import FieldMapAdapter


class ChargeAdapter(FieldMapAdapter):
    """The open balance is what was charged less what was paid."""

    computed_invoice_fields = frozenset({"amount_due"})

    def invoice_expression(self, name):
        if name == "amount_due":
            return ExpressionWrapper(
                F("total") - F("paid"), output_field=DecimalField(max_digits=12, decimal_places=2)
            )
        return super().invoice_expression(name)
