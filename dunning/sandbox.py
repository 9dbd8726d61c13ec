"""The template library of the message sandbox: an allow-list of Django's built-in tags
and filters, and the limits a render of a staff-written template runs under.

Tags that reach outside the context (``load``, ``include``, ``extends``, ``debug``,
``url``, ``csrf_token``, ``ssi``, ...) are simply not there, so a template that uses one
fails to compile.

Limits (docs/templates.md): a render runs under a :class:`Budget` (a deadline and the
largest size of the part being rendered). The budget is checked cooperatively, so it
works alike in the run's own process, in a thread (the admin's preview) and in a worker of
the render pool: every node of a loop body checks the deadline and adds its output to the
size of the part before the next one renders (:func:`guard_loops`), and every filter
checks its result, so neither a loop nor a chain of filters can run away. The filters that
build long texts from a small argument (``ljust``, ``rjust``, ``center``,
``stringformat``, ``floatformat``) refuse widths above :data:`MAX_WIDTH`, and ``join``
refuses to build a text larger than the part may be, before any of it is built.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time

from django.core.exceptions import ValidationError
from django.template import Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.utils.translation import gettext as _

from .conf import DEFAULTS, dunning_settings
from .exceptions import (  # noqa: F401 - UnknownVariable, UnsafeTemplate: part of this API
    RenderLimitError,
    TemplateRenderError,
    UnknownVariable,
    UnsafeTemplate,
)

register = Library()

ALLOWED_TAGS = (
    "autoescape",
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
)

#: The widest text ``ljust``, ``rjust`` and ``center`` may pad to, and the largest width
#: or precision of ``stringformat`` and ``floatformat`` (checked when a template is saved
#: and again when it renders, for an argument that is a variable).
MAX_WIDTH = 1000
#: How deep ``{% for %}`` loops may nest (checked when a template is saved).
MAX_LOOP_DEPTH = 3

# The clock of the deadline (a test may replace it with one that does not depend on the
# machine's speed).
clock = time.monotonic

_current = contextvars.ContextVar("dunning_render_budget", default=None)


def format_size(size):
    """``size`` bytes as staff read it: "900 bytes", "256 KB", "30.0 MB"."""
    if size < 1024:
        return _("%(size)s bytes") % {"size": size}
    if size < 1024 * 1024:
        kb = size / 1024
        return _("%(size)s KB") % {"size": f"{kb:.0f}" if size % 1024 == 0 else f"{kb:.1f}"}
    return _("%(size)s MB") % {"size": f"{size / (1024 * 1024):.1f}"}


def format_seconds(seconds):
    return f"{seconds:g}"


class Budget:
    """The limits of one message's render: a deadline for all its parts, and the largest
    size (UTF-8 bytes) of each part. Use :meth:`part` around the render of each part."""

    __slots__ = ("seconds", "limit", "deadline", "size", "name", "error")

    def __init__(self, seconds, limit):
        self.seconds = seconds
        self.limit = limit
        self.deadline = clock() + seconds
        self.size = 0  # characters of the part so far (at least its size in bytes / 4)
        self.name = ""
        self.error = None  # sticky: a tag that swallows errors ({% if %}) cannot hide it

    def part(self, name):
        self.name, self.size = name, 0

    def fail(self, error):
        self.error = error
        raise error

    def check_time(self):
        if self.error is not None:
            raise self.error
        if clock() > self.deadline:
            self.fail(RenderLimitError(
                _("the template took longer than %(seconds)s s to render")
                % {"seconds": format_seconds(self.seconds)}, kind="time"))

    def check_growth(self, size):
        """``size`` characters of the part rendered so far (the final size is at least
        that many bytes)."""
        if size > self.limit:
            self.fail(RenderLimitError(
                _("the rendered %(part)s grew past the %(limit)s allowed")
                % {"part": self.name, "limit": format_size(self.limit)}, kind="size"))

    def check_result(self, text):
        """The finished part: its exact size in UTF-8 bytes, and the deadline."""
        self.check_time()
        if len(text) * 4 > self.limit:  # else it fits whatever its characters
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > self.limit:
                self.fail(RenderLimitError(
                    _("the rendered %(part)s is %(size)s, more than the %(limit)s allowed")
                    % {"part": self.name, "size": format_size(size),
                       "limit": format_size(self.limit)}, kind="size"))
        return text

    def activate(self):
        """Make this the budget of the renders of this thread; returns a token for
        :func:`deactivate`."""
        return _current.set(self)


def deactivate(token):
    _current.reset(token)


def current_budget():
    return _current.get()


# -- loops ---------------------------------------------------------------------------


def _guarded(render, context):
    budget = _current.get()
    if budget is None:
        return render(context)
    budget.check_time()
    before = budget.size
    output = render(context)
    # The node's output replaces what its own children added: the count stays the size
    # of the output the loop will join.
    budget.size = before + len(output)
    budget.check_growth(budget.size)
    return output


def guard_loops(template):
    """Make every node of every loop body of a compiled template check the budget (an
    empty body costs little per iteration; its loop's node is checked by the loop that
    holds it, and a loop's length is bounded by the size limits)."""
    for loop in template.nodelist.get_nodes_by_type(defaulttags.ForNode):
        for node in loop.nodelist_loop:
            if "render_annotated" not in vars(node):
                node.render_annotated = functools.partial(_guarded, node.render_annotated)
    return template


# -- filters -------------------------------------------------------------------------

_NUMBERS = re.compile(r"\d+")


def _int(arg):
    try:
        return int(arg)
    except (TypeError, ValueError):
        return None


def _width_error(name, arg, width):
    return _("%(filter)s:\"%(arg)s\" builds a text %(width)s characters wide; at most "
             "%(max)s are allowed") % {"filter": name, "arg": arg, "width": f"{width:,}",
                                       "max": f"{MAX_WIDTH:,}"}


def _pad_width(name, value, arg):
    width = _int(arg)
    if width is not None and width > MAX_WIDTH:
        return _width_error(name, arg, width)
    return None


def _format_width(name, value, arg):
    # "%10.3f" and friends: any number in the specifier is a width or a precision.
    widths = [int(n) for n in _NUMBERS.findall(str(arg))] if arg is not None else []
    if widths and max(widths) > MAX_WIDTH:
        return _width_error(name, arg, max(widths))
    return None


def _float_digits(name, value, arg):
    digits = _int(str(arg).rstrip("gu")) if arg is not None else None
    if digits is not None and abs(digits) > MAX_WIDTH:
        return _width_error(name, arg, abs(digits))
    return None


#: Filters whose argument makes the text they build long, whatever the value: name ->
#: f(name, value, arg) -> an error message or None. Checked on a literal argument when
#: the template is saved (value None) and on every call.
WIDTH_ARGUMENTS = {
    "ljust": _pad_width,
    "rjust": _pad_width,
    "center": _pad_width,
    "stringformat": _format_width,
    "floatformat": _float_digits,
}


def _join_size(value, arg):
    """The length of ``arg.join(value)`` (escaping aside), without building it."""
    try:
        items = list(value)
    except TypeError:
        return 0
    sep = len(str(arg))
    return sum(len(str(item)) for item in items) + sep * max(len(items) - 1, 0)


def _guard_filter(name, func):
    width = WIDTH_ARGUMENTS.get(name)

    @functools.wraps(func)
    def guarded(value, *args, **kwargs):
        budget = _current.get()
        if budget is not None:
            budget.check_time()
        if width is not None and args:
            error = width(name, value, args[0])
            if error:
                error = RenderLimitError(error, kind="size")
                if budget is not None:
                    budget.fail(error)
                raise error
        if name == "join" and args and budget is not None:
            budget.check_growth(_join_size(value, args[0]))
        result = func(value, *args, **kwargs)
        if budget is not None and isinstance(result, str | list | tuple):
            budget.check_growth(len(result))
        return result

    return guarded


for _name in ALLOWED_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]

for _name, _func in defaultfilters.register.filters.items():
    if _name not in {"pprint"}:
        register.filters[_name] = _guard_filter(_name, _func)


# -- settings ------------------------------------------------------------------------


def render_time_limit():
    """``DUNNING["RENDER_TIME_LIMIT"]`` in seconds (its default when it is not a positive
    number: dunning.E070 reports it)."""
    value = dunning_settings.RENDER_TIME_LIMIT
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return DEFAULTS["RENDER_TIME_LIMIT"]
    return value


def render_size_limit(channel):
    """The largest rendered part of a message on ``channel``, in bytes
    (``DUNNING["RENDER_SIZE_LIMITS"]``, else its default; an unknown channel: email's)."""
    defaults = DEFAULTS["RENDER_SIZE_LIMITS"]
    limits = dunning_settings.RENDER_SIZE_LIMITS
    value = limits.get(channel) if isinstance(limits, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        value = defaults.get(channel, defaults["email"])
    return value


# -- checking a template before it is saved ------------------------------------------------
#
# Below the models: a message template (dunning.models.MessageTemplate.clean) is checked
# here, in the sandbox it will render in, against the documented shape of the message
# context that dunning.messages.rendering builds.

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
