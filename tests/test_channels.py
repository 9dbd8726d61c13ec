"""Steps on several channels: each step's channel, its fallback when the customer cannot be
reached there (no number, a bounced address) or opted out, and the call queue."""

import datetime

import pytest
from django.utils import timezone

from dunning.channels.sms_backends import locmem
from dunning.models import Case, CaseEvent, CaseStep, Consent, MessageTemplate, Policy, Suppression
from dunning.models.consent import channel_topic
from dunning.queries import in_call_queue
from dunning.testing import override_dunning_settings

from .conftest import day
from .optional import weasyprint as require_weasyprint

LOCMEM = "dunning.channels.sms_backends.locmem.SmsBackend"


@pytest.fixture
def run(run):
    """Runs at 10:00 in the site's time zone (inside every channel's default window)."""
    def at_ten(n, **kwargs):
        date = day(n)
        return run(date, now=datetime.datetime.combine(
            date, datetime.time(10), tzinfo=timezone.get_current_timezone()), **kwargs)
    return at_ten


@pytest.fixture(autouse=True)
def sms_outbox():
    locmem.outbox.clear()
    with override_dunning_settings(SMS_BACKEND=LOCMEM):
        yield locmem.outbox
    locmem.outbox.clear()


def set_channels(**channels):
    """Give steps of the standard policy other channels: key=(channel, fallback)."""
    policy = Policy.objects.get(key="standard")
    for key, (channel, fallback) in channels.items():
        policy.steps.filter(key=key).update(channel=channel, fallback_channel=fallback)


def steps(case):
    return list(CaseStep.objects.filter(case=case).order_by("executed_on")
                .values_list("step_key", "channel", "status", "recipient"))


def test_an_sms_step_goes_out_as_a_text_that_fits(overdue_customer, run, sms_outbox, mailoutbox):
    set_channels(**{"initial-notice": ("sms", "")})
    ada = overdue_customer(name="Ada", email="ada@example.com", phone="+49 151 23456789")
    run(1)
    case = Case.objects.get(customer=ada)
    assert steps(case) == [("initial-notice", "sms", "sent", "+4915123456789")]
    [text] = sms_outbox
    assert text.to == "+4915123456789" and len(text.body) <= 306
    assert "Ada" in text.body  # the shipped SMS text (migration 0018)
    assert mailoutbox == []


def test_an_sms_template_of_its_own_wins_over_the_email_text(overdue_customer, run, sms_outbox):
    set_channels(**{"initial-notice": ("sms", "")})
    policy = Policy.objects.get(key="standard")
    # The shipped SMS text (migration 0018) replaced by the site's own.
    MessageTemplate.objects.update_or_create(
        policy=policy, step_key="initial-notice", channel="sms", language="en", variant="",
        defaults={"subject": "-", "text_body": "{{ customer.name }}, {{ total }} is overdue."})
    overdue_customer(name="Ada", phone="+49 151 23456789")
    run(1)
    assert [m.body for m in sms_outbox] == ["Ada, €100.00 is overdue."]


def test_no_phone_number_uses_the_fallback_channel(overdue_customer, run, sms_outbox, mailoutbox):
    set_channels(**{"initial-notice": ("sms", "email")})
    ada = overdue_customer(name="Ada", email="ada@example.com")  # no phone
    run(1)
    case = Case.objects.get(customer=ada)
    [row] = CaseStep.objects.filter(case=case)
    assert (row.channel, row.status, row.recipient) == ("email", "sent", "ada@example.com")
    assert case.events.get(kind="channel-fallback").message == (
        "Sent by email instead of sms: no phone number")
    assert [m.to for m in mailoutbox] == [["ada@example.com"]] and sms_outbox == []
    case.refresh_from_db()
    assert not case.needs_person


def test_a_hard_bounce_moves_the_case_to_the_next_channel(overdue_customer, run, sms_outbox,
                                                          mailoutbox):
    set_channels(**{"gentle-reminder": ("email", "sms")})
    ada = overdue_customer(name="Ada", email="ada@example.com", phone="+49 151 23456789")
    run(1)
    assert len(mailoutbox) == 1
    # The ESP reported a hard bounce: the address is suppressed.
    Suppression.objects.create(address="ada@example.com", reason="bounced")
    run(4)
    case = Case.objects.get(customer=ada)
    assert steps(case) == [("initial-notice", "email", "sent", "ada@example.com"),
                           ("gentle-reminder", "sms", "sent", "+4915123456789")]
    assert len(mailoutbox) == 1 and len(sms_outbox) == 1


def test_an_opt_out_is_honoured_and_the_fallback_used(overdue_customer, run, sms_outbox,
                                                     mailoutbox):
    set_channels(**{"initial-notice": ("email", "sms")})
    ada = overdue_customer(name="Ada", email="ada@example.com", phone="+49 151 23456789")
    Consent.objects.create(customer_key=str(ada.pk), topic=channel_topic("email"),
                           granted=False, source="portal")
    run(1)
    assert steps(Case.objects.get(customer=ada)) == [
        ("initial-notice", "sms", "sent", "+4915123456789")]
    assert mailoutbox == []


def test_opted_out_of_both_channels_skips_the_step(overdue_customer, run, sms_outbox, mailoutbox):
    set_channels(**{"initial-notice": ("email", "sms")})
    ada = overdue_customer(name="Ada", email="ada@example.com", phone="+49 151 23456789")
    for channel in ("email", "sms"):
        Consent.objects.create(customer_key=str(ada.pk), topic=channel_topic(channel),
                               granted=False, source="portal")
    run(1)
    case = Case.objects.get(customer=ada)
    assert steps(case)[0][2] == "skipped"
    assert mailoutbox == sms_outbox == []
    case.refresh_from_db()
    assert not case.needs_person


