"""Rendering of dunning messages: the template sandbox and Babel formatting.

Templates are data written by staff, so they are compiled by a private template engine
whose only library is ``dunning.sandbox`` (no ``load``, ``include``, ``extends``, ...),
and they only ever see plain values: dicts, lists, strings, numbers and dates.
"""

from __future__ import annotations

import datetime
import functools
import re
import zoneinfo
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, list_currencies
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import Context, Engine, TemplateSyntaxError
from django.utils.html import escape
from django.utils.translation import gettext as _

from .conf import dunning_settings
from .exceptions import TemplateRenderError

SANDBOX_LIBRARY = "dunning.sandbox"

# The variables a message template can use (documented in the README).
TEMPLATE_VARIABLES = (
    "customer",
    "invoices",
    "totals",
    "total",
    "days_overdue",
    "step",
    "company",
    "portal_url",
    "today",
)


@functools.cache
def sandbox_engine():
    engine = Engine(autoescape=True, debug=False, string_if_invalid="", libraries={})
    # Engine() always prepends Django's default builtins; replace them by the allow-list.
    engine.builtins = [SANDBOX_LIBRARY]
    engine.template_builtins = engine.get_template_builtins(engine.builtins)
    engine.template_libraries = {}
    return engine


def compile_template(source):
    """Compile ``source`` in the sandbox; raise TemplateRenderError with the line."""
    try:
        return sandbox_engine().from_string(source or "")
    except TemplateSyntaxError as exc:
        line = _error_line(source, exc)
        where = _(" (line %(line)s)") % {"line": line} if line else ""
        raise TemplateRenderError(f"{exc}{where}") from exc


def _error_line(source, exc):
    info = getattr(exc, "template_debug", None)
    if info:
        return info.get("line")
    token = getattr(exc, "token", None)
    if token is not None and getattr(token, "lineno", None):
        return token.lineno
    return None


def validate_template_source(source):
    """Raise ValidationError when ``source`` does not compile in the sandbox."""
    try:
        compile_template(source)
    except TemplateRenderError as exc:
        raise ValidationError(str(exc)) from exc


# -- locale, money and dates ---------------------------------------------------------

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


# -- message context -----------------------------------------------------------------


def company_context():
    company = dict(dunning_settings.COMPANY or {})
    for key in ("name", "email", "phone", "website", "address", "payment_url", "update_payment_url"):
        company.setdefault(key, "")
    return {k: str(v) for k, v in company.items()}


def build_context(*, customer, invoices, step, as_of, locale, company, portal_url="", today=None):
    """The plain-value context of one message.

    ``invoices`` are snapshot dicts (number, amount_due, currency, due_date as ISO text);
    ``customer`` is a CustomerRow; ``today`` is the date in the customer's time zone
    (default: ``as_of``).
    """
    rows = []
    oldest = None
    sums: dict[str, list] = {}  # currency -> [total, formatted amount of a lone invoice]
    for inv in invoices:
        due = inv["due_date"]
        if isinstance(due, str):
            due = datetime.date.fromisoformat(due)
        oldest = due if oldest is None or due < oldest else oldest
        amount = Decimal(inv["amount_due"])
        currency = inv["currency"]
        formatted = format_money(amount, currency, locale)
        if currency in sums:
            sums[currency][0] += amount
            sums[currency][1] = None
        else:
            sums[currency] = [amount, formatted]
        rows.append(
            {
                "number": inv["number"],
                "amount": formatted,
                "currency": currency,
                "due_date": format_day(due, locale),
                "days_overdue": (as_of - due).days,
            }
        )
    # A currency with one invoice totals to that invoice's amount, already formatted.
    totals = [
        {"currency": cur, "amount": lone or format_money(total, cur, locale)}
        for cur, (total, lone) in sorted(sums.items())
    ]
    return {
        "customer": {"name": customer.name, "email": customer.email, "language": locale.language},
        "invoices": rows,
        "totals": totals,
        "total": " + ".join(t["amount"] for t in totals),
        "days_overdue": (as_of - oldest).days if oldest else 0,
        "step": dict(step),
        "company": company,
        "portal_url": portal_url,
        "today": format_day(today or as_of, locale),
    }


_SUBJECT_SPACE = re.compile(r"[ \t\r\n\f\v]+")


class CompiledMessage:
    __slots__ = ("subject", "text", "html")

    def __init__(self, subject, text, html):
        self.subject = compile_template(subject)
        self.text = compile_template(text)
        self.html = compile_template(html) if html else None


# The frame around every HTML body (not staff-editable; filled with str.format after
# escaping, which is cheaper per message than a template render).
HTML_LAYOUT = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{subject}</title></head>
<body style="font-family: Arial, Helvetica, sans-serif; color: #222; line-height: 1.5;">
<div style="max-width: 640px; margin: 0 auto;">{body}</div></body></html>"""


class Renderer:
    """Compiles each template once per run and renders messages from plain values."""

    def __init__(self):
        self._compiled = {}

    def compiled(self, template):
        key = (template.pk, template.updated_at)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = CompiledMessage(
                template.subject, template.text_body, template.html_body
            )
        return compiled

    def render(self, template, context):
        """Return (subject, text, html) for a MessageTemplate and a context dict."""
        compiled = self.compiled(template)
        try:
            text_ctx = Context(context, autoescape=False)
            # One line; ordinary whitespace only (a no-break space in "1.234,50 €" stays).
            subject = _SUBJECT_SPACE.sub(" ", compiled.subject.render(text_ctx)).strip()
            text = compiled.text.render(text_ctx).strip() + "\n"
            html = None
            if compiled.html is not None:
                html = HTML_LAYOUT.format(
                    lang=escape(context["customer"]["language"]),
                    subject=escape(subject),
                    body=compiled.html.render(Context(context, autoescape=True)),
                )
        except Exception as exc:  # a template filter may raise anything
            raise TemplateRenderError(f"{type(exc).__name__}: {exc}") from exc
        return subject, text, html
