"""``dunning.tasks``: the task-queue entry points, run directly and through django-q2."""

import datetime

import pytest
from django.core.checks import run_checks
from django.test import override_settings
from django_q.models import Task
from django_q.tasks import async_task

from dunning import tasks
from dunning.models import CaseStep, Run
from tests.conftest import day


def test_run_returns_the_summary(overdue_customer, mailoutbox):
    overdue_customer(name="Alice", email="alice@example.com")
    summary = tasks.run(day(1).isoformat())
    assert summary["as_of"] == day(1).isoformat()
    assert (summary["opened"], summary["executed"], summary["sent"]) == (1, {"initial-notice": 1}, 1)
    assert len(mailoutbox) == 1


def test_run_twice_is_idempotent(overdue_customer, mailoutbox):
    overdue_customer(name="Alice", email="alice@example.com")
    tasks.run(day(1).isoformat())
    second = tasks.run(day(1).isoformat())
    assert (second["opened"], second["executed"], second["sent"]) == (0, {}, 0)
    assert len(mailoutbox) == 1
    assert CaseStep.objects.count() == 1


def test_run_through_django_q(overdue_customer, mailoutbox):
    """The function the schedule names runs the engine in a django-q2 worker (sync mode:
    the same worker code, in-process)."""
    overdue_customer(name="Alice", email="alice@example.com")
    task_id = async_task("dunning.tasks.run", day(1).isoformat(), sync=True)
    task = Task.objects.get(id=task_id)
    assert task.success, task.result
    assert task.result["executed"] == {"initial-notice": 1}
    assert Run.objects.get().summary["sent"] == 1
    assert [m.to for m in mailoutbox] == [["alice@example.com"]]


def test_the_scheduled_run_does_what_dunning_run_does_without_the_drain(
        overdue_customer, run, monkeypatch, mailoutbox):
    """``dunning schedule --no-drain`` leaves only ``dunning.tasks.run``: it charges the
    payment retries that are due and posts the outbound webhooks, like ``dunning run``."""
    from dunning import webhooks
    from dunning.models import Case, PaymentAttempt, WebhookDelivery, WebhookEndpoint
    from dunning.payments.retries import record_failure
    from dunning.testing import override_dunning_settings

    posted = []

    def post(url, secret, event_type, event_id, payload, **kwargs):
        posted.append(event_type)
        return webhooks.Response(200)

    monkeypatch.setattr(webhooks, "post", post)
    customer = overdue_customer(name="Alice", email="alice@example.com", timezone="Europe/Berlin")
    run(1)
    WebhookEndpoint.objects.create(url="https://crm.example/hooks", description="CRM")
    webhooks.clear_cache()
    with override_dunning_settings(
            PAYMENT_BACKEND="dunning.payments.simulated.SimulatedBackend",
            PAYMENT_BACKEND_OPTIONS={"outcomes": {str(customer.pk): {
                "card1": ["insufficient_funds", "ok"]}}}):
        failed_at = datetime.datetime(2026, 3, 4, 11, tzinfo=datetime.UTC)  # noon in Berlin
        record_failure(customer.pk, invoices=list(customer.invoices.values_list(
            "number", flat=True)), failed_at=failed_at)  # retried on day 3, 09:00
        summary = tasks.run(day(4).isoformat())
    assert summary["payments"] == {"succeeded": 1}
    assert PaymentAttempt.objects.filter(status="succeeded").count() == 1
    case = Case.objects.get(customer=customer)
    assert (case.status, case.closed_on) == (Case.Status.RESOLVED, day(4))
    assert summary["webhooks"]["delivered"] >= 1 and "case.resolved" in posted
    assert not WebhookDelivery.objects.filter(status="pending").exists()


def test_a_bad_date_fails_the_task(db):
    with pytest.raises(ValueError):
        tasks.run("yesterday")


# -- the deploy check ------------------------------------------------------------------


def dunning_errors(**kwargs):
    return [m.id for m in run_checks(tags=["dunning"], include_deployment_checks=True)
            if m.id.startswith("dunning.E011")]


@override_settings(ANYMAIL={}, DEBUG=False)
def test_deploy_check_wants_a_webhook_secret(db):
    assert dunning_errors() == ["dunning.E011"]


@override_settings(ANYMAIL={"WEBHOOK_SECRET": "user:pass"}, DEBUG=False)
def test_deploy_check_passes_with_a_secret(db):
    assert dunning_errors() == []


@override_settings(ANYMAIL_WEBHOOK_SECRET="user:pass", DEBUG=False)
def test_deploy_check_accepts_the_flat_setting(db):
    assert dunning_errors() == []


@override_settings(ANYMAIL={}, DEBUG=True)
def test_deploy_check_is_quiet_in_debug(db):
    assert dunning_errors() == []


@override_settings(ANYMAIL={}, DEBUG=False)
def test_the_check_runs_only_with_deploy(db):
    assert "dunning.E011" not in [m.id for m in run_checks(tags=["dunning"])]


@override_settings(ANYMAIL={}, DEBUG=False)
def test_manage_py_check_deploy_reports_it(db):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with pytest.raises(SystemCheckError, match="dunning.E011"):
        call_command("check", "--deploy", "--tag", "dunning", stdout=StringIO(), stderr=StringIO())
