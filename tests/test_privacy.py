"""Data-protection requests (dunning.privacy, ``manage.py dunning erase``) and the audit
trail that the admin cannot change (docs/privacy.md).

Two customers get a full dunning history (the run's steps, events and webhook deliveries,
and every other table: delivery events, a suppression, a dispute, a plan, feedback, a
payment attempt, a pre-dunning notice, consent entries, a letter with its PDF, an in-app
notice), each row naming its customer. Ada's data is erased or anonymized; Bob's must
come through untouched.
"""

import datetime
import json
import logging
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import models, transaction
from django.utils import timezone

from dunning import privacy
from dunning.hosts import get_customer_model, get_invoice_model
from dunning.models import (
    Case,
    CaseEvent,
    CaseInvoice,
    CaseStep,
    Consent,
    DeliveryEvent,
    Dispute,
    Feedback,
    Letter,
    Notice,
    PaymentAttempt,
    PaymentPlan,
    PortalRevocation,
    PreDunningNotice,
    Run,
    Suppression,
    WebhookDelivery,
    WebhookEndpoint,
)
from dunning.models.consent import opted_out_channels
from dunning.models.letters import letter_storage
from dunning.portal.tokens import InvalidToken, make_token, read_token
from dunning.queries import reports
from dunning.testing import create_customer, create_invoice

from .conftest import day

TODAY = day(10)  # the day the figures are read

#: Everything that names or reaches each customer, as the history below writes it.
PEOPLE = {
    "ada": {"name": "Ada Lovelace", "email": "ada.lovelace@example.com",
            "phone": "+49 170 1111111", "street": "Analyticalweg 5", "card": "4242",
            "ip": "203.0.113.7", "amount": "100.00"},
    "bob": {"name": "Bob Builder", "email": "bob.builder@example.org",
            "phone": "+49 170 2222222", "street": "Baustellenweg 9", "card": "5555",
            "ip": "198.51.100.9", "amount": "200.00"},
}


def identifiers(tag):
    p = PEOPLE[tag]
    return [p["name"], p["email"], p["phone"], p["street"], f"Visa •••• {p['card']}", p["ip"],
            f"pm_{tag}_card", f"txn_{tag}_1", f"<{tag}-1@esp.example>", f"evt-{tag}",
            f"token-{tag}"]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def endpoint(db):
    return WebhookEndpoint.objects.create(url="https://hooks.example.com/dunning")


def customer_for(tag):
    p = PEOPLE[tag]
    customer = create_customer(name=p["name"], email=p["email"], phone=p["phone"])
    create_invoice(customer, amount_due=p["amount"], currency="EUR", due_date=day(0))
    return customer


def paid(customer):
    get_invoice_model()._default_manager.filter(customer=customer).update(amount_due=0)


def at(n, hour=12):
    return timezone.make_aware(datetime.datetime.combine(day(n), datetime.time(hour)))


