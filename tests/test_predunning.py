"""Pre-dunning (card expiry, renewal on an expiring card, account-updater consent), channel
opt-outs from the self-service page, and payment retries as steps of a policy."""

import datetime
import html

import pytest
from django.test import Client

from dunning.models import (
    Case,
    CaseEvent,
    CaseStep,
    Consent,
    PaymentAttempt,
    Policy,
    PreDunningNotice,
    RetryStep,
)
from dunning.models.consent import ACCOUNT_UPDATER, channel_topic
from dunning.payments import declines
from dunning.payments.predunning import card_kind, run_predunning
from dunning.payments.retries import record_failure, run_due_retries
from dunning.portal.tokens import make_token
from dunning.testing import override_dunning_settings, portal_post

from .conftest import day

SIMULATED = "dunning.payments.simulated.SimulatedBackend"
UTC = datetime.UTC


def at(date, hour=9):
    return datetime.datetime.combine(date, datetime.time(hour), tzinfo=UTC)


def backend(**options):
    return override_dunning_settings(PAYMENT_BACKEND=SIMULATED, PAYMENT_BACKEND_OPTIONS=options)


def notices(customer=None):
    rows = PreDunningNotice.objects.order_by("pk")
    if customer is not None:
        rows = rows.filter(customer=customer)
    return list(rows.values_list("kind", "status"))


def portal(client, customer, data=None):
    path = f"/dunning/portal/{make_token(customer.pk)}/"
    if data is None:
        return html.unescape(client.get(path).content.decode())
    return portal_post(client, path, data)  # from the page, with its stamp


@pytest.mark.parametrize("days_left, expected", [
    (45, None), (31, None), (30, "card-expiring-30"), (8, "card-expiring-30"),
    (7, "card-expiring-7"), (0, "card-expiring-7"), (-1, None),
])
def test_the_most_urgent_card_notice_applies(days_left, expected):
    assert card_kind(days_left, [30, 7]) == expected


# -- card expiry --------------------------------------------------------------------------
def test_card_expiry_notices_30_and_7_days_before_each_once(make_customer, mailoutbox):
    ada = make_customer(name="Ada", email="ada@example.com")
    bob = make_customer(name="Bob", email="bob@example.com", language="de")
    cards = {str(ada.pk): {"sim_card_1": [3, 2026]}, str(bob.pk): {"sim_card_1": [9, 2027]}}
    other = make_customer(name="Cy", email="cy@example.com")  # hash-derived expiry
    with backend(outcomes={str(p): {"sim_card_1": ["ok"]} for p in (ada.pk, bob.pk, other.pk)},
                 cards={**cards, str(other.pk): {"sim_card_1": [1, 2030]}}):
        assert run_predunning(datetime.date(2026, 2, 28)) == {}  # 31 days left
        assert run_predunning(datetime.date(2026, 3, 1)) == {"card-expiring-30": 1}
        [mail] = mailoutbox
        assert mail.to == ["ada@example.com"] and "card-expiring-30" in mail.tags
        assert "Simulated card 1" in mail.subject and "03/2026" in mail.subject
        assert "in 30 days" in mail.body
        # Later runs in the same window send nothing again.
        assert run_predunning(datetime.date(2026, 3, 2)) == {}
        assert run_predunning(datetime.date(2026, 3, 24)) == {"card-expiring-7": 1}
        assert "in 7 days" in mailoutbox[-1].body
        assert run_predunning(datetime.date(2026, 3, 31)) == {}
        assert run_predunning(datetime.date(2026, 4, 5)) == {}  # expired: nothing more
    assert notices(ada) == [("card-expiring-30", "sent"), ("card-expiring-7", "sent")]
    assert notices(bob) == notices(other) == []
    assert len(mailoutbox) == 2


def test_a_german_customer_gets_the_german_notice(make_customer, mailoutbox):
    bob = make_customer(name="Bob", email="bob@example.com", language="de")
    with backend(outcomes={str(bob.pk): {"sim_card_1": ["ok"]}},
                 cards={str(bob.pk): {"sim_card_1": [3, 2026]}}):
        run_predunning(datetime.date(2026, 3, 25))
    [mail] = mailoutbox
    assert "läuft in 6 Tagen ab" in mail.subject


