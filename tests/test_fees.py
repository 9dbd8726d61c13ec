"""Reminder fees and late-payment interest (dunning/fees.py): pure, exact, no database.

Every expected amount is worked out by hand in a comment beside it: interest is
``balance * rate% * days / (100 * year_days)`` summed exactly over the periods, then
rounded once, half up, to the currency's minor units. Interest runs from the day after
the due date up to and including ``as_of``; a payment on day c still owes day c's interest
on the old balance.
"""

import datetime
from decimal import Decimal

import pytest
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.fees import (
    COMPENSATION,
    DE_BASE_RATES,
    ECB_REFERENCE_RATES,
    FEE,
    INTEREST,
    AlreadyCharged,
    Charge,
    FeeRule,
    InterestRule,
    InvoiceFacts,
    MissingRateError,
    accrued_interest,
    charges_for,
    fixed_compensation,
    interest_delta,
    interest_periods,
    minor_units,
    rate_table_is_current,
    reference_rate_on,
    reminder_fee,
)

D = Decimal


def date(text):
    return datetime.date.fromisoformat(text)


def history(*pairs):
    return [(date(day), D(amount)) for day, amount in pairs]


DE = InterestRule(kind="de-bgb-288")
EU = InterestRule(kind="eu-directive")


def fixed(rate, **kwargs):
    return InterestRule(kind="fixed", rate=D(rate), **kwargs)


# -- reminder fees --------------------------------------------------------------------------

FIVE_EUR = FeeRule(fixed={"EUR": "5.00"})
ONE_PERCENT = FeeRule(percent="1")

FEE_CASES = [
    # (rule, balance, currency, step index, expected as written)
    pytest.param(FIVE_EUR, "100.00", "EUR", 0, "0.00", id="first-reminder-free"),
    pytest.param(FIVE_EUR, "100.00", "EUR", 1, "5.00", id="second-reminder-fixed"),
    pytest.param(FeeRule(fixed={"EUR": "5"}, first_free=False), "100", "EUR", 0, "5.00",
                 id="first-not-free"),
    pytest.param(FeeRule(fixed={"EUR": "5"}, free=True), "100", "EUR", 3, "0.00", id="free-rule"),
    pytest.param(None, "100", "EUR", 3, "0.00", id="no-rule"),
    pytest.param(FeeRule(fixed={"JPY": "500"}), "10000", "JPY", 1, "500", id="jpy-fixed"),
    pytest.param(FIVE_EUR, "100.00", "USD", 1, "0.00", id="currency-without-amount"),
    pytest.param(FeeRule(fixed={"eur": "5"}), "100", "eur", 1, "5.00", id="lower-case-codes"),
    # 1234.56 * 1.5 / 100 = 18.5184 -> 18.52
    pytest.param(FeeRule(percent="1.5"), "1234.56", "EUR", 1, "18.52", id="percent"),
    # 18.5184 raised to the minimum of 20
    pytest.param(FeeRule(percent="1.5", minimum={"EUR": "20"}), "1234.56", "EUR", 1, "20.00",
                 id="percent-minimum"),
    # 18.5184 capped at the maximum of 10
    pytest.param(FeeRule(percent="1.5", maximum={"EUR": "10"}), "1234.56", "EUR", 1, "10.00",
                 id="percent-maximum"),
    # 10000 * 1% = 100, raised to the JPY minimum of 300
    pytest.param(FeeRule(percent="1", minimum={"JPY": "300"}), "10000", "JPY", 1, "300",
                 id="jpy-minimum"),
    # 12345 * 1% = 123.45 -> 123 (JPY has no minor units)
    pytest.param(ONE_PERCENT, "12345", "JPY", 1, "123", id="jpy-rounds-down"),
    # 12350 * 1% = 123.5 -> 124 (half up, not half even: 124 either way, see next)
    pytest.param(ONE_PERCENT, "12350", "JPY", 1, "124", id="jpy-half-up"),
    # 12250 * 1% = 122.5 -> 123 (half even would give 122)
    pytest.param(ONE_PERCENT, "12250", "JPY", 1, "123", id="jpy-half-up-not-even"),
    # 123.4565 * 1% = 1.234565 -> 1.235 (three minor digits)
    pytest.param(ONE_PERCENT, "123.4565", "KWD", 1, "1.235", id="kwd-three-digits"),
    # 250.050 * 1% = 2.5005 -> 2.501 (half up; half even would give 2.500)
    pytest.param(ONE_PERCENT, "250.050", "BHD", 1, "2.501", id="bhd-half-up"),
    # 10.50 * 1% = 0.105 -> 0.11 (half up; half even would give 0.10)
    pytest.param(ONE_PERCENT, "10.50", "EUR", 1, "0.11", id="eur-half-up"),
    # 2.50 + 100 * 1% = 3.50
    pytest.param(FeeRule(fixed={"EUR": "2.50"}, percent="1"), "100", "EUR", 1, "3.50",
                 id="fixed-plus-percent"),
    # 1000.5 * 1% = 10.005 -> 10.01: an unknown currency gets two digits
    pytest.param(ONE_PERCENT, "1000.5", "XYZ", 1, "10.01", id="unknown-currency"),
    pytest.param(FIVE_EUR, "0", "EUR", 1, "0.00", id="zero-balance"),
    pytest.param(FIVE_EUR, "-50", "EUR", 1, "0.00", id="credit-balance"),
    pytest.param(FeeRule(percent="1", minimum={"EUR": "5"}), "-50", "EUR", 1, "0.00",
                 id="credit-balance-no-minimum"),
]


