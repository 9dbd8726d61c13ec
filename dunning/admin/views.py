""""Who gets what tomorrow": the plan of a run as an admin page, with a "hold back"
button per case."""

import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from ..engine.plan import build_plan, default_plan_date
from ..exceptions import DunningError
from ..inputs import parse_day
from ..models import Case


def _plan_date(value):
    if not value:
        return default_plan_date(), ""
    try:
        return parse_day(value), ""
    except ValueError as exc:
        return default_plan_date(), _("%(error)s Showing tomorrow.") % {"error": exc}


def plan_view(model_admin, request):
    """GET: the plan of the run on ?as_of= (default: tomorrow)."""
    if not model_admin.has_view_or_change_permission(request):
        raise PermissionDenied
    as_of, date_error = _plan_date(request.GET.get("as_of"))
    if date_error:
        messages.warning(request, date_error)
    error, plan = "", None
    try:
        plan = build_plan(as_of)
    except DunningError as exc:
        error = str(exc)
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": _("Who gets what on %(date)s") % {"date": as_of.isoformat()},
        "as_of": as_of,
        "plan": plan,
        "error": error,
        "can_hold_back": model_admin.has_change_permission(request),
        "previous_day": (as_of - datetime.timedelta(days=1)).isoformat(),
        "next_day": (as_of + datetime.timedelta(days=1)).isoformat(),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "dunning/admin/plan.html", context)


def hold_back_view(model_admin, request, case_id):
    """POST: keep a case out of the run on ``as_of`` (paused until the day after)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    as_of, date_error = _plan_date(request.POST.get("as_of"))
    plan_url = reverse("admin:dunning_case_plan", current_app=model_admin.admin_site.name)
    if date_error:
        messages.error(request, date_error)
        return HttpResponseRedirect(plan_url)
    case = Case.objects.filter(pk=case_id, status=Case.Status.OPEN).first()
    if case is None:
        messages.error(request, _("There is no open case %(pk)s.") % {"pk": case_id})
    else:
        until = as_of + datetime.timedelta(days=1)
        if case.paused_until is None or case.paused_until < until:
            Case.objects.filter(pk=case.pk).update(paused_until=until)
        messages.success(
            request,
            _("%(case)s is held back: no step before %(date)s.")
            % {"case": case, "date": until.isoformat()},
        )
    url = f"{plan_url}?as_of={as_of.isoformat()}"
    next_url = request.POST.get("next")
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        url = next_url
    return HttpResponseRedirect(url)
