"""Factories for the django-ledger-shaped host (tests/ledger_app, --ds=tests.settings_ledger)."""

import itertools
from decimal import Decimal

import pytest

from tests.conftest import DAY0

_numbers = itertools.count(1)


@pytest.fixture
def make_ledger_customer(db):
    from tests.ledger_app.models import LedgerCustomer

    def make(name="Ledger Customer", email="ledger@example.com", language=None, **info):
        if language is not None:
            info["language"] = language
        return LedgerCustomer.objects.create(customer_name=name, email=email,
                                             additional_info=info)

    return make


@pytest.fixture
def make_ledger_invoice(db):
    """An invoice as django-ledger keeps it: amount_due is the total billed."""
    from tests.ledger_app.models import LedgerInvoice

    def make(customer, total="100.00", paid="0", status="approved", due=DAY0, number=None,
             paid_on=None):
        return LedgerInvoice.objects.create(
            customer=customer,
            invoice_number=number or f"I-{next(_numbers):05d}",
            invoice_status=status,
            amount_due=Decimal(total),
            amount_paid=Decimal(paid),
            date_due=due,
            date_paid=paid_on,
        )

    return make
