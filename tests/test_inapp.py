"""In-app notices (docs/inapp.md): the channel writes them from rendered messages, the
host shows the newest active one (template tag) or reads them (API), the customer
dismisses it, and a resolved case takes its banners away."""

import datetime
import re

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.template import engines
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from dunning.channels.base import Outgoing
from dunning.channels.inapp import InAppChannel, level_for, shorten, summary
from dunning.models import Case, Notice
from dunning.notices.views import customer_of_user
from dunning.testing import create_customer, override_dunning_settings

API = "/dunning/api/v1"
PORTAL_BASE = "https://shop.example/dunning/"

#: username -> customer pk: who the customer of a request is, for the dismiss view.
CUSTOMER_OF = {}


def customer_of_request(request):
    """DUNNING["INAPP_CUSTOMER_FOR_REQUEST"] of these tests."""
    return CUSTOMER_OF.get(getattr(request.user, "username", None))


@pytest.fixture(autouse=True)
def english():
    cache.clear()  # the API's throttle counts
    CUSTOMER_OF.clear()
    with translation.override("en"):
        yield
    CUSTOMER_OF.clear()


def notice(customer, *, minutes_ago=0, **fields):
    values = {"title": "Your payment failed", "text": "Please update your card.",
              "level": Notice.Level.WARNING, "step_key": "initial-notice",
              "created_at": timezone.now() - datetime.timedelta(minutes=minutes_ago)}
    values.update(fields)
    return Notice.objects.create(customer=customer, **values)


def first_email(run, overdue_customer, mailoutbox, **customer):
    """A real rendered message: the shipped initial notice to an overdue customer."""
    person = overdue_customer(**customer)
    run(1)
    assert len(mailoutbox) == 1
    case = Case.objects.get(customer=person)
    return person, case, mailoutbox[0]


def outgoing(person, case, message, step_key="initial-notice"):
    return Outgoing(case_id=case.pk, customer_id=person.pk, step_key=step_key,
                    recipient="in-app", subject=message.subject, text=message.body, html=None)


# -- the channel ----------------------------------------------------------------------------
def test_the_channel_reaches_every_customer(db):
    person = create_customer(name="No Email", email="")
    assert InAppChannel().recipient(person) == ("in-app", "")
    assert InAppChannel.key == "in_app"


def test_a_rendered_message_becomes_a_notice_with_title_text_and_portal_link(
        run, overdue_customer, mailoutbox):
    with override_dunning_settings(PORTAL_BASE_URL=PORTAL_BASE):
        person, case, message = first_email(run, overdue_customer, mailoutbox, name="Ada")
        channel = InAppChannel()
        built = channel.build(outgoing(person, case, message))
        with CaptureQueriesContext(connection) as queries:
            outcomes = channel.send([built])
    inserts = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(inserts) == 1 and inserts[0].startswith("INSERT")
    saved = Notice.objects.get()
    assert [(o.ok, o.message_id) for o in outcomes] == [(True, f"notice:{saved.pk}")]
    assert saved.customer_id == person.pk and saved.case_id == case.pk
    assert saved.step_key == "initial-notice"
    assert saved.level == "warning"
    assert saved.title == message.subject
    # The first paragraph after the salutation ("Dear Ada,"), on one line.
    assert saved.text.startswith("We could not find your payment for the invoices below")
    assert "Dear Ada" not in saved.text and "\n" not in saved.text
    assert len(saved.text) <= 280
    # The portal link of the text (the very one the email carried).
    links = re.findall(r"https://shop\.example/dunning/portal/\S+/", message.body)
    assert links and saved.action_url == links[0]
    assert saved.action_label == "Settle your account"
    assert Notice.objects.active_for(person).get() == saved


def test_without_a_portal_the_action_is_the_update_payment_url(run, overdue_customer, mailoutbox):
    company = {"name": "Test Shop", "update_payment_url": "https://shop.example/card/"}
    with override_dunning_settings(COMPANY=company, PORTAL_BASE_URL=None):
        person, case, message = first_email(run, overdue_customer, mailoutbox)
        built = InAppChannel().build(outgoing(person, case, message))
    assert built.action_url == "https://shop.example/card/"
    assert built.action_label == "Update payment method"


