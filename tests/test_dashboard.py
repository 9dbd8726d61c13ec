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

from dunning.admin.workbench import PROMISE_GRACE_DAYS
from dunning.models import Case, CaseStep, Invoice, Policy
from dunning.queries import reports
from dunning.testing import create_customer, create_invoice
from tests.conftest import DAY0, day

DASHBOARD_URL = "/admin/dunning/case/dashboard/"
TODAY = day(12)


def pay(customer):
    Invoice.objects.filter(customer=customer).update(amount_due=0)


def days(n):
    return datetime.timedelta(days=n)


def make_case(status, opened_on, closed_on=None, **fields):
    """A case written directly (for figures that only read the case rows)."""
    return Case.objects.create(
        customer=create_customer(), policy=Policy.objects.get(key="standard"), status=status,
        opened_on=opened_on, opened_at=timezone.now(), closed_on=closed_on, **fields,
    )


def make_step(case, key, executed_on, status="sent", invoices=()):
    return CaseStep.objects.create(
        case=case, step_key=key, executed_on=executed_on, created_at=timezone.now(),
        status=status, invoices=list(invoices),
    )


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


def test_average_days_to_collect_is_a_mean_over_resolved_cases_only(db):
    assert reports.average_days_to_collect() == {"cases": 0, "days": None}
    for span in (1, 1, 2):
        make_case(Case.Status.RESOLVED, DAY0, DAY0 + days(span))
    make_case(Case.Status.TERMINATED, DAY0, DAY0 + days(45))
    make_case(Case.Status.WRITTEN_OFF, DAY0, DAY0 + days(90))
    make_case(Case.Status.OPEN, DAY0 - days(300))
    # 4 / 3 days, rounded to one decimal.
    assert reports.average_days_to_collect() == {"cases": 3, "days": Decimal("1.3")}


def test_recovered_amount_is_what_the_resolved_cases_last_message_listed(history):
    # A's initial-notice listed 100 EUR, B's formal-notice 200 EUR; both resolved within
    # 30 days. W was written off: nothing recovered. C and D are open.
    assert reports.recovered_amounts(TODAY) == {
        30: [{"currency": "EUR", "amount": Decimal("300.00")}],
        90: [{"currency": "EUR", "amount": Decimal("300.00")}],
    }
    # On day 42 A and B (closed on days 4 and 12) are in the 90-day window only.
    assert reports.recovered_amounts(day(42)) == {
        30: [], 90: [{"currency": "EUR", "amount": Decimal("300.00")}],
    }
    assert reports.recovered_amounts(day(200)) == {30: [], 90: []}


def test_recovered_amount_per_currency_from_the_last_step_not_the_first(db, run):
    # E owes 100 EUR (initial-notice, day 1); 40 EUR and 30 USD fall due and join the
    # case (gentle-reminder, day 4, lists all three); E pays everything; resolved day 8.
    e = create_customer(name="E")
    create_invoice(e, amount_due="100.00", due_date=DAY0)
    create_invoice(e, amount_due="40.00", due_date=day(2))
    create_invoice(e, amount_due="30.00", currency="USD", due_date=day(2))
    run(1)
    run(4)
    pay(e)
    run(8)
    case = Case.objects.get(customer=e)
    assert (case.status, case.last_step_key) == ("resolved", "gentle-reminder")
    figures = reports.recovered_amounts(day(8))
    assert figures[30] == figures[90] == [
        {"currency": "EUR", "amount": Decimal("140.00")},
        {"currency": "USD", "amount": Decimal("30.00")},
    ]


