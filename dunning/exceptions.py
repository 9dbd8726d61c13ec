from django.core.exceptions import ImproperlyConfigured


class DunningError(Exception):
    """Root of every error this app raises on purpose."""


class DunningConfigurationError(DunningError, ImproperlyConfigured):
    """A setting is missing or wrong; raised at start-up or by ``manage.py check``."""


class TemplateRenderError(DunningError):
    """A message template failed to compile or render."""


class PermanentSendError(DunningError):
    """A message can never be delivered as it is (no address, an invalid one)."""
