"""The retry rules of failed payments (dunning.payments.scheduler): pure, no database."""

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.payments import declines
from dunning.payments.scheduler import (
    CAPPED,
    EXHAUSTED,
    UPDATE_METHOD,
    Attempt,
    next_attempt,
    planned_date,
)

UTC = datetime.UTC


def at(y, m, d, h=14, minute=0):
    return datetime.datetime(y, m, d, h, minute, tzinfo=UTC)


def date(m, d):
    return datetime.date(2026, m, d)


# -- the classification table ------------------------------------------------------------
@pytest.mark.parametrize("code, expected", [
    (declines.INSUFFICIENT_FUNDS, declines.SOFT),
    (declines.DO_NOT_HONOR, declines.SOFT),
    (declines.TRY_AGAIN_LATER, declines.SOFT),
    (declines.PROCESSING_ERROR, declines.SOFT),
    (declines.GENERIC, declines.SOFT),
    ("something_new", declines.SOFT),
    (declines.EXPIRED, declines.HARD),
    (declines.LOST_OR_STOLEN, declines.HARD),
    (declines.INVALID_ACCOUNT, declines.HARD),
    (declines.FRAUD, declines.HARD),
])
def test_classification(code, expected):
    assert declines.classify(code) == expected


@pytest.mark.parametrize("decline_code, code, normalized", [
    ("insufficient_funds", "card_declined", declines.INSUFFICIENT_FUNDS),
    ("do_not_honor", "card_declined", declines.DO_NOT_HONOR),
    ("try_again_later", "card_declined", declines.TRY_AGAIN_LATER),
    ("", "processing_error", declines.PROCESSING_ERROR),
    ("", "expired_card", declines.EXPIRED),
    ("lost_card", "card_declined", declines.LOST_OR_STOLEN),
    ("stolen_card", "card_declined", declines.LOST_OR_STOLEN),
    ("pickup_card", "card_declined", declines.LOST_OR_STOLEN),
    ("invalid_account", "card_declined", declines.INVALID_ACCOUNT),
    ("", "incorrect_number", declines.INVALID_ACCOUNT),
    ("fraudulent", "card_declined", declines.FRAUD),
    ("generic_decline", "card_declined", declines.GENERIC),
    ("", "card_declined", declines.GENERIC),
    ("brand_new_code", "card_declined", declines.GENERIC),
])
def test_stripe_codes_are_normalized(decline_code, code, normalized):
    assert declines.from_stripe(decline_code, code) == normalized


# -- dates ---------------------------------------------------------------------------------
@pytest.mark.parametrize("failed_on, n, expected, why", [
    (date(3, 2), 0, date(3, 3), "day 1, no payday before day 3"),
    (date(3, 2), 1, date(3, 5), "day 3, no payday before day 5"),
    (date(3, 2), 2, date(3, 7), "day 5"),
    (date(3, 2), 3, date(3, 9), "day 7, the last offset"),
    (date(3, 13), 0, date(3, 15), "day 1 is the 14th; the 15th comes before day 3"),
    (date(3, 13), 1, date(3, 16), "day 3 is the 16th, no payday before day 5"),
    (date(2, 27), 0, date(3, 1), "day 1 is Feb 28; March 1 comes before day 3"),
    (date(3, 12), 1, date(3, 15), "day 3 is the 15th itself"),
    (date(3, 10), 1, date(3, 13), "day 3 is the 13th; the 15th is day 5, not before it"),
    (date(3, 7), 3, date(3, 14), "the last offset never moves, even to a payday next day"),
])
def test_planned_dates_prefer_paydays_within_the_window(failed_on, n, expected, why):
    assert planned_date(failed_on, n) == expected, why


@pytest.mark.parametrize("code", [declines.INSUFFICIENT_FUNDS, declines.DO_NOT_HONOR,
                                  declines.TRY_AGAIN_LATER, declines.PROCESSING_ERROR, ""])
def test_soft_decline_is_retried_with_the_same_method_next_local_morning(code):
    d = next_attempt([Attempt("card1", at(2026, 3, 2), code)], ["card1", "card2"],
                     tz="Europe/Berlin")
    # 09:00 in Berlin (CET, UTC+1) on day 1.
    assert (d.at, d.method) == (at(2026, 3, 3, 8), "card1")


def test_the_local_date_of_the_failure_counts():
    # 03:00 UTC on March 2 is 22:00 on March 1 in New York: day 1 is March 2 there.
    d = next_attempt([Attempt("card1", at(2026, 3, 2, 3), declines.INSUFFICIENT_FUNDS)],
                     ["card1"], tz="America/New_York")
    assert d.at == at(2026, 3, 2, 14)  # 09:00 EST


def test_unknown_time_zone_falls_back_to_utc():
    d = next_attempt([Attempt("card1", at(2026, 3, 2), declines.INSUFFICIENT_FUNDS)],
                     ["card1"], tz="Mars/Olympus")
    assert d.at == at(2026, 3, 3, 9)


def test_later_retries_follow_the_offsets():
    t0 = at(2026, 3, 2)
    attempts = [Attempt("card1", t0, declines.INSUFFICIENT_FUNDS)]
    seen = []
    for _ in range(4):
        d = next_attempt(attempts, ["card1"])
        seen.append(d.at)
        attempts.append(Attempt(d.method, d.at, declines.INSUFFICIENT_FUNDS))
    assert seen == [at(2026, 3, 3, 9), at(2026, 3, 5, 9), at(2026, 3, 7, 9), at(2026, 3, 9, 9)]
    assert next_attempt(attempts, ["card1"]).reason == EXHAUSTED


