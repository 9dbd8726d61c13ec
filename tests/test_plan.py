""""Who gets what tomorrow": ``manage.py dunning plan`` and its admin page with the
"hold back" button. Planning reads only: nothing is written, sent or signalled."""

import datetime
import html
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from dunning import signals
from dunning.models import Case, CaseEvent, CaseStep, Invoice, Run
from dunning.testing import create_customer, create_invoice
from tests.conftest import day

PLAN_URL = "/admin/dunning/case/tomorrow/"


def hold_back_url(case):
    return f"/admin/dunning/case/{case.pk}/hold-back/"


def plan(*args):
    out, err = StringIO(), StringIO()
    call_command("dunning", "plan", *args, stdout=out, stderr=err, no_color=True)
    return out.getvalue(), err.getvalue()


def blocks(output):
    """The blocks of the plan output as dicts (field -> value)."""
    result = []
    for chunk in output.split("\n\n")[1:]:
        fields = {}
        for line in chunk.splitlines():
            name, sep, value = line.partition(":")
            if sep and not line.startswith(" "):
                fields[name.strip()] = value.strip()
        result.append(fields)
    return result


def counts():
    return {model.__name__: model.objects.count() for model in (Case, CaseStep, CaseEvent, Run)}


@pytest.fixture
def fired():
    calls = []
    names = ("service_suspended", "service_restored", "account_terminated", "case_resolved")

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    for name in names:
        getattr(signals, name).connect(receiver, weak=False, dispatch_uid=f"test-plan-{name}")
    yield calls
    for name in names:
        getattr(signals, name).disconnect(dispatch_uid=f"test-plan-{name}")


@pytest.fixture
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client(client, django_user_model, fast_passwords):
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


def staff(django_user_model, *codenames):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_plan_prints_one_block_per_message_and_changes_nothing(
    run, overdue_customer, mailoutbox, fired
):
    ada = overdue_customer(name="Ada", email="ada@example.com")
    overdue_customer(name="", email="bob@example.com", amount="20.00", due=day(3))
    overdue_customer(name="Noah", email="", amount="30.00")
    run(1)
    mailoutbox.clear()
    Invoice.objects.filter(customer=ada).update(amount_due=0)  # Ada has paid
    overdue_customer(name="Cleo", email="cleo@example.com", amount="40.00", due=day(2))
    before = counts()
    fired.clear()

    out, err = plan("--as-of", day(4).isoformat())

    assert counts() == before
    assert mailoutbox == []
    assert fired == []
    assert out.splitlines()[0] == f"Plan for {day(4).isoformat()}: 4 message(s)"
    by_customer = {b["customer"]: b for b in blocks(out)}
    assert set(by_customer) == {"Ada", "bob@example.com", "Noah", "Cleo"}
    assert by_customer["Ada"] == {
        "customer": "Ada", "step": "payment-received", "channel": "email",
        "recipient": "ada@example.com", "subject": "Thank you for your payment",
    }
    assert by_customer["bob@example.com"]["step"] == "initial-notice"  # the case opens
    assert by_customer["bob@example.com"]["subject"] == "Payment reminder: €20.00 is overdue"
    assert by_customer["Cleo"]["step"] == "initial-notice"
    assert by_customer["Noah"]["step"] == "gentle-reminder"
    assert by_customer["Noah"]["recipient"] == "-"
    assert by_customer["Noah"]["problem"] == "no email address"
    assert "subject" not in by_customer["Noah"]
    assert "Dear" not in out  # bodies only with -v 2


def test_plan_matches_what_the_run_then_sends(run, overdue_customer, mailoutbox):
    overdue_customer(name="Ada", email="ada@example.com", language="de")
    overdue_customer(name="Bob", email="bob@example.com", amount="12.50", currency="USD")
    run(1)
    run(4)
    mailoutbox.clear()
    planned = {(b["recipient"], b["subject"]) for b in blocks(plan("--as-of", day(8).isoformat())[0])}
    run(8)
    sent = {(m.to[0], m.subject) for m in mailoutbox}
    assert planned == sent
    assert len(sent) == 2


def test_verbosity_2_adds_the_plain_text_body(run, overdue_customer):
    ada = overdue_customer(name="Ada", email="ada@example.com", amount="99.00")
    number = Invoice.objects.get(customer=ada).number
    out, _ = plan("--as-of", day(1).isoformat(), "-v", "2")
    assert "    Dear Ada," in out
    assert f"    - {number}: €99.00, due Mar 2, 2026" in out
    quiet, _ = plan("--as-of", day(1).isoformat())
    assert "Dear Ada" not in quiet


def test_plan_defaults_to_tomorrow_in_the_site_time_zone(db, mailoutbox):
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    due_today = create_customer(name="Today", email="today@example.com")
    create_invoice(due_today, amount_due="10.00", currency="EUR", due_date=timezone.localdate())
    not_yet = create_customer(name="Later", email="later@example.com")
    create_invoice(not_yet, amount_due="10.00", currency="EUR", due_date=tomorrow)
    out, _ = plan()
    assert out.splitlines()[0] == f"Plan for {tomorrow.isoformat()}: 1 message(s)"
    assert [b["customer"] for b in blocks(out)] == ["Today"]
    assert Case.objects.count() == 0


