"""Signal receivers of the app itself (the public signals live in ``signals.py``)."""

from django.core.signals import setting_changed
from django.dispatch import receiver

from .conf import RELOAD_ON, dunning_settings


@receiver(setting_changed)
def reload_dunning_settings(*, setting, **kwargs):
    if setting in RELOAD_ON:
        dunning_settings.reload()
