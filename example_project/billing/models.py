"""A host's own billing models, with field names of its own choosing."""

from django.db import models


class Client(models.Model):
    full_name = models.CharField(max_length=200)
    contact_email = models.EmailField(blank=True)
    locale = models.CharField(max_length=10, blank=True)
    tz = models.CharField(max_length=64, blank=True)

    def __str__(self):
        return self.full_name


class Bill(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="bills")
    reference = models.CharField(max_length=40, unique=True)
    balance = models.DecimalField(max_digits=12, decimal_places=2)
    currency_code = models.CharField(max_length=3, default="EUR")
    payable_by = models.DateField()

    def __str__(self):
        return self.reference
