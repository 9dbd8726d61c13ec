"""Rendering of dunning messages: the template sandbox and Babel formatting.

Templates are data written by staff, so they are compiled by a private template engine
whose only library is ``dunning.sandbox`` (no ``load``, ``include``, ``extends``, ...),
and they only ever see plain values: dicts, lists, strings, numbers and dates. Compiling
a template and checking it before it is saved (its variables against the documented
context, its widths and loop depth) are the sandbox's (dunning.sandbox, below the models,
which check a template in ``MessageTemplate.clean``); they are re-exported here.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

from babel.numbers import format_decimal
from django.template import Context
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext as _

from ..conf import dunning_settings
from ..exceptions import RenderLimitError, TemplateRenderError
from ..failures import describe
from ..formatting import (  # noqa: F401 (re-exported)
    KNOWN_CURRENCIES,
    _clear_caches,
    babel_locale,
    customer_timezone,
    default_language,
    format_day,
    format_money,
    totals_by_currency,
)
from ..portal.tokens import portal_url as portal_link
from ..sandbox import (  # noqa: F401 (the checks of a template: re-exported)
    COMPANY_FIELDS,
    CONTEXT_SHAPE,
    CUSTOMER_FIELDS,
    FORLOOP_FIELDS,
    INVOICE_ITEM_FIELDS,
    LEAF,
    MAX_LOOP_DEPTH,
    SANDBOX_LIBRARY,
    STEP_FIELDS,
    TEMPLATE_VARIABLES,
    TOTAL_ITEM_FIELDS,
    WIDTH_ARGUMENTS,
    Budget,
    UnknownVariable,
    UnsafeTemplate,
    _error_line,
    _ListOf,
    _record,
    check_template_variables,
    compile_template,
    deactivate,
    format_size,
    guard_loops,
    render_size_limit,
    render_time_limit,
    sandbox_engine,
    unknown_variable_message,
    validate_message_template,
    validate_template_source,
)
from ..unsubscribe.links import message_link
from .history import history_context

# -- message context -----------------------------------------------------------------


def company_context():
    company = dict(dunning_settings.COMPANY or {})
    for key in ("name", "email", "phone", "website", "address", "payment_url", "update_payment_url"):
        company.setdefault(key, "")
    return {k: str(v) for k, v in company.items()}


def build_context(*, customer, invoices, step, as_of, locale, company, portal_url=None, today=None,
                  card=None, renewal=None, unsubscribe_url=None, required_notice=None,
                  charges=None, history=None):
    """The plain-value context of one message.

    ``invoices`` are snapshot dicts (number, amount_due, currency, due_date as ISO text);
    ``customer`` is a CustomerRow; ``today`` is the date in the customer's time zone
    (default: ``as_of``); ``portal_url`` defaults to the customer's signed self-service
    link (dunning.portal; "" without ``PORTAL_BASE_URL``); ``required_notice`` to
    ``step["required"]``; ``unsubscribe_url`` to the customer's email unsubscribe link,
    "" for a required notice (dunning.unsubscribe). ``charges``: what the message charges
    (``fees.Charge.as_dict()`` values, dunning.charging), listed as ``charges`` and summed
    per currency in ``charges_total``. ``history``: the customer's entry of
    ``dunning.history.customer_history`` (None: not computed; every figure unknown).
    """
    if portal_url is None:
        portal_url = portal_link(customer.pk)
    if required_notice is None:
        required_notice = bool(step.get("required", False))
    if unsubscribe_url is None:
        unsubscribe_url = message_link(customer.pk, "email", required=required_notice)
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
        "step": {k: v for k, v in step.items() if k != "required"},
        "company": company,
        "portal_url": portal_url,
        "today": format_day(today or as_of, locale),
        "card": dict(card or {}),
        "renewal": dict(renewal or {}),
        "unsubscribe_url": unsubscribe_url,
        # 1 or 0: the context holds plain values only (dicts, lists, text, integers).
        "required_notice": int(bool(required_notice)),
        **charges_context(charges or (), locale),
        # The customer's history (dunning.history): customer_since formatted, the figures
        # as integers; an unknown one is left out (dunning.history.history_context).
        "history": history_context(history, locale),
    }


def charges_context(charges, locale):
    """``charges`` (label, amount, invoice, period, rate: text in the customer's
    language) and ``charges_total`` ("" without charges) of a message."""
    if not charges:  # most messages: no translation switch, no formatting
        return {"charges": [], "charges_total": ""}
    from ..fees import CHARGE_LABELS

    rows, sums = [], {}
    with translation.override(locale.language):
        for c in charges:
            amount, currency = Decimal(c["amount"]), c["currency"]
            sums[currency] = sums.get(currency, Decimal(0)) + amount
            start = datetime.date.fromisoformat(c["period_start"])
            end = datetime.date.fromisoformat(c["period_end"])
            rows.append({
                "kind": c["kind"],
                "label": str(CHARGE_LABELS[c["kind"]]),
                "amount": format_money(amount, currency, locale),
                "invoice": c.get("invoice_number") or "",
                "period": "" if start == end else
                f"{format_day(start, locale)} – {format_day(end, locale)}",
                "rate": format_decimal(Decimal(c["rate"]), locale=locale) + " %"
                if c.get("rate") and c["kind"] == "interest" else "",
            })
    total = " + ".join(format_money(amount, cur, locale) for cur, amount in sorted(sums.items()))
    return {"charges": rows, "charges_total": total}


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


# A template whose render went over a limit for this many customers in a row is not
# rendered again in the same run (or render worker): its messages fail at once.
TRIP_AFTER = 3


class Renderer:
    """Compiles each template once per run and renders messages from plain values, each
    within the limits of its channel (dunning.sandbox)."""

    def __init__(self):
        self._compiled = {}
        self._over_limit = {}  # template key -> (renders over a limit in a row, reason)

    def compiled(self, template):
        key = (template.pk, template.updated_at)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = CompiledMessage(
                template.subject, template.text_body, template.html_body
            )
        return compiled

    def render(self, template, context):
        """Return (subject, text, html) for a MessageTemplate and a context dict. Raises
        RenderLimitError (its message says which limit) when the render takes longer
        than ``RENDER_TIME_LIMIT`` or a part is larger than its channel allows."""
        compiled = self.compiled(template)
        key = (template.pk, template.updated_at)
        failures, reason = self._over_limit.get(key, (0, ""))
        if failures >= TRIP_AFTER:
            raise RenderLimitError(
                _("not rendered: %(reason)s for %(count)s customers in a row in this run")
                % {"reason": reason, "count": failures})
        budget = Budget(render_time_limit(),
                        render_size_limit(getattr(template, "channel", "") or "email"))
        token = budget.activate()
        try:
            text_ctx = Context(context, autoescape=False)
            # One line; ordinary whitespace only (a no-break space in "1.234,50 €" stays).
            budget.part(_("subject"))
            subject = _SUBJECT_SPACE.sub(
                " ", budget.check_result(compiled.subject.render(text_ctx))).strip()
            budget.part(_("text"))
            text = budget.check_result(compiled.text.render(text_ctx)).strip() + "\n"
            html = None
            if compiled.html is not None:
                budget.part(_("HTML body"))
                html = HTML_LAYOUT.format(
                    lang=escape(context["customer"]["language"]),
                    subject=escape(subject),
                    body=budget.check_result(
                        compiled.html.render(Context(context, autoescape=True))),
                )
        except RenderLimitError as exc:
            self._over_limit[key] = (failures + 1, str(exc))
            raise
        except Exception as exc:  # a template filter may raise anything
            if budget.error is not None:  # over a limit, then failed for that
                self._over_limit[key] = (failures + 1, str(budget.error))
                raise budget.error from exc
            raise TemplateRenderError(describe(exc, None)) from exc
        finally:
            deactivate(token)
        if failures:
            self._over_limit.pop(key, None)
        return subject, text, html


