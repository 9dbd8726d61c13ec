"""Test settings of the worked example of docs/hosts.md: a host shaped like django-ledger
(tests/ledger_app). Run with ``--ds=tests.settings_ledger tests/ledger``."""

from .settings import *  # noqa: F401,F403
from .settings import DUNNING, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.ledger_app"]

# -- docs/hosts.md: the settings ------------------------------------------------------
DUNNING_CUSTOMER_MODEL = "ledger_app.LedgerCustomer"
DUNNING_INVOICE_MODEL = "ledger_app.LedgerInvoice"
DUNNING = {
    **DUNNING,
    "ADAPTER": "tests.ledger_app.adapter.LedgerAdapter",
    "INVOICE_CURRENCY": "EUR",  # the ledger keeps no currency per invoice
    "INVOICE_FIELDS": {
        "customer": "customer",
        "number": "invoice_number",
        "due_date": "date_due",
        "paid_on": "date_paid",
        # "amount_due": computed by the adapter (amount_due - amount_paid)
    },
    "CUSTOMER_FIELDS": {
        "name": "customer_name",
        "email": "email",
        "phone": "phone",
        "language": "additional_info__language",  # a key of a JSONField
    },
}
# -- end of docs/hosts.md -------------------------------------------------------------