def test_the_text_is_cut_at_a_word_to_inapp_max_chars(run, overdue_customer, mailoutbox):
    with override_dunning_settings(INAPP_MAX_CHARS=40):
        person, case, message = first_email(run, overdue_customer, mailoutbox)
        built = InAppChannel().build(outgoing(person, case, message))
    full = summary(message.body, 10_000)
    assert len(built.text) <= 40
    assert built.text.endswith("\u2026")
    kept = built.text[:-1]
    assert full.startswith(kept) and full[len(kept)] == " "  # cut between two words


def test_summary_and_shorten():
    text = "Hallo Ada,\n\nIhre Zahlung ist fehlgeschlagen.\nBitte prüfen.\n\nGrüße"
    assert summary(text, 280) == "Ihre Zahlung ist fehlgeschlagen. Bitte prüfen."
    assert summary("Only one line,", 280) == "Only one line,"  # nothing else to show
    assert shorten("Supercalifragilistic", 8) == "Superca\u2026"  # one long word: cut inside


@pytest.mark.parametrize("key, level", [
    ("initial-notice", "warning"),
    ("gentle-reminder", "warning"),
    ("formal-notice", "warning"),
    ("suspension-warning", "danger"),
    ("suspension", "danger"),
    ("final-notice", "danger"),
    ("termination", "danger"),
    ("payment-received", "info"),
])
def test_the_level_follows_the_step(key, level):
    assert level_for(key) == level


def test_payment_received_is_a_thank_you_that_resolves_the_other_notices(make_customer):
    person, other = make_customer(name="Ada"), make_customer(name="Bob")
    old = notice(person, minutes_ago=10)
    theirs = notice(other, minutes_ago=10)
    channel = InAppChannel()
    thanks = channel.build(Outgoing(case_id=None, customer_id=person.pk,
                                    step_key="payment-received", recipient="in-app",
                                    subject="Thank you for your payment",
                                    text="Dear Ada,\n\nWe have received your payment.",
                                    html=None))
    [outcome] = channel.send([thanks])
    assert outcome.ok
    old.refresh_from_db()
    theirs.refresh_from_db()
    assert old.resolved_at is not None
    assert theirs.resolved_at is None
    shown = Notice.objects.active_for(person).get()
    assert (shown.title, shown.level, shown.action_url) == (
        "Thank you for your payment", "info", "")
    assert shown.text == "We have received your payment."
    assert shown.expires_at is not None  # a thank-you does not stay for ever
    later = timezone.now() + datetime.timedelta(days=8)
    assert not Notice.objects.active_for(person, now=later).exists()


def test_a_batch_keeps_its_order(make_customer):
    people = [make_customer(name=f"P{n}") for n in range(3)]
    channel = InAppChannel()
    built = [channel.build(Outgoing(case_id=None, customer_id=p.pk, step_key="final-notice",
                                    recipient="in-app", subject=f"Final {p.name}",
                                    text="Pay now.", html=None)) for p in people]
    outcomes = channel.send(built)
    for person, outcome in zip(people, outcomes, strict=True):
        saved = Notice.objects.get(customer=person)
        assert outcome.message_id == f"notice:{saved.pk}"
        assert saved.title == f"Final {person.name}"
    assert channel.send([]) == []


# -- active notices ----------------------------------------------------------------------------
def test_active_for_newest_first_without_dismissed_expired_or_resolved(make_customer):
    person, other = make_customer(), make_customer()
    now = timezone.now()
    oldest = notice(person, minutes_ago=30, title="oldest")
    newest = notice(person, minutes_ago=1, title="newest")
    later_expiry = notice(person, minutes_ago=5, title="expires tomorrow",
                          expires_at=now + datetime.timedelta(days=1))
    notice(person, minutes_ago=2, title="dismissed", dismissed_at=now)
    notice(person, minutes_ago=3, title="resolved", resolved_at=now)
    notice(person, minutes_ago=4, title="expired", expires_at=now - datetime.timedelta(seconds=1))
    notice(other, minutes_ago=0, title="someone else's")
    assert list(Notice.objects.active_for(person)) == [newest, later_expiry, oldest]
    assert list(Notice.objects.active_for(person.pk)) == [newest, later_expiry, oldest]
    # Tomorrow and a bit: the one with an expiry is gone.
    after = now + datetime.timedelta(days=1, seconds=1)
    assert list(Notice.objects.active_for(person, now=after)) == [newest, oldest]
    assert list(Notice.objects.active_for(None)) == []


