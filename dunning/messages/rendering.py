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
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext as _

from ..conf import dunning_settings
from ..exceptions import RenderLimitError, TemplateRenderError
from ..portal.tokens import portal_url as portal_link
from ..sandbox import (
    MAX_LOOP_DEPTH,
    WIDTH_ARGUMENTS,
    Budget,
    deactivate,
    format_size,
    guard_loops,
    render_size_limit,
    render_time_limit,
)
from ..unsubscribe.links import message_link
from .history import history_context

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
    # Pre-dunning notices only (dunning.payments.predunning); empty in other messages.
    "card",
    "renewal",
    # The message's unsubscribe link ("" for a required notice, see dunning.unsubscribe)
    # and whether it is a legally required notice (Step.required).
    "unsubscribe_url",
    "required_notice",
    # The customer's history (dunning.history; no figures when not computed).
    "history",
    # What the message charges: reminder fees and interest (dunning.charging), and their
    # sum per currency ("" without charges).
    "charges",
    "charges_total",
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
        # Every loop body checks the render's limits (dunning.sandbox).
        return guard_loops(sandbox_engine().from_string(source or ""))
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
            raise TemplateRenderError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            deactivate(token)
        if failures:
            self._over_limit.pop(key, None)
        return subject, text, html


# -- unknown-variable detection ------------------------------------------------------
#
# A template that compiles may still name things that are not there ({{ customer.password }}
# renders as nothing, silently). Staff learn of that at save time: the compiled template's
# nodes are walked and every variable is checked against the documented context, with the
# loop and ``with`` variables in scope.


class _Leaf:
    """A plain value (string, number): no attribute of it is documented."""

    def __repr__(self):
        return "LEAF"


LEAF = _Leaf()


class _ListOf:
    __slots__ = ("item",)

    def __init__(self, item):
        self.item = item


def _record(*names):
    return dict.fromkeys(names, LEAF)


CUSTOMER_FIELDS = _record("name", "email", "language")
STEP_FIELDS = _record("key", "offset_days", "action")
COMPANY_FIELDS = _record(
    "name", "email", "phone", "website", "address", "payment_url", "update_payment_url"
)
INVOICE_ITEM_FIELDS = _record("number", "amount", "currency", "due_date", "days_overdue")
TOTAL_ITEM_FIELDS = _record("currency", "amount")
FORLOOP_FIELDS = _record("counter", "counter0", "revcounter", "revcounter0", "first", "last")
FORLOOP_FIELDS["parentloop"] = FORLOOP_FIELDS

# The documented shape of the context (see build_context and TEMPLATE_VARIABLES).
CONTEXT_SHAPE = {
    "customer": CUSTOMER_FIELDS,
    "invoices": _ListOf(INVOICE_ITEM_FIELDS),
    "totals": _ListOf(TOTAL_ITEM_FIELDS),
    "total": LEAF,
    "days_overdue": LEAF,
    "step": STEP_FIELDS,
    "company": COMPANY_FIELDS,
    "portal_url": LEAF,
    "today": LEAF,
    "card": _record("label", "expires", "days_left"),
    "renewal": _record("date", "amount"),
    "unsubscribe_url": LEAF,
    "required_notice": LEAF,
    "charges": _ListOf(_record("kind", "label", "amount", "invoice", "period", "rate")),
    "charges_total": LEAF,
    "history": _record("months_as_customer", "customer_since", "on_time_rate",
                       "invoices_paid", "past_cases", "first_time_late"),
}
assert set(CONTEXT_SHAPE) == set(TEMPLATE_VARIABLES)

# Names every Django context has.
_BUILTIN_NAMES = {"True": LEAF, "False": LEAF, "None": LEAF}

# Filters that keep a list a list, and those that pick one of its items.
_LIST_KEEPING_FILTERS = {"dictsort", "dictsortreversed", "slice_filter", "default", "default_if_none"}
_ITEM_FILTERS = {"first", "last", "random"}


