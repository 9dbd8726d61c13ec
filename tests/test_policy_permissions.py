"""The ``dunning.edit_policy`` permission: the one switch for editing policies, their steps
and message templates in the admin (see dunning/admin/policy.py). View permissions give
read-only pages; forged POSTs are refused."""

import html

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from dunning.models import MessageTemplate, Policy, Step
from dunning.shipped import shipped_message
from tests.admin_forms import POLICY_FORM_EXTRAS

CHANGELIST = "/admin/dunning/policy/"
ADD_URL = "/admin/dunning/policy/add/"
TEMPLATES = "/admin/dunning/messagetemplate/"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def login(client, django_user_model):
    def make(*codenames, superuser=False):
        if superuser:
            user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
        else:
            user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
            for codename in codenames:
                user.user_permissions.add(Permission.objects.get(codename=codename))
        client.force_login(user)
        return client

    return make


VIEWER = ("view_policy", "view_step", "view_messagetemplate")
# Django's own model permissions, without edit_policy: not enough to edit.
DJANGO_EDITOR = VIEWER + ("add_policy", "change_policy", "delete_policy", "add_step",
                          "change_step", "delete_step", "add_messagetemplate",
                          "change_messagetemplate", "delete_messagetemplate")
EDITOR = ("view_policy", "view_messagetemplate", "edit_policy")


@pytest.fixture
def standard():
    return Policy.objects.get(key="standard")


@pytest.fixture
def draft():
    policy = Policy.objects.create(key="draft", name="Draft", is_active=False)
    Step.objects.create(policy=policy, key="first", offset_days=2)
    return policy


def change_url(policy):
    return f"/admin/dunning/policy/{policy.pk}/change/"


def form_data(policy, *, name=None, extra_steps=()):
    """The change form's POST data: the policy's fields and its steps, plus new steps."""
    steps = list(policy.steps.order_by("offset_days"))
    data = {
        "key": policy.key, "name": name or policy.name, "description": policy.description,
        "min_gap_days": str(policy.min_gap_days), "grace_days": str(policy.grace_days),
        "minimum_balance": "{}",
        **POLICY_FORM_EXTRAS,
        "steps-TOTAL_FORMS": str(len(steps) + len(extra_steps)),
        "steps-INITIAL_FORMS": str(len(steps)),
        "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
    }
    if policy.is_active:
        data["is_active"] = "on"
    for i, step in enumerate(steps):
        data.update({
            f"steps-{i}-id": str(step.pk), f"steps-{i}-policy": str(policy.pk),
            f"steps-{i}-key": step.key, f"steps-{i}-offset_days": str(step.offset_days),
            f"steps-{i}-channel": step.channel, f"steps-{i}-action": step.action,
        })
    for j, (key, offset) in enumerate(extra_steps, start=len(steps)):
        data.update({
            f"steps-{j}-policy": str(policy.pk), f"steps-{j}-key": key,
            f"steps-{j}-offset_days": str(offset), f"steps-{j}-channel": "email",
            f"steps-{j}-action": "",
        })
    return data


def add_data(key="new"):
    """POST data of the add form: a new policy with two steps."""
    data = {
        "key": key, "name": key.title(), "description": "", "min_gap_days": "3",
        "grace_days": "0", "minimum_balance": "{}", **POLICY_FORM_EXTRAS,
        "steps-TOTAL_FORMS": "2",
        "steps-INITIAL_FORMS": "0", "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
    }
    for i, (step, offset) in enumerate([("one", 1), ("two", 5)]):
        data.update({f"steps-{i}-key": step, f"steps-{i}-offset_days": str(offset),
                     f"steps-{i}-channel": "email", f"steps-{i}-action": ""})
    return data


def template_data(template, subject):
    return {
        "policy": str(template.policy_id), "step_key": template.step_key,
        "channel": template.channel, "language": template.language, "subject": subject,
        "text_body": template.text_body, "html_body": template.html_body,
    }


def page(response):
    return html.unescape(response.content.decode())


# -- read-only for viewers ---------------------------------------------------------------------
@pytest.mark.parametrize("codenames", [VIEWER, DJANGO_EDITOR], ids=["view-only", "django-perms"])
def test_without_edit_policy_the_policy_page_is_read_only(login, standard, codenames):
    client = login(*codenames)
    response = client.get(change_url(standard))
    assert response.status_code == 200
    text = page(response)
    assert 'name="_save"' not in text
    assert 'name="name"' not in text  # shown as text, not as an input
    assert "initial-notice" in text  # the steps are shown
    assert 'name="steps-0-key"' not in text
    assert client.get(ADD_URL).status_code == 403
    changelist = page(client.get(CHANGELIST))
    assert "addlink" not in changelist
    assert "/import/" not in changelist


