"""The shop's own models; django-dunning reads them through DUNNING's field maps."""

from django.db import models


class Kunde(models.Model):
    voller_name = models.CharField(max_length=200)
    mail = models.EmailField(blank=True)
    sprache = models.CharField(max_length=8, blank=True, default="")

    def __str__(self):
        return self.voller_name


class Rechnung(models.Model):
    kunde = models.ForeignKey(Kunde, on_delete=models.CASCADE, related_name="rechnungen")
    nummer = models.CharField(max_length=32, unique=True)
    offen = models.DecimalField(max_digits=12, decimal_places=2)
    waehrung = models.CharField(max_length=3, default="EUR")
    faellig_am = models.DateField()

    def __str__(self):
        return self.nummer
