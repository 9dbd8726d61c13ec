"""The end of the road: a hand-over step gives the case to a collections agency (no more
reminders, an export for the agency, its status updates imported back all or nothing), and
a write-off step or an "uncollectable" report closes it for good with case_written_off."""

import csv
import io
import json
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from import_export.formats.base_formats import CSV

from dunning import agency, signals
from dunning.engine import actions as services
from dunning.models import (
    Case,
    CaseEvent,
    CaseStep,
    Invoice,
    MessageTemplate,
    Policy,
    Step,
    WebhookDelivery,
    WebhookEndpoint,
)
from dunning.models.policy import validate_step_sequence
from dunning.testing import create_customer, create_invoice, override_dunning_settings

from .conftest import DAY0, day

AGENCIES = {"inkasso": {"name": "Inkasso Nord", "format": "csv"},
            "recover": {"name": "Recover Ltd", "format": "json"}}

#: (key, offset, action) of the policy of these tests.
STEPS = [("first", 1, ""), ("handover", 10, "agency"), ("write-off", 40, "write_off")]


def make_policy(key, steps):
    policy = Policy.objects.create(key=key, name=key, min_gap_days=3)
    for step_key, offset, action in steps:
        Step.objects.create(policy=policy, key=step_key, offset_days=offset, action=action)
        if not action:  # reminders have a message; the hand-over and write-off have none
            MessageTemplate.objects.create(
                policy=policy, step_key=step_key, language="en", subject=step_key,
                text_body="You owe us.")
    return policy


@pytest.fixture
def road(db):
    make_policy("road-end", STEPS)
    with override_dunning_settings(DEFAULT_POLICY="road-end", AGENCIES=AGENCIES,
                                   DEFAULT_AGENCY="inkasso"):
        yield


@pytest.fixture
def fired():
    """The public signals of this feature as they fire: [(name, kwargs)]."""
    seen = []
    receivers = {}
    for name in ("case_handed_over", "agency_collected", "case_written_off", "case_resolved"):
        def receiver(sender, name=name, **kwargs):
            seen.append((name, kwargs))
        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield seen
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def names(fired):
    return [name for name, _kwargs in fired]


@pytest.fixture
def handed(road, run, django_capture_on_commit_callbacks):
    """Ada owes two invoices (100.00 due DAY0, 50.00 due day 2); the run of day 10 hands
    her case over to Inkasso Nord."""
    ada = create_customer(name="Ada", email="ada@example.com", phone="+4930123456")
    create_invoice(ada, number="A-1", amount_due="100.00", due_date=DAY0)
    create_invoice(ada, number="A-2", amount_due="50.00", due_date=day(2))
    with django_capture_on_commit_callbacks(execute=True):
        run(1)
        run(10)
    return Case.objects.get(customer=ada)


def csv_file(tmp_path, rows, name="report.csv"):
    path = tmp_path / name
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "agency_reference", "status", "amount_collected", "note"])
        writer.writerows(rows)
    return path


def import_rows(tmp_path, rows, *extra):
    call_command("dunning", "agency-import", "inkasso", str(csv_file(tmp_path, rows)), *extra,
                 verbosity=0)


# -- the hand-over ------------------------------------------------------------------------
def test_the_agency_step_hands_the_case_over_and_dunning_stops(road, run, mailoutbox, fired,
                                                               django_capture_on_commit_callbacks):
    ada = create_customer(name="Ada", email="ada@example.com")
    create_invoice(ada, number="A-1", amount_due="100.00", due_date=DAY0)
    with django_capture_on_commit_callbacks(execute=True):
        run(1)
        run(10)
    case = Case.objects.get(customer=ada)
    assert (case.status, case.agency, case.handed_over_on) == ("open", "inkasso", day(10))
    step = CaseStep.objects.get(case=case, step_key="handover")
    # No template for the hand-over: the action is taken, nothing is sent.
    assert (step.action, step.status) == ("agency", CaseStep.Status.NO_MESSAGE)
    assert not case.needs_person
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.HANDED_OVER)
    assert event.message == "Handed over to Inkasso Nord."
    assert names(fired) == ["case_handed_over"]
    assert fired[0][1]["case"].pk == case.pk
    assert fired[0][1]["customer"] == ada
    assert fired[0][1]["agency"] == "inkasso"
    assert [m.subject for m in mailoutbox] == ["first"]
    # Days pass at the agency: no reminder, no step, no signal until the write-off is due.
    with django_capture_on_commit_callbacks(execute=True):
        for n in (14, 20, 30, 39):
            run(n)
    assert len(mailoutbox) == 1
    assert list(CaseStep.objects.filter(case=case).values_list("step_key", flat=True)) == [
        "first", "handover"]
    assert names(fired) == ["case_handed_over"]


