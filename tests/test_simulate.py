"""The policy simulator: a draft policy replayed over the last N days of real cases, beside
what the live policy sent (dunning/engine/simulate.py and the admin page)."""

import datetime
import html
import random
import re
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from dunning.engine.simulate import SimulationError, simulate
from dunning.models import Case, CaseEvent, CaseStep, Invoice, Policy, Step
from dunning.testing import create_customer, create_invoice, override_dunning_settings
from tests.conftest import day

STANDARD = ["initial-notice", "gentle-reminder", "formal-notice", "suspension-warning",
            "suspension", "final-notice", "termination"]


def make_policy(key, steps, *, min_gap_days=3, grace_days=0, minimum_balance=None):
    policy = Policy.objects.create(key=key, name=key.title(), is_active=False,
                                   min_gap_days=min_gap_days, grace_days=grace_days,
                                   minimum_balance=minimum_balance or {})
    for step_key, offset, action in steps:
        Step.objects.create(policy=policy, key=step_key, offset_days=offset, action=action)
    return policy


def pay(customer, amount="0"):
    Invoice.objects.filter(customer=customer).update(amount_due=Decimal(amount))


def live_steps():
    return Counter(CaseStep.objects.values_list("step_key", flat=True))


def counts(result, side):
    return {row["step_key"]: row[side] for row in result["steps"] if row[side]}


# -- a small scenario, computed by hand --------------------------------------------------------
@pytest.fixture
def three_customers(overdue_customer, run):
    """A pays on day 10, B never pays, C (due day 5) pays on day 20; a run every day from
    day 1 to day 50 under the standard policy."""
    a, b, c = overdue_customer(name="A"), overdue_customer(name="B"), overdue_customer(
        name="C", due=day(5))
    payments = {10: a, 20: c}
    for n in range(1, 51):
        if n in payments:
            pay(payments[n])
        run(n)
    return a, b, c


def test_the_live_counts_are_what_the_runs_sent(three_customers):
    result = simulate("standard", days=50, today=day(50))
    assert (result["start"], result["end"]) == (day(1).isoformat(), day(50).isoformat())
    assert result["cases"] == 3
    # A: 3 steps and thanks; B: all 7 steps; C (from day 6): 4 steps and thanks.
    expected = {"initial-notice": 3, "gentle-reminder": 3, "formal-notice": 3,
                "suspension-warning": 2, "suspension": 1, "final-notice": 1, "termination": 1,
                "payment-received": 2}
    assert counts(result, "live") == expected == dict(live_steps())
    assert result["live"] == {"total": 16, "steps": expected, "suspended": 1, "terminated": 1,
                              "cases_messaged": 3}


def test_the_live_policy_itself_reproduces_what_it_did(three_customers):
    result = simulate("standard", days=50, today=day(50))
    assert counts(result, "draft") == counts(result, "live")
    assert result["draft"] == result["live"]
    assert all(w["draft"] == w["live"] for w in result["weeks"])
    assert result["difference"] == {"total": 0, "suspended": 0, "terminated": 0,
                                    "cases_messaged": 0}


def test_a_draft_with_fewer_steps(three_customers):
    lenient = make_policy("lenient", [("reminder", 7, ""), ("last-call", 20, "")])
    result = simulate(lenient, days=50, today=day(50))
    # A: reminder day 7, paid day 10 (thanks). B: reminder day 7, last call day 20.
    # C (due day 5): reminder day 12, paid day 20 before its last call (thanks).
    assert counts(result, "draft") == {"reminder": 3, "last-call": 1, "payment-received": 2}
    assert result["draft"]["total"] == 6
    assert result["draft"]["suspended"] == result["draft"]["terminated"] == 0
    assert result["difference"]["total"] == 6 - 16
    rows = {row["step_key"]: row for row in result["steps"]}
    assert rows["initial-notice"] == {"step_key": "initial-notice", "draft": 0, "live": 3,
                                      "difference": -3, "in_draft": False}
    assert [row["step_key"] for row in result["steps"]][:2] == ["reminder", "last-call"]
    weeks = {w["week"]: (w["draft"], w["live"]) for w in result["weeks"]}
    # Week of Monday 9 March (days 7-13): the reminders of A and B (day 7), A's thanks
    # (day 10), C's reminder (day 12). Week of 16 March: B's last call and C's thanks (day 20).
    assert weeks["2026-03-09"] == (4, 5)
    assert weeks["2026-03-16"][0] == 2


