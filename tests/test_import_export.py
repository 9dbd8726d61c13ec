"""Import and export with django-import-export: policies travel between sites with their
steps and templates, a bad row imports nothing and says which row, cases export with their
timeline, cells a spreadsheet would run as a formula are escaped, and the shipped customers
and invoices import through the admin."""

import csv
import datetime
import html
import io
import json
from decimal import Decimal

import openpyxl
import pytest
import tablib
from django.core.files.uploadedfile import SimpleUploadedFile
from import_export.formats.base_formats import CSV, JSON, XLSX

from dunning.admin.resources import (
    CaseResource,
    CustomerResource,
    InvoiceResource,
    MessageTemplateResource,
    PolicyCSV,
    PolicyResource,
)
from dunning.models import Case, Customer, Invoice, MessageTemplate, Policy, Step

from .conftest import DAY0, day

STEP_FIELDS = ["key", "offset_days", "channel", "action"]
TEMPLATE_FIELDS = ["step_key", "channel", "language", "subject", "text_body", "html_body"]


def snapshot(policy_key):
    """Everything a policy is, field by field (no primary keys or timestamps)."""
    policy = Policy.objects.get(key=policy_key)
    return {
        "policy": {
            name: getattr(policy, name)
            for name in ["key", "name", "description", "is_active", "min_gap_days",
                         "grace_days", "minimum_balance", "quiet_hours", "frequency_caps",
                         "exclude_weekends", "weekend_days", "holidays", "regulation_f"]
        },
        "retry_steps": list(policy.retry_steps.order_by("offset_days").values_list(
            "key", "offset_days")),
        "steps": [
            {name: getattr(step, name) for name in STEP_FIELDS}
            for step in policy.steps.order_by("offset_days")
        ],
        "templates": [
            {name: getattr(t, name) for name in TEMPLATE_FIELDS}
            for t in policy.templates.order_by("step_key", "channel", "language")
        ],
    }


def csv_text(dataset):
    return CSV().export_data(dataset)


def load_csv(text):
    return PolicyCSV().create_dataset(text)


def csv_rows(text):
    limit = csv.field_size_limit(PolicyCSV.CELL_LIMIT)  # a policy's templates cell is large
    try:
        return list(csv.DictReader(io.StringIO(text)))
    finally:
        csv.field_size_limit(limit)


def error_rows(result):
    """Row numbers (1-based) that failed, by validation or by exception."""
    rows = {row.number for row in result.invalid_rows}
    rows |= {number for number, _errors in result.row_errors()}
    return rows


def error_text(result):
    texts = [" ".join(str(m) for m in row.error.messages) for row in result.invalid_rows]
    texts += [str(e.error) for _n, errors in result.row_errors() for e in errors]
    return " ".join(texts)


# -- policies ---------------------------------------------------------------------------


@pytest.fixture
def strict_policy(db):
    policy = Policy.objects.create(key="strict", name="=Strict", min_gap_days=2,
                                   grace_days=1, minimum_balance={"EUR": "5.00"},
                                   quiet_hours={"sms": ["09:00", "20:00"]},
                                   exclude_weekends=True, holidays=["2026-12-25"])
    for key, offset, action in [("first", 2, ""), ("warn", 9, ""), ("cut", 16, "suspend")]:
        Step.objects.create(policy=policy, key=key, offset_days=offset, action=action,
                            required=key == "cut", fallback_channel="sms" if key == "first" else "")
    policy.retry_steps.create(key="soon", offset_days=2)
    policy.retry_steps.create(key="payday", offset_days=9)
    MessageTemplate.objects.create(
        policy=policy, step_key="first", language="en", subject="Reminder for {{ customer.name }}",
        text_body="Dear {{ customer.name }},\n{% for invoice in invoices %}{{ invoice.number }}\n"
                  "{% endfor %}",
        html_body="<p>Dear {{ customer.name }}</p>",
    )
    MessageTemplate.objects.create(
        policy=policy, step_key="first", language="de", subject="Erinnerung – Ärger?",
        text_body="Hallo {{ customer.name }}", html_body="",
    )
    return policy


