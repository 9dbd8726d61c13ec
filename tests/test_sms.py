"""The SMS channel (dunning.channels.sms) and its backends (dunning.channels.sms_backends).

The Twilio backend runs on the official ``twilio`` library against recorded responses of
the Messages API (tests/fixtures/twilio), answered by a ``twilio.http.HttpClient``
subclass: no network.
"""

import datetime
import io
import logging
from pathlib import Path

import pytest
import requests
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone, translation
from twilio.http import HttpClient
from twilio.http.response import Response

from dunning.channels.base import Outgoing
from dunning.channels.sms import SmsChannel, SmsMessage, fit, normalize_phone, segments
from dunning.channels.sms_backends import console, filebased, locmem
from dunning.channels.sms_backends import twilio as twilio_backend
from dunning.channels.sms_backends.base import BaseSmsBackend, SmsResult
from dunning.checks import check_settings
from dunning.engine.outbox import drain
from dunning.hosts import CustomerRow
from dunning.models import Case, CaseStep
from dunning.testing import override_dunning_settings

FIXTURES = Path(__file__).parent / "fixtures" / "twilio"
ACCOUNT = "AC3f9c1b2e7d8a4c5b6e0f1a2b3c4d5e6f"
LOCMEM = "dunning.channels.sms_backends.locmem.SmsBackend"
SMS_CHANNEL = "dunning.channels.sms.SmsChannel"
LINK = "https://shop.example/dunning/portal/eyJjIjoiNDIifQ:1tXyZa:k9Qp3LmN0vR8sT2uW4xY6zA1bC3dE5fG7hI9jK1lM3n/"


@pytest.fixture(autouse=True)
def empty_locmem_outbox():
    locmem.outbox.clear()
    yield
    locmem.outbox.clear()


def customer(phone):
    return CustomerRow(pk=1, name="Ann", email="ann@example.com", phone=phone)


# -- phone numbers ---------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("0151 23456789", "DE", "+4915123456789"),  # national, with the region
    ("0151-2345 6789", "de", "+4915123456789"),  # the region in any case
    ("+49 151 23456789", None, "+4915123456789"),  # international, no region needed
    ("+49 (0)151 2345-6789", None, "+4915123456789"),
    ("00 49 151 23456789", "DE", "+4915123456789"),  # the region's international prefix
    ("+43 664 1234567", "DE", "+436641234567"),  # another country's mobile
    ("(650) 253-0000", "US", "+16502530000"),  # may be mobile (FIXED_LINE_OR_MOBILE): kept
])
def test_phone_numbers_are_normalized_to_e164(raw, region, expected):
    with override_dunning_settings(SMS_DEFAULT_REGION=region):
        assert SmsChannel().recipient(customer(raw)) == (expected, "")


@pytest.mark.parametrize(("raw", "region", "reason"), [
    ("", "DE", "no phone number"),
    ("   ", "DE", "no phone number"),
    ("0151 23456789", None, "has no country code"),  # national without a region
    ("+49 151", None, "invalid phone number: +49 151"),  # too short
    ("12", "DE", "invalid phone number: 12"),
    ("call me", "DE", "invalid phone number: call me"),
    ("+44 7700 900123", None, "invalid phone number"),  # a range never assigned
    ("030 1234567", "DE", "not a mobile number (a fixed line): 030 1234567"),
    ("+44 20 7946 0958", None, "a fixed line"),
])
def test_unusable_phone_numbers_are_refused_with_a_reason(raw, region, reason):
    with override_dunning_settings(SMS_DEFAULT_REGION=region):
        address, why = SmsChannel().recipient(customer(raw))
    assert address == ""
    assert reason in why


def test_a_host_customer_without_phone_attribute_has_no_phone_number():
    assert normalize_phone(None) == ("", "no phone number")
    assert SmsChannel().recipient(object())[1] == "no phone number"


def test_refusal_reasons_are_translated():
    with override_dunning_settings(SMS_DEFAULT_REGION="DE"), translation.override("de"):
        assert SmsChannel().recipient(customer(""))[1] == "keine Telefonnummer"
        assert "Festnetz" in SmsChannel().recipient(customer("030 1234567"))[1]


