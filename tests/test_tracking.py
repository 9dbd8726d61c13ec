"""Delivery tracking: ESP webhooks posted to django-anymail's own views reach the executed
step; repeated events count once; hard bounces, complaints and unsubscribes suppress the
address, and a suppressed address is never emailed again."""

import base64
import hashlib
import hmac
import json
import threading
import uuid

import pytest
from django.db import connection, connections
from django.test import override_settings

from dunning.models import Case, CaseEvent, CaseStep, DeliveryEvent, Suppression
from tests.conftest import day

SECRET = "user:pass"
MAILGUN_KEY = "mailgun-signing-key"
AUTH = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(SECRET.encode()).decode()}
ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


@pytest.fixture(autouse=True)
def anymail_settings():
    with override_settings(ANYMAIL=ANYMAIL):
        yield


def mailgun_payload(step, event="failed", severity="permanent", message_id=None,
                    recipient=None, token=None, timestamp=1772530000.5, metadata=True):
    """A Mailgun webhook (the JSON form with a signature block), signed as Mailgun signs it."""
    token = token or uuid.uuid4().hex
    ts = str(int(timestamp))
    signature = hmac.new(MAILGUN_KEY.encode(), f"{ts}{token}".encode(), hashlib.sha256).hexdigest()
    data = {
        "event": event,
        "id": uuid.uuid4().hex[:22],
        "timestamp": timestamp,
        "recipient": recipient or step.recipient,
        "tags": ["dunning", step.step_key],
        "message": {"headers": {
            "message-id": (message_id or step.message_id).strip("<>"),
            "to": recipient or step.recipient,
            "from": "billing@example.com",
            "subject": "Payment reminder",
        }},
        "user-variables": {
            "dunning_case": str(step.case_id), "dunning_step": step.step_key, "customer": "1",
        } if metadata else {},
    }
    if event == "failed":
        data.update({
            "severity": severity,
            "reason": "bounce" if severity == "permanent" else "generic",
            "delivery-status": {
                "code": 550, "attempt-no": 1, "description": "",
                "message": "5.1.1 The email account that you tried to reach does not exist.",
            },
        })
    if event == "delivered":
        data["delivery-status"] = {"code": 250, "message": "OK", "description": ""}
    return {"signature": {"timestamp": ts, "token": token, "signature": signature},
            "event-data": data}


def postmark_payload(step, record="Bounce", type_="HardBounce", bounce_id=4323372036854775807,
                     at="2026-03-03T16:33:54.9070259Z"):
    common = {
        "MessageID": step.message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "Tag": step.step_key,
        "Metadata": {"dunning_case": str(step.case_id), "dunning_step": step.step_key},
    }
    if record == "Delivery":
        return {**common, "RecordType": "Delivery", "Recipient": step.recipient,
                "DeliveredAt": at, "Details": "Test delivery webhook details"}
    if record == "SpamComplaint":
        return {**common, "RecordType": "SpamComplaint", "ID": bounce_id, "Type": "SpamComplaint",
                "TypeCode": 512, "Email": step.recipient, "BouncedAt": at,
                "Description": "The subscriber explicitly marked this message as spam."}
    return {**common, "RecordType": "Bounce", "ID": bounce_id, "Type": type_,
            "TypeCode": 1 if type_ == "HardBounce" else 4096, "Name": "Hard bounce",
            "Description": "The server was unable to deliver your message (ex: unknown user, "
            "mailbox not found).", "Details": "smtp;550 5.1.1 user unknown",
            "Email": step.recipient, "From": "billing@example.com", "BouncedAt": at,
            "DumpAvailable": True, "Inactive": True, "CanActivate": True,
            "Subject": "Payment reminder"}


def post(client, esp, payload, **extra):
    return client.post(f"/anymail/{esp}/tracking/", data=json.dumps(payload),
                       content_type="application/json", **AUTH, **extra)


