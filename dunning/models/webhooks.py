"""Outbound webhooks: the URLs every case event is posted to, and one row per posting.

See ``dunning.webhooks`` (enqueue and delivery) and docs/webhooks.md. The receivers that
enqueue a case event's webhooks and drop the endpoint cache are ``dunning.webhooks.receivers``,
wired in ``apps.ready()``: the models import no feature.
"""

import secrets
import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def generate_secret():
    """A new signing secret (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """A URL that receives the case events, signed with its own secret."""

    url = models.URLField(
        _("URL"), max_length=2000, validators=[URLValidator(schemes=["http", "https"])],
        help_text=_("Every event is POSTed here as JSON."),
    )
    secret = models.CharField(
        _("signing secret"), max_length=128, default=generate_secret,
        help_text=_("Signs every request (header Dunning-Signature); give it to the receiver."),
    )
    description = models.CharField(_("description"), max_length=255, blank=True)
    is_active = models.BooleanField(
        _("active"), default=True,
        help_text=_("Inactive endpoints get no new events; their pending deliveries wait."),
    )
    event_types = models.JSONField(
        _("event types"), default=list, blank=True,
        help_text=_("The event types posted to this URL; none chosen: all of them."),
    )
    disabled_reason = models.TextField(_("why it was disabled"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["pk"]

    def __str__(self):
        return self.description or self.url

    def wants(self, event_type):
        """Whether events of ``event_type`` are posted here (the filter; ``case.*``
        stands for every ``case.`` type)."""
        if not self.event_types:
            return True
        return event_type in self.event_types or (
            f"{event_type.split('.', 1)[0]}.*" in self.event_types
        )


class WebhookDelivery(models.Model):
    """One event for one endpoint: posted until the endpoint answers 2xx, retried with
    backoff, at least once (receivers deduplicate by ``event_id``)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        # Leased by a worker that is posting it right now (until next_attempt_at).
        DELIVERING = "delivering", _("Delivering")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    # No database constraint: the run inserts deliveries for the endpoints it has cached
    # for a few seconds, and an endpoint deleted meanwhile must not fail the run's
    # transaction; deliveries of a deleted endpoint are removed by the next delivery.
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries",
        db_constraint=False, verbose_name=_("endpoint"),
    )
    event_type = models.CharField(_("event type"), max_length=64)
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4)
    payload = models.JSONField(_("payload"), encoder=DjangoJSONEncoder)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # Pending: when it is due; delivering: when the worker's lease runs out.
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(
        _("last response code"), null=True, blank=True
    )
    last_error = models.TextField(_("last error"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-pk"]
        constraints = [
            # An event reaches an endpoint once, however often its enqueueing is retried.
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="dunning_webhookdelivery_once"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="dunning_webhook_due_idx"),
        ]

    def __str__(self):
        return f"{self.event_type} {self.event_id}"
