"""Signal receivers of the app itself (the public signals live in ``signals.py``)."""

from anymail.signals import tracking
from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import CUSTOMER_MODEL_SETTING, INVOICE_MODEL_SETTING, RELOAD_ON, dunning_settings
from .notices import receivers as notices_receivers  # noqa: F401 (in-app notices resolve with their case)
from .webhooks import receivers as webhooks_receivers  # noqa: F401 (a case event's webhooks)


@receiver(setting_changed)
def reload_dunning_settings(*, setting, **kwargs):
    if setting in RELOAD_ON:
        dunning_settings.reload()
    if setting in (CUSTOMER_MODEL_SETTING, INVOICE_MODEL_SETTING):
        # As Django does for AUTH_USER_MODEL: swapped models change the relation caches.
        from django.apps import apps

        apps.clear_cache()


@receiver(tracking, dispatch_uid="dunning.record_tracking_event")
def record_tracking_event(*, event, esp_name="", **kwargs):
    """ESP delivery events (through django-anymail's webhooks) -> the executed step."""
    from .tracking import record_tracking_event as record

    record(event, esp_name)