def add_history(customer, tag):
    """Every other table gets a row (or two) about ``customer``, naming it."""
    p = PEOPLE[tag]
    case = Case.objects.get(customer=customer)
    Case.objects.filter(pk=case.pk).update(pause_reason=f"{p['name']} is on holiday")
    steps = list(case.steps.order_by("pk"))
    CaseStep.objects.filter(pk=steps[0].pk).update(message_id=f"<{tag}-1@esp.example>")
    CaseStep.objects.filter(pk=steps[1].pk).update(
        reason=f"first try: mailbox of {p['email']} full")
    CaseEvent.objects.create(
        case=case, kind=CaseEvent.Kind.CALL, created_at=at(3),
        message=f"Called {p['name']} on {p['phone']}",
        data={"number": p["phone"], "recipient": p["email"], "step": "initial-notice",
              "outcome": "reached"})
    event = DeliveryEvent.objects.create(
        case_step=steps[0], esp="test", event_id=f"evt-{tag}", event_type="unsubscribed",
        recipient=p["email"], timestamp=at(2), description=f"{p['email']} unsubscribed",
        esp_event={"ip": p["ip"], "email": p["email"], "agent": "Mozilla/5.0"})
    Suppression.objects.create(address=p["email"], reason="unsubscribed", event=event)
    Dispute.objects.create(case=case, invoice_number="X-1", reason=f"{p['name']} paid cash",
                           resolution=f"Checked with {p['name']}", resolved_at=at(4))
    PaymentPlan.objects.create(case=case, status=PaymentPlan.Status.COMPLETED,
                               instalments=[{"due": "2026-03-20", "amounts": {"EUR": "50.00"}}],
                               totals={"EUR": p["amount"]}, invoices=[1])
    Feedback.objects.create(case=case, reason=Feedback.Reason.FORGOT, created_at=at(5),
                            text=f"Sorry, {p['name']} forgot. Call {p['phone']}")
    PaymentAttempt.objects.create(
        customer=customer, case=case, invoices=["INV"], amount=Decimal(p["amount"]),
        currency="EUR", method_id=f"pm_{tag}_card", attempted_at=at(3),
        status=PaymentAttempt.Status.DECLINED, decline_code="insufficient_funds",
        message=f"Card of {p['name']} declined", transaction_id=f"txn_{tag}_1")
    PreDunningNotice.objects.create(
        customer=customer, kind=PreDunningNotice.Kind.CARD_EXPIRING_30,
        method_id=f"pm_{tag}_card", reference="2026-12", status=PreDunningNotice.Status.SENT,
        recipient=p["email"], message_id=f"<{tag}-2@esp.example>", created_at=at(1),
        data={"label": f"Visa •••• {p['card']}", "expires": [2026, 12]})
    key = str(customer.pk)
    Consent.objects.create(customer_key=key, topic="channel:email", granted=True,
                           source=Consent.Source.PORTAL, created_at=at(1))
    Consent.objects.create(customer_key=key, topic="channel:email", granted=False,
                           source=Consent.Source.STAFF, created_at=at(3),
                           note=f"{p['name']} asked by phone ({p['phone']})")
    Consent.objects.create(customer_key=key, topic="channel:sms", granted=True,
                           source=Consent.Source.PORTAL, created_at=at(3))
    letter = Letter(case=case, customer_key=key, step_key="formal-notice",
                    recipient_address=f"{p['name']}\n{p['street']}\n12345 Musterstadt",
                    status=Letter.Status.PRINTED, created_at=at(4), pages=1)
    letter.pdf.save(f"letter-{tag}.pdf", ContentFile(b"%PDF-1.7 " + p["name"].encode()),
                    save=False)
    letter.size = letter.pdf.size
    letter.save()
    Notice.objects.create(customer=customer, case=case, step_key="initial-notice",
                          title=f"{p['name']}, your payment failed",
                          text=f"Update the Visa •••• {p['card']}.",
                          action_url=f"https://shop.example.com/portal/token-{tag}")
    # Timeline messages that name the address, as the tracking receiver writes them.
    CaseEvent.objects.create(case=case, kind=CaseEvent.Kind.NOTE, created_at=at(2),
                             message=f"{p['email']} is suppressed (unsubscribed).",
                             data={"delivery_event": event.pk, "event_type": "unsubscribed"})


@pytest.fixture
def world(run, endpoint):
    """Ada and Bob: dunned twice, promised, paid, resolved; and everything else."""
    return build_world("ada", "bob")


def build_world(*tags):
    customers = {tag: customer_for(tag) for tag in tags}
    from dunning.engine.run import run_dunning

    run_dunning(day(1))
    run_dunning(day(4))
    for customer in customers.values():
        Case.objects.filter(customer=customer).update(promised_on=day(5),
                                                      promised_amount=Decimal("10"))
        paid(customer)
    run_dunning(day(6))
    for tag, customer in customers.items():
        add_history(customer, tag)
    return customers


def dunning_models():
    host = {get_customer_model(), get_invoice_model()}
    # Proxies (the agency's view of the cases) share their concrete model's table.
    return [m for m in apps.get_app_config("dunning").get_models()
            if m not in host and not m._meta.proxy]


def text_fields(model):
    return [f for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField | models.JSONField
                          | models.FileField)]