@pytest.mark.parametrize("rule, balance, currency, step_index, expected", FEE_CASES)
def test_reminder_fee(rule, balance, currency, step_index, expected):
    fee = reminder_fee(rule, D(balance), currency, step_index)
    assert str(fee) == expected  # the amount and its minor units


@pytest.mark.parametrize("currency, digits", [("JPY", 0), ("EUR", 2), ("KWD", 3), ("BHD", 3),
                                              ("XYZ", 2), ("", 2)])
def test_minor_units_per_currency(currency, digits):
    assert minor_units(currency) == digits


def test_fee_rule_from_setting():
    rule = FeeRule.from_setting(
        {"fixed": {"eur": "5"}, "percent": "1.5", "minimum": {"EUR": 2}, "maximum": {"EUR": "25"}}
    )
    assert rule.fixed == {"EUR": D(5)} and rule.percent == D("1.5")
    assert rule.first_free and not rule.free
    assert str(reminder_fee(rule, D("1000"), "EUR", 1)) == "20.00"  # 5 + 15
    assert str(reminder_fee(FeeRule.from_setting(None), D("1000"), "EUR", 1)) == "0.00"


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"fixed": {"EURO": "5"}}, "'EURO' is not a currency code"),
        ({"fixed": {"EUR": "five"}}, "fixed[EUR]: 'five' is not a number"),
        ({"fixed": {"EUR": "-5"}}, "fixed[EUR]: '-5' is negative"),
        ({"percent": "-1"}, "percent: '-1' is negative"),
        ({"percent": "NaN"}, "not a finite number"),
        ({"minimum": {"EUR": "10"}, "maximum": {"EUR": "5"}}, "minimum[EUR] 10 is above"),
        ({"fee": "5"}, "unknown fee setting(s): fee"),
    ],
)
def test_fee_rule_rejects_bad_settings(setting, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        FeeRule.from_setting(setting)


# -- interest: fixed yearly rate -----------------------------------------------------------------

INTEREST_CASES = [
    # (rule, history, as_of, business, currency, expected, kwargs)
    # 1000 * 5% * 30/365: 150000/36500 = 4.10958... -> 4.11 (Feb 1..Mar 2 2026 = 30 days)
    pytest.param(fixed("5"), [("2026-01-31", "1000.00")], "2026-03-02", True, "EUR", "4.11", {},
                 id="fixed-eur"),
    # 100000 * 5% * 30/365 = 410.958... -> 411
    pytest.param(fixed("5"), [("2026-01-31", "100000")], "2026-03-02", True, "JPY", "411", {},
                 id="fixed-jpy"),
    # 1000 * 5% * 30/365 = 4.109589... -> 4.110
    pytest.param(fixed("5"), [("2026-01-31", "1000.000")], "2026-03-02", False, "KWD", "4.110",
                 {}, id="fixed-kwd-consumer"),
    # 36.50 * 1% * 5/365 = 182.5/36500 = 0.005 exactly -> 0.01 (half up; half even: 0.00)
    pytest.param(fixed("1"), [("2026-01-01", "36.50")], "2026-01-06", True, "EUR", "0.01", {},
                 id="half-up"),
    # Nothing on the due date itself, nor before it.
    pytest.param(fixed("5"), [("2026-01-31", "1000")], "2026-01-31", True, "EUR", "0.00", {},
                 id="on-due-date"),
    pytest.param(fixed("5"), [("2026-01-31", "1000")], "2026-01-10", True, "EUR", "0.00", {},
                 id="before-due-date"),
    # One day: 36500 * 1% * 1/365 = 1.00
    pytest.param(fixed("1"), [("2026-01-31", "36500")], "2026-02-01", True, "EUR", "1.00", {},
                 id="first-overdue-day"),
    # Leap year 2024, 366 days (Jan 1..Dec 31): actual/365: 3650 * 10% * 366/365 = 366.00
    pytest.param(fixed("10"), [("2023-12-31", "3650.00")], "2024-12-31", True, "EUR", "366.00",
                 {}, id="leap-year-actual-365"),
    # actual/actual divides 2024's days by 366: 3650 * 10% * 366/366 = 365.00
    pytest.param(fixed("10"), [("2023-12-31", "3650.00")], "2024-12-31", True, "EUR", "365.00",
                 {"day_count": "actual/actual"}, id="leap-year-actual-actual"),
    # Across New Year into a leap year, 10 days in each year:
    # actual/365: 1000 * 10% * 20/365 = 5.47945... -> 5.48
    pytest.param(fixed("10"), [("2023-12-21", "1000.00")], "2024-01-10", True, "EUR", "5.48",
                 {}, id="new-year-actual-365"),
    # actual/actual: 1000 * 10% * (10/365 + 10/366) = 2.739726... + 2.732240... = 5.47196... -> 5.47
    pytest.param(fixed("10"), [("2023-12-21", "1000.00")], "2024-01-10", True, "EUR", "5.47",
                 {"day_count": "actual/actual"}, id="new-year-actual-actual"),
    # The rule's own day count, overridden by the parameter the other way round.
    pytest.param(fixed("10", day_count="actual/actual"), [("2023-12-21", "1000.00")],
                 "2024-01-10", True, "EUR", "5.48", {"day_count": "actual/365"},
                 id="day-count-parameter-wins"),
    # Partial payment: 1000 due Jan 31 2026, 600 paid Feb 10 (the payment day still owes
    # interest on 1000), 400 open until Mar 2, 8%:
    # Feb 1..10 = 10 days * 1000 + Feb 11..Mar 2 = 20 days * 400
    # 8% * (10000 + 8000) / 365 = 144000/36500 = 3.94520... -> 3.95
    pytest.param(fixed("8"), [("2026-01-31", "1000.00"), ("2026-02-10", "400.00")],
                 "2026-03-02", True, "EUR", "3.95", {}, id="partial-payment"),
    # Paid in full on Feb 10: 8% * 10 days * 1000 / 365 = 80000/36500 = 2.19178... -> 2.19,
    # and no more afterwards.
    pytest.param(fixed("8"), [("2026-01-31", "1000.00"), ("2026-02-10", "0")],
                 "2026-12-31", True, "EUR", "2.19", {}, id="paid-in-full-stops-interest"),
    # A credit balance earns the debtor nothing: 10 days * 1000 then -500 counts as 0.
    pytest.param(fixed("8"), [("2026-01-31", "1000.00"), ("2026-02-10", "-500")],
                 "2026-12-31", True, "EUR", "2.19", {}, id="credit-balance-counts-as-zero"),
    # Entries given out of order are sorted by date.
    pytest.param(fixed("8"), [("2026-02-10", "400.00"), ("2026-01-31", "1000.00")],
                 "2026-03-02", True, "EUR", "3.95", {}, id="unsorted-history"),
]


@pytest.mark.parametrize(
    "rule, pairs, as_of, business, currency, expected, kwargs", INTEREST_CASES
)
def test_accrued_interest(rule, pairs, as_of, business, currency, expected, kwargs):
    amount = accrued_interest(
        history(*pairs), rule, date(as_of), business, currency=currency, **kwargs
    )
    assert str(amount) == expected


# -- interest: statutory rules -------------------------------------------------------------------
# Rates of 2025: ECB reference 3.15 (H1), 2.15 (H2); German base rate 2.27 (H1), 1.27 (H2).
# 10,000.00 EUR due 2025-06-20, as of 2025-07-10: Jun 21..30 = 10 days in H1,
# Jul 1..10 = 10 days in H2 (the 1 July change splits the period).

STATUTORY_CASES = [
    # DE business: base + 9 = 11.27 then 10.27:
    # 10000 * (11.27 * 10 + 10.27 * 10) / 36500 = 2154000/36500 = 59.01369... -> 59.01
    pytest.param(DE, True, "59.01", id="de-business"),
    # DE consumer: base + 5 = 7.27 then 6.27:
    # 10000 * (72.7 + 62.7) / 36500 = 1354000/36500 = 37.09589... -> 37.10
    pytest.param(DE, False, "37.10", id="de-consumer"),
    # EU business: reference + 8 = 11.15 then 10.15:
    # 10000 * (111.5 + 101.5) / 36500 = 2130000/36500 = 58.35616... -> 58.36
    pytest.param(EU, True, "58.36", id="eu-business"),
    # The directive covers business debtors only.
    pytest.param(EU, False, "0.00", id="eu-consumer"),
]


@pytest.mark.parametrize("rule, business, expected", STATUTORY_CASES)
def test_statutory_interest_across_1_july(rule, business, expected):
    pairs = history(("2025-06-20", "10000.00"))
    assert str(accrued_interest(pairs, rule, date("2025-07-10"), business, currency="EUR")) == (
        expected
    )


def test_rate_change_splits_the_period():
    periods = interest_periods(
        history(("2025-06-20", "10000.00")), DE, date("2025-07-10"), True
    )
    assert [(p.start, p.end, p.days, p.rate) for p in periods] == [
        (date("2025-06-21"), date("2025-06-30"), 10, D("11.27")),
        (date("2025-07-01"), date("2025-07-10"), 10, D("10.27")),
    ]


def test_partial_payment_across_1_july():
    # DE business, 10000 due 2025-06-20, 4000 paid 2025-06-25 (6000 left), as of 2025-07-10:
    # Jun 21..25:  5 days * 10000 * 11.27 = 563500
    # Jun 26..30:  5 days *  6000 * 11.27 = 338100
    # Jul  1..10: 10 days *  6000 * 10.27 = 616200
    # (563500 + 338100 + 616200) / 36500 = 1517800/36500 = 41.58356... -> 41.58
    pairs = history(("2025-06-20", "10000.00"), ("2025-06-25", "6000.00"))
    assert str(accrued_interest(pairs, DE, date("2025-07-10"), True, currency="EUR")) == "41.58"


def test_negative_base_rate_of_2022_for_consumers():
    # Base rate -0.88 + 5 = 4.12 for 30 days (Mar 2..31 2022):
    # 1000 * 4.12 * 30 / 36500 = 123600/36500 = 3.38630... -> 3.39
    pairs = history(("2022-03-01", "1000.00"))
    assert str(accrued_interest(pairs, DE, date("2022-03-31"), False, currency="EUR")) == "3.39"


def test_rate_in_force_on_the_first_day_of_the_half_year():
    # An entry dated mid-half-year (the ECB's cut of 11 June 2025) applies from 1 July only.
    rule = InterestRule(kind="eu-directive", rates={"2025-01-01": "3.15", "2025-06-11": "2.15"})
    assert reference_rate_on(rule.rates, date("2025-06-30")) == D("3.15")
    assert reference_rate_on(rule.rates, date("2025-07-01")) == D("2.15")
    pairs = history(("2025-06-01", "10000.00"))
    # Jun 2..30 = 29 days at 3.15 + 8 = 11.15: 10000 * 11.15 * 29 / 36500
    # = 3233500/36500 = 88.58904... -> 88.59
    assert str(accrued_interest(pairs, rule, date("2025-06-30"), True, currency="EUR")) == "88.59"
    # + Jul 1..10 = 10 days at 10.15: 10000 * (323.35 + 101.5) / 36500 = 4248500/36500
    # = 116.39726... -> 116.40
    assert str(accrued_interest(pairs, rule, date("2025-07-10"), True, currency="EUR")) == (
        "116.40"
    )


def test_a_day_without_a_rate_is_an_error_not_a_guess():
    with pytest.raises(MissingRateError, match="no reference rate in force on 2021-01-01"):
        accrued_interest(history(("2021-06-01", "100")), EU, date("2021-06-10"), True,
                         currency="EUR")


def test_rate_tables_are_half_yearly_and_move_together():
    for table in (ECB_REFERENCE_RATES, DE_BASE_RATES):
        for key in table:
            assert key[5:] in ("01-01", "07-01"), key
    # § 247 BGB: the base rate moves by the points the ECB rate moved (a typo in either
    # table breaks this).
    keys = sorted(DE_BASE_RATES)
    assert keys == sorted(ECB_REFERENCE_RATES)
    for before, after in zip(keys, keys[1:], strict=False):
        assert D(DE_BASE_RATES[after]) - D(DE_BASE_RATES[before]) == D(
            ECB_REFERENCE_RATES[after]
        ) - D(ECB_REFERENCE_RATES[before]), after


def test_stale_rate_table_is_detected():
    assert rate_table_is_current(DE_BASE_RATES, date("2026-06-30"))
    assert not rate_table_is_current(DE_BASE_RATES, date("2026-07-01"))
    assert rate_table_is_current({"2026-07-01": "1.27"}, date("2026-12-31"))


# -- idempotence and deltas ----------------------------------------------------------------


def test_recomputing_never_doubles():
    pairs = history(("2026-01-31", "1000.00"), ("2026-02-10", "400.00"))
    first = accrued_interest(pairs, fixed("8"), date("2026-03-02"), True, currency="EUR")
    again = accrued_interest(pairs, fixed("8"), date("2026-03-02"), True, currency="EUR")
    assert first == again == D("3.95")
    assert str(interest_delta(first, again)) == "0.00"


def test_interest_delta():
    assert str(interest_delta(D("2.37"), D("3.95"))) == "1.58"
    assert str(interest_delta(None, D("3.95"))) == "3.95"
    assert str(interest_delta(D("5.00"), D("3.95"))) == "0.00"  # never a negative charge
    assert str(interest_delta(D("0"), D("0"))) == "0"


def test_runs_with_a_partial_payment_charge_the_total_exactly_once():
    # 1000 due 2026-01-31 at 8%; 600 paid on 2026-02-10, first seen by the run of Feb 12.
    # Feb 5: 5 days * 1000 -> 40000/36500 = 1.0958 -> 1.10
    # Feb 12: 10 * 1000 + 2 * 400 = 10800 * 8 / 36500 = 2.3671 -> 2.37 (new: 1.27)
    # Feb 19: 10 * 1000 + 9 * 400 = 13600 * 8 / 36500 = 2.9808 -> 2.98 (new: 0.61)
    # Mar 2: 10 * 1000 + 20 * 400 = 18000 * 8 / 36500 = 3.9452 -> 3.95 (new: 0.97)
    full = history(("2026-01-31", "1000.00"), ("2026-02-10", "400.00"))
    rule = fixed("8")
    charged = {}
    amounts = []
    for run in ("2026-02-05", "2026-02-12", "2026-02-19", "2026-03-02", "2026-03-02"):
        as_of = date(run)
        known = InvoiceFacts("F-1", "EUR", tuple(p for p in full if p[0] <= as_of))
        charges = charges_for([known], as_of=as_of, debtor_is_business=False,
                              interest_rule=rule, charged=charged)
        for charge in charges:
            assert charge.kind == INTEREST
            before = charged.get("F-1", AlreadyCharged())
            charged["F-1"] = AlreadyCharged(before.interest + charge.amount, as_of)
            amounts.append((run, str(charge.amount)))
    assert amounts == [
        ("2026-02-05", "1.10"),
        ("2026-02-12", "1.27"),
        ("2026-02-19", "0.61"),
        ("2026-03-02", "0.97"),  # and nothing on the second run that day
    ]
    assert charged["F-1"].interest == D("3.95") == accrued_interest(
        full, rule, date("2026-03-02"), False, currency="EUR"
    )


# -- fixed compensation --------------------------------------------------------------------------

COMPENSATION_CASES = [
    pytest.param(EU, "EUR", True, "40.00", id="eu-business"),
    pytest.param(EU, "EUR", False, "0.00", id="eu-consumer"),
    pytest.param(DE, "EUR", True, "40.00", id="de-business"),
    pytest.param(DE, "EUR", False, "0.00", id="de-consumer"),
    pytest.param(DE, "USD", True, "0.00", id="non-euro-not-configured"),
    pytest.param(InterestRule(kind="eu-directive", compensation={"PLN": "170"}), "PLN", True,
                 "170.00", id="configured-currency"),
    pytest.param(InterestRule(kind="eu-directive", compensation={"PLN": "170"}), "EUR", True,
                 "0.00", id="configuration-replaces-default"),
    pytest.param(InterestRule(kind="de-bgb-288", compensation={}), "EUR", True, "0.00",
                 id="switched-off"),
    pytest.param(fixed("8"), "EUR", True, "0.00", id="fixed-rule-none-by-default"),
    pytest.param(fixed("8", compensation={"JPY": "6000"}), "JPY", True, "6000",
                 id="fixed-rule-configured-jpy"),
    pytest.param(fixed("8", compensation={"EUR": "40"}), "EUR", False, "0.00",
                 id="fixed-rule-consumer"),
    pytest.param(None, "EUR", True, "0.00", id="no-rule"),
]


@pytest.mark.parametrize("rule, currency, business, expected", COMPENSATION_CASES)
def test_fixed_compensation(rule, currency, business, expected):
    assert str(fixed_compensation(rule, currency, business)) == expected


# -- the façade -----------------------------------------------------------------------------------


def test_charges_for_a_business_case_then_only_what_is_new():
    # DE business; A-1 as in the statutory table (59.01); A-2 500.00 due 2025-07-05:
    # Jul 6..10 = 5 days at 10.27: 500 * 10.27 * 5 / 36500 = 25675/36500 = 0.7034 -> 0.70
    invoices = [
        InvoiceFacts("A-1", "EUR", tuple(history(("2025-06-20", "10000.00")))),
        InvoiceFacts("A-2", "EUR", tuple(history(("2025-07-05", "500.00")))),
    ]
    as_of = date("2025-07-10")
    charges = charges_for(invoices, as_of=as_of, debtor_is_business=True, step_index=1,
                          fee_rule=FIVE_EUR, interest_rule=DE)
    summary = [(c.kind, c.invoice_number, str(c.amount), c.currency, c.period_start.isoformat(),
                c.period_end.isoformat(), c.rate) for c in charges]
    assert summary == [
        (FEE, None, "5.00", "EUR", "2025-07-10", "2025-07-10", None),
        (INTEREST, "A-1", "59.01", "EUR", "2025-06-21", "2025-07-10", None),  # two rates
        (COMPENSATION, "A-1", "40.00", "EUR", "2025-07-10", "2025-07-10", None),
        (INTEREST, "A-2", "0.70", "EUR", "2025-07-06", "2025-07-10", D("10.27")),
        (COMPENSATION, "A-2", "40.00", "EUR", "2025-07-10", "2025-07-10", None),
    ]
    assert [p.as_dict() for p in charges[1].details] == [
        {"start": "2025-06-21", "end": "2025-06-30", "days": 10, "balance": "10000.00",
         "rate": "11.27", "year_days": 365},
        {"start": "2025-07-01", "end": "2025-07-10", "days": 10, "balance": "10000.00",
         "rate": "10.27", "year_days": 365},
    ]
    # Ten days later, no reminder: only the interest since, no second EUR 40.
    # 10000 * (112.7 + 102.7 + 102.7) / 36500 = 87.1506... -> 87.15, new 87.15 - 59.01
    # 500 * 10.27 * 15 / 36500 = 77025/36500 = 2.1102... -> 2.11, new 2.11 - 0.70
    charged = {
        "A-1": AlreadyCharged(D("59.01"), as_of, D("40.00")),
        "A-2": AlreadyCharged(D("0.70"), as_of, D("40.00")),
    }
    later = date("2025-07-20")
    charges = charges_for(invoices, as_of=later, debtor_is_business=True, interest_rule=DE,
                          fee_rule=FIVE_EUR, charged=charged)
    assert [(c.kind, c.invoice_number, str(c.amount), c.period_start.isoformat(), c.rate)
            for c in charges] == [
        (INTEREST, "A-1", "28.14", "2025-07-11", D("10.27")),
        (INTEREST, "A-2", "1.41", "2025-07-11", D("10.27")),
    ]
    charged = {
        "A-1": AlreadyCharged(D("87.15"), later, D("40.00")),
        "A-2": AlreadyCharged(D("2.11"), later, D("40.00")),
    }
    assert charges_for(invoices, as_of=later, debtor_is_business=True, interest_rule=DE,
                       charged=charged) == []


def test_consumer_under_the_directive_is_charged_only_the_fee():
    invoices = [InvoiceFacts("C-1", "EUR", tuple(history(("2025-06-20", "10000.00"))))]
    charges = charges_for(invoices, as_of=date("2025-07-10"), debtor_is_business=False,
                          step_index=2, fee_rule=FIVE_EUR, interest_rule=EU)
    assert [(c.kind, str(c.amount)) for c in charges] == [(FEE, "5.00")]


def test_fee_in_the_currency_of_the_oldest_open_invoice():
    rule = FeeRule(fixed={"EUR": "5", "USD": "6"}, percent="1")
    invoices = [
        InvoiceFacts("U-0", "USD", tuple(history(("2026-01-01", "90"), ("2026-01-20", "0")))),
        InvoiceFacts("U-1", "usd", tuple(history(("2026-01-10", "300.00")))),
        InvoiceFacts("U-2", "USD", tuple(history(("2026-02-01", "200.00")))),
        InvoiceFacts("E-1", "EUR", tuple(history(("2026-01-15", "1000.00")))),
    ]
    # U-0 is paid; the oldest open is U-1 (USD): 6 + 1% of (300 + 200) = 11.00 USD, once.
    charges = charges_for(invoices, as_of=date("2026-03-02"), debtor_is_business=True,
                          step_index=1, fee_rule=rule)
    assert [(c.kind, str(c.amount), c.currency, c.rate) for c in charges] == [
        (FEE, "11.00", "USD", D("1"))
    ]
    # The first reminder is free.
    assert charges_for(invoices, as_of=date("2026-03-02"), debtor_is_business=True,
                       step_index=0, fee_rule=rule) == []


def test_a_paid_invoice_still_owes_its_interest_up_to_the_payment_day():
    # Paid in full on Feb 10 (8%, 1000): 2.19 as in the table, charged at the next run.
    paid = InvoiceFacts("P-1", "EUR", tuple(history(("2026-01-31", "1000"), ("2026-02-10", "0"))))
    charges = charges_for([paid], as_of=date("2026-02-12"), debtor_is_business=False,
                          interest_rule=fixed("8"))
    assert [(c.kind, str(c.amount), c.period_end.isoformat()) for c in charges] == [
        (INTEREST, "2.19", "2026-02-12")
    ]


def test_charge_labels_are_translated_and_serialisable():
    charge = Charge(FEE, None, D("5.00"), "EUR", date("2026-03-02"), date("2026-03-02"))
    with translation.override("de"):
        assert charge.label == "Mahngebühr"
        assert Charge(INTEREST, "A-1", D("1"), "EUR", date("2026-03-02"),
                      date("2026-03-02")).label == "Verzugszinsen"
        assert Charge(COMPENSATION, "A-1", D("40"), "EUR", date("2026-03-02"),
                      date("2026-03-02")).label == "Pauschale für Beitreibungskosten"
    with translation.override("en"):
        assert charge.label == "Reminder fee"
    assert charge.as_dict() == {
        "kind": "fee", "invoice_number": None, "amount": "5.00", "currency": "EUR",
        "period_start": "2026-03-02", "period_end": "2026-03-02", "rate": None, "details": [],
    }


# -- settings shapes ----------------------------------------------------------------------------------


def test_interest_rule_from_setting():
    assert InterestRule.from_setting(None) is None
    assert InterestRule.from_setting({}) is None
    rule = InterestRule.from_setting({"kind": "fixed", "rate": "8", "day_count": "actual/actual"})
    assert (rule.kind, rule.rate, rule.day_count) == ("fixed", D(8), "actual/actual")
    rule = InterestRule.from_setting({"kind": "de-bgb-288", "rates": {"2026-07-01": "1.02"}})
    assert rule.rates == ((date("2026-07-01"), D("1.02")),)
    assert InterestRule.from_setting({"kind": "eu-directive"}).rates[0] == (
        date("2022-01-01"), D("0.00")
    )


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"kind": "german"}, "kind: 'german' is not one of"),
        ({"kind": "fixed"}, "a fixed interest rule needs a yearly rate"),
        ({"kind": "fixed", "rate": "-1"}, "rate: '-1' is negative"),
        ({"kind": "fixed", "rate": "8", "rates": {"2026-01-01": "1"}}, "only the statutory"),
        ({"kind": "de-bgb-288", "rate": "8"}, "takes its rate from the table"),
        ({"kind": "de-bgb-288", "rates": {"1.1.2026": "1.27"}}, "'1.1.2026' is not an ISO date"),
        ({"kind": "de-bgb-288", "rates": {}}, "non-empty object"),
        ({"kind": "fixed", "rate": "8", "day_count": "30/360"}, "day_count: '30/360'"),
        ({"kind": "de-bgb-288", "compensation": {"EUR": "x"}}, "compensation\\[EUR\\]"),
        ({"kind": "fixed", "rate": "8", "points": 9}, "unknown interest setting"),
    ],
)
def test_interest_rule_rejects_bad_settings(setting, message):
    with pytest.raises(ValueError, match=message):
        InterestRule.from_setting(setting)


