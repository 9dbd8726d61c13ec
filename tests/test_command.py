"""The operator's command: ``manage.py dunning run [--as-of DATE] [--dry-run]``."""

import datetime
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from dunning import signals
from dunning.models import Case, CaseEvent, CaseInvoice, CaseStep, Invoice, Policy, Run
from dunning.testing import override_dunning_settings
from tests.conftest import day

REPO = Path(__file__).resolve().parent.parent


def dunning(*args):
    """Call ``manage.py dunning ...`` in-process; return (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command("dunning", *args, stdout=out, stderr=err, no_color=True)
    return out.getvalue(), err.getvalue()


def lines(text):
    return [line.strip() for line in text.splitlines() if line.strip()]


def manage(*args, db_file, timeout=120):
    """Run ``python -m django ...`` in a subprocess on a file SQLite database."""
    env = dict(os.environ)
    env.pop("DUNNING_TEST_DB", None)  # the subprocess always uses its own SQLite file
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["DUNNING_SQLITE_NAME"] = str(db_file)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def pay(customer):
    Invoice.objects.filter(customer=customer).update(amount_due=0)


@pytest.fixture
def fired():
    """Every public dunning signal sent while the test runs: [(signal name, customer)]."""
    calls = []
    names = ("service_suspended", "service_restored", "account_terminated", "case_resolved")
    receivers = []
    for name in names:
        def receiver(sender, case, customer, _name=name, **kwargs):
            calls.append((_name, customer))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield calls
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


# -- the summary ----------------------------------------------------------------------


def test_summary_counts_opened_executed_resolved_and_failed(overdue_customer, mailoutbox):
    ada = overdue_customer(name="Ada", email="ada@example.com")
    overdue_customer(name="Nomail", email="")

    out, err = dunning("run", "--as-of", day(1).isoformat())
    summary = lines(out)
    assert f"Dunning run for {day(1).isoformat()}" in out
    assert "cases opened: 2" in summary
    assert "steps executed: 2 (initial-notice=2)" in summary
    assert "resolved: 0" in summary
    assert "messages sent: 1" in summary
    assert "failed: 1" in summary
    nomail_case = Case.objects.get(customer__name="Nomail")
    assert f"case {nomail_case.pk} (Nomail): no email address" in err
    assert [m.to for m in mailoutbox] == [["ada@example.com"]]

    pay(ada)
    out, err = dunning("run", "--as-of", day(4).isoformat())
    summary = lines(out)
    assert "cases opened: 0" in summary
    assert "steps executed: 1 (gentle-reminder=1)" in summary
    assert "resolved: 1" in summary
    assert "messages sent: 1" in summary  # the thank-you to Ada
    assert "failed: 1" in summary  # the reminder to the customer without an address
    assert mailoutbox[-1].to == ["ada@example.com"]
    assert "payment-received" in mailoutbox[-1].tags


def test_summary_with_nothing_to_do(db):
    out, err = dunning("run", "--as-of", "2026-03-05")
    summary = lines(out)
    assert "cases opened: 0" in summary
    assert "steps executed: 0 (none)" in summary
    assert "resolved: 0" in summary
    assert "failed: 0" in summary
    assert err == ""


def test_verbosity_zero_prints_no_summary(overdue_customer, mailoutbox):
    overdue_customer()
    out, _ = dunning("--verbosity", "0", "run", "--as-of", day(1).isoformat())
    assert out == ""
    assert len(mailoutbox) == 1


# -- --as-of --------------------------------------------------------------------------


def test_as_of_runs_the_given_day(overdue_customer, mailoutbox):
    overdue_customer(due=datetime.date(2026, 3, 2))

    out, _ = dunning("run", "--as-of", "2026-03-02")  # due today: not overdue yet
    assert "cases opened: 0" in lines(out)
    assert mailoutbox == []

    out, _ = dunning("run", "--as-of", "2026-03-03")
    assert "Dunning run for 2026-03-03" in out
    assert "cases opened: 1" in lines(out)
    assert len(mailoutbox) == 1
    case = Case.objects.get()
    assert case.opened_on == datetime.date(2026, 3, 3)
    assert case.steps.get().executed_on == datetime.date(2026, 3, 3)
    assert sorted(Run.objects.values_list("as_of", flat=True)) == [
        datetime.date(2026, 3, 2), datetime.date(2026, 3, 3),
    ]


@pytest.mark.parametrize("value", ["nope", "2026-02-30", "03/01/2026", "2026-13-01"])
def test_bad_as_of_is_a_command_error_naming_the_option(db, value, mailoutbox):
    with pytest.raises(CommandError) as excinfo:
        dunning("run", "--as-of", value)
    message = str(excinfo.value)
    assert "--as-of" in message
    assert repr(value) in message
    assert "ISO date" in message
    assert Run.objects.count() == 0
    assert mailoutbox == []


def test_bad_batch_size_is_a_command_error(db):
    with pytest.raises(CommandError, match="--batch-size"):
        dunning("run", "--batch-size", "0")


def test_bad_as_of_from_the_shell_exits_non_zero_without_a_traceback(tmp_path):
    result = manage("dunning", "run", "--as-of", "nope", db_file=tmp_path / "db.sqlite3")
    assert result.returncode != 0
    assert "--as-of expects an ISO date" in result.stderr
    assert "'nope'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_subcommand_from_the_shell_exits_non_zero(tmp_path):
    result = manage("dunning", db_file=tmp_path / "db.sqlite3")
    assert result.returncode != 0
    assert "SUBCOMMAND" in result.stderr or "run" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_run_subcommand(tmp_path):
    result = manage("dunning", "--help", db_file=tmp_path / "db.sqlite3")
    assert result.returncode == 0, result.stderr
    assert "subcommands:" in result.stdout
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")]
    assert "run" in listed

    result = manage("dunning", "run", "--help", db_file=tmp_path / "db.sqlite3")
    assert result.returncode == 0, result.stderr
    assert "--as-of" in result.stdout
    assert "--dry-run" in result.stdout


# -- failures of single customers -----------------------------------------------------


def test_failing_customers_do_not_fail_the_command(overdue_customer, mailoutbox):
    overdue_customer(name="Nomail", email="")
    overdue_customer(name="Bad", email="not an address")
    overdue_customer(name="Good", email="good@example.com")

    out, err = dunning("run", "--as-of", day(1).isoformat())  # no exception

    assert "failed: 2" in lines(out)
    assert "no email address" in err
    assert "invalid email address: not an address" in err
    assert [m.to for m in mailoutbox] == [["good@example.com"]]
    assert Run.objects.get().status == Run.Status.COMPLETED


def test_failing_customer_exit_code_from_the_shell_is_zero(tmp_path):
    db_file = tmp_path / "db.sqlite3"
    migrate = manage("migrate", "-v", "0", db_file=db_file)
    assert migrate.returncode == 0, migrate.stderr
    setup = manage(
        "shell", "-c",
        "import datetime; from dunning.testing import create_customer, create_invoice; "
        "c = create_customer(name='Nomail', email=''); "
        "create_invoice(c, amount_due='10.00', due_date=datetime.date(2026, 3, 2))",
        db_file=db_file,
    )
    assert setup.returncode == 0, setup.stderr

    result = manage("dunning", "run", "--as-of", "2026-03-03", db_file=db_file)

    assert result.returncode == 0, result.stderr
    assert "failed: 1" in lines(result.stdout)
    assert "no email address" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_back_dated_run_charges_due_retries_and_posts_webhooks_on_its_date(
        overdue_customer, run, monkeypatch, mailoutbox):
    """``dunning run --as-of`` charges the payment retries due by that day, resolves the
    case on that day (not the clock's), and posts the outbound webhooks."""
    from dunning import webhooks
    from dunning.models import WebhookEndpoint
    from dunning.payments.retries import record_failure

    monkeypatch.setattr(webhooks, "post", lambda *a, **k: webhooks.Response(200))
    customer = overdue_customer(name="Ada", email="ada@example.com", timezone="Europe/Berlin")
    run(1)
    WebhookEndpoint.objects.create(url="https://crm.example/hooks", description="CRM")
    webhooks.clear_cache()
    with override_dunning_settings(
            PAYMENT_BACKEND="dunning.payments.simulated.SimulatedBackend",
            PAYMENT_BACKEND_OPTIONS={"outcomes": {str(customer.pk): {
                "card1": ["insufficient_funds", "ok"]}}}):
        record_failure(customer.pk, invoices=list(customer.invoices.values_list(
                           "number", flat=True)),
                       failed_at=datetime.datetime(2026, 3, 4, 11, tzinfo=datetime.UTC))
        out, _err = dunning("run", "--as-of", day(4).isoformat())
    assert "Payment retries: succeeded 1" in lines(out)
    assert any(line.startswith("Webhooks: delivered") for line in lines(out))
    case = Case.objects.get(customer=customer)
    assert (case.status, case.closed_on) == (Case.Status.RESOLVED, day(4))


# -- --dry-run ------------------------------------------------------------------------


def counts():
    return {
        model.__name__: model.objects.count()
        for model in (Case, CaseStep, CaseEvent, CaseInvoice, Run)
    }


def test_dry_run_prints_the_plan_and_changes_nothing(overdue_customer, run, mailoutbox, fired):
    # Xavier is due a suspension, Zoe (suspended) has paid everything, and a customer
    # without a name becomes overdue: one of each kind of line.
    xavier = overdue_customer(name="Xavier", email="x@example.com")
    zoe = overdue_customer(name="Zoe", email="z@example.com", due=day(-7))
    for n in (1, 4, 8, 14, 17):
        run(n)
    assert Case.objects.get(customer=zoe).suspended
    assert Case.objects.get(customer=xavier).last_step_key == "suspension-warning"
    pay(zoe)
    overdue_customer(name="", email="nameless@example.com", due=day(19))
    mailoutbox.clear()
    fired.clear()
    before = counts()
    cases_before = list(Case.objects.order_by("pk").values())

    out, err = dunning("run", "--as-of", day(21).isoformat(), "--dry-run")

    assert lines(out)[0] == "Dry run: nothing is written, sent or signalled."
    planned = [line for line in lines(out) if ": " in line and not line.startswith(
        ("Dry run", "cases opened", "steps executed", "resolved", "terminated", "failed")
    )]
    assert sorted(planned) == [
        "Xavier: suspension",
        "Zoe: payment-received",
        "nameless@example.com: initial-notice",
    ]
    summary = lines(out)
    assert f"Dry run for {day(21).isoformat()}" in out
    assert "cases opened: 1" in summary
    assert "steps executed: 2 (initial-notice=1, suspension=1)" in summary
    assert "resolved: 1" in summary
    assert not any(line.startswith("messages sent") for line in summary)
    assert err == ""

    assert counts() == before
    assert list(Case.objects.order_by("pk").values()) == cases_before
    assert mailoutbox == []
    assert fired == []

    # The real run does what the dry run announced.
    out, _ = dunning("run", "--as-of", day(21).isoformat())
    assert "steps executed: 2 (initial-notice=1, suspension=1)" in lines(out)
    assert "resolved: 1" in lines(out)
    assert len(mailoutbox) == 3
    assert sorted(name for name, _ in fired) == [
        "case_resolved", "service_restored", "service_suspended",
    ]


def test_dry_run_on_a_fresh_database_writes_no_run(overdue_customer, mailoutbox, fired):
    overdue_customer(name="Ada")
    out, _ = dunning("run", "--as-of", day(30).isoformat(), "--dry-run")
    assert "Ada: initial-notice" in lines(out)  # never two steps at once, never skipped
    assert counts() == dict.fromkeys(counts(), 0)
    assert mailoutbox == []
    assert fired == []


def test_dry_run_lists_customers_that_would_fail(overdue_customer, mailoutbox):
    overdue_customer(name="Nomail", email="")
    out, _ = dunning("run", "--as-of", day(1).isoformat(), "--dry-run")
    assert "Nomail: initial-notice" in lines(out)
    assert CaseStep.objects.count() == 0
    assert mailoutbox == []


def test_dry_run_reports_the_failures_the_real_run_records_naming_the_customer(
        overdue_customer, run, mailoutbox):
    """The dry run counts and lists what the real run of that day records as failed (an
    invalid address, none at all, for a new case and an open one), each line naming the
    customer; the real run then records the same."""
    overdue_customer(name="Bad Address Ltd", email="not an address")
    overdue_customer(name="Good", email="good@example.com")
    run(1)
    Case.objects.filter(customer__name="Bad Address Ltd").update(needs_person=False)
    overdue_customer(name="Nomail GmbH", email="", due=day(3))
    bad_case = Case.objects.get(customer__name="Bad Address Ltd")
    mailoutbox.clear()
    out, err = dunning("run", "--as-of", day(5).isoformat(), "--dry-run")
    assert "failed: 2" in lines(out)
    assert (f"case {bad_case.pk} (Bad Address Ltd): invalid email address: not an address"
            in lines(err))
    assert "new case (Nomail GmbH): no email address" in lines(err)
    assert CaseStep.objects.filter(executed_on=day(5)).count() == 0
    out, err = dunning("run", "--as-of", day(5).isoformat())
    assert "failed: 2" in lines(out)
    assert (f"case {bad_case.pk} (Bad Address Ltd): invalid email address: not an address"
            in lines(err))
    nomail = Case.objects.get(customer__name="Nomail GmbH")
    assert f"case {nomail.pk} (Nomail GmbH): no email address" in lines(err)


# -- configuration errors -------------------------------------------------------------


def test_missing_default_policy_is_a_command_error_naming_the_setting(overdue_customer, mailoutbox):
    overdue_customer()
    with override_dunning_settings(DEFAULT_POLICY="no-such-policy"):
        with pytest.raises(CommandError) as excinfo:
            dunning("run", "--as-of", day(1).isoformat())
    message = str(excinfo.value)
    assert "DUNNING['DEFAULT_POLICY']" in message
    assert "'no-such-policy'" in message
    assert Case.objects.count() == 0
    assert mailoutbox == []


def test_inactive_default_policy_is_a_command_error(overdue_customer, mailoutbox):
    overdue_customer()
    Policy.objects.filter(key="standard").update(is_active=False)
    with pytest.raises(CommandError, match=r"DUNNING\['DEFAULT_POLICY'\]"):
        dunning("run", "--as-of", day(1).isoformat())
    assert Case.objects.count() == 0
    assert mailoutbox == []


def test_missing_default_policy_in_a_dry_run_is_a_command_error(db):
    Policy.objects.filter(key="standard").delete()
    with pytest.raises(CommandError, match=r"DUNNING\['DEFAULT_POLICY'\]"):
        dunning("run", "--dry-run")
