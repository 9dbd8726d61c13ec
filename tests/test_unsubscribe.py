"""The unsubscribe link (dunning.unsubscribe): every reminder carries it in its text, its
HTML and its List-Unsubscribe headers (RFC 2369 / RFC 8058); legally required notices
carry none and say they are required; the page changes nothing on GET, opts out on POST
(CSRF-protected) and by the mail provider's one-click POST (without CSRF token); the
opt-out is one consent-log entry that the next run honours."""

import html
import re
import time

import pytest
from anymail.signals import AnymailTrackingEvent
from django.test import Client

from dunning.models import Case, CaseEvent, CaseStep, Consent, Invoice, Step
from dunning.models.consent import channel_topic, opted_out_channels
from dunning.portal.tokens import make_token as portal_token
from dunning.portal.tokens import revoke_links
from dunning.testing import override_dunning_settings
from dunning.tracking import record_tracking_event
from dunning.unsubscribe import make_token, read_token

BASE = "https://shop.example/dunning/"
LINK = re.compile(re.escape(BASE) + r"unsubscribe/([^/\s\"<>]+)/")
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
REQUIRED_EN = "This notice is required by law and is sent even if you opted out of reminders."
REQUIRED_DE = "Dieser Hinweis ist gesetzlich vorgeschrieben"


@pytest.fixture(autouse=True)
def base_url():
    with override_dunning_settings(PORTAL_BASE_URL=BASE):
        yield


@pytest.fixture
def ada(overdue_customer):
    return overdue_customer(name="Ada", email="ada@example.com")


def url(customer, channel="email", token=None):
    return f"/dunning/unsubscribe/{token or make_token(customer.pk, channel)}/"


def html_body(message):
    return next(content for content, mime in message.alternatives if mime == "text/html")


def page(response):
    return html.unescape(response.content.decode())


def csrf_client():
    """A browser: CSRF is checked, as in production."""
    return Client(enforce_csrf_checks=True)


def post_form(client, path, data=None):
    """Open the page, then press its button (with the browser's CSRF token: the page
    has no form any more once the customer has opted out)."""
    client.get(path)
    token = client.cookies["csrftoken"].value
    return client.post(path, {"csrfmiddlewaretoken": token, **(data or {})})


def opted_out(customer):
    return opted_out_channels([customer.pk]).get(str(customer.pk), set())


def consent_events(customer):
    return list(CaseEvent.objects.filter(case__customer=customer, kind=CaseEvent.Kind.CONSENT))


def make_required(key):
    Step.objects.filter(policy__key="standard", key=key).update(required=True)


# -- what the messages carry ----------------------------------------------------------------
def test_a_reminder_carries_the_link_in_its_headers_text_and_html(ada, run, mailoutbox):
    run(1)
    [message] = mailoutbox
    header = message.extra_headers["List-Unsubscribe"]
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<https://shop\.example/dunning/unsubscribe/[^>]+/>", header)
    link = header[1:-1]
    # The same link in the text, the HTML and the header; it names Ada and email.
    assert f"To stop reminders by email: {link}" in message.body
    assert f'<a href="{link}"' in html_body(message)
    access = read_token(LINK.search(link).group(1))
    assert (access.customer_key, access.channel) == (str(ada.pk), "email")
    # The headers are in the MIME message the backend sends.
    mime = message.message()
    assert mime["List-Unsubscribe"].replace("\n", "").replace(" ", "") == header.replace(" ", "")
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert REQUIRED_EN not in message.body


def test_a_mailto_is_added_only_when_set(ada, run, mailoutbox):
    with override_dunning_settings(PORTAL_BASE_URL=BASE, UNSUBSCRIBE_MAILTO="optout@shop.example"):
        run(1)
    header = mailoutbox[0].extra_headers["List-Unsubscribe"]
    https, mailto = header.split(", ")
    token = LINK.search(https).group(1)
    assert mailto == f"<mailto:optout@shop.example?subject=unsubscribe%20{token.replace(':', '%3A')}>"


def test_without_a_base_url_there_is_no_link_and_no_header(ada, run, mailoutbox):
    with override_dunning_settings(PORTAL_BASE_URL=None):
        run(1)
    [message] = mailoutbox
    assert "List-Unsubscribe" not in message.extra_headers
    assert "unsubscribe" not in message.body.lower() and "unsubscribe" not in html_body(message)
    assert message.body.rstrip().endswith("Test Shop")


def test_a_required_notice_has_no_link_and_says_it_is_required(overdue_customer, run, mailoutbox):
    make_required("initial-notice")
    overdue_customer(name="Ada", email="ada@example.com")
    overdue_customer(name="Bert", email="bert@example.com", language="de")
    run(1)
    en, de = sorted(mailoutbox, key=lambda m: m.to[0])
    for message in (en, de):
        assert "List-Unsubscribe" not in message.extra_headers
        assert "List-Unsubscribe-Post" not in message.extra_headers
        assert "/unsubscribe/" not in message.body and "/unsubscribe/" not in html_body(message)
    assert REQUIRED_EN in en.body and REQUIRED_EN in html_body(en)
    assert REQUIRED_DE in de.body and REQUIRED_DE in html_body(de)


