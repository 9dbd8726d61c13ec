"""The dunning run end to end (dunning.engine.run.run_dunning) on the shipped models.

Every test drives real runs against the database and looks at what a user would notice:
the email handed to the backend, the case, its steps and events, and the signals.
"""

import datetime
import smtplib
from collections import Counter
from decimal import Decimal

import pytest
from anymail.message import AnymailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.test import override_settings
from django.utils import timezone

from dunning import signals
from dunning.channels.base import idempotency_key
from dunning.channels.email import EmailChannel
from dunning.conf import dunning_settings
from dunning.engine.run import run_dunning
from dunning.models import Case, CaseEvent, CaseStep, Customer, Invoice, Policy, Run
from dunning.testing import override_dunning_settings
from tests.conftest import DAY0, day

STANDARD_DAYS = {
    1: "initial-notice",
    4: "gentle-reminder",
    8: "formal-notice",
    14: "suspension-warning",
    21: "suspension",
    30: "final-notice",
    45: "termination",
}


# -- helpers ------------------------------------------------------------------------------


def keys(messages):
    return [m.metadata["dunning_step"] for m in messages]


def html_of(message):
    return next(content for content, mimetype in message.alternatives if mimetype == "text/html")


def run_days(run, mailoutbox, days, *, twice=False, **kwargs):
    """Run on each day (with ``twice``, run again at once: that run must send nothing);
    return {day: [step keys]} for the days on which anything was sent."""
    sent = {}
    for n in days:
        before = len(mailoutbox)
        run(n, **kwargs)
        new = mailoutbox[before:]
        if new:
            sent[n] = keys(new)
        if twice:
            run(n, **kwargs)
            assert len(mailoutbox) == before + len(new), f"a second run on day {n} sent again"
    return sent


def pay(customer, number=None):
    invoices = Invoice.objects.filter(customer=customer)
    if number is not None:
        invoices = invoices.filter(number=number)
    invoices.update(amount_due=Decimal("0.00"))


class SignalLog(list):
    def names(self):
        return [name for name, _, _ in self]

    def of(self, name):
        return [(case, customer) for n, case, customer in self if n == name]


SIGNAL_NAMES = ("service_suspended", "service_restored", "account_terminated", "case_resolved")


@pytest.fixture
def fired():
    """Every dunning signal sent during the test: (name, case, customer)."""
    log = SignalLog()
    connected = []
    for name in SIGNAL_NAMES:
        signal = getattr(signals, name)

        def receiver(sender, case, customer, _name=name, **kwargs):
            log.append((_name, case, customer))

        uid = f"test-engine-{name}"
        signal.connect(receiver, weak=False, dispatch_uid=uid)
        connected.append((signal, uid))
    yield log
    for signal, uid in connected:
        signal.disconnect(dispatch_uid=uid)


@pytest.fixture
def raising_receiver():
    """A host receiver of service_suspended that fails."""

    def broken_suspend(sender, case, customer, **kwargs):
        raise RuntimeError(f"billing host is down for {customer.pk}")

    signals.service_suspended.connect(broken_suspend, weak=False, dispatch_uid="test-broken")
    yield broken_suspend
    signals.service_suspended.disconnect(dispatch_uid="test-broken")


class RefusingBackend(LocmemBackend):
    """Delivers like locmem, but the server refuses refused@example.com."""

    def send_messages(self, messages):
        for message in messages:
            if "refused@example.com" in message.to:
                raise smtplib.SMTPRecipientsRefused(
                    {"refused@example.com": (550, b"5.1.1 no such mailbox")}
                )
        return super().send_messages(messages)


class Crash(BaseException):
    """The process dies (SIGKILL-like) while handing messages to the backend."""


class CrashingBackend(BaseEmailBackend):
    def send_messages(self, messages):
        raise Crash("killed while sending")


class CrashingChannel(EmailChannel):
    """The process dies after the batch was recorded, before its messages are handed
    over (while the outbox builds them): they stay queued."""

    def build(self, outgoing):
        raise Crash("killed before sending")


# -- the schedule, end to end -------------------------------------------------------------


