"""Who may do what in the API: the admin's rules.

Every endpoint needs an active staff user (as the admin does). On top of that:

* cases: reading needs ``dunning.view_case`` (or ``change_case``); each action needs the
  permission of the same admin action: ``change_case``, ``write_off`` to write off,
  ``send_by_hand`` to send the next step now;
* policies, steps and templates: reading needs nothing more; writing needs
  ``dunning.edit_policy`` (the one switch of the admin, see dunning/admin/policy.py);
* reports: ``view_case`` (as the admin's dashboard);
* invoices in: add and change of the shipped Invoice and Customer models;
* payment events: ``change_case`` (and ``change_invoice`` when the event marks a shipped
  invoice paid).

With ``DUNNING["API_COLLECTORS_SEE_ASSIGNED_ONLY"]``, a collector sees only the cases
assigned to them: the others are left out of every queryset, so that asking for one by
its id gives 404, exactly as for an id that does not exist.
"""

from django.contrib.auth.models import Group
from rest_framework.permissions import SAFE_METHODS, BasePermission

from ..conf import dunning_settings

EDIT_POLICY = "dunning.edit_policy"
VIEW_CASE = "dunning.view_case"
CHANGE_CASE = "dunning.change_case"
WRITE_OFF = "dunning.write_off"
SEND_BY_HAND = "dunning.send_by_hand"


def is_staff(user):
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def can_view_cases(user):
    return user.has_perm(VIEW_CASE) or user.has_perm(CHANGE_CASE)


def sees_assigned_only(user):
    """True when ``user`` may see only the cases assigned to them (see the module)."""
    if not dunning_settings.API_COLLECTORS_SEE_ASSIGNED_ONLY or user.is_superuser:
        return False
    name = dunning_settings.API_COLLECTORS_GROUP
    cache = "_dunning_collector"
    if not hasattr(user, cache):
        setattr(user, cache, Group.objects.filter(name=name, user=user).exists())
    return getattr(user, cache)


class IsStaff(BasePermission):
    """An active staff user (the admin's gate)."""

    def has_permission(self, request, view):
        return is_staff(request.user)


class ActionPermissions(IsStaff):
    """Staff, and every permission the view names for its action in
    ``action_permissions`` (``{action: [perm, ...]}``; ``"view"`` means view or change
    of cases). An action the view does not name needs nothing more."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        needed = view.action_permissions.get(getattr(view, "action", None), ())
        user = request.user
        for perm in needed:
            if perm == "view":
                if not can_view_cases(user):
                    return False
            elif not user.has_perm(perm):
                return False
        return True


class EditPolicyOrReadOnly(IsStaff):
    """Policies, steps and templates: read for staff, write with ``edit_policy``."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        return request.method in SAFE_METHODS or request.user.has_perm(EDIT_POLICY)
