"""Attempts to collect a failed payment again (dunning.payments, docs/payments.md)."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..conf import customer_model_label
from .case import Case


class PaymentAttempt(models.Model):
    """One charge of a stored payment method: the failure that started a retry cycle
    (reported by a ``payment.failed`` event) or a retry. The latest attempt of a cycle
    that will be retried carries ``next_attempt_at`` and ``next_method_id``."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", _("Succeeded")
        DECLINED = "declined", _("Declined")
        ERROR = "error", _("Error")
        # Not charged: the invoices were paid meanwhile.
        CANCELLED = "cancelled", _("Not needed")

    customer = models.ForeignKey(
        customer_model_label(), on_delete=models.CASCADE, related_name="dunning_payment_attempts",
        verbose_name=_("customer"),
    )
    case = models.ForeignKey(
        Case, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="payment_attempts", verbose_name=_("case"),
    )
    #: The attempt that started the cycle (NULL: this one did).
    cycle = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="+",
    )
    invoices = models.JSONField(_("invoices"), default=list, blank=True)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    method_id = models.CharField(_("payment method"), max_length=255, blank=True)
    attempted_at = models.DateTimeField(_("attempted at"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    decline_code = models.CharField(_("decline code"), max_length=64, blank=True)
    raw_code = models.CharField(_("processor code"), max_length=64, blank=True)
    message = models.TextField(_("message"), blank=True)
    transaction_id = models.CharField(_("transaction id"), max_length=255, blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    next_method_id = models.CharField(_("next payment method"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("payment attempt")
        verbose_name_plural = _("payment attempts")
        ordering = ["attempted_at", "pk"]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="dunning_payretry_due_idx",
                         condition=Q(next_attempt_at__isnull=False)),
            models.Index(fields=["customer", "method_id", "attempted_at"],
                         name="dunning_payattempt_cap_idx"),
        ]

    def __str__(self):
        return f"{self.method_id} {self.attempted_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"
