"""The collections dashboard: the figures a head of collections reads each morning,
with bar charts drawn on the server as inline SVG (no JavaScript)."""

import datetime

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from .. import reports
from ..rendering import babel_locale, format_money

BAR_WIDTH = 300  # px of the longest bar
BAR_HEIGHT = 20
BAR_GAP = 8
LABEL_WIDTH = 150


def _bars(items):
    """SVG geometry for horizontal bars: items are (label, value, text)."""
    largest = max([value for _label, value, _text in items] + [0])
    bars = []
    for index, (label, value, text) in enumerate(items):
        width = round(BAR_WIDTH * float(value) / float(largest)) if largest else 0
        y = index * (BAR_HEIGHT + BAR_GAP)
        bars.append({
            "label": label, "text": text, "width": width, "y": y,
            "text_y": y + BAR_HEIGHT - 5, "value_x": LABEL_WIDTH + width + 6,
        })
    return {
        "bars": bars,
        "label_width": LABEL_WIDTH,
        "bar_height": BAR_HEIGHT,
        "width": LABEL_WIDTH + BAR_WIDTH + 120,
        "height": max(len(items), 1) * (BAR_HEIGHT + BAR_GAP),
    }


def _percent(rate):
    return "–" if rate is None else f"{rate * 100:.1f} %"


def _as_of(value):
    try:
        return datetime.date.fromisoformat(value) if value else timezone.localdate()
    except ValueError:
        return timezone.localdate()


def dashboard_view(model_admin, request):
    if not model_admin.has_view_or_change_permission(request):
        raise PermissionDenied
    today = _as_of(request.GET.get("as_of"))
    figures = reports.dashboard(today)
    locale = babel_locale(getattr(request, "LANGUAGE_CODE", None) or get_language())

    def money(rows):
        return [format_money(row["amount"], row["currency"], locale) for row in rows]

    aging = [
        {**bucket, "amounts": money(bucket["currencies"])} for bucket in figures["aging"]
    ]
    steps = [{**step, "percent": _percent(step["rate"])} for step in figures["steps"]]
    recovery = [
        {**window, "percent": _percent(window["rate"])}
        for window in figures["recovery"].values()
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": _("Collections dashboard"),
        "today": today,
        "open_count": figures["open"]["count"],
        "open_amounts": money(figures["open"]["amounts"]),
        "recovery": recovery,
        "days_to_collect": figures["days_to_collect"],
        "aging": aging,
        "aging_chart": _bars([(b["bucket"], b["count"], str(b["count"])) for b in aging]),
        "steps": steps,
        "steps_chart": _bars(
            [(s["step_key"], s["rate"] or 0, s["percent"]) for s in steps]
        ),
        "within_days": reports.EFFECTIVE_WITHIN_DAYS,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "dunning/admin/dashboard.html", context)
