"""The compliance guards (dunning.engine.compliance): pure rules, no database.

Instants in the tables are written in UTC with the customer's local time beside them.
Clock changes of 2026 used here:

* America/New_York: 03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 11-01 02:00 EDT -> 01:00 EST
  (06:00 UTC).
* Europe/Berlin: 03-29 02:00 CET -> 03:00 CEST (01:00 UTC); 10-25 03:00 CEST -> 02:00 CET
  (01:00 UTC).
* Pacific/Chatham: 04-05 03:45 +13:45 -> 02:45 +12:45 (04-04 14:00 UTC); 09-27 02:45
  +12:45 -> 03:45 +13:45 (09-26 14:00 UTC).
* Australia/Lord_Howe (half-hour DST): 04-05 02:00 +11 -> 01:30 +10:30 (04-04 15:00 UTC);
  10-04 02:00 +10:30 -> 02:30 +11 (10-03 15:30 UTC).
* Asia/Kolkata: +05:30 all year.
"""

import datetime
import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.engine.compliance import (
    CAPPED_CHANNEL,
    CAPPED_TOTAL,
    REGF_CALL_FREQUENCY,
    REGF_CONVERSATION,
    REGF_INCONVENIENT_TIME,
    BusinessCalendar,
    Candidate,
    Compliance,
    ComplianceConfigError,
    FrequencyCap,
    NoSendTime,
    QuietHours,
    RegF,
    Window,
    cap_allows,
    cap_next_allowed,
    cap_reason,
    compliance_spec,
    filter_batch,
    is_quiet,
    local_instant,
    next_allowed,
    next_send_time,
    parse_time,
    regf_quiet_hours,
    zone_for,
)

UTC = datetime.timezone.utc
NY = "America/New_York"
BERLIN = "Europe/Berlin"
KOLKATA = "Asia/Kolkata"
CHATHAM = "Pacific/Chatham"
LORD_HOWE = "Australia/Lord_Howe"
DAY = datetime.timedelta(days=1)
SMS_WINDOW = ("08:00", "21:00")


def u(y, m, d, h=0, minute=0, second=0, micro=0):
    return datetime.datetime(y, m, d, h, minute, second, micro, tzinfo=UTC)


def local(instant, tz):
    return instant.astimezone(zone_for(tz))


