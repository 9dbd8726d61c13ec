"""The customer's self-service page: GET shows it (and changes nothing, since mail
scanners open every link); every action is a POST with a CSRF token, answered by a
redirect back to the page."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone, translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from ..engine.actions import CaseActionRefused
from ..formatting import babel_locale, format_day, format_money
from . import forms, resend, services, stamps
from .tokens import InvalidToken, read_token

ACTIONS = {
    "promise": forms.PromiseForm,
    "plan": forms.PlanForm,
    "dispute": forms.DisputeForm,
    "feedback": forms.FeedbackForm,
    "channels": forms.ChannelsForm,
    "updater": forms.UpdaterForm,
    "pay": forms.PayForm,
}
# Actions a customer may take without an open case (how they want to be contacted).
WITHOUT_CASE = {"channels", "updater", "pay"}


def make_form(action, data=None, initial=None, portfolio=None):
    if action == "channels":
        return forms.ChannelsForm(data, initial=initial, channels=services.portal_channels())
    if action == "pay":
        return forms.PayForm(data, initial=initial, methods=services.stored_methods(portfolio))
    return ACTIONS[action](data, initial=initial)


def updater_offered():
    from ..payments import get_backend

    backend = get_backend()
    return bool(backend is not None and getattr(backend, "supports_account_updater", False))


def page_language(request, customer):
    supported = {code for code, _name in settings.LANGUAGES}
    for code in ((customer.language or "").replace("_", "-").lower(),
                 (customer.language or "").split("-")[0].split("_")[0].lower()):
        if code in supported:
            return code
    return translation.get_language_from_request(request)


@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def portal(request, token):
    try:
        access = read_token(token)
    except InvalidToken:
        return broken_link(request, token)
    portfolio = services.load_portfolio(access)
    if portfolio is None:
        return broken_link(request, token)
    language = page_language(request, portfolio.customer)
    with translation.override(language):
        response = handle(request, token, portfolio, language)
        if isinstance(response, TemplateResponse):
            response.render()
    add_never_cache_headers(response)
    # The token must not leak to other sites (the pay link); "no-referrer" would make the
    # browser send "Origin: null" with the page's own forms, which CSRF refuses.
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex"
    return response


def broken_link(request, token):
    """The page of a link that does not work (tampered, expired, revoked, or its customer
    is gone), the same for all of them (status 404), with a button that emails a fresh
    link to the address on file. Its answer is the same whether or not one went out."""
    sent = False
    if request.method == "POST":
        if request.POST.get("action") != "resend":
            raise Http404("unknown action")
        resend.resend(request, token)
        sent = True
    response = TemplateResponse(request, "dunning/portal/broken_link.html", {
        "language": translation.get_language(), "sent": sent,
    }, status=200 if sent else 404)
    response.render()
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex"
    return response


CLOSED = gettext_lazy("Your account has no open reminder case any more, so nothing was "
                      "changed. Please contact us if you have questions.")

#: Why a form from the page was not carried out although its fields were fine.
EXPIRED = gettext_lazy("This form did not come from your current page, so nothing was "
                       "changed. Please check the details below and send it again.")
STALE = {
    "promise": gettext_lazy("A newer promise to pay was made since you opened this page, so "
                            "this one was not saved. Please check the page and send the "
                            "form again if you want to change it."),
    "plan": gettext_lazy("Your payment plan changed since you opened this page, so nothing "
                         "was changed. Please check the page and send the form again."),
    "channels": gettext_lazy("Your contact preferences changed since you opened this page "
                             "(for example through a link in one of our messages), so they "
                             "were not saved. Please check them below and save them again."),
    "updater": gettext_lazy("Your answer changed since you opened this page, so it was not "
                            "saved. Please check it below and save it again."),
    "pay": gettext_lazy("The amount to pay changed since you opened this page, so no payment "
                        "was made. Please check the amount below and pay again."),
}


def handle(request, token, portfolio, language):
    forms_by_action = {}
    error = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action not in ACTIONS:
            raise Http404("unknown action")
        if action == "updater" and not updater_offered():
            raise Http404("no account updater")
        done = HttpResponseRedirect(f"{request.path}?done={action}#top")
        stamp = stamps.read(request.POST.get("stamp", ""), action, portfolio)
        if stamp is not None and stamps.seen(portfolio, stamp):
            return done  # a replay: it was carried out already, nothing changes
        form = make_form(action, request.POST, portfolio=portfolio)
        if action == "dispute" and request.POST.get("invoice") and portfolio.invoice(
            request.POST["invoice"]
        ) is None:
            raise Http404("not this customer's invoice")  # another customer's invoice
        if portfolio.case is None and action not in WITHOUT_CASE:
            error = "closed"
        elif not form.is_valid():
            pass
        elif stamp is None:
            form.add_error(None, EXPIRED)
        elif stamp.state != stamps.current_state(action, portfolio):
            form.add_error(None, STALE.get(action, EXPIRED))
        elif not stamps.claim(portfolio, stamp):
            return done  # the same form at the same moment: the other request carries it out
        else:
            try:
                perform(action, form.cleaned_data, portfolio)
            except ValidationError as exc:
                stamps.release(portfolio, stamp)
                form.add_error(None, exc)
            except CaseActionRefused:
                stamps.release(portfolio, stamp)
                error = "closed"
            except BaseException:
                stamps.release(portfolio, stamp)
                raise
            else:
                return done
        forms_by_action[action] = form
    return TemplateResponse(
        request, "dunning/portal/page.html",
        page_context(request, token, portfolio, language, forms_by_action, error),
        status=400 if request.method == "POST" else 200,
    )


def perform(action, data, portfolio):
    case = portfolio.case
    if action == "promise":
        services.promise(case, data["date"], data["amount"], portfolio=portfolio)
    elif action == "plan":
        services.request_plan(portfolio, data["instalments"], data["first"])
    elif action == "dispute":
        services.dispute(case, data["invoice"], data["reason"])
    elif action == "feedback":
        services.give_feedback(case, data["reason"], data["text"])
    elif action == "channels":
        services.set_channels(portfolio, {c for c in services.portal_channels() if data.get(c)})
    elif action == "updater":
        services.set_updater_consent(portfolio, data["answer"] == "yes")
    elif action == "pay":
        services.pay_now(portfolio, data["method"])


def pay_form(bound, portfolio):
    """The "pay with a stored method" form: the posted one, or a new one when the backend
    knows stored methods of the customer (asked once per page)."""
    if "pay" in bound:
        return bound["pay"]
    methods = services.stored_methods(portfolio)
    return forms.PayForm(methods=methods) if methods else None


def page_context(request, token, portfolio, language, bound, error):
    locale = babel_locale(language)
    today = timezone.localdate()
    totals = portfolio.totals()
    case = portfolio.case
    initial_amount = next(iter(totals.values())) if len(totals) == 1 else None
    prefs = services.preferences(portfolio.customer.pk)
    disputed = set()
    plan = None
    if case is not None:
        disputed = set(case.disputes.filter(resolved_at__isnull=True)
                       .values_list("invoice_number", flat=True))
        plan = case.payment_plans.exclude(status="declined").first()
    context = {
        "language": language,
        "customer": portfolio.customer,
        "case": case,
        "invoices": [
            {"number": i.number, "amount": format_money(i.amount_due, i.currency, locale),
             "due_date": format_day(i.due_date, locale), "days_overdue": (today - i.due_date).days,
             "disputed": i.number in disputed}
            for i in portfolio.invoices
        ],
        "totals": [format_money(t, c, locale) for c, t in totals.items()],
        "pay_url": services.host_url("PORTAL_PAY_URL", "payment_url", portfolio, token),
        "update_payment_url": services.host_url(
            "PORTAL_UPDATE_PAYMENT_URL", "update_payment_url", portfolio, token
        ),
        "promise_form": bound.get("promise") or forms.PromiseForm(
            initial={"amount": initial_amount}
        ),
        # Too many broken promises: the form gives way to an explanation.
        "promise_refused": services.promise_refused(case, today),
        "plan_form": bound.get("plan") or forms.PlanForm(),
        "dispute_form": bound.get("dispute") or forms.DisputeForm(),
        "feedback_form": bound.get("feedback") or forms.FeedbackForm(),
        "channels_form": bound.get("channels") or make_form("channels",
                                                            initial=prefs["channels"]),
        "updater_form": (bound.get("updater") or make_form(
            "updater", initial={"answer": {True: "yes", False: "no"}.get(prefs["updater"])}))
        if updater_offered() else None,
        "updater_answer": prefs["updater"],
        "pay_form": pay_form(bound, portfolio),
        "pay_amount": services.pay_amount(portfolio, locale),
        "today": today.isoformat(),
        "latest": services.latest_date(today).isoformat(),
        "promised_on": format_day(case.promised_on, locale) if case and case.promised_on else "",
        "plan": plan,
        "plan_instalments": [
            {"due": format_day(datetime.date.fromisoformat(i["due"]), locale),
             "amount": " + ".join(format_money(Decimal(a), c, locale)
                                  for c, a in sorted(i["amounts"].items()))}
            for i in (plan.instalments if plan else [])
        ],
        "done": request.GET.get("done", "") if request.method == "GET" else "",
        "error": error,
        "error_summary": error_summary(bound, error),
    }
    context["stamps"] = form_stamps(portfolio, context)
    return context


#: The heading of each form's section on the page (where a form-wide error points).
SECTIONS = {action: f"{action}-h" for action in ACTIONS}


def error_summary(bound, error):
    """[{"text", "href"}] of every error of the posted form (and the page's own), for the
    summary at the top of the page that takes the focus: on a phone the form may be far
    below, and the customer must see at once why nothing happened."""
    entries = []
    if error == "closed":
        entries.append({"text": CLOSED, "href": "#top"})
    for action, form in bound.items():
        for message in form.non_field_errors():
            entries.append({"text": message, "href": f"#{SECTIONS[action]}"})
        for name, errors in form.errors.items():
            if name == NON_FIELD_ERRORS or name not in form.fields:
                continue
            field = form[name]
            target = field.id_for_label or field.auto_id or SECTIONS[action]
            for message in errors:
                entries.append({"text": f"{field.label}: {message}", "href": f"#{target}"})
    return entries


def form_stamps(portfolio, context):
    """{action: stamp} of the forms the page shows (dunning.portal.stamps)."""
    shown = ["channels"]
    if context["case"] is not None:
        shown += ["promise", "plan", "dispute", "feedback"]
    if context["updater_form"] is not None:
        shown.append("updater")
    if context["pay_form"] is not None:
        shown.append("pay")
    return {action: stamps.make(action, portfolio) for action in shown}