def test_never_twice_on_the_same_local_day():
    attempts = [Attempt("card1", at(2026, 3, 2), declines.INSUFFICIENT_FUNDS),
                Attempt("card1", at(2026, 3, 5, 20), declines.INSUFFICIENT_FUNDS)]
    # The second retry is planned for day 3 (March 5), which already had an attempt.
    assert next_attempt(attempts, ["card1"]).at == at(2026, 3, 6, 9)


@pytest.mark.parametrize("code", [declines.EXPIRED, declines.LOST_OR_STOLEN,
                                  declines.INVALID_ACCOUNT, declines.FRAUD])
def test_hard_decline_switches_to_the_next_method(code):
    d = next_attempt([Attempt("card1", at(2026, 3, 2), code)], ["card1", "card2"])
    assert (d.at, d.method) == (at(2026, 3, 3, 9), "card2")


@pytest.mark.parametrize("code", [declines.EXPIRED, declines.LOST_OR_STOLEN,
                                  declines.INVALID_ACCOUNT, declines.FRAUD])
def test_hard_decline_without_another_method_asks_for_an_update(code):
    d = next_attempt([Attempt("card1", at(2026, 3, 2), code)], ["card1"])
    assert (d.at, d.reason) == (None, UPDATE_METHOD)


def test_a_hard_declined_method_is_never_retried_even_after_soft_declines_elsewhere():
    attempts = [Attempt("card1", at(2026, 3, 2), declines.EXPIRED),
                Attempt("card2", at(2026, 3, 3, 9), declines.INSUFFICIENT_FUNDS)]
    for _ in range(3):
        d = next_attempt(attempts, ["card1", "card2"])
        assert d.method == "card2"
        attempts.append(Attempt(d.method, d.at, declines.INSUFFICIENT_FUNDS))
    assert next_attempt(attempts, ["card1", "card2"]).reason == EXHAUSTED


def test_other_methods_are_tried_before_giving_up():
    t = [at(2026, 3, 2), at(2026, 3, 3, 9), at(2026, 3, 5, 9), at(2026, 3, 7, 9),
         at(2026, 3, 9, 9)]
    attempts = [Attempt("card1", x, declines.DO_NOT_HONOR) for x in t]
    d = next_attempt(attempts, ["card1", "sepa"])
    assert (d.at, d.method) == (at(2026, 3, 10, 9), "sepa")
    attempts.append(Attempt("sepa", d.at, declines.INSUFFICIENT_FUNDS))
    assert next_attempt(attempts, ["card1", "sepa"]).reason == EXHAUSTED


def test_a_method_at_its_cap_is_skipped():
    recent = [Attempt("card1", at(2026, 2, 20), "insufficient_funds"),
              Attempt("card1", at(2026, 2, 25), "insufficient_funds")]
    attempts = [Attempt("card1", at(2026, 3, 2), declines.INSUFFICIENT_FUNDS)]
    everything = recent + attempts
    d = next_attempt(attempts, ["card1", "card2"], cap=3, recent=everything)
    assert d.method == "card2"
    d = next_attempt(attempts, ["card1"], cap=3, recent=everything)
    assert (d.at, d.reason) == (None, CAPPED)
    # Attempts older than 30 days do not count.
    d = next_attempt(attempts, ["card1"], cap=2, recent=[
        Attempt("card1", at(2026, 1, 30), "insufficient_funds"), *attempts])
    assert d.method == "card1"


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(min_value=datetime.datetime(2026, 1, 1),
                       max_value=datetime.datetime(2027, 12, 31)),
    codes=st.lists(st.sampled_from(sorted(declines.CODES) + [""]), min_size=1, max_size=30),
    tz=st.sampled_from(["", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]),
    cap=st.integers(min_value=1, max_value=10),
    failures_every=st.integers(min_value=2, max_value=20),
)
def test_cap_and_hard_declines_hold_over_many_cycles(start, codes, tz, cap, failures_every):
    """Cycles restart every few days (new failures); whatever the issuer answers, no
    method is charged by a retry when it already had ``cap`` attempts in 30 days, and a
    hard-declined method is never retried in its cycle."""
    start = start.replace(tzinfo=UTC)
    methods = ["card1", "card2"]
    history, cycle, answers = [], [], iter(codes * 5)
    now = start
    for day in range(90):
        now = start + datetime.timedelta(days=day)
        if day % failures_every == 0:  # an external failure starts a new cycle
            failure = Attempt("card1", now, declines.INSUFFICIENT_FUNDS)
            cycle = [failure]
            history.append(failure)
        if not cycle:
            continue
        d = next_attempt(cycle, methods, tz=tz, cap=cap, recent=history)
        if d.at is None:
            cycle = []
            continue
        assert d.at > cycle[-1].at
        hard = {a.method for a in cycle if a.decline_code and declines.is_hard(a.decline_code)}
        assert d.method not in hard
        before = sum(1 for a in history if a.method == d.method
                     and d.at - datetime.timedelta(days=30) < a.at <= d.at)
        assert before < cap
        if d.at < start + datetime.timedelta(days=day + 1):
            attempt = Attempt(d.method, d.at, next(answers, declines.DO_NOT_HONOR))
            cycle.append(attempt)
            history.append(attempt)
