"""The consent log: every choice a customer made about how they are contacted."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

#: Topics: "channel:<key>" (reminders on that channel; not granted = opted out) and
#: the card networks' account updater.
CHANNEL_PREFIX = "channel:"
ACCOUNT_UPDATER = "account-updater"


def channel_topic(channel):
    return CHANNEL_PREFIX + channel


class Consent(models.Model):
    """One entry of a customer's consent log. Append-only: the latest entry per customer
    and topic is the customer's current choice; earlier ones stay as the record of what
    was asked and answered, when, and through what.

    Keyed by the text of the host customer's pk (like PortalRevocation), so the log does
    not depend on the swappable customer model's pk type."""

    class Source(models.TextChoices):
        PORTAL = "portal", _("Self-service page")
        UNSUBSCRIBE = "unsubscribe", _("Unsubscribe link")
        STAFF = "staff", _("Staff")
        API = "api", _("API")
        BOUNCE = "bounce", _("Bounce or complaint")

    customer_key = models.CharField(_("customer"), max_length=255, db_index=True)
    topic = models.CharField(_("topic"), max_length=64)
    granted = models.BooleanField(_("granted"))
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    created_at = models.DateTimeField(_("at"), default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("by"),
    )
    note = models.TextField(_("note"), blank=True, default="")

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consent log")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["customer_key", "topic", "created_at"],
                                name="dunning_consent_latest_idx")]

    def __str__(self):
        return f"{self.customer_key} {self.topic}: {'yes' if self.granted else 'no'}"


def current_choices(customer_keys, *, prefix="", using="default"):
    """{customer_key: {topic: granted}} for the latest entries of these customers (one
    query); topics without an entry are absent."""
    rows = (Consent.objects.using(using)
            .filter(customer_key__in=[str(k) for k in customer_keys], topic__startswith=prefix)
            .order_by("customer_key", "topic", "created_at", "pk")
            .values_list("customer_key", "topic", "granted"))
    choices = {}
    for key, topic, granted in rows:
        choices.setdefault(key, {})[topic] = granted
    return choices


def opted_out_channels(customer_keys, using="default"):
    """{customer_key: {channel, ...}} of the channels each customer opted out of."""
    out = {}
    for key, topics in current_choices(customer_keys, prefix=CHANNEL_PREFIX, using=using).items():
        channels = {t.removeprefix(CHANNEL_PREFIX) for t, granted in topics.items() if not granted}
        if channels:
            out[key] = channels
    return out
