"""Reminder fees and late-payment interest, as pure and exact calculations.

No ORM, no clock, no I/O: the engine hands in plain values (a balance history per
invoice, a rule, the run's date) and gets back ``Decimal`` amounts and :class:`Charge`
records, which it lists in the message and hands to the host (the invoices are the
host's). See docs/fees.md for the rules, the rate tables, the formulas and worked
examples.

Exactness: every intermediate value is a ``fractions.Fraction`` (a ``Decimal`` converts
to one without loss), so nothing is rounded until the very end; the result is then
rounded ONCE, half up (``ROUND_HALF_UP``), to the minor units of the currency
(``babel.numbers.get_currency_precision``: JPY 0, EUR 2, KWD 3; 2 for an unknown code).

Idempotence: interest is always recomputed from the invoice's whole balance history, so
calling :func:`accrued_interest` twice, or again after a payment, gives the interest owed
in total; :func:`interest_delta` turns that into the part not charged yet.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from types import MappingProxyType

from babel.numbers import get_currency_precision
from django.utils.translation import gettext_lazy as _

from .exceptions import MissingRateError  # noqa: F401 - defined there, part of this API

ONE_DAY = datetime.timedelta(days=1)
ZERO = Decimal(0)

# -- rate tables ------------------------------------------------------------------------
#
# Keys are the first day of a half-year (1 January, 1 July), values the rate in percent
# per year in force on that day. Operators MUST keep these current: a new value is
# published for every half-year (pass an updated table as ``InterestRule(rates=...)`` /
# ``DUNNING["INTEREST"]["rates"]``; ``rate_table_is_current`` tells when it is stale).

#: The reference rate of Directive 2011/7/EU for euro-area creditors: the rate of the
#: ECB's most recent main refinancing operation (fixed-rate tenders) in force on the first
#: calendar day of the half-year. Source: ECB key interest rates
#: (https://www.ecb.europa.eu/stats/policy_and_exchange_rates/key_ecb_interest_rates/);
#: the last change before each date: 0.00 from 16 March 2016 (first raised on 27 July
#: 2022), 2.50 from 21 December 2022, 4.00 from 21 June 2023, 4.50 from 20 September 2023,
#: 4.25 from 12 June 2024, 3.15 from 18 December 2024, 2.15 from 11 June 2025 (unchanged
#: on the last operation of 2025).
ECB_REFERENCE_RATES = MappingProxyType(
    {
        "2022-01-01": "0.00",
        "2022-07-01": "0.00",
        "2023-01-01": "2.50",
        "2023-07-01": "4.00",
        "2024-01-01": "4.50",
        "2024-07-01": "4.25",
        "2025-01-01": "3.15",
        "2025-07-01": "2.15",
        "2026-01-01": "2.15",
    }
)

#: Germany's Basiszinssatz (§ 247 BGB), as announced by the Deutsche Bundesbank in the
#: Bundesanzeiger for each half-year (https://www.bundesbank.de, "Basiszinssatz").
DE_BASE_RATES = MappingProxyType(
    {
        "2022-01-01": "-0.88",
        "2022-07-01": "-0.88",
        "2023-01-01": "1.62",
        "2023-07-01": "3.12",
        "2024-01-01": "3.62",
        "2024-07-01": "3.37",
        "2025-01-01": "2.27",
        "2025-07-01": "1.27",
        "2026-01-01": "1.27",
    }
)

# -- the kinds of interest rule -----------------------------------------------------------

FIXED = "fixed"
EU_DIRECTIVE = "eu-directive"
DE_BGB_288 = "de-bgb-288"
INTEREST_KINDS = (FIXED, EU_DIRECTIVE, DE_BGB_288)

ACTUAL_365 = "actual/365"
ACTUAL_ACTUAL = "actual/actual"
DAY_COUNTS = (ACTUAL_365, ACTUAL_ACTUAL)

# Points above the reference/base rate, by kind and debtor (None: no statutory interest).
_POINTS = {
    EU_DIRECTIVE: {True: Decimal(8), False: None},  # Art. 2(6) Directive 2011/7/EU: B2B
    DE_BGB_288: {True: Decimal(9), False: Decimal(5)},  # § 288 (2) and (1) BGB
}
# The fixed compensation for recovery costs, for business debtors (Art. 6 Directive
# 2011/7/EU; § 288 (5) BGB): EUR 40 per invoice, in euro only unless configured.
_STATUTORY_COMPENSATION = MappingProxyType({"EUR": Decimal(40)})

# -- the kinds of charge ------------------------------------------------------------------

FEE = "fee"
INTEREST = "interest"
COMPENSATION = "compensation"
CHARGE_LABELS = {
    FEE: _("Reminder fee"),
    INTEREST: _("Late-payment interest"),
    COMPENSATION: _("Fixed compensation for recovery costs"),
}


# -- money ------------------------------------------------------------------------------


def minor_units(currency) -> int:
    """Digits after the decimal point of ``currency`` (CLDR via Babel); 2 when unknown."""
    try:
        return int(get_currency_precision(str(currency or "").upper()))
    except (KeyError, TypeError, ValueError):  # pragma: no cover - Babel knows a default
        return 2


def round_money(value, currency) -> Decimal:
    """``value`` (Decimal, int or Fraction) rounded half up to the currency's minor units."""
    digits = minor_units(currency)
    exact = Fraction(value)
    scaled = abs(exact) * 10**digits
    units = math.floor(scaled + Fraction(1, 2))
    if exact < 0:
        units = -units
    return (Decimal(units) / Decimal(10) ** digits).quantize(Decimal(1).scaleb(-digits))