class UnknownVariable(Exception):
    def __init__(self, name, line):
        super().__init__(name)
        self.name = name
        self.line = line


def _resolve_shape(lookups, scope):
    """The shape of a dotted lookup in ``scope``, or None when it is not documented."""
    shape = scope.get(lookups[0])
    for part in lookups[1:]:
        if shape is None or shape is LEAF:
            return None
        if isinstance(shape, _ListOf):
            shape = shape.item if part.isdigit() else None
        else:
            shape = shape.get(part)
    return shape


def _filtered_shape(shape, filters):
    for func, _args in filters:
        name = getattr(func, "__name__", "")
        if isinstance(shape, _ListOf) and name in _ITEM_FILTERS:
            shape = shape.item
        elif name not in _LIST_KEEPING_FILTERS:
            shape = LEAF
    return shape


class UnsafeTemplate(Exception):
    """A template that would go over the render limits whatever the customer (a width
    far too large, loops nested too deep): refused when it is saved."""

    def __init__(self, message, line):
        super().__init__(message)
        self.message = message
        self.line = line


class _VariableChecker:
    def __init__(self):
        self.asvars = {}  # names bound by "... as name" (cycle, now, widthratio, firstof)
        self.depth = 0  # loops around the node being checked

    def line(self, node):
        token = getattr(node, "token", None)
        return getattr(token, "lineno", None)

    def variable(self, var, scope, line, root_shape=None):
        """Check a template Variable; return its shape (LEAF for literals)."""
        from django.template.base import Variable

        if not isinstance(var, Variable) or var.lookups is None:
            return LEAF
        if root_shape is not None:
            shape = _resolve_shape(("_",) + var.lookups[1:], {"_": root_shape})
        else:
            shape = _resolve_shape(var.lookups, {**_BUILTIN_NAMES, **self.asvars, **scope})
        if shape is None:
            raise UnknownVariable(".".join(var.lookups), line)
        return shape

    def expression(self, fexpr, scope, line, *, check_var=True):
        """Check a FilterExpression (its variable and every variable filter argument)."""
        from django.template.base import FilterExpression

        if not isinstance(fexpr, FilterExpression):
            return LEAF
        for func, args in fexpr.filters:
            for lookup, arg in args:
                if lookup:
                    self.variable(arg, scope, line)
            width = WIDTH_ARGUMENTS.get(getattr(func, "_filter_name", None))
            # A quoted argument is kept as text; a number is a Variable with a literal.
            literal = [arg if not lookup else arg.literal for lookup, arg in args
                       if not lookup or getattr(arg, "lookups", True) is None]
            if width is not None and literal:
                error = width(func._filter_name, None, literal[0])
                if error:
                    raise UnsafeTemplate(error, line)
        shape = self.variable(fexpr.var, scope, line) if check_var else LEAF
        return _filtered_shape(shape, fexpr.filters)

    def condition(self, cond, scope, line):
        if cond is None:
            return
        value = getattr(cond, "value", None)
        if value is not None and hasattr(value, "filters"):
            self.expression(value, scope, line)
        for part in (getattr(cond, "first", None), getattr(cond, "second", None)):
            if part is not None:
                self.condition(part, scope, line)

    def nodelist(self, nodes, scope):
        for node in nodes or ():
            self.node(node, scope)

    def node(self, node, scope):
        from django.template import defaulttags
        from django.template.base import TextNode, VariableNode

        line = self.line(node)
        if isinstance(node, TextNode):
            return
        if isinstance(node, VariableNode):
            self.expression(node.filter_expression, scope, line)
        elif isinstance(node, defaulttags.IfNode):
            for cond, nodelist in node.conditions_nodelists:
                self.condition(cond, scope, line)
                self.nodelist(nodelist, scope)
        elif isinstance(node, defaulttags.ForNode):
            shape = self.expression(node.sequence, scope, line)
            if isinstance(shape, _ListOf) and len(node.loopvars) == 1:
                item = shape.item
            else:
                item = LEAF
            inner = dict(scope)
            inner.update(dict.fromkeys(node.loopvars, item))
            inner["forloop"] = FORLOOP_FIELDS
            self.depth += 1
            if self.depth > MAX_LOOP_DEPTH:
                raise UnsafeTemplate(
                    _("loops are nested %(depth)s deep; at most %(max)s are allowed")
                    % {"depth": self.depth, "max": MAX_LOOP_DEPTH}, line)
            self.nodelist(node.nodelist_loop, inner)
            self.depth -= 1
            self.nodelist(node.nodelist_empty, scope)
        elif isinstance(node, defaulttags.WithNode):
            inner = dict(scope)
            for name, value in node.extra_context.items():
                inner[name] = self.expression(value, scope, line)
            self.nodelist(node.nodelist, inner)
        elif isinstance(node, defaulttags.RegroupNode):
            shape = self.expression(node.target, scope, line)
            item = shape.item if isinstance(shape, _ListOf) else LEAF
            # The grouping expression is "<var_name>.<attribute>", looked up on each item.
            try:
                self.variable(node.expression.var, scope, line, root_shape=item)
            except UnknownVariable as exc:
                attr = ".".join(node.expression.var.lookups[1:])
                raise UnknownVariable(f"{node.target.token}.{attr}", line) from exc
            self.asvars[node.var_name] = _ListOf({"grouper": LEAF, "list": _ListOf(item)})
        elif isinstance(node, defaulttags.FilterNode):
            # "{% filter upper %}": the expression is "var|upper" on the block's output.
            self.expression(node.filter_expr, scope, line, check_var=False)
            self.nodelist(node.nodelist, scope)
        else:
            for attr in ("cyclevars", "vars", "_varlist"):
                for value in getattr(node, attr, None) or ():
                    self.expression(value, scope, line)
            for attr in ("val_expr", "max_expr", "max_width"):
                value = getattr(node, attr, None)
                if value is not None:
                    self.expression(value, scope, line)
            for attr in ("asvar", "variable_name"):
                name = getattr(node, attr, None)
                if isinstance(name, str) and name:
                    self.asvars[name] = LEAF
            for attr in getattr(node, "child_nodelists", ()):
                self.nodelist(getattr(node, attr, None), scope)


