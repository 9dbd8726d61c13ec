"""Compliance guards as pure rules: no ORM, no clock, no I/O (docs/compliance.md).

Every instant going in or out is timezone-aware; what comes out is in UTC. Local times
and dates are the customer's, in their IANA time zone; an empty or unknown zone falls
back to ``default_tz`` (the run passes the site's ``TIME_ZONE``), and an unknown default
to UTC.

* **Quiet hours** (:class:`QuietHours`, :func:`next_allowed`, :func:`is_quiet`): per
  channel, an allowed window of local wall-clock time; a message due outside it waits for
  the window. Defaults: ``sms`` and ``call`` 08:00-21:00; ``email`` and ``letter`` any time.
* **Calendar** (:class:`BusinessCalendar`): weekends (which days are configurable) and
  holidays; the customer's local date decides.
* :func:`next_send_time` combines both: the first instant at or after a time at which a
  message may go out.
* **Frequency caps** (:class:`FrequencyCap`, :func:`cap_allows`, :func:`filter_batch`):
  at most ``count`` messages within any ``days`` consecutive local calendar days, per
  channel and in total, counted over every case of the customer (default: one message a
  day in total).
* **Regulation F** (:class:`RegF`, opt-in): 12 CFR 1006.14(b)(2) call frequency per debt
  and 1006.6(b)(1)(i) convenient time (08:00-21:00 for calls, SMS and email, electronic
  messages timed by when they are sent).

**How a local window is placed in real time.** For a local date ``D``, a window
``(start, end)`` opens at the first instant at which the local clock reads ``D start`` or
later and closes at the first instant at which it reads ``D end`` (``D+1 end`` when the
window wraps past midnight) or later. So a boundary the clocks skip (spring forward) is
taken at the moment the clocks jump past it, and a boundary they show twice (fall back)
at its first occurrence: the repeated hour is counted once, the window opens and closes
once a day and never reopens in the repeated hour. A window lying entirely inside a
skipped stretch does not exist that day.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import ComplianceConfigError, NoSendTime  # noqa: F401 - part of this API

UTC = datetime.timezone.utc
ONE_DAY = datetime.timedelta(days=1)
MIDNIGHT = datetime.time(0, 0)

EMAIL = "email"
SMS = "sms"
CALL = "call"
LETTER = "letter"

#: The allowed window of each channel by default; a channel not named has no quiet hours.
DEFAULT_WINDOWS = {
    SMS: (datetime.time(8, 0), datetime.time(21, 0)),
    CALL: (datetime.time(8, 0), datetime.time(21, 0)),
    EMAIL: None,
    LETTER: None,
}

#: The default total cap: one message per local calendar day of the customer.
DEFAULT_TOTAL = (1, 1)

# Reasons a candidate message is held (codes, not user-facing text).
CAPPED_TOTAL = "cap-total"
CAPPED_CHANNEL = "cap-channel"
REGF_CALL_FREQUENCY = "regf-call-frequency"
REGF_CONVERSATION = "regf-conversation"
REGF_INCONVENIENT_TIME = "regf-inconvenient-time"

#: What the Regulation F reasons mean, for people (the workbench shows them).
REGF_REASON_TEXT = {
    REGF_CALL_FREQUENCY: gettext_lazy(
        "seven call attempts about this case within seven days (Regulation F)"),
    REGF_CONVERSATION: gettext_lazy(
        "a telephone conversation about this case within the last seven days (Regulation F)"),
    REGF_INCONVENIENT_TIME: gettext_lazy(
        "outside 08:00-21:00 in the customer's local time (Regulation F)"),
}

WEEKDAY_FULL_NAMES = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)

# Rounds of "push forward" in next_send_time before rules that never agree are reported.
MAX_ROUNDS = 64


# -- time zones and instants ------------------------------------------------------------

def zone_for(tz, default_tz="UTC"):
    """The ``tzinfo`` of ``tz`` (an IANA name or a tzinfo); an empty or unknown ``tz``
    falls back to ``default_tz`` (same forms), an unknown default to UTC."""
    for candidate in (tz, default_tz):
        if not candidate:
            continue
        if isinstance(candidate, datetime.tzinfo):
            return candidate
        zone = _zone_named(str(candidate).strip())
        if zone is not None:
            return zone
    return UTC


@functools.lru_cache(maxsize=1024)
def _zone_named(name):
    """The zone called ``name``, or None (unknown names are remembered too: a batch
    full of one misspelt zone looks it up once)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return None