def test_a_draft_with_a_longer_gap(three_customers):
    patient = make_policy("patient", [
        ("initial-notice", 1, ""), ("gentle-reminder", 4, ""), ("formal-notice", 8, ""),
        ("suspension-warning", 14, ""), ("suspension", 21, "suspend"),
        ("final-notice", 30, ""), ("termination", 45, "terminate"),
    ], min_gap_days=7)
    result = simulate(patient, days=50, today=day(50))
    # B: days 1, 8, 15, 22, 29, 36, 45. A: days 1, 8, paid 10.
    # C (due 5): days 6, 13; paid on day 20, the day its formal notice was due.
    assert counts(result, "draft") == {
        "initial-notice": 3, "gentle-reminder": 3, "formal-notice": 1,
        "suspension-warning": 1, "suspension": 1, "final-notice": 1, "termination": 1,
        "payment-received": 2,
    }
    assert (result["draft"]["suspended"], result["draft"]["terminated"]) == (1, 1)


def test_a_draft_that_terminates_sooner(three_customers):
    quick = make_policy("quick", [("notice", 1, ""), ("cut-off", 10, "terminate")])
    result = simulate(quick, days=50, today=day(50))
    # A pays on day 10, before the run that would cut it off. B is cut off on day 10,
    # C on day 15 (it pays on day 20: too late, no thanks).
    assert counts(result, "draft") == {"notice": 3, "cut-off": 2, "payment-received": 1}
    assert result["draft"]["terminated"] == 2
    assert result["difference"]["terminated"] == 1


def test_grace_days_and_a_minimum_balance(overdue_customer, run):
    small = overdue_customer(amount="4.00")
    big = overdue_customer(amount="400.00")
    for n in range(1, 21):
        run(n)
    draft = make_policy("grace", [("first", 1, ""), ("second", 6, "")], grace_days=2,
                        minimum_balance={"EUR": "5"})
    result = simulate(draft, days=20, today=day(20))
    # Only the big debt is dunned, each step two days later: days 3 and 8.
    assert counts(result, "draft") == {"first": 1, "second": 1}
    assert result["draft"]["cases_messaged"] == 1
    assert {c.customer_id for c in Case.objects.all()} == {small.pk, big.pk}


def test_only_the_window_counts_and_cases_bring_their_history(overdue_customer, run):
    overdue_customer()  # due day 0: steps on days 1, 4, 8, 14, 21, 30, 45
    for n in range(1, 31):
        run(n)
    result = simulate("standard", days=10, today=day(30))  # days 21..30
    assert counts(result, "live") == {"suspension": 1, "final-notice": 1}
    assert counts(result, "draft") == counts(result, "live")
    # A draft whose steps all fell before the window sends nothing in it.
    early = make_policy("early", [("one", 1, ""), ("two", 5, "")])
    assert simulate(early, days=10, today=day(30))["draft"]["total"] == 0