def found_anywhere(needles):
    """(table, field, needle) for every needle found (case-insensitive) in any text or
    JSON field of any row of dunning's own tables."""
    hits = set()
    lowered = [n.lower() for n in needles]
    for model in dunning_models():
        fields = text_fields(model)
        for row in model._base_manager.values_list(*[f.attname for f in fields]):
            for f, value in zip(fields, row, strict=True):
                text = (json.dumps(value, ensure_ascii=False) if isinstance(f, models.JSONField)
                        else str(value or "")).lower()
                hits.update((model.__name__, f.name, n) for n in lowered if n in text)
    return hits


def snapshot(*, exclude=()):
    """Every row of dunning's own tables, as data."""
    data = {}
    for model in dunning_models():
        if model in exclude:
            continue
        fields = [f.attname for f in model._meta.concrete_fields]
        data[model.__name__] = sorted(
            json.dumps(row, default=str, sort_keys=True)
             for row in model._base_manager.values(*fields))
    return data


def rows_of(customer):
    """Bob's rows in every table, as data (to prove they come through untouched)."""
    key = str(customer.pk)
    in_case = {"case__customer": customer}
    querysets = {
        Case: Case.objects.filter(customer=customer),
        CaseStep: CaseStep.objects.filter(**in_case),
        CaseEvent: CaseEvent.objects.filter(**in_case),
        CaseInvoice: CaseInvoice.objects.filter(**in_case),
        Dispute: Dispute.objects.filter(**in_case),
        PaymentPlan: PaymentPlan.objects.filter(**in_case),
        Feedback: Feedback.objects.filter(**in_case),
        PaymentAttempt: PaymentAttempt.objects.filter(customer=customer),
        PreDunningNotice: PreDunningNotice.objects.filter(customer=customer),
        Notice: Notice.objects.filter(customer=customer),
        Letter: Letter.objects.filter(customer_key=key),
        WebhookDelivery: WebhookDelivery.objects.filter(payload__case__customer=key),
        DeliveryEvent: DeliveryEvent.objects.filter(case_step__case__customer=customer),
        Consent: Consent.objects.filter(customer_key=key),
        PortalRevocation: PortalRevocation.objects.filter(customer_key=key),
        Suppression: Suppression.objects.filter(address=customer.email),
    }
    return {model.__name__: sorted(json.dumps(row, default=str, sort_keys=True)
                                   for row in qs.values())
            for model, qs in querysets.items()}


def figures():
    return {
        "dashboard": reports.dashboard(TODAY),
        "steps_ever": reports.step_effectiveness(),
        "days_to_collect": reports.average_days_to_collect(),
    }


def erase(customer, *args):
    call_command("dunning", "erase", str(customer.pk), "--yes", *args, verbosity=0)


# -- the tables ---------------------------------------------------------------------------
def test_every_table_of_dunning_is_either_erased_or_holds_nothing_personal(db):
    """A new model must say what an erasure does with it."""
    covered = {m._meta.label for m in privacy.TABLES} | set(privacy.NOT_PERSONAL)
    missing = {m._meta.label for m in dunning_models()} - covered
    assert not missing, f"dunning.privacy does not know these tables: {sorted(missing)}"


def test_the_history_names_both_customers_everywhere(world):
    """The searches below are not vacuous: before the erasure every identifier of both
    customers is found, in every table that holds personal data."""
    for tag in ("ada", "bob"):
        hits = found_anywhere(identifiers(tag))
        assert {n for _t, _f, n in hits} == {n.lower() for n in identifiers(tag)}
        assert {t for t, _f, _n in hits} >= {
            "Case", "CaseStep", "CaseEvent", "Dispute", "Feedback", "PaymentAttempt",
            "PreDunningNotice", "Notice", "Letter", "WebhookDelivery", "DeliveryEvent",
            "Consent", "Suppression"}
    assert WebhookDelivery.objects.filter(payload__case__customer=str(world["ada"].pk)).exists()