def test_daily_runs_send_each_step_on_its_day_and_nothing_in_between(
    run, overdue_customer, mailoutbox
):
    customer = overdue_customer(email="ada@example.com")

    sent = run_days(run, mailoutbox, range(0, 50), twice=True)

    assert sent == {n: [key] for n, key in STANDARD_DAYS.items()}
    assert all(m.to == ["ada@example.com"] for m in mailoutbox)
    case = Case.objects.get(customer=customer)
    assert case.status == Case.Status.TERMINATED
    steps = list(case.steps.order_by("executed_on"))
    assert [(s.step_key, s.executed_on, s.status) for s in steps] == [
        (key, day(n), CaseStep.Status.SENT) for n, key in STANDARD_DAYS.items()
    ]
    assert all(s.sent_at is not None for s in steps)
    assert not case.needs_person


def test_reruns_on_the_same_day_send_nothing_more(run, overdue_customer, mailoutbox):
    overdue_customer()
    for _ in range(3):
        run(1)
    assert keys(mailoutbox) == ["initial-notice"]
    for _ in range(3):
        run(4)
    assert keys(mailoutbox) == ["initial-notice", "gentle-reminder"]
    assert CaseStep.objects.count() == 2
    assert Run.objects.filter(status=Run.Status.COMPLETED).count() == 6


def test_small_batches_reach_every_customer_once(run, overdue_customer, mailoutbox):
    customers = [overdue_customer() for _ in range(5)]
    run(1, batch_size=2)
    assert sorted(m.to[0] for m in mailoutbox) == sorted(c.email for c in customers)
    assert set(keys(mailoutbox)) == {"initial-notice"}
    run(1, batch_size=2)
    run(4, batch_size=2)
    assert Counter(keys(mailoutbox)) == {"initial-notice": 5, "gentle-reminder": 5}
    assert Case.objects.count() == 5


def test_first_run_long_after_due_date_starts_at_the_first_step(run, overdue_customer, mailoutbox):
    """Go-live over old debt: 19 days overdue gets initial-notice, then one step per 3 days."""
    overdue_customer()
    sent = run_days(run, mailoutbox, range(19, 47))
    assert sent == {
        19: ["initial-notice"],
        22: ["gentle-reminder"],
        25: ["formal-notice"],
        28: ["suspension-warning"],
        31: ["suspension"],
        34: ["final-notice"],
        45: ["termination"],
    }
    warning = next(m for m in mailoutbox if m.metadata["dunning_step"] == "suspension-warning")
    assert "Your account is 28 days overdue" in warning.body


def test_runs_skipped_for_weeks_never_skip_a_step(run, overdue_customer, mailoutbox):
    overdue_customer()
    run(1)
    run(30)  # nobody ran the job for four weeks
    run(31)
    run(33)
    assert keys(mailoutbox) == ["initial-notice", "gentle-reminder", "formal-notice"]


def test_a_paused_case_waits_until_its_pause_ends(run, overdue_customer, mailoutbox):
    overdue_customer()
    run(1)
    Case.objects.update(paused_until=day(10))
    sent = run_days(run, mailoutbox, range(2, 14))
    assert sent == {10: ["gentle-reminder"], 13: ["formal-notice"]}


# -- one case, one message with every invoice ---------------------------------------------


def test_three_overdue_invoices_make_one_case_and_one_message(
    run, make_customer, make_invoice, mailoutbox
):
    customer = make_customer(name="Ada Lovelace", email="ada@example.com")
    make_invoice(customer, number="INV-A", amount_due="100.00", due_date=DAY0)
    make_invoice(customer, number="INV-B", amount_due="250.50", due_date=day(-10))
    make_invoice(customer, number="INV-C", amount_due="49.50", due_date=day(-20))
    make_invoice(customer, number="INV-LATER", amount_due="999.00", due_date=day(30))

    result = run(1)

    assert result.opened == 1
    assert Case.objects.filter(customer=customer).count() == 1
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    text, html = message.body, html_of(message)
    for number, amount, due in [
        ("INV-A", "€100.00", "Mar 2, 2026"),
        ("INV-B", "€250.50", "Feb 20, 2026"),
        ("INV-C", "€49.50", "Feb 10, 2026"),
    ]:
        assert f"- {number}: {amount}, due {due}" in text
        assert f"<td>{number}</td><td align=\"right\">{amount}</td><td>{due}</td>" in html
    assert "Total EUR: €400.00" in text
    assert "€400.00" in html
    assert "INV-LATER" not in text and "INV-LATER" not in html
    step = CaseStep.objects.get()
    assert [i["number"] for i in step.invoices] == ["INV-C", "INV-B", "INV-A"]