def test_a_promise_to_pay_pauses_the_draft_too(overdue_customer, run):
    customer = overdue_customer()
    for n in range(1, 6):
        run(n)
    # After the run of day 5: a promise to pay on day 10 (paused until day 13).
    case = Case.objects.get(customer=customer)
    Case.objects.filter(pk=case.pk).update(paused_until=day(13), next_due_on=day(13))
    CaseEvent.objects.create(case=case, kind=CaseEvent.Kind.PROMISE, created_at=timezone.now(),
                             data={"date": day(10).isoformat(), "amount": "100"})
    for n in range(6, 21):
        run(n)
    assert CaseStep.objects.get(step_key="formal-notice").executed_on == day(13)
    result = simulate("standard", days=20, today=day(20))
    assert result["draft"] == result["live"]
    daily = make_policy("daily", [("d1", 1, ""), ("d6", 6, ""), ("d7", 7, "")], min_gap_days=1)
    # d1 on day 1, d6 due day 6 but paused until day 13, d7 on day 14.
    assert counts(simulate(daily, days=20, today=day(20)), "draft") == {
        "d1": 1, "d6": 1, "d7": 1}


def test_a_partial_payment_of_the_oldest_invoice_moves_the_schedule(make_customer, run):
    customer = make_customer()
    old = create_invoice(customer, amount_due="50.00", due_date=day(0))
    create_invoice(customer, amount_due="70.00", due_date=day(6))
    for n in range(1, 41):
        if n == 5:
            Invoice.objects.filter(pk=old.pk).update(amount_due=0)
        run(n)
    # After day 5 the oldest debt is due on day 6: formal notice (8) on day 14 and so on.
    result = simulate("standard", days=40, today=day(40))
    assert counts(result, "draft") == counts(result, "live")
    assert CaseStep.objects.get(step_key="formal-notice").executed_on == day(14)


# -- the strong property: the live policy as the draft reproduces the recorded steps ----------
DAYS0 = day(0)


def populate(rng, customers, *, partly=True):
    """Customers with 1-3 invoices in EUR/USD due from day -40 to day 70; each invoice is
    paid in full on some day (some before they are due, some never), some partly first
    (with ``partly``).
    Returns {day: [(invoice pk, amount)]}: balances to set before that day's run."""
    changes = defaultdict(list)
    for _ in range(customers):
        customer = create_customer()
        for _ in range(rng.randint(1, 3)):
            due = day(rng.randint(-40, 70))
            amount = Decimal(rng.choice(["20.00", "80.00", "150.00", "400.00"]))
            invoice = create_invoice(customer, amount_due=amount, due_date=due,
                                     currency=rng.choice(["EUR", "EUR", "USD"]))
            fate, overdue = rng.random(), (due - DAYS0).days
            if fate < 0.15:
                paid = None  # never pays
            elif fate < 0.25:
                paid = overdue - rng.randint(0, 3)  # on time
            else:
                paid = overdue + rng.randint(1, 60)
            if paid is not None:
                changes[paid].append((invoice.pk, Decimal(0)))
            part_day = overdue + rng.randint(1, 25)
            if partly and rng.random() < 0.2 and (paid is None or part_day < paid):
                changes[part_day].append((invoice.pk, amount / 2))
    return changes


def workbench_touch(rng, n):
    """What collectors do between runs: promises to pay, pauses and resumes."""
    open_cases = list(Case.objects.filter(status=Case.Status.OPEN).order_by("pk"))
    for case in open_cases:
        roll = rng.random()
        if roll < 0.02:
            date = day(n + rng.randint(1, 6))
            until = date + datetime.timedelta(days=3)
            paused = max(until, case.paused_until) if case.paused_until else until
            Case.objects.filter(pk=case.pk).update(paused_until=paused, next_due_on=paused)
            CaseEvent.objects.create(case=case, kind=CaseEvent.Kind.PROMISE,
                                     created_at=timezone.now(),
                                     data={"date": date.isoformat(), "amount": "10"})
        elif roll < 0.03:
            Case.objects.filter(pk=case.pk).update(
                paused_until=datetime.date(9999, 12, 31),
                next_due_on=case.last_step_on or case.opened_on)
            CaseEvent.objects.create(case=case, kind=CaseEvent.Kind.PAUSED,
                                     created_at=timezone.now(), data={"until": None})
        elif roll < 0.08 and case.paused_until is not None:
            Case.objects.filter(pk=case.pk).update(
                paused_until=None, next_due_on=case.last_step_on or case.opened_on)
            CaseEvent.objects.create(case=case, kind=CaseEvent.Kind.RESUMED,
                                     created_at=timezone.now())