@pytest.mark.parametrize("fmt", [PolicyCSV, JSON])
def test_a_policy_exported_from_one_site_imports_identically_into_another(strict_policy, fmt):
    before = {key: snapshot(key) for key in ["standard", "strict"]}
    assert before["standard"]["templates"], "the shipped policy comes with templates"
    exported = fmt().export_data(PolicyResource().export(Policy.objects.filter(
        key__in=["standard", "strict"])))

    # The other site: no such policies yet.
    Policy.objects.filter(key__in=["standard", "strict"]).delete()
    assert not Step.objects.exists() and not MessageTemplate.objects.exists()

    result = PolicyResource().import_data(fmt().create_dataset(exported), dry_run=False)

    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == 2
    assert {key: snapshot(key) for key in ["standard", "strict"]} == before


def test_importing_a_policy_again_updates_it_in_place(strict_policy):
    exported = csv_text(PolicyResource().export(Policy.objects.filter(key="strict")))
    Step.objects.filter(policy=strict_policy, key="warn").update(offset_days=10)
    MessageTemplate.objects.filter(policy=strict_policy, language="de").delete()

    result = PolicyResource().import_data(load_csv(exported), dry_run=False)

    assert result.totals["update"] == 1
    assert Policy.objects.get(key="strict").pk == strict_policy.pk
    assert Step.objects.get(policy=strict_policy, key="warn").offset_days == 9
    assert strict_policy.templates.filter(language="de").exists()


def _policy_rows_with(strict_policy, **changes):
    """An export of two policies where the second row ('strict') is changed by ``changes``
    (functions of the decoded steps/templates lists)."""
    dataset = PolicyResource().export(Policy.objects.order_by("key"))
    rows = [dict(zip(dataset.headers, row, strict=True)) for row in dataset]
    assert [row["key"] for row in rows] == ["standard", "strict"]
    rows[0]["name"] = "Standard, renamed"  # a good row that must not be saved either
    for column, change in changes.items():
        rows[1][column] = json.dumps(change(json.loads(rows[1][column])))
    return tablib.Dataset(*[list(row.values()) for row in rows], headers=dataset.headers)


def _same_offset(steps):
    steps[1]["offset_days"] = steps[0]["offset_days"]
    return steps


def _hostile_template(templates):
    templates[0]["text_body"] = "{% load static %}{{ customer.name }}"
    return templates


def _unknown_channel(steps):
    steps[0]["channel"] = "carrier-pigeon"
    return steps


def _suspend_first(steps):
    steps[0]["action"] = "suspend"
    return steps


def _same_retry_day(retry_steps):
    retry_steps[1]["offset_days"] = retry_steps[0]["offset_days"]
    return retry_steps


@pytest.mark.parametrize("column,change,message", [
    ("steps", _same_offset, "offsets must strictly increase"),
    ("steps", _suspend_first, "needs at least one warning step"),
    ("steps", _unknown_channel, "carrier-pigeon"),
    ("templates", _hostile_template, "load"),
    ("retry_steps", _same_retry_day, "Two retry steps have the same offset_days"),
])
def test_a_bad_policy_row_is_reported_and_nothing_is_imported(strict_policy, column, change,
                                                              message):
    before = {key: snapshot(key) for key in ["standard", "strict"]}
    dataset = _policy_rows_with(strict_policy, **{column: change})

    result = PolicyResource().import_data(dataset, dry_run=False)

    assert error_rows(result) == {2}
    assert message in error_text(result)
    assert {key: snapshot(key) for key in ["standard", "strict"]} == before


def test_a_policy_row_with_broken_json_is_reported(strict_policy):
    dataset = PolicyResource().export(Policy.objects.filter(key="strict"))
    row = dict(zip(dataset.headers, dataset[0], strict=True))
    row["templates"] = "[{not json"
    before = snapshot("strict")

    result = PolicyResource().import_data(
        tablib.Dataset(list(row.values()), headers=dataset.headers), dry_run=False)

    assert error_rows(result) == {1}
    assert "not valid JSON" in error_text(result)
    assert snapshot("strict") == before


