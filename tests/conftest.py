import datetime

import pytest
from django.conf import settings

from dunning.engine.run import run_dunning
from dunning.testing import create_customer, create_invoice

collect_ignore = ["benchmarks"]
if getattr(settings, "DUNNING_INVOICE_MODEL", "dunning.Invoice") == "dunning.Invoice":
    collect_ignore.append("host")

DAY0 = datetime.date(2026, 3, 2)  # the due date most tests use


def day(n):
    """The date ``n`` days after DAY0 (so ``day(4)`` is 4 days overdue)."""
    return DAY0 + datetime.timedelta(days=n)


@pytest.fixture
def make_customer(db):
    return create_customer


@pytest.fixture
def make_invoice(db):
    return create_invoice


@pytest.fixture
def overdue_customer(db):
    """A customer with one invoice due on DAY0, by a factory that works on any host."""

    def make(amount="100.00", currency="EUR", due=DAY0, **customer):
        c = create_customer(**customer)
        create_invoice(c, amount_due=amount, currency=currency, due_date=due)
        return c

    return make


@pytest.fixture
def run(db):
    def do(as_of, **kwargs):
        if isinstance(as_of, int):
            as_of = day(as_of)
        return run_dunning(as_of, **kwargs)

    return do
