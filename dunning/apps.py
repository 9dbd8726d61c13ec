from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DunningConfig(AppConfig):
    name = "dunning"
    verbose_name = _("Dunning")
    # Pinned so that a host's DEFAULT_AUTO_FIELD never creates migrations in this app.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers the system checks and the signal receivers; touches no database.
        from . import checks, receivers  # noqa: F401

        # Which foreign keys point at which swappable model, while the settings are the
        # ones the models were bound with (dunning.E091 compares them with the database).
        checks.swappable_foreign_keys()
