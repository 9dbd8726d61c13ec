"""A host whose models differ on purpose: other field names, the email behind a
relation, and an open balance computed from two columns (by an adapter)."""

from django.db import models


class Contact(models.Model):
    email_address = models.CharField(max_length=254, blank=True)


class Account(models.Model):
    display_name = models.CharField(max_length=200)
    contact = models.OneToOneField(Contact, on_delete=models.CASCADE, related_name="account")
    preferred_language = models.CharField(max_length=10, blank=True)
    zone = models.CharField(max_length=64, blank=True)


class Charge(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="charges")
    ref = models.CharField(max_length=40, unique=True)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    paid = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    iso_currency = models.CharField(max_length=3)
    payable_on = models.DateField()