# -- segments ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("", ("GSM-7", 1)),
    ("a" * 160, ("GSM-7", 1)),
    ("a" * 161, ("GSM-7", 2)),
    ("a" * 306, ("GSM-7", 2)),
    ("a" * 307, ("GSM-7", 3)),
    ("Grüße, Ihr Zahlungsrückstand: ÄÖÜß äöü é ñ", ("GSM-7", 1)),  # in the basic alphabet
    ("€" * 80, ("GSM-7", 1)),  # the extension table counts 2: 160 septets
    ("€" * 81, ("GSM-7", 2)),
    ("a" * 159 + "^", ("GSM-7", 2)),  # 161 septets
    ("a" * 158 + "^", ("GSM-7", 1)),
    ("{[~|\\]}" + "a" * 146, ("GSM-7", 1)),  # 14 + 146 = 160
    # An escaped character is never split between segments: 152 + (2) + 152 = 306
    # septets, yet three segments (152 | 2 + 151 | 1).
    ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),
    ("a" * 152 + "€" + "a" * 151, ("GSM-7", 2)),
    ("Ж" * 70, ("UCS-2", 1)),
    ("Ж" * 71, ("UCS-2", 2)),
    ("Ж" * 134, ("UCS-2", 2)),
    ("Ж" * 135, ("UCS-2", 3)),
    ("Thanks! 😀", ("UCS-2", 1)),  # one emoji makes the whole message UCS-2
    ("a" * 69 + "😀", ("UCS-2", 2)),  # an emoji is 2 UTF-16 units: 71
    ("😀" * 35, ("UCS-2", 1)),
    ("😀" * 36, ("UCS-2", 2)),
    ("a" * 66 + "😀" + "a" * 66, ("UCS-2", 3)),  # the surrogate pair is not split
    ("a" * 160 + "\u00a0", ("UCS-2", 3)),  # a non-breaking space is not GSM-7
])
def test_segments_count_gsm7_and_ucs2(text, expected):
    assert segments(text) == expected


# -- fitting ---------------------------------------------------------------------------------
GERMAN = ("Sehr geehrte Frau Müller, trotz unserer Erinnerung ist die Rechnung RE-2026-0042 "
          "über 1.234,56\u00a0€ seit 14 Tagen überfällig. Bitte überweisen Sie den Betrag "
          "umgehend. Zahlungstermin zusagen oder Ratenzahlung anfragen: {link}\n\n"
          "Falls Sie bereits gezahlt haben, betrachten Sie diese Nachricht bitte als "
          "gegenstandslos. Mit freundlichen Grüßen, Ihr Test Shop")
RUSSIAN = ("Уважаемая Анна, счёт RE-2026-0042 на сумму 1 234,56 € просрочен на 14 дней. "
           "Пожалуйста, оплатите его как можно скорее. Договориться о дате оплаты: {link} "
           "Если вы уже оплатили, не обращайте внимания на это сообщение.")
EMOJI = ("Hi Ann 👋 your invoice INV-7 is overdue 😟 please pay soon or tell us when you can, "
         "it takes a minute: {link} thank you so much, your friends at the Test Shop team 🙏")


@pytest.mark.parametrize(("template", "max_segments", "encoding"), [
    (GERMAN, 1, "GSM-7"),
    (GERMAN, 2, "GSM-7"),
    (RUSSIAN, 2, "UCS-2"),
    (RUSSIAN, 3, "UCS-2"),
    (EMOJI, 2, "UCS-2"),
])
def test_long_texts_are_shortened_at_a_word_with_the_link_whole_at_the_end(
        template, max_segments, encoding):
    text = template.format(link=LINK)
    body = fit(text, max_segments)
    enc, count = segments(body)
    assert (enc, count <= max_segments) == (encoding, True)
    assert segments(" ".join(text.split()))[1] > max_segments  # it really was too long
    assert body.endswith(" " + LINK)
    assert body.count(LINK) == 1
    head = body[: -len(LINK) - 1]
    ellipsis = "..." if encoding == "GSM-7" else "…"
    assert head.endswith(ellipsis)
    kept = head[: -len(ellipsis)]
    words = " ".join(text.replace(LINK, " ").split()).replace("\u00a0", " ").split(" ")
    # Whole words from the start, in order, as many as fit: one more would not.
    kept_words = kept.split(" ")
    assert kept_words == words[: len(kept_words)]
    longer = " ".join(words[: len(kept_words) + 1]) + ellipsis + " " + LINK
    assert segments(longer)[1] > max_segments


