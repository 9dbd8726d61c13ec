"""Every error django-dunning raises on purpose, in one tree rooted at :class:`DunningError`.

An error that is also a ``ValueError`` (a bad argument), an ``ImproperlyConfigured`` (a
bad setting) keeps that base too, so ``except ValueError`` in a host's code still works;
``except DunningError`` catches them all. The classes are defined here and re-exported
by the modules that raise them (``dunning.fees.MissingRateError`` is this
``MissingRateError``). A feature's own refusals live with the feature and subclass
``DunningError`` there (``dunning.services.CaseActionRefused``,
``dunning.privacy.PrivacyError``); private control-flow exceptions (a leading
underscore) never leave their module.
"""

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


class UnknownVariable(DunningError):
    """A staff template uses a variable its context does not document (dunning.rendering):
    ``name`` is the variable, ``line`` its line."""

    def __init__(self, name, line):
        super().__init__(name)
        self.name = name
        self.line = line


class UnsafeTemplate(DunningError):
    """A template that would go over the render limits whatever the customer (a width
    far too large, loops nested too deep): refused when it is saved."""

    def __init__(self, message, line):
        super().__init__(message)
        self.message = message
        self.line = line


class PermanentSendError(DunningError):
    """A message can never be delivered as it is (no address, an invalid one)."""


class MissingRateError(DunningError, ValueError):
    """The rate table has no rate in force on a day interest accrues (dunning.fees)."""


class ComplianceConfigError(DunningError, ValueError):
    """A compliance setting that cannot be used; ``messages`` lists every problem."""

    def __init__(self, messages):
        self.messages = list(messages)
        super().__init__("; ".join(str(m) for m in self.messages))


class NoSendTime(DunningError, ValueError):
    """The rules for a channel never allow a message (windows that do not overlap)."""


class SimulationError(DunningError, ValueError):
    """A bad argument to :func:`dunning.engine.simulate.simulate` (the message says what
    is wrong)."""


class InvalidToken(DunningError):
    """A portal or unsubscribe token that is tampered, expired, revoked or not a token
    at all."""