def test_totals_per_currency_are_never_summed_together(
    run, make_customer, make_invoice, mailoutbox
):
    customer = make_customer()
    make_invoice(customer, number="E-1", amount_due="100.00", currency="EUR", due_date=DAY0)
    make_invoice(customer, number="E-2", amount_due="20.50", currency="EUR", due_date=day(-3))
    make_invoice(customer, number="U-1", amount_due="30.00", currency="USD", due_date=day(-1))

    run(1)

    assert len(mailoutbox) == 1
    text, html = mailoutbox[0].body, html_of(mailoutbox[0])
    assert "Total EUR: €120.50" in text
    assert "Total USD: $30.00" in text
    assert text.count("Total ") == 2
    assert "150.50" not in text and "150.50" not in html
    assert "Total EUR" in html and "Total USD" in html
    # the subject shows both totals side by side
    assert "€120.50" in mailoutbox[0].subject and "$30.00" in mailoutbox[0].subject


def test_an_invoice_falling_overdue_joins_the_open_case(
    run, make_customer, make_invoice, mailoutbox
):
    customer = make_customer()
    make_invoice(customer, number="OLD", amount_due="100.00", due_date=DAY0)
    make_invoice(customer, number="NEW", amount_due="40.00", due_date=day(2))

    run(1)
    assert "OLD" in mailoutbox[0].body and "NEW" not in mailoutbox[0].body
    run(3)  # NEW is now overdue, but no step is due
    assert len(mailoutbox) == 1
    run(4)

    assert keys(mailoutbox) == ["initial-notice", "gentle-reminder"]
    assert Case.objects.count() == 1
    reminder = mailoutbox[1].body
    assert "- OLD: €100.00" in reminder and "- NEW: €40.00" in reminder
    assert "Total EUR: €140.00" in reminder


# -- payment ------------------------------------------------------------------------------


def test_full_payment_sends_one_thank_you_and_resolves(run, overdue_customer, mailoutbox, fired):
    customer = overdue_customer(name="Ada", email="ada@example.com")
    run(1)
    run(4)
    pay(customer)

    result = run(5)

    assert result.resolved == 1
    assert keys(mailoutbox) == ["initial-notice", "gentle-reminder", "payment-received"]
    thanks = mailoutbox[-1]
    assert thanks.to == ["ada@example.com"]
    assert thanks.subject == "Thank you for your payment"
    assert "payment-received" in thanks.tags
    case = Case.objects.get()
    assert case.status == Case.Status.RESOLVED
    assert case.closed_on == day(5)
    assert CaseStep.objects.get(step_key="payment-received").status == CaseStep.Status.SENT
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.RESOLVED).count() == 1

    assert fired.names() == ["case_resolved"]
    (signal_case, signal_customer), = fired.of("case_resolved")
    assert isinstance(signal_case, Case) and signal_case.pk == case.pk
    assert isinstance(signal_customer, Customer) and signal_customer.pk == customer.pk

    run_days(run, mailoutbox, [5, 6, 8, 14, 21, 45], twice=True)
    assert len(mailoutbox) == 3
    assert fired.names() == ["case_resolved"]


def test_payment_of_a_suspended_customer_restores_the_service(
    run, overdue_customer, mailoutbox, fired
):
    customer = overdue_customer()
    run_days(run, mailoutbox, [1, 4, 8, 14, 21])
    assert Case.objects.get().suspended
    assert fired.names() == ["service_suspended"]
    pay(customer)

    run(22)

    assert keys(mailoutbox)[-1] == "payment-received"
    assert keys(mailoutbox).count("payment-received") == 1
    assert sorted(fired.names()) == ["case_resolved", "service_restored", "service_suspended"]
    (case, host_customer), = fired.of("service_restored")
    assert case.pk == Case.objects.get().pk and host_customer.pk == customer.pk
    assert isinstance(host_customer, Customer)
    case = Case.objects.get()
    assert case.status == Case.Status.RESOLVED and not case.suspended
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.RESTORED).count() == 1


