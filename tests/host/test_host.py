"""A host that swaps both models: tests/host_app (Account/Contact/Charge).

Run with ``pytest --ds=tests.settings_host tests/host``. The host names its fields
differently, keeps the email on a related Contact (``contact__email_address``) and owes
``total - paid`` (computed by tests/host_app/adapter.py).
"""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection

from dunning.hosts import CustomerRow, get_adapter, get_customer_model, get_invoice_model
from dunning.models import Case, CaseStep
from tests.conftest import day
from tests.host_app.models import Account, Charge


def texts(mailoutbox):
    return [m.body for m in mailoutbox]


def html_of(message):
    ((html, mimetype),) = message.alternatives
    assert mimetype == "text/html"
    return html


# -- set-up of the host ---------------------------------------------------------------


def test_the_host_models_are_the_swapped_ones():
    assert get_customer_model() is Account
    assert get_invoice_model() is Charge
    assert Case._meta.get_field("customer").related_model is Account


def test_checks_pass():
    assert run_checks(tags=["dunning"]) == []
    serious = [m for m in run_checks() if m.is_serious()]
    assert serious == []


def test_makemigrations_check_is_clean(db):
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:
        pytest.fail(f"makemigrations --check found changes (exit {exc.code}):\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()


def test_default_model_tables_are_not_created(db):
    tables = set(connection.introspection.table_names())
    assert {"host_app_account", "host_app_contact", "host_app_charge"} <= tables
    assert {"dunning_case", "dunning_casestep", "dunning_caseinvoice", "dunning_policy"} <= tables
    assert "dunning_customer" not in tables
    assert "dunning_invoice" not in tables


def test_dunning_foreign_keys_point_at_the_host_tables(db):
    with connection.cursor() as cursor:
        case = connection.introspection.get_relations(cursor, "dunning_case")
        link = connection.introspection.get_relations(cursor, "dunning_caseinvoice")
    assert case["customer_id"] == ("id", "host_app_account")
    assert link["invoice_id"] == ("id", "host_app_charge")


# -- the adapter ----------------------------------------------------------------------


def test_customer_rows_follow_the_contact_relation(make_account):
    account = make_account(name="Ada Host", email="ada@host.example", language="de",
                           zone="Europe/Vienna")
    rows = get_adapter().customer_rows([account.pk])
    assert rows == {
        account.pk: CustomerRow(account.pk, "Ada Host", "ada@host.example", "", "de",
                                "Europe/Vienna")
    }


def test_overdue_balance_is_total_less_paid(make_account, make_charge):
    account = make_account()
    owing = make_charge(account, total="150.00", paid="50.00", ref="OWING")
    make_charge(account, total="80.00", paid="80.00", ref="PAID")
    make_charge(account, total="80.00", paid="90.00", ref="OVERPAID")
    make_charge(account, total="80.00", paid="0", ref="NOT-DUE", due=day(5))
    adapter = get_adapter()
    rows = adapter.invoice_rows(adapter.overdue_invoices(day(1)))
    assert [(r.pk, r.number, r.amount_due, r.currency, r.customer_id) for r in rows] == [
        (owing.pk, "OWING", Decimal("100.00"), "EUR", account.pk)
    ]


# -- a full flow on the host's models -------------------------------------------------


def test_full_flow_partial_then_full_payment(make_account, make_charge, run, mailoutbox, received):
    account = make_account(name="Ada Host", email="ada@host.example")
    charge = make_charge(account, total="150.00", paid="50.00", ref="CH-ADA")

    result = run(1)
    assert result.opened == 1
    assert [m.to for m in mailoutbox] == [["ada@host.example"]]
    notice = mailoutbox[0]
    assert "initial-notice" in notice.tags
    assert notice.metadata["customer"] == str(account.pk)
    case = Case.objects.get()
    assert notice.metadata["dunning_case"] == str(case.pk)
    assert "Ada Host" in notice.body and "Ada Host" in html_of(notice)
    assert "CH-ADA" in notice.body
    assert "€100.00" in notice.body  # the adapter's balance, not the total
    assert "€150.00" not in notice.body
    assert case.customer == account

    # A partial payment: same case, no thank-you, the next step shows what is left.
    Charge.objects.filter(pk=charge.pk).update(paid="120.00")
    run(4)
    assert len(mailoutbox) == 2
    reminder = mailoutbox[1]
    assert "gentle-reminder" in reminder.tags
    assert "€30.00" in reminder.body
    assert list(Case.objects.values_list("pk", "status")) == [(case.pk, Case.Status.OPEN)]
    assert received == []

    # Paid in full: resolved with exactly one thank-you.
    Charge.objects.filter(pk=charge.pk).update(paid="150.00")
    result = run(5)
    assert result.resolved == 1
    case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED
    assert len(mailoutbox) == 3
    thanks = mailoutbox[2]
    assert thanks.to == ["ada@host.example"]
    assert "payment-received" in thanks.tags
    assert "Ada Host" in thanks.body
    assert [(name, c.pk) for name, c, _ in received] == [("case_resolved", case.pk)]
    assert isinstance(received[0][2], Account)
    assert received[0][2].pk == account.pk

    for n in (6, 10, 30):
        run(n)
    assert len(mailoutbox) == 3
    assert CaseStep.objects.filter(case=case).count() == 3


def test_email_change_on_the_contact_reaches_the_next_message(make_account, make_charge, run,
                                                              mailoutbox):
    account = make_account(email="old@host.example")
    make_charge(account)
    run(1)
    account.contact.email_address = "new@host.example"
    account.contact.save()
    run(4)
    assert [m.to for m in mailoutbox] == [["old@host.example"], ["new@host.example"]]


def test_signals_carry_the_host_account(make_account, make_charge, run, mailoutbox, received):
    suspended = make_account(name="Suspended")
    charge = make_charge(suspended, total="40.00")
    terminated = make_account(name="Terminated")
    make_charge(terminated, total="60.00")
    for n in (1, 4, 8, 14, 21):
        run(n)
    assert sorted((name, customer.pk) for name, _, customer in received) == sorted(
        [("service_suspended", suspended.pk), ("service_suspended", terminated.pk)]
    )
    assert all(type(customer) is Account for _, _, customer in received)
    assert all(case.customer_id == customer.pk for _, case, customer in received)

    received.clear()
    Charge.objects.filter(pk=charge.pk).update(paid="40.00")
    for n in (30, 45):
        run(n)
    by_name = {(name, customer.pk) for name, _, customer in received}
    assert by_name == {
        ("case_resolved", suspended.pk),
        ("service_restored", suspended.pk),
        ("account_terminated", terminated.pk),
    }
    assert all(type(customer) is Account for _, _, customer in received)
    assert Case.objects.get(customer=terminated).status == Case.Status.TERMINATED


def test_contact_without_email_fails_the_step_and_the_schedule_goes_on(
    make_account, make_charge, run, mailoutbox
):
    account = make_account(name="No Mail", email="")
    make_charge(account)
    run(1)
    step = CaseStep.objects.get()
    assert step.status == CaseStep.Status.FAILED
    assert step.reason
    case = Case.objects.get()
    assert case.needs_person
    assert mailoutbox == []
    run(4)
    assert list(CaseStep.objects.values_list("step_key", "status")) == [
        ("initial-notice", CaseStep.Status.FAILED),
        ("gentle-reminder", CaseStep.Status.FAILED),
    ]


def test_command_dry_run_names_the_host_customer(make_account, make_charge, mailoutbox):
    make_charge(make_account(name="Dry Host", email="dry@host.example"))
    make_charge(make_account(name="", email="nameless@host.example"))
    out = StringIO()
    call_command("dunning", "run", "--as-of", day(1).isoformat(), "--dry-run", stdout=out)
    lines = out.getvalue().splitlines()
    assert "Dry Host: initial-notice" in lines
    assert "nameless@host.example: initial-notice" in lines
    assert Case.objects.count() == 0
    assert mailoutbox == []