# -- dry run ------------------------------------------------------------------------------
@pytest.mark.parametrize("anonymize", [False, True])
def test_a_dry_run_counts_per_table_and_changes_nothing(world, anonymize,
                                                       django_capture_on_commit_callbacks):
    ada = world["ada"]
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        report = privacy.erase_customer(ada.pk, anonymize=anonymize, dry_run=True)
    assert snapshot() == before
    assert letter_storage.exists(Letter.objects.get(customer_key=str(ada.pk)).pdf.name)

    case = Case.objects.get(customer=ada)
    action = "scrub" if anonymize else "delete"
    expected = {
        CaseStep: case.steps.count(),  # initial-notice, gentle-reminder, payment-received
        CaseEvent: case.events.count(),
        Dispute: 1, Feedback: 1, PaymentAttempt: 1, PreDunningNotice: 1, Notice: 1,
        Letter: 1, DeliveryEvent: 1,
        WebhookDelivery: WebhookDelivery.objects.filter(
            payload__case__customer=str(ada.pk)).count(),
        Case: 1,
    }
    assert expected[CaseStep] == 3 and expected[WebhookDelivery] >= 4
    for model, count in expected.items():
        assert report.count(model, action) == count, model
    assert report.count("files", "delete") == 1
    assert report.count(Suppression, "hash") == 1
    assert report.count(PortalRevocation, "keep") == 1
    if anonymize:
        assert report.count(Consent, "scrub") == 3
        assert report.count(CaseInvoice) == report.count(PaymentPlan) == 0  # nothing personal
    else:
        assert report.count(CaseInvoice, "delete") == 0  # a resolved case links no invoice
        assert report.count(PaymentPlan, "delete") == 1
        assert report.count(Consent, "delete") == 2 and report.count(Consent, "keep") == 1


def test_the_command_dry_run_prints_the_counts_and_writes_nothing(world, capsys):
    ada = world["ada"]
    before = snapshot()
    call_command("dunning", "erase", str(ada.pk), "--dry-run")
    out = capsys.readouterr().out
    assert snapshot() == before
    assert f"Customer {ada.pk}: erase (dry run: nothing is changed)" in out
    steps = Case.objects.get(customer=ada).steps.count()
    assert any(line.split()[:3] == ["delete", "dunning.CaseStep", str(steps)]
               for line in out.splitlines())
    assert "Not touched: the host's customer" in out
    assert "reports.recovered_amounts" in out and "--anonymize keeps them" in out
    assert "Ada" not in out and PEOPLE["ada"]["email"] not in out


# -- anonymize ----------------------------------------------------------------------------
def test_anonymize_scrubs_every_personal_field_and_keeps_every_row(
        world, django_capture_on_commit_callbacks):
    ada, bob = world["ada"], world["bob"]
    counts = {m: m._base_manager.count() for m in dunning_models()}
    bob_rows = rows_of(bob)
    with django_capture_on_commit_callbacks(execute=True):
        erase(ada, "--anonymize")

    assert found_anywhere(identifiers("ada")) == set()
    # Bob's rows are exactly as they were, and still name him.
    assert rows_of(bob) == bob_rows
    assert {n for _t, _f, n in found_anywhere(identifiers("bob"))} == {
        n.lower() for n in identifiers("bob")}
    # Every row is kept: one note per case is added, the suppression is kept hashed.
    after = {m: m._base_manager.count() for m in dunning_models()}
    assert after.pop(CaseEvent) == counts.pop(CaseEvent) + 1
    assert after.pop(WebhookDelivery) == counts.pop(WebhookDelivery) + 1  # the note's
    assert after.pop(PortalRevocation) == counts.pop(PortalRevocation) + 1  # links revoked
    assert after == counts
    # The host's customer and invoice are the host's: untouched.
    ada.refresh_from_db()
    assert ada.name == PEOPLE["ada"]["name"] and ada.email == PEOPLE["ada"]["email"]
    assert get_invoice_model()._default_manager.filter(customer=ada).count() == 1
    # What stays of the case: the structure, the amounts, the link to the customer.
    case = Case.objects.get(customer=ada)
    step = case.steps.get(step_key="initial-notice")
    assert step.recipient == "" and step.message_id == ""
    assert step.invoices[0]["amount_due"] == "100.00" and step.invoices[0]["currency"] == "EUR"
    note = case.events.get(data__privacy="anonymized")
    assert note.kind == CaseEvent.Kind.NOTE and "Ada" not in note.message
    call = case.events.get(kind=CaseEvent.Kind.CALL)
    assert call.message == privacy.ERASED
    assert call.data == {"number": privacy.ERASED, "recipient": privacy.ERASED,
                         "step": "initial-notice", "outcome": "reached"}
    assert Feedback.objects.get(case=case).reason == Feedback.Reason.FORGOT
    letter = Letter.objects.get(case=case)
    assert letter.recipient_address == privacy.ERASED and not letter.pdf
    assert DeliveryEvent.objects.get(case_step__case=case).esp_event == {}


