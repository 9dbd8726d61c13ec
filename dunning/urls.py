"""The URLconf of django-dunning: include it in the site's, e.g.
``path("dunning/", include("dunning.urls"))``; the REST API is then at
``/dunning/api/v1/`` (see docs/api.md)."""

from django.urls import include, path

app_name = "dunning"

urlpatterns = [
    path("api/v1/", include("dunning.api.urls")),
]