def test_a_customer_never_dunned_gets_no_thank_you(run, overdue_customer, mailoutbox):
    Policy.objects.filter(key="standard").update(grace_days=5)
    customer = overdue_customer()
    run(1)  # a case is open, but the first step is only due on day 6
    assert mailoutbox == []
    pay(customer)
    run(2)
    assert mailoutbox == []
    assert Case.objects.get().status == Case.Status.RESOLVED


def test_partial_payment_keeps_the_case_and_counts_from_the_oldest_open_invoice(
    run, make_customer, make_invoice, mailoutbox, fired
):
    customer = make_customer()
    make_invoice(customer, number="A", amount_due="100.00", due_date=DAY0)
    make_invoice(customer, number="B", amount_due="50.00", due_date=day(2))
    run(1)
    run(4)
    assert "- A: €100.00" in mailoutbox[-1].body and "- B: €50.00" in mailoutbox[-1].body
    case = Case.objects.get()
    pay(customer, number="A")  # B (due day 2) is now the oldest open invoice

    sent = run_days(run, mailoutbox, range(5, 18))

    # formal-notice (offset 8) is due 8 days after B's due date, suspension-warning 14
    assert sent == {10: ["formal-notice"], 16: ["suspension-warning"]}
    assert "payment-received" not in keys(mailoutbox)
    assert fired.names() == []
    assert list(Case.objects.values_list("pk", "status")) == [(case.pk, Case.Status.OPEN)]
    warning = mailoutbox[-1].body
    assert "Your account is 14 days overdue" in warning
    assert "- B: €50.00" in warning and "- A:" not in warning


def test_an_amount_partly_paid_is_dunned_for_the_rest(run, overdue_customer, mailoutbox):
    customer = overdue_customer(amount="100.00")
    run(1)
    Invoice.objects.filter(customer=customer).update(amount_due=Decimal("35.25"))
    run(4)
    assert keys(mailoutbox) == ["initial-notice", "gentle-reminder"]
    assert "€35.25" in mailoutbox[1].body and "€100.00" not in mailoutbox[1].body
    assert Case.objects.count() == 1


def test_new_debt_after_a_resolved_case_starts_over(
    run, make_customer, make_invoice, mailoutbox
):
    customer = make_customer()
    make_invoice(customer, number="FIRST", due_date=DAY0)
    run_days(run, mailoutbox, range(1, 10))
    pay(customer)
    run(10)
    make_invoice(customer, number="SECOND", due_date=day(20))
    sent = run_days(run, mailoutbox, range(11, 26))
    assert sent == {21: ["initial-notice"], 24: ["gentle-reminder"]}
    assert Case.objects.filter(customer=customer).count() == 2
    assert "SECOND" in mailoutbox[-1].body and "FIRST" not in mailoutbox[-1].body


# -- actions ------------------------------------------------------------------------------


def test_suspension_fires_service_suspended_exactly_once(run, overdue_customer, mailoutbox, fired):
    customer = overdue_customer()
    run_days(run, mailoutbox, [1, 4, 8, 14])
    run_days(run, mailoutbox, range(19, 30), twice=True)
    assert keys(mailoutbox).count("suspension") == 1
    assert fired.names() == ["service_suspended"]
    (case, host_customer), = fired.of("service_suspended")
    assert case.pk == Case.objects.get().pk
    assert isinstance(host_customer, Customer) and host_customer.pk == customer.pk
    case = Case.objects.get()
    assert case.suspended and case.status == Case.Status.OPEN
    assert CaseEvent.objects.filter(kind=CaseEvent.Kind.SUSPENDED).count() == 1


def test_termination_ends_the_case_for_good(
    run, make_customer, make_invoice, mailoutbox, fired
):
    customer = make_customer()
    make_invoice(customer, number="T-1", due_date=DAY0)
    make_invoice(customer, number="T-2", due_date=day(10))
    run_days(run, mailoutbox, STANDARD_DAYS)
    assert keys(mailoutbox)[-1] == "termination"
    assert fired.names() == ["service_suspended", "account_terminated"]
    (case, host_customer), = fired.of("account_terminated")
    assert isinstance(host_customer, Customer) and host_customer.pk == customer.pk
    terminated = Case.objects.get()
    assert terminated.status == Case.Status.TERMINATED and terminated.closed_on == day(45)
    count = len(mailoutbox)

    # later runs: nothing about these invoices, no new case for them
    run_days(run, mailoutbox, [45, 46, 47, 48, 60, 75, 90], twice=True)
    assert len(mailoutbox) == count
    assert Case.objects.count() == 1
    assert fired.names() == ["service_suspended", "account_terminated"]

    # paying them later changes nothing either
    pay(customer)
    run(100)
    assert len(mailoutbox) == count
    assert Case.objects.get().status == Case.Status.TERMINATED


