"""The collections dashboard: the figures a head of collections reads each morning,
with bar charts drawn on the server as inline SVG (no JavaScript)."""


from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from ..formatting import babel_locale, format_money
from ..inputs import parse_day
from ..queries import reports

BAR_WIDTH = 300  # px of the longest bar
BAR_HEIGHT = 20
BAR_GAP = 8
LABEL_WIDTH = 150


BAR_FILL = "#417690"  # the admin's own blue
KEPT_FILL = "#5b8a3c"
BROKEN_FILL = "#ba2121"  # the admin's error red
PENDING_FILL = "#999999"


def _bars(items, largest=None):
    """SVG geometry for horizontal bars: items are (label, value, text) or
    (label, value, text, fill); bars are scaled to ``largest`` (default: the largest
    value, so that it spans the full width)."""
    if largest is None:
        largest = max([item[1] for item in items] + [0])
    bars = []
    for index, (label, value, text, *fill) in enumerate(items):
        width = round(BAR_WIDTH * float(value) / float(largest)) if largest else 0
        y = index * (BAR_HEIGHT + BAR_GAP)
        bars.append({
            "label": label, "text": text, "width": width, "y": y,
            "text_y": y + BAR_HEIGHT - 5, "value_x": LABEL_WIDTH + width + 6,
            "fill": fill[0] if fill else BAR_FILL,
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


def _p_value(value):
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _variant_rows(rows):
    """The A/B report's rows (dunning.variants) with their figures as text."""
    return [
        {**row, "percent": _percent(row["rate"]),
         "interval": "–" if row["low"] is None else
         f"{row['low'] * 100:.1f} – {row['high'] * 100:.1f} %",
         "p_text": _p_value(row["p_value"])}
        for row in rows
    ]


def _as_of(request):
    """?as_of= (default today); a date that is none, or out of the years the reports can
    count in, shows today with a message saying so."""
    value = request.GET.get("as_of")
    if not value:
        return timezone.localdate()
    try:
        return parse_day(value)
    except ValueError as exc:
        messages.warning(request, _("%(error)s Showing today.") % {"error": exc})
        return timezone.localdate()


def dashboard_view(model_admin, request):
    if not model_admin.has_view_or_change_permission(request):
        raise PermissionDenied
    today = _as_of(request)
    figures = reports.dashboard(today)
    locale = babel_locale(getattr(request, "LANGUAGE_CODE", None) or get_language())

    def money(rows):
        return [format_money(row["amount"], row["currency"], locale) for row in rows]

    aging = [
        {**bucket, "amounts": money(bucket["currencies"])} for bucket in figures["aging"]
    ]
    steps = [{**step, "percent": _percent(step["rate"])} for step in figures["steps"]]
    recovery = [
        {**window, "percent": _percent(window["rate"]),
         "recovered": money(figures["recovered"].get(days, []))}
        for days, window in figures["recovery"].items()
    ]
    promises = {**figures["promises"], "percent": _percent(figures["promises"]["rate"])}
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": _("Collections dashboard"),
        "today": today,
        "open_count": figures["open"]["count"],
        "open_amounts": money(figures["open"]["amounts"]),
        "recovery": recovery,
        "days_to_collect": figures["days_to_collect"],
        # Rates out of 100 %, so that a window's bar shows its rate, not its rank.
        "recovery_chart": _bars(
            [(_("last %(days)s days") % {"days": w["days"]}, w["rate"] or 0, w["percent"])
             for w in recovery],
            largest=1,
        ),
        "promises": promises,
        "promises_chart": _bars([
            (_("Kept"), promises["kept"], str(promises["kept"]), KEPT_FILL),
            (_("Broken"), promises["broken"], str(promises["broken"]), BROKEN_FILL),
            (_("Pending"), promises["pending"], str(promises["pending"]), PENDING_FILL),
        ]),
        "late_reasons": figures["late_reasons"],
        # None: no step recorded an A/B variant, and the page shows no table for them.
        "variants": None if figures["variants"] is None else _variant_rows(figures["variants"]),
        "variants_until": figures["variants_until"],
        "recovery_days": reports.variants.RECOVERY_DAYS,
        "aging": aging,
        "aging_chart": _bars([(b["bucket"], b["count"], str(b["count"])) for b in aging]),
        "steps": steps,
        "steps_chart": _bars(
            [(s["step_key"], s["rate"] or 0, s["percent"]) for s in steps]
        ),
        "within_days": reports.EFFECTIVE_WITHIN_DAYS,
        "steps_from": figures["steps_window"][0],
        "steps_until": figures["steps_window"][1],
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "dunning/admin/dashboard.html", context)