# -- quiet hours ---------------------------------------------------------------------------
QUIET_TABLE = [
    # zone, window, at (UTC), expected (UTC), what it shows
    # New York, spring forward 2026-03-08
    (NY, SMS_WINDOW, u(2026, 3, 7, 12, 59), u(2026, 3, 7, 13, 0), "07:59 EST -> 08:00 EST"),
    (NY, SMS_WINDOW, u(2026, 3, 8, 1, 59), u(2026, 3, 8, 1, 59), "20:59 EST: inside"),
    (NY, SMS_WINDOW, u(2026, 3, 8, 2, 0), u(2026, 3, 8, 12, 0),
     "21:00 EST is quiet; next morning is already EDT: 08:00 EDT = 12:00 UTC"),
    (NY, SMS_WINDOW, u(2026, 3, 8, 6, 30), u(2026, 3, 8, 12, 0), "01:30 EST on the night"),
    (NY, ("02:30", "04:00"), u(2026, 3, 8, 5, 0), u(2026, 3, 8, 7, 0),
     "start 02:30 does not exist: opens when the clocks jump to 03:00 EDT"),
    (NY, ("02:00", "02:30"), u(2026, 3, 8, 5, 0), u(2026, 3, 9, 6, 0),
     "window skipped entirely that night: next day's 02:00 EDT"),
    # New York, fall back 2026-11-01
    (NY, SMS_WINDOW, u(2026, 11, 1, 5, 30), u(2026, 11, 1, 13, 0),
     "01:30 EDT (first pass) -> 08:00 EST"),
    (NY, SMS_WINDOW, u(2026, 11, 2, 1, 59), u(2026, 11, 2, 1, 59), "20:59 EST: inside"),
    (NY, SMS_WINDOW, u(2026, 11, 2, 2, 0), u(2026, 11, 2, 13, 0), "21:00 EST -> 08:00 EST"),
    (NY, ("01:30", "03:00"), u(2026, 11, 1, 4, 0), u(2026, 11, 1, 5, 30),
     "ambiguous start: opens at its first occurrence, 01:30 EDT"),
    (NY, ("22:00", "01:30"), u(2026, 11, 1, 5, 50), u(2026, 11, 2, 3, 0),
     "night window closed at the first 01:30 (EDT) ..."),
    (NY, ("22:00", "01:30"), u(2026, 11, 1, 6, 10), u(2026, 11, 2, 3, 0),
     "... and does not reopen in the repeated hour (01:10 EST)"),
    # New York, a night channel window 22:00-06:00 on an ordinary day (EDT)
    (NY, ("22:00", "06:00"), u(2026, 6, 10, 12, 0), u(2026, 6, 11, 2, 0), "08:00 -> 22:00"),
    (NY, ("22:00", "06:00"), u(2026, 6, 11, 9, 59), u(2026, 6, 11, 9, 59), "05:59: inside"),
    (NY, ("22:00", "06:00"), u(2026, 6, 11, 10, 0), u(2026, 6, 12, 2, 0), "06:00 -> 22:00"),
    (NY, ("22:00", "06:00"), u(2026, 6, 11, 3, 30), u(2026, 6, 11, 3, 30), "23:30: inside"),
    # Berlin, spring forward 2026-03-29 and fall back 2026-10-25
    (BERLIN, SMS_WINDOW, u(2026, 3, 29, 0, 0), u(2026, 3, 29, 6, 0),
     "01:00 CET -> 08:00 CEST (06:00 UTC)"),
    (BERLIN, SMS_WINDOW, u(2026, 3, 29, 19, 0), u(2026, 3, 30, 6, 0), "21:00 CEST -> 08:00"),
    (BERLIN, ("02:00", "02:30"), u(2026, 3, 28, 23, 0), u(2026, 3, 30, 0, 0),
     "02:00-02:30 does not exist on 03-29: next day"),
    (BERLIN, SMS_WINDOW, u(2026, 10, 25, 0, 30), u(2026, 10, 25, 7, 0),
     "02:30 CEST (first pass) -> 08:00 CET (07:00 UTC)"),
    (BERLIN, ("02:30", "03:00"), u(2026, 10, 25, 0, 0), u(2026, 10, 25, 0, 30),
     "opens at the first 02:30 (CEST) ..."),
    (BERLIN, ("02:30", "03:00"), u(2026, 10, 25, 1, 10), u(2026, 10, 25, 1, 10),
     "... and stays open while the clock repeats 02:10 (CET): it closes at 03:00 CET"),
    (BERLIN, ("02:30", "03:00"), u(2026, 10, 25, 2, 0), u(2026, 10, 26, 1, 30),
     "03:00 CET: closed until tomorrow's 02:30 CET"),
    # Kolkata, +05:30 all year
    (KOLKATA, SMS_WINDOW, u(2026, 3, 2, 2, 29), u(2026, 3, 2, 2, 30), "07:59 IST -> 08:00"),
    (KOLKATA, SMS_WINDOW, u(2026, 3, 2, 15, 29), u(2026, 3, 2, 15, 29), "20:59 IST: inside"),
    (KOLKATA, SMS_WINDOW, u(2026, 3, 2, 15, 30), u(2026, 3, 3, 2, 30), "21:00 IST -> 08:00"),
    # Chatham, +12:45 / +13:45
    (CHATHAM, SMS_WINDOW, u(2026, 4, 4, 7, 15), u(2026, 4, 4, 19, 15),
     "21:00 +13:45 -> 08:00 +12:45 after the fall back"),
    (CHATHAM, SMS_WINDOW, u(2026, 4, 4, 18, 0), u(2026, 4, 4, 19, 15), "07:00 +12:45 -> 08:00"),
    (CHATHAM, SMS_WINDOW, u(2026, 9, 26, 12, 0), u(2026, 9, 26, 18, 15),
     "00:45 +12:45 -> 08:00 +13:45 after the spring forward"),
    (CHATHAM, ("03:00", "04:00"), u(2026, 9, 26, 13, 0), u(2026, 9, 26, 14, 0),
     "03:00 skipped (02:45 -> 03:45): opens at the jump"),
    (CHATHAM, ("03:00", "03:30"), u(2026, 9, 26, 13, 0), u(2026, 9, 27, 13, 15),
     "03:00-03:30 skipped entirely: next day's 03:00 +13:45"),
    # Lord Howe, 30-minute DST
    (LORD_HOWE, SMS_WINDOW, u(2026, 4, 4, 15, 0), u(2026, 4, 4, 21, 30),
     "01:30 +10:30 -> 08:00 +10:30"),
    (LORD_HOWE, ("02:00", "02:15"), u(2026, 10, 3, 14, 0), u(2026, 10, 4, 15, 0),
     "02:00-02:15 skipped on 10-04 (02:00 -> 02:30): next day's 02:00 +11"),
    (LORD_HOWE, ("02:15", "03:00"), u(2026, 10, 3, 15, 0), u(2026, 10, 3, 15, 30),
     "start in the half-hour gap: opens at the jump, 02:30 +11"),
    (LORD_HOWE, ("01:45", "02:30"), u(2026, 4, 4, 15, 5), u(2026, 4, 4, 15, 5),
     "opened at the first 01:45 (+11); the repeated 01:35 (+10:30) is inside"),
    (LORD_HOWE, ("22:00", "01:45"), u(2026, 4, 4, 15, 5), u(2026, 4, 5, 11, 30),
     "closed at the first 01:45; not reopened at the repeated 01:35: 22:00 +10:30"),
]


@pytest.mark.parametrize("tz, window, at, expected, what", QUIET_TABLE,
                         ids=[row[4] for row in QUIET_TABLE])
def test_next_allowed_table(tz, window, at, expected, what):
    assert next_allowed(at, tz, window) == expected
    assert is_quiet(at, tz, window) is (expected != at)
    assert not is_quiet(expected, tz, window)


def test_result_is_utc_and_no_window_means_any_time():
    at = datetime.datetime(2026, 3, 2, 23, 30, tzinfo=zone_for(BERLIN))
    assert next_allowed(at, BERLIN, None) == at
    assert next_allowed(at, BERLIN, None).tzinfo is UTC
    assert not is_quiet(at, BERLIN, None)
    assert next_allowed(at, BERLIN, SMS_WINDOW) == u(2026, 3, 3, 7, 0)