def test_recovered_amount_sums_the_snapshots_in_the_database_and_in_python_alike(db):
    """PostgreSQL sums the snapshots in SQL, other databases in Python: both give the
    same figures (on SQLite both calls take the Python path)."""
    listed = [
        [{"number": "1", "amount_due": "10.10", "currency": "eur", "due_date": "2026-01-01"},
         {"number": "2", "amount_due": "5.05", "currency": "CHF", "due_date": "2026-01-02"}],
        [{"number": "3", "amount_due": "0.85", "currency": "EUR ", "due_date": "2026-01-03"}],
        [{"number": "4", "amount_due": "1000", "currency": "XTS", "due_date": "2026-01-04"}],
    ]
    for closed_ago, invoices in zip((0, 29, 60), listed, strict=True):
        case = make_case(Case.Status.RESOLVED, DAY0 - days(100), DAY0 - days(closed_ago),
                         last_step_key="formal-notice")
        make_step(case, "initial-notice", DAY0 - days(99), invoices=[invoices[0]])  # not last
        make_step(case, "formal-notice", DAY0 - days(90), invoices=invoices)
        make_step(case, "payment-received", DAY0 - days(closed_ago))
    # Resolved outside the windows, or not resolved: never counted.
    old = make_case(Case.Status.RESOLVED, DAY0 - days(200), DAY0 - days(90),
                    last_step_key="initial-notice")
    make_step(old, "initial-notice", DAY0 - days(200), invoices=listed[0])
    gone = make_case(Case.Status.TERMINATED, DAY0 - days(50), DAY0 - days(5),
                     last_step_key="termination")
    make_step(gone, "termination", DAY0 - days(5), invoices=listed[0])
    expected = {
        30: [{"currency": "CHF", "amount": Decimal("5.05")},
             {"currency": "EUR", "amount": Decimal("10.95")}],
        90: [{"currency": "CHF", "amount": Decimal("5.05")},
             {"currency": "EUR", "amount": Decimal("10.95")},
             {"currency": "XTS", "amount": Decimal("1000")}],
    }
    assert reports.recovered_amounts(DAY0) == expected
    rows = reports._recovered_python(DAY0, reports.RECOVERY_WINDOWS)
    by_currency = {cur: values for cur, values in rows}
    assert by_currency == {"EUR": [Decimal("10.95"), Decimal("10.95")],
                           "CHF": [Decimal("5.05"), Decimal("5.05")],
                           "XTS": [None, Decimal("1000")]}


def test_recovered_amount_in_python_skips_what_is_not_an_amount(db):
    case = make_case(Case.Status.RESOLVED, DAY0 - days(10), DAY0, last_step_key="initial-notice")
    make_step(case, "initial-notice", DAY0 - days(9), invoices=[
        {"number": "1", "amount_due": "12.50", "currency": "EUR"},
        {"number": "2", "amount_due": "twelve", "currency": "EUR"},
        {"number": "3", "currency": "EUR"},
        "not an invoice",
    ])
    assert reports._recovered_python(DAY0, (30,)) == [("EUR", [Decimal("12.50")])]


def test_promises_kept_broken_and_pending(db):
    today = DAY0
    grace = days(PROMISE_GRACE_DAYS)
    assert PROMISE_GRACE_DAYS == 3  # the workbench pauses dunning this long after the date
    resolved, open_, terminated = Case.Status.RESOLVED, Case.Status.OPEN, Case.Status.TERMINATED
    kept = [
        # paid on the last day of the grace
        make_case(resolved, today - days(40), today - days(20) + grace,
                  promised_on=today - days(20)),
        # paid before the promised date
        make_case(resolved, today - days(40), today - days(30), promised_on=today - days(25)),
        # promised 89 days ago: still inside the 90 days counted
        make_case(resolved, today - days(120), today - days(88), promised_on=today - days(89)),
    ]
    broken = [
        # paid one day after the grace
        make_case(resolved, today - days(40), today - days(20) + grace + days(1),
                  promised_on=today - days(20)),
        # still open the day after the grace ended
        make_case(open_, today - days(40), promised_on=today - grace - days(1)),
        # closed without payment, even before the promised date
        make_case(terminated, today - days(60), today - days(2), promised_on=today + days(5)),
        make_case(Case.Status.WRITTEN_OFF, today - days(60), today - days(10),
                  promised_on=today - days(12)),
    ]
    pending = [
        # the grace ends today: dunning goes on tomorrow
        make_case(open_, today - days(40), promised_on=today - grace),
        make_case(open_, today - days(40), promised_on=today + days(10)),
    ]
    # Not counted: no promise; promised 90 days ago or earlier.
    make_case(open_, today - days(40))
    make_case(resolved, today - days(150), today - days(89), promised_on=today - days(90))
    make_case(open_, today - days(150), promised_on=today - days(100))
    assert (len(kept), len(broken), len(pending)) == (3, 4, 2)
    assert reports.promises(today) == {
        "days": 90, "grace_days": 3, "promises": 9,
        "kept": 3, "broken": 4, "pending": 2, "rate": Decimal("0.4286"),
    }
    # Over 30 days: all but the promise of 89 days ago.
    assert reports.promises(today, days=30)["promises"] == 8
    # Two weeks later both pending promises are broken (the cases are still open), and
    # the promise of 89 days ago has left the window.
    assert reports.promises(today + days(14)) == {
        "days": 90, "grace_days": 3, "promises": 8,
        "kept": 2, "broken": 6, "pending": 0, "rate": Decimal("0.2500"),
    }