def test_plan_with_nothing_to_do(db):
    out, _ = plan("--as-of", "2026-03-01")
    assert out.strip() == "Plan for 2026-03-01: 0 message(s)"


def test_plan_rejects_a_bad_date(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--as-of expects an ISO date"):
        plan("--as-of", "tomorrow")


def test_dunning_help_lists_plan():
    from django.core.management import get_commands, load_command_class

    command = load_command_class(get_commands()["dunning"], "dunning")
    text = command.create_parser("manage.py", "dunning").format_help()
    assert "plan" in text and "run" in text


# -- the admin page ---------------------------------------------------------------------


@pytest.fixture
def two_open_cases(run, overdue_customer, mailoutbox):
    ada = overdue_customer(name="Ada <b>", email="ada@example.com")
    bob = overdue_customer(name="Bob", email="bob@example.com", amount="55.00")
    run(1)
    mailoutbox.clear()
    return Case.objects.get(customer=ada), Case.objects.get(customer=bob)


def test_the_changelist_links_to_the_plan(admin_client):
    response = admin_client.get("/admin/dunning/case/")
    assert f'href="{PLAN_URL}"' in response.content.decode()


def test_the_admin_page_lists_the_plan_with_subjects(admin_client, two_open_cases, mailoutbox):
    ada_case, bob_case = two_open_cases
    before = counts()
    response = admin_client.get(PLAN_URL, {"as_of": day(4).isoformat()})
    assert response.status_code == 200
    text = response.content.decode()
    assert "Ada &lt;b&gt;" in text and "Ada <b>" not in text  # escaped
    assert "Bob" in text and "bob@example.com" in text
    assert html.unescape(text).count("gentle-reminder") == 2
    assert "Second reminder: €55.00 still open" in html.unescape(text)
    assert "Second reminder: €100.00 still open" in html.unescape(text)
    assert f'action="{hold_back_url(ada_case)}"' in text
    assert f'action="{hold_back_url(bob_case)}"' in text
    assert counts() == before
    assert mailoutbox == []


def test_the_admin_page_defaults_to_tomorrow(admin_client):
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    response = admin_client.get(PLAN_URL)
    assert response.status_code == 200
    assert response.context["as_of"] == tomorrow
    assert "The run on this day sends nothing." in response.content.decode()


def test_hold_back_keeps_the_case_out_of_that_run(admin_client, two_open_cases, run, mailoutbox):
    ada_case, bob_case = two_open_cases
    response = admin_client.post(hold_back_url(ada_case), {"as_of": day(4).isoformat()},
                                 follow=True)
    assert response.status_code == 200
    ada_case.refresh_from_db()
    assert ada_case.paused_until == day(5)
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"{ada_case} is held back: no step before {day(5).isoformat()}."]
    # The plan no longer lists Ada, nor does the run send her anything.
    replanned = [item.case_id for item in response.context["plan"].items]
    assert replanned == [bob_case.pk]
    run(4)
    assert [m.to for m in mailoutbox] == [["bob@example.com"]]
    mailoutbox.clear()
    run(5)
    assert [m.to for m in mailoutbox] == [["ada@example.com"]]
    assert "gentle-reminder" in mailoutbox[0].tags


def test_hold_back_needs_post(admin_client, two_open_cases):
    ada_case, _ = two_open_cases
    assert admin_client.get(hold_back_url(ada_case)).status_code == 405
    ada_case.refresh_from_db()
    assert ada_case.paused_until is None


def test_hold_back_needs_a_csrf_token(django_user_model, two_open_cases, fast_passwords):
    ada_case, _ = two_open_cases
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(hold_back_url(ada_case), {"as_of": day(4).isoformat()})
    assert response.status_code == 403
    ada_case.refresh_from_db()
    assert ada_case.paused_until is None


def test_staff_without_permissions_see_nothing(django_user_model, two_open_cases, fast_passwords):
    ada_case, _ = two_open_cases
    client = staff(django_user_model)
    assert client.get(PLAN_URL, {"as_of": day(4).isoformat()}).status_code == 403
    assert client.post(hold_back_url(ada_case), {"as_of": day(4).isoformat()}).status_code == 403
    ada_case.refresh_from_db()
    assert ada_case.paused_until is None


def test_view_permission_shows_the_plan_without_hold_back(
    django_user_model, two_open_cases, fast_passwords
):
    ada_case, _ = two_open_cases
    client = staff(django_user_model, "view_case")
    response = client.get(PLAN_URL, {"as_of": day(4).isoformat()})
    assert response.status_code == 200
    text = response.content.decode()
    assert "gentle-reminder" in text
    assert "hold-back" not in text
    assert client.post(hold_back_url(ada_case), {"as_of": day(4).isoformat()}).status_code == 403
    ada_case.refresh_from_db()
    assert ada_case.paused_until is None


def test_change_permission_may_hold_back(django_user_model, two_open_cases, fast_passwords):
    ada_case, _ = two_open_cases
    client = staff(django_user_model, "view_case", "change_case")
    response = client.post(hold_back_url(ada_case), {"as_of": day(4).isoformat()})
    assert response.status_code == 302
    ada_case.refresh_from_db()
    assert ada_case.paused_until == day(5)