def _decimal(value, what) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a number")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return number


_CURRENCY = re.compile(r"[A-Za-z]{3}")


def _amounts(value, what) -> dict[str, Decimal]:
    """``{"EUR": "5.00"}`` -> ``{"EUR": Decimal("5.00")}``: codes upper-cased, >= 0."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: expected an object of currency codes and amounts")
    amounts = {}
    for code, amount in value.items():
        if not isinstance(code, str) or not _CURRENCY.fullmatch(code):
            raise ValueError(f"{what}: {code!r} is not a currency code (three letters)")
        number = _decimal(amount, f"{what}[{code}]")
        if number < 0:
            raise ValueError(f"{what}[{code}]: {amount!r} is negative")
        amounts[code.upper()] = number
    return amounts


# -- reminder fees ------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeRule:
    """The fee of one reminder.

    ``fixed`` amounts per currency and/or ``percent`` of the open balance (both add up),
    then clamped to ``minimum`` / ``maximum`` of the currency (when set). A currency with
    neither a fixed amount nor a percentage costs nothing. ``first_free``: the first
    reminder (step index 0) is free; ``free``: this rule charges nothing at all (e.g. a
    step marked free).
    """

    fixed: Mapping[str, Decimal] = field(default_factory=dict)
    percent: Decimal | None = None
    minimum: Mapping[str, Decimal] = field(default_factory=dict)
    maximum: Mapping[str, Decimal] = field(default_factory=dict)
    first_free: bool = True
    free: bool = False

    def __post_init__(self):
        object.__setattr__(self, "fixed", _amounts(self.fixed, "fixed"))
        object.__setattr__(self, "minimum", _amounts(self.minimum, "minimum"))
        object.__setattr__(self, "maximum", _amounts(self.maximum, "maximum"))
        if self.percent is not None:
            percent = _decimal(self.percent, "percent")
            if percent < 0:
                raise ValueError(f"percent: {self.percent!r} is negative")
            object.__setattr__(self, "percent", percent)
        for code, low in self.minimum.items():
            high = self.maximum.get(code)
            if high is not None and high < low:
                raise ValueError(f"minimum[{code}] {low} is above maximum[{code}] {high}")

    @classmethod
    def from_setting(cls, value) -> FeeRule:
        """A rule from its settings shape, e.g. ``{"fixed": {"EUR": "5.00"}, "percent":
        "1.5", "minimum": {"EUR": "2.50"}, "maximum": {"EUR": "25"}, "first_free": True}``;
        ``None`` or ``{}``: no fee. ValueError names the first bad entry."""
        value = dict(value or {})
        unknown = set(value) - {"fixed", "percent", "minimum", "maximum", "first_free", "free"}
        if unknown:
            raise ValueError(f"unknown fee setting(s): {', '.join(sorted(unknown))}")
        return cls(
            fixed=value.get("fixed") or {},
            percent=value.get("percent"),
            minimum=value.get("minimum") or {},
            maximum=value.get("maximum") or {},
            first_free=bool(value.get("first_free", True)),
            free=bool(value.get("free", False)),
        )


def reminder_fee(rule: FeeRule | None, balance, currency, step_index: int) -> Decimal:
    """The fee of the reminder at ``step_index`` (0: the first reminder) on an open
    ``balance`` in ``currency``, rounded half up to the currency's minor units.

    No fee (zero) without a rule, for a free rule, for the first reminder when the rule
    says ``first_free``, for a balance of zero or less, and for a currency the rule
    names no amount or percentage for.
    """
    currency = str(currency or "").upper()
    zero = round_money(0, currency)
    if rule is None or rule.free or (rule.first_free and step_index == 0):
        return zero
    balance = _decimal(balance, "balance")
    if balance <= 0:
        return zero
    fixed = rule.fixed.get(currency)
    if fixed is None and rule.percent is None:
        return zero
    fee = Fraction(fixed or 0)
    if rule.percent is not None:
        fee += Fraction(balance) * Fraction(rule.percent) / 100
    if currency in rule.minimum:
        fee = max(fee, Fraction(rule.minimum[currency]))
    if currency in rule.maximum:
        fee = min(fee, Fraction(rule.maximum[currency]))
    return round_money(fee, currency)


# -- interest rules and rate tables ----------------------------------------------------------


def parse_rate_table(table) -> tuple[tuple[datetime.date, Decimal], ...]:
    """``{"2024-01-01": "4.50", ...}`` (or dates/Decimals) -> sorted ((date, rate), ...)."""
    if not isinstance(table, Mapping) or not table:
        raise ValueError("rates: expected a non-empty object of ISO dates and rates")
    rows = []
    for key, rate in table.items():
        if isinstance(key, datetime.datetime):
            key = key.date()
        if not isinstance(key, datetime.date):
            try:
                key = datetime.date.fromisoformat(str(key))
            except ValueError:
                raise ValueError(f"rates: {key!r} is not an ISO date (YYYY-MM-DD)") from None
        rows.append((key, _decimal(rate, f"rates[{key.isoformat()}]")))
    return tuple(sorted(rows))


def half_year_start(day: datetime.date) -> datetime.date:
    """1 January or 1 July: the first day of the half-year ``day`` falls in."""
    return datetime.date(day.year, 1 if day.month <= 6 else 7, 1)


def _next_half_year(day: datetime.date) -> datetime.date:
    start = half_year_start(day)
    if start.month == 1:
        return datetime.date(start.year, 7, 1)
    return datetime.date(start.year + 1, 1, 1)


def reference_rate_on(rates, day: datetime.date) -> Decimal:
    """The table's rate for ``day``: the one in force on the first day of ``day``'s
    half-year (an entry dated mid-half-year takes effect at the next 1 January/1 July).
    ``rates`` is a table as parsed by :func:`parse_rate_table` or its settings shape."""
    if isinstance(rates, Mapping):
        rates = parse_rate_table(rates)
    start = half_year_start(day)
    found = None
    for since, rate in rates:
        if since > start:
            break
        found = rate
    if found is None:
        raise MissingRateError(
            f"no reference rate in force on {start.isoformat()} (the start of the half-year "
            f"of {day.isoformat()}); add it to the rate table"
        )
    return found


def rate_table_is_current(rates, as_of: datetime.date) -> bool:
    """True when the table has an entry for the half-year ``as_of`` falls in (or a later
    one): a stale table keeps applying its last rate, so check this (e.g. in a system
    check) and update the table every 1 January and 1 July."""
    if isinstance(rates, Mapping):
        rates = parse_rate_table(rates)
    return bool(rates) and rates[-1][0] >= half_year_start(as_of)


@dataclass(frozen=True)
class InterestRule:
    """How late-payment interest accrues.

    ``kind``:
      * ``"fixed"``: ``rate`` percent per year, for every debtor;
      * ``"eu-directive"``: Directive 2011/7/EU, business debtors only: the reference rate
        (``rates``, default :data:`ECB_REFERENCE_RATES`) + 8 points, and EUR 40 fixed
        compensation per invoice; consumers owe nothing under this rule;
      * ``"de-bgb-288"``: § 288 BGB: the base rate (``rates``, default
        :data:`DE_BASE_RATES`) + 9 points for businesses, + 5 points for consumers; the
        EUR 40 "Verzugspauschale" per invoice for businesses only.

    ``day_count``: ``"actual/365"`` (default) or ``"actual/actual"``.
    ``compensation``: fixed compensation per currency for business debtors; ``None`` means
    the kind's statutory default (EUR 40 for the statutory kinds, none for ``fixed``);
    ``{}`` means none.
    """

    kind: str = FIXED
    rate: Decimal | None = None
    rates: tuple[tuple[datetime.date, Decimal], ...] | Mapping | None = None
    day_count: str = ACTUAL_365
    compensation: Mapping[str, Decimal] | None = None

    def __post_init__(self):
        if self.kind not in INTEREST_KINDS:
            raise ValueError(
                f"kind: {self.kind!r} is not one of {', '.join(INTEREST_KINDS)}"
            )
        if self.day_count not in DAY_COUNTS:
            raise ValueError(
                f"day_count: {self.day_count!r} is not one of {', '.join(DAY_COUNTS)}"
            )
        if self.kind == FIXED:
            if self.rate is None:
                raise ValueError("rate: a fixed interest rule needs a yearly rate in percent")
            rate = _decimal(self.rate, "rate")
            if rate < 0:
                raise ValueError(f"rate: {self.rate!r} is negative")
            object.__setattr__(self, "rate", rate)
            if self.rates is not None:
                raise ValueError("rates: only the statutory kinds use a rate table")
        elif self.rate is not None:
            raise ValueError(f"rate: the {self.kind} rule takes its rate from the table")
        rates = self.rates
        if rates is None and self.kind != FIXED:
            rates = ECB_REFERENCE_RATES if self.kind == EU_DIRECTIVE else DE_BASE_RATES
        if isinstance(rates, Mapping):
            rates = parse_rate_table(rates)
        object.__setattr__(self, "rates", tuple(rates) if rates is not None else None)
        if self.compensation is not None:
            object.__setattr__(
                self, "compensation", _amounts(self.compensation, "compensation")
            )

    @classmethod
    def from_setting(cls, value) -> InterestRule | None:
        """A rule from its settings shape, e.g. ``{"kind": "de-bgb-288"}``, ``{"kind":
        "fixed", "rate": "8"}``, ``{"kind": "eu-directive", "rates": {"2026-01-01":
        "2.15"}, "day_count": "actual/actual", "compensation": {"EUR": "40"}}``;
        ``None`` or ``{}``: no interest."""
        if not value:
            return None
        value = dict(value)
        unknown = set(value) - {"kind", "rate", "rates", "day_count", "compensation"}
        if unknown:
            raise ValueError(f"unknown interest setting(s): {', '.join(sorted(unknown))}")
        return cls(
            kind=value.get("kind", FIXED),
            rate=value.get("rate"),
            rates=value.get("rates"),
            day_count=value.get("day_count", ACTUAL_365),
            compensation=value.get("compensation"),
        )

    def applies_to(self, debtor_is_business: bool) -> bool:
        """False when this rule gives the debtor no interest (consumers under the
        directive)."""
        if self.kind == FIXED:
            return True
        return _POINTS[self.kind][bool(debtor_is_business)] is not None

    def yearly_rate(self, day: datetime.date, debtor_is_business: bool) -> Decimal:
        """The rate in percent per year on ``day`` (never below zero)."""
        if self.kind == FIXED:
            return self.rate
        points = _POINTS[self.kind][bool(debtor_is_business)]
        if points is None:
            return ZERO
        return max(reference_rate_on(self.rates, day) + points, ZERO)


# -- interest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InterestPeriod:
    """Days ``start``..``end`` (both included) on which ``balance`` accrued ``rate``
    percent per year over ``year_days`` days; ``exact`` is the unrounded interest."""

    start: datetime.date
    end: datetime.date
    balance: Decimal
    rate: Decimal
    year_days: int
    exact: Fraction

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def as_dict(self) -> dict:
        """JSON-ready values; the exact amount is left out (the total is what counts)."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "balance": str(self.balance),
            "rate": str(self.rate),
            "year_days": self.year_days,
        }


