from django.apps import AppConfig


class HostAppConfig(AppConfig):
    name = "tests.host_app"
    label = "host_app"
    default_auto_field = "django.db.models.AutoField"