@pytest.mark.parametrize(("seed", "minimum"), [(1, None), (2, {"EUR": "60"})])
def test_the_live_policy_as_draft_reproduces_the_recorded_steps(db, run, seed, minimum):
    """Any mix of payments, promises, pauses and resumes; with a minimum balance, no partial
    payments (one after a case's last message is not seen: docs/simulator.md)."""
    if minimum:
        Policy.objects.filter(key="standard").update(minimum_balance=minimum)
    rng = random.Random(seed)
    changes = populate(rng, customers=30, partly=not minimum)
    first, last = -20, 80
    with override_dunning_settings(RENDER_PROCESSES=1):
        for n in range(first, last + 1):
            for pk, amount in changes.get(n, ()):
                Invoice.objects.filter(pk=pk).update(amount_due=amount)
            run(n)
            workbench_touch(rng, n)
    assert CaseStep.objects.filter(executed_on__gte=day(last - 89)).count() > 60
    assert Case.objects.filter(status=Case.Status.RESOLVED).exists()
    assert CaseEvent.objects.filter(kind=CaseEvent.Kind.PROMISE).exists()

    result = simulate("standard", days=90, today=day(last))
    window = CaseStep.objects.filter(executed_on__range=(day(last - 89), day(last)))
    recorded = Counter(window.values_list("step_key", flat=True))
    assert counts(result, "live") == dict(recorded)
    assert counts(result, "draft") == dict(recorded)
    assert result["draft"] == result["live"]
    assert [w["draft"] for w in result["weeks"]] == [w["live"] for w in result["weeks"]]


# -- arguments ---------------------------------------------------------------------------------
@pytest.mark.parametrize("days", [6, 366, 0, -5, "ninety", None])
def test_days_out_of_bounds_are_refused(db, days):
    with pytest.raises(SimulationError, match="number of days must be"):
        simulate("standard", days=days)


def test_an_unknown_policy_key_is_refused(db):
    with pytest.raises(SimulationError, match="no dunning policy with the key 'nope'"):
        simulate("nope")


def test_no_cases_no_messages(db):
    result = simulate("standard", days=7, today=day(0))
    assert result["draft"]["total"] == result["live"]["total"] == 0
    assert result["cases"] == 0
    assert len(result["weeks"]) in (1, 2)