def test_a_case_at_the_agency_gets_no_other_step_until_it_is_returned(
        db, run, mailoutbox, tmp_path, django_capture_on_commit_callbacks):
    """A policy saved before the rule "only a write-off after the hand-over" (the admin and
    the policy import refuse it now): its reminder after the hand-over waits while the
    agency has the case, and goes out at the first run after the agency returns it."""
    make_policy("legacy", [("first", 1, ""), ("handover", 10, "agency"),
                           ("last-call", 20, "")])
    with override_dunning_settings(DEFAULT_POLICY="legacy", AGENCIES=AGENCIES,
                                   DEFAULT_AGENCY="inkasso"):
        ada = create_customer(name="Ada")
        create_invoice(ada, amount_due="80.00", due_date=DAY0)
        for n in (1, 10, 20, 25):
            run(n)
        case = Case.objects.get(customer=ada)
        assert case.agency == "inkasso"
        assert not CaseStep.objects.filter(case=case, step_key="last-call").exists()
        assert len(mailoutbox) == 1
        with django_capture_on_commit_callbacks(execute=True):
            import_rows(tmp_path, [[case.pk, "AG-7", "returned", "", "Customer unreachable"]])
        case.refresh_from_db()
        assert (case.agency, case.agency_reference, case.agency_status, case.handed_over_on) == (
            "", "", "", None)
        event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.AGENCY_UPDATE)
        assert (event.message, event.data["status"]) == ("Customer unreachable", "returned")
        result = run(26)
        assert result.executed == {"last-call": 1}
        assert [m.subject for m in mailoutbox] == ["first", "last-call"]