def test_anonymize_keeps_every_figure_of_the_reports_identical(world):
    before = figures()
    assert before["dashboard"]["recovery"][30]["resolved"] == 2
    assert before["dashboard"]["recovered"][30] == [{"currency": "EUR",
                                                     "amount": Decimal("300.00")}]
    assert before["dashboard"]["promises"]["kept"] == 2
    assert before["dashboard"]["late_reasons"]["total"] == 2
    erase(world["ada"], "--anonymize")
    assert figures() == before


def test_anonymize_twice_changes_nothing_more(world, django_capture_on_commit_callbacks):
    ada = world["ada"]
    with django_capture_on_commit_callbacks(execute=True):
        erase(ada, "--anonymize")
    once = snapshot(exclude=(PortalRevocation,))  # the revocation moves to now
    with django_capture_on_commit_callbacks(execute=True):
        report = privacy.erase_customer(ada.pk, anonymize=True)
    assert snapshot(exclude=(PortalRevocation,)) == once
    assert report.files == []


# -- erase --------------------------------------------------------------------------------
def test_erase_deletes_the_customers_rows_and_leaves_the_others_untouched(
        world, django_capture_on_commit_callbacks):
    ada, bob = world["ada"], world["bob"]
    bob_rows = rows_of(bob)
    runs = list(Run.objects.values())
    with django_capture_on_commit_callbacks(execute=True):
        erase(ada)

    assert rows_of(bob) == bob_rows
    assert list(Run.objects.values()) == runs
    key = str(ada.pk)
    assert not Case.objects.filter(customer=ada).exists()
    for model in (CaseStep, CaseEvent, CaseInvoice, Dispute, PaymentPlan, Feedback):
        assert not model.objects.filter(case__customer=ada).exists(), model
    assert not PaymentAttempt.objects.filter(customer=ada).exists()
    assert not PreDunningNotice.objects.filter(customer=ada).exists()
    assert not Notice.objects.filter(customer=ada).exists()
    assert not Letter.objects.filter(customer_key=key).exists()
    assert not WebhookDelivery.objects.filter(payload__case__customer=key).exists()
    assert not DeliveryEvent.objects.filter(recipient=PEOPLE["ada"]["email"]).exists()
    assert found_anywhere(identifiers("ada")) == set()
    # What is kept on purpose: the opt-out, the revoked links, the hashed suppression.
    kept = Consent.objects.get(customer_key=key)
    assert (kept.topic, kept.granted, kept.note) == ("channel:email", False, privacy.ERASED)
    assert opted_out_channels([key]) == {key: {"email"}}
    assert PortalRevocation.objects.filter(customer_key=key).exists()
    assert Suppression.objects.filter(
        address=privacy.suppression_digest(PEOPLE["ada"]["email"])).exists()
    # The host's rows are the host's.
    assert get_customer_model()._default_manager.filter(pk=ada.pk).exists()
    assert get_invoice_model()._default_manager.filter(customer=ada).count() == 1


def test_erase_lowers_the_figures_by_the_customers_share_only(run, endpoint):
    """The figures after erasing Ada are exactly those of a world in which only Bob was
    ever dunned."""
    with transaction.atomic():
        build_world("bob")
        only_bob = figures()
        transaction.set_rollback(True)
    customers = build_world("ada", "bob")
    assert figures() != only_bob
    erase(customers["ada"])
    assert figures() == only_bob


