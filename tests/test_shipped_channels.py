"""The shipped texts of the standard policy per channel (dunning/shipped/<lang>/<channel>/),
rendered through the real channel code; the charges and history blocks of the email texts;
and migration 0018, which installs the channel texts and brings untouched stored email
texts up to date."""

import datetime
import importlib
import re
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dunning.channels.base import Outgoing
from dunning.channels.inapp import InAppChannel
from dunning.channels.letter import Addressee, letter_html, offline_url_fetcher, window_lines
from dunning.channels.sms import GSM7, SmsChannel, one_paragraph, segments, to_gsm
from dunning.hosts import CustomerRow
from dunning.messages.rendering import Renderer, babel_locale, build_context, company_context
from dunning.models import CaseStep, MessageTemplate, Notice, Policy
from dunning.shipped import LANGUAGES, MESSAGE_KEYS, STANDARD_POLICY, shipped_message
from dunning.testing import override_dunning_settings

from .conftest import day
from .optional import weasyprint as require_weasyprint

STEP_KEYS = [key for key, _, _ in STANDARD_POLICY["steps"]]
OFFSETS = {key: offset for key, offset, _ in STANDARD_POLICY["steps"]}
CHANNELS = ("sms", "letter", "in_app")
PORTAL_BASE = "https://billing.example-shop.com/"
COMPANY = {"name": "Test Shop GmbH", "email": "billing@example.com", "phone": "+49 30 123456",
           "address": "Hauptstraße 1\n10115 Berlin", "payment_url": "https://pay.example.com"}
INVOICES = [
    {"number": "INV-2026-0041", "amount_due": "1234.50", "currency": "EUR",
     "due_date": "2026-01-20"},
    {"number": "INV-2026-0057", "amount_due": "89.90", "currency": "EUR",
     "due_date": "2026-02-03"},
    {"number": "INV-2026-0063", "amount_due": "450.00", "currency": "EUR",
     "due_date": "2026-02-17"},
]
TOTAL = {"en": "€1,774.40", "de": "1.774,40 €"}
CUSTOMER_PK = 48213

migration_0018 = importlib.import_module("dunning.migrations.0018_channel_templates")


@pytest.fixture(autouse=True)
def site():
    with override_dunning_settings(PORTAL_BASE_URL=PORTAL_BASE, COMPANY=COMPANY,
                                   RENDER_PROCESSES=1):
        yield