def test_a_customer_reachable_on_no_channel_fails_with_the_first_reason(overdue_customer, run):
    set_channels(**{"initial-notice": ("sms", "email")})
    ada = overdue_customer(name="Ada", email="")
    run(1)
    case = Case.objects.get(customer=ada)
    [row] = CaseStep.objects.filter(case=case)
    assert (row.status, row.reason) == ("failed", "no phone number")
    case.refresh_from_db()
    assert case.needs_person


def test_a_call_step_puts_the_case_in_the_call_queue(overdue_customer, run, boss):
    set_channels(**{"formal-notice": ("call", "email")})
    ada = overdue_customer(name="Ada", email="ada@example.com", phone="+49 30 901820")
    for n in (1, 4, 8):
        run(n)
    case = Case.objects.get(customer=ada)
    assert steps(case)[-1] == ("formal-notice", "call", "sent", "+4930901820")
    queued = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.CALL_QUEUED)
    assert "Ada" in queued.message  # the script: the step's message
    assert list(in_call_queue(Case.objects.all())) == [case]


def test_an_unconfigured_channel_fails_the_case_with_a_clear_reason(overdue_customer, run):
    set_channels(**{"initial-notice": ("sms", "")})
    ada = overdue_customer(name="Ada", phone="+49 151 23456789")
    with override_dunning_settings(CHANNELS={}):
        result = run(1)
    case = Case.objects.get(customer=ada)
    assert result.failures == [(case.pk, "DunningConfigurationError: No channel 'sms': add it "
                                         "to DUNNING['CHANNELS'].")]
    assert case.needs_person


def test_a_step_on_an_unconfigured_channel_does_not_validate(db):
    from django.core.exceptions import ValidationError

    step = Policy.objects.get(key="standard").steps.first()
    step.channel = "pigeon"
    with override_dunning_settings(CHANNELS={}), pytest.raises(ValidationError):
        step.full_clean()
    step.channel, step.fallback_channel = "sms", ""
    with override_dunning_settings(CHANNELS={}), pytest.raises(ValidationError,
                                                               match="CHANNELS"):
        step.full_clean()


def postal_address(customer):
    """DUNNING["CUSTOMER_ADDRESS"] for the full-path test."""
    return f"{customer.name}\nHauptstraße 1\n10115 Berlin\nGermany"


def test_one_customer_over_sms_email_letter_and_a_call_with_the_fallback_used(
        overdue_customer, run, sms_outbox, mailoutbox, settings, tmp_path, boss):
    require_weasyprint()
    from dunning.engine.actions import log_call
    from dunning.models import Letter

    settings.MEDIA_ROOT = str(tmp_path)
    set_channels(**{"initial-notice": ("sms", "email"), "gentle-reminder": ("email", ""),
                    "formal-notice": ("letter", "email"), "suspension-warning": ("call", "")})
    # A landline: no texts to it (the fallback, email, is used), but it can be called.
    ada = overdue_customer(name="Ada Lovelace", email="ada@example.com", phone="+49 30 901820")
    with override_dunning_settings(CUSTOMER_ADDRESS="tests.test_channels.postal_address"):
        for n in (1, 4, 8, 14):
            run(n)
    case = Case.objects.get(customer=ada)
    assert steps(case) == [
        ("initial-notice", "email", "sent", "ada@example.com"),
        ("gentle-reminder", "email", "sent", "ada@example.com"),
        ("formal-notice", "letter", "sent", "letter"),
        ("suspension-warning", "call", "sent", "+4930901820"),
    ]
    assert sms_outbox == []
    assert [m.tags[1] for m in mailoutbox] == ["initial-notice", "gentle-reminder"]
    fallback = case.events.get(kind=CaseEvent.Kind.FALLBACK)
    assert fallback.message.startswith("Sent by email instead of sms: not a mobile number")
    letter = Letter.objects.get(case=case)
    assert letter.pdf.read(5) == b"%PDF-" and "Hauptstraße 1" in letter.recipient_address
    assert list(in_call_queue(Case.objects.all())) == [case]
    log_call(case, "reached", "Promised to pay this week.", boss)
    assert list(in_call_queue(Case.objects.all())) == []


def test_a_stop_reply_opts_the_customer_out_of_sms_and_the_fallback_takes_over(
        overdue_customer, run, mailoutbox):
    from .test_sms import ACCOUNT, RecordedHttpClient

    set_channels(**{"initial-notice": ("sms", "email"), "gentle-reminder": ("sms", "email")})
    ada = overdue_customer(name="Ada", email="ada@example.com", phone="+49 151 23456789")
    http = RecordedHttpClient((400, "error_21610_unsubscribed.json"))
    twilio = {"SMS_BACKEND": "dunning.channels.sms_backends.twilio.SmsBackend",
              "SMS_BACKEND_OPTIONS": {"account_sid": ACCOUNT, "auth_token": "recorded-token",
                                      "sender": "+4915735981234", "http_client": http}}
    with override_dunning_settings(**twilio):
        run(1)
    case = Case.objects.get(customer=ada)
    first = CaseStep.objects.get(case=case, step_key="initial-notice")
    assert (first.channel, first.status) == ("sms", "failed") and "unsubscribed" in first.reason
    entry = Consent.objects.get()
    assert (entry.topic, entry.granted, entry.source) == ("channel:sms", False, "unsubscribe")
    assert "opted out (a STOP reply)" in case.events.get(kind="consent").message
    with override_dunning_settings(**twilio):
        run(4)
    second = CaseStep.objects.get(case=case, step_key="gentle-reminder")
    assert (second.channel, second.status) == ("email", "sent")
    assert len(http.requests) == 1  # never texted again
    assert [m.to for m in mailoutbox] == [["ada@example.com"]]