def test_promise_kept_when_the_run_resolves_the_case_within_the_grace(db, run):
    c = create_customer(name="Promising")
    create_invoice(c, amount_due="80.00", due_date=DAY0)
    late = create_customer(name="Late")
    create_invoice(late, amount_due="90.00", due_date=DAY0)
    run(1)
    # Both promise to pay by day 5 (the workbench pauses dunning until day 8).
    Case.objects.update(promised_on=day(5), promised_amount=Decimal("80.00"),
                        paused_until=day(8), next_due_on=day(8))
    assert reports.promises(day(5))["pending"] == 2
    pay(c)
    run(8)  # the first run after the pause resolves the paid case: on the grace's last day
    assert reports.promises(day(8)) == {
        "days": 90, "grace_days": 3, "promises": 2, "kept": 1, "broken": 0, "pending": 1,
        "rate": Decimal("1.0000"),
    }
    pay(late)
    run(9)
    figures = reports.promises(day(9))
    assert (figures["kept"], figures["broken"], figures["pending"]) == (1, 1, 0)
    assert figures["rate"] == Decimal("0.5000")


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


def test_share_paid_counts_a_payment_on_the_seventh_day_not_the_eighth(db):
    policy_steps = ["initial-notice", "gentle-reminder", "formal-notice"]
    for key, paid_after in zip(policy_steps, (7, 8, 0), strict=True):
        case = make_case(Case.Status.RESOLVED, DAY0, DAY0 + days(10 + paid_after),
                         last_step_key=key)
        make_step(case, key, DAY0 + days(10))
        # Not counted: a failed step; the thank-you message.
        make_step(case, "suspension", DAY0 + days(10), status="failed")
        make_step(case, "payment-received", DAY0 + days(10 + paid_after))
    open_case = make_case(Case.Status.OPEN, DAY0)
    make_step(open_case, "initial-notice", DAY0)
    # A case resolved by a step before it was sent (dates out of order) is not "after".
    odd = make_case(Case.Status.RESOLVED, DAY0, DAY0 + days(5))
    make_step(odd, "formal-notice", DAY0 + days(6))
    assert reports.step_effectiveness() == [
        {"step_key": "initial-notice", "sent": 2, "paid": 1, "rate": Decimal("0.5000")},
        {"step_key": "gentle-reminder", "sent": 1, "paid": 0, "rate": Decimal("0.0000")},
        {"step_key": "formal-notice", "sent": 2, "paid": 1, "rate": Decimal("0.5000")},
    ]