def test_a_text_that_fits_is_sent_as_one_paragraph_unchanged():
    text = "Dear Ann,\n\nyour invoice INV-7 is overdue.\nPay here: https://pay.example.com/7\n"
    assert fit(text, 1) == "Dear Ann, your invoice INV-7 is overdue. Pay here: https://pay.example.com/7"


def test_typographic_characters_do_not_force_ucs2():
    text = "„Zahlung“ – bitte bis Montag: 1.234,56\u00a0€\u202fdanke…"
    body = fit(text, 1)
    assert body == '"Zahlung" - bitte bis Montag: 1.234,56 € danke...'
    assert segments(body) == ("GSM-7", 1)


def test_the_portal_link_is_kept_rather_than_another_link():
    text = ("Pay now: https://pay.example.com/checkout?invoice=7 " + "blah " * 80
            + f"Promise a date online: {LINK} Kind regards, Test Shop")
    with override_dunning_settings(PORTAL_BASE_URL="https://shop.example/dunning/"):
        body = fit(text, 2)
    assert body.endswith(LINK) and segments(body)[1] <= 2
    # Without a portal base URL, the last link of the text is kept.
    assert fit(text.replace(LINK, "https://example.com/last"), 1).endswith("https://example.com/last")


def test_a_text_without_link_is_shortened_with_an_ellipsis():
    body = fit("word " * 100, 1)
    assert body.endswith("word...") and segments(body) == ("GSM-7", 1)


def test_a_given_portal_link_not_in_the_text_is_appended():
    assert fit("Your invoice is overdue.", 1, link=LINK) == f"Your invoice is overdue. {LINK}"


def test_a_link_longer_than_the_limit_is_still_sent_whole(caplog):
    link = "https://example.com/" + "x" * 200
    with caplog.at_level(logging.WARNING, logger="dunning.sms"):
        assert fit(f"Pay: {link}", 1) == link
    assert "alone is longer" in caplog.text


def test_a_single_overlong_word_is_cut_inside():
    body = fit("x" * 400 + " " + LINK, 1)
    assert body.endswith("... " + LINK) and segments(body)[1] == 1


# -- building ---------------------------------------------------------------------------------
def outgoing(text, recipient="+4915123456789", case_id=7, step="initial-notice"):
    return Outgoing(case_id=case_id, customer_id=42, step_key=step, recipient=recipient,
                    subject="Reminder", text=text, html="<p>ignored</p>")


def test_build_makes_one_fitted_message_with_metadata():
    text = GERMAN.format(link=LINK)
    with override_dunning_settings(SMS_FROM="TestShop", SMS_MAX_SEGMENTS=1):
        message = SmsChannel().build(outgoing(text))
    assert isinstance(message, SmsMessage)
    assert message.to == "+4915123456789"
    assert message.sender == "TestShop"
    assert message.metadata == {"dunning_case": "7", "dunning_step": "initial-notice",
                                "customer": "42"}
    assert message.body.endswith(LINK) and message.segment_count == 1


def test_the_default_is_two_segments():
    message = SmsChannel().build(outgoing(GERMAN.format(link=LINK)))
    assert message.segment_count == 2 and message.body.endswith(LINK)


def test_an_empty_message_cannot_be_built():
    with pytest.raises(ValueError, match="empty"):
        SmsChannel().build(Outgoing(1, 2, "x", "+4915123456789", "", "  \n ", None))


# -- the development backends ---------------------------------------------------------------------
def messages(*numbers):
    return [SmsMessage(to=n, body=f"Hello {n}", metadata={"dunning_case": str(i)},
                       sender="TestShop") for i, n in enumerate(numbers, 1)]


def test_the_console_backend_is_the_default_and_prints_each_message(capsys):
    outcomes = SmsChannel().send(messages("+4915123456789", "+4917612345678"))
    assert [(o.ok, o.transient) for o in outcomes] == [(True, False), (True, False)]
    out = capsys.readouterr().out
    assert "To: +4915123456789" in out and "To: +4917612345678" in out
    assert "Hello +4917612345678" in out and "From: TestShop" in out
    assert "X-dunning_case: 1" in out and "Segments: 1 (GSM-7)" in out


def test_the_console_backend_writes_to_a_given_stream():
    stream = io.StringIO()
    with console.SmsBackend(stream=stream) as backend:
        assert backend.send_messages(messages("+4915123456789")) == [SmsResult(True)]
    assert "Hello +4915123456789" in stream.getvalue()


