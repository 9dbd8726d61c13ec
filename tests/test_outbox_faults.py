"""An ESP outage loses nothing; a crash leaves no debris (docs/outbox.md, issue 13).

* an attempt is charged only when a message reached the provider; a connection that
  cannot be opened stops the channel's hand-over and opens its circuit breaker;
* transient failures are retried over ``OUTBOX_RETRY_HORIZON``, then fail with their
  reason and the case needs a person;
* messages are handed over and recorded in chunks of ``OUTBOX_CHUNK_SIZE``, each with an
  idempotency key derived from (case, step);
* runs hold a lease; a run whose lease expired is marked abandoned.

Time is made to pass by giving the runs and drains their ``now``; the fault-injecting
backend is tests/flaky_backend.FaultyBackend.
"""

from __future__ import annotations

import datetime
import smtplib
import socket
from collections import Counter
from io import StringIO

import pytest
import requests
import time_machine
from anymail.exceptions import AnymailRequestsAPIError
from django.core.management import call_command
from django.urls import reverse
from urllib3.exceptions import MaxRetryError, NewConnectionError

from dunning.channels.base import idempotency_key
from dunning.channels.email import never_reached
from dunning.engine.outbox import drain
from dunning.models import Case, CaseStep, ChannelBreaker, Run
from tests.flaky_backend import FaultyBackend, RecordingBackend, ScriptedBackend, esp_error

from .conftest import day

Status = CaseStep.Status
UTC = datetime.timezone.utc
T0 = datetime.datetime.combine(day(1), datetime.time(10, 0), UTC)  # the day's run


def dunning(settings, **values):
    """Change ``DUNNING`` keys through pytest-django's ``settings`` (which restores them
    in order, also next to other settings a test changes)."""
    settings.DUNNING = {**settings.DUNNING, **values}


def minutes(n):
    return datetime.timedelta(minutes=n)


@pytest.fixture
def faulty(settings):
    FaultyBackend.reset()
    ScriptedBackend.script = {}
    settings.EMAIL_BACKEND = "tests.flaky_backend.FaultyBackend"
    return FaultyBackend


def quiet(backend, refuse=0.0, transient=0.0):
    backend.refuse_rate, backend.transient_rate = refuse, transient


@pytest.fixture(autouse=True)
def _rates():
    yield
    FaultyBackend.refuse_rate, FaultyBackend.transient_rate = 0.10, 0.30
    FaultyBackend.down = False


FIVE_MINUTES = datetime.timedelta(minutes=5)


def drain_until_done(start, every=FIVE_MINUTES, limit=2000):
    """Drain every ``every`` from ``start`` until nothing is queued; the last ``now``."""
    now = start
    for _ in range(limit):
        if not CaseStep.objects.filter(status=Status.QUEUED).exists():
            return now
        now += every
        drain(now=now)
    raise AssertionError("the outbox never emptied")


def delivered_once_each():
    steps = list(CaseStep.objects.all())
    delivered = Counter(RecordingBackend.delivered)
    assert set(delivered) == {(str(s.case_id), s.step_key) for s in steps}, "a message was lost"
    assert max(delivered.values()) == 1, "a message went out twice"
    return steps


# -- a refused connection -------------------------------------------------------------
def test_a_refused_connection_charges_nothing_and_pauses_the_channel_until_a_probe(
    run, overdue_customer, faulty
):
    quiet(faulty)
    customers = [overdue_customer(email=f"c{i}@example.com") for i in range(6)]
    faulty.down = True

    result = run(1, now=T0)

    assert result.failed == 0
    assert faulty.opens == 2  # the connection was refused (twice): nothing else was tried
    steps = list(CaseStep.objects.order_by("pk"))
    assert [(s.status, s.attempts) for s in steps] == [(Status.QUEUED, 0)] * len(customers)
    assert {s.next_attempt_at for s in steps} == {T0 + datetime.timedelta(seconds=30)}
    assert all(s.failing_since == T0 for s in steps)
    assert "ConnectionRefusedError" in steps[0].reason
    breaker = ChannelBreaker.objects.get(channel="email")
    assert (breaker.failures, breaker.open_until) == (1, T0 + datetime.timedelta(seconds=30))

    # paused: a drain (another process: a fresh breaker state) tries nothing
    drain(now=T0 + datetime.timedelta(seconds=20))
    assert faulty.opens == 2
    # the probe fails: paused twice as long
    drain(now=T0 + datetime.timedelta(seconds=31))
    assert faulty.opens == 4
    breaker.refresh_from_db()
    assert (breaker.failures, breaker.open_until) == (2, T0 + datetime.timedelta(seconds=91))
    assert CaseStep.objects.filter(attempts=0, status=Status.QUEUED).count() == len(customers)

    faulty.down = False
    assert drain(now=T0 + minutes(2)).sent == len(customers)
    assert [(s.status, s.attempts) for s in CaseStep.objects.all()] == [(Status.SENT, 1)] * 6
    assert ChannelBreaker.objects.get().failures == 0
    assert not Case.objects.filter(needs_person=True).exists()
    delivered_once_each()


