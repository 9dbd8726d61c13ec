"""What a case was charged (reminder fees, interest, fixed compensation) and the invoice
balances the charges were computed from (dunning.charging, docs/fees.md).

Both are written by the run only; the admin shows them read-only. The invoices are the
host's: a charge is handed to it through ``dunning.signals.fees_charged`` and listed in the
message, never added to an invoice by dunning.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from .case import Case, Run


class CaseCharge(models.Model):
    class Kind(models.TextChoices):
        FEE = "fee", _("Reminder fee")
        INTEREST = "interest", _("Late-payment interest")
        COMPENSATION = "compensation", _("Fixed compensation for recovery costs")

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="charges",
                             verbose_name=_("case"))
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="+", verbose_name=_("run"))
    step_key = models.CharField(_("step"), max_length=64,
                                help_text=_("The reminder the charge was listed in."))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    invoice_number = models.CharField(
        _("invoice number"), max_length=255, blank=True, default="",
        help_text=_("Empty for a reminder fee (one per reminder, not per invoice)."))
    amount = models.DecimalField(_("amount"), max_digits=18, decimal_places=4)
    currency = models.CharField(_("currency"), max_length=3)
    period_start = models.DateField(_("from"))
    period_end = models.DateField(_("until"))
    rate = models.DecimalField(
        _("yearly rate (%)"), max_digits=9, decimal_places=4, null=True, blank=True,
        help_text=_("Interest: the rate when one applied throughout; a fee: its percentage."))
    details = models.JSONField(_("details"), default=list, blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("charge")
        verbose_name_plural = _("charges")
        ordering = ["case", "created_at", "pk"]
        indexes = [models.Index(fields=["case", "kind"], name="dunning_charge_case_kind")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount} {self.currency}"

    def as_dict(self):
        """The values ``fees.Charge.as_dict()`` gives (message context, signal, API)."""
        from ..fees import round_money

        return {
            "kind": self.kind,
            "invoice_number": self.invoice_number or None,
            "amount": str(round_money(self.amount, self.currency)),
            "currency": self.currency,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "rate": None if self.rate is None else str(self.rate.normalize()),
            "details": self.details,
        }


class BalanceObservation(models.Model):
    """An invoice's open balance as a run saw it: the balance history that interest is
    computed from (the first row of an invoice is dated its due date). Written only when
    the balance changed, for cases whose policy charges interest."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="balances",
                             verbose_name=_("case"))
    invoice_number = models.CharField(_("invoice number"), max_length=255)
    currency = models.CharField(_("currency"), max_length=3)
    since = models.DateField(_("since"))
    balance = models.DecimalField(_("open balance"), max_digits=18, decimal_places=4)

    class Meta:
        verbose_name = _("balance observation")
        verbose_name_plural = _("balance observations")
        ordering = ["case", "invoice_number", "since", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["case", "invoice_number", "since"],
                                    name="dunning_balance_unique_day"),
        ]

    def __str__(self):
        return f"{self.invoice_number} {self.since}: {self.balance} {self.currency}"