def test_the_file_backend_writes_one_file_per_batch(tmp_path):
    folder = tmp_path / "sms"
    with override_dunning_settings(SMS_BACKEND="dunning.channels.sms_backends.filebased.SmsBackend",
                                   SMS_FILE_PATH=str(folder)):
        SmsChannel().send(messages("+4915123456789", "+4917612345678"))
        SmsChannel().send(messages("+436641234567"))
    files = sorted(folder.iterdir())
    assert len(files) == 2
    contents = sorted(f.read_text(encoding="utf-8") for f in files)
    assert sorted(c.count("To: ") for c in contents) == [1, 2]
    assert any("Hello +436641234567" in c for c in contents)


def test_the_file_backend_needs_a_folder(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="SMS_FILE_PATH"):
        filebased.SmsBackend()
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ImproperlyConfigured, match="not a folder"):
        filebased.SmsBackend(file_path=a_file)


def test_the_locmem_backend_keeps_messages_and_gives_ids():
    with override_dunning_settings(SMS_BACKEND=LOCMEM):
        outcomes = SmsChannel().send(messages("+4915123456789", "+4917612345678"))
    assert [m.to for m in locmem.outbox] == ["+4915123456789", "+4917612345678"]
    assert all(o.ok and o.message_id.startswith("locmem-") for o in outcomes)
    assert len({o.message_id for o in outcomes}) == 2


def test_backend_options_come_from_the_settings():
    with override_dunning_settings(SMS_BACKEND=LOCMEM, SMS_BACKEND_OPTIONS={
            "failures": {"+4917612345678": SmsResult(False, reason="blocked")}}):
        outcomes = SmsChannel().send(messages("+4915123456789", "+4917612345678"))
    assert [(o.ok, o.reason) for o in outcomes] == [(True, ""), (False, "blocked")]
    with override_dunning_settings(SMS_BACKEND=LOCMEM, SMS_BACKEND_OPTIONS={"colour": "red"}):
        # A backend that cannot be built sent nothing: every message is retried later.
        outcomes = SmsChannel().send(messages("+4915123456789"))
    assert outcomes[0].transient and "colour" in outcomes[0].reason


class Exploding(BaseSmsBackend):
    def open(self):
        raise ConnectionRefusedError("provider down")


class Miscounting(BaseSmsBackend):
    def send_messages(self, messages):
        return [SmsResult(True)]


def test_a_backend_that_cannot_open_makes_every_message_transient():
    outcomes = SmsChannel(backend=Exploding()).send(messages("+4915123456789", "+4917612345678"))
    assert [(o.ok, o.transient) for o in outcomes] == [(False, True), (False, True)]
    assert "provider down" in outcomes[0].reason


def test_a_backend_that_cannot_open_reached_nobody_so_the_outbox_charges_nothing():
    outcomes = SmsChannel(backend=Exploding()).send(messages("+4915123456789", "+4917612345678"))
    assert [o.reached for o in outcomes] == [False, False]


def test_a_backend_that_loses_results_is_an_error_not_a_guess():
    with pytest.raises(RuntimeError, match="1 results for 2 messages"):
        SmsChannel(backend=Miscounting()).send(messages("+4915123456789", "+4917612345678"))


def test_nothing_to_send_opens_nothing():
    assert SmsChannel(backend=Exploding()).send([]) == []


# -- Twilio, against recorded responses -------------------------------------------------------------
class RecordedHttpClient(HttpClient):
    """twilio-python's HTTP seam answering with recorded bodies; no network."""

    def __init__(self, *responses):
        super().__init__(logging.getLogger("tests.twilio"), is_async=False, timeout=None)
        self.responses = list(responses)
        self.requests = []

    def request(self, method, uri, params=None, data=None, headers=None, auth=None,
                timeout=None, allow_redirects=False):
        self.requests.append({"method": method, "uri": uri, "data": dict(data or {}),
                              "auth": auth})
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        status, name = response
        return Response(status, (FIXTURES / name).read_text(encoding="utf-8"),
                        {"Content-Type": "application/json",
                         "Twilio-Request-Id": "RQ0123456789abcdef0123456789abcdef"})