def test_naive_instants_are_refused():
    with pytest.raises(ValueError, match="naive"):
        next_allowed(datetime.datetime(2026, 3, 2, 12), NY, SMS_WINDOW)


@pytest.mark.parametrize("tz, default, expected", [
    ("", BERLIN, u(2026, 3, 2, 7, 0)),  # empty: the default zone
    (None, BERLIN, u(2026, 3, 2, 7, 0)),
    ("Mars/Olympus_Mons", BERLIN, u(2026, 3, 2, 7, 0)),  # unknown: the default zone
    ("../../etc/passwd", BERLIN, u(2026, 3, 2, 7, 0)),
    ("Mars/Olympus_Mons", "Also/Unknown", u(2026, 3, 2, 8, 0)),  # unknown default: UTC
    (KOLKATA, BERLIN, u(2026, 3, 2, 2, 30)),  # a known zone wins
])
def test_unknown_zone_falls_back(tz, default, expected):
    assert next_allowed(u(2026, 3, 2, 0, 0), tz, SMS_WINDOW, default_tz=default) == expected


@pytest.mark.parametrize("day, time, tz, expected", [
    (datetime.date(2026, 3, 8), "02:30", NY, u(2026, 3, 8, 7, 0)),  # gap: the jump
    (datetime.date(2026, 11, 1), "01:30", NY, u(2026, 11, 1, 5, 30)),  # ambiguous: first
    (datetime.date(2026, 10, 4), "02:10", LORD_HOWE, u(2026, 10, 3, 15, 30)),
    (datetime.date(2011, 12, 30), "08:00", "Pacific/Apia", u(2011, 12, 30, 10, 0)),  # no such day
])
def test_local_instant(day, time, tz, expected):
    assert local_instant(day, parse_time(time), tz) == expected


def test_default_quiet_hours_per_channel():
    hours = QuietHours()
    ten_pm = u(2026, 3, 3, 3, 0)  # 22:00 EST
    assert hours.next_allowed(ten_pm, NY, "sms") == u(2026, 3, 3, 13, 0)
    assert hours.next_allowed(ten_pm, NY, "call") == u(2026, 3, 3, 13, 0)
    assert hours.next_allowed(ten_pm, NY, "email") == ten_pm
    assert hours.next_allowed(ten_pm, NY, "letter") == ten_pm
    assert hours.next_allowed(ten_pm, NY, "carrier-pigeon") == ten_pm  # not named: any time
    assert hours.is_quiet(ten_pm, NY, "sms") and not hours.is_quiet(ten_pm, NY, "email")


@pytest.mark.parametrize("window", [("08:00", "08:00"), ("25:00", "08:00"), ("8am", "9pm"),
                                    "08:00", ("08:00",), 8])
def test_bad_windows_are_refused(window):
    with pytest.raises(ValueError):
        QuietHours({"sms": window})


def test_quiet_hours_from_config():
    hours = QuietHours.from_config({"sms": ["09:00", "20:00"], "email": ["07:00", "22:00"],
                                    "call": None, "push": "20:00-24:00"})
    assert hours.window("sms") == Window("09:00", "20:00")
    assert hours.window("email") == Window("07:00", "22:00")
    assert hours.window("call") is None  # switched off on purpose
    assert hours.window("push") == Window("20:00", "00:00") and hours.window("push").wraps
    assert QuietHours.from_config({}).to_config() == QuietHours().to_config()
    assert QuietHours.from_config(None).window("sms") == Window("08:00", "21:00")
    assert QuietHours.from_config(hours.to_config()) == hours
    with pytest.raises(ComplianceConfigError) as error:
        QuietHours.from_config({"sms": ["08:00", "08:00"], "call": "soon", "email": None})
    assert len(error.value.messages) == 2
    assert "'sms'" in str(error.value) and "'call'" in str(error.value)
    with pytest.raises(ComplianceConfigError):
        QuietHours.from_config(["08:00", "21:00"])


# -- the calendar --------------------------------------------------------------------------
GOOD_FRIDAY, EASTER_MONDAY = datetime.date(2026, 4, 3), datetime.date(2026, 4, 6)
GERMAN = BusinessCalendar(exclude_weekends=True, holidays={GOOD_FRIDAY, EASTER_MONDAY})
GULF = BusinessCalendar(exclude_weekends=True, weekend_days={4, 5})  # Friday and Saturday
CHRISTMAS = BusinessCalendar(holidays={datetime.date(2026, 12, 25)})


@pytest.mark.parametrize("calendar, day, business, next_day", [
    (GERMAN, datetime.date(2026, 4, 2), True, datetime.date(2026, 4, 2)),  # Thursday
    (GERMAN, GOOD_FRIDAY, False, datetime.date(2026, 4, 7)),  # Fri, Sat, Sun, Mon skipped
    (GERMAN, datetime.date(2026, 4, 4), False, datetime.date(2026, 4, 7)),
    (GULF, datetime.date(2026, 3, 6), False, datetime.date(2026, 3, 8)),  # Fri -> Sun
    (GULF, datetime.date(2026, 3, 8), True, datetime.date(2026, 3, 8)),  # Sunday works
    (BusinessCalendar(), datetime.date(2026, 3, 7), True, datetime.date(2026, 3, 7)),
    (BusinessCalendar(weekend_days={5, 6}), datetime.date(2026, 3, 7), True,
     datetime.date(2026, 3, 7)),  # weekend days named but not excluded
    (CHRISTMAS, datetime.date(2026, 12, 25), False, datetime.date(2026, 12, 26)),
])
def test_business_days(calendar, day, business, next_day):
    assert calendar.is_business_day(day) is business
    assert calendar.next_business_day(day) == next_day