@pytest.mark.parametrize("codenames", [VIEWER, DJANGO_EDITOR], ids=["view-only", "django-perms"])
def test_without_edit_policy_a_forged_post_changes_nothing(login, draft, codenames):
    client = login(*codenames)
    response = client.post(change_url(draft), form_data(draft, name="Hacked",
                                                        extra_steps=[("sneaky", 9)]))
    assert response.status_code == 403
    draft.refresh_from_db()
    assert draft.name == "Draft"
    assert list(draft.steps.values_list("key", flat=True)) == ["first"]
    response = client.post(ADD_URL, add_data())
    assert response.status_code == 403
    assert not Policy.objects.filter(key="new").exists()
    response = client.post(f"/admin/dunning/policy/{draft.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Policy.objects.filter(pk=draft.pk).exists()
    # The bulk delete action is not offered, and posting it anyway deletes nothing.
    client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [draft.pk],
                             "post": "yes"})
    assert Policy.objects.filter(pk=draft.pk).exists()


def test_without_edit_policy_policies_cannot_be_imported(login):
    client = login(*DJANGO_EDITOR)
    assert client.get("/admin/dunning/policy/import/").status_code == 403
    assert client.post("/admin/dunning/policy/process_import/", {}).status_code == 403
    assert client.get("/admin/dunning/messagetemplate/import/").status_code == 403


def test_viewers_can_still_export(login):
    client = login(*VIEWER)
    response = client.post("/admin/dunning/policy/export/", {"format": "0"})
    assert response.status_code == 200


def test_staff_without_any_permission_sees_nothing(login, standard):
    client = login()
    assert client.get(change_url(standard)).status_code == 403
    assert client.get("/admin/dunning/policy/export/").status_code == 403


@pytest.mark.parametrize("codenames", [VIEWER, DJANGO_EDITOR], ids=["view-only", "django-perms"])
def test_without_edit_policy_templates_are_read_only(login, standard, codenames):
    client = login(*codenames)
    template = MessageTemplate.objects.get(policy=standard, step_key="gentle-reminder",
                                           language="en", channel="email")
    url = f"{TEMPLATES}{template.pk}/change/"
    response = client.get(url)
    assert response.status_code == 200
    assert 'name="_save"' not in page(response)
    response = client.post(url, template_data(template, "Hacked"))
    assert response.status_code == 403
    template.refresh_from_db()
    assert template.subject != "Hacked"
    assert client.get(f"{TEMPLATES}add/").status_code == 403


@pytest.mark.parametrize("codenames", [VIEWER, DJANGO_EDITOR], ids=["view-only", "django-perms"])
def test_without_edit_policy_a_template_cannot_be_reset(login, standard, codenames):
    client = login(*codenames)
    template = MessageTemplate.objects.get(policy=standard, step_key="gentle-reminder",
                                           language="en", channel="email")
    template.subject = "Our own words"
    template.save()
    assert "reset_to_shipped" not in page(client.get(TEMPLATES))
    client.post(TEMPLATES, {"action": "reset_to_shipped", "_selected_action": [template.pk]})
    template.refresh_from_db()
    assert template.subject == "Our own words"


# -- editors -------------------------------------------------------------------------------
@pytest.mark.parametrize("superuser", [False, True], ids=["edit_policy", "superuser"])
def test_with_edit_policy_policies_and_steps_can_be_edited(login, draft, superuser):
    client = login(*EDITOR, superuser=superuser)
    response = client.post(change_url(draft), form_data(draft, name="Better",
                                                        extra_steps=[("second", 9)]))
    assert response.status_code == 302, page(response)[:3000]
    draft.refresh_from_db()
    assert draft.name == "Better"
    assert list(draft.steps.values_list("key", flat=True)) == ["first", "second"]
    response = client.post(ADD_URL, add_data())
    assert response.status_code == 302, page(response)[:3000]
    assert list(Policy.objects.get(key="new").steps.values_list("key", flat=True)) == [
        "one", "two"]
    response = client.post(f"/admin/dunning/policy/{draft.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Policy.objects.filter(pk=draft.pk).exists()


def test_with_edit_policy_templates_can_be_edited_and_reset(login, standard):
    client = login(*EDITOR)
    template = MessageTemplate.objects.get(policy=standard, step_key="gentle-reminder",
                                           language="en", channel="email")
    response = client.post(f"{TEMPLATES}{template.pk}/change/",
                           template_data(template, "Our own words"))
    assert response.status_code == 302, page(response)[:3000]
    template.refresh_from_db()
    assert template.subject == "Our own words"
    assert "reset_to_shipped" in page(client.get(TEMPLATES))
    response = client.post(TEMPLATES, {"action": "reset_to_shipped",
                                       "_selected_action": [template.pk]}, follow=True)
    template.refresh_from_db()
    assert (template.subject, template.text_body, template.html_body) == shipped_message(
        "en", "gentle-reminder")


def test_with_edit_policy_alone_the_pages_are_visible(login, standard):
    client = login("edit_policy")
    assert client.get(change_url(standard)).status_code == 200
    assert client.get(TEMPLATES).status_code == 200
    assert client.get(f"/admin/dunning/policy/{standard.pk}/simulate/").status_code == 200


def test_the_collections_group_gets_read_only_policies(login, standard, django_user_model):
    call_command("dunning", "collections-group", verbosity=0)
    client = login()
    django_user_model.objects.get(username="staff").groups.add(
        Group.objects.get(name="Collections"))
    response = client.get(change_url(standard))
    assert response.status_code == 200
    assert 'name="_save"' not in page(response)
    assert client.post(change_url(standard), form_data(standard, name="X")).status_code == 403
