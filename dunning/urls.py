"""The URLconf of django-dunning: include it in the site's, e.g.
``path("dunning/", include("dunning.urls"))``; the REST API is then at
``/dunning/api/v1/`` (see docs/api.md)."""

from django.urls import include, path

from .notices import views as notices_views
from .payments.stripe_webhook import stripe_webhook
from .portal import views as portal_views
from .unsubscribe import views as unsubscribe_views

app_name = "dunning"

urlpatterns = [
    path("api/v1/", include("dunning.api.urls")),
    # The customer's self-service page (docs/portal.md); the token is signed, no login.
    path("portal/<str:token>/", portal_views.portal, name="portal"),
    # In-app notices (docs/inapp.md): the banner's dismiss button posts here.
    path("notices/<int:pk>/dismiss/", notices_views.dismiss, name="notice-dismiss"),
    # The unsubscribe link of every email (docs/unsubscribe.md): a page, or RFC 8058 one-click.
    path("unsubscribe/<str:token>/", unsubscribe_views.unsubscribe, name="unsubscribe"),
    # Stripe's webhook: pending bank debits settle here (docs/payments.md).
    path("payments/stripe/webhook/", stripe_webhook, name="stripe-webhook"),
]