SEND_TABLE = [
    # zone, channel, calendar, at (UTC), expected (UTC), what it shows
    (BERLIN, "email", GERMAN, u(2026, 3, 6, 23, 30), u(2026, 3, 8, 23, 0),
     "Friday 23:30 UTC is Saturday 00:30 in Berlin: Monday 00:00 CET (email: any time)"),
    (BERLIN, "sms", GERMAN, u(2026, 3, 6, 23, 30), u(2026, 3, 9, 7, 0),
     "... an SMS waits for Monday 08:00 CET"),
    (NY, "sms", GERMAN, u(2026, 3, 7, 1, 0), u(2026, 3, 7, 1, 0),
     "Saturday 01:00 UTC is Friday 20:00 in New York: goes at once"),
    (KOLKATA, "sms", GERMAN, u(2026, 3, 6, 20, 0), u(2026, 3, 9, 2, 30),
     "Friday 20:00 UTC is Saturday 01:30 IST: Monday 08:00 IST"),
    (BERLIN, "sms", GERMAN, u(2026, 4, 2, 19, 30), u(2026, 4, 7, 6, 0),
     "Thursday 21:30 CEST before Easter: Tuesday 08:00 CEST"),
    ("Asia/Riyadh", "sms", GULF, u(2026, 3, 5, 20, 0), u(2026, 3, 8, 5, 0),
     "Thursday 23:00 (+3), Friday/Saturday weekend: Sunday 08:00"),
    ("Pacific/Auckland", "sms", CHRISTMAS, u(2026, 12, 24, 12, 0), u(2026, 12, 25, 19, 0),
     "Christmas Eve in UTC is Christmas Day in Auckland: 12-26 08:00 NZDT"),
    (NY, "sms", CHRISTMAS, u(2026, 12, 24, 12, 0), u(2026, 12, 24, 13, 0),
     "... while New York is still on Christmas Eve (07:00 -> 08:00 EST)"),
    (NY, "sms", None, u(2026, 3, 7, 1, 0), u(2026, 3, 7, 1, 0), "no calendar"),
]


@pytest.mark.parametrize("tz, channel, calendar, at, expected, what", SEND_TABLE,
                         ids=[row[5] for row in SEND_TABLE])
def test_next_send_time(tz, channel, calendar, at, expected, what):
    result = next_send_time(at, tz, channel, QuietHours(), calendar)
    assert result == expected
    if calendar is not None:
        assert calendar.is_business_day(local(result, tz).date())


def test_send_time_in_a_zone_whose_clocks_skip_midnight():
    # America/Santiago, 2026-09-06: the clocks go from 00:00 -04 to 01:00 -03. A message
    # held by Saturday's holiday goes at the first instant of Sunday: 01:00 -03.
    calendar = BusinessCalendar(holidays={datetime.date(2026, 9, 5)})
    saturday = u(2026, 9, 5, 12, 0)  # 08:00 -04, a holiday
    result = next_send_time(saturday, "America/Santiago", "email", QuietHours(), calendar)
    assert result == u(2026, 9, 6, 4, 0)
    assert local(result, "America/Santiago").replace(tzinfo=None) == datetime.datetime(2026, 9, 6, 1)
    # An SMS waits for 08:00 -03 on Sunday.
    assert next_send_time(saturday, "America/Santiago", "sms", QuietHours(), calendar) == u(
        2026, 9, 6, 11, 0)


def test_calendar_config():
    calendar = BusinessCalendar.from_config(True, ["fri", "Saturday"], ["2026-12-25", "2026-12-26"])
    assert calendar.weekend_days == frozenset({4, 5})
    assert calendar.holidays == frozenset({datetime.date(2026, 12, 25), datetime.date(2026, 12, 26)})
    assert BusinessCalendar.from_config().weekend_days == frozenset({5, 6})
    assert BusinessCalendar.from_config(True, []).weekend_days == frozenset({5, 6})
    assert not BusinessCalendar.from_config().exclude_weekends
    with pytest.raises(ComplianceConfigError) as error:
        BusinessCalendar.from_config(True, ["fri", "funday", 9], ["2026-02-30", "christmas"])
    assert len(error.value.messages) == 4
    with pytest.raises(ComplianceConfigError):
        BusinessCalendar.from_config(True, range(7))
    with pytest.raises(ValueError):
        BusinessCalendar(exclude_weekends=True, weekend_days=set(range(7)))
    with pytest.raises(TypeError):
        BusinessCalendar(holidays={datetime.datetime(2026, 12, 25)})