def test_a_new_invoice_after_termination_opens_a_new_case(
    run, make_customer, make_invoice, mailoutbox, fired
):
    customer = make_customer()
    make_invoice(customer, number="OLD-1", amount_due="500.00", due_date=DAY0)
    run_days(run, mailoutbox, STANDARD_DAYS)
    first = Case.objects.get()
    assert first.status == Case.Status.TERMINATED

    make_invoice(customer, number="NEW-1", amount_due="20.00", due_date=day(60))
    sent = run_days(run, mailoutbox, range(46, 66))

    # a new case for the new debt only, on its own schedule
    assert sent == {61: ["initial-notice"], 64: ["gentle-reminder"]}
    second = Case.objects.exclude(pk=first.pk).get()
    assert second.status == Case.Status.OPEN
    assert [m.metadata["dunning_case"] for m in mailoutbox[-2:]] == [str(second.pk)] * 2
    for message in mailoutbox[-2:]:
        assert "NEW-1" in message.body and "OLD-1" not in message.body
        assert "Total EUR: €20.00" in message.body
    assert Case.objects.get(pk=first.pk).status == Case.Status.TERMINATED


# -- the message --------------------------------------------------------------------------


def test_message_is_an_anymail_message_with_tags_and_metadata(run, overdue_customer, mailoutbox):
    customer = overdue_customer(name="Ada", email="ada@example.com")
    run(1)
    message, = mailoutbox
    case = Case.objects.get()
    assert isinstance(message, AnymailMessage)
    assert "initial-notice" in message.tags
    assert message.metadata == {
        "dunning_case": str(case.pk),
        "dunning_step": "initial-notice",
        "customer": str(customer.pk),
        "dunning_idempotency_key": idempotency_key(case.pk, "initial-notice"),
    }
    assert all(isinstance(v, str) for v in message.metadata.values())
    assert message.from_email == "billing@example.com"
    assert message.to == ["ada@example.com"]
    assert [mimetype for _, mimetype in message.alternatives] == ["text/html"]
    assert message.subject == "Payment reminder: €100.00 is overdue"
    assert "Pay now: https://pay.example.com" in message.body
    assert CaseStep.objects.get().recipient == "ada@example.com"


def test_from_address_follows_the_setting(run, overdue_customer, mailoutbox):
    overdue_customer()
    with override_dunning_settings(FROM_EMAIL="Collections <collect@example.com>"):
        run(1)
    assert mailoutbox[0].from_email == "Collections <collect@example.com>"


