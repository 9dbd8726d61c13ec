"""The compliance guards in the run: quiet hours per channel in the customer's time, holidays
and weekends, and frequency caps over all of a customer's cases."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from dunning.channels.sms_backends import locmem
from dunning.engine.outbox import drain
from dunning.engine.run import run_dunning
from dunning.models import Case, CaseStep, Policy
from dunning.testing import override_dunning_settings

from .conftest import day
from .conftest import edit_standard as standard

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture(autouse=True)
def sms_outbox():
    locmem.outbox.clear()
    with override_dunning_settings(SMS_BACKEND="dunning.channels.sms_backends.locmem.SmsBackend"):
        yield locmem.outbox
    locmem.outbox.clear()


def at(date, hour, zone=BERLIN, minute=0):
    return datetime.datetime.combine(date, datetime.time(hour, minute), tzinfo=zone)


def sms_first_step():
    Policy.objects.get(key="standard").steps.filter(key="initial-notice").update(channel="sms")


def row(customer, key="initial-notice"):
    return CaseStep.objects.get(case__customer=customer, step_key=key)


def test_an_sms_due_in_quiet_hours_waits_for_the_window_and_the_drain_sends_it(
        overdue_customer, sms_outbox, monkeypatch):
    sms_first_step()
    ada = overdue_customer(name="Ada", phone="+49 151 23456789", timezone="Europe/Berlin")
    result = run_dunning(day(1), now=at(day(1), 6))  # 06:00 in Berlin: SMS quiet until 08:00
    assert result.executed == {"initial-notice": 1} and sms_outbox == []
    step = row(ada)
    assert step.status == "queued" and step.next_attempt_at == at(day(1), 8)
    monkeypatch.setattr(timezone, "now", lambda: at(day(1), 7, minute=59))
    drain()
    assert sms_outbox == []
    monkeypatch.setattr(timezone, "now", lambda: at(day(1), 8))
    drain()
    assert len(sms_outbox) == 1 and row(ada).status == "sent"


def test_quiet_hours_follow_the_customer_s_time_zone(overdue_customer, sms_outbox):
    sms_first_step()
    berlin = overdue_customer(name="Berlin", phone="+49 151 23456789", timezone="Europe/Berlin")
    tokyo = overdue_customer(name="Tokyo", phone="+81 90 1234 5678", timezone="Asia/Tokyo")
    # 07:00 in Berlin is 15:00 in Tokyo (March: UTC+1 and UTC+9).
    run_dunning(day(1), now=at(day(1), 7))
    assert row(berlin).next_attempt_at == at(day(1), 8)  # later today, at 08:00 Berlin
    assert row(tokyo).status == "sent"
    assert [m.to for m in sms_outbox] == ["+819012345678"]


def test_a_window_that_opens_on_another_day_makes_the_case_wait(overdue_customer, sms_outbox):
    sms_first_step()
    berlin = overdue_customer(name="Berlin", phone="+49 151 23456789", timezone="Europe/Berlin")
    result = run_dunning(day(1), now=at(day(1), 22))  # quiet until 08:00 tomorrow
    assert result.held == 1 and not CaseStep.objects.exists()
    assert Case.objects.get(customer=berlin).next_due_on == day(2)
    run_dunning(day(2), now=at(day(2), 9))
    assert row(berlin).status == "sent" and len(sms_outbox) == 1


def test_a_late_drain_does_not_send_into_the_quiet_hours(overdue_customer, sms_outbox,
                                                          monkeypatch):
    sms_first_step()
    ada = overdue_customer(name="Ada", phone="+49 151 23456789", timezone="Europe/Berlin")
    run_dunning(day(1), now=at(day(1), 6))
    # Nobody drained during the day; the next drain comes at 23:00: still quiet.
    monkeypatch.setattr(timezone, "now", lambda: at(day(1), 23))
    drain()
    assert sms_outbox == []
    assert row(ada).next_attempt_at == at(day(2), 8)


def test_email_has_no_quiet_hours_by_default_but_a_policy_can_set_them(
        overdue_customer, mailoutbox):
    ada = overdue_customer(name="Ada", timezone="Europe/Berlin")
    run_dunning(day(1), now=at(day(1), 3))
    assert len(mailoutbox) == 1
    standard(quiet_hours={"email": ["09:00", "18:00"]})
    run_dunning(day(4), now=at(day(4), 8))  # before 09:00: later today
    assert row(ada, "gentle-reminder").next_attempt_at == at(day(4), 9)
    assert len(mailoutbox) == 1


def test_holidays_and_weekends_move_the_step_to_the_next_business_day(overdue_customer,
                                                                      mailoutbox):
    # day(1) is Tuesday 3 March 2026; make it a holiday, and exclude weekends.
    standard(exclude_weekends=True, holidays=[day(1).isoformat()])
    ada = overdue_customer(name="Ada", timezone="Europe/Berlin")
    result = run_dunning(day(1), now=at(day(1), 10))
    assert result.held == 1 and result.executed == {} and mailoutbox == []
    case = Case.objects.get(customer=ada)
    assert case.next_due_on == day(2)
    run_dunning(day(2), now=at(day(2), 10))
    assert [m.tags[1] for m in mailoutbox] == ["initial-notice"]


def test_a_step_due_on_a_weekend_waits_for_monday(overdue_customer, mailoutbox):
    standard(exclude_weekends=True)
    ada = overdue_customer(name="Ada", timezone="Europe/Berlin", due=day(4))  # 6 March, Fri
    run_dunning(day(5), now=at(day(5), 10))  # Saturday: the initial notice waits
    assert mailoutbox == []
    assert Case.objects.get(customer=ada).next_due_on == day(7)  # Monday 9 March
    run_dunning(day(7), now=at(day(7), 10))
    assert len(mailoutbox) == 1


def test_a_frequency_cap_counts_every_message_of_the_customer(overdue_customer, mailoutbox):
    standard(frequency_caps={"total": [1, 7]})  # one message a week
    ada = overdue_customer(name="Ada", timezone="Europe/Berlin")
    for n in (1, 4, 7):
        run_dunning(day(n), now=at(day(n), 10))
    assert [m.tags[1] for m in mailoutbox] == ["initial-notice"]
    case = Case.objects.get(customer=ada)
    assert case.next_due_on == day(8)  # the week since day(1) is over on day(8)
    run_dunning(day(8), now=at(day(8), 10))
    assert [m.tags[1] for m in mailoutbox] == ["initial-notice", "gentle-reminder"]


def test_the_plan_shows_what_the_guards_allow(overdue_customer):
    from dunning.engine.plan import build_plan

    overdue_customer(name="Ada", timezone="Europe/Berlin")
    assert [i.step_key for i in build_plan(day(1)).items] == ["initial-notice"]
    standard(holidays=[day(1).isoformat()])
    assert build_plan(day(1)).items == []


def test_bad_compliance_settings_are_refused_with_their_field(db):
    with pytest.raises(ValidationError) as caught:
        standard(quiet_hours={"sms": ["25:00", "08:00"]}, frequency_caps={"total": "x"},
                 holidays=["not-a-date"])
    assert set(caught.value.message_dict) == {"quiet_hours", "frequency_caps", "holidays"}


def test_regulation_f_keeps_email_in_the_convenient_time(overdue_customer, mailoutbox):
    standard(regulation_f=True)
    ada = overdue_customer(name="Ada", timezone="America/New_York")
    # 10:00 in Berlin is 05:00 in New York (March 3: UTC-5): too early under Reg F.
    run_dunning(day(1), now=at(day(1), 10))
    assert mailoutbox == []
    assert row(ada).next_attempt_at == at(day(1), 8, ZoneInfo("America/New_York"))


def test_sending_by_hand_respects_the_guards(overdue_customer, run, boss):
    from dunning.engine.ondemand import SEND_NOW_REFUSED, send_now

    ada = overdue_customer(name="Ada", timezone="Europe/Berlin")
    run_dunning(day(1), now=at(day(1), 10))
    case = Case.objects.get(customer=ada)
    today = timezone.localdate()
    standard(holidays=[today.isoformat()])
    result = send_now([case], boss)
    assert result.refused == {case.pk: "compliance"}
    assert "compliance guards" in str(SEND_NOW_REFUSED["compliance"])
    assert not CaseStep.objects.filter(case=case, step_key="gentle-reminder").exists()
    assert not case.events.filter(kind="sent-by-hand").exists()


def test_quiet_hours_follow_the_fallback_channel_the_message_really_goes_by(
        overdue_customer, sms_outbox, mailoutbox):
    """An email step whose customer has no address falls back to SMS: the SMS quiet hours
    apply, not the email's (which has none)."""
    Policy.objects.get(key="standard").steps.filter(key="initial-notice").update(
        fallback_channel="sms")
    ada = overdue_customer(name="Ada", email="", phone="+49 151 23456789",
                           timezone="Europe/Berlin")
    run_dunning(day(1), now=at(day(1), 6))  # 06:00 in Berlin: SMS quiet until 08:00
    step = row(ada)
    assert (step.channel, step.status, step.next_attempt_at) == ("sms", "queued", at(day(1), 8))
    assert sms_outbox == [] and mailoutbox == []


def test_an_opted_out_customer_s_skipped_step_is_not_held_by_quiet_hours(overdue_customer,
                                                                          sms_outbox):
    from dunning.models import Consent
    from dunning.models.consent import channel_topic

    sms_first_step()
    ada = overdue_customer(name="Ada", phone="+49 151 23456789", timezone="Europe/Berlin")
    Consent.objects.create(customer_key=str(ada.pk), topic=channel_topic("sms"),
                           granted=False, source="portal")
    # 22:00: the SMS window opens tomorrow, but there is nothing to send: the step is
    # recorded as skipped today instead of waiting a day for nothing.
    result = run_dunning(day(1), now=at(day(1), 22))
    assert result.held == 0 and row(ada).status == "skipped" and sms_outbox == []
