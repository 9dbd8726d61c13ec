from django.core.exceptions import ImproperlyConfigured


class DunningError(Exception):
    """Root of every error this app raises on purpose."""


class DunningConfigurationError(DunningError, ImproperlyConfigured):
    """A setting is missing or wrong; raised at start-up or by ``manage.py check``."""


class TemplateRenderError(DunningError):
    """A message template failed to compile or render."""


class RenderLimitError(TemplateRenderError):
    """A render went over a limit (dunning.sandbox): ``kind`` is "time" or "size"; the
    message says which limit, in words staff read (it is the failed step's reason)."""

    def __init__(self, message, kind="size"):
        super().__init__(message)
        self.kind = kind


class PermanentSendError(DunningError):
    """A message can never be delivered as it is (no address, an invalid one)."""