def test_html_is_autoescaped_and_text_is_not(run, overdue_customer, mailoutbox):
    overdue_customer(name="<script>alert(1)</script>")
    run(1)
    message, = mailoutbox
    html = html_of(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Dear <script>alert(1)</script>," in message.body
    assert "&lt;" not in message.body


def test_german_customer_gets_german_text_and_money(run, overdue_customer, mailoutbox):
    overdue_customer(amount="1234.50", language="de")
    run(1)
    message, = mailoutbox
    assert message.subject.startswith("Zahlungserinnerung")
    # (the subject's whitespace is normalised, so its no-break space may become a space)
    assert "1.234,50 €" in message.subject.replace("\N{NO-BREAK SPACE}", " ")
    assert "1.234,50\N{NO-BREAK SPACE}€, fällig am 02.03.2026" in message.body
    assert "Summe EUR: 1.234,50\N{NO-BREAK SPACE}€" in message.body
    assert "1.234,50\N{NO-BREAK SPACE}€" in html_of(message)
    assert 'lang="de"' in html_of(message)
    assert "€1,234.50" not in message.body


@pytest.mark.parametrize(
    ("language", "subject_start"),
    [
        ("de", "Zahlungserinnerung"),
        ("de-AT", "Zahlungserinnerung"),
        ("DE", "Zahlungserinnerung"),
        ("en", "Payment reminder"),
        ("", "Payment reminder"),
        ("xx", "Payment reminder"),
    ],
)
def test_language_choice_and_fallback(run, overdue_customer, mailoutbox, language, subject_start):
    overdue_customer(language=language)
    result = run(1)
    message, = mailoutbox
    assert message.subject.startswith(subject_start)
    assert result.failed == 0
    assert CaseStep.objects.get().status == CaseStep.Status.SENT


def test_unknown_language_falls_back_to_english(run, overdue_customer, mailoutbox):
    overdue_customer(language="xx", amount="1234.50")
    run(1)
    message, = mailoutbox
    assert message.subject == "Payment reminder: €1,234.50 is overdue"
    assert "- INV-" in message.body and "€1,234.50, due Mar 2, 2026" in message.body


def test_unknown_language_falls_back_to_the_site_language(run, overdue_customer, mailoutbox):
    overdue_customer(language="xx", amount="1234.50")
    run(1)  # English site: English fallback (and the fallback locale is now cached)
    assert "€1,234.50" in mailoutbox[0].body
    with override_settings(LANGUAGE_CODE="de"):
        overdue_customer(language="xx", amount="1234.50")
        run(1)
    german = mailoutbox[1]
    assert german.subject.startswith("Zahlungserinnerung")
    assert "1.234,50\N{NO-BREAK SPACE}€" in german.body


def test_unknown_timezone_does_not_stop_the_run(run, overdue_customer, mailoutbox):
    overdue_customer(timezone="Mars/Olympus_Mons")
    overdue_customer(timezone="Europe/Berlin")
    result = run(1)
    assert keys(mailoutbox) == ["initial-notice", "initial-notice"]
    assert result.failed == 0
    assert Run.objects.get().status == Run.Status.COMPLETED


def test_unknown_currency_is_shown_with_its_raw_code_and_still_dunned(
    run, overdue_customer, mailoutbox
):
    overdue_customer(amount="250.75", currency="ABC")
    result = run(1)
    message, = mailoutbox
    assert result.executed == {"initial-notice": 1}
    assert "250.75 ABC, due Mar 2, 2026" in message.body
    assert "Total ABC: 250.75 ABC" in message.body
    assert "250.75 ABC" in html_of(message)


def test_unknown_currency_keeps_its_cents(run, overdue_customer, mailoutbox):
    overdue_customer(amount="1234.50", currency="ABC")
    run(1)
    assert "1,234.50 ABC" in mailoutbox[0].body


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("", "no email address"),
        ("   ", "no email address"),
        ("not-an-email", "invalid email address: not-an-email"),
        ("ada@", "invalid email address: ada@"),
    ],
)
def test_unreachable_customer_is_recorded_failed_and_the_schedule_goes_on(
    run, overdue_customer, mailoutbox, fired, email, reason
):
    unreachable = overdue_customer(email=email)
    reachable = overdue_customer(email="ok@example.com")

    result = run(1)

    assert result.failed == 1
    assert [m.to for m in mailoutbox] == [["ok@example.com"]]
    step = CaseStep.objects.get(case__customer=unreachable)
    assert step.status == CaseStep.Status.FAILED
    assert step.reason == reason
    assert step.sent_at is None
    case = Case.objects.get(customer=unreachable)
    assert case.needs_person
    assert not Case.objects.get(customer=reachable).needs_person
    assert Run.objects.get().status == Run.Status.COMPLETED

    run_days(run, mailoutbox, [2, 4, 8, 14, 21, 30, 45, 46])

    assert all(m.to == ["ok@example.com"] for m in mailoutbox)
    steps = CaseStep.objects.filter(case__customer=unreachable).order_by("executed_on")
    assert [(s.step_key, s.executed_on) for s in steps] == [
        (key, day(n)) for n, key in STANDARD_DAYS.items()
    ]
    assert {s.status for s in steps} == {CaseStep.Status.FAILED}
    assert {s.reason for s in steps} == {reason}
    suspended = [customer.pk for _, customer in fired.of("service_suspended")]
    terminated = [customer.pk for _, customer in fired.of("account_terminated")]
    assert sorted(suspended) == sorted([unreachable.pk, reachable.pk])
    assert sorted(terminated) == sorted([unreachable.pk, reachable.pk])
    assert Case.objects.get(customer=unreachable).status == Case.Status.TERMINATED


