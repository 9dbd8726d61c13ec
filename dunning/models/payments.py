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
        # Accepted, not settled yet (a SEPA or ACH debit "processing" for days): never
        # charged again while pending; settled by the processor's webhook or a poll.
        PENDING = "pending", _("Pending")

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
    #: The policy's retry step this attempt carried out ("" for the failure that started
    #: the cycle and for the last-chance attempts of other stored methods).
    step_key = models.CharField(_("retry step"), max_length=64, blank=True, default="")
    next_step_key = models.CharField(_("next retry step"), max_length=64, blank=True, default="")

    class Meta:
        verbose_name = _("payment attempt")
        verbose_name_plural = _("payment attempts")
        ordering = ["attempted_at", "pk"]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="dunning_payretry_due_idx",
                         condition=Q(next_attempt_at__isnull=False)),
            models.Index(fields=["customer", "method_id", "attempted_at"],
                         name="dunning_payattempt_cap_idx"),
            # Settling a pending charge by the processor's transaction id (webhook, poll).
            models.Index(fields=["transaction_id"], name="dunning_payattempt_pending_idx",
                         condition=Q(status="pending")),
        ]

    def __str__(self):
        return f"{self.method_id} {self.attempted_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"


class PreDunningNotice(models.Model):
    """A message sent before anything is overdue: a stored card expires soon, a renewal
    will be charged to an expiring card, or the customer is asked to consent to the card
    networks' account updater. Each is sent at most once (the unique constraint)."""

    class Kind(models.TextChoices):
        CARD_EXPIRING_30 = "card-expiring-30", _("Card expires in 30 days")
        CARD_EXPIRING_7 = "card-expiring-7", _("Card expires in 7 days")
        RENEWAL_CARD_EXPIRING = "renewal-card-expiring", _("Renewal on an expiring card")
        UPDATER_CONSENT = "account-updater-consent", _("Account updater consent request")
        # A retry the bank wants the customer to authenticate (3-D Secure): not retried
        # off-session, the customer is asked to pay through the self-service page.
        AUTHENTICATE_PAYMENT = "payment-authentication", _("Request to authenticate a payment")

    class Status(models.TextChoices):
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    customer = models.ForeignKey(
        customer_model_label(), on_delete=models.CASCADE,
        related_name="dunning_predunning_notices", verbose_name=_("customer"),
    )
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    method_id = models.CharField(_("payment method"), max_length=255, blank=True, default="")
    #: What the notice is about: the card's expiry month ("2026-12") or the renewal date.
    reference = models.CharField(_("reference"), max_length=32, blank=True, default="")
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    recipient = models.CharField(_("recipient"), max_length=320, blank=True)
    language = models.CharField(_("language"), max_length=16, blank=True)
    reason = models.TextField(_("failure reason"), blank=True)
    message_id = models.CharField(_("message id"), max_length=255, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    #: The run that claimed it (several workers never send one notice twice).
    claim = models.CharField(max_length=32, blank=True, default="", editable=False)

    class Meta:
        verbose_name = _("pre-dunning notice")
        verbose_name_plural = _("pre-dunning notices")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "kind", "method_id", "reference"],
                name="dunning_predunning_once",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.reference or self.method_id})"
