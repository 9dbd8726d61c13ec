from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("anymail/", include("dunning.tracking.urls")),
    path("dunning/", include("dunning.urls")),
]