@pytest.mark.parametrize(("error", "unreached"), [
    (ConnectionRefusedError(111, "Connection refused"), True),
    (socket.gaierror(-2, "Name or service not known"), True),
    (smtplib.SMTPConnectError(421, b"too many connections"), True),
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), False),
    (TimeoutError("timed out"), False),
    (ConnectionResetError(104, "Connection reset by peer"), False),
    (esp_error(503), False),
])
def test_which_failures_never_reached_the_provider(error, unreached):
    assert never_reached(error) is unreached


def anymail_error(cause):
    """What anymail raises when requests raised ``cause`` (both types, chained)."""
    cls = type("AnymailRequestsAPIError", (AnymailRequestsAPIError, type(cause)), {})
    try:
        raise cls("Error posting to https://api.esp.example/send:") from cause
    except AnymailRequestsAPIError as exc:
        return exc


def test_an_esp_api_that_cannot_be_connected_to_was_not_reached_a_read_timeout_may_have():
    refused = requests.exceptions.ConnectionError(MaxRetryError(
        None, "/send", NewConnectionError(None, "Failed to establish a new connection")))
    assert never_reached(anymail_error(refused))
    assert never_reached(anymail_error(requests.exceptions.ConnectTimeout("connect timeout")))
    assert not never_reached(anymail_error(requests.exceptions.ReadTimeout("read timed out")))


# -- the figures: faults and an outage -------------------------------------------
def test_10_percent_refused_opens_and_30_percent_transient_errors_deliver_every_message_once(
    run, overdue_customer, faulty, settings
):
    dunning(settings, BATCH_SIZE=100)
    quiet(faulty, refuse=0.10, transient=0.30)
    customers = [overdue_customer(email=f"c{i}@example.com") for i in range(720)]

    run(1, now=T0)
    end = drain_until_done(T0)

    steps = delivered_once_each()
    assert len(steps) == len(customers)
    assert Counter(s.status for s in steps) == {Status.SENT: len(customers)}
    # charged only when the ESP was reached: every try it saw, and nothing else
    assert sum(s.attempts for s in steps) == sum(RecordingBackend.tries.values())
    assert faulty.refused > 10 and sum(RecordingBackend.tries.values()) > 1.3 * len(steps)
    assert not Case.objects.filter(needs_person=True).exists()
    # A message refused 6 times in a row waits 1 + 2 + ... + 32 minutes: done within 2 hours.
    assert end - T0 <= datetime.timedelta(hours=2)
    print(f"\n[faults] {len(steps)} messages, {faulty.opens} opens ({faulty.refused} refused), "
          f"{sum(RecordingBackend.tries.values())} hand-overs: all sent once, 0 failed, "
          f"done after {(end - T0).total_seconds() / 60:.0f} minutes of drains")


def test_a_six_hour_outage_then_recovery_delivers_every_queued_message_once(
    run, overdue_customer, faulty, settings
):
    dunning(settings, BATCH_SIZE=100)
    quiet(faulty)
    customers = [overdue_customer(email=f"c{i}@example.com") for i in range(150)]
    faulty.down = True

    run(1, now=T0)
    now = T0
    while now < T0 + datetime.timedelta(hours=6):  # a drain every 5 minutes, in vain
        now += minutes(5)
        drain(now=now)
    assert RecordingBackend.delivered == []
    assert Counter(s.status for s in CaseStep.objects.all()) == {Status.QUEUED: 150}
    assert not CaseStep.objects.exclude(attempts=0).exists()  # nothing charged
    probes = faulty.opens
    # the breaker: a probe (one connection, tried twice) every 10 minutes at most
    assert probes <= 2 * (6 * 6 + 5)

    faulty.down = False
    end = drain_until_done(now)

    steps = delivered_once_each()
    assert Counter(s.status for s in steps) == {Status.SENT: len(customers)}
    assert {s.attempts for s in steps} == {1}
    assert not Case.objects.filter(needs_person=True).exists()
    assert end - now <= minutes(15)  # sent within one breaker delay of the recovery
    print(f"\n[outage] 6 h down: {probes} probes, 0 attempts charged; after recovery "
          f"{len(steps)} sent once each within {(end - now).total_seconds() / 60:.0f} min")


