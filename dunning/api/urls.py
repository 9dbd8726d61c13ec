"""Routes of the API (included by dunning.urls under ``api/v1/``)."""

from django.urls import path
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
]