# -- the admin page ----------------------------------------------------------------------------
def simulate_url(policy, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/admin/dunning/policy/{policy.pk}/simulate/" + (f"?{query}" if query else "")


@pytest.fixture
def admin_client(client, django_user_model, fast_passwords):
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def staff_client(client, django_user_model, *codenames):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def text_of(response):
    return html.unescape(response.content.decode())


def cell(content, table, step, column):
    row = re.search(rf'<table id="{table}">.*?data-step="{re.escape(step)}">(.*?)</tr>',
                    content, re.S)
    assert row, f"no row {step} in {table}"
    return re.search(rf'<td class="{column}">([^<]*)</td>', row.group(1)).group(1)


def test_the_change_page_links_to_the_simulator(admin_client):
    policy = Policy.objects.get(key="standard")
    response = admin_client.get(f"/admin/dunning/policy/{policy.pk}/change/")
    assert f'href="/admin/dunning/policy/{policy.pk}/simulate/"' in response.content.decode()


def test_the_page_shows_tables_and_the_svg_chart(admin_client, three_customers):
    lenient = make_policy("lenient", [("reminder", 7, ""), ("last-call", 20, "")])
    response = admin_client.get(simulate_url(lenient, days=50, as_of=day(50)))
    assert response.status_code == 200
    content = text_of(response)
    assert "customers pay on the same day whatever the policy" in content
    assert cell(content, "simulate-steps", "reminder", "draft") == "3"
    assert cell(content, "simulate-steps", "reminder", "live") == "0"
    assert cell(content, "simulate-steps", "initial-notice", "live") == "3"
    assert cell(content, "simulate-steps", "initial-notice", "difference") == "−3"
    assert cell(content, "simulate-steps", "reminder", "difference") == "+3"
    summary = re.search(r'summary-total">(.*?)</tr>', content, re.S).group(1)
    assert '<td class="draft">6</td>' in summary and '<td class="live">16</td>' in summary
    svg = re.search(r"<svg[^>]*dunning-simulate-chart.*?</svg>", content, re.S).group(0)
    # One pair of bars per step; the longest bar is the live initial notices' (3 of 3).
    assert svg.count('data-step="') == len(response.context["steps"])
    widths = re.findall(r'<g class="step" data-step="reminder">.*?width="(\d+)".*?width="(\d+)"',
                        svg, re.S)[0]
    assert widths == ("300", "0")
    assert "cdn" not in content.lower() and ".js" not in svg


def test_days_is_bounded_with_a_clear_error(admin_client):
    policy = Policy.objects.get(key="standard")
    for bad in ("3", "400", "many"):
        response = admin_client.get(simulate_url(policy, days=bad))
        assert response.status_code == 400
        assert ("The number of days must be a whole number from 7 to 365, "
                f"not '{bad}'.") in text_of(response)
        assert 'id="simulate-steps"' not in response.content.decode()
    assert admin_client.get(simulate_url(policy, days=7)).status_code == 200
    assert admin_client.get(simulate_url(policy, days=365)).status_code == 200


def test_staff_with_view_policy_may_simulate(client, django_user_model, fast_passwords):
    policy = Policy.objects.get(key="standard")
    viewer = staff_client(client, django_user_model, "view_policy")
    response = viewer.get(simulate_url(policy))
    assert response.status_code == 200
    assert 'id="simulate-steps"' in response.content.decode()


def test_staff_without_view_policy_may_not(client, django_user_model, fast_passwords):
    policy = Policy.objects.get(key="standard")
    nobody = staff_client(client, django_user_model, "view_case")
    assert nobody.get(simulate_url(policy)).status_code == 403


def test_the_page_reads_a_fixed_number_of_queries(admin_client, overdue_customer, run,
                                                   django_assert_max_num_queries):
    """As many queries for 30 cases as for 3."""
    policy = Policy.objects.get(key="standard")
    for _ in range(3):
        overdue_customer()
    for n in range(1, 12):
        run(n)
    with django_assert_max_num_queries(40) as few:
        admin_client.get(simulate_url(policy, days=30, as_of=day(12)))
    for _ in range(27):
        overdue_customer(due=day(3))
    for n in range(12, 20):
        run(n)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(simulate_url(policy, days=30, as_of=day(20)))
    assert response.context["result"]["cases"] == 30


# -- the command ---------------------------------------------------------------------------------
def test_the_simulate_command_prints_the_comparison(three_customers):
    import json
    from io import StringIO

    from django.core.management import call_command

    make_policy("lenient", [("reminder", 7, ""), ("last-call", 20, "")])
    out = StringIO()
    call_command("dunning", "simulate", "lenient", "--days", "50",
                 "--as-of", day(50).isoformat(), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("lenient beside the live policy standard, 2026-03-03 to")
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["reminder"] == ["3", "0", "+3"]
    assert rows["initial-notice"] == ["0", "3", "-3"]
    assert rows["total"] == ["6", "16", "-10"]
    out = StringIO()
    call_command("dunning", "simulate", "lenient", "--days", "50",
                 "--as-of", day(50).isoformat(), "--json", stdout=out)
    assert json.loads(out.getvalue())["draft"]["total"] == 6


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "no dunning policy with the key 'nope'"),
    (["standard", "--days", "3"], "7"),
    (["standard", "--as-of", "someday"], "is not a date"),
])
def test_the_simulate_command_refuses_bad_arguments(db, args, message):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("dunning", "simulate", *args)
