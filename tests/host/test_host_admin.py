"""The case list on a host with its own models and field names: amounts computed by the
host's adapter (total - paid), the email behind a relation, invoice numbers named ``ref``."""

import datetime
import html
from decimal import Decimal

import pytest
from django.utils import timezone

CHANGELIST_URL = "/admin/dunning/case/"


@pytest.fixture
def book(make_account, make_charge):
    from dunning.engine.run import run_dunning

    today = timezone.localdate()
    ada = make_account(name="Ada Host", email="ada@host.example")
    make_charge(ada, total="300.00", paid="100.00", due=today - datetime.timedelta(days=40),
                ref="REF-ADA-1")
    bob = make_account(name="Bob Host", email="bob@host.example")
    make_charge(bob, total="50.00", due=today - datetime.timedelta(days=5), ref="REF-BOB-1")
    run_dunning(today)
    return ada, bob


def names(client, **params):
    response = client.get(CHANGELIST_URL, params)
    assert response.status_code == 200
    return response, [c.customer.display_name for c in response.context["cl"].result_list]


def test_amounts_days_and_totals_come_from_the_host(admin_client, book):
    response, listed = names(admin_client)
    assert sorted(listed) == ["Ada Host", "Bob Host"]
    text = html.unescape(response.content.decode())
    assert "€200.00" in text  # 300 - 100 paid
    assert [(t["currency"], t["amount"]) for t in response.context["dunning_totals"]] == [
        ("EUR", Decimal("250.00"))]
    assert names(admin_client, days_overdue="31-60")[1] == ["Ada Host"]
    assert names(admin_client, amount="0-100")[1] == ["Bob Host"]


@pytest.mark.parametrize(("term", "expected"), [
    ("bob@host", ["Bob Host"]),  # email through the contact relation
    ("Ada", ["Ada Host"]),
    ("REF-BOB", ["Bob Host"]),  # the host's invoice number field
])
def test_search_through_the_field_mapping(admin_client, book, term, expected):
    assert names(admin_client, q=term)[1] == expected