def test_a_notice_that_cannot_be_sent_is_logged_with_its_reason(make_customer, mailoutbox):
    nobody = make_customer(name="No mail", email="")
    ada = make_customer(name="Ada", email="ada@example.com")
    cards = {str(c.pk): {"sim_card_1": [3, 2026]} for c in (nobody, ada)}
    with backend(outcomes={k: {"sim_card_1": ["ok"]} for k in cards}, cards=cards):
        assert run_predunning(datetime.date(2026, 3, 25)) == {"card-expiring-7": 1, "failed": 1}
    failed = PreDunningNotice.objects.get(customer=nobody)
    assert failed.status == "failed" and "no email address" in failed.reason
    assert [m.to for m in mailoutbox] == [["ada@example.com"]]
    # Never retried by itself (at most once, like the outbox); the log keeps it.
    with backend(outcomes={k: {"sim_card_1": ["ok"]} for k in cards}, cards=cards):
        assert run_predunning(datetime.date(2026, 3, 26)) == {}


def test_a_missing_template_fails_the_notice_not_the_run(make_customer, mailoutbox):
    ada = make_customer(name="Ada", email="ada@example.com")
    Policy.objects.get(key="standard").templates.filter(step_key="card-expiring-7").delete()
    with backend(outcomes={str(ada.pk): {"sim_card_1": ["ok"]}},
                 cards={str(ada.pk): {"sim_card_1": [3, 2026]}}):
        assert run_predunning(datetime.date(2026, 3, 25)) == {"failed": 1}
    assert "no email template 'card-expiring-7'" in PreDunningNotice.objects.get().reason


def test_two_runs_at_once_claim_each_notice_once(make_customer):
    from dunning.payments.predunning import claim

    ada = make_customer(name="Ada", email="ada@example.com")
    wanted = [(ada.pk, "card-expiring-7", "sim_card_1", "2026-03", {})]
    first = claim(wanted, at(day(0)))
    assert len(first) == 1 and claim(wanted, at(day(0))) == []


# -- renewals -----------------------------------------------------------------------------
def test_a_renewal_on_a_card_that_expires_first_gets_a_notice(make_customer, mailoutbox):
    ada = make_customer(name="Ada", email="ada@example.com")
    bob = make_customer(name="Bob", email="bob@example.com")
    cy = make_customer(name="Cy", email="cy@example.com")  # expired already: no notice
    cards = {str(ada.pk): {"sim_card_1": [3, 2026]}, str(bob.pk): {"sim_card_1": [12, 2028]},
             str(cy.pk): {"sim_card_1": [1, 2026]}}
    with backend(outcomes={k: {"sim_card_1": ["ok"]} for k in cards}, cards=cards,
                 monthly_renewal={"amount": "29.00", "currency": "EUR"}), \
            override_dunning_settings(PREDUNNING_CARD_DAYS=[], PREDUNNING_RENEWAL_DAYS=60):
        summary = run_predunning(datetime.date(2026, 3, 1))
    assert summary == {"renewal-card-expiring": 1}
    [mail] = mailoutbox
    notice = PreDunningNotice.objects.get()
    assert notice.customer_id == ada.pk and notice.reference > "2026-03-31"
    assert "€29.00" in mail.subject and "03/2026" in mail.body
    assert notices(bob) == notices(cy) == []


# -- the account updater ------------------------------------------------------------------
def test_consent_to_the_account_updater_is_asked_once_and_answered_on_the_page(
        overdue_customer, run, mailoutbox, settings):
    settings.DUNNING = {**settings.DUNNING, "PORTAL_BASE_URL": "https://shop.example/dunning/"}
    ada = overdue_customer(name="Ada", email="ada@example.com")
    run(1)
    options = {"outcomes": {str(ada.pk): {"sim_card_1": [declines.INSUFFICIENT_FUNDS, "ok"]}},
               "cards": {str(ada.pk): {"sim_card_1": [12, 2029]}}}
    with backend(**options):  # no account updater: never asked
        assert record_failure(ada.pk, invoices=list(ada.invoices.values_list("number", flat=True)),
                              failed_at=at(day(1), 14))
        run_predunning(day(1))
        assert notices() == []
    client = Client()
    assert "Keep my card details up to date" not in portal(client, ada)
    with backend(**options, account_updater=True):
        assert run_predunning(day(1)) == {"account-updater-consent": 1}
        assert "/dunning/portal/" in mailoutbox[-1].body
        assert run_predunning(day(2)) == {}  # asked once
        page = portal(client, ada)
        assert "Keep my card details up to date" in page
        response = portal(client, ada, {"action": "updater", "answer": "yes"})
        assert response.status_code == 302
        assert "You agreed to this." in portal(client, ada)
    entry = Consent.objects.get(topic=ACCOUNT_UPDATER)
    assert (entry.customer_key, entry.granted, entry.source) == (str(ada.pk), True, "portal")
    case = Case.objects.get(customer=ada)
    assert case.events.filter(kind=CaseEvent.Kind.CONSENT).count() == 1


