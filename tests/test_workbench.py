"""The collections workbench in the admin: the actions on the case changelist, their
timeline events with the acting user, their effect on the run, the write-off permission
and the 'Collections' group command."""

import datetime
import html
from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from dunning import signals
from dunning.models import Case, CaseEvent, CaseStep

CHANGELIST_URL = "/admin/dunning/case/"


def change_url(case):
    return f"/admin/dunning/case/{case.pk}/change/"


def page(response):
    return html.unescape(response.content.decode())


def act(client, action, cases, **data):
    """POST an action from the changelist; ``data`` are the intermediate page's fields."""
    payload = {"action": action, "_selected_action": [c.pk for c in cases], **data}
    if data:
        payload["apply"] = "yes"
    return client.post(CHANGELIST_URL, payload, follow=True)


def action_names(response):
    return [value for value, _ in response.context["action_form"].fields["action"].choices]


def events(case, kind):
    return list(CaseEvent.objects.filter(case=case, kind=kind))


@pytest.fixture
def written_off(db):
    fired = []

    def receiver(sender, **kwargs):
        fired.append(kwargs)

    signals.case_written_off.connect(receiver)
    yield fired
    signals.case_written_off.disconnect(receiver)


# -- the actions ----------------------------------------------------------------------------
def test_assign_to_a_collector_via_the_intermediate_page(admin_client, boss, collector, case):
    response = act(admin_client, "assign", [case])
    assert "Assign cases to a collector" in page(response)
    assert "carla" in page(response)

    response = act(admin_client, "assign", [case], collector=collector.pk)

    case.refresh_from_db()
    assert case.assigned_to == collector
    [event] = events(case, "assigned")
    assert event.actor == boss
    assert event.data["user"] == collector.pk
    assert f"{case} assigned to carla." in page(response)


def test_assign_refuses_a_user_who_is_not_staff(admin_client, django_user_model, case):
    outsider = django_user_model.objects.create_user("outsider", password="pw")
    response = act(admin_client, "assign", [case], collector=outsider.pk)
    assert "Select a valid choice" in page(response)
    case.refresh_from_db()
    assert case.assigned_to is None
    assert not events(case, "assigned")


def test_add_a_note_to_several_cases(admin_client, boss, run, overdue_customer):
    overdue_customer(), overdue_customer()
    run(1)
    cases = list(Case.objects.all())

    response = act(admin_client, "add_note", cases, text="Customer wrote to us.")

    for c in cases:
        [event] = events(c, "note")
        assert (event.message, event.actor) == ("Customer wrote to us.", boss)
        assert f"Note added to {c}." in page(response)


def test_an_empty_note_is_refused_on_the_page(admin_client, case):
    response = act(admin_client, "add_note", [case], text="")
    assert "This field is required" in page(response)
    assert not events(case, "note")


@pytest.mark.parametrize("outcome", ["reached", "no-answer", "promised", "refused"])
def test_log_a_call_with_its_outcome(admin_client, boss, case, outcome):
    act(admin_client, "log_call", [case], outcome=outcome, text="Spoke to the owner.")
    [event] = events(case, "call")
    assert event.data == {"outcome": outcome}
    assert (event.message, event.actor) == ("Spoke to the owner.", boss)


def test_a_paused_case_gets_nothing_until_resumed(admin_client, boss, case, run, mailoutbox):
    assert [m.tags for m in mailoutbox] and CaseStep.objects.filter(case=case).count() == 1

    act(admin_client, "pause", [case], reason="Disputed invoice", until="")
    case.refresh_from_db()
    assert case.paused_until == datetime.date(9999, 12, 31)
    assert case.pause_reason == "Disputed invoice"
    [event] = events(case, "paused")
    assert (event.message, event.actor, event.data["until"]) == ("Disputed invoice", boss, None)

    for n in (4, 8, 14, 30):
        run(n)
    assert CaseStep.objects.filter(case=case).count() == 1
    assert len(mailoutbox) == 1

    act(admin_client, "resume", [case])
    case.refresh_from_db()
    assert case.paused_until is None and case.pause_reason == ""
    assert events(case, "resumed")[0].actor == boss

    run(31)
    assert list(CaseStep.objects.filter(case=case).values_list("step_key", flat=True)) == [
        "initial-notice", "gentle-reminder",
    ]


def test_a_pause_with_an_end_date_ends_by_itself(admin_client, case, run, mailoutbox):
    until = datetime.date.today() + datetime.timedelta(days=30)
    act(admin_client, "pause", [case], reason="Holiday", until=until.isoformat())
    case.refresh_from_db()
    assert case.paused_until == until
    assert events(case, "paused")[0].data["until"] == until.isoformat()
    # (day(n) lies before the end of the pause when the test suite runs in 2026.)
    run(until - datetime.timedelta(days=1))
    assert CaseStep.objects.filter(case=case).count() == 1
    run(until)
    assert CaseStep.objects.filter(case=case).count() == 2


def test_a_pause_ending_in_the_past_is_refused(admin_client, case):
    response = act(admin_client, "pause", [case], reason="x", until="2000-01-01")
    assert "The end of a pause must lie in the future." in page(response)
    case.refresh_from_db()
    assert case.paused_until is None


