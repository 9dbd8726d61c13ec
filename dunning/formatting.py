"""Formatting for people: Babel locales, money and dates in the customer's language, the
customer's time zone. A foundation: messages, the portal, the read models and the admin
use it; it imports nothing of the package but ``conf``."""

from __future__ import annotations

import datetime
import functools
import zoneinfo
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, list_currencies
from django.conf import settings

from .conf import dunning_settings

KNOWN_CURRENCIES = frozenset(list_currencies())


def default_language():
    return (dunning_settings.DEFAULT_LANGUAGE or settings.LANGUAGE_CODE or "en").replace("_", "-")


@functools.lru_cache(maxsize=256)
def babel_locale(language):
    """A Babel locale for a language code, falling back to the site's language."""
    for code in (language, default_language(), "en"):
        if not code:
            continue
        try:
            return Locale.parse(code.replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale.parse("en")


@functools.lru_cache(maxsize=512)
def customer_timezone(name):
    """The customer's time zone, falling back to the site's ``TIME_ZONE``."""
    for candidate in (name, settings.TIME_ZONE, "UTC"):
        if not candidate:
            continue
        try:
            return zoneinfo.ZoneInfo(candidate)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            continue
    return datetime.timezone.utc


@dunning_settings.on_reload
def _clear_caches():
    babel_locale.cache_clear()
    customer_timezone.cache_clear()


def format_money(amount: Decimal, currency: str, locale: Locale) -> str:
    """An amount in the customer's language; an unknown currency keeps its raw code."""
    if currency in KNOWN_CURRENCIES:
        return format_currency(amount, currency, locale=locale)
    # At least two decimals, as for most currencies, and every digit the amount has.
    number = format_decimal(amount, format="#,##0.00####", locale=locale)
    return f"{number} {currency or '?'}"


@functools.lru_cache(maxsize=4096)
def format_day(value: datetime.date, locale: Locale) -> str:
    """A date in the customer's language (cached: invoices share due dates)."""
    return format_date(value, format="medium", locale=locale)


def totals_by_currency(invoices):
    """Sum of the open amounts per currency (never a sum across currencies)."""
    totals: dict[str, Decimal] = {}
    for invoice in invoices:
        totals[invoice["currency"]] = totals.get(invoice["currency"], Decimal(0)) + Decimal(
            invoice["amount_due"]
        )
    return totals
