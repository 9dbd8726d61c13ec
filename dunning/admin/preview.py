"""The preview of a message template in the admin: rendered for a sample customer or a
real one (both bodies; the HTML in a sandboxed iframe), and a "send me a test" button
that mails it to the staff user's own address."""

import datetime

from django.contrib import messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..channels.base import Outgoing
from ..channels.base import step_info as base_step_info
from ..conf import dunning_settings, load_plugin
from ..engine.run import invoice_snapshot
from ..exceptions import RenderLimitError
from ..failures import describe
from ..formatting import babel_locale
from ..hosts import CustomerRow, get_adapter
from ..messages.history import customer_history, months_between
from ..messages.rendering import Renderer, build_context, company_context
from ..models import Case, Step

TEST_PREFIX = "[TEST] "


def sample_customer(template):
    return CustomerRow(
        pk="sample", name=_("Sample Customer Ltd"), email="customer@example.com",
        language=template.language,
    )


def sample_invoices(today):
    return [
        {"number": "INV-1001", "amount_due": "120.00", "currency": "EUR",
         "due_date": (today - datetime.timedelta(days=14)).isoformat()},
        {"number": "INV-1002", "amount_due": "80.50", "currency": "EUR",
         "due_date": (today - datetime.timedelta(days=5)).isoformat()},
    ]


def sample_history(today):
    """A loyal customer late for the first time (customer_history's shape)."""
    since = datetime.date(today.year - 3, today.month, 1)
    return {"months_as_customer": months_between(since, today), "customer_since": since,
            "on_time_rate": 96, "invoices_paid": 35, "past_cases": 0, "first_time_late": 1}


def real_history(customer, today):
    """The previewed customer's history (dunning.history), as the run would see it."""
    return customer_history([customer.pk], as_of=today).get(customer.pk)


def real_customer(pk, today):
    """(CustomerRow, invoice snapshot) of host customer ``pk``, or (None, reason)."""
    adapter = get_adapter()
    try:
        rows = adapter.customer_rows([pk])
        customer = rows.get(pk)
        if customer is None:
            # The pk from the query string is text; the rows are keyed by the host's type.
            customer = next((row for key, row in rows.items() if str(key) == str(pk)), None)
        if customer is None:
            return None, _("There is no customer with the id '%(pk)s'.") % {"pk": pk}
        invoices = adapter.invoice_rows(
            adapter.overdue_invoices(today).filter(**{adapter.customer_annotation: customer.pk})
        )
    except (ValueError, TypeError, LookupError) as exc:
        return None, _("There is no customer with the id '%(pk)s' (%(error)s).") % {
            "pk": pk, "error": exc,
        }
    return customer, invoice_snapshot(invoices)


def step_info(template):
    step = Step.objects.filter(policy_id=template.policy_id, key=template.step_key).first()
    return base_step_info(step, template.step_key)


#: What stands in a preview for the customer's signed links: a visible placeholder in
#: place of the token, which no page accepts (a preview must never hand whoever may view
#: templates a working link to a customer's self-service page or opt-out).
PLACEHOLDER_TOKEN = "PREVIEW-NOT-A-WORKING-LINK"


def placeholder_links(step):
    """The ``portal_url`` and ``unsubscribe_url`` of a preview: where the real message has
    a link (PORTAL_BASE_URL set; an unsubscribe link but on a required notice), one that
    reads as a placeholder and carries no token."""
    base = dunning_settings.PORTAL_BASE_URL
    if not base:
        return "", ""
    if not base.endswith("/"):
        base += "/"
    unsubscribe = "" if step.get("required") else f"{base}unsubscribe/{PLACEHOLDER_TOKEN}/"
    return f"{base}portal/{PLACEHOLDER_TOKEN}/", unsubscribe


