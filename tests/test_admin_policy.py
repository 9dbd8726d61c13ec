"""Policies and their steps in the admin: validation with clear messages, and policies in
use or the default policy protected from deletion and deactivation."""

import html

import pytest
from django.contrib.auth.models import Permission

from dunning.models import Case, Policy, Step
from dunning.testing import override_dunning_settings
from tests.admin_forms import POLICY_FORM_EXTRAS

ADD_URL = "/admin/dunning/policy/add/"
CHANGELIST_URL = "/admin/dunning/policy/"


def change_url(policy):
    return f"/admin/dunning/policy/{policy.pk}/change/"


def delete_url(policy):
    return f"/admin/dunning/policy/{policy.pk}/delete/"


def policy_data(steps, **fields):
    """POST data of the policy form with its steps inline: steps are (key, offset, action)."""
    data = {
        "key": "strict",
        "name": "Strict",
        "description": "",
        "is_active": "on",
        "min_gap_days": "3",
        "grace_days": "0",
        "minimum_balance": "{}",
        **POLICY_FORM_EXTRAS,
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for i, (key, offset, action) in enumerate(steps):
        data[f"steps-{i}-key"] = key
        data[f"steps-{i}-offset_days"] = str(offset)
        data[f"steps-{i}-channel"] = "email"
        data[f"steps-{i}-action"] = action
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def page(response):
    return html.unescape(response.content.decode())


@pytest.fixture
def admin_client(client, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def staff_client(client, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    """A staff user without any permission."""
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    return client


GOOD_STEPS = [("first", 1, ""), ("warn", 5, ""), ("cut-off", 10, "suspend"), ("end", 20, "terminate")]


def test_a_valid_policy_is_saved_with_its_steps_in_order(admin_client):
    steps = [GOOD_STEPS[2], GOOD_STEPS[0], GOOD_STEPS[3], GOOD_STEPS[1]]  # entered in any order
    response = admin_client.post(ADD_URL, policy_data(steps, minimum_balance='{"eur": "5"}'))
    assert response.status_code == 302, page(response)[:2000]
    policy = Policy.objects.get(key="strict")
    assert [(s.key, s.offset_days, s.action) for s in policy.steps.all()] == GOOD_STEPS
    assert policy.minimum_balance == {"EUR": "5"}


def test_the_change_page_lists_the_steps_in_order(admin_client):
    response = admin_client.get(change_url(Policy.objects.get(key="standard")))
    text = page(response)
    keys = ["initial-notice", "gentle-reminder", "formal-notice", "suspension-warning",
            "suspension", "final-notice", "termination"]
    positions = [text.index(f'value="{key}"') for key in keys]
    assert positions == sorted(positions)


@pytest.mark.parametrize(("steps", "message"), [
    ([("a", 1, ""), ("b", 1, "")],
     "Steps 'a' and 'b' have the same offset (1 days); offsets must strictly increase."),
    ([("a", 1, ""), ("a", 5, "")], "The key 'a' is used by two steps."),
    ([("a", 1, ""), ("payment-received", 5, "")],
     "'payment-received' is reserved for the thank-you message."),
    ([("cut", 1, "suspend"), ("b", 5, "")],
     "The suspension step 'cut' needs at least one warning step before it."),
    ([("a", 10, ""), ("cut", 5, "suspend")],
     "The suspension step 'cut' needs at least one warning step before it."),
    ([("a", 1, ""), ("end", 5, "terminate"), ("later", 9, "")],
     "The termination step 'end' must be the last step."),
])
def test_bad_steps_are_refused_with_a_clear_message(admin_client, steps, message):
    response = admin_client.post(ADD_URL, policy_data(steps))
    assert response.status_code == 200
    assert message in page(response)
    assert not Policy.objects.filter(key="strict").exists()


def test_a_suspension_after_a_warning_is_fine(admin_client):
    response = admin_client.post(ADD_URL, policy_data([("warn", 1, ""), ("cut", 3, "suspend")]))
    assert response.status_code == 302


def test_editing_steps_of_the_default_policy_is_validated(admin_client):
    policy = Policy.objects.get(key="standard")
    steps = list(policy.steps.all())
    data = policy_data([], key="standard", name="Standard")
    data["steps-TOTAL_FORMS"] = data["steps-INITIAL_FORMS"] = str(len(steps))
    for i, step in enumerate(steps):
        data.update({
            f"steps-{i}-id": str(step.pk), f"steps-{i}-policy": str(policy.pk),
            f"steps-{i}-key": step.key, f"steps-{i}-offset_days": str(step.offset_days),
            f"steps-{i}-channel": "email", f"steps-{i}-action": step.action,
        })
    # Move termination before the final notice.
    termination = next(i for i, s in enumerate(steps) if s.key == "termination")
    data[f"steps-{termination}-offset_days"] = "25"
    response = admin_client.post(change_url(policy), data)
    assert response.status_code == 200
    assert "The termination step 'termination' must be the last step." in page(response)
    assert Step.objects.get(policy=policy, key="termination").offset_days == 45


@pytest.mark.parametrize(("value", "message"), [
    ('{"EURO": "5"}', "'EURO' is not a currency code (three letters, e.g. EUR)."),
    ('{"E1R": "5"}', "'E1R' is not a currency code"),
    ('{"EUR": "-1"}', "The minimum balance for EUR must be an amount of 0 or more, not -1."),
    ('{"EUR": "five"}', "The minimum balance for EUR must be an amount of 0 or more, not five."),
    ('["EUR", 5]', 'Enter an object of currency codes and amounts, e.g. {"EUR": "5.00"}.'),
])
def test_bad_minimum_balance_is_refused(admin_client, value, message):
    response = admin_client.post(ADD_URL, policy_data(GOOD_STEPS, minimum_balance=value))
    assert response.status_code == 200
    assert message in page(response)
    assert not Policy.objects.filter(key="strict").exists()


def test_the_default_policy_cannot_be_deactivated(admin_client):
    policy = Policy.objects.get(key="standard")
    data = policy_data([], key="standard", name="Standard", is_active=None)
    response = admin_client.post(change_url(policy), data)
    assert response.status_code == 200
    assert "This is the default policy (DUNNING['DEFAULT_POLICY']); it cannot be deactivated." in page(response)
    policy.refresh_from_db()
    assert policy.is_active


def test_another_policy_can_be_deactivated_and_the_setting_decides_the_default(admin_client):
    admin_client.post(ADD_URL, policy_data(GOOD_STEPS))
    strict = Policy.objects.get(key="strict")
    with override_dunning_settings(DEFAULT_POLICY="strict"):
        response = admin_client.post(change_url(strict), policy_data([], is_active=None))
        assert response.status_code == 200
        assert "cannot be deactivated" in page(response)
    response = admin_client.post(change_url(strict), policy_data([], is_active=None))
    assert response.status_code == 302
    strict.refresh_from_db()
    assert not strict.is_active


@pytest.fixture
def policy_in_use(run, overdue_customer):
    overdue_customer(name="Ada", email="ada@example.com")
    run(1)
    policy = Policy.objects.get(key="standard")
    assert Case.objects.filter(policy=policy).count() == 1
    return policy


def test_a_policy_in_use_shows_no_delete_link(admin_client, policy_in_use):
    response = admin_client.get(change_url(policy_in_use))
    assert response.status_code == 200
    assert delete_url(policy_in_use) not in page(response)


def test_a_forged_delete_post_is_refused_with_a_message(admin_client, policy_in_use):
    response = admin_client.post(delete_url(policy_in_use), {"post": "yes"}, follow=True)
    assert Policy.objects.filter(pk=policy_in_use.pk).exists()
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        "The policy 'Standard' is used by 1 case and cannot be deleted; deactivate it instead."
    ]


def test_the_bulk_delete_action_refuses_a_policy_in_use(admin_client, policy_in_use):
    admin_client.post(ADD_URL, policy_data(GOOD_STEPS))
    unused = Policy.objects.get(key="strict")
    response = admin_client.post(
        CHANGELIST_URL,
        {"action": "delete_selected", "_selected_action": [policy_in_use.pk, unused.pk],
         "post": "yes"},
        follow=True,
    )
    assert Policy.objects.filter(pk__in=[policy_in_use.pk, unused.pk]).count() == 2
    messages = [str(m) for m in response.context["messages"]]
    assert "The policy 'Standard' is used by 1 case and cannot be deleted; deactivate it instead." in messages


def test_an_unused_policy_can_be_deleted(admin_client):
    admin_client.post(ADD_URL, policy_data(GOOD_STEPS))
    unused = Policy.objects.get(key="strict")
    response = admin_client.post(delete_url(unused), {"post": "yes"})
    assert response.status_code == 302
    assert not Policy.objects.filter(pk=unused.pk).exists()
    assert not Step.objects.filter(policy_id=unused.pk).exists()


def test_the_bulk_delete_action_deletes_unused_policies(admin_client):
    admin_client.post(ADD_URL, policy_data(GOOD_STEPS))
    unused = Policy.objects.get(key="strict")
    admin_client.post(
        CHANGELIST_URL,
        {"action": "delete_selected", "_selected_action": [unused.pk], "post": "yes"},
    )
    assert not Policy.objects.filter(pk=unused.pk).exists()


def test_staff_without_permission_cannot_see_or_change_policies(staff_client):
    policy = Policy.objects.get(key="standard")
    assert staff_client.get(CHANGELIST_URL).status_code == 403
    assert staff_client.get(change_url(policy)).status_code == 403
    response = staff_client.post(delete_url(policy), {"post": "yes"})
    assert response.status_code == 403
    response = staff_client.post(ADD_URL, policy_data(GOOD_STEPS))
    assert response.status_code == 403
    assert not Policy.objects.filter(key="strict").exists()


def test_staff_with_view_permission_cannot_delete(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_policy"))
    client.force_login(user)
    admin_client_response = client.get(CHANGELIST_URL)
    assert admin_client_response.status_code == 200
    Policy.objects.create(key="spare", name="Spare")
    spare = Policy.objects.get(key="spare")
    assert client.post(delete_url(spare), {"post": "yes"}).status_code == 403
    client.post(CHANGELIST_URL, {"action": "delete_selected", "_selected_action": [spare.pk],
                                 "post": "yes"})
    assert Policy.objects.filter(pk=spare.pk).exists()
