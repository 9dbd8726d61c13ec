"""Regulation F's call limits per debt in the collectors' call queue (docs/compliance.md,
"Regulation F: call limits per debt"): at most seven call attempts about a case within
seven local days, no call within seven local days of a telephone conversation (the
conversation day being day 1), calls only 08:00-21:00 local; inbound calls are no
attempts. "Now" is given as in the other call-queue and compliance tests: ``now=`` to the
query, a patched ``timezone.now`` for what the services record and the admin shows."""

import datetime
import html

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dunning.channels.base import Outgoing
from dunning.channels.call import CallChannel
from dunning.engine import actions as services
from dunning.engine.compliance import (
    REGF_CALL_FREQUENCY,
    REGF_CONVERSATION,
    REGF_INCONVENIENT_TIME,
    zone_for,
)
from dunning.models import Case, CaseEvent, Policy
from dunning.queries import call_block, in_call_queue

SITE = "Europe/Berlin"  # tests/settings.py TIME_ZONE
BASE = datetime.date(2026, 3, 2)  # a Monday; the US change to summer time is on 03-08
ONE_US = datetime.timedelta(microseconds=1)

# Calls as logged: (outcome, inbound).
ATTEMPT = ("no-answer", False)
TALK = ("reached", False)
INBOUND_TALK = ("promised", True)
INBOUND_MISSED = ("no-answer", True)


def local(day, hhmm, zone):
    """``hhmm`` on local date BASE + ``day`` in ``zone`` (the site's when empty or unknown)."""
    hour, minute = map(int, hhmm.split(":"))
    return datetime.datetime.combine(BASE + datetime.timedelta(days=day),
                                     datetime.time(hour, minute), tzinfo=zone_for(zone, SITE))


@pytest.fixture
def clock(monkeypatch):
    def set_to(instant):
        monkeypatch.setattr(timezone, "now", lambda: instant)

    return set_to


@pytest.fixture
def regf_policy(db):
    def set_to(on):
        Policy.objects.filter(key="standard").update(regulation_f=on)

    set_to(True)
    return set_to


@pytest.fixture
def make_case(overdue_customer, run, regf_policy):
    """An open case of the standard policy for a new customer in ``zone``."""

    def make(zone, name="Ada"):
        customer = overdue_customer(name=name, timezone=zone, phone="+1 213 555 0100")
        run(1)
        return Case.objects.get(customer=customer)

    return make


def put_in_queue(case, when, clock):
    clock(when)
    channel = CallChannel()
    channel.send([channel.build(Outgoing(
        case_id=case.pk, customer_id=case.customer_id, step_key="call-reminder",
        recipient="+12135550100", subject="", text="Call about the overdue invoice.",
        html=None))])


def log_calls(case, calls, zone, clock):
    """Log ``calls`` ((day, "HH:MM", (outcome, inbound))) as a collector does, then queue the
    case again a minute after the last one (logging a call takes a case out of the queue
    until the next call step)."""
    last = local(0, "00:00", zone)
    for day, hhmm, (outcome, inbound) in calls:
        when = local(day, hhmm, zone)
        clock(when)
        services.log_call(case, outcome, "", None, inbound=inbound)
        last = max(last, when)
    put_in_queue(case, last + datetime.timedelta(minutes=1), clock)


def queued(now):
    return set(in_call_queue(Case.objects.all(), now=now))


LA, AUCKLAND = "America/Los_Angeles", "Pacific/Auckland"

