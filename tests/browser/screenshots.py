"""Screenshots of the main screens of the admin back office, for the README.

Not collected with the tests (the file name does not start with ``test_``); run it with
``make screenshots``, i.e.::

    .venv/bin/python -m pytest -p no:cacheprovider tests/browser/screenshots.py

It seeds a dozen customers dunned daily over eight weeks (some pay after a reminder or
two, some never), records a call and a promise through the workbench like a collector
would, and writes PNGs (1280 px wide) to docs/screenshots/ (or $DUNNING_SCREENSHOTS_DIR),
replacing the old ones.
"""

import datetime
import os
from pathlib import Path

import pytest

from dunning.models import Case, MessageTemplate, Policy

from . import data

try:
    from playwright.sync_api import expect
except ImportError:  # skipped like a missing Chromium (see conftest); CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip("the Python package `playwright` is not installed", allow_module_level=True)

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

OUT = Path(
    os.environ.get("DUNNING_SCREENSHOTS_DIR")
    or Path(__file__).resolve().parents[2] / "docs" / "screenshots"
)


def run_action(page, live_server, customer, action, fields, submit):
    """Select ``customer``'s case in the case list, run ``action`` with its form filled."""
    page.goto(f"{live_server.url}/admin/dunning/case/?status__exact=open")
    page.locator("#result_list tbody tr", has_text=customer).locator(
        "input[name=_selected_action]"
    ).check()
    page.locator("select[name=action]").select_option(action)
    page.get_by_role("button", name="Go").click()
    for label, value in fields.items():
        field = page.get_by_label(label)
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(label=value)
        else:
            field.fill(value)
    page.get_by_role("button", name=submit).click()
    expect(page.locator("ul.messagelist .success")).to_be_visible()


def shoot(page, name, full_page=True):
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"wrote {path}")


def test_screenshots(page, live_server, boss, login):
    data.seed_demo()
    # The navigation sidebar closed, as Django remembers it: room for the case list.
    page.context.add_init_script(
        "window.localStorage.setItem('django.admin.navSidebarIsOpen', 'false')"
    )
    ada = Case.objects.get(customer__name="Ada Lovelace Ltd", status=Case.Status.OPEN)
    login(page, boss)

    # A collector's morning on Ada's case: a call, then the promise it brought.
    promised = data.today() + datetime.timedelta(days=5)
    run_action(page, live_server, "Ada Lovelace Ltd", "log_call",
               {"Outcome": "Promised to pay",
                "Notes": "Spoke to Ada's accountant: INV-1001 was held up by a missing PO "
                         "number; both invoices will be paid together."},
               "Log call")
    run_action(page, live_server, "Ada Lovelace Ltd", "record_promise",
               {"Promised payment date": promised.isoformat(), "Promised amount": "330.50"},
               "Record promise")

    # The workbench: the case list with the action menu open on two selected cases.
    page.goto(f"{live_server.url}/admin/dunning/case/")
    expect(page.locator("#result_list")).to_contain_text("Brunel & Sons")
    shoot(page, "cases")

    page.goto(f"{live_server.url}/admin/dunning/case/{ada.pk}/change/")
    expect(page.locator("#content")).to_contain_text("Promise to pay")
    shoot(page, "case")

    policy = Policy.objects.get(key="standard")
    page.goto(f"{live_server.url}/admin/dunning/policy/{policy.pk}/change/")
    expect(page.get_by_label("Minimum gap (days)")).to_be_visible()
    shoot(page, "policy")

    template = MessageTemplate.objects.get(
        policy=policy, step_key="formal-notice", language="en", channel="email"
    )
    page.goto(f"{live_server.url}/admin/dunning/messagetemplate/{template.pk}/preview/"
              f"?customer={ada.customer_id}")
    frame = page.frame_locator("iframe#dunning-preview-html").locator("body")
    expect(frame).to_contain_text("INV-1014")
    shoot(page, "template-preview")

    page.goto(f"{live_server.url}/admin/dunning/case/tomorrow/")
    expect(page.locator("#content")).to_contain_text(
        (data.today() + datetime.timedelta(days=1)).isoformat()
    )
    shoot(page, "plan")

    page.goto(f"{live_server.url}/admin/dunning/case/dashboard/")
    expect(page.get_by_role("img", name="Invoices by days overdue")).to_be_visible()
    shoot(page, "dashboard")
