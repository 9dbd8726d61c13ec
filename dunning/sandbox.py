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

from django.template import Library, defaultfilters, defaulttags
from django.utils.translation import gettext as _

from .conf import DEFAULTS, dunning_settings
from .exceptions import RenderLimitError

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