def test_message_templates_import_on_their_own_keyed_by_policy_and_step(strict_policy):
    exported = csv_text(MessageTemplateResource().export(
        MessageTemplate.objects.filter(policy=strict_policy)))
    rows = csv_rows(exported)
    assert {row["policy"] for row in rows} == {"strict"}
    MessageTemplate.objects.filter(policy=strict_policy, language="en").update(subject="changed")

    result = MessageTemplateResource().import_data(load_csv(exported), dry_run=False)
    assert result.totals["update"] == 2
    assert strict_policy.templates.get(language="en").subject == (
        "Reminder for {{ customer.name }}")

    bad = exported.replace("Hallo {{ customer.name }}", "Hallo {{ customer.password }}")
    result = MessageTemplateResource().import_data(load_csv(bad), dry_run=False)
    assert error_rows(result) and "customer.password" in error_text(result)


# -- cases -----------------------------------------------------------------------------


def test_cases_export_with_their_timeline_and_formulae_escaped(overdue_customer, run):
    overdue_customer(name='=HYPERLINK("http://evil.example/","click")', email="evil@example.com")
    overdue_customer(name="Ada", email="ada@example.com")
    run(day(1))
    run(day(4))

    text = csv_text(CaseResource().export(Case.objects.order_by("pk")))
    rows = csv_rows(text)

    assert [row["customer"] for row in rows] == [
        '\'=HYPERLINK("http://evil.example/","click")', "Ada"]
    ada = rows[1]
    assert ada["status"] == Case.objects.get(customer__name="Ada").status
    assert ada["policy"] == "standard"
    assert ada["last_step_key"] == "gentle-reminder"
    assert ada["opened_on"] == day(1).isoformat()
    timeline = ada["timeline"].splitlines()
    assert f"{day(1).isoformat()} initial-notice sent" in timeline
    assert f"{day(4).isoformat()} gentle-reminder sent" in timeline
    assert timeline.index(f"{day(1).isoformat()} initial-notice sent") < timeline.index(
        f"{day(4).isoformat()} gentle-reminder sent")

    workbook = openpyxl.load_workbook(
        io.BytesIO(XLSX().export_data(CaseResource().export(Case.objects.order_by("pk")))))
    sheet = workbook.active
    headers = [cell.value for cell in sheet[1]]
    cell = sheet.cell(row=2, column=headers.index("customer") + 1)
    assert cell.data_type != "f"
    assert cell.value == '\'=HYPERLINK("http://evil.example/","click")'


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_every_formula_prefix_is_escaped_on_export(make_customer, prefix):
    make_customer(name=f"{prefix}cmd|' /C calc'!A0", email="x@example.com")
    rows = csv_rows(csv_text(CustomerResource().export(Customer.objects.all())))
    assert rows[0]["name"] == f"'{prefix}cmd|' /C calc'!A0"


def test_the_case_export_action_in_the_admin_downloads_csv(admin_client, overdue_customer, run):
    overdue_customer(name="@SUM(1+1)", email="sum@example.com")
    run(day(1))
    case = Case.objects.get()

    response = admin_client.post("/admin/dunning/case/", {
        "action": "export_cases_csv", "_selected_action": [case.pk]})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = csv_rows(response.content.decode("utf-8"))
    assert rows[0]["customer"] == "'@SUM(1+1)"
    assert f"{day(1).isoformat()} initial-notice sent" in rows[0]["timeline"]


# -- shipped customers and invoices ----------------------------------------------------

INVOICES_CSV = (
    "number,customer_email,amount_due,currency,due_date\n"
    "INV-1,ada@example.com,120.50,eur,2026-03-02\n"
    "INV-2,bob@example.com,0.10,USD,2026-02-01\n"
)


@pytest.fixture
def customers(make_customer):
    return [make_customer(name="Ada", email="ada@example.com"),
            make_customer(name="Bob", email="bob@example.com")]