def test_returned_case_goes_on_to_its_write_off_step(handed, run, tmp_path, fired,
                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        import_rows(tmp_path, [[handed.pk, "AG-1", "returned", "", ""]])
        assert run(39).executed == {}
        assert run(40).executed == {"write-off": 1}
    handed.refresh_from_db()
    assert handed.status == Case.Status.WRITTEN_OFF
    assert names(fired).count("case_written_off") == 1


def test_a_payment_resolves_a_handed_over_case_and_tells_the_agency_by_webhook(
        handed, run, fired):
    WebhookEndpoint.objects.create(url="https://agency.example.com/hook",
                                   event_types=["case.resolved"])
    Invoice.objects.filter(customer=handed.customer).update(amount_due=Decimal("0.00"))
    result = run(15)
    handed.refresh_from_db()
    assert result.resolved == 1
    assert handed.status == Case.Status.RESOLVED
    assert "case_resolved" in names(fired)
    delivery = WebhookDelivery.objects.get(event_type="case.resolved")
    assert delivery.payload["case"]["id"] == handed.pk


def test_a_missing_agency_fails_the_case_without_handing_it_over(db, run):
    make_policy("road-end", STEPS)
    with override_dunning_settings(DEFAULT_POLICY="road-end", AGENCIES={}):
        ada = create_customer(name="Ada")
        create_invoice(ada, due_date=DAY0)
        run(1)
        result = run(10)
    case = Case.objects.get(customer=ada)
    assert result.failed == 1 and "DUNNING['AGENCIES']" in result.failures[0][1]
    assert case.agency == "" and case.needs_person
    assert not CaseStep.objects.filter(case=case, step_key="handover").exists()


# -- the export -----------------------------------------------------------------------------
def test_the_export_has_exactly_the_handed_over_cases(road, run, tmp_path,
                                                      django_capture_on_commit_callbacks):
    evil = create_customer(name='=HYPERLINK("https://evil.example","Pay here")',
                           email="evil@example.com", phone="+4930999")
    create_invoice(evil, number="E-1", amount_due="100.10", due_date=DAY0)
    create_invoice(evil, number="E-2", amount_due="20.05", due_date=day(3))
    later = create_customer(name="Bob")
    create_invoice(later, number="B-1", amount_due="70.00", due_date=day(5))  # 7 days at day 12
    with django_capture_on_commit_callbacks(execute=True):
        run(1)
        run(10)
        run(12)
    case = Case.objects.get(customer=evil)
    services.record_promise(case, day(20), Decimal("50.00"), None)
    services.open_dispute(case, "E-2", "=1+1 never ordered", None)
    out = tmp_path / "export.csv"
    call_command("dunning", "agency-export", "inkasso", "--output", str(out), verbosity=0)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [int(r["case"]) for r in rows] == [case.pk]
    row = rows[0]
    assert row["customer_name"] == """'=HYPERLINK("https://evil.example","Pay here")"""
    assert (row["customer_email"], row["customer_phone"]) == ("evil@example.com", "+4930999")
    assert row["invoice_numbers"] == "E-1; E-2"
    assert row["invoice_amounts"] == "100.10; 20.05"
    assert row["invoice_due_dates"] == f"{DAY0.isoformat()}; {day(3).isoformat()}"
    assert (row["currency"], row["total_owed"]) == ("EUR", "120.15")
    assert Decimal(row["total_owed"]) == Decimal("100.10") + Decimal("20.05")
    assert row["handed_over_on"] == day(10).isoformat()
    assert row["last_step"] == "handover"
    assert row["promises"] == f"{day(20).isoformat()}: 50.00"
    assert row["disputes"] == "E-2: =1+1 never ordered (open)"  # not at the start: harmless
    assert row["agency"] == "inkasso"

    # JSON, and --since: nobody handed over after day 10.
    data = json.loads(agency.export_cases("inkasso", fmt="json", today=day(12)).content)
    assert [(d["case"], d["total_owed"], d["days_overdue"]) for d in data] == [
        (case.pk, "120.15", 12)]
    assert agency.export_cases("inkasso", since=day(11)).count == 0
    assert agency.export_cases("recover").count == 0


def test_the_export_goes_to_the_agencys_folder(handed, tmp_path):
    folder = tmp_path / "to-inkasso"
    agencies = {"inkasso": {"name": "Inkasso Nord", "format": "json", "export_dir": str(folder)}}
    with override_dunning_settings(AGENCIES=agencies):
        call_command("dunning", "agency-export", "inkasso", verbosity=0)
    (written,) = folder.iterdir()
    assert written.name.startswith("inkasso-cases-") and written.suffix == ".json"
    assert [row["case"] for row in json.loads(written.read_text())] == [handed.pk]


def test_the_export_command_refuses_an_unknown_agency(road):
    with pytest.raises(CommandError, match="no collections agency 'nobody'"):
        call_command("dunning", "agency-export", "nobody", verbosity=0)
    with pytest.raises(CommandError, match="--since expects an ISO date"):
        call_command("dunning", "agency-export", "inkasso", "--since", "yesterday")


# -- the import of the agency's updates -------------------------------------------------------
def test_updates_go_from_accepted_to_in_progress_to_collected(
        handed, tmp_path, fired, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        import_rows(tmp_path, [[handed.pk, "AG-1", "accepted", "", "Taken on"]])
        handed.refresh_from_db()
        assert (handed.agency_status, handed.agency_reference) == ("accepted", "AG-1")
        import_rows(tmp_path, [[handed.pk, "", "in_progress", "60.00", "First instalment"]])
        handed.refresh_from_db()
        assert (handed.agency_status, handed.agency_reference) == ("in_progress", "AG-1")
        import_rows(tmp_path, [[handed.pk, "AG-1", "collected", "150.00", "Paid in full"]])
    handed.refresh_from_db()
    assert handed.agency_status == "collected"
    assert handed.collected_by_agency == Decimal("150.00")
    assert handed.status == Case.Status.OPEN  # the host pays the invoices; the run resolves
    collected = [kwargs for name, kwargs in fired if name == "agency_collected"]
    # amount_collected is the total so far: the signal carries what is new each time.
    assert [(k["amount"], k["currency"]) for k in collected] == [
        (Decimal("60.00"), "EUR"), (Decimal("90.00"), "EUR")]
    assert collected[0]["customer"] == handed.customer
    updates = CaseEvent.objects.filter(case=handed, kind=CaseEvent.Kind.AGENCY_UPDATE)
    assert [(e.data["status"], e.message) for e in updates] == [
        ("accepted", "Taken on"), ("in_progress", "First instalment"),
        ("collected", "Paid in full")]
    # The same report imported again changes nothing and announces no money twice.
    with django_capture_on_commit_callbacks(execute=True):
        import_rows(tmp_path, [[handed.pk, "AG-1", "collected", "150.00", "Paid in full"]])
    assert updates.count() == 3
    assert names(fired).count("agency_collected") == 2


def test_a_json_report_imports_too(handed, tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps([{"case": handed.pk, "agency_reference": "AG-3",
                                 "status": "In Progress", "amount_collected": None,
                                 "note": "Calling"}]))
    call_command("dunning", "agency-import", "inkasso", str(path), verbosity=0)
    handed.refresh_from_db()
    assert (handed.agency_status, handed.agency_reference) == ("in_progress", "AG-3")


def test_a_bad_row_imports_nothing_and_names_every_bad_row(handed, tmp_path, capsys):
    other = Case.objects.create(customer=create_customer(name="Eve"), policy=handed.policy,
                                opened_on=DAY0, opened_at=handed.opened_at, status="open")
    path = csv_file(tmp_path, [
        [handed.pk, "AG-1", "accepted", "", "fine"],
        [handed.pk, "AG-1", "lost-in-the-mail", "", ""],
        [other.pk, "", "accepted", "", ""],
        [handed.pk, "", "partially_collected", "lots", ""],
        ["999999", "", "accepted", "", ""],
    ])
    with pytest.raises(CommandError, match="Nothing was imported: 4 problem"):
        call_command("dunning", "agency-import", "inkasso", str(path))
    err = capsys.readouterr().err
    assert "row 2: status: 'lost-in-the-mail' is not an agency status" in err
    assert f"row 3: Case {other.pk} is not with the agency 'inkasso'." in err
    assert "row 4: amount_collected: 'lots' is not an amount." in err
    assert "row 5: There is no case 999999." in err
    assert "row 1" not in err
    handed.refresh_from_db()
    assert (handed.agency_status, handed.agency_reference) == ("", "")
    assert not CaseEvent.objects.filter(kind=CaseEvent.Kind.AGENCY_UPDATE).exists()


def test_a_dry_run_checks_the_file_and_changes_nothing(handed, tmp_path, capsys):
    import_rows(tmp_path, [[handed.pk, "AG-1", "accepted", "", ""]], "--dry-run")
    handed.refresh_from_db()
    assert handed.agency_status == ""
    assert not CaseEvent.objects.filter(kind=CaseEvent.Kind.AGENCY_UPDATE).exists()


def test_a_collection_in_a_case_of_two_currencies_must_name_its_currency(
        road, run, tmp_path, capsys):
    ada = create_customer(name="Ada")
    create_invoice(ada, amount_due="10.00", currency="EUR", due_date=DAY0)
    create_invoice(ada, amount_due="10.00", currency="USD", due_date=DAY0)
    run(1)
    run(10)
    case = Case.objects.get(customer=ada)
    with pytest.raises(CommandError):
        import_rows(tmp_path, [[case.pk, "", "partially_collected", "5.00", ""]])
    assert "Name the currency of the amount (column currency)" in capsys.readouterr().err


def test_an_agency_row_with_a_non_currency_or_an_endless_note_imports_nothing(
        handed, tmp_path, capsys):
    """Issue 14: the currency is checked against ISO 4217 (not any three letters) and the
    note has the notes' limit."""
    from dunning.inputs import MAX_NOTE_LENGTH

    path = tmp_path / "report.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "agency_reference", "status", "amount_collected", "currency",
                         "note"])
        writer.writerow([handed.pk, "AG-1", "partially_collected", "5.00", "QQQ", "ok"])
        writer.writerow([handed.pk, "AG-1", "in_progress", "5.00", "EUR",
                         "x" * (MAX_NOTE_LENGTH + 1)])
    with pytest.raises(CommandError, match="Nothing was imported: 2 problem"):
        call_command("dunning", "agency-import", "inkasso", str(path))
    err = capsys.readouterr().err
    assert ("row 1: currency: 'QQQ' is not the ISO 4217 code of a currency in use "
            "(e.g. EUR, USD).") in err
    assert f"row 2: note: Write at most {MAX_NOTE_LENGTH} characters." in err
    assert not CaseEvent.objects.filter(kind=CaseEvent.Kind.AGENCY_UPDATE).exists()


