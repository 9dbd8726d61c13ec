"""Receivers of the outbound webhooks, wired in ``apps.ready()`` (through
``dunning.receivers``): the models define the tables and import no feature."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from ..models import CaseEvent, WebhookEndpoint
from . import clear_cache, events_created


# Endpoints are cached for a few seconds by the process that enqueues events; a change
# made in this process is seen at once.
@receiver(post_save, sender=WebhookEndpoint, dispatch_uid="dunning.webhook_endpoint_saved")
@receiver(post_delete, sender=WebhookEndpoint, dispatch_uid="dunning.webhook_endpoint_deleted")
def endpoints_changed(**kwargs):
    clear_cache()


@receiver(post_save, sender=CaseEvent, dispatch_uid="dunning.webhook_case_event")
def case_event_saved(sender, instance, created, raw=False, using=None, **kwargs):
    """A case event created on its own (``CaseEvent.objects.create``): enqueue its
    webhooks in the same transaction. Bulk-created events are enqueued by their caller."""
    if created and not raw:
        events_created([instance], using)