def test_conflicting_rules_are_reported_not_looped():
    night = QuietHours({"sms": ("22:00", "06:00")})
    with pytest.raises(NoSendTime):
        next_send_time(u(2026, 3, 2, 12), NY, "sms", [night, regf_quiet_hours()])
    with pytest.raises(ComplianceConfigError, match="sms"):
        Compliance(quiet_hours=night, regf=RegF())


# -- frequency caps ------------------------------------------------------------------------
def ny(y, m, d, h=12, minute=0):
    """An instant given in New York wall-clock time (EST/EDT as the date has it)."""
    return datetime.datetime(y, m, d, h, minute, tzinfo=zone_for(NY)).astimezone(UTC)


SMS_2_IN_7 = FrequencyCap(per_channel={"sms": (2, 7)}, total=None)

CAP_TABLE = [
    # history, channel, at, cap, reason ("" allowed), what it shows
    ([], "sms", ny(2026, 3, 2), FrequencyCap(), "", "nothing sent yet"),
    ([(ny(2026, 3, 2, 9), "email")], "sms", ny(2026, 3, 2, 18), FrequencyCap(), CAPPED_TOTAL,
     "one a day across channels: an email this morning holds the SMS"),
    ([(ny(2026, 3, 2, 23, 30), "email")], "sms", ny(2026, 3, 3, 0, 30), FrequencyCap(), "",
     "an hour later but the next local day (23:30 -> 00:30 EST)"),
    ([(ny(2026, 3, 2, 23, 30), "email")], "sms", u(2026, 3, 3, 4, 45), FrequencyCap(),
     CAPPED_TOTAL, "03-03 04:45 UTC is still 03-02 in New York"),
    ([(ny(2026, 11, 1, 0, 30), "email")], "sms", ny(2026, 11, 1, 23, 30), FrequencyCap(),
     CAPPED_TOTAL, "the 25-hour fall-back day is one day"),
    ([(ny(2026, 3, 2), "sms"), (ny(2026, 3, 4), "sms")], "sms", ny(2026, 3, 8), SMS_2_IN_7,
     CAPPED_CHANNEL, "two SMS in 03-02..03-08"),
    ([(ny(2026, 3, 2), "sms"), (ny(2026, 3, 4), "sms")], "sms", ny(2026, 3, 9), SMS_2_IN_7, "",
     "03-03..03-09 holds one"),
    ([(ny(2026, 3, 2), "sms"), (ny(2026, 3, 4), "sms")], "email", ny(2026, 3, 5), SMS_2_IN_7, "",
     "the SMS cap does not limit email"),
    ([(ny(2026, 3, 2), "sms")], "sms", ny(2026, 3, 2, 15), FrequencyCap({"sms": (2, 7)}, (1, 1)),
     CAPPED_TOTAL, "the total cap is checked first"),
    ([(ny(2026, 3, 4), "email")], "email", ny(2026, 3, 3), FrequencyCap(total=(1, 2)),
     CAPPED_TOTAL, "a message queued for tomorrow counts: 1 in 2 days"),
    ([(ny(2026, 3, 5), "email")], "email", ny(2026, 3, 3), FrequencyCap(total=(1, 2)), "",
     "... but not one two days ahead"),
    ([(ny(2026, 3, 2), "email")], "email", ny(2026, 3, 2), FrequencyCap(total=None), "",
     "no cap at all"),
]


@pytest.mark.parametrize("history, channel, at, cap, reason, what", CAP_TABLE,
                         ids=[row[5] for row in CAP_TABLE])
def test_caps(history, channel, at, cap, reason, what):
    assert cap_reason(history, channel, at, NY, cap) == reason
    assert cap_allows(history, channel, at, NY, cap) is (reason == "")
    retry = cap_next_allowed(history, channel, at, NY, cap)
    assert retry >= at
    assert cap_allows(history, channel, retry, NY, cap)
    if reason:
        # Held until the start of the first local day with room.
        assert local(retry, NY).time() == datetime.time(0, 0)
        assert not cap_allows(history, channel, retry - datetime.timedelta(microseconds=1), NY, cap)
    else:
        assert retry == at


def test_cap_counts_in_the_customers_zone():
    history = [(u(2026, 3, 2, 20, 0), "email")]  # 03-02 15:00 in New York, 03-03 01:30 in Kolkata
    at = u(2026, 3, 3, 3, 0)  # 03-02 22:00 in New York, 03-03 08:30 in Kolkata
    assert not cap_allows(history, "sms", at, NY)  # both on 03-02
    assert not cap_allows(history, "sms", at, KOLKATA)  # both on 03-03
    assert cap_allows(history, "sms", at, "Europe/London")  # 03-02 20:00 and 03-03 03:00
    assert cap_allows(history, "sms", u(2026, 3, 2, 18, 0), KOLKATA)  # 03-02 23:30 IST


def test_cap_config():
    cap = FrequencyCap.from_config({"total": [2, 7], "per_channel": {"sms": [1, 3]}})
    assert cap.total == (2, 7) and cap.per_channel == {"sms": (1, 3)}
    assert FrequencyCap.from_config({}).total == (1, 1)
    assert FrequencyCap.from_config(None) == FrequencyCap()
    assert FrequencyCap.from_config({"total": None}).total is None
    assert FrequencyCap.from_config(cap.to_config()) == cap
    with pytest.raises(ComplianceConfigError) as error:
        FrequencyCap.from_config({"total": [0, 1], "per_channel": {"sms": [1], "call": [1, True]},
                                  "weekly": 3})
    assert len(error.value.messages) == 4
    with pytest.raises(ValueError):
        FrequencyCap(total=(1, 0))


