import hashlib

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .case import CaseStep


class DeliveryEvent(models.Model):
    """One ESP tracking event (delivered, bounced, opened, ...) of an executed step's
    message, as django-anymail's ``tracking`` signal reported it. An event the ESP sends
    more than once is recorded once (``event_id`` is unique)."""

    case_step = models.ForeignKey(
        CaseStep, on_delete=models.CASCADE, related_name="delivery_events",
        verbose_name=_("executed step"),
    )
    esp = models.CharField(_("ESP"), max_length=32, blank=True)
    event_id = models.CharField(_("event id"), max_length=255, null=True, blank=True, unique=True)
    event_type = models.CharField(_("event"), max_length=32)
    recipient = models.CharField(_("recipient"), max_length=320, blank=True)
    timestamp = models.DateTimeField(_("time"))
    reject_reason = models.CharField(_("reject reason"), max_length=32, blank=True)
    description = models.TextField(_("description"), blank=True)
    esp_event = models.JSONField(_("ESP payload"), default=dict, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)

    class Meta:
        verbose_name = _("delivery event")
        verbose_name_plural = _("delivery events")
        ordering = ["timestamp", "pk"]

    def __str__(self):
        return f"{self.event_type} {self.recipient}"


class UnreadableTrackingEvent(models.Model):
    """A tracking webhook whose body passed the ESP's authentication but that anymail could
    not parse (an impossible date, a field of the wrong type, ...). It is kept here, with
    the reason, for staff, and the ESP is answered 200 so that it stops retrying a body
    that will never become readable (dunning.tracking.TolerantTrackingView)."""

    esp = models.CharField(_("ESP"), max_length=32, blank=True)
    reason = models.TextField(_("reason"))
    content_type = models.CharField(_("content type"), max_length=255, blank=True)
    body = models.TextField(_("body"), blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)

    class Meta:
        verbose_name = _("unreadable tracking event")
        verbose_name_plural = _("unreadable tracking events")
        ordering = ["-received_at", "-pk"]

    def __str__(self):
        return f"{self.esp} {self.received_at:%Y-%m-%d %H:%M}"


class Suppression(models.Model):
    """An address dunning never emails again: it bounced hard, complained or
    unsubscribed. Delete the row to email the address again."""

    class Reason(models.TextChoices):
        BOUNCED = "bounced", _("Hard bounce")
        COMPLAINED = "complained", _("Spam complaint")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        MANUAL = "manual", _("Added by hand")

    address = models.CharField(_("address"), max_length=320, unique=True)
    reason = models.CharField(_("reason"), max_length=16, choices=Reason.choices)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    event = models.ForeignKey(
        DeliveryEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("delivery event"),
    )

    class Meta:
        verbose_name = _("suppressed address")
        verbose_name_plural = _("suppressed addresses")
        ordering = ["-created_at", "pk"]

    def __str__(self):
        return f"{self.address} ({self.reason})"

    def save(self, *args, **kwargs):
        self.address = normalize_address(self.address)
        super().save(*args, **kwargs)


def normalize_address(address):
    """The form suppressed addresses are stored and compared in."""
    return (address or "").strip().lower()


#: Suppressed addresses of erased customers are kept as this prefix + the SHA-256 of the
#: normalized address (see :func:`suppression_digest`; dunning.privacy keeps them so).
SUPPRESSION_PREFIX = "sha256:"

def suppression_digest(address):
    """The form in which the suppressed address of an erased customer is kept:
    ``"sha256:" + hex SHA-256 of the normalized address``. Unkeyed on purpose, so that
    rotating SECRET_KEY does not silently lift a suppression."""
    return SUPPRESSION_PREFIX + hashlib.sha256(normalize_address(address).encode()).hexdigest()


def is_suppressed(address, suppressed):
    """The reason ``address`` is suppressed in ``suppressed`` (``{address: reason}``, as
    the email channel loads the Suppression table), checking its hashed form too; None
    when it is not."""
    address = normalize_address(address)
    if not address:
        return None
    return suppressed.get(address) or suppressed.get(suppression_digest(address))


class ChannelBreaker(models.Model):
    """The circuit breaker of one channel (dunning.engine.breaker): while its provider
    cannot be reached, no message of the channel is handed over before ``open_until``;
    then one worker probes it. Kept in the database so that every process respects it."""

    channel = models.CharField(_("channel"), max_length=16, unique=True)
    # Connection failures in a row; 0: closed (the provider answers).
    failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    open_until = models.DateTimeField(_("paused until"), null=True, blank=True)
    reason = models.TextField(_("last error"), blank=True)
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("channel circuit breaker")
        verbose_name_plural = _("channel circuit breakers")
        ordering = ["channel"]

    def __str__(self):
        return self.channel