def as_utc(at):
    """``at`` in UTC; a naive datetime is refused (it names no instant)."""
    if not isinstance(at, datetime.datetime):
        raise TypeError(f"expected a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} is naive: compliance rules need timezone-aware instants")
    return at.astimezone(UTC)


def local_date(at, tz, default_tz="UTC"):
    """The customer's local calendar date at the instant ``at``."""
    return as_utc(at).astimezone(zone_for(tz, default_tz)).date()


def _wall(instant, zone):
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def local_instant(day, time, tz, default_tz="UTC"):
    """The first instant (UTC) at which the local clock reads ``day time`` or later.

    An existing local time is that instant (of two, in a fall-back night, the earlier:
    ``fold=0``); a time the clocks skip (spring forward) is the moment of the jump, the
    first instant after the gap.
    """
    zone = zone_for(tz, default_tz)
    naive = datetime.datetime.combine(day, time).replace(tzinfo=None)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == naive:
        return first
    # In a gap. The two folds map to instants on either side of the jump; find the jump
    # (the first instant whose wall clock reads ``naive`` or later) by bisection.
    other = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(first, other), max(first, other)
    while _wall(lo, zone) >= naive:
        lo -= datetime.timedelta(hours=1)
    while _wall(hi, zone) < naive:
        hi += datetime.timedelta(hours=1)
    step = datetime.timedelta(microseconds=1)
    while hi - lo > step:
        mid = lo + (hi - lo) // 2
        if _wall(mid, zone) >= naive:
            hi = mid
        else:
            lo = mid
    return hi


# -- quiet hours ------------------------------------------------------------------------

_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def parse_time(value):
    """A ``datetime.time`` from a time or "HH:MM[:SS]" ("24:00" is midnight)."""
    if isinstance(value, datetime.time):
        if value.tzinfo is not None:
            raise ValueError(f"{value!r}: a window is local wall-clock time, without a zone")
        return value
    match = _TIME.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a time of day (HH:MM)")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if (hour, minute, second) == (24, 0, 0):
        return MIDNIGHT
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{value!r} is not a time of day (HH:MM)")
    return datetime.time(hour, minute, second)


@dataclass(frozen=True, slots=True)
class Window:
    """An allowed window of local wall-clock time, ``[start, end)``. ``start > end``
    wraps past midnight: ``Window(22:00, 06:00)`` allows 22:00 to 06:00 the next
    morning (the local date of its start is the window's date)."""

    start: datetime.time
    end: datetime.time

    def __post_init__(self):
        object.__setattr__(self, "start", parse_time(self.start))
        object.__setattr__(self, "end", parse_time(self.end))
        if self.start == self.end:
            raise ValueError(
                "a window needs different start and end times (no window: any time)"
            )

    @property
    def wraps(self):
        return self.start > self.end

    def interval(self, day, zone):
        """(opens, closes) in UTC of the window of local date ``day``; empty (opens >=
        closes) when the clocks skip all of it that day."""
        opens = local_instant(day, self.start, zone)
        closes = local_instant(day + ONE_DAY if self.wraps else day, self.end, zone)
        return opens, closes

    def minutes(self):
        """The minutes of the day (0-1439) the window allows, ignoring clock changes;
        used to check that two windows overlap at all."""
        start = self.start.hour * 60 + self.start.minute + (self.start.second > 0)
        end = self.end.hour * 60 + self.end.minute + (self.end.second > 0)
        if self.wraps:
            return set(range(start, 1440)) | set(range(0, end))
        return set(range(start, end))

    def __str__(self):
        return f"{self.start.isoformat('minutes')}-{self.end.isoformat('minutes')}"


