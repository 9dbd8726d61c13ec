"""The admin back office in a real browser: a staff user logs in, edits the default
policy, previews a template, records a promise to pay, a collector is refused a write-off,
and the dashboard opens. Each step checks what the user sees on the page."""

import datetime
import os
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import formats, translation

from dunning.models import Case, CaseEvent, MessageTemplate, Policy

from . import data

try:
    from playwright.sync_api import expect
except ImportError:  # skipped like a missing Chromium (see conftest); CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip("the Python package `playwright` is not installed", allow_module_level=True)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CHANGELIST = "/admin/dunning/case/"


@pytest.fixture
def cases(transactional_db):
    return data.seed_small()


def case_row(page, customer_name):
    return page.locator("#result_list tbody tr", has_text=customer_name)


def action_values(page):
    return page.locator("select[name=action] option").evaluate_all(
        "options => options.map(o => o.value)"
    )


#: Sets the status field of the case form to a value, adding it when it is missing.
FORGE_STATUS = """status => {
    const form = document.querySelector("#case_form");
    let field = form.querySelector("[name=status]");
    if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = "status";
        form.appendChild(field);
    }
    if (field.tagName === "SELECT" && ![...field.options].some(o => o.value === status)) {
        field.add(new Option(status, status));
    }
    field.value = status;
}"""


def shown_status(page):
    """The status on the case page: the chosen option of its select, or the read-only text."""
    field = page.locator(".field-status")
    expect(field).to_be_visible()
    select = field.locator("select")
    if select.count():
        return select.evaluate("s => s.options[s.selectedIndex].text").strip()
    return field.locator(".readonly").inner_text().strip()


def shown_date(value):
    with translation.override("en"):
        return formats.date_format(value, "DATE_FORMAT")


def test_staff_user_logs_in_through_the_admin_form(page, live_server, boss):
    page.goto(f"{live_server.url}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errornote")).to_contain_text("enter the correct username and password")

    page.get_by_label("Password").fill(data.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    dunning_app = page.locator("#content-main .app-dunning")
    expect(dunning_app.get_by_role("link", name="Cases", exact=True)).to_be_visible()
    expect(dunning_app.get_by_role("link", name="Policies", exact=True)).to_be_visible()


def test_staff_user_edits_the_default_policy(page, live_server, boss, login):
    login(page, boss)
    page.get_by_role("link", name="Policies", exact=True).click()
    page.get_by_role("link", name="Standard", exact=True).click()
    expect(page.get_by_role("heading", name="Change policy")).to_be_visible()
    gap = page.get_by_label("Minimum gap (days)")
    expect(gap).to_have_value("3")

    gap.fill("5")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("ul.messagelist .success")).to_contain_text("was changed successfully")
    expect(page.locator("#result_list")).to_contain_text("Standard")
    assert Policy.objects.get(key="standard").min_gap_days == 5

    # An invalid edit: two steps on the same day. The form comes back with the reason,
    # and nothing is saved.
    page.locator("#result_list").get_by_role("link", name="Standard", exact=True).click()
    expect(gap).to_have_value("5")
    gentle = page.locator("tr.form-row").filter(
        has=page.locator("input[name$='-key'][value='gentle-reminder']")
    ).locator("input[name$='-offset_days']")
    expect(gentle).to_have_value("4")
    gentle.fill("1")
    gap.fill("2")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator("#content-main")).to_contain_text(
        "have the same offset (1 days)"
    )
    policy = Policy.objects.get(key="standard")
    assert policy.min_gap_days == 5
    assert policy.steps.get(key="gentle-reminder").offset_days == 4