# -- the retry horizon ----------------------------------------------------------------
def test_past_the_retry_horizon_an_unreachable_message_fails_with_its_reason(
    run, overdue_customer, faulty
):
    quiet(faulty)
    customer = overdue_customer(email="late@example.com")
    faulty.down = True
    run(1, now=T0)

    drain(now=T0 + datetime.timedelta(hours=23, minutes=59))
    step = CaseStep.objects.get()
    assert step.status == Status.QUEUED  # the old rule gave up after 5 tries (15 minutes)
    assert not Case.objects.get(customer=customer).needs_person

    result = drain(now=T0 + datetime.timedelta(hours=24, minutes=1))

    step.refresh_from_db()
    assert (result.failed, step.status, step.attempts) == (1, Status.FAILED, 0)
    assert step.reason.startswith("gave up after 24.0 hours and 0 attempts: ConnectionRefusedError")
    assert Case.objects.get(customer=customer).needs_person
    faulty.down = False
    drain(now=T0 + datetime.timedelta(hours=25))
    assert RecordingBackend.delivered == []


def test_transient_errors_are_retried_with_backoff_until_the_horizon(
    run, overdue_customer, faulty, settings
):
    dunning(settings, OUTBOX_RETRY_HORIZON=6 * 3600)
    settings.EMAIL_BACKEND = "tests.flaky_backend.ScriptedBackend"
    customer = overdue_customer(email="busy@example.com")
    ScriptedBackend.script = {"busy@example.com": [esp_error(503)] * 100}

    run(1, now=T0)
    drain_until_done(T0, every=minutes(1))

    step = CaseStep.objects.get()
    tries = RecordingBackend.tries[(str(step.case_id), "initial-notice")]
    # after 1, 2, 4, ..., 32, 60, 60, ... minutes: 12 tries in 6 hours, the last at the
    # horizon (the old rule: 5 tries in 15 minutes)
    assert (step.status, step.attempts, tries) == (Status.FAILED, 12, 12)
    assert step.reason.startswith("gave up after 6.0 hours and 12 attempts: AnymailAPIError")
    assert step.failing_since == T0
    assert Case.objects.get(customer=customer).needs_person


def test_outbox_max_attempts_still_caps_the_charged_tries_when_set(
    run, overdue_customer, faulty, settings
):
    dunning(settings, OUTBOX_MAX_ATTEMPTS=3)
    settings.EMAIL_BACKEND = "tests.flaky_backend.ScriptedBackend"
    overdue_customer(email="busy@example.com")
    ScriptedBackend.script = {"busy@example.com": [esp_error(503)] * 100}
    run(1, now=T0)
    drain_until_done(T0, every=minutes(10))
    step = CaseStep.objects.get()
    assert (step.status, step.attempts) == (Status.FAILED, 3)
    assert step.reason.startswith("gave up after 3 attempts: ")


# -- chunks and idempotency keys --------------------------------------------------------
class Crash(BaseException):
    """The process stops while the backend holds a message (like SIGKILL)."""


class CrashingOnFifth(RecordingBackend):
    def send_messages(self, messages):
        if len(RecordingBackend.delivered) == 4:
            raise Crash("killed while sending")
        return super().send_messages(messages)


def test_a_kill_during_the_hand_over_leaves_one_chunk_unknown_not_the_batch(
    run, overdue_customer, faulty, settings
):
    dunning(settings, OUTBOX_CHUNK_SIZE=3)
    settings.EMAIL_BACKEND = "tests.test_outbox_faults.CrashingOnFifth"
    for i in range(8):
        overdue_customer(email=f"c{i}@example.com")

    with pytest.raises(Crash):
        run(1, now=T0)

    statuses = [s.status for s in CaseStep.objects.order_by("pk")]
    # chunk 1 recorded as soon as the ESP returned; chunk 2 in flight; chunk 3 untouched
    assert statuses == [Status.SENT] * 3 + [Status.SENDING] * 3 + [Status.QUEUED] * 2
    settings.EMAIL_BACKEND = "tests.flaky_backend.ScriptedBackend"
    result = drain(now=T0 + minutes(11))
    assert (result.unknown, result.sent) == (3, 2)
    assert Counter(s.status for s in CaseStep.objects.all()) == {Status.SENT: 5, Status.UNKNOWN: 3}
    assert max(Counter(RecordingBackend.delivered).values()) == 1