def _normalise_history(balance_history) -> list[tuple[datetime.date, Decimal]]:
    """Sorted by date; of two entries on one day the later in the list wins."""
    by_day: dict[datetime.date, Decimal] = {}
    for day, balance in balance_history:
        by_day[day] = Decimal(balance)
    return sorted(by_day.items())


def interest_periods(
    balance_history, rule: InterestRule, as_of: datetime.date, debtor_is_business: bool,
    *, day_count: str | None = None,
) -> list[InterestPeriod]:
    """The periods of constant balance, rate and year length that make up the interest
    owed as of ``as_of`` (see :func:`accrued_interest` for the conventions)."""
    day_count = day_count or rule.day_count
    if day_count not in DAY_COUNTS:
        raise ValueError(f"day_count: {day_count!r} is not one of {', '.join(DAY_COUNTS)}")
    if not rule.applies_to(debtor_is_business):
        return []
    history = _normalise_history(balance_history)
    periods: list[InterestPeriod] = []
    for index, (since, balance) in enumerate(history):
        # This balance is owed at the start of the days after ``since`` up to and including
        # the day of the next change (a payment on day c still owes that day's interest).
        first = since + ONE_DAY
        last = history[index + 1][0] if index + 1 < len(history) else as_of
        last = min(last, as_of)
        balance = max(balance, ZERO)
        while first <= last:
            # Split where the rate may change (1 January, 1 July; this also separates years).
            stop = min(last, _next_half_year(first) - ONE_DAY)
            rate = rule.yearly_rate(first, debtor_is_business)
            if day_count == ACTUAL_ACTUAL:
                year_days = 366 if _is_leap(first.year) else 365
            else:
                year_days = 365
            days = (stop - first).days + 1
            exact = Fraction(balance) * Fraction(rate) * days / (100 * year_days)
            period = InterestPeriod(first, stop, balance, rate, year_days, exact)
            previous = periods[-1] if periods else None
            if (
                previous is not None
                and previous.end + ONE_DAY == first
                and (previous.balance, previous.rate, previous.year_days)
                == (balance, rate, year_days)
            ):
                period = InterestPeriod(
                    previous.start, stop, balance, rate, year_days, previous.exact + exact
                )
                periods[-1] = period
            else:
                periods.append(period)
            first = stop + ONE_DAY
    return [p for p in periods if p.exact]


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def accrued_interest(
    balance_history, rule: InterestRule, as_of: datetime.date, debtor_is_business: bool,
    *, currency: str, day_count: str | None = None,
) -> Decimal:
    """All interest owed on one invoice as of ``as_of`` (included), rounded once.

    ``balance_history``: the invoice's open balance (principal only: never fees or
    interest, which would compound) as ``(date, balance)`` changes, the first on the due
    date. Conventions:

    * interest runs from the day after the due date up to and including ``as_of``;
    * each day accrues on the balance owed at its start: a payment on day *c* still owes
      day *c*'s interest on the old balance and reduces interest from day *c + 1*;
    * each day accrues ``balance * rate / 100 / year_days``, with the rate of the
      half-year the day falls in and ``year_days`` = 365 (actual/365) or the length of the
      day's calendar year (actual/actual: 366 in a leap year);
    * a negative balance counts as zero; the rate never goes below zero;
    * exact arithmetic, rounded once, half up, to the currency's minor units.
    """
    periods = interest_periods(
        balance_history, rule, as_of, debtor_is_business, day_count=day_count
    )
    return round_money(sum((p.exact for p in periods), Fraction(0)), currency)