@pytest.fixture
def sent_step(overdue_customer, run):
    """An initial notice sent to alice@example.com, with an ESP message id."""

    def make(email="alice@example.com", message_id="<20260303.1234.5678@mg.example.com>"):
        customer = overdue_customer(name="Alice", email=email)
        run(1)
        step = CaseStep.objects.get(case__customer=customer, step_key="initial-notice")
        assert step.status == CaseStep.Status.SENT
        CaseStep.objects.filter(pk=step.pk).update(message_id=message_id)
        step.refresh_from_db()
        return step

    return make


def test_mailgun_delivered_sets_the_step_status(client, sent_step):
    step = sent_step()
    response = post(client, "mailgun", mailgun_payload(step, event="delivered"))
    assert response.status_code == 200
    step.refresh_from_db()
    assert step.delivery_status == "delivered"
    assert step.delivery_updated_at is not None
    (event,) = DeliveryEvent.objects.all()
    assert (event.case_step_id, event.esp, event.event_type, event.recipient) == (
        step.pk, "Mailgun", "delivered", "alice@example.com")
    assert not Suppression.objects.exists()
    assert Case.objects.get(pk=step.case_id).needs_person is False


def test_mailgun_hard_bounce_suppresses_and_flags_the_case(client, sent_step):
    step = sent_step()
    assert post(client, "mailgun", mailgun_payload(step)).status_code == 200
    step.refresh_from_db()
    assert step.delivery_status == "bounced"
    (event,) = DeliveryEvent.objects.all()
    assert event.reject_reason == "bounced"
    assert "does not exist" in event.description
    assert event.esp_event["event-data"]["event"] == "failed"
    (suppression,) = Suppression.objects.all()
    assert (suppression.address, suppression.reason, suppression.event_id) == (
        "alice@example.com", "bounced", event.pk)
    case = Case.objects.get(pk=step.case_id)
    assert case.needs_person is True
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.NOTE,
                                    message__contains="alice@example.com").count() == 1


def test_mailgun_temporary_failure_does_not_suppress(client, sent_step):
    step = sent_step()
    assert post(client, "mailgun", mailgun_payload(step, severity="temporary")).status_code == 200
    step.refresh_from_db()
    assert step.delivery_status == "deferred"
    assert not Suppression.objects.exists()
    assert Case.objects.get(pk=step.case_id).needs_person is False


def test_mailgun_bad_signature_is_refused_and_records_nothing(client, sent_step):
    step = sent_step()
    payload = mailgun_payload(step)
    payload["signature"]["signature"] = "0" * 64
    assert post(client, "mailgun", payload).status_code == 400
    assert not DeliveryEvent.objects.exists()
    assert not Suppression.objects.exists()


def test_postmark_delivery_then_hard_bounce(client, sent_step):
    step = sent_step(message_id="883953f4-6105-42a2-a16a-77a8eac79483")
    assert post(client, "postmark", postmark_payload(step, record="Delivery",
                                                     at="2026-03-03T10:00:00Z")).status_code == 200
    step.refresh_from_db()
    assert step.delivery_status == "delivered"
    assert post(client, "postmark", postmark_payload(step, at="2026-03-03T11:00:00Z")).status_code == 200
    step.refresh_from_db()
    assert step.delivery_status == "bounced"
    assert list(DeliveryEvent.objects.values_list("event_type", flat=True)) == ["delivered", "bounced"]
    assert Suppression.objects.get().reason == "bounced"
    assert Case.objects.get(pk=step.case_id).needs_person is True


def test_postmark_needs_basic_auth(client, sent_step):
    step = sent_step(message_id="883953f4-6105-42a2-a16a-77a8eac79483")
    response = client.post("/anymail/postmark/tracking/", data=json.dumps(postmark_payload(step)),
                           content_type="application/json")
    assert response.status_code == 400
    assert not DeliveryEvent.objects.exists()