@pytest.mark.parametrize("amount", ["0.00", "-50.00", "-0.01"])
def test_zero_and_negative_balances_never_open_a_case(run, overdue_customer, mailoutbox, amount):
    overdue_customer(amount=amount)
    for n in (1, 4, 30, 60):
        result = run(n)
        assert result.opened == 0
    assert Case.objects.count() == 0
    assert mailoutbox == []


def test_a_failing_signal_receiver_is_recorded_and_does_not_stop_the_run(
    run, overdue_customer, mailoutbox, fired, raising_receiver
):
    first, second = overdue_customer(), overdue_customer()

    run_days(run, mailoutbox, [1, 4, 8, 14, 21, 22, 30])

    assert Counter(keys(mailoutbox))["suspension"] == 2
    assert Counter(keys(mailoutbox))["final-notice"] == 2
    suspended = sorted(customer.pk for _, customer in fired.of("service_suspended"))
    assert suspended == sorted([first.pk, second.pk])
    errors = CaseEvent.objects.filter(kind="signal-error").order_by("case__customer")
    assert [e.case.customer_id for e in errors] == [first.pk, second.pk]
    for event, customer in zip(errors, (first, second), strict=True):
        assert "broken_suspend" in event.message
        assert f"billing host is down for {customer.pk}" in event.message
    assert set(Run.objects.values_list("status", flat=True)) == {Run.Status.COMPLETED}


@override_settings(EMAIL_BACKEND="tests.test_engine.RefusingBackend")
def test_a_backend_failing_for_one_recipient_fails_only_that_step(
    run, overdue_customer, mailoutbox
):
    before = overdue_customer(email="before@example.com")
    refused = overdue_customer(email="refused@example.com")
    after = overdue_customer(email="after@example.com")

    result = run(1)

    assert sorted(m.to[0] for m in mailoutbox) == ["after@example.com", "before@example.com"]
    assert result.sent == 2 and result.failed == 1
    failed = CaseStep.objects.get(case__customer=refused)
    assert failed.status == CaseStep.Status.FAILED
    assert failed.reason.startswith("SMTPRecipientsRefused")
    assert "no such mailbox" in failed.reason
    for customer in (before, after):
        assert CaseStep.objects.get(case__customer=customer).status == CaseStep.Status.SENT
        assert not Case.objects.get(customer=customer).needs_person
    assert Case.objects.get(customer=refused).needs_person
    assert Run.objects.get().status == Run.Status.COMPLETED

    run(4)  # the schedule goes on for everyone; a failed step is not resent
    assert Counter(keys(mailoutbox)) == {"initial-notice": 2, "gentle-reminder": 2}
    assert list(
        CaseStep.objects.filter(case__customer=refused).values_list("step_key", "status")
    ) == [("initial-notice", "failed"), ("gentle-reminder", "failed")]


def test_a_message_left_queued_by_a_crashed_run_is_sent_by_a_later_run(
    run, overdue_customer, mailoutbox
):
    overdue_customer(email="ada@example.com")
    with override_dunning_settings(EMAIL_CHANNEL="tests.test_engine.CrashingChannel"):
        with pytest.raises(Crash):
            run(1)
    step = CaseStep.objects.get()
    assert step.status == CaseStep.Status.QUEUED
    assert Run.objects.get().status == Run.Status.FAILED
    assert mailoutbox == []

    # another run soon after leaves it alone: the crashed run might still be sending it
    run(1)
    assert mailoutbox == []
    assert CaseStep.objects.get().status == CaseStep.Status.QUEUED

    stale = timezone.now() - datetime.timedelta(seconds=dunning_settings.OUTBOX_STALE_AFTER + 5)
    CaseStep.objects.update(created_at=stale)
    run(2)

    message, = mailoutbox
    assert message.to == ["ada@example.com"]
    assert message.metadata["dunning_step"] == "initial-notice"
    assert "- INV-" in message.body and "€100.00" in message.body
    step = CaseStep.objects.get()
    assert step.status == CaseStep.Status.SENT and step.sent_at is not None
    run(2)
    run(3)
    assert len(mailoutbox) == 1
    run(4)
    assert keys(mailoutbox) == ["initial-notice", "gentle-reminder"]