def test_the_thank_you_message_carries_the_link_too(ada, run, mailoutbox):
    run(1)
    Invoice.objects.filter(customer=ada).update(amount_due=0)
    run(2)
    thanks = mailoutbox[-1]
    assert thanks.tags[1] == "payment-received"
    assert LINK.search(thanks.extra_headers["List-Unsubscribe"])
    assert LINK.search(thanks.body)


def test_a_german_reminder_has_the_german_footer(overdue_customer, run, mailoutbox):
    overdue_customer(name="Bert", email="bert@example.com", language="de")
    run(1)
    assert "Erinnerungen per E-Mail abbestellen: " + BASE + "unsubscribe/" in mailoutbox[0].body
    assert ">Erinnerungen per E-Mail abbestellen</a>" in html_body(mailoutbox[0])


# -- the page -------------------------------------------------------------------------------
def test_get_shows_the_question_and_changes_nothing(ada, run, mailoutbox):
    run(1)
    link = mailoutbox[0].extra_headers["List-Unsubscribe"][1:-1]
    path = link.removeprefix("https://shop.example")
    client = csrf_client()
    for _ in range(3):  # mail scanners, then the customer
        response = client.get(path)
        assert response.status_code == 200
    text = page(response)
    assert "<h1 id=\"top\">Stop reminders by email?</h1>" in text
    assert 'method="post"' in text and "csrfmiddlewaretoken" in text
    assert "<script" not in text and "http://" not in text  # no third-party assets
    assert response["Cache-Control"].startswith("max-age=0")
    assert response["Referrer-Policy"] == "same-origin"
    assert client.head(path).status_code == 200
    assert not Consent.objects.exists()
    assert consent_events(ada) == []


def test_the_button_unsubscribes_and_the_next_reminder_is_skipped_but_required_notices_go(
    ada, run, mailoutbox
):
    run(1)
    case = Case.objects.get(customer=ada)
    response = post_form(csrf_client(), url(ada))
    assert response.status_code == 200
    text = page(response)
    assert ("You will not get reminders by email any more; notices the law requires still "
            "reach you.") in text
    assert f'href="{BASE}portal/' in text  # back to the self-service page
    entry = Consent.objects.get()
    assert (entry.customer_key, entry.topic, entry.granted, entry.source) == (
        str(ada.pk), channel_topic("email"), False, "unsubscribe")
    [event] = consent_events(ada)
    assert event.case == case and event.data == {"channel:email": False}
    assert "unsubscribe link" in event.message
    # The page now says so on GET too.
    assert "You will not get reminders by email any more" in page(csrf_client().get(url(ada)))

    for n in (4, 8, 14):
        run(n)
    steps = dict(CaseStep.objects.filter(case=case).values_list("step_key", "status"))
    assert steps == {"initial-notice": "sent", "gentle-reminder": "skipped",
                     "formal-notice": "skipped", "suspension-warning": "sent"}
    assert [m.tags[1] for m in mailoutbox] == ["initial-notice", "suspension-warning"]
    warning = mailoutbox[-1]  # a legally required notice of the shipped policy
    assert "List-Unsubscribe" not in warning.extra_headers
    assert REQUIRED_EN in warning.body


def test_unsubscribing_twice_writes_one_entry(ada, run):
    run(1)
    client = csrf_client()
    assert post_form(client, url(ada)).status_code == 200
    assert post_form(client, url(ada)).status_code == 200
    assert client.post(url(ada), ONE_CLICK).status_code == 200
    assert Consent.objects.count() == 1
    assert len(consent_events(ada)) == 1


def test_unsubscribing_works_without_an_open_case(ada):
    response = post_form(csrf_client(), url(ada))
    assert response.status_code == 200
    assert opted_out(ada) == {"email"}
    assert not CaseEvent.objects.exists()


