from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("anymail/", include("dunning.anymail_urls")),
    path("dunning/", include("dunning.urls")),
]
