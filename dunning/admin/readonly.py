"""Admins of rows that the engine, the webhooks or the workbench write: read-only."""


class ReadOnlyAdminMixin:
    """Log and timeline rows are written by the engine only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