def as_window(value):
    """A :class:`Window` (or None: any time) from a Window, a (start, end) pair of times
    or "HH:MM" strings, or "HH:MM-HH:MM"."""
    if value is None or isinstance(value, Window):
        return value
    if isinstance(value, str):
        parts = value.split("-")
        if len(parts) != 2:
            raise ValueError(f"{value!r} is not a window (HH:MM-HH:MM)")
        return Window(*parts)
    try:
        start, end = value
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a window (a start and an end time)") from None
    return Window(start, end)


def next_allowed(at_utc, tz_name, window, default_tz="UTC"):
    """The first instant at or after ``at_utc`` inside ``window`` in local time of
    ``tz_name`` (UTC). ``window`` None: ``at_utc`` itself (any time)."""
    at = as_utc(at_utc)
    window = as_window(window)
    if window is None:
        return at
    zone = zone_for(tz_name, default_tz)
    # Windows of earlier dates have closed by ``at`` (see the module docstring), so the
    # first interval still open after ``at`` is the answer; windows follow each other in
    # date order and never overlap.
    day = at.astimezone(zone).date() - ONE_DAY
    for _day in range(8):
        opens, closes = window.interval(day, zone)
        if opens < closes and closes > at:
            return max(opens, at)
        day += ONE_DAY
    raise NoSendTime(f"the window {window} does not occur in {zone} near {at}")


def is_quiet(at_utc, tz_name, window, default_tz="UTC"):
    """True when ``at_utc`` lies outside ``window`` in the local time of ``tz_name``."""
    return next_allowed(at_utc, tz_name, window, default_tz) != as_utc(at_utc)


@dataclass(frozen=True)
class QuietHours:
    """The allowed window of each channel (None: any time). A channel not named has no
    quiet hours."""

    windows: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))

    def __post_init__(self):
        object.__setattr__(
            self, "windows", {str(ch): as_window(w) for ch, w in dict(self.windows).items()}
        )

    def window(self, channel):
        return self.windows.get(channel)

    def next_allowed(self, at_utc, tz_name, channel, default_tz="UTC"):
        return next_allowed(at_utc, tz_name, self.window(channel), default_tz)

    def is_quiet(self, at_utc, tz_name, channel, default_tz="UTC"):
        return is_quiet(at_utc, tz_name, self.window(channel), default_tz)

    @classmethod
    def from_config(cls, config):
        """Quiet hours from a policy's JSON: ``{"sms": ["08:00", "21:00"], "email":
        null}``. Channels not named keep their default window; null removes it.
        Raises :class:`ComplianceConfigError` naming every bad entry."""
        windows = dict(DEFAULT_WINDOWS)
        if config in (None, ""):
            return cls(windows)
        if not isinstance(config, Mapping):
            raise ComplianceConfigError([_(
                'Enter an object of channels and allowed windows, e.g. '
                '{"sms": ["08:00", "21:00"]}.'
            )])
        messages = []
        for channel, value in config.items():
            try:
                windows[str(channel)] = as_window(value)
            except ValueError:
                messages.append(_(
                    "The quiet hours of '%(channel)s' must be a start and an end time "
                    '(e.g. ["08:00", "21:00"]) that differ, or null for any time.'
                ) % {"channel": channel})
        if messages:
            raise ComplianceConfigError(messages)
        return cls(windows)

    def to_config(self):
        return {
            ch: None if w is None else [w.start.isoformat("minutes"), w.end.isoformat("minutes")]
            for ch, w in sorted(self.windows.items())
        }


# -- calendar ---------------------------------------------------------------------------