def test_erase_twice_is_fine(world, django_capture_on_commit_callbacks):
    ada = world["ada"]
    with django_capture_on_commit_callbacks(execute=True):
        erase(ada)
    once = snapshot(exclude=(PortalRevocation,))  # the revocation moves to now
    report = privacy.erase_customer(ada.pk)
    assert snapshot(exclude=(PortalRevocation,)) == once
    assert report.deleted == {} and report.files == []
    assert report.count(Consent, "keep") == 1


@pytest.mark.parametrize("anonymize", [False, True])
def test_the_letters_files_are_deleted_from_the_storage_once_committed(
        world, anonymize, django_capture_on_commit_callbacks):
    ada, bob = world["ada"], world["bob"]
    ada_file = Letter.objects.get(customer_key=str(ada.pk)).pdf.name
    bob_file = Letter.objects.get(customer_key=str(bob.pk)).pdf.name
    assert letter_storage.exists(ada_file) and letter_storage.exists(bob_file)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = privacy.erase_customer(ada.pk, anonymize=anonymize)
    assert report.files == [ada_file]
    assert letter_storage.exists(ada_file)  # not before the transaction commits
    for callback in callbacks:
        callback()
    assert not letter_storage.exists(ada_file)
    assert letter_storage.exists(bob_file)


def test_a_failed_erasure_changes_nothing_and_keeps_the_files(world, monkeypatch):
    ada = world["ada"]
    before = snapshot()
    ada_file = Letter.objects.get(customer_key=str(ada.pk)).pdf.name

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(privacy, "_keep_minimum", broken)  # fails after the deletions
    with pytest.raises(RuntimeError):
        privacy.erase_customer(ada.pk)
    assert snapshot() == before
    assert letter_storage.exists(ada_file)


# -- what is kept so that the customer is not contacted again ------------------------------
def test_the_suppressed_address_is_kept_only_as_a_hash(world):
    email = PEOPLE["ada"]["email"]
    erase(world["ada"], "--anonymize")
    assert not Suppression.objects.filter(address=email).exists()
    row = Suppression.objects.get(address=privacy.suppression_digest(email))
    assert row.reason == Suppression.Reason.UNSUBSCRIBED
    assert row.address.startswith("sha256:") and len(row.address) == 7 + 64
    suppressed = dict(Suppression.objects.values_list("address", "reason"))
    assert privacy.is_suppressed(" Ada.Lovelace@Example.com ", suppressed) == "unsubscribed"
    assert privacy.is_suppressed("someone.else@example.com", suppressed) is None


@pytest.mark.parametrize("anonymize", [False, True])
def test_unreadable_tracking_bodies_that_mention_the_customer_are_deleted(world, anonymize):
    from dunning.models import UnreadableTrackingEvent

    ada, bob = PEOPLE["ada"]["email"], PEOPLE["bob"]["email"]
    mentions_ada = UnreadableTrackingEvent.objects.create(
        esp="TestESP", reason="impossible date",
        body=f'[{{"email": "{ada.upper()}", "timestamp": "2026-02-30"}}]')
    mentions_bob = UnreadableTrackingEvent.objects.create(
        esp="TestESP", reason="impossible date", body=f'[{{"email": "{bob}"}}]')
    report = privacy.erase_customer(world["ada"].pk, anonymize=anonymize)
    assert not UnreadableTrackingEvent.objects.filter(pk=mentions_ada.pk).exists()
    assert UnreadableTrackingEvent.objects.filter(pk=mentions_bob.pk).exists()
    assert "dunning.UnreadableTrackingEvent" in report.summary()


def test_the_email_channel_still_refuses_a_hashed_suppressed_address(world):
    from dunning.channels.email import EmailChannel

    ada = world["ada"]
    erase(ada, "--anonymize")
    address, problem = EmailChannel().recipient(ada)
    assert address == "" and "suppressed" in problem