# -- a batch ------------------------------------------------------------------------------
def cand(customer, case, channel="email", at=None, tz=NY, priority=0, cap=None):
    return Candidate(customer, case, channel, at or ny(2026, 3, 2, 10), tz, priority, cap)


def test_two_cases_of_one_customer_due_the_same_day_send_one_message():
    plan = filter_batch([cand("ann", 12), cand("ann", 11), cand("bob", 13)], {})
    assert [(c.customer, c.case) for c in plan.allowed] == [("ann", 11), ("bob", 13)]
    [held] = plan.held
    assert (held.candidate.case, held.reason) == (12, CAPPED_TOTAL)
    assert held.retry_at == ny(2026, 3, 3, 0, 0)  # local midnight, the next day


def test_batch_counts_history_of_all_cases_and_channels():
    history = {"ann": [(ny(2026, 3, 2, 8), "sms")]}  # sent earlier today by another case
    plan = filter_batch([cand("ann", 11, "email"), cand("bob", 12, "email")], history)
    assert [c.case for c in plan.allowed] == [12]
    assert plan.held[0].candidate.case == 11


def test_batch_priority_then_case_id_and_input_order_does_not_matter():
    candidates = [cand("ann", 11), cand("ann", 12, priority=5), cand("ann", 13, priority=5),
                  cand("bob", 14, "sms"), cand("bob", 15, "sms"), cand("cy", 16)]
    expected = None
    rng = random.Random(6)
    for _ in range(20):
        rng.shuffle(candidates)
        plan = filter_batch(candidates, {})
        allowed = [c.case for c in plan.allowed]
        if expected is None:
            expected = allowed
        assert allowed == expected
    assert sorted(expected) == [12, 14, 16]


def test_batch_per_candidate_caps_and_retry_after_batch_messages():
    two_a_day = FrequencyCap(total=(2, 1))
    plan = filter_batch(
        [cand("ann", 11, cap=two_a_day), cand("ann", 12, cap=two_a_day),
         cand("ann", 13, cap=two_a_day)],
        {},
    )
    assert [c.case for c in plan.allowed] == [11, 12]
    assert plan.held[0].retry_at == ny(2026, 3, 3, 0, 0)
    # A weekly cap: the held message retries once the window has room again.
    weekly = FrequencyCap(total=(1, 7))
    plan = filter_batch([cand("ann", 11, cap=weekly)], {"ann": [(ny(2026, 2, 27), "email")]})
    assert plan.held[0].retry_at == ny(2026, 3, 6, 0, 0)


def test_batch_uses_each_customers_local_day():
    # 03-03 03:00 UTC: 03-02 22:00 in New York, 03-03 08:30 in Kolkata.
    at = u(2026, 3, 3, 3, 0)
    history = {"ny": [(u(2026, 3, 2, 14), "email")], "in": [(u(2026, 3, 2, 14), "email")]}
    plan = filter_batch([cand("ny", 1, at=at, tz=NY), cand("in", 2, at=at, tz=KOLKATA)], history)
    assert [c.customer for c in plan.allowed] == ["in"]
    assert [h.candidate.customer for h in plan.held] == ["ny"]


# -- Regulation F --------------------------------------------------------------------------
REGF = RegF()
MON = datetime.date(2026, 3, 2)  # Monday, EST


def calls(*spec):
    """Call attempts: (day offset from MON, count) at 10:00 New York time."""
    found = []
    for offset, count in spec:
        day = MON + datetime.timedelta(days=offset)
        found += [ny(day.year, day.month, day.day, 10, i) for i in range(count)]
    return found


def on(offset, hour=12, minute=0):
    day = MON + datetime.timedelta(days=offset)
    return ny(day.year, day.month, day.day, hour, minute)


REGF_TABLE = [
    # attempts, last conversation, at, reason, what it shows
    (calls((0, 6)), None, on(0), "", "6 calls today: the 7th is allowed"),
    (calls((0, 7)), None, on(0), REGF_CALL_FREQUENCY, "7 calls today: no 8th"),
    (calls((0, 7)), None, on(6), REGF_CALL_FREQUENCY, "day 7 of the period (Sunday)"),
    (calls((0, 7)), None, on(7), "", "day 8: the Monday calls have left the period"),
    (calls(*[(d, 1) for d in range(7)]), None, on(6, 15), REGF_CALL_FREQUENCY,
     "one a day Mon..Sun: no second call on Sunday"),
    (calls(*[(d, 1) for d in range(7)]), None, on(7), "", "Monday's call has left the period"),
    (calls((0, 3), (3, 3)), None, on(6), "", "6 in the period: one more"),
    ([], on(0, 15), on(0, 16), REGF_CONVERSATION, "the conversation day is day 1"),
    ([], on(0, 15), on(6, 20, 59), REGF_CONVERSATION, "day 7 after the conversation"),
    ([], on(0, 15), on(7, 8, 0), "", "day 8: calls may resume (08:00 EDT after the change)"),
    ([], u(2026, 3, 3, 4, 30), on(7, 8, 0), "",
     "a conversation at 03-03 04:30 UTC was on 03-02 in New York"),
    ([], None, on(1, 7, 59), REGF_INCONVENIENT_TIME, "07:59 local"),
    ([], None, on(1, 8, 0), "", "08:00 local"),
    ([], None, on(1, 20, 59), "", "20:59 local"),
    ([], None, on(1, 21, 0), REGF_INCONVENIENT_TIME, "21:00 local (the window is [08:00, 21:00))"),
]