def test_escalate_marks_the_case_for_a_person(admin_client, boss, case):
    response = act(admin_client, "escalate", [case])
    case.refresh_from_db()
    assert case.needs_person
    assert events(case, "escalated")[0].actor == boss
    assert f"{case} escalated to a person." in page(response)


def test_write_off_asks_for_confirmation_first(admin_client, case, written_off,
                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = act(admin_client, "write_off", [case])
    assert "Yes, write them off" in page(response)
    case.refresh_from_db()
    assert case.status == "open"
    assert written_off == []


def test_a_written_off_case_gets_nothing_more(admin_client, boss, case, run, mailoutbox,
                                              written_off, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = act(admin_client, "write_off", [case], reason="Insolvent")

    case.refresh_from_db()
    assert case.status == "written_off"
    assert case.closed_on == datetime.date.today()
    [event] = events(case, "written-off")
    assert (event.message, event.actor) == ("Insolvent", boss)
    assert f"{case} written off." in page(response)
    assert len(written_off) == 1
    assert written_off[0]["case"] == case
    assert written_off[0]["customer"] == case.customer

    for n in (4, 8, 14, 21, 30):
        run(n)
    assert CaseStep.objects.filter(case=case).count() == 1
    assert Case.objects.get(pk=case.pk).status == "written_off"
    assert len(written_off) == 1


def test_the_invoices_of_a_written_off_case_are_not_dunned_again(
    admin_client, case, run, mailoutbox
):
    act(admin_client, "write_off", [case], reason="Insolvent")
    sent = len(mailoutbox)
    run(4)
    assert Case.objects.filter(customer=case.customer).count() == 1
    assert len(mailoutbox) == sent


def test_actions_skip_cases_that_are_not_open(admin_client, case):
    Case.objects.filter(pk=case.pk).update(status="resolved")
    response = act(admin_client, "escalate", [case])
    case.refresh_from_db()
    assert not case.needs_person
    assert not events(case, "escalated")
    assert f"{Case.objects.get(pk=case.pk)} is not open; left unchanged." in page(response)


# -- permissions ------------------------------------------------------------------------------
def test_the_write_off_permission_matrix(admin_client, collector_client, case):
    assert "write_off" in action_names(admin_client.get(CHANGELIST_URL))

    names = action_names(collector_client.get(CHANGELIST_URL))
    assert {"assign", "add_note", "log_call", "pause", "resume", "escalate"} <= set(names)
    assert "write_off" not in names


def test_a_forged_write_off_post_by_a_collector_is_refused(collector_client, case, written_off,
                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        act(collector_client, "write_off", [case], reason="forged")
    case.refresh_from_db()
    assert case.status == "open"
    assert not events(case, "written-off")
    assert written_off == []


def test_a_collector_given_write_off_may_write_off(collector_client, collector, case):
    collector.user_permissions.add(Permission.objects.get(codename="write_off"))
    act(collector_client, "write_off", [case], reason="Approved by finance")
    case.refresh_from_db()
    assert case.status == "written_off"
    assert events(case, "written-off")[0].actor == collector


def test_a_collector_works_a_case(collector_client, collector, case):
    act(collector_client, "log_call", [case], outcome="promised", text="Pays Friday.")
    assert events(case, "call")[0].actor == collector


def test_staff_without_permissions_cannot_act(staff_client, case):
    assert staff_client.get(CHANGELIST_URL).status_code == 403
    response = staff_client.post(
        CHANGELIST_URL, {"action": "escalate", "_selected_action": [case.pk]}
    )
    assert response.status_code == 403
    case.refresh_from_db()
    assert not case.needs_person
    assert not CaseEvent.objects.filter(case=case, actor__isnull=False).exists()


def test_the_change_page_shows_the_timeline_with_the_actor(admin_client, case):
    act(admin_client, "add_note", [case], text="Left a voicemail.")
    text = page(admin_client.get(change_url(case)))
    assert "initial-notice" in text
    assert "Left a voicemail." in text
    assert "boss" in text


# -- the group command ------------------------------------------------------------------------
def test_the_collections_group_command_is_idempotent(db):
    out = StringIO()
    call_command("dunning", "collections-group", stdout=out)
    assert "Created the group 'Collections'" in out.getvalue()
    group = Group.objects.get(name="Collections")
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert codenames == {
        "view_case", "change_case", "send_by_hand", "view_caseevent", "view_casestep",
        "view_policy", "view_messagetemplate",
        # Letters to print, in-app notices, and the consent log (a choice made by phone).
        "view_letter", "print_letters", "view_notice", "view_consent", "add_consent",
    }
    assert "write_off" not in codenames

    group.permissions.remove(Permission.objects.get(codename="view_policy"))
    out = StringIO()
    call_command("dunning", "collections-group", stdout=out)
    assert "added view_policy" in out.getvalue()

    out = StringIO()
    call_command("dunning", "collections-group", stdout=out)
    assert "up to date" in out.getvalue()
    assert Group.objects.filter(name="Collections").count() == 1
    assert group.permissions.count() == 12
