"""Test settings for a host that swaps both models (tests/host_app)."""

from .settings import *  # noqa: F401,F403
from .settings import DUNNING, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.host_app"]
DUNNING_CUSTOMER_MODEL = "host_app.Account"
DUNNING_INVOICE_MODEL = "host_app.Charge"
DUNNING = {
    **DUNNING,
    "ADAPTER": "tests.host_app.adapter.ChargeAdapter",
    "INVOICE_FIELDS": {
        "customer": "account",
        "number": "ref",
        "currency": "iso_currency",
        "due_date": "payable_on",
    },
    "CUSTOMER_FIELDS": {
        "name": "display_name",
        "email": "contact__email_address",
        "language": "preferred_language",
        "timezone": "zone",
    },
}