def render_preview(template, customer_pk):
    """A dict with the customer, the invoices and the rendered message (or the error).
    The customer's links are placeholders (:func:`placeholder_links`), never real ones."""
    today = timezone.localdate()
    result = {"customer": None, "invoices": [], "subject": "", "text": "", "html": None,
              "error": ""}
    if customer_pk:
        customer, invoices = real_customer(customer_pk, today)
        if customer is None:
            result["error"] = invoices
            return result
    else:
        customer, invoices = sample_customer(template), sample_invoices(today)
    result["customer"], result["invoices"] = customer, invoices
    step = step_info(template)
    portal_url, unsubscribe_url = placeholder_links(step)
    try:
        context = build_context(
            customer=customer,
            invoices=invoices,
            step=step,
            portal_url=portal_url,
            unsubscribe_url=unsubscribe_url,
            as_of=today,
            # Amounts and dates in the template's language: an English template previewed
            # for a German customer reads as the English customers get it.
            locale=babel_locale(template.language or customer.language),
            company=company_context(),
            history=real_history(customer, today) if customer_pk else sample_history(today),
        )
        result["subject"], result["text"], result["html"] = Renderer().render(template, context)
    except RenderLimitError as exc:  # over a limit: the reason a run would record
        result["error"] = _("The template cannot be rendered: %(error)s") % {"error": exc}
    except Exception as exc:  # a template may fail in any way; staff see why
        result["error"] = _("The template cannot be rendered: %(error)s") % {
            "error": describe(exc, None)
        }
    return result


def preview_url(model_admin, template, customer_pk=""):
    url = reverse(
        f"admin:{template._meta.app_label}_{template._meta.model_name}_preview",
        args=[template.pk], current_app=model_admin.admin_site.name,
    )
    return f"{url}?{urlencode({'customer': customer_pk})}" if customer_pk else url


def send_test(model_admin, request, template, customer_pk):
    """Mail the rendered message to the staff user's own address; record nothing."""
    address = (getattr(request.user, "email", "") or "").strip()
    if not address:
        messages.error(request, _("Your user has no email address; add one to receive a test."))
        return
    rendered = render_preview(template, customer_pk)
    if rendered["error"]:
        messages.error(request, rendered["error"])
        return
    channel = load_plugin("EMAIL_CHANNEL")
    try:
        message = channel.build(Outgoing(
            case_id="test", customer_id=rendered["customer"].pk, step_key=template.step_key,
            recipient=address, subject=TEST_PREFIX + rendered["subject"],
            text=rendered["text"], html=rendered["html"],
        ))
        outcome = channel.send([message])[0]
    except Exception as exc:
        messages.error(request, _("The test could not be sent: %(error)s") % {
            "error": describe(exc, None)
        })
        return
    if outcome.ok:
        messages.success(request, _("A test was sent to %(address)s.") % {"address": address})
    else:
        messages.error(request, _("The test could not be sent: %(error)s") % {
            "error": outcome.reason
        })


REAL_DATA_REFUSED = gettext_lazy(
    "Previewing a template with a real customer's data needs the permission to view cases; "
    "you may preview it with the sample customer.")


def can_view_customers(user):
    """Whether ``user`` may preview with a real customer's data: the permission to view
    (or change) cases, whose data it is."""
    opts = Case._meta
    return any(user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
               for action in ("view", "change"))


def preview_view(model_admin, request, object_id):
    """GET: the template rendered for a sample customer or ?customer=<pk>.
    POST: "send me a test" (needs the change permission)."""
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    template = model_admin.get_object(request, object_id)
    if template is None:
        raise Http404(_("There is no message template with this id."))
    if not model_admin.has_view_or_change_permission(request, template):
        raise PermissionDenied
    can_send = model_admin.has_change_permission(request, template)
    may_see_customers = can_view_customers(request.user)
    if request.method == "POST":
        if not can_send:
            raise PermissionDenied
        customer_pk = request.POST.get("customer", "").strip()
        if customer_pk and not may_see_customers:
            raise PermissionDenied(REAL_DATA_REFUSED)
        send_test(model_admin, request, template, customer_pk)
        return HttpResponseRedirect(preview_url(model_admin, template, customer_pk))
    customer_pk = request.GET.get("customer", "").strip()
    status = 200
    if customer_pk and not may_see_customers:
        # Sample data only: a customer's name, address and invoices are the cases' data.
        rendered = {"customer": None, "invoices": [], "subject": "", "text": "", "html": None,
                    "error": str(REAL_DATA_REFUSED)}
        status = 403
    else:
        rendered = render_preview(template, customer_pk)
    if rendered["error"]:
        messages.error(request, rendered["error"])
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "original": template,
        "title": _("Preview of %(template)s") % {"template": template},
        "customer_pk": customer_pk,
        "is_sample": not customer_pk,
        "preview": rendered,
        "can_send": can_send,
        "may_see_customers": may_see_customers,
        "user_email": getattr(request.user, "email", "") or "",
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "dunning/admin/preview.html", context, status=status)
