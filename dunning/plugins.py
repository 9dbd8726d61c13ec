"""The one convention of django-dunning's plug-ins (channels, SMS backends, payment
backends): a foundation, imported by each family's base class.

- A plug-in is a class named by a dotted path in one ``DUNNING`` setting (listed in
  ``dunning.conf.IMPORT_STRINGS``), built by :func:`dunning.conf.load_plugin` with the
  keyword arguments of its ``<SETTING>_OPTIONS`` setting, if the family has one;
  ``manage.py check`` imports it and checks it subclasses its family's base class and
  implements what that base requires.
- Each family's base class subclasses :class:`Plugin`; a method a subclass must write
  raises ``NotImplementedError("MySmsBackend must implement send_message()")`` until it
  does (anymail's ``backends/base.py`` style), and ``required`` names those methods.
- What a plug-in reports for one item (a message, a charge) subclasses :class:`Result`:
  ``ok``, and when not ``ok`` a ``reason`` in words and whether the failure is
  ``transient`` (worth trying again later). Each family keeps its own fields beside them
  (``Outcome.reached``, ``SmsResult.code``, ``ChargeResult.decline_code``, ...).
"""

from __future__ import annotations


class Plugin:
    """Base of every plug-in base class (``Channel``, ``BaseSmsBackend``,
    ``PaymentBackend``)."""

    #: The methods a subclass must implement (each raises NotImplementedError here).
    required: tuple[str, ...] = ()

    def not_implemented(self, method):
        """The error of a method ``method`` this plug-in should have implemented."""
        return NotImplementedError(f"{type(self).__name__} must implement {method}()")

    @classmethod
    def missing_methods(cls) -> list[str]:
        """The required methods ``cls`` leaves unimplemented (still its family base's)."""
        family = next((base for base in cls.__mro__ if "required" in vars(base)), Plugin)
        return [name for name in family.required
                if getattr(cls, name, None) is getattr(family, name, None)]


class Result:
    """The shape every plug-in result shares: ``ok``; ``reason`` (why not, in words, ""
    when ok); ``transient`` (a failure that may pass: the item is tried again later).
    A mixin of the families' dataclasses (no fields of its own)."""

    __slots__ = ()

    ok: bool
    reason: str
    transient: bool

    @property
    def failed(self) -> bool:
        return not self.ok