def weekday_number(value):
    """0 (Monday) to 6 (Sunday) from a number or a name ("fri", "Friday")."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a day of the week")
    if isinstance(value, int):
        if 0 <= value <= 6:
            return value
        raise ValueError(f"{value!r} is not a day of the week (0 = Monday ... 6 = Sunday)")
    name = str(value).strip().lower()
    for number, full in enumerate(WEEKDAY_FULL_NAMES):
        if name in (full, full[:3]):
            return number
    raise ValueError(f"{value!r} is not a day of the week")


@dataclass(frozen=True)
class BusinessCalendar:
    """Days on which nothing is sent: weekends (with ``exclude_weekends``; which days they
    are is ``weekend_days``, 0 = Monday ... 6 = Sunday, default Saturday and Sunday) and
    ``holidays`` (dates). Dates are the customer's local dates."""

    exclude_weekends: bool = False
    weekend_days: frozenset = frozenset({5, 6})
    holidays: frozenset = frozenset()

    def __post_init__(self):
        object.__setattr__(
            self, "weekend_days", frozenset(weekday_number(d) for d in self.weekend_days)
        )
        holidays = frozenset(self.holidays)
        for day in holidays:
            if isinstance(day, datetime.datetime) or not isinstance(day, datetime.date):
                raise TypeError(f"holidays are dates, not {day!r}")
        object.__setattr__(self, "holidays", holidays)
        if self.exclude_weekends and len(self.weekend_days) == 7:
            raise ValueError("every day of the week is a weekend day: nothing could be sent")

    def is_business_day(self, day):
        if isinstance(day, datetime.datetime):
            raise TypeError("is_business_day takes a local date, not a datetime")
        if self.exclude_weekends and day.weekday() in self.weekend_days:
            return False
        return day not in self.holidays

    def next_business_day(self, day):
        """The first business day on or after ``day``."""
        # Terminates: at most len(holidays) + 7 days are skipped.
        while not self.is_business_day(day):
            day += ONE_DAY
        return day

    @classmethod
    def from_config(cls, exclude_weekends=False, weekend_days=None, holidays=None):
        """A calendar from a policy's fields: ``weekend_days`` a list of day numbers
        (0 = Monday) or names ("fri", "sat"), empty or None for Saturday and Sunday;
        ``holidays`` a list of ISO dates."""
        messages = []
        days = set()
        for value in weekend_days or (5, 6):
            try:
                days.add(weekday_number(value))
            except ValueError:
                messages.append(
                    _("'%(value)s' is not a day of the week (mon ... sun, or 0 = Monday "
                      "... 6 = Sunday).") % {"value": value}
                )
        dates = set()
        if holidays not in (None, ""):
            if isinstance(holidays, (str, bytes, Mapping)) or not isinstance(holidays, Iterable):
                holidays = [holidays]
            for value in holidays:
                if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
                    dates.add(value)
                    continue
                try:
                    dates.add(datetime.date.fromisoformat(str(value).strip()))
                except ValueError:
                    messages.append(
                        _("'%(value)s' is not a date (YYYY-MM-DD).") % {"value": value}
                    )
        if exclude_weekends and len(days) == 7:
            messages.append(_("Every day of the week is a weekend day: nothing could be sent."))
        if messages:
            raise ComplianceConfigError(messages)
        return cls(bool(exclude_weekends), frozenset(days), frozenset(dates))


def _as_quiet_list(quiet_hours):
    if quiet_hours is None:
        return []
    if isinstance(quiet_hours, QuietHours):
        return [quiet_hours]
    return [q for q in quiet_hours if q is not None]


def next_send_time(at_utc, tz, channel, quiet_hours=None, calendar=None, default_tz="UTC"):
    """The first instant at or after ``at_utc`` at which a message of ``channel`` may go
    out: inside the channel's window of every given :class:`QuietHours` (one, or several
    that all apply, e.g. the policy's and Regulation F's), on a business day of
    ``calendar`` by the customer's local date. A non-business day moves the message to
    the start (local midnight) of the next business day, and then into the window.

    Raises :class:`NoSendTime` when the rules never agree (windows that do not overlap).
    """
    zone = zone_for(tz, default_tz)
    at = as_utc(at_utc)
    quiet = _as_quiet_list(quiet_hours)
    for _round in range(MAX_ROUNDS):
        moved = False
        if calendar is not None:
            day = at.astimezone(zone).date()
            if not calendar.is_business_day(day):
                at = max(at, local_instant(calendar.next_business_day(day), MIDNIGHT, zone))
                moved = True
        for hours in quiet:
            later = next_allowed(at, zone, hours.window(channel))
            if later != at:
                at, moved = later, True
        if not moved:
            return at
    raise NoSendTime(f"the quiet hours for {channel!r} never allow a message")