def test_every_try_of_a_step_carries_the_same_idempotency_key(run, overdue_customer, faulty,
                                                              settings):
    dunning(settings, OUTBOX_IDEMPOTENCY_ESP_EXTRA="idempotence_key")
    quiet(faulty)
    a = overdue_customer(email="a@example.com")
    overdue_customer(email="b@example.com")
    faulty.transient_rate = 1.0
    run(1, now=T0)
    faulty.transient_rate = 0.0
    drain(now=T0 + minutes(2))

    keys = {}
    for key, metadata_key, extra in faulty.metadata:
        assert extra == {"idempotence_key": metadata_key}
        keys.setdefault(key, set()).add(metadata_key)
    assert len(keys) == 2 and all(len(k) == 1 for k in keys.values())  # 2 tries, 1 key each
    case = Case.objects.get(customer=a)
    assert keys[(str(case.pk), "initial-notice")] == {idempotency_key(case.pk, "initial-notice")}
    assert idempotency_key(case.pk, "initial-notice") != idempotency_key(case.pk, "final-notice")
    assert len(faulty.metadata) == 4


# -- run leases -------------------------------------------------------------------------
def dead_run(lease_expired_at):
    return Run.objects.create(as_of=day(1), started_at=lease_expired_at - minutes(20),
                              lease_expires_at=lease_expired_at)


def test_the_next_run_marks_a_run_whose_lease_expired_abandoned(run, overdue_customer, faulty):
    dead = dead_run(T0 - minutes(1))  # killed: its lease ran out a minute ago
    alive = dead_run(T0 + minutes(5))  # another run, still renewing its lease
    legacy = Run.objects.create(as_of=day(1), started_at=T0 - minutes(16))  # no lease yet

    result = run(1, now=T0)

    assert result.abandoned == 2
    assert Run.objects.get(pk=dead.pk).status == Run.Status.ABANDONED
    assert Run.objects.get(pk=dead.pk).finished_at == T0 - minutes(1)  # last known alive
    assert Run.objects.get(pk=legacy.pk).status == Run.Status.ABANDONED
    assert Run.objects.get(pk=alive.pk).status == Run.Status.RUNNING
    assert Run.objects.get(pk=result.run_id).summary["abandoned"] == 2


def test_the_run_command_prints_the_abandoned_runs(overdue_customer, faulty):
    from django.utils import timezone

    dead_run(timezone.now() - minutes(1))
    out = StringIO()
    call_command("dunning", "run", "--as-of", day(1).isoformat(), stdout=out)
    assert "abandoned runs: 1" in out.getvalue()


def test_a_drain_marks_dead_runs_abandoned_and_leaves_live_ones(db):
    dead = dead_run(T0 - minutes(1))
    alive = dead_run(T0 + minutes(5))

    assert drain(now=T0).abandoned == 1

    assert Run.objects.get(pk=dead.pk).status == Run.Status.ABANDONED
    assert Run.objects.get(pk=alive.pk).status == Run.Status.RUNNING
    assert drain(now=T0).abandoned == 0


def test_a_run_records_and_renews_its_lease(run, overdue_customer, faulty):
    overdue_customer()
    run(1, now=T0)
    (done,) = Run.objects.all()
    assert done.status == Run.Status.COMPLETED
    assert done.lease_expires_at == T0 + datetime.timedelta(minutes=15)  # RUN_LEASE_SECONDS
    assert done.summary["abandoned"] == 0


def test_the_run_admin_shows_and_filters_abandoned_runs(admin_client, db):
    dead_run(T0 - minutes(1))
    drain(now=T0)
    page = admin_client.get(reverse("admin:dunning_run_changelist") + "?status__exact=abandoned")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Abandoned" in html
    assert "1 run" in html


def test_the_drain_command_prints_the_abandoned_runs(db):
    from django.utils import timezone

    dead_run(timezone.now() - minutes(1))
    out = StringIO()
    call_command("dunning", "drain", stdout=out)
    assert "abandoned runs: 1" in out.getvalue()


def test_staff_see_a_channel_breaker_and_may_close_it_by_deleting_it(admin_client, run,
                                                                      overdue_customer, faulty):
    quiet(faulty)
    overdue_customer()
    faulty.down = True
    run(1, now=T0)
    breaker = ChannelBreaker.objects.get()
    page = admin_client.get(reverse("admin:dunning_channelbreaker_changelist"))
    assert "ConnectionRefusedError" in page.content.decode()
    assert admin_client.get(reverse("admin:dunning_channelbreaker_add")).status_code == 403
    delete = reverse("admin:dunning_channelbreaker_delete", args=[breaker.pk])

    step = CaseStep.objects.get()
    assert step.next_attempt_at == T0 + datetime.timedelta(seconds=30)
    with time_machine.travel(T0 + datetime.timedelta(seconds=5), tick=False):
        assert admin_client.post(delete, {"post": "yes"}).status_code == 302

    assert not ChannelBreaker.objects.exists()
    step.refresh_from_db()
    assert step.next_attempt_at == T0 + datetime.timedelta(seconds=5)  # due at once
    faulty.down = False
    assert drain(now=T0 + datetime.timedelta(seconds=6)).sent == 1  # not waiting for 30 s