def check_template_variables(template):
    """Raise UnknownVariable for the first undocumented variable of a compiled template."""
    checker = _VariableChecker()
    checker.nodelist(template.nodelist, dict(CONTEXT_SHAPE))


def unknown_variable_message(exc):
    if exc.line:
        return _("line %(line)s: unknown variable '%(name)s'") % {"line": exc.line, "name": exc.name}
    return _("unknown variable '%(name)s'") % {"name": exc.name}


def validate_message_template(source, channel="email"):
    """Raise ValidationError when ``source`` does not compile in the sandbox, uses a
    variable that the message context does not have, or would go over the render limits
    of ``channel`` whatever the customer: larger than a rendered part may be, a filter
    that pads or formats to a width above ``sandbox.MAX_WIDTH``, loops nested deeper than
    ``sandbox.MAX_LOOP_DEPTH``."""
    limit = render_size_limit(channel)
    size = len((source or "").encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ValidationError(
            _("The template is %(size)s, more than the %(limit)s a rendered %(channel)s "
              "message may have.") % {"size": format_size(size), "limit": format_size(limit),
                                     "channel": channel})
    validate_template_source(source)
    try:
        check_template_variables(compile_template(source))
    except UnknownVariable as exc:
        raise ValidationError(unknown_variable_message(exc)) from exc
    except UnsafeTemplate as exc:
        if exc.line:
            raise ValidationError(_("line %(line)s: %(error)s")
                                  % {"line": exc.line, "error": exc.message}) from exc
        raise ValidationError(exc.message) from exc