def test_refreshed_card_details_are_fetched_before_a_retry_when_the_customer_agreed(
        overdue_customer, run):
    ada, bob = overdue_customer(name="Ada"), overdue_customer(name="Bob")
    run(1)
    outcomes = {str(c.pk): {"sim_card_1": [declines.INSUFFICIENT_FUNDS, declines.EXPIRED]}
                for c in (ada, bob)}
    Consent.objects.create(customer_key=str(ada.pk), topic=ACCOUNT_UPDATER, granted=True,
                           source="portal")
    Consent.objects.create(customer_key=str(bob.pk), topic=ACCOUNT_UPDATER, granted=True,
                           source="portal")
    Consent.objects.create(customer_key=str(bob.pk), topic=ACCOUNT_UPDATER, granted=False,
                           source="portal")  # the latest answer counts
    with backend(outcomes=outcomes, account_updater=True):
        for customer in (ada, bob):
            record_failure(customer.pk, invoices=list(customer.invoices.values_list(
                "number", flat=True)), failed_at=at(day(1), 14))
        assert run_due_retries(now=at(day(3))) == {"succeeded": 1, "declined": 1, "gave-up": 1}
    paid = PaymentAttempt.objects.get(status="succeeded")
    assert paid.customer_id == ada.pk and paid.method_id == "sim_card_1-renewed"
    assert Case.objects.get(customer=ada).status == Case.Status.RESOLVED
    refreshed = Case.objects.get(customer=ada).events.get(kind=CaseEvent.Kind.CARD_REFRESHED)
    assert refreshed.data["new"] == "sim_card_1-renewed"
    assert not PaymentAttempt.objects.filter(customer_id=bob.pk, method_id__endswith="renewed")


# -- retries are steps of the policy ------------------------------------------------------
def test_retries_follow_the_policy_retry_steps_and_show_on_the_timeline(overdue_customer, run):
    ada = overdue_customer(name="Ada")
    run(1)
    case = Case.objects.get(customer=ada)
    case.policy.retry_steps.all().delete()
    RetryStep.objects.bulk_create([RetryStep(policy=case.policy, key="second-try", offset_days=2),
                                   RetryStep(policy=case.policy, key="last-try", offset_days=6)])
    with backend(outcomes={str(ada.pk): {"sim_card_1": [declines.INSUFFICIENT_FUNDS] * 3}}):
        first = record_failure(ada.pk, invoices=["x"] + list(ada.invoices.values_list(
            "number", flat=True)), failed_at=at(day(1), 14))
        assert first.next_attempt_at.date() == day(3) and first.next_step_key == "second-try"
        run_due_retries(now=at(day(3)))
        second = PaymentAttempt.objects.latest("pk")
        assert second.step_key == "second-try" and second.next_step_key == "last-try"
        # Day 6 after the failure is day 7; a payday (the 15th) does not fall before it.
        assert second.next_attempt_at.date() == day(7)
        run_due_retries(now=at(day(7)))
        assert PaymentAttempt.objects.latest("pk").step_key == "last-try"
        assert PaymentAttempt.objects.latest("pk").next_attempt_at is None  # used up
    texts = list(case.events.filter(kind=CaseEvent.Kind.PAYMENT_DECLINED)
                 .values_list("message", flat=True))
    assert texts[1].startswith("Payment retry second-try:")
    assert texts[2].startswith("Payment retry last-try:")


def test_a_policy_without_retry_steps_uses_the_setting(overdue_customer, run):
    ada = overdue_customer(name="Ada")
    run(1)
    Case.objects.get(customer=ada).policy.retry_steps.all().delete()
    with backend(outcomes={str(ada.pk): {"sim_card_1": [declines.INSUFFICIENT_FUNDS]}}), \
            override_dunning_settings(PAYMENT_RETRY_OFFSETS=[4]):
        first = record_failure(ada.pk, invoices=list(ada.invoices.values_list(
            "number", flat=True)), failed_at=at(day(1), 14))
    assert first.next_attempt_at.date() == day(5) and first.next_step_key == "retry-1"


def test_retry_steps_are_edited_on_the_policy_page(admin_client):
    policy = Policy.objects.get(key="standard")
    response = admin_client.get(f"/admin/dunning/policy/{policy.pk}/change/")
    assert response.status_code == 200
    assert "Payment retry steps" in response.content.decode()