def interest_delta(already_charged, computed) -> Decimal:
    """The interest still to charge: ``computed - already_charged``, never below zero (a
    history corrected backwards, e.g. a credit note dated in the past, is not refunded
    here; the host sees it as ``computed < already_charged``)."""
    delta = Decimal(computed) - Decimal(already_charged or 0)
    return delta if delta > 0 else delta.copy_abs() * 0  # 0 with the currency's exponent


def fixed_compensation(rule: InterestRule | None, currency, debtor_is_business: bool) -> Decimal:
    """The fixed compensation for recovery costs of one late invoice (zero when none).

    Business debtors only. The statutory kinds default to EUR 40 for invoices in euro;
    other currencies get one only where ``rule.compensation`` names it (the directive's
    "equivalent in national currency" is the operator's to set). ``fixed`` rules have none
    unless configured.
    """
    currency = str(currency or "").upper()
    if rule is None or not debtor_is_business:
        return round_money(0, currency)
    table = rule.compensation
    if table is None:
        table = _STATUTORY_COMPENSATION if rule.kind != FIXED else {}
    return round_money(table.get(currency, 0), currency)


# -- the façade for the engine ---------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceFacts:
    """One invoice as the fees module sees it: its number, currency and open balance over
    time, the first entry on the due date."""

    number: str
    currency: str
    balance_history: tuple[tuple[datetime.date, Decimal], ...]

    def __post_init__(self):
        history = tuple(_normalise_history(self.balance_history))
        if not history:
            raise ValueError(f"invoice {self.number}: the balance history is empty")
        object.__setattr__(self, "balance_history", history)
        object.__setattr__(self, "currency", str(self.currency or "").upper())

    @property
    def due_date(self) -> datetime.date:
        return self.balance_history[0][0]

    def balance_on(self, day: datetime.date) -> Decimal:
        """The balance at the end of ``day`` (zero before the due date)."""
        balance = ZERO
        for since, amount in self.balance_history:
            if since > day:
                break
            balance = amount
        return balance