def test_a_message_whose_run_crashed_while_handing_it_over_is_never_sent_again(
    run, overdue_customer, mailoutbox
):
    """At most once (docs/outbox.md): the backend may have taken it; "state unknown"."""
    overdue_customer(email="ada@example.com")
    with override_settings(EMAIL_BACKEND="tests.test_engine.CrashingBackend"):
        with pytest.raises(Crash):
            run(1)
    assert CaseStep.objects.get().status == CaseStep.Status.SENDING
    run(1)  # soon after: the crashed run might still be sending it
    assert CaseStep.objects.get().status == CaseStep.Status.SENDING
    stale = timezone.now() - datetime.timedelta(seconds=dunning_settings.OUTBOX_STALE_AFTER + 5)
    CaseStep.objects.update(next_attempt_at=stale)
    run(2)
    step = CaseStep.objects.get()
    assert step.status == CaseStep.Status.UNKNOWN
    assert Case.objects.get().needs_person is True
    assert mailoutbox == []
    run(4)
    assert keys(mailoutbox) == ["gentle-reminder"]


def test_the_run_is_recorded_with_a_summary(run, overdue_customer, mailoutbox):
    paying = overdue_customer()
    overdue_customer()
    overdue_customer(email="")

    result = run(1)

    row = Run.objects.get(pk=result.run_id)
    assert row.status == Run.Status.COMPLETED
    assert row.as_of == day(1)
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert row.summary["as_of"] == "2026-03-03"
    assert row.summary["opened"] == 3
    assert row.summary["executed"] == {"initial-notice": 3}
    assert row.summary["sent"] == 2
    assert row.summary["failed"] == 1
    assert row.summary["resolved"] == 0

    pay(paying)
    second = Run.objects.get(pk=run(4).run_id)
    assert second.status == Run.Status.COMPLETED
    assert second.summary["opened"] == 0
    assert second.summary["executed"] == {"gentle-reminder": 2}
    assert second.summary["resolved"] == 1
    assert second.summary["sent"] == 2  # thank-you + one reminder; the third has no email
    assert second.summary["failed"] == 1


def test_message_date_is_the_customers_local_date_when_no_date_is_given(
    db, overdue_customer, mailoutbox, settings
):
    """Without --as-of, the date a message shows is today in the customer's time zone."""
    from unittest import mock

    from dunning.models import MessageTemplate

    dt = datetime

    MessageTemplate.objects.filter(step_key="initial-notice", language="en").update(
        subject="Reminder of {{ today }}"
    )
    # 23:30 UTC on DAY0 + 1: still that day in London, already the next day in Tokyo.
    instant = dt.datetime.combine(day(1), dt.time(23, 30), tzinfo=dt.timezone.utc)
    due = DAY0 - dt.timedelta(days=1)
    overdue_customer(name="London", email="l@example.com", timezone="Europe/London", due=due)
    overdue_customer(name="Tokyo", email="t@example.com", timezone="Asia/Tokyo", due=due)
    settings.TIME_ZONE = "UTC"
    with mock.patch.object(timezone, "now", return_value=instant):
        run_dunning()
    subjects = {m.to[0]: m.subject for m in mailoutbox}
    assert subjects["l@example.com"] == "Reminder of Mar 3, 2026"
    assert subjects["t@example.com"] == "Reminder of Mar 4, 2026"


def test_a_stale_queued_message_to_an_address_suppressed_since_is_failed_not_sent(
    run, overdue_customer, mailoutbox
):
    from dunning.models import Suppression

    overdue_customer(email="gone@example.com")
    with override_dunning_settings(EMAIL_CHANNEL="tests.test_engine.CrashingChannel"):
        with pytest.raises(Crash):
            run(1)
    Suppression.objects.create(address="gone@example.com", reason="bounced")
    stale = timezone.now() - datetime.timedelta(seconds=dunning_settings.OUTBOX_STALE_AFTER + 5)
    CaseStep.objects.update(created_at=stale)

    run(2)

    assert mailoutbox == []
    step = CaseStep.objects.get()
    assert step.status == CaseStep.Status.FAILED
    assert step.reason.startswith("suppressed")
    assert Case.objects.get().needs_person is True