def spaces(text):
    """No-break and narrow spaces (Babel's "1.774,40 €") as plain spaces."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


def context(language, key, **extra):
    """A realistic message context: a customer with three overdue invoices."""
    ctx = build_context(
        customer=CustomerRow(CUSTOMER_PK, "Alexandra Lindqvist", "alexandra@example.com",
                             phone="+49 151 23456789", language=language),
        invoices=INVOICES,
        step={"key": key, "offset_days": OFFSETS.get(key, 0), "action": ""},
        as_of=datetime.date(2026, 3, 6),
        locale=babel_locale(language),
        company=company_context(),
        unsubscribe_url="",
    )
    ctx.update(extra)
    return ctx


def render(language, key, channel="email", ctx=None):
    subject, text, html = shipped_message(language, key, channel)
    template = MessageTemplate(subject=subject, text_body=text, html_body=html)
    return Renderer().render(template, ctx if ctx is not None else context(language, key))


def outgoing(key, subject, text, html, recipient="+4915123456789"):
    return Outgoing(case_id=7, customer_id=CUSTOMER_PK, step_key=key, recipient=recipient,
                    subject=subject, text=text, html=html)


EVERY_MESSAGE = [(language, key) for language in LANGUAGES for key in MESSAGE_KEYS]


def test_every_step_and_the_thank_you_has_texts_for_every_channel():
    for channel in CHANNELS:
        for language, key in EVERY_MESSAGE:
            subject, text, html = shipped_message(language, key, channel)
            assert subject.strip() and text.strip(), (channel, language, key)
            assert bool(html) == (channel == "letter"), (channel, language, key)
    assert shipped_message("en", "initial-notice", "call") is None
    assert shipped_message("fr", "initial-notice", "sms") is None
    assert shipped_message("en", "../en/initial-notice", "sms") is None
    # The email texts are where they always were.
    assert shipped_message("en", "initial-notice") == shipped_message(
        "en", "initial-notice", "email")


# -- text messages ----------------------------------------------------------------------------
@pytest.mark.parametrize(("language", "key"), EVERY_MESSAGE)
def test_the_shipped_text_message_fits_two_segments_with_the_portal_link(language, key):
    ctx = context(language, key)
    subject, text, html = render(language, key, "sms", ctx)
    message = SmsChannel().build(outgoing(key, subject, text, html))
    encoding, count = segments(message.body)
    assert (encoding, count <= 2) == (GSM7, True), message.body
    # Written to fit: the channel had nothing to cut.
    assert message.body == one_paragraph(to_gsm(text))
    assert "{" not in message.body and "..." not in message.body
    assert "Test Shop GmbH" in message.body and "Alexandra Lindqvist" in message.body
    if key == "payment-received":
        assert "http" not in message.body
        return
    portal = ctx["portal_url"]
    assert portal.startswith(PORTAL_BASE + "portal/") and len(portal) > 100
    assert message.body.endswith(" " + portal)
    assert spaces(TOTAL[language]) in message.body


def test_without_a_portal_the_text_message_links_the_payment_page():
    with override_dunning_settings(PORTAL_BASE_URL=""):
        subject, text, html = render("de", "final-notice", "sms")
    body = SmsChannel().build(outgoing("final-notice", subject, text, html)).body
    assert body.endswith("Zahlung: https://pay.example.com")
    assert body.startswith("Test Shop GmbH: LETZTE MAHNUNG: Alexandra Lindqvist, 1.774,40 €")


# -- letters ----------------------------------------------------------------------------------
def boxes(box):
    yield box
    for child in getattr(box, "children", ()):
        yield from boxes(child)


def page_text(page):
    return spaces(" ".join(b.text for b in boxes(page._page_box)
                           if type(b).__name__ == "TextBox"))


@pytest.mark.parametrize(("language", "key"), EVERY_MESSAGE)
def test_the_shipped_letter_prints_on_one_page_with_the_invoices(language, key):
    weasyprint = require_weasyprint()
    subject, text, html = render(language, key, "letter")
    person = Addressee("Alexandra Lindqvist", "Musterweg 5\n12345 Musterstadt", language,
                       "Europe/Berlin")
    document = letter_html(outgoing(key, subject, text, html, recipient="letter"), person,
                           window_lines(person.name, person.address),
                           today=datetime.date(2026, 3, 6))
    # Letters are paper: no email frame, no "reply to this email", no unsubscribe link.
    assert "max-width: 640px" not in document
    assert "mail" not in re.sub(r"\S+@\S+", "", html.split("<body", 1)[1]).lower()
    rendered = weasyprint.HTML(string=document, url_fetcher=offline_url_fetcher()).render()
    assert len(rendered.pages) == 1
    assert rendered.write_pdf().startswith(b"%PDF-")
    printed = page_text(rendered.pages[0])
    assert "Alexandra Lindqvist" in printed and "Test Shop GmbH" in printed
    if key != "payment-received":
        for invoice in INVOICES:
            assert invoice["number"] in printed, (language, key, invoice["number"])
        assert spaces(TOTAL[language]) in printed
        assert "pay.example.com" in printed  # how to pay


def test_a_letter_lists_the_charges_when_there_are_some():
    ctx = context("de", "formal-notice", charges=[
        {"label": "Mahngebühr", "amount": "5,00\xa0€", "invoice": "", "period": ""},
        {"label": "Verzugszinsen", "amount": "3,12\xa0€", "invoice": "INV-2026-0041",
         "period": "20.01.2026 bis 06.03.2026"},
    ], charges_total="8,12\xa0€")
    _subject, text, html = render("de", "formal-notice", "letter", ctx)
    for out in (spaces(text), spaces(html)):
        assert "Folgende Kosten haben wir dem offenen Betrag hinzugerechnet" in out
        assert "Verzugszinsen (Rechnung INV-2026-0041), 20.01.2026 bis 06.03.2026" in out
        assert "Kosten gesamt" in out and "8,12 €" in out
    assert "Kosten" not in render("de", "formal-notice", "letter")[2]


# -- in-app notices ---------------------------------------------------------------------------
@pytest.mark.parametrize(("language", "key"), EVERY_MESSAGE)
def test_the_shipped_in_app_notice_is_a_headline_and_a_sentence_or_two(language, key):
    subject, text, html = render(language, key, "in_app")
    notice = InAppChannel().build(outgoing(key, subject, text, html, recipient="in-app"))
    assert notice.title == " ".join(subject.split()) and "{" not in notice.title
    assert notice.text == " ".join(text.split())  # the whole text, not cut
    assert len(notice.text) <= 280 and not notice.text.endswith("\u2026")
    assert 1 <= len(re.findall(r"[.!?](\s|$)", notice.text)) <= 3
    if key == "payment-received":
        assert (notice.level, notice.action_url) == (Notice.Level.INFO, "")
    else:
        assert spaces(TOTAL[language]) in spaces(notice.title + " " + notice.text)
        assert notice.action_url.startswith(PORTAL_BASE + "portal/")


# -- the email texts: charges and the customer's history --------------------------------------
CHARGES = [
    {"label": "Reminder fee", "amount": "€5.00", "invoice": "", "period": ""},
    {"label": "Late-payment interest", "amount": "€3.12", "invoice": "INV-2026-0041",
     "period": "Jan 20 - Mar 6, 2026"},
]
CHARGE_WORDS = {
    "en": ("The following charges have been added to the amount you owe:", "Total charges: €8.12",
           "Late-payment interest (invoice INV-2026-0041), Jan 20 - Mar 6, 2026: €3.12"),
    "de": ("Folgende Kosten haben wir dem offenen Betrag hinzugerechnet:",
           "Kosten gesamt: €8.12",
           "Late-payment interest (Rechnung INV-2026-0041), Jan 20 - Mar 6, 2026: €3.12"),
}


@pytest.mark.parametrize(("language", "key"), EVERY_MESSAGE)
def test_the_email_lists_charges_only_when_there_are_some(language, key):
    intro, total, line = CHARGE_WORDS[language]
    with_charges = context(language, key, charges=CHARGES, charges_total="€8.12")
    _subject, text, html = render(language, key, ctx=with_charges)
    if key == "payment-received":
        assert intro not in text and intro not in html
        return
    assert intro in text and total in text and line in text
    assert "- Reminder fee: €5.00" in text
    assert intro in html and "€8.12" in html and "INV-2026-0041" in html

    without = context(language, key)
    without.pop("charges", None)
    without.pop("charges_total", None)
    for ctx in (context(language, key, charges=[], charges_total=""), without):
        _subject, text, html = render(language, key, ctx=ctx)
        assert intro not in text and intro not in html
        assert total.split(":")[0] not in text
        assert "\n\n\n" not in text  # no gap where the block would be


HISTORY_WORDS = {
    ("en", "initial-notice"): "You have always paid on time in your 26 months with us, so this "
                              "is probably just an oversight.",
    ("de", "initial-notice"): "Sie haben in 26 Monaten bei uns immer pünktlich bezahlt, daher "
                              "ist es sicher nur ein Versehen.",
    ("en", "gentle-reminder"): "As you have always paid reliably since Jan 4, 2024, we assume "
                               "our first reminder simply got lost.",
    ("de", "gentle-reminder"): "Da Sie seit 04.01.2024 immer zuverlässig bezahlt haben, ist "
                               "unsere erste Erinnerung vermutlich untergegangen.",
}
GOOD_PAYER = {"months_as_customer": 26, "customer_since": "Jan 4, 2024", "on_time_rate": 96,
              "invoices_paid": 25, "past_cases": 0, "first_time_late": 1}


@pytest.mark.parametrize(("language", "key"), sorted(HISTORY_WORDS))
def test_a_first_time_late_payer_with_a_good_record_hears_it_is_probably_an_oversight(
        language, key):
    history = dict(GOOD_PAYER)
    if language == "de":
        history["customer_since"] = "04.01.2024"
    sentence = HISTORY_WORDS[(language, key)]
    _subject, text, html = render(language, key, ctx=context(language, key, history=history))
    assert sentence in text and sentence in html

    others = [
        {**history, "first_time_late": 0, "past_cases": 2},  # late before
        {**history, "on_time_rate": 85},                      # not a good record
        {**history, "on_time_rate": None},                    # nothing paid yet
    ]
    for other in others:
        _subject, text, html = render(language, key, ctx=context(language, key, history=other))
        assert sentence not in text and sentence not in html
    # An older caller without the history: renders, without the sentence.
    ctx = context(language, key)
    ctx.pop("history", None)
    _subject, text, html = render(language, key, ctx=ctx)
    assert sentence[:20] not in text and sentence[:20] not in html
    assert "Alexandra Lindqvist" in text


def test_the_history_sentence_without_the_tenure():
    history = {**GOOD_PAYER, "months_as_customer": None, "customer_since": ""}
    text = render("en", "initial-notice", ctx=context("en", "initial-notice",
                                                          history=history))[1]
    assert "it happens to all of us. You have always paid on time, so this is probably" in text
    text = render("de", "gentle-reminder", ctx=context("de", "gentle-reminder",
                                                           history=history))[1]
    assert "Da Sie bisher immer zuverlässig bezahlt haben" in text
    one = render("en", "initial-notice", ctx=context(
        "en", "initial-notice", history={**GOOD_PAYER, "months_as_customer": 1}))[1]
    assert "in your 1 month with us" in one


# -- a run, the admin ---------------------------------------------------------------------------
@pytest.fixture
def at_ten(run):
    from django.utils import timezone

    def do(n):
        date = day(n)
        return run(date, now=datetime.datetime.combine(
            date, datetime.time(10), tzinfo=timezone.get_current_timezone()))
    return do


def test_a_run_sends_the_shipped_text_message_and_writes_the_shipped_notice(
        overdue_customer, at_ten, mailoutbox):
    from dunning.channels.sms_backends import locmem

    policy = Policy.objects.get(key="standard")
    policy.steps.filter(key="initial-notice").update(channel="sms")
    policy.steps.filter(key="gentle-reminder").update(channel="in_app")
    ada = overdue_customer(name="Ada Lovelace", phone="+49 151 23456789", language="de")
    locmem.outbox.clear()
    try:
        with override_dunning_settings(SMS_BACKEND="dunning.channels.sms_backends.locmem"
                                                   ".SmsBackend"):
            at_ten(1)
            at_ten(4)
        [sms] = locmem.outbox
    finally:
        locmem.outbox.clear()
    assert sms.body.startswith("Test Shop GmbH: Guten Tag Ada Lovelace, freundliche "
                               "Erinnerung: 100,00 € für 1 Rechnung sind fällig.")
    assert re.search(r"Details: https://billing\.example-shop\.com/portal/\S+/$", sms.body)
    notice = Notice.objects.get(customer_id=ada.pk)
    assert spaces(notice.title) == "Zweite Erinnerung: 100,00 € noch offen"
    assert spaces(notice.text).startswith("Ihre Zahlung über 100,00 € ist bei uns noch nicht")
    assert list(CaseStep.objects.order_by("executed_on").values_list("channel", "status")) == [
        ("sms", "sent"), ("in_app", "sent")]
    assert mailoutbox == []


def test_a_run_with_reminder_fees_lists_them_in_the_shipped_email(overdue_customer, at_ten,
                                                                    mailoutbox):
    policy = Policy.objects.get(key="standard")
    policy.fee_rule = {"fixed": {"EUR": "5.00"}}  # the first reminder is free
    policy.save()
    overdue_customer(name="Ada Lovelace", email="ada@example.com")
    at_ten(1)
    at_ten(4)
    first, second = mailoutbox
    intro = "The following charges have been added to the amount you owe:"
    assert intro not in first.body and "Total charges" not in first.body
    assert intro in second.body
    assert "\n- Reminder fee: €5.00\nTotal charges: €5.00\n" in spaces(second.body)
    html = spaces(second.alternatives[0][0])
    assert intro in html and "€5.00" in html


def test_reset_to_the_shipped_text_uses_the_templates_channel(admin_client):
    template = MessageTemplate.objects.get(policy__key="standard", step_key="suspension",
                                           channel="sms", language="en", variant="")
    template.text_body = "Our own words"
    template.save()
    response = admin_client.post("/admin/dunning/messagetemplate/", {
        "action": "reset_to_shipped", "_selected_action": [template.pk]}, follow=True)
    assert response.status_code == 200
    template.refresh_from_db()
    assert (template.subject, template.text_body, template.html_body) == shipped_message(
        "en", "suspension", "sms")
    email = MessageTemplate.objects.get(policy__key="standard", step_key="suspension",
                                        channel="email", language="en", variant="")
    assert email.text_body != template.text_body


# -- migration 0018 -----------------------------------------------------------------------------
def earlier_version(language, key):
    """The email text as shipped before the charges block: the current text without it
    (checked against the fingerprints of the earlier versions the migration knows)."""
    subject, text, html = shipped_message(language, key)
    start, end = text.index("{% if charges %}"), text.index("{{ charges_total }}\n{% endif %}")
    text = text[:start] + text[end + len("{{ charges_total }}\n{% endif %}"):]
    tail = "{{ charges_total }}</th></tr></tfoot>\n</table>{% endif %}\n"
    start, end = html.index("{% if charges %}"), html.index(tail)
    html = html[:start] + html[end + len(tail):]
    assert migration_0018.fingerprint(subject, text, html) in migration_0018.EARLIER_VERSIONS[
        (language, key)]
    return subject, text, html


def test_the_migration_knows_the_texts_it_replaces():
    for language in LANGUAGES:
        for key in ("card-expiring-30", "account-updater-consent"):
            # Unchanged in this release: the current text is the last earlier version.
            assert migration_0018.fingerprint(*shipped_message(language, key)) in (
                migration_0018.EARLIER_VERSIONS[(language, key)])
        for key in STEP_KEYS:
            # Changed (the charges block): the new text is not an earlier one.
            assert migration_0018.fingerprint(*shipped_message(language, key)) not in (
                migration_0018.EARLIER_VERSIONS[(language, key)])
    assert {key for _language, key in migration_0018.EARLIER_VERSIONS} >= set(MESSAGE_KEYS)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migration_0018_installs_channel_texts_and_upgrades_untouched_emails():
    before = [("dunning", "0017_customer_history")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    HistoricalPolicy = apps.get_model("dunning", "Policy")
    Template = apps.get_model("dunning", "MessageTemplate")
    standard = HistoricalPolicy.objects.get(key="standard")
    # An installation from before 0018: email texts only ...
    Template.objects.filter(policy=standard, channel__in=CHANNELS).delete()
    # ... but a text message of its own for one step (kept), and a variant (no control).
    Template.objects.create(policy=standard, step_key="initial-notice", channel="sms",
                            language="en", subject="-", text_body="Our own SMS")
    Template.objects.create(policy=standard, step_key="suspension", channel="letter",
                            language="de", variant="b", subject="B", text_body="Brief B")

    def email(policy, language, key):
        return Template.objects.filter(policy=policy, channel="email", language=language,
                                       step_key=key)

    # Never touched since it was installed by an earlier version.
    old = earlier_version("en", "formal-notice")
    email(standard, "en", "formal-notice").update(
        subject=old[0], text_body=old[1], html_body=old[2])
    # Opened and saved unchanged in the admin: the browser's CRLF, the form's stripping.
    old = earlier_version("de", "termination")
    email(standard, "de", "termination").update(
        subject=old[0], text_body=old[1].strip().replace("\n", "\r\n"),
        html_body=old[2].strip().replace("\n", "\r\n"))
    # Edited: one word of the old text changed.
    old = earlier_version("en", "termination")
    edited = old[1].replace("Kind regards", "Best wishes")
    email(standard, "en", "termination").update(
        subject=old[0], text_body=edited, html_body=old[2])
    # Another policy's copy of an old shipped text is upgraded too.
    strict = HistoricalPolicy.objects.create(key="strict", name="Strict")
    old = earlier_version("de", "final-notice")
    Template.objects.create(policy=strict, step_key="final-notice", channel="email",
                            language="de", subject=old[0], text_body=old[1], html_body=old[2])

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    def current(policy_key, language, key, channel="email", variant=""):
        t = MessageTemplate.objects.get(policy__key=policy_key, step_key=key, channel=channel,
                                        language=language, variant=variant)
        return t.subject, t.text_body, t.html_body

    assert current("standard", "en", "formal-notice") == shipped_message("en", "formal-notice")
    assert current("standard", "de", "termination") == shipped_message("de", "termination")
    assert current("strict", "de", "final-notice") == shipped_message("de", "final-notice")
    # The edited one is as its editor left it.
    assert current("standard", "en", "termination")[1] == edited
    # The channel texts of every step and the thank-you, in every language ...
    for channel in CHANNELS:
        for language, key in EVERY_MESSAGE:
            if (channel, language, key) == ("sms", "en", "initial-notice"):
                continue
            assert current("standard", language, key, channel) == shipped_message(
                language, key, channel), (channel, language, key)
    # ... but the site's own text stays, and the variant is left as it was.
    assert current("standard", "en", "initial-notice", "sms")[1] == "Our own SMS"
    assert current("standard", "de", "suspension", "letter", "b")[1] == "Brief B"
    # Only the standard policy gets them.
    assert not MessageTemplate.objects.filter(policy__key="strict").exclude(
        channel="email").exists()
    assert MessageTemplate.objects.filter(policy__key="standard", variant="").exclude(
        channel="email").count() == len(CHANNELS) * len(EVERY_MESSAGE)

    # Running it again changes nothing.
    snapshot = list(MessageTemplate.objects.order_by("pk").values_list(
        "pk", "subject", "text_body", "html_body"))
    apps = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps
    migration_0018.forwards(apps, SimpleNamespace(connection=connection))
    assert list(MessageTemplate.objects.order_by("pk").values_list(
        "pk", "subject", "text_body", "html_body")) == snapshot
