"""The worked example of docs/hosts.md: django-dunning on a host shaped like django-ledger
0.8 (tests/ledger_app,
tests/settings_ledger.py). Run with ``pytest --ds=tests.settings_ledger tests/ledger``.

django-ledger's ``amount_due`` is the invoice total and ``amount_paid`` what was paid of
it; its invoices have a status (draft, in_review, approved, paid, canceled, void), no
currency column, and the customer's language is a key of ``additional_info`` (JSON).
"""

import re
from decimal import Decimal
from pathlib import Path

from django.core.checks import run_checks
from django.db.models import CharField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Concat

from dunning.hosts import get_adapter, get_customer_model, get_invoice_model
from dunning.models import Case
from dunning.testing import override_dunning_settings
from tests.conftest import day
from tests.ledger_app.adapter import LedgerAdapter
from tests.ledger_app.models import LedgerCustomer, LedgerInvoice

ROOT = Path(__file__).resolve().parents[2]


def _docs_blocks():
    text = (ROOT / "docs" / "hosts.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_docs_show_the_settings_and_the_adapter_this_site_runs():
    settings_text = (ROOT / "tests" / "settings_ledger.py").read_text()
    marked = settings_text.split("# -- docs/hosts.md: the settings")[1].split("\n", 1)[1]
    marked = marked.split("# -- end of docs/hosts.md")[0]
    marked = marked.replace("    **DUNNING,\n", "")
    adapter_text = (ROOT / "tests" / "ledger_app" / "adapter.py").read_text()
    adapter_class = adapter_text[adapter_text.index("class LedgerAdapter"):]
    blocks = _docs_blocks()
    assert marked.strip() in [b.strip() for b in blocks]
    assert any(adapter_class.strip() in b for b in blocks)


def test_the_models_are_the_ledger_ones_and_the_checks_pass(db):
    assert get_customer_model() is LedgerCustomer
    assert get_invoice_model() is LedgerInvoice
    assert run_checks(tags=["dunning"]) == []
    assert run_checks(tags=["dunning"], databases=["default"], include_deployment_checks=False) \
        == []


def test_balance_is_the_total_less_what_was_paid_in_the_fixed_currency(
        make_ledger_customer, make_ledger_invoice):
    customer = make_ledger_customer()
    owing = make_ledger_invoice(customer, total="150.00", paid="50.00", number="OWING")
    make_ledger_invoice(customer, total="80.00", paid="80.00", status="paid", number="PAID")
    make_ledger_invoice(customer, total="70.00", status="draft", number="DRAFT")
    make_ledger_invoice(customer, total="70.00", status="in_review", number="REVIEW")
    make_ledger_invoice(customer, total="70.00", status="void", number="VOID")
    make_ledger_invoice(customer, total="70.00", status="canceled", number="CANCELED")
    adapter = get_adapter()
    rows = adapter.invoice_rows(adapter.overdue_invoices(day(1)))
    assert [(r.pk, r.number, r.amount_due, r.currency) for r in rows] == [
        (owing.pk, "OWING", Decimal("100.00"), "EUR")
    ]
    # The paid invoice stays visible to the customer's history, the others do not.
    assert sorted(adapter.invoices().values_list("invoice_number", flat=True)) == [
        "OWING", "PAID"]


def test_language_from_the_json_field(make_ledger_customer):
    german = make_ledger_customer(name="Grete", language="de")
    none = make_ledger_customer(name="No Info")
    rows = get_adapter().customer_rows([german.pk, none.pk])
    assert rows[german.pk].language == "de"
    assert rows[none.pk].language == ""


def test_a_run_dunning_the_open_balance_in_the_customers_language(
        make_ledger_customer, make_ledger_invoice, run, mailoutbox):
    grete = make_ledger_customer(name="Grete", email="grete@example.com", language="de")
    invoice = make_ledger_invoice(grete, total="150.00", paid="50.00", number="INV-1")
    make_ledger_invoice(grete, total="900.00", status="draft", number="INV-DRAFT")
    make_ledger_invoice(grete, total="900.00", status="void", number="INV-VOID")
    paid_up = make_ledger_customer(name="Paid Up", email="paid@example.com")
    make_ledger_invoice(paid_up, total="80.00", paid="80.00", status="paid", number="INV-2",
                        paid_on=day(-1))

    result = run(1)
    assert result.opened == 1
    assert [m.to for m in mailoutbox] == [["grete@example.com"]]
    body = mailoutbox[0].body
    assert "Zahlungserinnerung" in mailoutbox[0].subject  # German, from additional_info
    assert "INV-1" in body
    assert "100,00\xa0€" in body  # the open balance in EUR, not the total
    assert "150,00" not in body
    assert "INV-DRAFT" not in body and "INV-VOID" not in body

    # Paid in full (as django-ledger records it): resolved.
    LedgerInvoice.objects.filter(pk=invoice.pk).update(amount_paid="150.00",
                                                       invoice_status="paid")
    result = run(4)
    assert result.resolved == 1
    assert Case.objects.get().status == Case.Status.RESOLVED


def test_without_the_adapter_the_total_would_be_dunned_and_check_says_so():
    """The bug of issue 14: the host's amount_due (the total) taken by its name."""
    with override_dunning_settings(ADAPTER="dunning.hosts.FieldMapAdapter"):
        messages = run_checks(tags=["dunning"])
    assert [m.id for m in messages] == ["dunning.W090"]
    (warning,) = messages
    assert "ledger_app.LedgerInvoice.amount_due" in warning.msg
    assert "open balance" in warning.msg and "after payments" in warning.msg
    assert "DUNNING['INVOICE_FIELDS']['amount_due'] = 'amount_due'" in warning.hint


def test_switching_back_to_the_shipped_invoice_model_after_migrate_is_refused(db):
    from django.test import override_settings

    from dunning.checks import check_foreign_key_targets

    assert check_foreign_key_targets(databases=["default"]) == []
    with override_settings(DUNNING_INVOICE_MODEL="dunning.Invoice"):
        (error,) = check_foreign_key_targets(databases=["default"])
    assert error.id == "dunning.E091"
    assert "DUNNING_INVOICE_MODEL = 'dunning.Invoice'" in error.msg
    assert "dunning_caseinvoice.invoice_id -> ledger_app_ledgerinvoice" in error.msg


def test_json_key_paths_are_checked():
    """A '__' path into a JSONField's keys was refused by the checks (dunning.E005)
    although the query serves it; it is allowed for text, refused for amounts and dates,
    and an empty key or a path through a text field is still an error."""
    assert run_checks(tags=["dunning"]) == []  # language: additional_info__language
    cases = [
        ({"CUSTOMER_FIELDS": {"name": "customer_name", "email": "additional_info__mail__work"}},
         []),
        ({"CUSTOMER_FIELDS": {"name": "customer_name", "email": "email",
                              "language": "additional_info__"}}, ["dunning.E005"]),
        ({"CUSTOMER_FIELDS": {"name": "customer_name", "email": "email",
                              "language": "customer_name__lang"}}, ["dunning.E005"]),
        ({"CUSTOMER_FIELDS": {"name": "customer_name", "email": "email",
                              "customer_since": "additional_info__since"}}, ["dunning.E006"]),
        ({"INVOICE_FIELDS": {"customer": "customer", "number": "customer__additional_info__n",
                             "due_date": "date_due"}}, []),
        ({"INVOICE_FIELDS": {"customer": "customer", "number": "invoice_number",
                             "due_date": "customer__additional_info__due"}}, ["dunning.E004"]),
    ]
    for settings_, expected in cases:
        with override_dunning_settings(**settings_):
            assert sorted(m.id for m in run_checks(tags=["dunning"])) == expected, settings_


def test_an_email_in_a_json_key_reaches_the_message(make_ledger_customer, make_ledger_invoice,
                                                    run, mailoutbox):
    customer = make_ledger_customer(email="", mail={"work": "work@example.com"})
    make_ledger_invoice(customer)
    with override_dunning_settings(CUSTOMER_FIELDS={
            "name": "customer_name", "email": "additional_info__mail__work"}):
        run(1)
    assert [m.to for m in mailoutbox] == [["work@example.com"]]


class NamedAdapter(LedgerAdapter):
    """The customer's name computed from two JSON keys (computed_customer_fields)."""

    computed_customer_fields = frozenset({"name"})

    def customer_expression(self, name):
        if name == "name":
            return Concat(KT("additional_info__first"), Value(" "), KT("additional_info__last"),
                          output_field=CharField())
        return super().customer_expression(name)


def test_a_computed_customer_name_is_read_checked_and_searched(make_ledger_customer,
                                                               make_ledger_invoice, run):
    from dunning.queries import search_cases

    customer = make_ledger_customer(name="", first="Ada", last="Lovelace")
    make_ledger_invoice(customer)
    other = make_ledger_customer(name="", first="Grace", last="Hopper")
    make_ledger_invoice(other)
    with override_dunning_settings(ADAPTER="tests.ledger.test_ledger.NamedAdapter",
                                   CUSTOMER_FIELDS={"email": "email"}):
        assert run_checks(tags=["dunning"]) == []  # no field "name" is looked for
        assert get_adapter().customer_rows([customer.pk])[customer.pk].name == "Ada Lovelace"
        run(1)
        # The case search (admin, API) matches the computed name, not a missing field.
        found = search_cases(Case.objects.all(), "lovelace")
        assert [c.customer_id for c in found] == [customer.pk]


def test_the_ledger_site_migrates_from_zero_and_needs_no_new_migrations(db):
    from io import StringIO

    from django.core.management import call_command
    from django.db import connection

    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # pragma: no cover - the failure message
        raise AssertionError(f"makemigrations --check found changes:\n{out.getvalue()}") from exc
    with connection.cursor() as cursor:
        case = connection.introspection.get_relations(cursor, "dunning_case")
    assert case["customer_id"] == ("id", "ledger_app_ledgercustomer")