def twilio(*responses, **options):
    http = RecordedHttpClient(*responses)
    options.setdefault("sender", "+4915735981234")
    backend = twilio_backend.SmsBackend(account_sid=ACCOUNT, auth_token="recorded-token",
                                        http_client=http, **options)
    return SmsChannel(backend=backend), http


SENT = (True, False, "SM1d2c3b4a59687f0e1d2c3b4a59687f0e", "")


@pytest.mark.parametrize(("response", "expected"), [
    ((201, "message_queued.json"), SENT),
    ((400, "error_21211_invalid_to.json"), (False, False, "", "21211")),  # invalid number
    ((400, "error_21610_unsubscribed.json"), (False, False, "", "21610")),  # replied STOP
    ((429, "error_20429_too_many_requests.json"), (False, True, "", "20429")),
    ((500, "error_20500_internal.json"), (False, True, "", "20500")),
    ((401, "error_20003_authenticate.json"), (False, True, "", "20003")),  # fix the key
    (requests.exceptions.ReadTimeout("read timed out"), (False, True, "", "ReadTimeout")),
    (requests.exceptions.ConnectionError("Connection refused"),
     (False, True, "", "ConnectionError")),
])
def test_twilio_answers_become_outcomes(response, expected):
    channel, http = twilio(response)
    [outcome] = channel.send(messages("+4915123456789"))
    ok, transient, message_id, in_reason = expected
    assert (outcome.ok, outcome.transient, outcome.message_id) == (ok, transient, message_id)
    assert in_reason in outcome.reason
    [request] = http.requests
    assert request["method"] == "POST"
    assert request["uri"] == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert request["data"] == {"To": "+4915123456789", "From": "TestShop",
                               "Body": "Hello +4915123456789"}
    assert request["auth"] == (ACCOUNT, "recorded-token")


def test_twilio_batch_keeps_order_and_one_failure_loses_no_other():
    channel, http = twilio(
        (201, "message_queued.json"),
        (400, "error_21211_invalid_to.json"),
        (500, "error_20500_internal.json"),
        (201, "message_queued_2.json"),
        (400, "error_21610_unsubscribed.json"),
    )
    numbers = ["+4915123456789", "+4930123", "+4915211111111", "+4917612345678",
               "+4916033333333"]
    outcomes = channel.send(messages(*numbers))
    assert [r["data"]["To"] for r in http.requests] == numbers
    assert [(o.ok, o.transient, o.message_id) for o in outcomes] == [
        (True, False, "SM1d2c3b4a59687f0e1d2c3b4a59687f0e"),
        (False, False, ""),
        (False, True, ""),
        (True, False, "SM9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b"),
        (False, False, ""),
    ]
    assert "not a valid phone number" in outcomes[1].reason
    assert "unsubscribed" in outcomes[4].reason
    # Only the STOP reply is an opt-out (the outbox writes it into the consent log).
    assert [o.opted_out for o in outcomes] == [False, False, False, False, True]


def test_twilio_sender_from_settings_and_messaging_service():
    with override_dunning_settings(SMS_FROM="+4915735981234"):
        channel, http = twilio((201, "message_queued.json"), sender=None,
                               messaging_service_sid="MG0123456789abcdef0123456789abcdef",
                               status_callback="https://shop.example/twilio/status/")
        [message] = messages("+4915123456789")
        message.sender = ""
        channel.send([message])
    assert http.requests[0]["data"] == {
        "To": "+4915123456789", "From": "+4915735981234",
        "MessagingServiceSid": "MG0123456789abcdef0123456789abcdef",
        "StatusCallback": "https://shop.example/twilio/status/",
        "Body": "Hello +4915123456789",
    }


def test_twilio_without_credentials_sends_nothing_and_retries_later(monkeypatch):
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    with pytest.raises(ImproperlyConfigured, match="TWILIO_ACCOUNT_SID"):
        twilio_backend.SmsBackend(sender="+4915735981234")
    with override_dunning_settings(SMS_BACKEND="dunning.channels.sms_backends.twilio.SmsBackend"):
        outcomes = SmsChannel().send(messages("+4915123456789"))
    assert (outcomes[0].ok, outcomes[0].transient) == (False, True)
    # Credentials from the environment are used.
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "env-token")
    backend = twilio_backend.SmsBackend(sender="+4915735981234")
    assert backend.client.auth == (ACCOUNT, "env-token")
    with pytest.raises(ImproperlyConfigured, match="sender"):
        twilio_backend.SmsBackend()


