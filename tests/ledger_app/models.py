"""A host shaped like django-ledger 0.8 (its CustomerModel and InvoiceModel), for the
worked example of docs/hosts.md (tests/ledger, --ds=tests.settings_ledger).

Its ``amount_due`` is the invoice total (what was billed) and ``amount_paid`` what has
been paid of it; it keeps no currency per invoice, and the customer's language lives in
the ``additional_info`` JSON. Both models are created by the app's first migration, as a
swapped-in model must be (``swappable_dependency`` depends on ``__first__``).
"""

from django.db import models


class LedgerCustomer(models.Model):
    customer_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True)
    additional_info = models.JSONField(default=dict, blank=True)


class LedgerInvoice(models.Model):
    STATUS = [
        ("draft", "Draft"),
        ("in_review", "In Review"),
        ("approved", "Approved"),
        ("paid", "Paid"),
        ("canceled", "Canceled"),
        ("void", "Void"),
    ]
    invoice_number = models.SlugField(max_length=20, unique=True)
    invoice_status = models.CharField(max_length=10, choices=STATUS, default="draft")
    customer = models.ForeignKey(LedgerCustomer, on_delete=models.RESTRICT)
    amount_due = models.DecimalField(max_digits=20, decimal_places=2, default=0)
    amount_paid = models.DecimalField(max_digits=20, decimal_places=2, default=0)
    date_due = models.DateField(null=True, blank=True)
    date_paid = models.DateField(null=True, blank=True)