# (what, the customer's zone, the calls (day, local time, kind), when the queue is looked at
# (day, local time), the reason the case is out or "" when it is in, and when a call is
# allowed again (day, local time) when it is out). Days count from BASE in the customer's
# zone.
TABLE = [
    ("6 attempts in 7 days: still in the queue", SITE,
     [(d, "10:00", ATTEMPT) for d in range(6)], (6, "10:00"), "", None),
    ("the 7th attempt on day 1: out on day 1", SITE,
     [(0, f"10:0{i}", ATTEMPT) for i in range(7)], (0, "12:00"), REGF_CALL_FREQUENCY, (7, "08:00")),
    ("7 attempts on day 1: still out at the end of day 7", SITE,
     [(0, f"10:0{i}", ATTEMPT) for i in range(7)], (6, "20:59"), REGF_CALL_FREQUENCY, (7, "08:00")),
    ("7 attempts on day 1: back on day 8", SITE,
     [(0, f"10:0{i}", ATTEMPT) for i in range(7)], (7, "08:00"), "", None),
    ("one attempt a day for 7 days: out on day 7", SITE,
     [(d, "10:00", ATTEMPT) for d in range(7)], (6, "15:00"), REGF_CALL_FREQUENCY, (7, "08:00")),
    ("one attempt a day for 7 days: back on day 8, 6 in its 7 days", SITE,
     [(d, "10:00", ATTEMPT) for d in range(7)], (7, "08:00"), "", None),
    ("a conversation on day 1: out for the rest of day 1", SITE,
     [(0, "15:00", TALK)], (0, "16:00"), REGF_CONVERSATION, (7, "08:00")),
    ("a conversation on day 1: out on day 7", SITE,
     [(0, "15:00", TALK)], (6, "20:00"), REGF_CONVERSATION, (7, "08:00")),
    ("a conversation on day 1: back on day 8, days not hours (161 h later)", SITE,
     [(0, "15:00", TALK)], (7, "08:00"), "", None),
    ("a promise to pay is a conversation", SITE,
     [(0, "15:00", ("promised", False))], (3, "10:00"), REGF_CONVERSATION, (7, "08:00")),
    ("a refusal is a conversation", SITE,
     [(0, "15:00", ("refused", False))], (3, "10:00"), REGF_CONVERSATION, (7, "08:00")),
    ("no answer is no conversation", SITE,
     [(0, "15:00", ATTEMPT)], (0, "16:00"), "", None),
    ("inbound calls are no attempts: 6 attempts and 3 inbound calls", SITE,
     [(0, f"10:0{i}", ATTEMPT) for i in range(6)] + [(0, f"11:0{i}", INBOUND_MISSED)
                                                     for i in range(3)],
     (0, "12:00"), "", None),
    ("an inbound conversation counts as a conversation", SITE,
     [(0, "15:00", INBOUND_TALK)], (2, "10:00"), REGF_CONVERSATION, (7, "08:00")),
    ("before 08:00 local: out until 08:00", SITE, [], (0, "07:59"), REGF_INCONVENIENT_TIME,
     (0, "08:00")),
    ("from 21:00 local: out until 08:00 the next day", SITE, [], (0, "21:00"),
     REGF_INCONVENIENT_TIME, (1, "08:00")),
    ("no time zone: the site's", "", [(0, f"10:0{i}", ATTEMPT) for i in range(7)], (6, "20:59"),
     REGF_CALL_FREQUENCY, (7, "08:00")),
    ("an unknown time zone: the site's", "Mars/Olympus_Mons",
     [(0, "15:00", TALK)], (6, "20:59"), REGF_CONVERSATION, (7, "08:00")),
    # Los Angeles: 20:00 on Saturday 03-07 (PST) is already Sunday 05:00 in Berlin; the
    # clocks go forward in Los Angeles on 03-08. Days are Los Angeles dates.
    ("Los Angeles, 7 attempts on Saturday evening: out on Friday across the clock change", LA,
     [(5, f"20:0{i}", ATTEMPT) for i in range(7)], (11, "20:59"), REGF_CALL_FREQUENCY,
     (12, "08:00")),
    ("Los Angeles, 7 attempts on Saturday evening: back on the next Saturday (PDT)", LA,
     [(5, f"20:0{i}", ATTEMPT) for i in range(7)], (12, "08:00"), "", None),
    ("Los Angeles, a conversation on Saturday evening: back on the next Saturday", LA,
     [(5, "20:30", TALK)], (12, "08:00"), "", None),
    ("Los Angeles, a conversation on Saturday evening: out on Friday", LA,
     [(5, "20:30", TALK)], (11, "12:00"), REGF_CONVERSATION, (12, "08:00")),
    ("Los Angeles, 08:00 local (17:00 in Berlin): in", LA, [], (3, "08:00"), "", None),
    ("Los Angeles, 01:00 local (10:00 in Berlin): out", LA, [], (3, "01:00"),
     REGF_INCONVENIENT_TIME, (3, "08:00")),
    # Auckland, UTC+13: 08:00 on Monday there is Sunday 20:00 in Berlin.
    ("Auckland, 7 attempts on Monday morning: out at noon on Sunday there (midnight in Berlin)",
     AUCKLAND, [(0, f"08:0{i}", ATTEMPT) for i in range(7)], (6, "12:00"), REGF_CALL_FREQUENCY,
     (7, "08:00")),
]