def test_staff_user_previews_a_message_template(page, live_server, boss, login, cases):
    template = MessageTemplate.objects.get(
        policy__key="standard", step_key="gentle-reminder", language="en", channel="email"
    )
    login(page, boss)
    page.goto(f"{live_server.url}/admin/dunning/messagetemplate/{template.pk}/change/")
    page.get_by_role("link", name="Preview", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/messagetemplate/{template.pk}/preview/"))

    # A sample customer with two sample invoices.
    expect(page.locator("#dunning-preview-customer")).to_contain_text("Sample Customer Ltd")
    subject = page.locator("#dunning-preview-subject")
    expect(subject).not_to_be_empty()
    expect(page.locator("#dunning-preview-text")).to_contain_text("INV-1001")
    expect(page.locator("#dunning-preview-text")).to_contain_text("INV-1002")
    iframe = page.locator("iframe#dunning-preview-html")
    # The HTML body is shown in a sandbox: no script, no form, no same-origin access.
    assert iframe.get_attribute("sandbox") == ""
    body = page.frame_locator("iframe#dunning-preview-html").locator("body")
    expect(body).to_contain_text("INV-1001")
    expect(body).to_contain_text("Sample Customer Ltd")

    # The same template for a real customer: its own overdue invoices.
    ada = cases["Ada Lovelace Ltd"].customer
    page.get_by_label("Customer id").fill(str(ada.pk))
    page.get_by_role("button", name="Preview for this customer").click()
    expect(page.locator("#dunning-preview-customer")).to_contain_text("Ada Lovelace Ltd")
    expect(page.locator("#dunning-preview-invoices")).to_contain_text("INV-2001")
    expect(page.locator("#dunning-preview-invoices")).to_contain_text("INV-2002")
    expect(body).to_contain_text("INV-2001")
    expect(body).to_contain_text("Ada Lovelace Ltd")
    expect(body).not_to_contain_text("Sample Customer Ltd")


def test_staff_user_records_a_promise_to_pay(page, live_server, boss, login, cases):
    case = cases["Ada Lovelace Ltd"]
    promised = data.today() + datetime.timedelta(days=7)
    login(page, boss)
    page.get_by_role("link", name="Cases", exact=True).click()
    expect(page.locator("#result_list")).to_contain_text("Brunel & Sons")
    # The superuser may write off; the collector of the next test may not.
    assert "write_off" in action_values(page)

    case_row(page, "Ada Lovelace Ltd").locator("input[name=_selected_action]").check()
    page.locator("select[name=action]").select_option("record_promise")
    page.get_by_role("button", name="Go").click()

    expect(page.get_by_role("heading", name="Record a promise to pay")).to_be_visible()
    expect(page.locator("#content-main")).to_contain_text("Ada Lovelace Ltd")
    page.get_by_label("Promised payment date").fill(promised.isoformat())
    page.get_by_label("Promised amount").fill("250.00")
    page.get_by_role("button", name="Record promise").click()
    expect(page.locator("ul.messagelist .success")).to_contain_text(
        f"Promise to pay 250.00 by {promised.isoformat()} recorded on Case {case.pk}"
    )

    # The case page: the promise on the timeline, dunning paused until 3 days after it.
    page.goto(f"{live_server.url}/admin/dunning/case/{case.pk}/change/")
    content = page.locator("#content")
    expect(content).to_contain_text("Promise to pay")
    expect(content).to_contain_text(f"Promised to pay 250.00 by {promised.isoformat()}.")
    paused_until = promised + datetime.timedelta(days=3)
    expect(page.locator(".field-paused_until")).to_contain_text(shown_date(paused_until))
    expect(page.locator(".field-promised_on")).to_contain_text(shown_date(promised))

    case.refresh_from_db()
    assert (case.promised_on, case.promised_amount) == (promised, Decimal("250.00"))
    assert case.paused_until == paused_until
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.PROMISE)
    assert event.actor == boss
    # The other cases are untouched.
    assert not Case.objects.exclude(pk=case.pk).filter(promised_on__isnull=False).exists()


def test_collector_without_permission_is_refused_a_write_off(
    new_page, live_server, collector, login, cases
):
    case = cases["Brunel & Sons"]
    page = login(new_page(), collector)
    page.get_by_role("link", name="Cases", exact=True).click()
    expect(case_row(page, "Brunel & Sons")).to_be_visible()

    # The action is not offered; the collector's own actions are.
    actions = action_values(page)
    assert "record_promise" in actions and "add_note" in actions
    assert "write_off" not in actions
    expect(page.locator("select[name=action]")).not_to_contain_text("Write off")

    # A forged POST of the write-off, with the collector's session and CSRF token.
    token = page.locator("#changelist-form input[name=csrfmiddlewaretoken]").input_value()
    response = page.request.post(
        f"{live_server.url}{CHANGELIST}",
        form={
            "csrfmiddlewaretoken": token,
            "action": "write_off",
            "_selected_action": str(case.pk),
            "apply": "yes",
            "reason": "forged",
        },
        headers={"Referer": f"{live_server.url}{CHANGELIST}"},
    )
    assert response.ok, response.status
    refused = response.text()
    # Django does not know the action for this user: "No action selected."
    assert re.search(r'<li class="(warning|error)">', refused), refused
    assert "written off" not in refused
    assert "Write off cases" not in refused  # not even the confirmation page

    # The same forged through the case page's buttons: forbidden.
    response = page.request.post(
        f"{live_server.url}{reverse('admin:dunning_case_act', args=[case.pk, 'write_off'])}",
        form={"csrfmiddlewaretoken": token, "apply": "yes", "reason": "forged"},
    )
    assert response.status == 403

    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert not CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.WRITTEN_OFF).exists()
    page.goto(f"{live_server.url}/admin/dunning/case/{case.pk}/change/")
    assert shown_status(page) == "Open"
    expect(page.get_by_role("button", name=re.compile("Write off"))).to_have_count(0)
    expect(page.locator("#content")).not_to_contain_text("written off")

    # Nor by saving the case form with the status "written off" (a select the browser
    # offers, or a field forged into the form when the status is read-only).
    page.evaluate(FORGE_STATUS, "written_off")
    page.get_by_role("button", name="Save", exact=True).click()
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN, "a collector wrote off a case through its form"
    assert not CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.WRITTEN_OFF).exists()


def test_staff_user_opens_the_dashboard(page, live_server, boss, login, cases):
    login(page, boss)
    page.get_by_role("link", name="Cases", exact=True).click()
    page.get_by_role("link", name="Collections dashboard").click()
    expect(page.get_by_role("heading", name="Collections dashboard")).to_be_visible()
    expect(page.locator("#content-main")).to_contain_text(
        f"Figures as of {data.today().isoformat()}."
    )
    expect(page.locator(".open-count")).to_have_text("3")
    # One sum per currency of the open cases.
    expect(page.locator(".open-amounts")).to_contain_text("€1,530.50")
    expect(page.locator(".open-amounts")).to_contain_text("CHF99.00")

    aging = page.get_by_role("img", name="Invoices by days overdue")
    expect(aging).to_be_visible()
    assert aging.evaluate("svg => svg.tagName") == "svg"
    expect(aging.locator("rect")).not_to_have_count(0)
    widths = aging.locator("rect").evaluate_all(
        "rects => rects.map(r => Number(r.getAttribute('width')))"
    )
    assert max(widths) > 0
    steps = page.get_by_role("img", name="Share paid after each step")
    expect(steps).to_be_visible()
    expect(page.locator("#content-main")).to_contain_text("initial-notice")