# -- the outbox: a whole run with the SMS channel ---------------------------------------------------
def test_a_run_sends_fitted_text_messages_through_the_outbox(overdue_customer, run):
    ok = overdue_customer(name="Ann", phone="0151 23456789")
    fixed = overdue_customer(name="Bob", phone="030 1234567")
    busy = overdue_customer(name="Cy", phone="+49 176 12345678")
    down = SmsResult(False, reason="Twilio error 20500 (HTTP 500): down", transient=True)
    with override_dunning_settings(
        EMAIL_CHANNEL=SMS_CHANNEL, SMS_BACKEND=LOCMEM, SMS_DEFAULT_REGION="DE",
        SMS_BACKEND_OPTIONS={"failures": {"+4917612345678": down}}, RENDER_PROCESSES=1,
    ):
        result = run(1)
    assert (result.sent, result.failed, result.retrying) == (1, 1, 1)
    steps = {s.case.customer_id: s for s in CaseStep.objects.select_related("case")}
    sent = steps[ok.pk]
    assert (sent.status, sent.recipient) == (CaseStep.Status.SENT, "+4915123456789")
    [message] = locmem.outbox
    assert sent.message_id and message.to == "+4915123456789"
    assert message.metadata["dunning_case"] == str(sent.case_id)
    assert message.segment_count <= 2 and "\n" not in message.body
    assert message.body.endswith("https://pay.example.com")  # the message's link, whole
    assert "Ann" in message.body
    failed = steps[fixed.pk]
    assert failed.status == CaseStep.Status.FAILED and "fixed line" in failed.reason
    assert Case.objects.get(pk=failed.case_id).needs_person
    retrying = steps[busy.pk]
    assert (retrying.status, retrying.attempts) == (CaseStep.Status.QUEUED, 1)
    assert "down" in retrying.reason and retrying.next_attempt_at > timezone.now()
    # The provider is back and the retry is due: the outbox's drain sends it.
    CaseStep.objects.filter(pk=retrying.pk).update(
        next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))
    with override_dunning_settings(
        EMAIL_CHANNEL=SMS_CHANNEL, SMS_BACKEND=LOCMEM, SMS_DEFAULT_REGION="DE",
        RENDER_PROCESSES=1,
    ):
        assert drain().sent == 1
    retrying.refresh_from_db()
    assert (retrying.status, retrying.attempts) == (CaseStep.Status.SENT, 2)
    assert [m.to for m in locmem.outbox] == ["+4915123456789", "+4917612345678"]


# -- system checks --------------------------------------------------------------------------------
def sms_errors():
    return sorted((m.id, m.msg) for m in check_settings() if m.id in
                  {"dunning.E020", "dunning.E021", "dunning.E022"})


def test_the_default_sms_settings_pass_the_checks():
    assert sms_errors() == []
    with override_dunning_settings(SMS_DEFAULT_REGION="de", SMS_MAX_SEGMENTS=5,
                                   SMS_BACKEND=LOCMEM):
        assert sms_errors() == []


@pytest.mark.parametrize(("settings", "error_id", "text"), [
    ({"SMS_BACKEND": "no.such.Backend"}, "dunning.E020", "cannot be imported"),
    ({"SMS_BACKEND": "dunning.channels.sms.SmsMessage"}, "dunning.E020", "not an SMS backend"),
    ({"SMS_BACKEND_OPTIONS": ["sid"]}, "dunning.E020", "must be a dict"),
    ({"SMS_DEFAULT_REGION": "XX"}, "dunning.E021", "'XX'"),
    ({"SMS_DEFAULT_REGION": "Germany"}, "dunning.E021", "'Germany'"),
    ({"SMS_DEFAULT_REGION": 49}, "dunning.E021", "49"),
    ({"SMS_MAX_SEGMENTS": 0}, "dunning.E022", "not 0"),
    ({"SMS_MAX_SEGMENTS": "2"}, "dunning.E022", "not '2'"),
    ({"SMS_MAX_SEGMENTS": True}, "dunning.E022", "not True"),
])
def test_bad_sms_settings_are_reported(settings, error_id, text):
    with override_dunning_settings(**settings):
        messages = [m for m in check_settings() if m.id == error_id]
    assert len(messages) == 1, messages
    [message] = messages
    assert isinstance(message, Error) and text in message.msg and message.hint