@pytest.mark.parametrize("what, zone, calls, check, reason, free_from", TABLE,
                         ids=[row[0] for row in TABLE])
def test_regulation_f_takes_a_case_out_of_the_call_queue_while_it_may_not_be_called(
        make_case, clock, what, zone, calls, check, reason, free_from):
    case = make_case(zone)
    log_calls(case, calls, zone, clock)
    now = local(*check, zone)
    assert (case in queued(now)) is (not reason)
    block = call_block(case, now)
    if not reason:
        assert block is None
        return
    assert block.reason == reason
    allowed = local(*free_from, zone)
    assert block.allowed_from == allowed
    # Back in the queue exactly then, not a moment earlier.
    assert case not in queued(allowed - ONE_US)
    assert case in queued(allowed)


def test_the_seventh_attempt_takes_the_case_out_until_the_eighth_day(make_case, clock):
    case = make_case(SITE)
    put_in_queue(case, local(0, "00:00", SITE), clock)
    for attempt in range(7):  # one a day, each logged and the case queued again
        assert case in queued(local(attempt, "12:00", SITE)), f"before attempt {attempt + 1}"
        clock(local(attempt, "12:30", SITE))
        services.log_call(case, "no-answer", "", None)
        put_in_queue(case, local(attempt, "12:31", SITE), clock)
    assert [case in queued(local(d, "13:00", SITE)) for d in (6, 7, 8)] == [False, True, True]
    assert case not in queued(local(6, "20:59", SITE))
    assert case in queued(local(7, "08:00", SITE))


def test_a_policy_without_regulation_f_keeps_its_cases_in_the_queue(make_case, clock,
                                                                     regf_policy):
    regf_policy(False)
    talked = make_case(LA, name="Talked")
    log_calls(talked, [(0, "15:00", TALK)], LA, clock)
    called = make_case(LA, name="Called")
    log_calls(called, [(0, f"10:0{i}", ATTEMPT) for i in range(9)], LA, clock)
    night = local(1, "03:00", LA)
    assert queued(night) == {talked, called}
    assert call_block(talked, night) is None and call_block(called, night) is None


def test_a_regulation_f_case_and_another_policys_case_side_by_side(make_case, clock):
    blocked = make_case(SITE, name="Blocked")
    log_calls(blocked, [(0, "15:00", TALK)], SITE, clock)
    other_policy = Policy.objects.get(key="standard")
    other_policy.pk, other_policy.key, other_policy.regulation_f = None, "no-regf", False
    other_policy.save()
    free = make_case(SITE, name="Free")
    Case.objects.filter(pk=free.pk).update(policy=other_policy)
    log_calls(free, [(0, "15:00", TALK)], SITE, clock)
    assert queued(local(2, "10:00", SITE)) == {free}


def test_logging_an_inbound_call_records_it_as_inbound(case, clock, boss):
    clock(local(0, "10:00", SITE))
    event = services.log_call(case, "reached", "She called back.", boss, inbound=True)
    assert event.data == {"outcome": "reached", "inbound": True}
    assert services.log_call(case, "no-answer", "", boss).data == {"outcome": "no-answer"}


# -- a fixed number of queries ---------------------------------------------------------------
ZONES = [SITE, LA, AUCKLAND, "Asia/Kolkata", ""]


def many_cases(make_case, count, clock):
    """``count`` queued cases in various zones: every third one called 7 times on day 0,
    every third one talked to on day 0, the rest untouched."""
    cases = [make_case(ZONES[i % len(ZONES)], name=f"Customer {i}") for i in range(count)]
    events = []
    for i, case in enumerate(cases):
        zone = ZONES[i % len(ZONES)]
        if i % 3 == 0:
            events += [CaseEvent(case=case, kind=CaseEvent.Kind.CALL,
                                 created_at=local(0, f"12:0{n}", zone), data={"outcome": "no-answer"})
                       for n in range(7)]
        elif i % 3 == 1:
            events.append(CaseEvent(case=case, kind=CaseEvent.Kind.CALL,
                                    created_at=local(0, "12:00", zone), data={"outcome": "reached"}))
    CaseEvent.objects.bulk_create(events)
    CaseEvent.objects.bulk_create([
        CaseEvent(case=case, kind=CaseEvent.Kind.CALL_QUEUED, created_at=local(1, "00:00", "UTC"),
                  data={"step": "call-reminder"}) for case in cases
    ])
    return cases


