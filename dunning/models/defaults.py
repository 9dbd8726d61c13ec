"""The shipped default Customer and Invoice, swappable like ``auth.User``.

A site that has its own models points ``DUNNING_CUSTOMER_MODEL`` and
``DUNNING_INVOICE_MODEL`` at them before its first ``migrate``; these tables are then
never created.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from ..conf import customer_model_label
from ..inputs import validate_amount_due, validate_currency


class Customer(models.Model):
    name = models.CharField(_("name"), max_length=200)
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    language = models.CharField(
        _("language"), max_length=16, blank=True, help_text=_("A language code such as 'de'.")
    )
    timezone = models.CharField(
        _("time zone"), max_length=64, blank=True, help_text=_("An IANA name such as 'Europe/Berlin'.")
    )
    customer_since = models.DateField(
        _("customer since"), null=True, blank=True,
        help_text=_("The day they became a customer."),
    )

    class Meta:
        swappable = "DUNNING_CUSTOMER_MODEL"
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["name", "pk"]

    def __str__(self):
        return self.name or self.email or f"#{self.pk}"


class Invoice(models.Model):
    customer = models.ForeignKey(
        customer_model_label(),
        on_delete=models.CASCADE,
        related_name="invoices",
        verbose_name=_("customer"),
    )
    number = models.CharField(_("number"), max_length=64, unique=True)
    amount_due = models.DecimalField(
        _("amount due"), max_digits=14, decimal_places=2, help_text=_("The open balance."),
        validators=[validate_amount_due],
    )
    # Checked in the admin, the import and the API (dunning.inputs); a host's own invoice
    # model is the host's business.
    currency = models.CharField(_("currency"), max_length=3, help_text=_("ISO 4217 code."),
                                validators=[validate_currency])
    due_date = models.DateField(_("due date"), db_index=True)
    paid_on = models.DateField(
        _("paid on"), null=True, blank=True,
        help_text=_("The day the invoice was paid in full; empty while it is open."),
    )

    class Meta:
        swappable = "DUNNING_INVOICE_MODEL"
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["due_date", "pk"]

    def __str__(self):
        return self.number
