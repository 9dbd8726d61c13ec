"""The migrations of django-dunning: host-neutral, complete, and installing the default policy."""

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

import dunning
from dunning.models import MessageTemplate, Policy

MIGRATIONS = sorted((Path(dunning.__file__).parent / "migrations").glob("*.py"))

STANDARD_STEPS = [
    # key, offset days past due, action
    ("initial-notice", 1, ""),
    ("gentle-reminder", 4, ""),
    ("formal-notice", 8, ""),
    ("suspension-warning", 14, ""),
    ("suspension", 21, "suspend"),
    ("final-notice", 30, ""),
    ("termination", 45, "terminate"),
]


def test_there_are_migrations():
    names = [p.name for p in MIGRATIONS]
    assert "0001_initial.py" in names
    assert "0002_default_policy.py" in names


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_migration_names_no_host(path):
    source = path.read_text(encoding="utf-8")
    # A setting read without a default breaks sites that never set it.
    assert not re.search(r"settings\.DUNNING_\w+", source)
    # Labels of example or test hosts must never be baked into the app's migrations.
    for label in ("billing.", "host_app.", "example", "shop."):
        assert label not in source.lower(), f"{path.name} mentions {label!r}"
    # The swappable models are referenced through the settings, never as literals.
    assert not re.search(r"to=['\"]dunning\.(customer|invoice)['\"]", source, re.IGNORECASE)


def test_foreign_keys_to_host_models_follow_the_settings():
    source = (Path(dunning.__file__).parent / "migrations" / "0001_initial.py").read_text()
    assert "swappable_dependency(customer_model_label())" in source
    assert "swappable_dependency(invoice_model_label())" in source
    assert source.count("to=customer_model_label()") == 2  # Invoice.customer, Case.customer
    assert source.count("to=invoice_model_label()") == 1  # CaseInvoice.invoice


def test_models_and_migrations_agree(db):
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:
        pytest.fail(f"makemigrations --check found changes (exit {exc.code}):\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()


# -- the default policy ---------------------------------------------------------------


def test_default_policy_standard_is_installed(db):
    policy = Policy.objects.get(key="standard")
    assert policy.is_active
    assert policy.min_gap_days == 3
    assert policy.grace_days == 0
    steps = [
        (s.key, s.offset_days, s.action)
        for s in policy.steps.order_by("offset_days")
    ]
    assert steps == STANDARD_STEPS
    assert set(policy.steps.values_list("channel", flat=True)) == {"email"}


def test_default_policy_has_english_and_german_messages_for_every_step(db):
    policy = Policy.objects.get(key="standard")
    found = set(
        MessageTemplate.objects.filter(policy=policy, channel="email").values_list(
            "step_key", "language"
        )
    )
    expected = {
        (key, language)
        for key in [key for key, _, _ in STANDARD_STEPS] + ["payment-received"]
        + ["card-expiring-30", "card-expiring-7", "renewal-card-expiring",
           "account-updater-consent", "payment-authentication"]
        for language in ("en", "de")
    }
    assert found == expected
    # Text messages, letters and in-app notices have shipped texts of their own (0018).
    for channel in ("sms", "letter", "in_app"):
        assert set(MessageTemplate.objects.filter(policy=policy, channel=channel)
                   .values_list("step_key", "language")) == {
            (key, language)
            for key in [key for key, _, _ in STANDARD_STEPS] + ["payment-received"]
            for language in ("en", "de")
        }, channel
    for template in MessageTemplate.objects.filter(policy=policy):
        assert template.subject.strip()
        assert template.text_body.strip()
        # Only emails and letters have an HTML body.
        assert bool(template.html_body.strip()) == (template.channel in ("email", "letter"))
        template.full_clean()  # compiles in the sandbox


def test_default_policy_is_the_only_policy(db):
    assert list(Policy.objects.values_list("key", flat=True)) == ["standard"]


def test_default_policy_retries_on_days_1_3_5_7_and_marks_required_notices(db):
    policy = Policy.objects.get(key="standard")
    assert list(policy.retry_steps.values_list("key", "offset_days")) == [
        ("retry-1", 1), ("retry-2", 3), ("retry-3", 5), ("retry-4", 7)]
    assert set(policy.steps.filter(required=True).values_list("key", flat=True)) == {
        "suspension-warning", "final-notice", "termination"}