def queue_queries(now):
    with CaptureQueriesContext(connection) as queries:
        result = list(in_call_queue(Case.objects.all(), now=now))
    return result, len(queries)


@pytest.mark.parametrize("count", [1, 30])
def test_the_queue_takes_a_fixed_number_of_queries(make_case, clock, count):
    cases = many_cases(make_case, count, clock)
    # 10:00 in Los Angeles and 19:00 in Berlin; 07:00 the next day in Auckland (too
    # early) and 23:30 in Kolkata (too late).
    now = datetime.datetime(2026, 3, 4, 18, 0, tzinfo=datetime.timezone.utc)
    result, n = queue_queries(now)
    expected = [c for i, c in enumerate(cases)
                if i % 3 == 2 and ZONES[i % len(ZONES)] not in (AUCKLAND, "Asia/Kolkata")]
    assert result == expected
    # The queued cases, their calls, their customers' zones, the queue itself.
    assert n == 4


# -- the admin ---------------------------------------------------------------------------------
def page(response):
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_the_case_page_says_until_when_no_call_is_allowed_and_why(make_case, clock,
                                                                 admin_client):
    case = make_case(LA)
    log_calls(case, [(5, f"20:0{i}", ATTEMPT) for i in range(7)], LA, clock)
    clock(local(8, "10:00", LA))
    body = page(admin_client.get(f"/admin/dunning/case/{case.pk}/change/"))
    assert ("No call allowed until 03/14/2026 8 a.m. (America/Los_Angeles): seven call "
            "attempts about this case within seven days (Regulation F)") in body
    # ... and the call queue in the case list leaves it out.
    listing = page(admin_client.get("/admin/dunning/case/?call_queue=waiting"))
    assert f"/admin/dunning/case/{case.pk}/change/" not in listing
    clock(local(12, "08:00", LA))
    body = page(admin_client.get(f"/admin/dunning/case/{case.pk}/change/"))
    assert "No call allowed" not in body
    listing = page(admin_client.get("/admin/dunning/case/?call_queue=waiting"))
    assert f"/admin/dunning/case/{case.pk}/change/" in listing


def test_the_case_page_of_a_case_outside_the_queue_says_nothing(make_case, clock, admin_client):
    case = make_case(SITE)
    clock(local(0, "15:00", SITE))
    services.log_call(case, "reached", "", None)  # talked to, and not queued again
    clock(local(1, "10:00", SITE))
    assert "No call allowed" not in page(admin_client.get(f"/admin/dunning/case/{case.pk}/change/"))


def test_a_call_can_still_be_logged_on_a_blocked_case_as_inbound(make_case, clock, admin_client,
                                                                 boss):
    case = make_case(SITE)
    log_calls(case, [(0, "15:00", TALK)], SITE, clock)
    clock(local(2, "10:00", SITE))
    url = f"/admin/dunning/case/{case.pk}/act/log_call/"
    form = page(admin_client.post(url))
    assert "The customer called us" in form
    assert ("No call allowed until 03/09/2026 8 a.m. (Europe/Berlin): a telephone conversation "
            "about this case within the last seven days (Regulation F)") in form
    admin_client.post(url, {"apply": "yes", "outcome": "promised", "text": "She called back.",
                            "inbound": "on"}, follow=True)
    event = CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.CALL).latest("created_at")
    assert event.data == {"outcome": "promised", "inbound": True}
    assert (event.message, event.actor) == ("She called back.", boss)
    # The inbound conversation starts a new seven days.
    put_in_queue(case, local(2, "10:05", SITE), clock)
    assert case not in queued(local(8, "10:00", SITE))
    assert case in queued(local(9, "08:00", SITE))


def test_the_api_logs_an_inbound_call_and_the_timeline_says_so(case, admin_client):
    response = admin_client.post(f"/dunning/api/v1/cases/{case.pk}/call/",
                                 {"outcome": "reached", "text": "She rang.", "inbound": True},
                                 content_type="application/json")
    assert response.status_code == 200, response.content
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.CALL)
    assert event.data == {"outcome": "reached", "inbound": True}
    detail = admin_client.get(f"/dunning/api/v1/cases/{case.pk}/").json()
    [call] = [e for e in detail["timeline"] if e["kind"] == "call"]
    assert call["outcome"] == "reached (the customer called)"
