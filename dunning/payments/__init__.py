"""Payment backends and smart retries of failed payments (docs/payments.md).

``get_backend()`` returns the backend named in ``DUNNING["PAYMENT_BACKEND"]`` (a dotted
path to a :class:`~dunning.payments.base.PaymentBackend` subclass, built with the keyword
arguments in ``DUNNING["PAYMENT_BACKEND_OPTIONS"]``), or None when none is configured:
then failed payments are not retried.
"""


from ..conf import dunning_settings, load_plugin
from .base import ChargeResult, PaymentBackend, StoredMethod

__all__ = ["ChargeResult", "PaymentBackend", "StoredMethod", "get_backend"]

_cache = {}


@dunning_settings.on_reload
def _drop_backend():
    _cache.clear()


def get_backend():
    """The configured payment backend (one instance per settings), or None."""
    if "backend" not in _cache:
        _cache["backend"] = load_plugin("PAYMENT_BACKEND")
    return _cache["backend"]
