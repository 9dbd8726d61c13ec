"""The customer's history (dunning.history) on a host with models of its own
(tests/host_app): Account has no start date and Charge no payment date, so those figures
are None, while the past cases still count; an adapter that computes ``paid_on`` gets
the on-time rate grouped by the host's own customer field."""

import datetime

import pytest
from django.core.checks import run_checks
from django.db.models import Case as SqlCase
from django.db.models import DateField, F, When
from django.utils import timezone

from dunning.hosts import get_adapter
from dunning.messages.history import customer_history
from dunning.models import Case, Policy
from dunning.testing import override_dunning_settings
from tests.conftest import DAY0
from tests.host_app.adapter import ChargeAdapter

AS_OF = DAY0 + datetime.timedelta(days=30)


def closed_case(account, status=Case.Status.RESOLVED):
    return Case.objects.create(
        customer=account, policy=Policy.objects.get(key="standard"), status=status,
        opened_on=DAY0, opened_at=timezone.now(), closed_on=DAY0 + datetime.timedelta(days=5),
    )


def test_the_host_maps_neither_history_field():
    adapter = get_adapter()
    assert adapter.customer_field("customer_since") is None
    assert adapter.invoice_field("paid_on") is None
    assert [m.id for m in run_checks(tags=["dunning"]) if m.id.startswith("dunning.")] == []


def test_unmapped_history_is_none_and_past_cases_still_count(
    make_account, make_charge, django_assert_num_queries
):
    ada = make_account(name="Ada", email="ada@example.com")
    bob = make_account(name="Bob", email="bob@example.com")
    make_charge(ada, total="100.00", paid="100.00")
    make_charge(bob)
    closed_case(ada)
    closed_case(ada, Case.Status.WRITTEN_OFF)
    with django_assert_num_queries(1):  # the accounts, with their cases counted
        history = customer_history([ada.pk, bob.pk], as_of=AS_OF)
    assert history[ada.pk] == {"months_as_customer": None, "customer_since": None,
                               "on_time_rate": None, "invoices_paid": None, "past_cases": 2,
                               "first_time_late": 0}
    assert history[bob.pk]["past_cases"] == 0 and history[bob.pk]["first_time_late"] == 1


def test_checks_report_a_mapped_history_field_the_host_does_not_have():
    from django.conf import settings

    mapping = settings.DUNNING
    with override_dunning_settings(
        CUSTOMER_FIELDS={**mapping["CUSTOMER_FIELDS"], "customer_since": "contact__joined"},
        INVOICE_FIELDS={**mapping["INVOICE_FIELDS"], "paid_on": "settled_on"},
    ):
        ids = sorted(m.id for m in run_checks(tags=["dunning"]) if m.id.startswith("dunning."))
    assert ids == ["dunning.E003", "dunning.E005"]


class PaidOnAdapter(ChargeAdapter):
    """A host that only knows whether a charge is paid in full: on its due date, then."""

    computed_invoice_fields = frozenset({"amount_due", "paid_on"})

    def invoice_expression(self, name):
        if name == "paid_on":
            return SqlCase(When(paid__gte=F("total"), then=F("payable_on")), default=None,
                         output_field=DateField())
        return super().invoice_expression(name)


@pytest.mark.parametrize("accounts", [1, 20])
def test_a_computed_paid_on_is_grouped_by_the_hosts_customer_field(
    make_account, make_charge, django_assert_num_queries, accounts
):
    adapter = PaidOnAdapter()
    pks = []
    for i in range(accounts):
        account = make_account(name=f"A{i}", email=f"a{i}@example.com")
        make_charge(account, total="50.00", paid="50.00")  # paid
        make_charge(account, total="80.00", paid="30.00")  # partly paid: still open
        pks.append(account.pk)
    idle = make_account(name="Idle", email="idle@example.com")
    make_charge(idle)
    with django_assert_num_queries(1):  # the accounts, their charges and cases counted
        history = customer_history([*pks, idle.pk], as_of=AS_OF, adapter=adapter)
    for pk in pks:
        assert (history[pk]["invoices_paid"], history[pk]["on_time_rate"]) == (1, 100)
    assert (history[idle.pk]["invoices_paid"], history[idle.pk]["on_time_rate"]) == (0, None)
    assert history[idle.pk]["months_as_customer"] is None