@dataclass(frozen=True)
class AlreadyCharged:
    """What the host has been handed for one invoice so far."""

    interest: Decimal = ZERO
    interest_until: datetime.date | None = None  # the as_of of the last interest charge
    compensation: Decimal = ZERO


@dataclass(frozen=True)
class Charge:
    """One amount to list in the message and to hand to the host.

    ``kind``: ``"fee"`` (one per reminder; ``invoice_number`` None), ``"interest"`` (the
    interest not charged before, for ``period_start``..``period_end``; ``rate`` is the
    yearly rate in percent when it was the same throughout, else None, with the breakdown
    in ``details``) or ``"compensation"`` (once per invoice).
    """

    kind: str
    invoice_number: str | None
    amount: Decimal
    currency: str
    period_start: datetime.date
    period_end: datetime.date
    rate: Decimal | None = None
    details: tuple[InterestPeriod, ...] = ()

    @property
    def label(self) -> str:
        """The kind, translated for the active language."""
        return str(CHARGE_LABELS[self.kind])

    def as_dict(self) -> dict:
        """JSON-ready values (amounts and rates as strings, dates ISO)."""
        return {
            "kind": self.kind,
            "invoice_number": self.invoice_number,
            "amount": str(self.amount),
            "currency": self.currency,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "rate": None if self.rate is None else str(self.rate),
            "details": [period.as_dict() for period in self.details],
        }


