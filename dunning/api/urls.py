"""Routes of the API (included by dunning.urls under ``api/v1/``). Any other path under
the API answers a JSON 404 (``{"detail": ...}``), never Django's HTML page."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import notices, views

router = SimpleRouter()
router.register("cases", views.CaseViewSet, basename="case")
router.register("policies", views.PolicyViewSet, basename="policy")
router.register("steps", views.StepViewSet, basename="step")
router.register("templates", views.MessageTemplateViewSet, basename="template")
router.register("invoices", views.InvoiceViewSet, basename="invoice")
router.register("payment-events", views.PaymentEventViewSet, basename="payment-event")
router.register("reports", views.ReportViewSet, basename="report")
router.register("notices", notices.NoticeViewSet, basename="notice")  # docs/inapp.md

urlpatterns = [
    path("schema/", views.SchemaView.as_view(), name="api-schema"),
    path("docs/", views.DocsView.as_view(), name="api-docs"),
    *router.urls,
    # Last: what no route above matched. Only paths ending in "/", so that Django's
    # APPEND_SLASH still redirects "cases" to "cases/".
    re_path(r"^.*/$", views.not_found),
]