def test_every_self_service_link_of_the_customer_is_revoked(world):
    ada, bob = world["ada"], world["bob"]
    old = make_token(ada.pk, issued=timezone.now().timestamp() - 60)
    bobs = make_token(bob.pk, issued=timezone.now().timestamp() - 60)
    erase(ada)
    with pytest.raises(InvalidToken):
        read_token(old)
    assert read_token(bobs).customer_key == str(bob.pk)


# -- refusals and bad input -----------------------------------------------------------------
def test_a_bad_customer_pk_is_a_clear_command_error(world):
    before = snapshot()
    with pytest.raises(CommandError, match="'abc' is not a customer id"):
        call_command("dunning", "erase", "abc", "--yes")
    with pytest.raises(CommandError, match="no customer 987654 and no dunning data"):
        call_command("dunning", "erase", "987654", "--yes")
    assert snapshot() == before


def test_a_customer_still_in_dunning_is_refused(run, overdue_customer):
    customer = overdue_customer(name="Ada Open", email="open@example.com")
    run(1)
    before = snapshot()
    for args in ((), ("--anonymize",), ("--dry-run",)):
        with pytest.raises(CommandError, match="has an open dunning case"):
            call_command("dunning", "erase", str(customer.pk), "--yes", *args)
    assert snapshot() == before


def test_a_hard_erase_is_refused_while_a_terminated_cases_invoice_is_unpaid(
        run, overdue_customer):
    customer = overdue_customer(name="Gone", email="gone@example.com")
    for n in (1, 4, 8, 14, 21, 30, 45):
        run(n)
    case = Case.objects.get(customer=customer)
    assert case.status == Case.Status.TERMINATED
    with pytest.raises(CommandError, match="would dun it again from the start"):
        erase(customer)
    erase(customer, "--anonymize")  # keeps the links: fine
    assert CaseInvoice.objects.filter(case=case).exists()
    run(50)
    assert Case.objects.filter(customer=customer).count() == 1  # nothing reopened