@pytest.mark.parametrize("attempts, conversation, at, reason, what", REGF_TABLE,
                         ids=[row[4] for row in REGF_TABLE])
def test_regf_calls(attempts, conversation, at, reason, what):
    assert REGF.call_reason(attempts, conversation, at, NY) == reason
    assert REGF.call_allowed(attempts, conversation, at, NY) is (reason == "")
    next_call = REGF.next_call_time(attempts, conversation, at, NY)
    assert REGF.call_allowed(attempts, conversation, next_call, NY)
    assert (next_call == at) is (reason == "")


def test_regf_next_call_time():
    # 7 calls on Monday 03-02: next call Monday 03-09 08:00, EDT by then.
    assert REGF.next_call_time(calls((0, 7)), None, on(0, 13), NY) == u(2026, 3, 9, 12, 0)
    # A conversation on Monday at 15:00: the same, day 1 is Monday.
    assert REGF.next_call_time([], on(0, 15), on(0, 16), NY) == u(2026, 3, 9, 12, 0)
    # At 21:30 with nothing else in the way: 08:00 the next morning.
    assert REGF.next_call_time([], None, on(1, 21, 30), NY) == on(2, 8, 0)
    # The calls counted are the consumer's days: Kolkata, 03-02 20:00 UTC is 03-03 01:30.
    late = [u(2026, 3, 2, 20, i) for i in range(7)]
    assert REGF.next_call_time(late, None, u(2026, 3, 3, 4, 0), KOLKATA) == u(2026, 3, 10, 2, 30)


def test_regf_convenient_time_covers_email_and_sms_by_send_time():
    hours = regf_quiet_hours()
    late = on(1, 21, 30)
    for channel in ("email", "sms", "call"):
        assert hours.next_allowed(late, NY, channel) == on(2, 8, 0)
    assert hours.next_allowed(late, NY, "letter") == late
    # Without Regulation F an email goes at once; with it, it waits for 08:00.
    assert Compliance().send_time(late, NY, "email") == late
    assert Compliance(regf=RegF()).send_time(late, NY, "email") == on(2, 8, 0)
    # The stricter of the policy's and Regulation F's windows applies.
    rules = Compliance(quiet_hours=QuietHours({"sms": ("09:00", "22:00")}), regf=RegF())
    assert rules.send_time(on(1, 8, 30), NY, "sms") == on(1, 9, 0)
    assert rules.send_time(on(1, 21, 15), NY, "sms") == on(2, 9, 0)


def test_compliance_spec_from_a_policy():
    policy = SimpleNamespace(
        quiet_hours={"email": ["07:00", "22:00"]},
        frequency_caps={"total": [1, 2]},
        exclude_weekends=True,
        weekend_days=["fri", "sat"],
        holidays=["2026-12-25"],
        regulation_f=True,
    )
    rules = compliance_spec(policy, default_tz=BERLIN)
    assert rules.quiet_hours.window("email") == Window("07:00", "22:00")
    assert rules.quiet_hours.window("sms") == Window("08:00", "21:00")
    assert rules.cap.total == (1, 2)
    assert rules.calendar.weekend_days == frozenset({4, 5})
    assert rules.regf == RegF()
    # An unknown zone falls back to the site's: Berlin, Thursday 03-05 22:30 UTC = 23:30;
    # Friday and Saturday are the weekend; Regulation F's 08:00 beats the policy's 07:00.
    assert rules.send_time(u(2026, 3, 5, 22, 30), "Nowhere/Atall", "email") == u(2026, 3, 8, 7, 0)
    # A policy without the fields: the defaults, Regulation F off.
    bare = compliance_spec(object())
    assert bare == Compliance()
    assert bare.regf is None and bare.cap.total == (1, 1)


# -- properties ----------------------------------------------------------------------------
ZONES = [NY, BERLIN, KOLKATA, CHATHAM, LORD_HOWE, "UTC", "America/Santiago", "America/Havana",
         "Pacific/Apia", "Asia/Tehran"]
TRANSITIONS = [u(2026, 3, 8, 7), u(2026, 11, 1, 6), u(2026, 3, 29, 1), u(2026, 10, 25, 1),
               u(2026, 4, 4, 14), u(2026, 9, 26, 14), u(2026, 4, 4, 15), u(2026, 10, 3, 15, 30),
               u(2026, 9, 6, 4), u(2026, 4, 5, 3), u(2026, 3, 8, 5), u(2026, 11, 1, 5)]

times = st.builds(datetime.time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59]))
windows = st.tuples(times, times).filter(lambda w: w[0] != w[1])
instants = st.one_of(
    st.datetimes(min_value=datetime.datetime(2025, 1, 1), max_value=datetime.datetime(2027, 12, 31),
                 timezones=st.just(UTC)),
    st.builds(lambda t, minutes, seconds: t + datetime.timedelta(minutes=minutes, seconds=seconds),
              st.sampled_from(TRANSITIONS), st.integers(-36 * 60, 36 * 60), st.integers(0, 59)),
)


