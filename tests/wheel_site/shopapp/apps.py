from django.apps import AppConfig


class ShopappConfig(AppConfig):
    name = "shopapp"
    default_auto_field = "django.db.models.BigAutoField"
