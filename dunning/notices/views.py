"""The customer's side of in-app notices (docs/inapp.md): who the customer of a request
is, and the view that dismisses a notice (``dunning:notice-dismiss``)."""

from __future__ import annotations

from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from ..channels.inapp import setting
from ..models.notices import _customer_pk


def customer_for_request(request):
    """The pk of the customer whose notices ``request`` may dismiss, or None: what
    ``DUNNING["INAPP_CUSTOMER_FOR_REQUEST"]`` (a callable or its dotted path, f(request)
    -> a customer instance, its pk or None) answers; None when it is not set."""
    finder = setting("INAPP_CUSTOMER_FOR_REQUEST")
    if not finder:
        return None
    return _customer_pk(finder(request))


def customer_of_user(request):
    """For ``INAPP_CUSTOMER_FOR_REQUEST`` when the customer model has a ``user`` field
    (a ForeignKey or OneToOneField to the user model): the logged-in user's customer."""
    from ..hosts import get_customer_model

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return (get_customer_model()._default_manager.filter(user=user)
            .values_list("pk", flat=True).order_by("pk").first())


def _next_url(request):
    for candidate in (request.POST.get("next"), request.META.get("HTTP_REFERER")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
    return "/"


@never_cache
@csrf_protect
@require_POST
def dismiss(request, pk):
    """Dismiss notice ``pk`` of the request's customer (POST with a CSRF token), then go
    back to ``next`` (or the page the request came from). Anyone else's notice, and every
    notice when the site does not say who the customer is, is "not found" (404)."""
    from ..models import Notice

    customer_pk = customer_for_request(request)
    if customer_pk is None:
        raise Http404("No customer for this request.")
    notice = get_object_or_404(Notice, pk=pk, customer_id=customer_pk)
    if notice.dismissed_at is None:
        Notice.objects.filter(pk=notice.pk, dismissed_at__isnull=True).update(
            dismissed_at=timezone.now()
        )
    return HttpResponseRedirect(_next_url(request))