def test_postmark_soft_bounce_and_complaint(client, sent_step):
    step = sent_step(message_id="883953f4-6105-42a2-a16a-77a8eac79483")
    post(client, "postmark", postmark_payload(step, type_="SoftBounce", bounce_id=1))
    assert not Suppression.objects.exists()  # a soft bounce may deliver later
    post(client, "postmark", postmark_payload(step, record="SpamComplaint", bounce_id=2,
                                              at="2026-03-04T09:00:00Z"))
    step.refresh_from_db()
    assert step.delivery_status == "complained"
    assert Suppression.objects.get().reason == "complained"


def test_an_older_event_arriving_late_does_not_overwrite_a_newer_one(client, sent_step):
    step = sent_step(message_id="883953f4-6105-42a2-a16a-77a8eac79483")
    post(client, "postmark", postmark_payload(step, at="2026-03-03T11:00:00Z"))
    post(client, "postmark", postmark_payload(step, record="Delivery", at="2026-03-03T10:00:00Z"))
    step.refresh_from_db()
    assert step.delivery_status == "bounced"
    assert DeliveryEvent.objects.count() == 2


def test_matches_by_metadata_when_the_message_id_is_unknown(client, sent_step):
    step = sent_step(message_id="")  # e.g. a backend that reports no message id
    payload = mailgun_payload(step, event="delivered", message_id="<unknown@mg.example.com>")
    assert post(client, "mailgun", payload).status_code == 200
    step.refresh_from_db()
    assert step.delivery_status == "delivered"


def test_events_for_other_mail_are_ignored(client, sent_step):
    step = sent_step()
    payload = mailgun_payload(step, message_id="<newsletter@mg.example.com>", metadata=False)
    assert post(client, "mailgun", payload).status_code == 200
    assert not DeliveryEvent.objects.exists()
    assert not Suppression.objects.exists()


def test_the_same_event_posted_100_times_counts_once(client, sent_step):
    step = sent_step()
    payload = mailgun_payload(step, token="c0ffee" * 8)
    for _ in range(100):
        assert post(client, "mailgun", payload).status_code == 200
    assert DeliveryEvent.objects.count() == 1
    assert Suppression.objects.count() == 1
    assert CaseEvent.objects.filter(kind=CaseEvent.Kind.NOTE).count() == 1


def test_a_repeated_event_without_an_esp_id_counts_once(client, sent_step):
    # Postmark delivery events carry no ID: the event's own facts identify it.
    step = sent_step(message_id="883953f4-6105-42a2-a16a-77a8eac79483")
    payload = postmark_payload(step, record="Delivery")
    for _ in range(5):
        post(client, "postmark", payload)
    assert DeliveryEvent.objects.count() == 1


def test_a_suppressed_customer_is_never_emailed_again(client, sent_step, run, mailoutbox):
    step = sent_step(email="Alice@Example.com")
    post(client, "mailgun", mailgun_payload(step, recipient="alice@example.com"))
    sent_before = len(mailoutbox)
    run(4)  # gentle-reminder is due
    reminder = CaseStep.objects.get(case_id=step.case_id, step_key="gentle-reminder")
    assert reminder.status == CaseStep.Status.FAILED
    assert reminder.reason == "suppressed: bounced"
    assert len(mailoutbox) == sent_before  # nothing handed to the backend
    run(8)  # the schedule goes on, still without email
    formal = CaseStep.objects.get(case_id=step.case_id, step_key="formal-notice")
    assert (formal.status, formal.reason) == (CaseStep.Status.FAILED, "suppressed: bounced")
    assert len(mailoutbox) == sent_before