def test_a_paid_case_resolves_its_notices_without_an_in_app_step(
        run, overdue_customer, make_customer, mailoutbox):
    person = overdue_customer(name="Ada")
    bystander = make_customer(name="Bob")
    run(1)
    case = Case.objects.get(customer=person)
    banner = notice(person, case=case)
    unrelated = notice(bystander)
    assert Notice.objects.active_for(person).exists()
    person.invoices.update(amount_due=0)
    result = run(2)
    assert result.resolved == 1
    assert mailoutbox[-1].subject == "Thank you for your payment"  # the email thank-you
    banner.refresh_from_db()
    unrelated.refresh_from_db()
    assert banner.resolved_at is not None
    assert unrelated.resolved_at is None
    assert not Notice.objects.active_for(person).exists()


# -- the template tag ------------------------------------------------------------------------
def render(source, request=None, **context):
    return engines["django"].from_string("{% load dunning_notices %}" + source).render(
        context, request)


def test_the_banner_shows_the_newest_active_notice_escaped(make_customer):
    name = "<script>alert(1)</script>"
    person = make_customer(name=name)
    channel = InAppChannel()
    with override_dunning_settings(PORTAL_BASE_URL=PORTAL_BASE):
        channel.send([channel.build(Outgoing(
            case_id=None, customer_id=person.pk, step_key="gentle-reminder",
            recipient="in-app", subject=f"{name}, your payment failed",
            text=f"Dear {name},\n\nYour card was declined. Please update it.", html=None))])
    notice(person, minutes_ago=60, title="An older notice")
    newest = Notice.objects.active_for(person).first()
    assert newest.title.startswith(name)
    request = RequestFactory().get("/account/?tab=1")
    html = render("{% dunning_notice_banner customer %}", request, customer=person)
    assert "An older notice" not in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'role="status"' in html and "dunning-notice--warning" in html
    assert f'action="/dunning/notices/{newest.pk}/dismiss/"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'name="next" value="/account/?tab=1"' in html
    assert f'href="{newest.action_url}"' in html
    newest.refresh_from_db()
    assert newest.seen_at is not None  # showing it records that it was seen


def test_an_urgent_notice_is_an_alert(make_customer):
    person = make_customer()
    notice(person, level=Notice.Level.DANGER, title="Your service is suspended",
           action_url="javascript:alert(1)")
    html = render("{% dunning_notice_banner customer %}", customer=person)
    assert 'role="alert"' in html and "dunning-notice--danger" in html
    assert "Your service is suspended" in html
    assert "javascript:" not in html  # an unsafe action link is left out
    assert render("{% dunning_notice_banner customer styles=False %}",
                  customer=person).count("<style>") == 0


