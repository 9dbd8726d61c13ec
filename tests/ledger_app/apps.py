from django.apps import AppConfig


class LedgerAppConfig(AppConfig):
    name = "tests.ledger_app"
    label = "ledger_app"
    default_auto_field = "django.db.models.AutoField"
