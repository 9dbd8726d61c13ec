"""The outbox (dunning/engine/outbox.py, docs/outbox.md): sending is a stage of its own;
transient failures are retried with backoff and a cap, permanent ones fail with their
reason; a message whose worker died while handing it to the ESP is never sent again by
itself but marked "state unknown, check" for a person; nothing is lost.

The in-process tests use real Django email backends (tests/flaky_backend.py); the kill
and connection-drop tests run real ``dunning run`` processes (tests/outbox_runner.py) on
a SQLite file or on the session's PostgreSQL test database.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from dunning.channels.email import is_transient
from dunning.conf import dunning_settings
from dunning.engine.outbox import drain, retry_delay
from dunning.models import Case, CaseEvent, CaseStep, DeliveryEvent, Run, Suppression
from dunning.testing import override_dunning_settings
from tests.flaky_backend import FlakyBackend, RecordingBackend, ScriptedBackend, esp_error
from tests.test_tracking import ANYMAIL, mailgun_payload, post

REPO = Path(__file__).resolve().parent.parent
Status = CaseStep.Status


@pytest.fixture
def backend(settings):
    """Email through a recording backend (set ``ScriptedBackend.script`` to script it)."""
    RecordingBackend.reset()
    ScriptedBackend.script = {}
    settings.EMAIL_BACKEND = "tests.flaky_backend.ScriptedBackend"
    return RecordingBackend


def due_now():
    """Bring every scheduled retry forward to now (instead of waiting for it)."""
    CaseStep.objects.filter(status=Status.QUEUED, next_attempt_at__isnull=False).update(
        next_attempt_at=timezone.now() - datetime.timedelta(seconds=1)
    )


def step_of(customer, key="initial-notice"):
    return CaseStep.objects.get(case__customer=customer, step_key=key)


def delivered_to(backend, step):
    return Counter(backend.delivered)[(str(step.case_id), step.step_key)]


# -- the retry schedule --------------------------------------------------------------
@override_dunning_settings(OUTBOX_RETRY_BACKOFF=60, OUTBOX_RETRY_MAX_DELAY=300)
def test_retry_delay_doubles_from_the_base_up_to_the_cap():
    assert [retry_delay(n).total_seconds() for n in range(1, 7)] == [60, 120, 240, 300, 300, 300]
    assert retry_delay(10_000).total_seconds() == 300


def test_the_default_retry_schedule():
    # 1, 2, 4, ... minutes, then hourly until the 24-hour horizon (no count by default)
    assert [retry_delay(n).total_seconds() / 60 for n in range(1, 8)] == [1, 2, 4, 8, 16, 32, 60]
    assert retry_delay(20).total_seconds() == 3600
    assert dunning_settings.OUTBOX_RETRY_HORIZON == 24 * 3600
    assert dunning_settings.OUTBOX_MAX_ATTEMPTS is None


@pytest.mark.parametrize(("error", "transient"), [
    (esp_error(503), True),
    (esp_error(500), True),
    (esp_error(429), True),
    (AnymailAPIError("connection refused"), True),  # no HTTP answer at all
    (esp_error(400), False),
    (esp_error(422), False),
    (AnymailRecipientsRefused(), False),
    (AnymailInvalidAddress("not an address"), False),
    (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no such user")}), False),
    (smtplib.SMTPRecipientsRefused({"a@example.com": (450, b"mailbox busy")}), True),
    (smtplib.SMTPRecipientsRefused({"a@example.com": (450, b"busy"), "b@example.com": (550, b"no")}), False),
    (smtplib.SMTPSenderRefused(421, b"try later", "billing@example.com"), True),
    (smtplib.SMTPDataError(452, b"insufficient storage"), True),
    (smtplib.SMTPDataError(554, b"message rejected"), False),
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), True),
    (smtplib.SMTPAuthenticationError(535, b"bad credentials"), True),  # fixed by a person
    (TimeoutError("timed out"), True),
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (ConnectionRefusedError(111, "Connection refused"), True),
    (socket.gaierror(-2, "Name or service not known"), True),
    (ValueError("a bug"), False),
])
def test_transient_and_permanent_errors(error, transient):
    assert is_transient(error) is transient


# -- transient failures --------------------------------------------------------------
def test_a_transient_failure_is_retried_after_the_backoff_and_sent_once(
    run, overdue_customer, backend
):
    flaky = overdue_customer(email="flaky@example.com")
    fine = overdue_customer(email="fine@example.com")
    ScriptedBackend.script = {"flaky@example.com": [esp_error(503, "Service Unavailable")]}

    result = run(1)

    assert (result.sent, result.retrying, result.failed) == (1, 1, 0)
    step = step_of(flaky)
    assert (step.status, step.attempts) == (Status.QUEUED, 1)
    assert "503" in step.reason  # the last error, for staff looking at the outbox
    wait = (step.next_attempt_at - timezone.now()).total_seconds()
    assert 50 < wait <= 60  # OUTBOX_RETRY_BACKOFF
    assert not Case.objects.get(customer=flaky).needs_person
    assert step_of(fine).status == Status.SENT
    assert Run.objects.get().summary["retrying"] == 1

    # not yet due: a drain (and another run the same day) leave it alone
    assert drain().sent == 0
    run(1)
    assert backend.tries[(str(step.case_id), "initial-notice")] == 1

    due_now()
    assert drain().as_dict()["sent"] == 1

    step.refresh_from_db()
    assert (step.status, step.attempts, step.reason) == (Status.SENT, 2, "")
    assert step.sent_at is not None and step.next_attempt_at is None
    assert delivered_to(backend, step) == 1
    assert delivered_to(backend, step_of(fine)) == 1
    assert drain().sent == 0
    assert len(backend.delivered) == 2


@override_dunning_settings(OUTBOX_MAX_ATTEMPTS=3)
def test_a_message_failing_transiently_every_time_fails_after_the_cap(
    run, overdue_customer, backend
):
    customer = overdue_customer(email="down@example.com")
    ScriptedBackend.script = {"down@example.com": [smtplib.SMTPServerDisconnected("gone")] * 10}

    run(1)
    for _ in range(2):
        due_now()
        drain()

    step = step_of(customer)
    assert step.status == Status.FAILED
    assert step.attempts == 3
    assert step.reason == "gave up after 3 attempts: SMTPServerDisconnected: gone"
    assert Case.objects.get(customer=customer).needs_person
    due_now()
    drain()
    run(2)
    assert backend.tries[(str(step.case_id), "initial-notice")] == 3  # never tried again
    assert backend.delivered == []


@override_dunning_settings(OUTBOX_RETRY_BACKOFF=0)
def test_a_retry_that_falls_due_during_the_run_is_sent_at_its_end(
    run, overdue_customer, backend
):
    customer = overdue_customer(email="blip@example.com")
    ScriptedBackend.script = {"blip@example.com": [TimeoutError("timed out")]}

    result = run(1)

    step = step_of(customer)
    assert (step.status, step.attempts) == (Status.SENT, 2)
    assert (result.sent, result.retrying, result.failed) == (1, 1, 0)
    assert delivered_to(backend, step) == 1


# -- permanent failures --------------------------------------------------------------
@pytest.mark.parametrize("error", [
    smtplib.SMTPRecipientsRefused({"gone@example.com": (550, b"5.1.1 no such user")}),
    esp_error(400, "Invalid recipient"),
    AnymailRecipientsRefused(),
])
def test_a_permanent_failure_fails_at_once_with_its_reason_and_is_never_retried(
    run, overdue_customer, backend, error
):
    customer = overdue_customer(email="gone@example.com")
    other = overdue_customer(email="other@example.com")
    ScriptedBackend.script = {"gone@example.com": [error]}

    result = run(1)

    step = step_of(customer)
    assert (step.status, step.attempts) == (Status.FAILED, 1)
    assert step.reason.startswith(type(error).__name__)
    assert (result.failed, result.retrying) == (1, 0)
    assert Case.objects.get(customer=customer).needs_person
    assert step_of(other).status == Status.SENT
    CaseStep.objects.update(next_attempt_at=timezone.now() - datetime.timedelta(days=1))
    drain()
    assert backend.tries[(str(step.case_id), "initial-notice")] == 1
    assert step_of(customer).status == Status.FAILED


def test_a_batch_goes_over_one_connection_and_one_failure_costs_no_other_message(
    run, overdue_customer, backend
):
    customers = [overdue_customer(email=f"c{i}@example.com") for i in range(6)]
    ScriptedBackend.script = {"c2@example.com": [ValueError("cannot encode")]}

    run(1)

    assert backend.opened == 1
    assert sorted(backend.tries.values()) == [1] * 6  # nothing handed over twice
    assert len(backend.delivered) == 5
    assert [step_of(c).status for c in customers] == [Status.SENT] * 2 + [Status.FAILED] + [Status.SENT] * 3


# -- 10% of messages fail ------------------------------------------------------------
def test_a_backend_failing_10_percent_of_messages_delivers_every_one_exactly_once(
    run, overdue_customer, backend, settings
):
    # both through pytest-django's settings (a decorator's override next to the fixture's
    # would leak into the tests after this one)
    settings.DUNNING = {**settings.DUNNING, "OUTBOX_RETRY_BACKOFF": 0, "BATCH_SIZE": 25,
                        "OUTBOX_MAX_ATTEMPTS": 10}
    settings.EMAIL_BACKEND = "tests.flaky_backend.FlakyBackend"
    customers = [overdue_customer(email=f"c{i}@example.com") for i in range(200)]

    run(1)
    for _ in range(5):
        if not CaseStep.objects.filter(status=Status.QUEUED).exists():
            break
        drain()

    steps = list(CaseStep.objects.all())
    assert len(steps) == len(customers)
    assert Counter(s.status for s in steps) == {Status.SENT: 200}
    delivered = Counter(backend.delivered)
    assert set(delivered) == {(str(s.case_id), s.step_key) for s in steps}  # none lost
    assert max(delivered.values()) == 1  # none twice
    failed_tries = sum(backend.tries.values()) - len(steps)
    assert 10 <= failed_tries <= 40, "about one try in ten failed"
    assert sum(s.attempts for s in steps) == sum(backend.tries.values())
    assert not Case.objects.filter(needs_person=True).exists()
    assert FlakyBackend.rate == 0.10


# -- a worker that dies while sending ------------------------------------------------
class Crash(BaseException):
    """The process stops while the backend holds the messages (like SIGKILL, nothing
    after it in the run is executed)."""


class CrashingBackend(RecordingBackend):
    def send_messages(self, messages):
        raise Crash("killed while sending")


@pytest.fixture
def unknown_step(run, overdue_customer, backend, settings):
    """An initial notice whose worker died while handing it to the ESP, given up on by a
    drain: state unknown."""
    customer = overdue_customer(name="Ada", email="ada@example.com")
    settings.EMAIL_BACKEND = "tests.test_outbox.CrashingBackend"
    with pytest.raises(Crash):
        run(1)
    settings.EMAIL_BACKEND = "tests.flaky_backend.ScriptedBackend"
    step = step_of(customer)
    assert (step.status, step.attempts) == (Status.SENDING, 0)  # charged once it is known
    drain()  # the lease is fresh: the worker may still be sending
    assert step_of(customer).status == Status.SENDING
    CaseStep.objects.update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=601))
    assert drain().unknown == 1
    step.refresh_from_db()
    assert step.attempts == 1  # it may have reached the ESP: charged
    return step


def test_a_message_whose_worker_died_is_marked_unknown_and_never_sent_again(
    unknown_step, run, backend
):
    step = unknown_step
    assert step.status == Status.UNKNOWN
    assert step.get_status_display() == "State unknown, check"
    case = Case.objects.get(pk=step.case_id)
    assert case.needs_person
    (event,) = CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.DELIVERY_UNKNOWN)
    assert "may or may not have gone out" in event.message
    assert event.data == {"case_step": step.pk, "step_key": "initial-notice"}

    drain()
    run(2)
    run(4)  # the schedule goes on: the next step is sent, the unknown one is not
    assert backend.delivered == [(str(step.case_id), "gentle-reminder")]
    assert CaseStep.objects.get(pk=step.pk).status == Status.UNKNOWN
    assert CaseEvent.objects.filter(kind=CaseEvent.Kind.DELIVERY_UNKNOWN).count() == 1


# -- tracking settles an unknown step ------------------------------------------------
@override_settings(ANYMAIL=ANYMAIL)
def test_an_esp_event_for_an_unknown_step_proves_it_went_out(unknown_step, client):
    step = unknown_step
    assert step.message_id == ""  # never recorded: the event is matched by its metadata
    payload = mailgun_payload(step, event="delivered", message_id="<new@mg.example.com>",
                              timestamp=1772530000.5)

    assert post(client, "mailgun", payload).status_code == 200

    step.refresh_from_db()
    assert step.status == Status.SENT
    assert step.sent_at == datetime.datetime.fromtimestamp(1772530000.5, datetime.timezone.utc)
    assert step.delivery_status == "delivered"
    (event,) = CaseEvent.objects.filter(case_id=step.case_id,
                                        kind=CaseEvent.Kind.DELIVERY_CONFIRMED)
    assert "it went out" in event.message
    assert DeliveryEvent.objects.get().case_step_id == step.pk
    assert Case.objects.get(pk=step.case_id).needs_person  # left for the person to clear

    # a second event changes the status no more
    assert post(client, "mailgun", mailgun_payload(step, event="delivered")).status_code == 200
    assert CaseEvent.objects.filter(kind=CaseEvent.Kind.DELIVERY_CONFIRMED).count() == 1


@override_settings(ANYMAIL=ANYMAIL)
def test_a_bounce_for_an_unknown_step_proves_it_went_out_and_suppresses(unknown_step, client):
    step = unknown_step
    assert post(client, "mailgun", mailgun_payload(step, message_id="<x@mg>")).status_code == 200
    step.refresh_from_db()
    assert (step.status, step.delivery_status) == (Status.SENT, "bounced")
    assert Suppression.objects.get().address == "ada@example.com"


# -- staff: the executed steps' admin -------------------------------------------------
def staff(username, *perms):
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for codename in ("view_casestep", *perms):
        user.user_permissions.add(Permission.objects.get(codename=codename,
                                                         content_type__app_label="dunning"))
    return user


def act(client, action, *steps):
    return client.post(reverse("admin:dunning_casestep_changelist"),
                       {"action": action, "_selected_action": [s.pk for s in steps]},
                       follow=True)


def test_staff_mark_an_unknown_step_as_sent(unknown_step, client):
    clerk = staff("clerk", "send_by_hand")
    client.force_login(clerk)
    page = client.get(reverse("admin:dunning_casestep_changelist"))
    assert "Mark as sent (checked with the ESP)" in page.content.decode()
    assert "State unknown, check" in page.content.decode()

    response = act(client, "mark_sent", unknown_step)

    assert "1 step marked as sent." in response.content.decode()
    step = CaseStep.objects.get(pk=unknown_step.pk)
    assert step.status == Status.SENT
    assert step.sent_at == unknown_step.next_attempt_at  # when it was handed over
    (event,) = CaseEvent.objects.filter(kind=CaseEvent.Kind.DELIVERY_CONFIRMED)
    assert (event.actor, event.case_id) == (clerk, step.case_id)
    drain()
    assert CaseStep.objects.get(pk=step.pk).status == Status.SENT


def test_staff_send_an_unknown_step_again_and_the_next_drain_sends_it(
    unknown_step, client, backend
):
    clerk = staff("clerk", "send_by_hand")
    client.force_login(clerk)

    response = act(client, "send_again", unknown_step)

    assert "1 step queued to be sent again." in response.content.decode()
    step = CaseStep.objects.get(pk=unknown_step.pk)
    assert (step.status, step.attempts) == (Status.QUEUED, 0)
    (event,) = CaseEvent.objects.filter(kind=CaseEvent.Kind.SEND_AGAIN)
    assert event.actor == clerk
    assert drain().sent == 1
    assert CaseStep.objects.get(pk=step.pk).status == Status.SENT
    assert backend.delivered == [(str(step.case_id), "initial-notice")]


def test_the_actions_leave_steps_that_are_not_unknown_alone(unknown_step, client, run,
                                                             overdue_customer):
    sent = overdue_customer(email="sent@example.com")
    run(1)
    client.force_login(staff("clerk", "send_by_hand"))
    response = act(client, "send_again", step_of(sent))
    assert "Left alone" in response.content.decode()
    assert step_of(sent).status == Status.SENT
    assert not CaseEvent.objects.filter(kind=CaseEvent.Kind.SEND_AGAIN).exists()


@pytest.mark.parametrize("action", ["mark_sent", "send_again"])
def test_the_actions_need_the_send_by_hand_permission(unknown_step, client, action):
    client.force_login(staff("viewer"))
    page = client.get(reverse("admin:dunning_casestep_changelist"))
    assert page.status_code == 200
    assert "Send again" not in page.content.decode()

    act(client, action, unknown_step)  # a forged POST

    assert CaseStep.objects.get(pk=unknown_step.pk).status == Status.UNKNOWN
    assert not CaseEvent.objects.filter(kind__in=[CaseEvent.Kind.SEND_AGAIN,
                                                  CaseEvent.Kind.DELIVERY_CONFIRMED]).exists()


# -- staff: suppressed addresses and delivery events ----------------------------------
def test_staff_suppress_an_address_by_hand_and_lift_it(admin_client, run, overdue_customer,
                                                       backend):
    customer = overdue_customer(email="Quiet@Example.com")
    add = reverse("admin:dunning_suppression_add")
    response = admin_client.post(add, {"address": " Quiet@Example.com "})
    assert response.status_code == 302
    suppression = Suppression.objects.get()
    assert (suppression.address, suppression.reason) == ("quiet@example.com", "manual")
    again = admin_client.post(add, {"address": "quiet@example.com"})
    assert "suppressed already" in again.content.decode()
    invalid = admin_client.post(add, {"address": "not-an-address"})
    assert "Enter a valid email address." in invalid.content.decode()

    run(1)
    assert step_of(customer).reason == "suppressed: manual"
    assert backend.delivered == []

    page = admin_client.get(reverse("admin:dunning_suppression_changelist"))
    assert "Delete a row to email the address again." in page.content.decode()
    delete = reverse("admin:dunning_suppression_delete", args=[suppression.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Suppression.objects.exists()
    run(4)
    assert step_of(customer, "gentle-reminder").status == Status.SENT


@override_settings(ANYMAIL=ANYMAIL)
def test_delivery_events_are_listed_read_only(admin_client, client, run, overdue_customer,
                                              backend):
    customer = overdue_customer(email="ev@example.com")
    run(1)
    step = step_of(customer)
    post(client, "mailgun", mailgun_payload(step, event="delivered", message_id="<ev@mg>"))
    page = admin_client.get(reverse("admin:dunning_deliveryevent_changelist"))
    assert page.status_code == 200
    assert "ev@example.com" in page.content.decode()
    assert f"initial-notice of case {step.case_id}" in page.content.decode()
    assert admin_client.get(reverse("admin:dunning_deliveryevent_add")).status_code == 403
    event = DeliveryEvent.objects.get()
    delete = reverse("admin:dunning_deliveryevent_delete", args=[event.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert DeliveryEvent.objects.count() == 1


# -- real processes: killed while sending, database connection dropped -----------------
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: run with DUNNING_TEST_DB=postgres (server at 127.0.0.1:5432)",
)
both_databases = pytest.mark.parametrize("database", [
    "sqlite",
    pytest.param("postgres", marks=[
        postgres_only, pytest.mark.postgres,
        pytest.mark.django_db(transaction=True, serialized_rollback=True),
    ]),
])
N, BATCH = 60, 10
DUE = sum(1 for i in range(N) if i % 11)  # tests/concurrency_runner.plan: i % 11 == 0 owe later


class Site:
    """A database that child processes (tests/outbox_runner.py) run dunning on."""

    def __init__(self, database, tmp_path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.update(DJANGO_SETTINGS_MODULE="tests.settings_outbox",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
                   OUTBOX_MAIL_FILE=str(tmp_path / "mail.jsonl"))
        if database == "postgres":
            env.update(DUNNING_TEST_DB="postgres", PGDATABASE=connection.settings_dict["NAME"])
        else:
            env.pop("DUNNING_TEST_DB", None)
            env["DUNNING_SQLITE_NAME"] = str(tmp_path / "db.sqlite3")
        self.env = env
        self.mail_file = tmp_path / "mail.jsonl"
        self.mail_file.touch()
        if database == "sqlite":
            self.child("-m", "django", "migrate", "--verbosity", "0", module=False)
        self.child("seed", str(N))

    def child(self, *args, expect=0, module=True, **env):
        command = [sys.executable, *(("-m", "tests.outbox_runner") if module else ()), *args]
        done = subprocess.run(command, cwd=REPO, env={**self.env, **env}, capture_output=True,
                              text=True, timeout=120)
        if expect is not None:
            assert done.returncode == expect, f"{args}: {done.returncode}\n{done.stderr[-3000:]}"
        return done

    def run(self, expect=0, **env):
        return self.child("run", "--as-of", "2026-03-03", "--batch-size", str(BATCH),
                          expect=expect, **env)

    def state(self):
        return json.loads(self.child("state").stdout)

    def mail(self):
        lines = self.mail_file.read_text(encoding="utf-8").splitlines()
        return Counter((int(m["case"]), m["step"]) for m in map(json.loads, lines))


def by_status(state):
    return Counter(s["status"] for s in state["steps"])


def check_day_complete(state, mail, unknown=()):
    """Every customer who owes has its initial notice once; each message went out at
    most once, and every step recorded as sent exactly once; nothing is left behind."""
    steps = state["steps"]
    assert len(steps) == DUE
    assert len({s["customer"] for s in steps}) == DUE
    assert {s["step"] for s in steps} == {"initial-notice"}
    assert max(mail.values()) == 1, "a message went out twice"
    for s in steps:
        key = (s["case"], s["step"])
        if s["pk"] in unknown:
            assert s["status"] == "unknown"
        else:
            assert s["status"] == "sent", s
            assert mail[key] == 1, s
    assert set(mail) <= {(s["case"], s["step"]) for s in steps}


@both_databases
def test_a_worker_killed_after_the_esp_took_its_messages_sends_none_of_them_twice(
    database, tmp_path
):
    """SIGKILL right after the ESP accepted the 15th message (the 5th of the second
    batch), before the run could record it. The next run, once OUTBOX_STALE_AFTER has
    passed, completes the day and marks the batch that was in flight "unknown": those
    messages went out once or not at all, and are not sent again."""
    site = Site(database, tmp_path)

    killed = site.run(expect=None, OUTBOX_KILL_AFTER="15")

    assert killed.returncode == -signal.SIGKILL
    after_kill = site.state()
    assert by_status(after_kill) == {"sent": BATCH, "sending": BATCH}
    in_flight = {s["pk"] for s in after_kill["steps"] if s["status"] == "sending"}
    assert sum(site.mail().values()) == 15
    assert after_kill["runs"][0][1] == "running"

    time.sleep(1.2)
    site.run(DUNNING_OUTBOX_STALE_AFTER="1")
    site.child("drain", DUNNING_OUTBOX_STALE_AFTER="1")

    state, mail = site.state(), site.mail()
    check_day_complete(state, mail, unknown=in_flight)
    assert by_status(state) == {"sent": DUE - BATCH, "unknown": BATCH}
    unknown = [s for s in state["steps"] if s["status"] == "unknown"]
    assert sum(mail[(s["case"], s["step"])] for s in unknown) == 5  # 5 went out, 5 not
    assert {s["case"] for s in unknown} <= set(state["needs_person"])
    assert sorted(state["unknown_events"]) == sorted([s["case"], s["pk"]] for s in unknown)
    assert sum(mail.values()) == DUE - BATCH + 5
    assert [status for _, status in state["runs"]] == ["running", "completed"]


CHUNK = 4


@both_databases
def test_kills_during_the_hand_over_leave_at_most_one_chunk_unknown_each_and_the_runs_abandoned(
    database, tmp_path
):
    """Two runs in a row killed with SIGKILL right after the ESP took their 7th message,
    then one that completes the day. Messages go over in chunks of 4 (batches of 10), each
    chunk recorded as soon as the ESP returned: a kill leaves one chunk "unknown" (4
    messages, some of which went out), not the batch. The killed runs are marked abandoned
    (their lease ran out); nothing is sent twice, nothing is lost."""
    site = Site(database, tmp_path)
    env = {"DUNNING_OUTBOX_CHUNK_SIZE": str(CHUNK), "DUNNING_OUTBOX_STALE_AFTER": "1",
           "DUNNING_RUN_LEASE_SECONDS": "1"}
    unknown_per_kill = []
    for _ in range(2):
        killed = site.run(expect=None, OUTBOX_KILL_AFTER="7", **env)
        assert killed.returncode == -signal.SIGKILL
        in_flight = [s for s in site.state()["steps"] if s["status"] == "sending"]
        unknown_per_kill.append(len(in_flight))
        time.sleep(1.2)  # past the stale lease and the run's lease

    site.run(**env)
    site.child("drain", **env)

    state, mail = site.state(), site.mail()
    unknown = {s["pk"] for s in state["steps"] if s["status"] == "unknown"}
    check_day_complete(state, mail, unknown=unknown)
    assert len(unknown) == sum(unknown_per_kill)
    assert unknown_per_kill == [CHUNK] * 2  # the batch (10) before chunks
    assert max(unknown_per_kill) <= CHUNK < BATCH
    assert DUE - len(unknown) < sum(mail.values()) < DUE  # some of the unknown went out
    assert [status for _, status in state["runs"]] == ["abandoned"] * 2 + ["completed"]
    assert state["run_summaries"][-1]["abandoned"] == 1  # the next run finds each
    print(f"\n[kill -9, {database}] messages left unknown per kill: {unknown_per_kill} "
          f"(chunk {CHUNK}, batch {BATCH}); duplicates 0, lost 0")


@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_connection_dropped_before_a_batch_is_leased_fails_the_run_and_the_next_completes(
    tmp_path
):
    """The run's database session ends (pg_terminate_backend) after its third batch was
    recorded and before the outbox leased it: the run exits non-zero without a half-
    written step; the next run sends that batch and completes the day, none twice."""
    site = Site("postgres", tmp_path)

    failed = site.run(expect=None, OUTBOX_DROP_DB_ON_BUILD=str(2 * BATCH + 1))

    assert failed.returncode != 0
    assert "OperationalError" in failed.stderr
    state = site.state()
    assert by_status(state) == {"sent": 2 * BATCH, "queued": BATCH}
    assert state["runs"][0][1] == "failed"  # recorded on a new connection
    assert sum(site.mail().values()) == 2 * BATCH

    time.sleep(1.2)
    site.run(DUNNING_OUTBOX_STALE_AFTER="1")

    state = site.state()
    check_day_complete(state, site.mail())
    assert sum(site.mail().values()) == DUE
    assert state["runs"][-1][1] == "completed"


@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("where", [
    # while the outcomes of a batch that went out are recorded: reconnect, record them
    {"OUTBOX_DROP_DB_AFTER": str(BATCH + 5)},
    # inside a batch's transaction: rolled back by the server, the cases done again
    {"OUTBOX_DROP_DB_IN_BATCH": "3"},
])
def test_connection_dropped_while_sending_or_recording_loses_and_repeats_nothing(
    tmp_path, where
):
    site = Site("postgres", tmp_path)

    done = site.run(**where)

    assert "terminating connection due to administrator command" in done.stderr
    state = site.state()
    check_day_complete(state, site.mail())
    assert sum(site.mail().values()) == DUE
    assert state["runs"] == [[state["runs"][0][0], "completed"]]
    assert not state["unknown_events"]