def test_no_customer_or_no_notice_shows_nothing(make_customer, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert render("{% dunning_notice_banner customer %}", customer=None).strip() == ""
    person = make_customer()
    notice(person, dismissed_at=timezone.now())
    assert render("{% dunning_notice_banner customer %}", customer=person).strip() == ""


def test_active_notices_for_your_own_markup(make_customer):
    person = make_customer()
    notice(person, minutes_ago=5, title="first")
    notice(person, minutes_ago=1, title="second")
    html = render("{% dunning_active_notices customer as notices %}"
                  "{% for n in notices %}[{{ n.title }}]{% endfor %}", customer=person)
    assert html == "[second][first]"


# -- the dismiss view --------------------------------------------------------------------------
CSRF = "a" * 32  # an unmasked CSRF secret, accepted as cookie and form value


@pytest.fixture
def customer_client(django_user_model, fast_hasher, make_customer):
    """A logged-in site user whose customer is Ada (through INAPP_CUSTOMER_FOR_REQUEST)."""
    person = make_customer(name="Ada")
    user = django_user_model.objects.create_user("ada", password="pw")
    CUSTOMER_OF["ada"] = person.pk
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = CSRF
    with override_dunning_settings(INAPP_CUSTOMER_FOR_REQUEST="tests.test_inapp.customer_of_request"):
        yield client, person


def dismiss_url(n):
    return f"/dunning/notices/{n.pk}/dismiss/"


def test_dismissing_needs_post(customer_client):
    client, person = customer_client
    n = notice(person)
    assert client.get(dismiss_url(n)).status_code == 405
    n.refresh_from_db()
    assert n.dismissed_at is None


def test_dismissing_needs_the_csrf_token(customer_client):
    client, person = customer_client
    n = notice(person)
    assert client.post(dismiss_url(n), {"next": "/account/"}).status_code == 403
    n.refresh_from_db()
    assert n.dismissed_at is None


def test_the_customer_dismisses_their_notice(customer_client):
    client, person = customer_client
    n = notice(person)
    response = client.post(dismiss_url(n), {"csrfmiddlewaretoken": CSRF, "next": "/account/"})
    assert response.status_code == 302 and response["Location"] == "/account/"
    n.refresh_from_db()
    assert n.dismissed_at is not None
    assert not Notice.objects.active_for(person).exists()
    # A link to another site is not followed.
    again = notice(person)
    response = client.post(dismiss_url(again), {"csrfmiddlewaretoken": CSRF,
                                                "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_another_customers_notice_is_not_found(customer_client, make_customer):
    client, _person = customer_client
    theirs = notice(make_customer(name="Bob"))
    response = client.post(dismiss_url(theirs), {"csrfmiddlewaretoken": CSRF})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.dismissed_at is None


def test_without_a_customer_for_the_request_nothing_can_be_dismissed(customer_client):
    client, person = customer_client
    n = notice(person)
    with override_dunning_settings(INAPP_CUSTOMER_FOR_REQUEST=None):
        response = client.post(dismiss_url(n), {"csrfmiddlewaretoken": CSRF})
    assert response.status_code == 404
    n.refresh_from_db()
    assert n.dismissed_at is None


def test_customer_of_user_is_nobody_when_logged_out():
    request = RequestFactory().get("/")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    assert customer_of_user(request) is None


# -- the API ------------------------------------------------------------------------------------
@pytest.fixture
def api_user(django_user_model, fast_hasher):
    """A logged-in API client (active staff) and a function that grants permissions."""
    user = django_user_model.objects.create_user("integration", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)

    def grant(*codenames):
        user.user_permissions.add(*Permission.objects.filter(
            content_type__app_label="dunning", codename__in=codenames))
        client.force_login(django_user_model.objects.get(pk=user.pk))  # fresh perm cache

    return client, grant


def test_api_lists_a_customers_active_notices(api_user, make_customer):
    client, grant = api_user
    person, other = make_customer(), make_customer()
    older = notice(person, minutes_ago=5, title="older")
    newer = notice(person, minutes_ago=1, title="newer", level=Notice.Level.DANGER)
    notice(person, title="dismissed", dismissed_at=timezone.now())
    notice(other, title="other")
    url = f"{API}/notices/?customer={person.pk}"
    assert client.get(url).status_code == 403  # staff without view_notice
    assert Client().get(url).status_code in (401, 403)  # not logged in
    grant("view_notice")
    response = client.get(url)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [r["id"] for r in body["results"]] == [newer.pk, older.pk]
    first = body["results"][0]
    assert first["customer"] == str(person.pk)
    assert (first["level"], first["role"], first["active"]) == ("danger", "alert", True)
    assert client.get(f"{API}/notices/").status_code == 400  # the customer is required
    assert client.get(f"{API}/notices/?customer=abc").status_code == 400
    assert client.get(f"{API}/notices/?customer={10**30}").status_code == 400  # out of range
    assert client.get(f"{API}/notices/?customer={other.pk + 100}").json()["count"] == 0


@pytest.mark.parametrize("action, field", [("dismiss", "dismissed_at"), ("seen", "seen_at")])
def test_api_dismiss_and_seen(api_user, make_customer, action, field):
    client, grant = api_user
    person = make_customer()
    n = notice(person)
    url = f"{API}/notices/{n.pk}/{action}/"
    grant("view_notice")
    assert client.post(url).status_code == 403  # needs change_notice
    n.refresh_from_db()
    assert getattr(n, field) is None
    grant("view_notice", "change_notice")
    response = client.post(url)
    assert response.status_code == 200
    n.refresh_from_db()
    first = getattr(n, field)
    assert first is not None and response.json()[field] is not None
    assert client.post(url).status_code == 200  # again: the first time counts
    n.refresh_from_db()
    assert getattr(n, field) == first
    listed = client.get(f"{API}/notices/?customer={person.pk}").json()["count"]
    assert listed == (0 if action == "dismiss" else 1)
    assert client.post(f"{API}/notices/{n.pk + 1000}/{action}/").status_code == 404


def test_the_api_schema_describes_the_notices(admin_client):
    schema = admin_client.get(f"{API}/schema/?format=json").json()
    paths = schema["paths"]
    assert "get" in paths["/dunning/api/v1/notices/"]
    assert "post" in paths["/dunning/api/v1/notices/{id}/dismiss/"]
    assert "post" in paths["/dunning/api/v1/notices/{id}/seen/"]


# -- the admin ----------------------------------------------------------------------------------
def test_the_admin_lists_filters_and_searches_notices(admin_client, make_customer):
    ada, bob = make_customer(name="Ada Lovelace"), make_customer(name="Bob")
    notice(ada, title="Ada's active notice")
    notice(bob, title="Bob's dismissed notice", dismissed_at=timezone.now())
    url = "/admin/dunning/notice/"
    page = admin_client.get(url).content.decode()
    assert "Ada&#x27;s active notice" in page and "Bob&#x27;s dismissed notice" in page
    page = admin_client.get(url + "?state=active").content.decode()
    assert "Ada&#x27;s active notice" in page and "Bob&#x27;s dismissed notice" not in page
    page = admin_client.get(url + "?q=lovelace").content.decode()
    assert "Ada&#x27;s active notice" in page and "Bob&#x27;s dismissed notice" not in page
    assert admin_client.get(url + "add/").status_code == 403  # read-only


# -- through the engine ---------------------------------------------------------------------
def test_a_policy_step_on_the_in_app_channel_writes_a_notice(run, overdue_customer, mailoutbox):
    from dunning.models import CaseStep, MessageTemplate, Step

    Step.objects.filter(policy__key="standard", key="initial-notice").update(channel="in_app")
    # Without the shipped in-app text (migration 0018) the email's words are used.
    MessageTemplate.objects.filter(policy__key="standard", channel="in_app").delete()
    person = overdue_customer(name="Ada")
    with override_dunning_settings(PORTAL_BASE_URL=PORTAL_BASE):
        run(1)
    assert mailoutbox == []  # the step went to the site, not by email
    step = CaseStep.objects.get(case__customer=person, step_key="initial-notice")
    shown = Notice.objects.active_for(person).get()
    assert (step.status, step.channel, step.recipient) == ("sent", "in_app", "in-app")
    assert step.message_id == f"notice:{shown.pk}"
    # The policy has no in-app template: the email's words, shortened.
    assert shown.title.startswith("Payment reminder:")
    assert shown.text.startswith("We could not find your payment")
    assert shown.action_url.startswith(PORTAL_BASE + "portal/")
    person.invoices.update(amount_due=0)
    run(2)
    shown.refresh_from_db()
    assert shown.resolved_at is not None  # paid: the banner is gone
    assert not Notice.objects.active_for(person).exists()
