"""Factories for the swapped host models of tests/host_app (run with --ds=tests.settings_host)."""

import itertools
from decimal import Decimal

import pytest

from dunning import signals
from tests.conftest import DAY0

_refs = itertools.count(1)


@pytest.fixture
def make_account(db):
    """An Account with its Contact (the email lives on the Contact)."""
    from tests.host_app.models import Account, Contact

    def make(name="Host Customer", email="host@example.com", language="", zone=""):
        contact = Contact.objects.create(email_address=email)
        return Account.objects.create(
            display_name=name, contact=contact, preferred_language=language, zone=zone
        )

    return make


@pytest.fixture
def make_charge(db):
    """A Charge: what is owed is ``total - paid`` (computed by the host's adapter)."""
    from tests.host_app.models import Charge

    def make(account, total="100.00", paid="0", currency="EUR", due=DAY0, ref=None):
        return Charge.objects.create(
            account=account,
            ref=ref or f"CH-{next(_refs):05d}",
            total=Decimal(total),
            paid=Decimal(paid),
            iso_currency=currency,
            payable_on=due,
        )

    return make


@pytest.fixture
def received():
    """Every public dunning signal sent during the test: [(name, case, customer)]."""
    calls = []
    connected = []
    for name in ("service_suspended", "service_restored", "account_terminated", "case_resolved"):
        def receiver(sender, case, customer, _name=name, **kwargs):
            calls.append((_name, case, customer))

        getattr(signals, name).connect(receiver, weak=False)
        connected.append((name, receiver))
    yield calls
    for name, receiver in connected:
        getattr(signals, name).disconnect(receiver)