def in_wall_window(instant, tz, window):
    wall = local(instant, tz).time().replace(tzinfo=None)
    start, end = window
    return start <= wall < end if start < end else (wall >= start or wall < end)


@settings(max_examples=400, deadline=None)
@given(at=instants, tz=st.sampled_from(ZONES), window=windows)
def test_next_allowed_properties(at, tz, window):
    result = next_allowed(at, tz, window)
    assert result >= at
    assert not is_quiet(result, tz, window)
    assert next_allowed(result, tz, window) == result
    # By the wall clock the result is in the window, unless it lies in the repeated hour
    # of a fall-back night (a window that opened before it stays open: counted once).
    assert in_wall_window(result, tz, window) or local(result, tz).fold == 1
    if result > at:
        # Nothing earlier was allowed.
        assert is_quiet(result - datetime.timedelta(microseconds=1), tz, window)
        assert is_quiet(at + (result - at) / 2, tz, window)
        assert result - at < datetime.timedelta(days=2)


@settings(max_examples=200, deadline=None)
@given(at=instants, tz=st.sampled_from(ZONES), window=windows,
       holidays=st.sets(st.dates(datetime.date(2025, 1, 1), datetime.date(2028, 1, 10)),
                        max_size=40),
       weekend=st.sets(st.integers(0, 6), max_size=3))
def test_next_send_time_properties(at, tz, window, holidays, weekend):
    calendar = BusinessCalendar(exclude_weekends=True, weekend_days=weekend, holidays=holidays)
    hours = QuietHours({"sms": window})
    result = next_send_time(at, tz, "sms", hours, calendar)
    assert result >= at
    assert calendar.is_business_day(local(result, tz).date())
    assert not hours.is_quiet(result, tz, "sms")
    assert next_send_time(result, tz, "sms", hours, calendar) == result


@settings(max_examples=150, deadline=None)
@given(
    spec=st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["email", "sms"]),
                            st.integers(0, 5 * 24), st.integers(-3, 3)),
                  max_size=25),
    tz=st.sampled_from(ZONES),
    seed=st.integers(0, 1000),
)
def test_filter_batch_respects_caps_and_is_order_free(spec, tz, seed):
    cap = FrequencyCap(per_channel={"sms": (1, 3)}, total=(2, 2))
    candidates = [Candidate(who, case, channel, u(2026, 3, 6) + datetime.timedelta(hours=h),
                            tz, priority)
                  for case, (who, channel, h, priority) in enumerate(spec)]
    plan = filter_batch(candidates, {}, cap)
    assert len(plan.allowed) + len(plan.held) == len(candidates)
    shuffled = list(candidates)
    random.Random(seed).shuffle(shuffled)
    assert filter_batch(shuffled, {}, cap) == plan
    zone = zone_for(tz)
    for who in "abc":
        sent = [c for c in plan.allowed if c.customer == who]
        days = [c.at.astimezone(zone).date() for c in sent]
        for day in set(days):
            assert sum(1 for d in days if 0 <= (d - day).days < 2) <= 2
            sms = [c.at.astimezone(zone).date() for c in sent if c.channel == "sms"]
            assert sum(1 for d in sms if 0 <= (d - day).days < 3) <= 1
    for held in plan.held:
        assert held.retry_at > held.candidate.at


def scanned_next_allowed(at, tz, window):
    """The window's definition checked by brute force, minute by minute: for each local
    date it opens at the first minute whose wall clock reads its start or later and closes
    at the first minute reading its end or later."""
    zone, window = zone_for(tz), Window(*window)
    minute = datetime.timedelta(minutes=1)
    first = at.replace(second=0, microsecond=0) - datetime.timedelta(hours=36)
    instants = [first + i * minute for i in range(5 * 24 * 60)]
    walls = [t.astimezone(zone).replace(tzinfo=None) for t in instants]

    def first_reading(naive):
        return next(t for t, wall in zip(instants, walls, strict=True) if wall >= naive)

    day = walls[0].date()
    for _ in range(5):
        close_day = day + DAY if window.wraps else day
        opens = first_reading(datetime.datetime.combine(day, window.start))
        closes = first_reading(datetime.datetime.combine(close_day, window.end))
        if opens < closes and closes > at:
            return max(opens, at)
        day += DAY
    raise AssertionError("no window within the scanned days")


@settings(max_examples=40, deadline=None)
@given(
    at=st.builds(lambda t, minutes: t + datetime.timedelta(minutes=minutes),
                 st.sampled_from(TRANSITIONS), st.integers(-30 * 60, 30 * 60)),
    tz=st.sampled_from([NY, BERLIN, CHATHAM, LORD_HOWE, "America/Santiago", "America/Havana"]),
    window=st.tuples(st.builds(datetime.time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
                     st.builds(datetime.time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
                     ).filter(lambda w: w[0] != w[1]),
)
def test_next_allowed_matches_a_minute_by_minute_scan(at, tz, window):
    assert next_allowed(at, tz, window) == scanned_next_allowed(at, tz, window)