def _clip(periods: Iterable[InterestPeriod], start: datetime.date, end: datetime.date):
    clipped = []
    for p in periods:
        first, last = max(p.start, start), min(p.end, end)
        if first > last:
            continue
        days = (last - first).days + 1
        exact = Fraction(p.balance) * Fraction(p.rate) * days / (100 * p.year_days)
        clipped.append(InterestPeriod(first, last, p.balance, p.rate, p.year_days, exact))
    return tuple(clipped)


def charges_for(
    invoices: Sequence[InvoiceFacts],
    *,
    as_of: datetime.date,
    debtor_is_business: bool,
    step_index: int | None = None,
    fee_rule: FeeRule | None = None,
    interest_rule: InterestRule | None = None,
    charged: Mapping[str, AlreadyCharged] | None = None,
) -> list[Charge]:
    """The charges of one case on ``as_of``: what is new since ``charged``.

    * A reminder fee when ``step_index`` is given (the reminder being sent): one per
      reminder, in the currency of the oldest invoice still open, a percentage applying
      to the open balance in that currency. (Sending a step twice is the engine's to
      prevent; this function does not remember fees.)
    * Interest per invoice: :func:`accrued_interest` over its whole history minus what
      ``charged[number].interest`` says was charged; nothing when that is zero.
    * Fixed compensation per invoice overdue at ``as_of``, once: nothing when
      ``charged[number].compensation`` already covers it.

    Zero amounts are left out. Invoices already paid may be passed too (their interest
    up to the payment day is still owed).
    """
    charged = charged or {}
    charges: list[Charge] = []
    if step_index is not None and fee_rule is not None:
        open_invoices = sorted(
            (inv for inv in invoices if inv.balance_on(as_of) > 0),
            key=lambda inv: (inv.due_date, inv.currency, inv.number),
        )
        if open_invoices:
            currency = open_invoices[0].currency
            balance = sum(
                (inv.balance_on(as_of) for inv in open_invoices if inv.currency == currency),
                ZERO,
            )
            fee = reminder_fee(fee_rule, balance, currency, step_index)
            if fee > 0:
                charges.append(
                    Charge(FEE, None, fee, currency, as_of, as_of, rate=fee_rule.percent)
                )
    if interest_rule is None:
        return charges
    for inv in invoices:
        before = charged.get(inv.number) or AlreadyCharged()
        periods = interest_periods(
            inv.balance_history, interest_rule, as_of, debtor_is_business
        )
        computed = round_money(sum((p.exact for p in periods), Fraction(0)), inv.currency)
        delta = interest_delta(before.interest, computed)
        if delta > 0:
            start = max(before.interest_until or inv.due_date, inv.due_date) + ONE_DAY
            start = min(start, as_of)
            details = _clip(periods, start, as_of)
            rates = {p.rate for p in details}
            charges.append(
                Charge(
                    INTEREST,
                    inv.number,
                    delta,
                    inv.currency,
                    start,
                    as_of,
                    rate=rates.pop() if len(rates) == 1 else None,
                    details=details,
                )
            )
        if as_of > inv.due_date:
            owed = fixed_compensation(interest_rule, inv.currency, debtor_is_business)
            missing = owed - Decimal(before.compensation or 0)
            if missing > 0:
                charges.append(
                    Charge(COMPENSATION, inv.number, missing, inv.currency, as_of, as_of)
                )
    return charges