def test_other_customers_are_still_emailed(client, sent_step, overdue_customer, run, mailoutbox):
    step = sent_step()
    post(client, "mailgun", mailgun_payload(step))
    overdue_customer(name="Bob", email="bob@example.com", due=day(3))
    run(4)
    assert [m.to for m in mailoutbox][-1] == ["bob@example.com"]
    assert CaseStep.objects.get(recipient="bob@example.com").status == CaseStep.Status.SENT


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_the_same_event_posted_concurrently_counts_once(sent_step):
    from django.test import Client

    step = sent_step()
    payload = mailgun_payload(step, token="beef" * 12)
    barrier = threading.Barrier(20)
    codes = []

    def worker():
        try:
            barrier.wait()
            codes.append(post(Client(), "mailgun", payload).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 20
    assert DeliveryEvent.objects.count() == 1
    assert Suppression.objects.count() == 1
    assert CaseEvent.objects.filter(kind=CaseEvent.Kind.NOTE).count() == 1


# -- input anymail or dunning cannot use (issue 14) ------------------------------------------
def test_a_dunning_case_beyond_64_bits_is_not_ours(client, sent_step):
    step = sent_step(message_id="")
    payload = mailgun_payload(step, event="delivered", message_id="<unknown@mg.example.com>")
    payload["event-data"]["user-variables"]["dunning_case"] = "1" * 30
    assert post(client, "mailgun", payload).status_code == 200
    assert not DeliveryEvent.objects.exists()


def test_nul_characters_are_dropped_from_what_is_kept(client, sent_step):
    # PostgreSQL refuses NUL in text and jsonb (run with DUNNING_TEST_DB=postgres).
    step = sent_step()
    payload = postmark_payload(step)
    payload["Description"] = "user\x00unknown"
    payload["Details"] = "smtp;550\x00"
    payload["Metadata"]["note\x00"] = "a\x00b"
    assert post(client, "postmark", payload).status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.description == "userunknown"
    assert "\x00" not in json.dumps(event.esp_event)
    assert event.esp_event["Metadata"]["note"] == "ab"


def test_a_nul_character_in_the_message_id_or_step_key_is_no_crash(client, sent_step):
    step = sent_step(message_id="")
    payload = mailgun_payload(step, event="delivered", message_id="<unknown\x00@mg.example.com>")
    payload["event-data"]["user-variables"]["dunning_step"] = step.step_key + "\x00"
    assert post(client, "mailgun", payload).status_code == 200
    step.refresh_from_db()
    assert step.delivery_status == "delivered"  # found by its metadata, NUL dropped


def test_a_body_anymail_cannot_parse_is_kept_and_answered_200(client, sent_step):
    from dunning.models import UnreadableTrackingEvent

    step = sent_step()
    payload = postmark_payload(step, record="Delivery", at="2026-02-30T10:00:00Z")
    response = post(client, "postmark", payload)
    assert response.status_code == 200  # the ESP stops retrying
    unreadable = UnreadableTrackingEvent.objects.get()
    assert unreadable.esp == "Postmark"
    assert "day is out of range" in unreadable.reason
    assert json.loads(unreadable.body)["DeliveredAt"] == "2026-02-30T10:00:00Z"
    assert not DeliveryEvent.objects.exists()


def test_an_unauthenticated_unreadable_body_is_still_refused_and_not_kept(client, sent_step):
    from dunning.models import UnreadableTrackingEvent

    step = sent_step()
    payload = postmark_payload(step, record="Delivery", at="2026-02-30T10:00:00Z")
    response = client.post("/anymail/postmark/tracking/", data=json.dumps(payload),
                           content_type="application/json")
    assert response.status_code in (400, 401, 403)
    assert not UnreadableTrackingEvent.objects.exists()


def test_unreadable_events_are_listed_read_only_in_the_admin(admin_client):
    from dunning.models import UnreadableTrackingEvent

    UnreadableTrackingEvent.objects.create(esp="Postmark", reason="ValueError: day is out",
                                           body="{}")
    response = admin_client.get("/admin/dunning/unreadabletrackingevent/")
    assert response.status_code == 200
    assert "day is out" in response.content.decode()
    assert admin_client.get("/admin/dunning/unreadabletrackingevent/add/").status_code == 403