# -- frequency caps ---------------------------------------------------------------------

def _limit(value, what):
    try:
        count, days = value
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected (count, days), got {value!r}") from None
    if isinstance(count, bool) or isinstance(days, bool):
        raise ValueError(f"{what}: count and days are whole numbers")
    if not isinstance(count, int) or not isinstance(days, int) or count < 1 or days < 1:
        raise ValueError(f"{what}: count and days are whole numbers of at least 1")
    return (count, days)


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``count`` messages within any ``days`` consecutive local calendar days of
    the customer: per channel (``per_channel``: channel -> (count, days)) and over all
    channels (``total``; None: no total cap). Default: one message a day in total."""

    per_channel: Mapping[str, tuple] = field(default_factory=dict)
    total: tuple | None = DEFAULT_TOTAL

    def __post_init__(self):
        object.__setattr__(self, "per_channel", {
            str(ch): _limit(v, f"per_channel[{ch!r}]") for ch, v in dict(self.per_channel).items()
        })
        if self.total is not None:
            object.__setattr__(self, "total", _limit(self.total, "total"))

    def limits(self, channel):
        """(reason, (count, days), channel or None for all) of each limit on ``channel``."""
        found = []
        if self.total is not None:
            found.append((CAPPED_TOTAL, self.total, None))
        if channel in self.per_channel:
            found.append((CAPPED_CHANNEL, self.per_channel[channel], channel))
        return found

    @property
    def longest(self):
        return max([d for _c, d in self.per_channel.values()]
                   + ([self.total[1]] if self.total else []), default=1)

    @classmethod
    def from_config(cls, config):
        """A cap from a policy's JSON: ``{"total": [1, 1], "per_channel": {"sms": [2,
        7]}}``; "total" missing keeps the default, null switches the total cap off."""
        if config in (None, ""):
            return cls()
        if not isinstance(config, Mapping):
            raise ComplianceConfigError([_(
                'Enter an object such as {"total": [1, 1], "per_channel": {"sms": [2, 7]}}.'
            )])
        messages = []
        unknown = set(config) - {"total", "per_channel"}
        for key in sorted(unknown, key=str):
            messages.append(_("Unknown key '%(key)s' (use total and per_channel).") % {"key": key})
        total = config.get("total", DEFAULT_TOTAL)
        if total is not None:
            try:
                total = _limit(total, "total")
            except ValueError:
                messages.append(_(
                    "The total cap must be [count, days], two whole numbers of at least 1, "
                    "or null for none."
                ))
        per_channel = {}
        raw = config.get("per_channel") or {}
        if not isinstance(raw, Mapping):
            messages.append(_('per_channel must be an object, e.g. {"sms": [2, 7]}.'))
            raw = {}
        for channel, value in raw.items():
            try:
                per_channel[str(channel)] = _limit(value, channel)
            except ValueError:
                messages.append(_(
                    "The cap of '%(channel)s' must be [count, days], two whole numbers of "
                    "at least 1."
                ) % {"channel": channel})
        if messages:
            raise ComplianceConfigError(messages)
        return cls(per_channel, total)

    def to_config(self):
        return {
            "total": None if self.total is None else list(self.total),
            "per_channel": {ch: list(v) for ch, v in sorted(self.per_channel.items())},
        }


def _day_counts(history, zone, channel=None):
    counts = Counter()
    for sent_at, sent_channel in history:
        if channel is None or sent_channel == channel:
            counts[as_utc(sent_at).astimezone(zone).date()] += 1
    return counts


class _Tally:
    """Messages per local date: in total and per channel (one pass over a history)."""

    def __init__(self, history, zone):
        self.total = Counter()
        self.by_channel = defaultdict(Counter)
        for sent_at, channel in history:
            day = as_utc(sent_at).astimezone(zone).date()
            self.total[day] += 1
            self.by_channel[channel][day] += 1

    def counts(self, channel):
        return self.total if channel is None else self.by_channel.get(channel, Counter())

    @property
    def last_day(self):
        return max(self.total, default=None)


def _fits(counts, day, limit):
    """True when one more message on ``day`` keeps every run of ``days`` consecutive
    days that contains ``day`` at ``count`` messages or fewer (messages already planned
    for later days count too)."""
    count, days = limit
    first = day - datetime.timedelta(days=days - 1)
    series = [counts.get(first + datetime.timedelta(days=i), 0) for i in range(2 * days - 1)]
    running = sum(series[:days])
    for start in range(days):
        if start:
            running += series[start + days - 1] - series[start - 1]
        if running + 1 > count:
            return False
    return True


def _cap_reason_on(tally, channel, day, cap):
    for reason, limit, only in cap.limits(channel):
        if not _fits(tally.counts(only), day, limit):
            return reason
    return ""


def _cap_retry(tally, channel, at, zone, cap):
    """The first instant at or after ``at`` with room (see :func:`cap_next_allowed`)."""
    day = at.astimezone(zone).date()
    if not _cap_reason_on(tally, channel, day, cap):
        return at
    # Past the last message plus the longest cap every limit has room.
    horizon = max(tally.last_day or day, day) + datetime.timedelta(days=cap.longest + 1)
    while day <= horizon:
        day += ONE_DAY
        if not _cap_reason_on(tally, channel, day, cap):
            return max(at, local_instant(day, MIDNIGHT, zone))
    raise AssertionError("unreachable: past the last message every cap has room")


def cap_reason(sent_history, channel, at_utc, tz, cap=None, default_tz="UTC"):
    """"" when ``cap`` allows one more ``channel`` message at ``at_utc``, else the reason
    (:data:`CAPPED_TOTAL` or :data:`CAPPED_CHANNEL`). ``sent_history``: (sent_at, channel)
    of every message of the customer over all of its cases (sent, being sent, or queued
    for a later time: at that time), failed ones left out."""
    cap = FrequencyCap() if cap is None else cap
    zone = zone_for(tz, default_tz)
    day = as_utc(at_utc).astimezone(zone).date()
    return _cap_reason_on(_Tally(sent_history, zone), channel, day, cap)


def cap_allows(sent_history, channel, at_utc, tz, cap=None, default_tz="UTC"):
    """True when ``cap`` allows one more ``channel`` message at ``at_utc``."""
    return not cap_reason(sent_history, channel, at_utc, tz, cap, default_tz)


def cap_next_allowed(sent_history, channel, at_utc, tz, cap=None, default_tz="UTC"):
    """The first instant at or after ``at_utc`` at which ``cap`` allows one more
    ``channel`` message: ``at_utc`` itself, or the start (local midnight) of the first
    local date with room."""
    cap = FrequencyCap() if cap is None else cap
    zone = zone_for(tz, default_tz)
    return _cap_retry(_Tally(sent_history, zone), channel, as_utc(at_utc), zone, cap)


@dataclass(frozen=True)
class Candidate:
    """A message a batch wants to send. ``at``: when it would go out (after quiet hours:
    its local date is the one it counts on). Higher ``priority`` goes first, then the
    lower ``case``. ``cap``: this message's policy's cap (None: the batch's)."""

    customer: Hashable
    case: Any
    channel: str
    at: datetime.datetime
    tz: str | None = ""
    priority: int = 0
    cap: FrequencyCap | None = None


@dataclass(frozen=True)
class Held:
    """A candidate the caps hold back: ``reason`` and ``retry_at``, the first instant at
    which the caps would have room (given the history and this batch's messages)."""

    candidate: Candidate
    reason: str
    retry_at: datetime.datetime


@dataclass
class BatchPlan:
    allowed: list = field(default_factory=list)
    held: list = field(default_factory=list)


def batch_order(candidate):
    return (-candidate.priority, candidate.case, candidate.channel, as_utc(candidate.at))


def filter_batch(candidates, history_by_customer, cap=None, default_tz="UTC"):
    """Which of a batch's candidate messages the frequency caps allow.

    ``history_by_customer``: customer -> (sent_at, channel) of its earlier messages over
    all its cases (see :func:`cap_reason`). The candidates are taken in a fixed order
    (higher priority first, then lower case id) and each allowed one counts against the
    ones after it: two cases of one customer due the same day with a one-a-day cap send
    one message, and the same input always gives the same result.
    """
    cap = FrequencyCap() if cap is None else cap
    plan = BatchPlan()
    accepted = defaultdict(list)
    for candidate in sorted(candidates, key=batch_order):
        history = [*history_by_customer.get(candidate.customer, ()), *accepted[candidate.customer]]
        rule = candidate.cap or cap
        zone = zone_for(candidate.tz, default_tz)
        at = as_utc(candidate.at)
        tally = _Tally(history, zone)
        reason = _cap_reason_on(tally, candidate.channel, at.astimezone(zone).date(), rule)
        if reason:
            plan.held.append(Held(candidate, reason, _cap_retry(tally, candidate.channel, at, zone, rule)))
        else:
            plan.allowed.append(candidate)
            accepted[candidate.customer].append((as_utc(candidate.at), candidate.channel))
    return plan


def split_uncounted(candidates, history_by_customer):
    """``(counted, free)``: the candidates :func:`filter_batch` must count, and those
    within any frequency cap without counting: a customer with no earlier message in
    ``history_by_customer`` (read over the caps' window) and a single candidate in the
    batch (every cap allows at least one message). The run counts only the first; a big
    batch of first reminders costs no cap arithmetic at all."""
    per_customer = Counter(c.customer for c in candidates)
    counted, free = [], []
    for c in candidates:
        if history_by_customer.get(c.customer) or per_customer[c.customer] > 1:
            counted.append(c)
        else:
            free.append(c)
    return counted, free


# -- Regulation F -----------------------------------------------------------------------

@dataclass(frozen=True)
class RegF:
    """US Regulation F (12 CFR part 1006) for debt collectors, as hard limits.

    * 1006.14(b)(2)(i)(A): at most ``max_calls`` call attempts about a debt within any
      ``period_days`` consecutive days;
    * 1006.14(b)(2)(i)(B): no call within ``conversation_days`` consecutive days after a
      telephone conversation about the debt, the date of the conversation being day 1;
    * 1006.6(b)(1)(i): communications only between 08:00 and 21:00 at the consumer's
      location, for ``channels`` (calls, SMS and email by default; an electronic message
      is timed by when it is sent).

    Days are the consumer's local calendar dates. Calls excluded by 1006.14(b)(3) (placed
    with the person's direct prior consent within its seven days, not connected to the
    dialed number, to the creditor or the attorneys named there) are not passed in.
    """

    max_calls: int = 7
    period_days: int = 7
    conversation_days: int = 7
    convenient: Window = Window(datetime.time(8, 0), datetime.time(21, 0))
    channels: tuple = (CALL, SMS, EMAIL)

    def quiet_hours(self):
        return QuietHours({channel: self.convenient for channel in self.channels})

    def call_reason(self, call_attempts, last_conversation_at, at, tz="", default_tz="UTC"):
        """"" when a call about the debt may be placed at ``at``, else the reason.
        ``call_attempts``: instants of the earlier call attempts about this debt that
        count; ``last_conversation_at``: the last telephone conversation about it, or
        None."""
        zone = zone_for(tz, default_tz)
        at = as_utc(at)
        if is_quiet(at, zone, self.convenient):
            return REGF_INCONVENIENT_TIME
        day = at.astimezone(zone).date()
        if last_conversation_at is not None:
            talked_on = as_utc(last_conversation_at).astimezone(zone).date()
            if talked_on <= day < talked_on + datetime.timedelta(days=self.conversation_days):
                return REGF_CONVERSATION
        counts = _day_counts(((a, CALL) for a in call_attempts), zone)
        if not _fits(counts, day, (self.max_calls, self.period_days)):
            return REGF_CALL_FREQUENCY
        return ""

    def call_allowed(self, call_attempts, last_conversation_at, at, tz="", default_tz="UTC"):
        return not self.call_reason(call_attempts, last_conversation_at, at, tz, default_tz)

    def next_call_time(self, call_attempts, last_conversation_at, at, tz="", default_tz="UTC"):
        """The first instant at or after ``at`` at which a call about the debt may be
        placed."""
        zone = zone_for(tz, default_tz)
        attempts = list(call_attempts)
        at = as_utc(at)
        horizon = max(
            [as_utc(a).astimezone(zone).date() for a in attempts]
            + [at.astimezone(zone).date()]
            + ([as_utc(last_conversation_at).astimezone(zone).date()]
               if last_conversation_at is not None else [])
        ) + datetime.timedelta(days=self.period_days + self.conversation_days + 2)
        while True:
            at = next_allowed(at, zone, self.convenient)
            reason = self.call_reason(attempts, last_conversation_at, at, zone)
            if not reason:
                return at
            if at.astimezone(zone).date() > horizon:
                raise AssertionError("unreachable: past every call and conversation")
            at = local_instant(at.astimezone(zone).date() + ONE_DAY, MIDNIGHT, zone)


def regf_quiet_hours():
    """Regulation F's convenient time, 08:00-21:00 local, for calls, SMS and email."""
    return RegF().quiet_hours()


# -- a policy's rules together ----------------------------------------------------------

@dataclass(frozen=True)
class Compliance:
    """The compliance rules of one policy (see :func:`compliance_spec`)."""

    quiet_hours: QuietHours = field(default_factory=QuietHours)
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)
    cap: FrequencyCap = field(default_factory=FrequencyCap)
    regf: RegF | None = None
    default_tz: str = "UTC"

    def __post_init__(self):
        object.__setattr__(self, "_all_quiet_hours", [self.quiet_hours] + (
            [self.regf.quiet_hours()] if self.regf else []))
        if self.regf is None:
            return
        conflicts = []
        for channel in self.regf.channels:
            window = self.quiet_hours.window(channel)
            if window is not None and not (window.minutes() & self.regf.convenient.minutes()):
                conflicts.append(channel)
        if conflicts:
            raise ComplianceConfigError([
                _("The quiet hours of '%(channel)s' leave no time inside Regulation F's "
                  "08:00-21:00.") % {"channel": channel}
                for channel in conflicts
            ])

    def all_quiet_hours(self):
        return self._all_quiet_hours

    def unrestricted(self, channel):
        """True when nothing limits when ``channel`` may send (no window, no day off):
        :meth:`send_time` is then the instant itself, and the run skips computing it."""
        calendar = self.calendar
        return (not calendar.holidays and not calendar.exclude_weekends
                and all(q.window(channel) is None for q in self.all_quiet_hours()))

    def send_time(self, at_utc, tz, channel):
        """When a message of ``channel`` due at ``at_utc`` may go out (quiet hours of the
        policy and of Regulation F if on, and the calendar)."""
        return next_send_time(at_utc, tz, channel, self.all_quiet_hours(), self.calendar,
                              self.default_tz)


def compliance_spec(policy, default_tz="UTC"):
    """The compliance rules of ``policy``, anything with (some of) the attributes
    ``quiet_hours``, ``frequency_caps`` (JSON), ``exclude_weekends``, ``weekend_days``,
    ``holidays`` and ``regulation_f``; a missing attribute takes its default."""
    return Compliance(
        quiet_hours=QuietHours.from_config(getattr(policy, "quiet_hours", None)),
        calendar=BusinessCalendar.from_config(
            getattr(policy, "exclude_weekends", False),
            getattr(policy, "weekend_days", None),
            getattr(policy, "holidays", None),
        ),
        cap=FrequencyCap.from_config(getattr(policy, "frequency_caps", None)),
        regf=RegF() if getattr(policy, "regulation_f", False) else None,
        default_tz=default_tz,
    )
