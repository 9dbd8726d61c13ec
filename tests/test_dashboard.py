"""The collections dashboard: its figures (dunning.reports), a query count that does not
grow with the number of cases, and the admin page with its server-side SVG charts."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dunning import reports
from dunning.models import Case, Invoice, Policy
from dunning.testing import create_customer, create_invoice
from tests.conftest import DAY0, day

DASHBOARD_URL = "/admin/dunning/case/dashboard/"
TODAY = day(12)


def pay(customer):
    Invoice.objects.filter(customer=customer).update(amount_due=0)


@pytest.fixture
def history(db, run):
    """Four customers dunned over twelve days; A pays after day 1, B after day 8.

    - A: 100 EUR due DAY0; case opened day 1, resolved day 4.
    - B: 200 EUR due DAY0; case opened day 1, resolved day 12.
    - C: 50 USD due DAY0 and 25 EUR due DAY0-30; still open.
    - D: 70 EUR due DAY0-70 and 10 EUR due DAY0-100; still open.
    - W: a case written off on DAY0-20 (inside 90 days, outside 30).
    - F: 500 EUR due day 11, overdue on day 12 but no case yet: not counted.
    """
    a = create_customer(name="A")
    create_invoice(a, amount_due="100.00", due_date=DAY0)
    b = create_customer(name="B")
    create_invoice(b, amount_due="200.00", due_date=DAY0)
    c = create_customer(name="C")
    create_invoice(c, amount_due="50.00", currency="USD", due_date=DAY0)
    create_invoice(c, amount_due="25.00", due_date=DAY0 - datetime.timedelta(days=30))
    d = create_customer(name="D")
    create_invoice(d, amount_due="70.00", due_date=DAY0 - datetime.timedelta(days=70))
    create_invoice(d, amount_due="10.00", due_date=DAY0 - datetime.timedelta(days=100))
    w = create_customer(name="W")
    Case.objects.create(
        customer=w, policy=Policy.objects.get(key="standard"), status=Case.Status.WRITTEN_OFF,
        opened_on=DAY0 - datetime.timedelta(days=60), opened_at=timezone.now(),
        closed_on=DAY0 - datetime.timedelta(days=20),
    )
    run(1)
    pay(a)
    run(4)
    run(8)
    pay(b)
    run(12)
    f = create_customer(name="F")
    create_invoice(f, amount_due="500.00", due_date=day(11))
    return {"a": a, "b": b, "c": c, "d": d}


def test_history_is_what_the_figures_assume(history):
    cases = {c.customer.name: c for c in Case.objects.select_related("customer")}
    assert (cases["A"].status, cases["A"].opened_on, cases["A"].closed_on) == ("resolved", day(1), day(4))
    assert (cases["B"].status, cases["B"].opened_on, cases["B"].closed_on) == ("resolved", day(1), day(12))
    assert cases["C"].status == cases["D"].status == "open"
    steps = {
        name: sorted((s.executed_on, s.step_key) for s in case.steps.filter(status="sent"))
        for name, case in cases.items()
    }
    assert steps["A"] == [(day(1), "initial-notice"), (day(4), "payment-received")]
    assert steps["B"] == [(day(1), "initial-notice"), (day(4), "gentle-reminder"),
                          (day(8), "formal-notice"), (day(12), "payment-received")]
    for name in "CD":
        assert steps[name] == [(day(1), "initial-notice"), (day(4), "gentle-reminder"),
                               (day(8), "formal-notice"), (day(12), "suspension-warning")]


def test_open_cases_and_amount_overdue_per_currency(history):
    assert reports.open_cases(TODAY) == {
        "count": 2,
        "amounts": [
            {"currency": "EUR", "amount": Decimal("105.00"), "invoices": 3},
            {"currency": "USD", "amount": Decimal("50.00"), "invoices": 1},
        ],
    }


def test_recovery_rate_over_30_and_90_days(history):
    assert reports.recovery(TODAY) == {
        30: {"days": 30, "closed": 2, "resolved": 2, "rate": Decimal("1.0000")},
        90: {"days": 90, "closed": 3, "resolved": 2, "rate": Decimal("0.6667")},
    }
    # Thirty days later A and B (closed on days 4 and 12) have left the 30-day window.
    assert reports.recovery(day(42))[30] == {"days": 30, "closed": 0, "resolved": 0, "rate": None}
    assert reports.recovery(day(42))[90]["closed"] == 3


def test_average_days_to_collect(history):
    # A: day 1 -> day 4 (3 days); B: day 1 -> day 12 (11 days).
    assert reports.average_days_to_collect() == {"cases": 2, "days": Decimal("7.0")}


def test_aging_buckets(history):
    # On day 12: C's USD invoice is 12 days overdue, C's EUR one 42; D's 82 and 112.
    assert reports.aging(TODAY) == [
        {"bucket": "1-30", "count": 1,
         "currencies": [{"currency": "USD", "count": 1, "amount": Decimal("50.00")}]},
        {"bucket": "31-60", "count": 1,
         "currencies": [{"currency": "EUR", "count": 1, "amount": Decimal("25.00")}]},
        {"bucket": "61-90", "count": 1,
         "currencies": [{"currency": "EUR", "count": 1, "amount": Decimal("70.00")}]},
        {"bucket": "90+", "count": 1,
         "currencies": [{"currency": "EUR", "count": 1, "amount": Decimal("10.00")}]},
    ]


def test_aging_bucket_edges(db, run):
    c = create_customer(name="Edges")
    for overdue in (1, 30, 31, 60, 61, 90, 91):
        create_invoice(c, amount_due=str(overdue), due_date=day(10 - overdue))
    run(10)
    counts = {b["bucket"]: [x["amount"] for x in b["currencies"]] for b in reports.aging(day(10))}
    assert counts == {"1-30": [Decimal(31)], "31-60": [Decimal(91)],
                      "61-90": [Decimal(151)], "90+": [Decimal(91)]}


def test_share_paid_within_7_days_after_each_step(history):
    # initial-notice (day 1): A paid by day 4, B only on day 12 -> 1 of 4.
    # gentle-reminder (day 4): B on day 12 is 8 days later -> 0 of 3.
    # formal-notice (day 8): B on day 12 -> 1 of 3. suspension-warning (day 12): 0 of 2.
    assert reports.step_effectiveness() == [
        {"step_key": "initial-notice", "sent": 4, "paid": 1, "rate": Decimal("0.2500")},
        {"step_key": "gentle-reminder", "sent": 3, "paid": 0, "rate": Decimal("0.0000")},
        {"step_key": "formal-notice", "sent": 3, "paid": 1, "rate": Decimal("0.3333")},
        {"step_key": "suspension-warning", "sent": 2, "paid": 0, "rate": Decimal("0.0000")},
    ]


def build(run, cases):
    for n in range(cases):
        c = create_customer(name=f"Q{n}")
        create_invoice(c, amount_due="10.00", currency="EUR" if n % 2 else "USD",
                       due_date=DAY0 - datetime.timedelta(days=40 * (n % 3)))
    run(1)
    for c in Case.objects.all()[: cases // 3]:
        pay(c.customer)
    run(4)


def queries(func):
    with CaptureQueriesContext(connection) as ctx:
        func()
    return len(ctx.captured_queries)


def test_query_count_does_not_grow_with_cases(db, run, django_assert_max_num_queries, client,
                                              django_user_model):
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    build(run, 3)
    small = queries(lambda: reports.dashboard(day(5)))
    small_page = queries(lambda: client.get(DASHBOARD_URL, {"as_of": day(5).isoformat()}))
    build(run, 27)
    assert Case.objects.count() == 30
    with django_assert_max_num_queries(7):
        figures = reports.dashboard(day(5))
    assert queries(lambda: reports.dashboard(day(5))) == small
    assert queries(lambda: client.get(DASHBOARD_URL, {"as_of": day(5).isoformat()})) == small_page
    assert figures["open"]["count"] == 20
    assert figures["recovery"][30]["resolved"] == 10


def test_page_renders_for_superuser_with_svg_charts(history, client, django_user_model):
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    response = client.get(DASHBOARD_URL, {"as_of": TODAY.isoformat()})
    assert response.status_code == 200
    page = response.content.decode()
    main = page.split('<div id="content-main"', 1)[1]
    assert main.count('<svg xmlns="http://www.w3.org/2000/svg" role="img"') == 2
    assert "<script" not in main
    # One bar per aging bucket (one invoice each: full width) and per step.
    assert main.count('width="300" height="20"') == 4 + 1
    assert "€105.00" in page and "$50.00" in page
    assert "66.7 %" in page and "7.0" in page
    assert "initial-notice" in page and "25.0 %" in page
    changelist = client.get("/admin/dunning/case/").content.decode()
    assert DASHBOARD_URL in changelist


def test_money_follows_the_request_language(history, settings, django_user_model):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.locale.LocaleMiddleware"]
    client = Client()
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    page = client.get(DASHBOARD_URL, {"as_of": TODAY.isoformat()},
                      headers={"accept-language": "de"}).content.decode()
    assert "105,00\xa0€" in page and "50,00\xa0$" in page
    assert "Inkasso-Übersicht" in page


def test_staff_without_view_permission_is_refused(db, django_user_model):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(DASHBOARD_URL).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_case"))
    assert client.get(DASHBOARD_URL).status_code == 200


def test_anonymous_is_sent_to_login(db, client):
    response = client.get(DASHBOARD_URL)
    assert response.status_code == 302
    assert "/login/" in response["Location"]
