"""The customer's self-service page in a real browser: the customer opens the link of a
message really sent by a run, promises to pay, disputes an invoice, asks for a payment
plan and opts out of email reminders, and a collector sees each on the case's timeline. The page works by keyboard and on a phone screen.

``DUNNING_PORTAL_SCREENSHOTS=docs/screenshots`` also writes portal-desktop.png and
portal-phone.png there.
"""

import datetime
import os
import re
from pathlib import Path

import pytest

from dunning.engine.run import run_dunning
from dunning.models import Case, CaseEvent, Dispute, PaymentPlan
from dunning.testing import create_customer, create_invoice

from . import data

try:
    from playwright.sync_api import expect
except ImportError:  # skipped like a missing Chromium (see conftest); CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip("the Python package `playwright` is not installed", allow_module_level=True)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def link(live_server, settings, mailoutbox, transactional_db):
    """The portal link of the first reminder a run sent to Ada."""
    settings.DUNNING = {**settings.DUNNING, "PORTAL_BASE_URL": f"{live_server.url}/dunning/",
                        "PORTAL_PAY_URL": "https://pay.example/{customer}",
                        "PORTAL_PLAN_AUTO_APPROVE": {"max_instalments": 3,
                                                     "max_amount": {"EUR": "1000"}}}
    ada = create_customer(name="Ada Lovelace Ltd", email="ada@example.com", language="en")
    create_invoice(ada, number="INV-2001", amount_due="250.00", due_date=data.days_ago(12))
    create_invoice(ada, number="INV-2002", amount_due="80.50", due_date=data.days_ago(6))
    other = create_customer(name="Brunel & Sons", email="accounts@brunel.example")
    create_invoice(other, number="INV-2003", amount_due="1200.00", due_date=data.days_ago(20))
    run_dunning(data.today())
    body = next(m.body for m in mailoutbox if m.to == ["ada@example.com"])
    return re.search(r"http://\S+/dunning/portal/[^/\s]+/", body).group(0)


def test_customer_promises_and_disputes_and_the_collector_sees_it(
    link, page, new_page, login, boss, live_server
):
    page.goto(link)
    expect(page.get_by_role("heading", name="Your open invoices")).to_be_visible()
    table = page.locator("table")
    expect(table).to_contain_text("INV-2001")
    expect(table).to_contain_text("€330.50")
    expect(table).not_to_contain_text("INV-2003")  # another customer's invoice
    expect(page.get_by_role("link", name="Pay now")).to_have_attribute(
        "href", re.compile(r"^https://pay\.example/\d+$"))

    promised = data.today() + datetime.timedelta(days=7)
    page.get_by_label("I will pay by").fill(promised.isoformat())
    page.get_by_label("Amount").fill("330.50")
    page.get_by_role("button", name="Promise to pay").click()
    expect(page.get_by_role("status")).to_contain_text("noted your promise to pay")

    page.get_by_label("Invoice", exact=True).select_option("INV-2002")
    page.get_by_label("What is wrong with this invoice?").fill("We never got these parts.")
    page.get_by_role("button", name="Dispute the invoice").click()
    expect(page.get_by_role("status")).to_contain_text("look into the invoice")
    expect(page.locator("tr", has_text="INV-2002")).to_contain_text("disputed")

    # More instalments than plans are approved with by themselves: it goes to staff.
    page.get_by_label("Number of instalments").select_option("4")
    page.get_by_label("First instalment on").fill(
        (data.today() + datetime.timedelta(days=3)).isoformat())
    page.get_by_role("button", name="Ask for a payment plan").click()
    expect(page.get_by_role("status")).to_contain_text("look at your payment plan request")
    expect(page.get_by_role("heading", name=re.compile("Your payment plan"))).to_contain_text(
        "Requested")

    page.get_by_label("Send me reminders by email").uncheck()
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.get_by_role("status")).to_contain_text("contact preferences are saved")
    expect(page.get_by_label("Send me reminders by email")).not_to_be_checked()

    case = Case.objects.get(customer__name="Ada Lovelace Ltd")
    assert case.promised_on == promised
    assert Dispute.objects.get(case=case).invoice_number == "INV-2002"
    assert PaymentPlan.objects.get(case=case).status == PaymentPlan.Status.REQUESTED

    staff = login(new_page(), boss)
    staff.goto(f"{live_server.url}/admin/dunning/case/{case.pk}/change/")
    timeline = staff.locator("body")
    expect(timeline).to_contain_text("We never got these parts.")
    expect(timeline).to_contain_text("Promise to pay")
    expect(timeline).to_contain_text("Payment plan requested")
    expect(timeline).to_contain_text("Opted out of Email")
    # The requested plan waits for the collector in the plans list.
    staff.goto(f"{live_server.url}/admin/dunning/paymentplan/?status__exact=requested")
    expect(staff.locator("#result_list")).to_contain_text(str(case))
    kinds = set(CaseEvent.objects.filter(case=case).values_list("kind", flat=True))
    assert {"promise", "dispute", "plan-requested", "consent"} <= kinds


def test_the_page_works_by_keyboard_and_on_a_phone(link, browser):
    context = browser.new_context(viewport=PHONE, locale="de-DE", is_mobile=True)
    page = context.new_page()
    try:
        page.goto(link)
        # The customer's language (English) wins over the browser's.
        expect(page.get_by_role("heading", name="Your open invoices")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        # Every form field has a label.
        for field in page.locator("main input:not([type=hidden]), main select, main textarea").all():
            assert field.evaluate("f => f.labels.length") == 1, field.evaluate("f => f.name")
        # A plan by keyboard: choose 3 instalments, a date, submit with Enter.
        page.get_by_label("Number of instalments").select_option("3")
        first = data.today() + datetime.timedelta(days=3)
        page.get_by_label("First instalment on").fill(first.isoformat())
        page.get_by_label("First instalment on").press("Enter")
        expect(page.get_by_role("status")).to_contain_text("payment plan is approved")
        expect(page.get_by_role("heading", name=re.compile("Your payment plan"))).to_be_visible()
        shots = os.environ.get("DUNNING_PORTAL_SCREENSHOTS")
        if shots:
            page.goto(link)
            page.screenshot(path=str(Path(shots) / "portal-phone.png"), full_page=True)
    finally:
        context.close()
    if shots:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        desktop = context.new_page()
        desktop.goto(link)
        desktop.screenshot(path=str(Path(shots) / "portal-desktop.png"), full_page=True)
        context.close()


def test_on_a_phone_a_refused_form_brings_the_customer_to_the_errors(link, browser):
    """The promise form is far below the invoices on a phone: when it is refused, the page
    opens on the error summary, which has the focus and is in view (issue 14)."""
    context = browser.new_context(viewport=PHONE, locale="de-DE", is_mobile=True)
    page = context.new_page()
    try:
        page.goto(link)
        page.get_by_label("I will pay by").fill(
            (data.today() + datetime.timedelta(days=400)).isoformat())
        page.get_by_label("Amount").fill("0")
        page.get_by_role("button", name="Promise to pay").click()
        summary = page.locator("#errors")
        expect(summary).to_be_focused()
        expect(summary).to_be_in_viewport()
        expect(summary).to_contain_text("no later than")
        # Its link takes the customer to the field.
        summary.get_by_role("link", name=re.compile("Amount")).click()
        expect(page.get_by_label("Amount")).to_be_in_viewport()
    finally:
        context.close()
