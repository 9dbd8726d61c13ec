"""anymail's webhook URLs, with the tracking views made tolerant of unreadable bodies.

Include it instead of ``anymail.urls`` (same paths, same URL names, namespace
``anymail``)::

    path("anymail/", include("dunning.anymail_urls")),

A tracking body that passes the ESP's authentication but that anymail cannot parse is
then kept as an ``UnreadableTrackingEvent`` (admin: "Unreadable tracking events") and
answered 200, so that the ESP stops retrying it (see dunning.tracking.tolerant_view).
Inbound views are anymail's own.
"""

from anymail import urls as anymail_urls
from anymail.signals import inbound
from django.urls import URLPattern

from . import tolerant_view

app_name = "anymail"


def _tolerant(pattern):
    view_class = getattr(pattern.callback, "view_class", None)
    if view_class is None or getattr(view_class, "signal", None) is inbound:
        return pattern
    callback = tolerant_view(view_class, **getattr(pattern.callback, "view_initkwargs", {}))
    return URLPattern(pattern.pattern, callback, pattern.default_args, pattern.name)


urlpatterns = [_tolerant(pattern) for pattern in anymail_urls.urlpatterns]