def test_uncollectable_writes_the_case_off_for_good(handed, run, tmp_path, fired, mailoutbox,
                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        import_rows(tmp_path, [[handed.pk, "AG-1", "uncollectable", "", "Insolvent"]])
    handed.refresh_from_db()
    assert handed.status == Case.Status.WRITTEN_OFF
    assert handed.agency_status == "uncollectable"
    assert names(fired) == ["case_written_off"]
    written = CaseEvent.objects.get(case=handed, kind=CaseEvent.Kind.WRITTEN_OFF)
    assert written.message == "Inkasso Nord reported the case uncollectable. Insolvent"
    sent = len(mailoutbox)
    run(50)
    run(60)
    assert Case.objects.filter(customer=handed.customer).count() == 1  # no new case
    assert len(mailoutbox) == sent


# -- the write-off step ------------------------------------------------------------------------
def test_the_write_off_step_closes_the_case_and_fires_once(handed, run, fired, mailoutbox,
                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = run(40)
        run(41)
        run(60)
    handed.refresh_from_db()
    assert result.executed == {"write-off": 1}
    assert (handed.status, handed.closed_on, handed.next_due_on) == (
        Case.Status.WRITTEN_OFF, day(40), None)
    assert CaseStep.objects.get(case=handed, step_key="write-off").status == "no-message"
    assert names(fired).count("case_written_off") == 1
    event = CaseEvent.objects.get(case=handed, kind=CaseEvent.Kind.WRITTEN_OFF)
    assert event.actor is None and event.data["step_key"] == "write-off"
    # The invoices are never dunned again: no new case, no message.
    assert Case.objects.filter(customer=handed.customer).count() == 1
    assert len(mailoutbox) == 1


def test_a_write_off_step_with_a_message_sends_it(road, run, mailoutbox):
    policy = Policy.objects.get(key="road-end")
    MessageTemplate.objects.create(policy=policy, step_key="write-off", language="en",
                                   subject="We wrote it off", text_body="Consider it gone.")
    ada = create_customer(name="Ada")
    create_invoice(ada, due_date=DAY0)
    for n in (1, 10, 40):
        run(n)
    assert [m.subject for m in mailoutbox][-1] == "We wrote it off"
    assert Case.objects.get(customer=ada).status == Case.Status.WRITTEN_OFF


# -- the rules of a policy ------------------------------------------------------------------------
def test_validate_step_sequence_ends_the_road_with_the_write_off():
    validate_step_sequence(STEPS)
    with pytest.raises(ValidationError) as exc:
        validate_step_sequence(STEPS + [("after", 50, "")])
    assert "The write-off step 'write-off' must be the last step." in exc.value.messages
    with pytest.raises(ValidationError) as exc:
        validate_step_sequence([("first", 1, ""), ("handover", 10, "agency"),
                                ("reminder", 20, "")])
    assert exc.value.messages == ["Only a write-off step may follow the agency step 'handover'."]


def test_a_hand_over_step_needs_an_agency_that_is_set_up(db):
    policy = Policy.objects.create(key="p", name="p")
    step = Step(policy=policy, key="handover", offset_days=10, action="agency")
    with override_dunning_settings(AGENCIES={}):
        with pytest.raises(ValidationError) as exc:
            step.clean()
        assert "No collections agency to hand over to" in exc.value.message_dict["action"][0]
    with override_dunning_settings(AGENCIES=AGENCIES, DEFAULT_AGENCY=None):
        with pytest.raises(ValidationError):
            step.clean()  # two agencies, no default, none named
        step.agency = "recover"
        step.clean()
        step.agency = "nobody"
        with pytest.raises(ValidationError, match="no collections agency 'nobody'"):
            step.clean()
        with pytest.raises(ValidationError, match="Only a hand-over step"):
            Step(policy=policy, key="r", offset_days=1, agency="recover").clean()


# -- the admin --------------------------------------------------------------------------------------
def test_the_admin_lists_exports_and_imports_agency_cases(handed, admin_client, fired,
                                                          django_capture_on_commit_callbacks):
    changelist = reverse("admin:dunning_agencycase_changelist")
    page = admin_client.get(changelist)
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [handed]

    response = admin_client.post(changelist, {"action": "export_for_agency",
                                              "_selected_action": [handed.pk]})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(int(r["case"]), r["total_owed"]) for r in rows] == [(handed.pk, "150.00")]

    upload = f"case,agency_reference,status,amount_collected,note\n{handed.pk},AG-9,accepted,,ok\n"
    preview = admin_client.post(reverse("admin:dunning_agencycase_import"), {
        "agency": "inkasso", "format": "0", "resource": "0",
        "import_file": SimpleUploadedFile("report.csv", upload.encode(), "text/csv")})
    assert preview.status_code == 200
    confirm = preview.context["confirm_form"]
    assert confirm is not None and confirm.initial["agency"] == "inkasso"
    handed.refresh_from_db()
    assert handed.agency_status == ""  # the preview changed nothing
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(reverse("admin:dunning_agencycase_process_import"),
                                 confirm.initial)
    assert done.status_code == 302
    handed.refresh_from_db()
    assert (handed.agency_status, handed.agency_reference) == ("accepted", "AG-9")
    event = CaseEvent.objects.get(case=handed, kind=CaseEvent.Kind.AGENCY_UPDATE)
    assert event.actor is not None and event.actor.username == "boss"


def test_collectors_may_look_but_not_import(handed, collector_client):
    assert collector_client.get(reverse("admin:dunning_agencycase_changelist")).status_code == 200
    assert collector_client.get(reverse("admin:dunning_agencycase_import")).status_code == 403


def test_the_export_resource_escapes_like_the_case_export(handed):
    Case.objects.filter(pk=handed.pk).update(agency_reference="@SUM(A1)")
    dataset = agency.AgencyCaseResource().export(Case.objects.filter(pk=handed.pk))
    text = CSV().export_data(dataset)
    assert "'@SUM(A1)" in text


@pytest.mark.parametrize("agencies, default, message", [
    ({"inkasso": {"format": "xml"}}, None, "must be csv or json"),
    ({"inkasso": {"format": "csv"}}, "other", "no collections agency 'other'"),
    (["inkasso"], None, "must be a dict"),
])
def test_a_bad_agency_setting_is_a_system_check_error(agencies, default, message):
    from dunning.checks import check_agency_settings

    with override_dunning_settings(AGENCIES=agencies, DEFAULT_AGENCY=default):
        errors = check_agency_settings()
    assert [e.id for e in errors] == ["dunning.E040"] and message in errors[0].msg


def test_good_agency_settings_pass_the_check():
    from dunning.checks import check_agency_settings

    with override_dunning_settings(AGENCIES={"inkasso": {"name": "Inkasso AG"}},
                                   DEFAULT_AGENCY="inkasso"):
        assert check_agency_settings() == []