def test_invoices_import_with_customers_by_email_and_decimal_amounts(customers):
    result = InvoiceResource().import_data(load_csv(INVOICES_CSV), dry_run=False)

    assert not result.has_errors() and not result.has_validation_errors()
    first = Invoice.objects.get(number="INV-1")
    assert first.customer == customers[0]
    assert first.amount_due == Decimal("120.50")
    assert first.currency == "EUR"
    assert first.due_date == DAY0
    assert Invoice.objects.get(number="INV-2").amount_due == Decimal("0.10")

    exported = csv_rows(csv_text(InvoiceResource().export(Invoice.objects.order_by("number"))))
    assert exported[0] == {"number": "INV-1", "customer_email": "ada@example.com",
                           "amount_due": "120.50", "currency": "EUR", "due_date": "2026-03-02",
                           "paid_on": ""}
    # The history date (dunning.history) travels too; a file without it leaves it.
    InvoiceResource().import_data(load_csv(
        "number,customer_email,amount_due,currency,due_date,paid_on\n"
        "INV-2,bob@example.com,0,USD,2026-02-01,2026-02-03\n"), dry_run=False)
    assert Invoice.objects.get(number="INV-2").paid_on == datetime.date(2026, 2, 3)
    InvoiceResource().import_data(load_csv(INVOICES_CSV), dry_run=False)
    assert Invoice.objects.get(number="INV-2").paid_on == datetime.date(2026, 2, 3)


@pytest.mark.parametrize("bad_row,message", [
    ("INV-3,nobody@example.com,5.00,EUR,2026-03-02", "no customer with the email address"),
    ("INV-3,ada@example.com,5.00,EUR,2026-02-30", "'2026-02-30' is not a date"),
    ("INV-3,ada@example.com,lots,EUR,2026-03-02", "'lots' is not an amount"),
    # Issue 14: a negative balance and codes that are no currency one can pay in.
    ("INV-3,ada@example.com,-5.00,EUR,2026-03-02", "The amount due cannot be negative"),
    ("INV-3,ada@example.com,5.00,QQQ,2026-03-02",
     "'QQQ' is not the ISO 4217 code of a currency in use"),
    ("INV-3,ada@example.com,5.00,XXX,2026-03-02", "'XXX' is not the ISO 4217 code"),
    ("INV-3,ada@example.com,5.00,XTS,2026-03-02", "'XTS' is not the ISO 4217 code"),
    ("INV-3,ada@example.com,5.00,DEM,2026-03-02", "'DEM' is not the ISO 4217 code"),
])
def test_a_bad_invoice_row_reports_its_number_and_imports_nothing(customers, bad_row, message):
    result = InvoiceResource().import_data(load_csv(INVOICES_CSV + bad_row + "\n"),
                                           dry_run=False)

    assert error_rows(result) == {3}
    assert message in error_text(result)
    assert not Invoice.objects.exists()


