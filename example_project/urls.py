from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # ESP webhooks (delivery tracking): /anymail/<esp>/tracking/, e.g. /anymail/mailgun/tracking/
    path("anymail/", include("dunning.tracking.urls")),
    # The REST API: /dunning/api/v1/ (docs at /dunning/api/v1/docs/; see docs/api.md)
    path("dunning/", include("dunning.urls")),
]
