"""What the customer's self-service page (dunning.portal) keeps: revoked links, payment
plans and the customers' feedback on why they paid late."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .case import Case


class PortalRevocation(models.Model):
    """Every portal link of a customer issued up to ``revoked_at`` is void.

    Keyed by the text of the host customer's pk (any pk type, no foreign key to the
    swappable customer model); links issued later work again."""

    customer_key = models.CharField(_("customer"), max_length=255, unique=True)
    revoked_at = models.DateTimeField(_("revoked at"), default=timezone.now)

    class Meta:
        verbose_name = _("revoked portal link")
        verbose_name_plural = _("revoked portal links")

    def __str__(self):
        return f"{self.customer_key}: {self.revoked_at:%Y-%m-%d %H:%M}"


class PaymentPlan(models.Model):
    """A customer's request to pay a case's balance in instalments."""

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        ACTIVE = "active", _("Active")
        BROKEN = "broken", _("Broken")
        COMPLETED = "completed", _("Completed")
        DECLINED = "declined", _("Declined")

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="payment_plans", verbose_name=_("case")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    # [{"due": "2026-04-01", "amounts": {"EUR": "50.00"}}, ...]
    instalments = models.JSONField(_("instalments"), default=list)
    # The balance the plan covers, per currency: {"EUR": "150.00"}, and the pks of the
    # invoices it was made of (what they still owe tells how much has been paid).
    totals = models.JSONField(_("totals"), default=dict)
    invoices = models.JSONField(_("invoices"), default=list)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    auto_approved = models.BooleanField(_("approved automatically"), default=False)

    class Meta:
        verbose_name = _("payment plan")
        verbose_name_plural = _("payment plans")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return _("Payment plan in %(n)s instalments (%(status)s)") % {
            "n": len(self.instalments), "status": self.get_status_display(),
        }


class Feedback(models.Model):
    """Why a customer paid late, in their own words."""

    class Reason(models.TextChoices):
        FORGOT = "forgot", _("I forgot")
        CASH_FLOW = "cash-flow", _("Short of money right now")
        NOT_RECEIVED = "not-received", _("I did not receive the invoice")
        PAYMENT_FAILED = "payment-failed", _("My payment failed")
        DISAGREE = "disagree", _("I do not agree with the invoice")
        OTHER = "other", _("Another reason")

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="feedback", verbose_name=_("case")
    )
    reason = models.CharField(_("reason"), max_length=32, choices=Reason.choices)
    text = models.TextField(_("comment"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("late-payment feedback")
        verbose_name_plural = _("late-payment feedback")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return self.get_reason_display()


class PortalSubmission(models.Model):
    """A self-service form the page has carried out, by the key the form was rendered with
    (dunning.portal.stamps): the same form sent again (a replay, a double click, the back
    button) finds its key here and changes nothing more. Keyed by the text of the host
    customer's pk, like PortalRevocation; the unique constraint is the guard two requests
    at once meet."""

    customer_key = models.CharField(_("customer"), max_length=255)
    key = models.CharField(_("form key"), max_length=64)
    action = models.CharField(_("action"), max_length=16)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("self-service form sent")
        verbose_name_plural = _("self-service forms sent")
        constraints = [
            models.UniqueConstraint(fields=["customer_key", "key"],
                                    name="dunning_portal_submission_once"),
        ]
        indexes = [models.Index(fields=["created_at"], name="dunning_portal_sub_created")]

    def __str__(self):
        return f"{self.customer_key}: {self.action} {self.created_at:%Y-%m-%d %H:%M}"
