"""The case page: one timeline of everything that happened to a case, and the workbench
actions as buttons.

The timeline merges, by time, the executed steps (each message with its delivery outcome
and the ESP's tracking events), the case events (actions, signals, errors, notes, calls,
promises, pauses; who did it) and the disputes. It is read-only: the past is not edited.

Each button posts to ``<case>/act/<action>/``, which runs the same admin action as the case
list with this one case selected (same permissions: an action the user may not use is not
shown, and a forged POST is refused). An action that asks for input shows its page, which
posts back to the same URL; when it is done, the user is back on the case page.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse

from ..queries.timeline import timeline  # noqa: F401 (the case page's context)


def buttons(model_admin, request, case):
    """The actions this user may use on this case: ``[(name, label, needs_input)]``."""
    if not case.is_open:
        return []
    result = []
    for name, (_func, _name, description) in model_admin.get_actions(request).items():
        if name in CASE_PAGE_SKIP:
            continue
        result.append((name, description, name in ASKS_FIRST))
    return result


#: Case-list actions that make no sense for one open case on its own page.
CASE_PAGE_SKIP = {"delete_selected", "export_cases_csv", "export_admin_action"}
#: Actions that show a page asking for input before anything happens.
ASKS_FIRST = {"assign", "add_note", "log_call", "pause", "write_off", "record_promise",
              "open_dispute", "resolve_disputes"}


def act_view(model_admin, request, case_id, action):
    """POST: run ``action`` on one case (see the module docstring)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    case = model_admin.get_object(request, str(case_id))
    if case is None:
        raise Http404
    if not model_admin.has_change_permission(request, case):
        raise PermissionDenied
    actions = model_admin.get_actions(request)
    if action not in actions or action in CASE_PAGE_SKIP:
        # Not offered to this user (no permission): refused, as a forged POST is.
        raise PermissionDenied
    func = actions[action][0]
    queryset = model_admin.get_queryset(request).filter(pk=case.pk)
    response = func(model_admin, request, queryset)
    if response is not None:
        return response
    url = reverse(
        f"admin:{case._meta.app_label}_{case._meta.model_name}_change",
        args=[case.pk], current_app=model_admin.admin_site.name,
    )
    return HttpResponseRedirect(url)
