"""The template library of the message sandbox: an allow-list of Django's built-in tags
and filters. Tags that reach outside the context (``load``, ``include``, ``extends``,
``debug``, ``url``, ``csrf_token``, ``ssi``, ...) are simply not there, so a template that
uses one fails to compile."""

from django.template import Library, defaultfilters, defaulttags

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

for _name in ALLOWED_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]

for _name, _func in defaultfilters.register.filters.items():
    if _name not in {"pprint"}:
        register.filters[_name] = _func