def test_an_invoice_row_never_moves_an_invoice_to_another_customer(customers):
    InvoiceResource().import_data(load_csv(INVOICES_CSV), dry_run=False)
    # INV-1 is Ada's; a file that names Bob for it (a typo in the number, say) is refused.
    result = InvoiceResource().import_data(load_csv(
        "number,customer_email,amount_due,currency,due_date\n"
        "INV-9,bob@example.com,1.00,EUR,2026-03-02\n"
        "INV-1,bob@example.com,120.50,EUR,2026-03-02\n"), dry_run=False)

    assert error_rows(result) == {2}
    assert ("Invoice INV-1 belongs to another customer (ada@example.com), not to "
            "'bob@example.com'; an invoice never moves to another customer.") in error_text(
        result)
    assert Invoice.objects.get(number="INV-1").customer == customers[0]
    assert not Invoice.objects.filter(number="INV-9").exists()
    # The same customer updates it as before.
    result = InvoiceResource().import_data(load_csv(
        "number,customer_email,amount_due,currency,due_date\n"
        "INV-1,ada@example.com,20.00,EUR,2026-03-02\n"), dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    assert Invoice.objects.get(number="INV-1").amount_due == Decimal("20.00")


def test_the_invoice_admin_form_refuses_a_negative_amount_and_a_non_currency(
        admin_client, customers):
    response = admin_client.post("/admin/dunning/invoice/add/", {
        "customer": customers[0].pk, "number": "INV-5", "amount_due": "-1.00",
        "currency": "XXX", "due_date": "2026-03-02"})
    assert response.status_code == 200  # the form again, with its errors
    text = html.unescape(response.content.decode())
    assert "The amount due cannot be negative" in text
    assert "'XXX' is not the ISO 4217 code of a currency in use" in text
    response = admin_client.post("/admin/dunning/invoice/add/", {
        "customer": customers[0].pk, "number": "INV-5", "amount_due": "1.00",
        "currency": "eur", "due_date": "2026-03-02"})
    assert "Write the currency code in capitals: EUR." in html.unescape(
        response.content.decode())
    assert not Invoice.objects.exists()


def test_customers_round_trip_and_a_bad_email_imports_nothing(customers):
    exported = csv_text(CustomerResource().export(Customer.objects.order_by("pk")))
    Customer.objects.filter(name="Ada").update(language="fr")
    result = CustomerResource().import_data(load_csv(exported), dry_run=False)
    assert result.totals["update"] == 2
    assert Customer.objects.get(name="Ada").language == ""

    bad = "name,email,language\nCarol,carol@example.com,de\nDan,not-an-email,en\n"
    result = CustomerResource().import_data(load_csv(bad), dry_run=False)
    assert error_rows(result) == {2}
    assert not Customer.objects.filter(name__in=["Carol", "Dan"]).exists()


def test_invoices_import_from_xlsx(customers):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["number", "customer_email", "amount_due", "currency", "due_date"])
    sheet.append(["INV-9", "bob@example.com", 42.5, "EUR", DAY0])
    content = io.BytesIO()
    workbook.save(content)

    result = InvoiceResource().import_data(XLSX().create_dataset(content.getvalue()),
                                           dry_run=False)

    assert not result.has_errors() and not result.has_validation_errors()
    invoice = Invoice.objects.get(number="INV-9")
    assert (invoice.customer, invoice.amount_due, invoice.due_date) == (
        customers[1], Decimal("42.50"), DAY0)


def test_invoices_import_through_the_admin_with_confirmation(admin_client, customers):
    upload = SimpleUploadedFile("invoices.csv", INVOICES_CSV.encode("utf-8"),
                                content_type="text/csv")
    response = admin_client.post("/admin/dunning/invoice/import/",
                                 {"format": "0", "import_file": upload})

    assert response.status_code == 200
    confirm_form = response.context["confirm_form"]
    assert confirm_form is not None
    assert not Invoice.objects.exists(), "the first step is a dry run"

    data = {name: value for name, value in confirm_form.initial.items()}
    response = admin_client.post("/admin/dunning/invoice/process_import/", data)

    assert response.status_code == 302
    assert sorted(Invoice.objects.values_list("number", "customer__email", "amount_due")) == [
        ("INV-1", "ada@example.com", Decimal("120.50")),
        ("INV-2", "bob@example.com", Decimal("0.10")),
    ]


def test_a_bad_invoice_file_in_the_admin_shows_the_row_and_offers_no_confirmation(
        admin_client, customers):
    upload = SimpleUploadedFile(
        "invoices.csv", (INVOICES_CSV + "INV-3,nobody@example.com,5,EUR,2026-03-02\n").encode(),
        content_type="text/csv")

    response = admin_client.post("/admin/dunning/invoice/import/",
                                 {"format": "0", "import_file": upload})

    assert response.status_code == 200
    assert "confirm_form" not in response.context
    assert response.context["result"].has_validation_errors()
    assert "nobody@example.com" in response.content.decode()
    assert not Invoice.objects.exists()


def test_policy_changelist_offers_import_and_export(admin_client, strict_policy):
    response = admin_client.get("/admin/dunning/policy/")
    assert b"/admin/dunning/policy/import/" in response.content
    response = admin_client.post("/admin/dunning/policy/export/",
                                 {"format": "0", "resource": "0", **{
                                     f"policyresource_{name}": "on" for name in
                                     ["key", "name", "steps", "templates"]}})
    assert response.status_code == 200
    rows = csv_rows(response.content.decode("utf-8"))
    strict = next(row for row in rows if row["key"] == "strict")
    assert strict["name"] == "'=Strict"
    assert [s["key"] for s in json.loads(strict["steps"])] == ["first", "warn", "cut"]