# -- RFC 8058 one-click and CSRF --------------------------------------------------------
def test_one_click_post_without_csrf_token_unsubscribes(ada, run, mailoutbox):
    run(1)
    link = mailoutbox[0].extra_headers["List-Unsubscribe"][1:-1]
    path = link.removeprefix("https://shop.example")
    # What a mail provider posts: form-urlencoded, no cookie, no CSRF token.
    response = csrf_client().post(path, "List-Unsubscribe=One-Click",
                                  content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert opted_out(ada) == {"email"}
    assert Consent.objects.get().source == "unsubscribe"
    assert len(consent_events(ada)) == 1


def test_one_click_as_multipart_works_too(ada):
    assert csrf_client().post(url(ada), ONE_CLICK).status_code == 200
    assert opted_out(ada) == {"email"}


@pytest.mark.parametrize("data", [
    {},
    {"List-Unsubscribe": "yes"},
    {"List-Unsubscribe": "One-Click", "channel": "email"},
    {"confirm": "1"},
])
def test_other_posts_without_csrf_token_are_refused(ada, data):
    response = csrf_client().post(url(ada), data)
    assert response.status_code == 403
    assert not Consent.objects.exists()


# -- the token ------------------------------------------------------------------------------
def test_a_tampered_token_is_not_found(ada):
    token = make_token(ada.pk)
    tampered = token[:-2] + ("xx" if not token.endswith("xx") else "yy")
    client = csrf_client()
    for bad in (tampered, "not-a-token", portal_token(ada.pk)):
        response = client.get(url(ada, token=bad))
        assert response.status_code == 404
        assert "This link does not work any more" in page(response)
        assert client.post(url(ada, token=bad), ONE_CLICK).status_code == 404
    # ...and an unsubscribe token opens no self-service page.
    assert client.get(f"/dunning/portal/{token}/").status_code == 404
    assert not Consent.objects.exists()


def test_a_token_of_a_customer_that_is_gone_is_not_found(db):
    assert csrf_client().get(url(None, token=make_token(999999))).status_code == 404
    assert csrf_client().post(url(None, token=make_token(999999)), ONE_CLICK).status_code == 404
    assert not Consent.objects.exists()


def test_a_token_of_one_channel_does_not_unsubscribe_another(ada, run, mailoutbox):
    client = csrf_client()
    text = page(client.get(url(ada, "sms")))
    assert "Stop reminders by Text message (SMS)?" in text
    post_form(client, url(ada, "sms"), {"channel": "email"})  # a posted channel is ignored
    client.post(url(ada, "sms"), ONE_CLICK)
    assert opted_out(ada) == {"sms"}
    assert list(Consent.objects.values_list("topic", flat=True)) == ["channel:sms"]
    run(1)
    assert len(mailoutbox) == 1  # email reminders go on


def test_revoking_the_links_voids_old_unsubscribe_links(ada):
    old = make_token(ada.pk)
    revoke_links(ada.pk)
    client = csrf_client()
    assert client.get(url(ada, token=old)).status_code == 404
    assert client.post(url(ada, token=old), ONE_CLICK).status_code == 404
    assert not Consent.objects.exists()
    assert client.post(url(ada), ONE_CLICK).status_code == 200  # a new link works


def test_links_never_expire_and_the_same_values_make_the_same_link(ada, monkeypatch):
    token = make_token(ada.pk, issued=1.0)  # issued in 1970
    assert csrf_client().get(url(ada, token=token)).status_code == 200
    later = time.time() + 3600
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    assert make_token(ada.pk, issued=1.0) == token  # no signing time of its own


def test_links_survive_a_secret_key_rotation_through_the_fallbacks(ada, settings):
    settings.SECRET_KEY = "the-old-secret-key"
    token = make_token(ada.pk)
    settings.SECRET_KEY = "the-new-secret-key"
    settings.SECRET_KEY_FALLBACKS = ["the-old-secret-key"]
    assert csrf_client().get(url(ada, token=token)).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert csrf_client().get(url(ada, token=token)).status_code == 404


# -- language -------------------------------------------------------------------------------
def test_the_page_speaks_the_customers_language(overdue_customer, run):
    bert = overdue_customer(name="Bert", email="bert@example.com", language="de")
    run(1)
    client = csrf_client()
    text = page(client.get(url(bert)))
    assert '<html lang="de">' in text
    assert "Keine Erinnerungen mehr per E-Mail?" in text
    assert "Erinnerungen per E-Mail abbestellen</button>" in text
    done = page(post_form(client, url(bert)))
    assert ("Sie erhalten keine Erinnerungen mehr per E-Mail; gesetzlich vorgeschriebene "
            "Hinweise erreichen Sie weiterhin.") in done
    assert opted_out(bert) == {"email"}


# -- the ESP's unsubscribe and complaint events ---------------------------------------------
@pytest.mark.parametrize("event_type, source", [("unsubscribed", "unsubscribe"),
                                                ("complained", "bounce")])
def test_an_esp_unsubscribe_or_complaint_opts_out_of_email_once(
    ada, run, event_type, source
):
    run(1)
    step = CaseStep.objects.get(step_key="initial-notice")
    for n in range(2):
        record_tracking_event(AnymailTrackingEvent(
            event_type=event_type, recipient="ada@example.com", event_id=f"ev-{n}",
            metadata={"dunning_case": str(step.case_id), "dunning_step": step.step_key},
        ), "mailgun")
    entry = Consent.objects.get()
    assert (entry.topic, entry.granted, entry.source) == ("channel:email", False, source)
    assert len(consent_events(ada)) == 1


def test_a_delivery_event_opts_out_of_nothing(ada, run):
    run(1)
    step = CaseStep.objects.get(step_key="initial-notice")
    record_tracking_event(AnymailTrackingEvent(
        event_type="delivered", recipient="ada@example.com", event_id="ev-d",
        metadata={"dunning_case": str(step.case_id), "dunning_step": step.step_key},
    ), "mailgun")
    assert not Consent.objects.exists()
