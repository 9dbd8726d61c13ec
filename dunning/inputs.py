"""Values from outside (query strings, search boxes, webhook metadata) made safe to query.

* :func:`parse_id`: a database id is ASCII digits only (``str.isdigit`` also accepts
  "³" and "①", which ``int()`` refuses, and ``int()`` accepts "٣") and fits the
  database's signed 64-bit integer (a bigger number overflows the driver).
* :func:`parse_day`: a day as ``YYYY-MM-DD`` between :data:`MIN_DAY` and :data:`MAX_DAY`;
  reports and plans count days and years back and forth from it, which overflows
  ``datetime.date`` near its ends (years 1 and 9999).
* :func:`validate_currency`: an ISO 4217 code of a currency that is legal tender
  somewhere today (Babel's CLDR data), for the shipped Invoice, its import and the API.
* :func:`validate_amount_due`: an open balance is zero or more.
* :data:`MAX_NOTE_LENGTH` / :data:`MAX_CUSTOMER_TEXT_LENGTH`: the longest free text staff
  (notes, call notes, reasons, resolutions, agency notes) and customers (the self-service
  page) may write; the API, the admin and the page's forms all use these.
"""

from __future__ import annotations

import datetime
import functools
from decimal import Decimal

from babel.core import get_global
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

#: The largest value of a signed 64-bit integer (PostgreSQL's bigint, SQLite's INTEGER).
MAX_ID = 2**63 - 1

MIN_DAY = datetime.date(1900, 1, 1)
MAX_DAY = datetime.date(9000, 12, 31)


def parse_id(raw) -> int | None:
    """``raw`` as a database id (0 ... :data:`MAX_ID`, ASCII digits, surrounding blanks
    ignored), or None when it is not one."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def id_error() -> str:
    return _("Enter a whole number between 0 and %(max)s.") % {"max": MAX_ID}


def parse_day(raw) -> datetime.date:
    """``raw`` (``YYYY-MM-DD``) as a date between :data:`MIN_DAY` and :data:`MAX_DAY`.
    Raises ``ValueError`` with a message for the user otherwise."""
    text = str(raw).strip()
    try:
        if not text.isascii():
            raise ValueError(text)
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(_("'%(value)s' is not a date (YYYY-MM-DD).") % {"value": text}) from None
    if not MIN_DAY <= day <= MAX_DAY:
        raise ValueError(_("Enter a date between %(min)s and %(max)s.")
                         % {"min": MIN_DAY.isoformat(), "max": MAX_DAY.isoformat()})
    return day


def without_nul(text: str) -> str:
    """``text`` without NUL characters (PostgreSQL refuses them in text)."""
    return text.replace("\x00", "")


# -- free text --------------------------------------------------------------------------
#: The longest note, call note, pause / write-off / dispute reason, dispute resolution or
#: agency note staff may write (admin forms, the API, the agency import).
MAX_NOTE_LENGTH = 2000
#: The longest text a customer may write on the self-service page (a dispute's reason,
#: the optional feedback comment).
MAX_CUSTOMER_TEXT_LENGTH = 4000


def too_long(limit: int) -> str:
    return _("Write at most %(limit)s characters.") % {"limit": limit}


# -- money ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def active_currencies(day: datetime.date) -> frozenset[str]:
    """The ISO 4217 codes that are legal tender in some territory on ``day``, from the
    CLDR data Babel ships (``territory_currencies``: per territory, each currency with
    its first and last day and whether it is tender).

    Not every code of :func:`babel.numbers.list_currencies` counts: that list also holds
    the historic currencies (DEM, FRF, BGN after 2026-01-31), the codes reserved for tests
    (XTS) and "no currency" (XXX), precious metals (XAU, XAG) and units of account and
    funds codes (XDR, CHE, CLF, USN): nobody can pay an invoice in them. Codes that are
    tender (the CFA francs XAF and XOF, the East Caribbean dollar XCD) are accepted."""
    key = (day.year, day.month, day.day)
    codes = set()
    for currencies in get_global("territory_currencies").values():
        for code, start, end, tender in currencies:
            if tender and (start is None or start <= key) and (end is None or end >= key):
                codes.add(code)
    return frozenset(codes)


def validate_currency(value) -> None:
    """Refuse anything but the ISO 4217 code (upper case) of a currency in use today."""
    text = value if isinstance(value, str) else ""
    if len(text) == 3 and text.isascii() and text.isalpha() and text.isupper() and (
        text in active_currencies(timezone.localdate())
    ):
        return
    if text.upper() != text and text.upper() in active_currencies(timezone.localdate()):
        raise ValidationError(_("Write the currency code in capitals: %(code)s."),
                              code="currency", params={"code": text.upper()})
    raise ValidationError(
        _("'%(value)s' is not the ISO 4217 code of a currency in use (e.g. EUR, USD)."),
        code="currency", params={"value": value},
    )


def validate_amount_due(value) -> None:
    """An invoice's open balance: zero (paid) or more; a credit is not a debt."""
    try:
        negative = value is not None and Decimal(value) < 0
    except (ArithmeticError, TypeError, ValueError):
        return  # not a number (NaN, text): the field's own validation says so
    if negative:
        raise ValidationError(negative_amount_due(), code="negative")


def negative_amount_due() -> str:
    return _("The amount due cannot be negative (it is the open balance: 0 once paid).")


def invoice_of_another_customer(number, owner, email) -> str:
    """Why an invoice upsert (the API's invoices/bulk, the invoice import) refuses a row
    whose number is an invoice of another customer: it never moves the invoice."""
    return _("Invoice %(number)s belongs to another customer (%(owner)s), not to "
             "'%(email)s'; an invoice never moves to another customer. Check the number, or "
             "correct the invoice in the admin.") % {"number": number, "owner": owner,
                                                      "email": email}
