"""Values from outside (query strings, search boxes, webhook metadata) made safe to query.

* :func:`parse_id`: a database id is ASCII digits only (``str.isdigit`` also accepts
  "³" and "①", which ``int()`` refuses, and ``int()`` accepts "٣") and fits the
  database's signed 64-bit integer (a bigger number overflows the driver).
* :func:`parse_day`: a day as ``YYYY-MM-DD`` between :data:`MIN_DAY` and :data:`MAX_DAY`;
  reports and plans count days and years back and forth from it, which overflows
  ``datetime.date`` near its ends (years 1 and 9999).
"""

from __future__ import annotations

import datetime

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
