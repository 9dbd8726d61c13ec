"""The example site on its own models: ``billing.Client`` and ``billing.Bill``, whose
fields have other names than django-dunning's canonical ones."""

from .settings import *  # noqa: F401,F403
from .settings import BASE_DIR, DATABASES, DUNNING

DATABASES = {**DATABASES, "default": {**DATABASES["default"], "NAME": str(BASE_DIR / "billing.sqlite3")}}

DUNNING_CUSTOMER_MODEL = "billing.Client"
DUNNING_INVOICE_MODEL = "billing.Bill"
DUNNING = {
    **DUNNING,
    "INVOICE_FIELDS": {
        "customer": "client",
        "number": "reference",
        "amount_due": "balance",
        "currency": "currency_code",
        "due_date": "payable_by",
    },
    "CUSTOMER_FIELDS": {
        "name": "full_name",
        "email": "contact_email",
        "language": "locale",
        "timezone": "tz",
    },
}