# -- channel opt-outs ---------------------------------------------------------------------
def test_opting_out_of_email_skips_reminders_but_not_required_notices(
        overdue_customer, run, mailoutbox):
    ada = overdue_customer(name="Ada", email="ada@example.com")
    run(1)
    assert len(mailoutbox) == 1  # initial-notice
    client = Client()
    page = portal(client, ada)
    assert "Send me reminders by email" in page
    response = portal(client, ada, {"action": "channels"})  # the box unticked
    assert response.status_code == 302
    assert 'name="email"' in portal(client, ada) and "checked" not in portal(client, ada).split(
        'name="email"')[1].split(">")[0]
    entry = Consent.objects.get()
    assert (entry.topic, entry.granted, entry.source) == (channel_topic("email"), False, "portal")
    case = Case.objects.get(customer=ada)
    assert case.events.get(kind=CaseEvent.Kind.CONSENT).message == "Opted out of Email"
    for n in (4, 8, 14, 21, 30):
        run(n)
    steps = dict(CaseStep.objects.filter(case=case).values_list("step_key", "status"))
    assert steps == {
        "initial-notice": "sent", "gentle-reminder": "skipped", "formal-notice": "skipped",
        "suspension-warning": "sent", "suspension": "skipped", "final-notice": "sent",
    }
    assert [m.tags[1] for m in mailoutbox] == ["initial-notice", "suspension-warning",
                                               "final-notice"]
    skipped = CaseStep.objects.get(case=case, step_key="gentle-reminder")
    assert skipped.reason == "The customer opted out of email."
    case.refresh_from_db()
    assert case.suspended and not case.needs_person  # an opt-out is not a failure
    # Ticking the box again brings the reminders back.
    portal(client, ada, {"action": "channels", "email": "on"})
    assert Consent.objects.latest("pk").granted is True
    assert Consent.objects.count() == 2
    # Saving without a change logs nothing.
    portal(client, ada, {"action": "channels", "email": "on"})
    assert Consent.objects.count() == 2


def test_preferences_can_be_saved_without_an_open_case(make_customer):
    ada = make_customer(name="Ada", email="ada@example.com")
    response = portal(Client(), ada, {"action": "channels"})
    assert response.status_code == 302
    assert Consent.objects.get().granted is False


def test_the_updater_form_is_refused_without_a_backend_that_supports_it(make_customer):
    ada = make_customer(name="Ada", email="ada@example.com")
    assert portal(Client(), ada, {"action": "updater", "answer": "yes"}).status_code == 404
    assert not Consent.objects.exists()


def test_the_commands_send_the_notices(make_customer, mailoutbox):
    from io import StringIO

    from django.core.management import call_command

    ada = make_customer(name="Ada", email="ada@example.com")
    with backend(outcomes={str(ada.pk): {"sim_card_1": ["ok"]}},
                 cards={str(ada.pk): {"sim_card_1": [3, 2026]}}):
        out = StringIO()
        call_command("dunning", "predunning", "--as-of", "2026-03-01", stdout=out)
        assert out.getvalue().strip() == "Pre-dunning notices: card-expiring-30 1"
        out = StringIO()
        call_command("dunning", "run", "--as-of", "2026-03-25", stdout=out)
        assert "Pre-dunning notices: card-expiring-7 1" in out.getvalue()
    assert notices(ada) == [("card-expiring-30", "sent"), ("card-expiring-7", "sent")]
    out = StringIO()
    call_command("dunning", "predunning", stdout=out)  # no backend: nothing, said so
    assert out.getvalue().strip() == "Pre-dunning notices: none"


def test_a_customer_who_opted_out_of_email_gets_no_notice(make_customer, mailoutbox, settings):
    settings.DUNNING = {**settings.DUNNING, "PORTAL_BASE_URL": "https://shop.example/dunning/"}
    ada = make_customer(name="Ada", email="ada@example.com")
    bob = make_customer(name="Bob", email="bob@example.com")
    Consent.objects.create(customer_key=str(bob.pk), topic=channel_topic("email"),
                           granted=False, source="unsubscribe")
    cards = {str(c.pk): {"sim_card_1": [3, 2026]} for c in (ada, bob)}
    with backend(outcomes={k: {"sim_card_1": ["ok"]} for k in cards}, cards=cards):
        assert run_predunning(datetime.date(2026, 3, 25)) == {"card-expiring-7": 1, "failed": 1}
    [mail] = mailoutbox
    assert mail.to == ["ada@example.com"]
    assert mail.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "opted out of email" in PreDunningNotice.objects.get(customer=bob).reason