# -- properties ------------------------------------------------------------------------------------

RULES = {
    "fixed": fixed("7.5"),
    "fixed-actual": fixed("3", day_count="actual/actual"),
    "de": DE,
    "eu": EU,
}
START = datetime.date(2022, 1, 1)

cents = st.integers(min_value=1, max_value=10**9).map(lambda c: D(c).scaleb(-2))


@st.composite
def invoices(draw):
    """A due date between 2022 and 2025, an amount and partial payments after it."""
    due = START + datetime.timedelta(days=draw(st.integers(0, 4 * 365)))
    balance = draw(cents)
    pairs = [(due, balance)]
    day = due
    for gap, paid in draw(st.lists(st.tuples(st.integers(0, 60), cents), max_size=5)):
        day += datetime.timedelta(days=gap)
        balance = max(balance - paid, D(0))
        pairs.append((day, balance))
    return pairs


@settings(max_examples=150, deadline=None)
@given(
    invoices(),
    st.sampled_from(sorted(RULES)),
    st.booleans(),
    st.integers(-5, 400),
    st.integers(0, 400),
    st.sampled_from(["EUR", "JPY", "KWD"]),
)
def test_interest_never_negative_and_never_decreases_with_time(
    pairs, rule_name, business, first, more, currency
):
    rule = RULES[rule_name]
    due = pairs[0][0]
    earlier = due + datetime.timedelta(days=first)
    later = earlier + datetime.timedelta(days=more)
    a = accrued_interest(pairs, rule, earlier, business, currency=currency)
    b = accrued_interest(pairs, rule, later, business, currency=currency)
    assert D(0) <= a <= b


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 4 * 365),
    cents,
    st.integers(1, 10**9),
    st.integers(0, 200),
    st.integers(0, 200),
    st.integers(0, 400),
    st.sampled_from(sorted(RULES)),
    st.booleans(),
)
def test_paying_earlier_never_increases_interest(
    start, amount, paid_cents, early, extra, as_of_days, rule_name, business
):
    due = START + datetime.timedelta(days=start)
    left = max(amount - D(paid_cents).scaleb(-2), D(0))
    early_day = due + datetime.timedelta(days=early)
    late_day = early_day + datetime.timedelta(days=extra)
    as_of = due + datetime.timedelta(days=as_of_days)
    rule = RULES[rule_name]
    paid_early = accrued_interest([(due, amount), (early_day, left)], rule, as_of, business,
                                  currency="EUR")
    paid_late = accrued_interest([(due, amount), (late_day, left)], rule, as_of, business,
                                 currency="EUR")
    never_paid = accrued_interest([(due, amount)], rule, as_of, business, currency="EUR")
    assert paid_early <= paid_late <= never_paid


@settings(max_examples=100, deadline=None)
@given(invoices(), st.lists(st.integers(0, 500), min_size=1, max_size=6),
       st.sampled_from(sorted(RULES)))
def test_charging_run_by_run_adds_up_to_the_whole(pairs, run_days, rule_name):
    """Runs that each see the history up to their day, charging only what is new, charge
    in total exactly the interest computed once over the whole history."""
    rule = RULES[rule_name]
    due = pairs[0][0]
    charged = D(0)
    runs = sorted(due + datetime.timedelta(days=n) for n in run_days)
    for as_of in runs:
        known = [p for p in pairs if p[0] <= as_of]
        computed = accrued_interest(known, rule, as_of, True, currency="EUR")
        delta = interest_delta(charged, computed)
        assert delta >= 0
        charged += delta
    last = runs[-1]
    assert charged == accrued_interest([p for p in pairs if p[0] <= last], rule, last, True,
                                       currency="EUR")