def test_the_command_asks_before_it_changes_anything(world, monkeypatch, capsys):
    ada = world["ada"]
    before = snapshot()
    answers = iter(["no", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    with pytest.raises(CommandError, match="Cancelled: nothing was changed"):
        call_command("dunning", "erase", str(ada.pk), "--anonymize")
    assert snapshot() == before
    call_command("dunning", "erase", str(ada.pk), "--anonymize")
    out = capsys.readouterr().out
    assert "Anonymized:" in out and "Every dashboard and report figure stays the same" in out
    assert found_anywhere(identifiers("ada")) == set()


def test_the_erasure_is_logged_with_counts_and_no_personal_data(world, caplog):
    ada = world["ada"]
    with caplog.at_level(logging.WARNING, logger="dunning.privacy"):
        erase(ada)
    records = [r for r in caplog.records if r.name == "dunning.privacy"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert f"customer {ada.pk} erased" in message and "delete dunning.CaseStep=3" in message
    assert not any(n.lower() in message.lower() for n in identifiers("ada"))


def test_erase_is_listed_in_the_help(capsys):
    with pytest.raises(SystemExit):
        call_command("dunning", "erase", "--help")
    out = capsys.readouterr().out
    assert "--anonymize" in out and "--dry-run" in out and "--yes" in out


# -- the audit trail in the admin -----------------------------------------------------------
AUDIT_MODELS = [CaseStep, DeliveryEvent, PaymentAttempt, PreDunningNotice, Consent, Letter,
                Notice, WebhookDelivery, Run, PaymentPlan, Feedback]


def admin_url(model, *parts):
    return "/".join(["/admin", model._meta.app_label, model._meta.model_name, *map(str, parts)]) + "/"


@pytest.mark.parametrize("model", AUDIT_MODELS, ids=lambda m: m.__name__)
def test_no_one_changes_or_deletes_an_audit_row_in_the_admin(model, world, admin_client):
    """Not even a superuser: the change page is read-only and refuses a POST, the delete
    page refuses, and the bulk delete action is not offered."""
    row = model._base_manager.order_by("pk").first()
    before = snapshot()
    page = admin_client.get(admin_url(model, row.pk, "change"))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.post(admin_url(model, row.pk, "change"), {}).status_code == 403
    assert admin_client.get(admin_url(model, row.pk, "delete")).status_code == 403
    assert admin_client.post(admin_url(model, row.pk, "delete"),
                             {"post": "yes"}).status_code == 403
    changelist = admin_client.get(admin_url(model))
    assert changelist.status_code == 200
    assert b'value="delete_selected"' not in changelist.content
    admin_client.post(admin_url(model), {"action": "delete_selected",
                                         "_selected_action": [row.pk], "post": "yes"})
    assert snapshot() == before


def test_every_admin_of_a_timeline_table_refuses_change_and_delete(boss, rf):
    """Whatever admin is registered for a timeline table, a proxy of it included (the
    agency's view of the cases), refuses a superuser every change and deletion; a case
    itself is never deleted (its workbench fields stay editable)."""
    request = rf.get("/admin/")
    request.user = boss
    timeline = {m._meta.label for m in privacy.TABLES} - {
        "dunning.Case", "dunning.Suppression", "dunning.PortalRevocation"}
    timeline.add("dunning.Run")
    checked = set()
    for model, model_admin in admin.site._registry.items():
        label = model._meta.concrete_model._meta.label
        if label == "dunning.Case":
            assert not model_admin.has_delete_permission(request), model
        elif label in timeline:
            assert not model_admin.has_change_permission(request), model
            assert not model_admin.has_delete_permission(request), model
        else:
            continue
        assert "delete_selected" not in model_admin.get_actions(request), model
        checked.add(label)
    assert checked >= {m._meta.label for m in AUDIT_MODELS} | {"dunning.Case"}


def test_the_consent_log_is_append_only_in_the_admin(world, admin_client):
    assert admin_client.get(admin_url(Consent, "add")).status_code == 200
    response = admin_client.post(admin_url(Consent, "add"), {
        "customer_key": "42", "topic": "channel:sms", "granted": "", "note": "by phone"})
    assert response.status_code == 302
    entry = Consent.objects.get(customer_key="42")
    assert entry.source == Consent.Source.STAFF and not entry.granted


def test_timeline_events_have_no_admin_at_all(world, admin_client):
    assert CaseEvent not in admin.site._registry
    event = CaseEvent.objects.first()
    assert admin_client.get(admin_url(CaseEvent, event.pk, "change")).status_code in (302, 404)


def test_a_case_and_its_timeline_cannot_be_deleted_in_the_admin(world, admin_client):
    case = Case.objects.get(customer=world["ada"])
    before = snapshot()
    assert admin_client.get(admin_url(Case, case.pk, "delete")).status_code == 403
    assert admin_client.post(admin_url(Case, case.pk, "delete"),
                             {"post": "yes"}).status_code == 403
    changelist = admin_client.get(admin_url(Case))
    assert b'value="delete_selected"' not in changelist.content
    # Nor through a row the timeline hangs off: the customer, a webhook endpoint.
    customer_model = get_customer_model()
    if customer_model in admin.site._registry:
        assert admin_client.post(admin_url(customer_model, world["ada"].pk, "delete"),
                                 {"post": "yes"}).status_code == 403
    endpoint = WebhookEndpoint.objects.get()
    assert admin_client.post(admin_url(WebhookEndpoint, endpoint.pk, "delete"),
                             {"post": "yes"}).status_code == 403
    assert snapshot() == before


def test_a_case_stays_editable_for_the_workbench_fields(world, admin_client):
    case = Case.objects.get(customer=world["ada"])
    page = admin_client.get(admin_url(Case, case.pk, "change"))
    assert page.status_code == 200 and b'name="_save"' in page.content


def test_the_admin_shows_an_anonymized_case_without_the_customers_data(world, admin_client):
    ada = world["ada"]
    erase(ada, "--anonymize")
    case = Case.objects.get(customer=ada)
    page = admin_client.get(admin_url(Case, case.pk, "change"))
    assert page.status_code == 200
    text = page.content.decode()
    for needle in identifiers("ada"):
        if needle not in (PEOPLE["ada"]["name"], PEOPLE["ada"]["email"]):  # the host's row
            assert needle not in text, needle