def test_the_dashboard_counts_the_steps_of_90_days_that_have_had_their_7_days(db):
    # Window on DAY0: steps executed from DAY0 - 96 to DAY0 - 7 (90 days).
    assert reports.step_window(DAY0) == (DAY0 - days(96), DAY0 - days(7))
    for executed_ago, counted in ((6, False), (7, True), (96, True), (97, False)):
        case = make_case(Case.Status.RESOLVED, DAY0 - days(120), DAY0 - days(executed_ago))
        make_step(case, "initial-notice" if counted else "formal-notice", DAY0 - days(executed_ago))
    assert reports.step_effectiveness(today=DAY0, days=90) == [
        {"step_key": "initial-notice", "sent": 2, "paid": 2, "rate": Decimal("1.0000")},
    ]
    assert reports.dashboard(DAY0)["steps"] == reports.step_effectiveness(today=DAY0, days=90)
    # Without a window: every step ever sent.
    assert [s["sent"] for s in reports.step_effectiveness()] == [2, 2]


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
    # Promises on some cases, kept and broken ones after the next run.
    for c in Case.objects.filter(promised_on__isnull=True)[: cases // 3]:
        Case.objects.filter(pk=c.pk).update(promised_on=day(2), promised_amount=Decimal(10))
    run(4)


def queries(func):
    with CaptureQueriesContext(connection) as ctx:
        func()
    return len(ctx.captured_queries)


def test_query_count_does_not_grow_with_cases(db, run, django_assert_max_num_queries, client,
                                              django_user_model):
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    def page():
        response = client.get(DASHBOARD_URL, {"as_of": day(12).isoformat()})
        assert response.status_code == 200

    build(run, 3)
    small = queries(lambda: reports.dashboard(day(12)))
    small_page = queries(page)
    # Six for the figures (cases, overdue invoices, recovered amounts, steps, step
    # order, late-payment feedback), two for the session and the user.
    assert (small, small_page) == (6, 8)
    with django_assert_max_num_queries(6):
        figures = reports.dashboard(day(12))
    assert figures["promises"]["promises"] == 1
    assert figures["steps"][0]["sent"] == 3
    build(run, 57)
    assert Case.objects.count() == 60
    with django_assert_max_num_queries(6):
        figures = reports.dashboard(day(12))
    assert figures["steps"][0]["sent"] == 60
    with django_assert_max_num_queries(small_page):
        page()
    assert figures["open"]["count"] == 40
    assert figures["recovery"][30]["resolved"] == 20
    # 20 resolved cases of 10.00 each, in EUR and USD.
    assert [r["currency"] for r in figures["recovered"][30]] == ["EUR", "USD"]
    assert sum(r["amount"] for r in figures["recovered"][30]) == Decimal("200.00")
    assert figures["promises"]["promises"] == 20
    assert figures["promises"]["kept"] + figures["promises"]["broken"] > 0
    for func in (reports.open_cases, reports.recovery, reports.recovered_amounts,
                 reports.promises, reports.aging):
        with django_assert_max_num_queries(2):
            func(day(12))
    with django_assert_max_num_queries(1):
        reports.average_days_to_collect()
    with django_assert_max_num_queries(2):
        reports.step_effectiveness()


def test_page_renders_for_superuser_with_svg_charts(history, client, django_user_model):
    # A promised to pay by day 3 and paid (resolved day 4): kept; C promised day 2: broken.
    Case.objects.filter(customer=history["a"]).update(promised_on=day(3))
    Case.objects.filter(customer=history["c"]).update(promised_on=day(2))
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    response = client.get(DASHBOARD_URL, {"as_of": TODAY.isoformat()})
    assert response.status_code == 200
    page = response.content.decode()
    main = page.split('<div id="content-main"', 1)[1]
    # Aging, recovery rate, promises, steps.
    assert main.count('<svg xmlns="http://www.w3.org/2000/svg" role="img"') == 4
    assert "<script" not in main
    # Full-width bars: one per aging bucket (one invoice each), the 30-day recovery rate
    # (100 %), one kept and one broken promise, the best step.
    assert main.count('width="300" height="20"') == 4 + 1 + 2 + 1
    assert 'width="200" height="20"' in main  # the 90-day rate: 66.7 % of the width
    assert main.count('fill="#5b8a3c"') == main.count('fill="#ba2121"') == 1
    assert "€105.00" in page and "$50.00" in page
    assert "66.7 %" in page and "7.0" in page
    assert "initial-notice" in page and "25.0 %" in page
    # Steps of days 1 and 4 (TODAY - 7 = day 5): no formal-notice (day 8) yet.
    assert "formal-notice" not in main
    assert f"Steps sent from {(day(5) - days(89)).isoformat()} to {day(5).isoformat()}" in main
    # Recovered over 30 and 90 days: A's 100 EUR and B's 200 EUR.
    assert main.count('<td class="recovered">€300.00</td>') == 2
    assert '<td class="promises-kept">1</td>' in main
    assert '<td class="promises-broken">1</td>' in main
    assert '<td class="promises-pending">0</td>' in main
    assert '<td class="promises-rate">50.0 %</td>' in main
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
    assert "Eingebrachter Betrag" in page and "Zahlungszusagen" in page
    assert '<td class="recovered">300,00\xa0€</td>' in page


def test_a_bad_as_of_date_shows_today(db, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "a@example.com", "pw"))
    response = client.get(DASHBOARD_URL, {"as_of": "yesterday"})
    assert response.status_code == 200
    assert response.context["today"] == timezone.localdate()
    assert timezone.localdate().isoformat() in response.content.decode()


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


def test_late_payment_feedback_shows_on_the_dashboard(db, client, django_user_model, run,
                                                      overdue_customer):
    from dunning.models import Feedback

    overdue_customer(name="A")
    overdue_customer(name="B")
    run(1)
    cases = list(Case.objects.all())
    Feedback.objects.create(case=cases[0], reason="cash-flow")
    Feedback.objects.create(case=cases[1], reason="cash-flow")
    Feedback.objects.create(case=cases[1], reason="forgot")
    old = Feedback.objects.create(case=cases[0], reason="not-received")
    Feedback.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=100))
    figures = reports.late_reasons(timezone.localdate())
    assert figures["total"] == 3
    # Most frequent first; the one from 100 days ago is outside the 90 days.
    assert [(r["reason"], r["count"]) for r in figures["reasons"][:3]] == [
        ("cash-flow", 2), ("forgot", 1), ("not-received", 0)]
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    page = client.get(DASHBOARD_URL).content.decode()
    assert "Why customers paid late" in page
    assert '<tr class="late-cash-flow"><td>Short of money right now</td><td>2</td></tr>' in page
