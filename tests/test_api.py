"""The REST API (dunning.urls under /dunning/api/v1/): who may call which endpoint (a table
of role x endpoint x status), and that each endpoint does what the admin does."""

import datetime
import html
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.utils import timezone, translation
from rest_framework.authtoken.models import Token

from dunning import signals
from dunning.models import (
    Case,
    CaseEvent,
    CaseInvoice,
    CaseStep,
    Customer,
    Dispute,
    Invoice,
    MessageTemplate,
    Policy,
    Run,
    Step,
)
from dunning.testing import create_customer, create_invoice, override_dunning_settings
from tests.conftest import DAY0, day

API = "/dunning/api/v1"
TODAY = timezone.localdate


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()  # throttle counts live in the cache
    with translation.override("en"):  # the messages compared below are the English ones
        yield
    cache.clear()


def post(client, url, data=None, **extra):
    return client.post(url, data or {}, content_type="application/json", **extra)


def patch(client, url, data):
    return client.patch(url, data, content_type="application/json")


def a_case(name="Ada", amount="100.00", currency="EUR", due=DAY0, **fields):
    """An open case on the standard policy, made directly (no run, no message)."""
    customer = create_customer(name=name, email=f"{name.lower()}@example.com")
    create_invoice(customer, amount_due=amount, currency=currency, due_date=due)
    values = {"status": Case.Status.OPEN, "opened_on": due + datetime.timedelta(days=1),
              "opened_at": timezone.now(), "next_due_on": TODAY(), **fields}
    return Case.objects.create(customer=customer, policy=Policy.objects.get(key="standard"),
                               **values)


# -- users ------------------------------------------------------------------------------------
@pytest.fixture
def users(django_user_model, fast_hasher, collector, boss):
    """Clients by role: anonymous, staff without permissions, collector (the Collections
    group), restricted (a collector who may see assigned cases only, the case not
    assigned to them), assigned (the same, the case assigned to them), superuser."""

    def logged_in(user):
        client = Client()
        client.force_login(user)
        return client

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    restricted = django_user_model.objects.create_user("rita", password="pw", is_staff=True)
    restricted.groups.add(Group.objects.get(name="Collections"))
    return {
        "anonymous": Client(),
        "staff": logged_in(staff),
        "collector": logged_in(collector),
        "restricted": logged_in(restricted),
        "assigned": logged_in(restricted),
        "superuser": logged_in(boss),
        "_restricted_user": restricted,
        "_collector": collector,
    }


# Endpoints of the table: name -> (method, path, payload); "{case}", "{policy}",
# "{step}", "{template}", "{collector}", "{today+5}" are filled in per test.
ENDPOINTS = {
    "cases-list": ("get", "/cases/", None),
    "case-detail": ("get", "/cases/{case}/", None),
    "case-note": ("post", "/cases/{case}/note/", {"text": "Called twice."}),
    "case-call": ("post", "/cases/{case}/call/", {"outcome": "reached", "text": "ok"}),
    "case-assign": ("post", "/cases/{case}/assign/", {"collector": "{collector}"}),
    "case-pause": ("post", "/cases/{case}/pause/", {"reason": "holiday"}),
    "case-resume": ("post", "/cases/{case}/resume/", None),
    "case-escalate": ("post", "/cases/{case}/escalate/", None),
    "case-promise": ("post", "/cases/{case}/promise/", {"date": "{today+5}", "amount": "50.00"}),
    "case-dispute": ("post", "/cases/{case}/dispute/", {"invoice_number": "{invoice}",
                                                         "reason": "r"}),
    "case-resolve-disputes": ("post", "/cases/{case}/resolve-disputes/", {"resolution": "ok"}),
    "case-write-off": ("post", "/cases/{case}/write-off/", {"reason": "insolvent"}),
    "case-send-now": ("post", "/cases/{case}/send-now/", None),
    "policies-list": ("get", "/policies/", None),
    "policy-detail": ("get", "/policies/{policy}/", None),
    "policy-create": ("post", "/policies/", {"key": "soft", "name": "Soft"}),
    "policy-update": ("patch", "/policies/{policy}/", {"description": "changed"}),
    "policy-delete": ("delete", "/policies/{policy}/", None),
    "steps-list": ("get", "/steps/", None),
    "step-create": ("post", "/steps/", {"policy": "{policy}", "key": "extra", "offset_days": 2}),
    "step-update": ("patch", "/steps/{step}/", {"offset_days": 2}),
    "templates-list": ("get", "/templates/", None),
    "template-detail": ("get", "/templates/{template}/", None),
    "template-create": ("post", "/templates/", {
        "policy": "{policy}", "step_key": "initial-notice", "language": "fr",
        "subject": "Rappel", "text_body": "Bonjour {{ customer.name }}"}),
    "template-update": ("patch", "/templates/{template}/", {"subject": "New subject"}),
    "reports": ("get", "/reports/", None),
    "reports-aging": ("get", "/reports/aging/", None),
    "reports-recovery": ("get", "/reports/recovery/", None),
    "reports-days-to-collect": ("get", "/reports/days-to-collect/", None),
    "reports-steps": ("get", "/reports/steps/", None),
    "invoices-bulk": ("post", "/invoices/bulk/", {"invoices": [{
        "number": "EXT-1", "customer": {"email": "new@example.com", "name": "New"},
        "amount_due": "10.00", "currency": "EUR", "due_date": "2026-03-02"}]}),
    "payment-failed": ("post", "/payment-events/", {"type": "payment.failed",
                                                    "invoice": "{invoice}"}),
    "invoice-paid": ("post", "/payment-events/", {"type": "invoice.paid",
                                                  "invoice": "{invoice}"}),
    "schema": ("get", "/schema/?format=json", None),
    "docs": ("get", "/docs/", None),
}

CASE_ACTIONS = ["case-note", "case-call", "case-assign", "case-pause", "case-escalate",
                "case-promise", "case-dispute"]
POLICY_READS = ["policies-list", "policy-detail", "steps-list", "templates-list",
                "template-detail", "schema", "docs"]
POLICY_WRITES = ["policy-create", "policy-update", "step-create", "step-update",
                 "template-create", "template-update"]
REPORTS = ["reports", "reports-aging", "reports-recovery", "reports-days-to-collect",
           "reports-steps"]


def row(default, **statuses):
    table = {name: default for name in ENDPOINTS}
    table.update({name.replace("_", "-"): status for name, status in statuses.items()})
    return table


def _all(names, status):
    return {name.replace("-", "_"): status for name in names}


EXPECTED = {
    # Token authentication comes first, so DRF answers 401 with WWW-Authenticate.
    "anonymous": row(401),
    "staff": row(403, **_all(POLICY_READS, 200)),
    "collector": row(
        200, **_all(POLICY_WRITES, 403), policy_delete=403, case_write_off=403,
        invoices_bulk=403, invoice_paid=403,  # marking a shipped invoice paid: change_invoice
        case_resume=409, case_resolve_disputes=409,  # allowed, refused: not paused, no dispute
    ),
    "restricted": row(
        404, cases_list=200, **_all(POLICY_READS, 200), **_all(POLICY_WRITES, 403),
        policy_delete=403, **_all(REPORTS, 200), case_write_off=403, invoices_bulk=403,
        payment_failed=200, invoice_paid=403,
    ),
    "assigned": row(
        200, **_all(POLICY_WRITES, 403), policy_delete=403, case_write_off=403,
        invoices_bulk=403, invoice_paid=403, case_resume=409, case_resolve_disputes=409,
    ),
    "superuser": row(
        200, policy_create=201, step_create=201, template_create=201,
        policy_delete=409,  # the standard policy is used by the case
        case_resume=409, case_resolve_disputes=409,
    ),
}


def fill(value, ctx):
    if isinstance(value, dict):
        return {k: fill(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ctx) for v in value]
    if isinstance(value, str) and re.fullmatch(r"\{[a-z+0-9]+\}", value):
        return ctx[value[1:-1]]
    if isinstance(value, str):
        return value.format(**{k: v for k, v in ctx.items() if "+" not in k})
    return value


class Rollback(Exception):
    pass


def call(users, role, endpoint):
    """One cell of the table, on a fresh case, rolled back afterwards."""
    try:
        with transaction.atomic():
            case = a_case(last_step_key="initial-notice", last_step_on=day(1))
            CaseStep.objects.create(case=case, step_key="initial-notice", executed_on=day(1),
                                    created_at=timezone.now(), status=CaseStep.Status.SENT)
            if role == "assigned":
                Case.objects.filter(pk=case.pk).update(assigned_to=users["_restricted_user"])
            policy = Policy.objects.get(key="standard")
            ctx = {
                "case": case.pk, "policy": policy.pk, "collector": users["_collector"].pk,
                "step": Step.objects.get(policy=policy, key="initial-notice").pk,
                "template": MessageTemplate.objects.filter(policy=policy).first().pk,
                "today+5": (TODAY() + datetime.timedelta(days=5)).isoformat(),
                "invoice": Invoice.objects.get(customer=case.customer).number,
            }
            method, path, payload = ENDPOINTS[endpoint]
            client = users[role]
            url = API + fill(path, ctx)
            # Collectors see assigned cases only for the roles "restricted" and "assigned".
            restricted = role in ("restricted", "assigned")
            with override_dunning_settings(API_COLLECTORS_SEE_ASSIGNED_ONLY=restricted):
                if method in ("get", "delete"):
                    response = getattr(client, method)(url)
                else:
                    response = getattr(client, method)(url, fill(payload or {}, ctx),
                                                       content_type="application/json")
            raise Rollback(response)
    except Rollback as done:
        return done.args[0]


@pytest.mark.parametrize("role", list(EXPECTED))
def test_permission_table(users, role, mailoutbox):
    """Every endpoint for one role: the status the permissions give, and errors in DRF's
    shape ({"detail": ...}). Each call runs on a fresh case, rolled back after it."""
    wrong = []
    for endpoint, expected in EXPECTED[role].items():
        cache.clear()
        response = call(users, role, endpoint)
        if response.status_code != expected:
            wrong.append((endpoint, expected, response.status_code, response.content[:200]))
        elif expected >= 400 and endpoint != "docs" and "detail" not in response.json():
            wrong.append((endpoint, "no detail", response.content[:200]))
    assert wrong == []


def test_the_restriction_is_off_by_default(users):
    case = a_case()
    assert users["restricted"].get(f"{API}/cases/{case.pk}/").status_code == 200


def test_a_guessed_id_looks_exactly_like_a_missing_one(users):
    mine, other = a_case("Mine"), a_case("Other")
    Case.objects.filter(pk=mine.pk).update(assigned_to=users["_restricted_user"])
    client = users["restricted"]
    with override_dunning_settings(API_COLLECTORS_SEE_ASSIGNED_ONLY=True):
        listed = client.get(f"{API}/cases/").json()
        hidden = client.get(f"{API}/cases/{other.pk}/")
        missing = client.get(f"{API}/cases/999999/")
        acted = post(client, f"{API}/cases/{other.pk}/note/", {"text": "x"})
    assert [c["id"] for c in listed["results"]] == [mine.pk]
    assert hidden.status_code == missing.status_code == acted.status_code == 404
    assert hidden.json() == missing.json()
    assert "Other" not in hidden.content.decode() + acted.content.decode()
    assert not CaseEvent.objects.filter(case=other).exists()


def test_token_authentication(boss):
    token = Token.objects.create(user=boss)
    case = a_case()
    response = Client().get(f"{API}/cases/{case.pk}/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert response.json()["customer"]["name"] == "Ada"
    assert Client().get(f"{API}/cases/", HTTP_AUTHORIZATION="Token wrong").status_code == 401


def test_a_non_staff_user_with_permissions_is_refused(django_user_model, fast_hasher):
    user = django_user_model.objects.create_user("outsider", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_case"))
    client = Client()
    client.force_login(user)
    assert client.get(f"{API}/cases/").status_code == 403


# -- the case list: filters, search, ordering, pagination -------------------------------------
@pytest.fixture
def listed(db):
    today = TODAY()
    return {
        "young": a_case("Young", amount="50.00", due=today - datetime.timedelta(days=10)),
        "old": a_case("Old", amount="5000.00", due=today - datetime.timedelta(days=100),
                      needs_person=True),
        "dollar": a_case("Dollar", amount="300.00", currency="USD",
                         due=today - datetime.timedelta(days=45)),
        "closed": a_case("Closed", amount="0.00", status=Case.Status.RESOLVED, closed_on=today),
    }


def ids(response):
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


@pytest.mark.parametrize("query,expected", [
    ("status=open", {"young", "old", "dollar"}),
    ("status=resolved", {"closed"}),
    ("needs_person=true", {"old"}),
    ("days_overdue=1-30", {"young"}),
    ("days_overdue=31-60", {"dollar"}),
    ("days_overdue=90%2B", {"old"}),
    ("amount=0-100", {"young"}),
    ("amount=1000-10000", {"old"}),
    ("currency=usd", {"dollar"}),
    ("search=dollar", {"dollar"}),
    ("search=dollar%40example", {"dollar"}),
    ("policy=standard&status=open", {"young", "old", "dollar"}),
    ("assigned_to=none&status=resolved", {"closed"}),
])
def test_list_filters_and_search(admin_client, listed, query, expected):
    wanted = {listed[name].pk for name in expected}
    assert set(ids(admin_client.get(f"{API}/cases/?{query}"))) == wanted


def test_search_by_invoice_number_and_case_number(admin_client, listed):
    number = Invoice.objects.get(customer=listed["old"].customer).number
    assert ids(admin_client.get(f"{API}/cases/?search={number}")) == [listed["old"].pk]
    pk = listed["young"].pk
    assert pk in ids(admin_client.get(f"{API}/cases/?search={pk}"))


def test_ordering(admin_client, listed):
    by_amount = ids(admin_client.get(f"{API}/cases/?ordering=-amount&status=open"))
    assert by_amount == [listed[n].pk for n in ("old", "dollar", "young")]
    by_days = ids(admin_client.get(f"{API}/cases/?ordering=-days_overdue&status=open"))
    assert by_days == [listed[n].pk for n in ("old", "dollar", "young")]
    default = ids(admin_client.get(f"{API}/cases/"))
    assert default == sorted(default, reverse=True)  # newest first, as the admin


@pytest.mark.parametrize("query,param", [
    ("status=bogus", "status"), ("needs_person=maybe", "needs_person"),
    ("days_overdue=7", "days_overdue"), ("amount=lots", "amount"),
    ("ordering=customer__name", "ordering"), ("assigned_to=bob", "assigned_to"),
])
def test_a_bad_filter_value_is_a_400_naming_it(admin_client, listed, query, param):
    response = admin_client.get(f"{API}/cases/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == [param]


def test_pagination(admin_client, listed):
    first = admin_client.get(f"{API}/cases/?page_size=2").json()
    assert first["count"] == 4 and len(first["results"]) == 2 and first["next"]
    second = admin_client.get(first["next"]).json()
    assert len(second["results"]) == 2 and second["next"] is None
    with override_dunning_settings(API_PAGE_SIZE=3, API_MAX_PAGE_SIZE=3):
        assert len(admin_client.get(f"{API}/cases/?page_size=100").json()["results"]) == 3
    assert admin_client.get(f"{API}/cases/?page=9").status_code == 404


def test_list_shows_amount_days_and_customer(admin_client, listed):
    item = admin_client.get(f"{API}/cases/{listed['old'].pk}/").json()
    assert item["amount_overdue"] in ("5000", "5000.00")
    assert item["currency"] == "EUR" and item["several_currencies"] is False
    assert item["days_overdue"] == 100
    assert item["customer"]["email"] == "old@example.com"
    create_invoice(listed["old"].customer, amount_due="1.00", currency="USD",
                   due_date=TODAY() - datetime.timedelta(days=3))
    item = admin_client.get(f"{API}/cases/{listed['old'].pk}/").json()
    assert item["amount_overdue"] is None and item["currency"] is None
    assert item["several_currencies"] is True
    assert {t["currency"] for t in item["totals"]} == {"EUR", "USD"}


# -- the case detail --------------------------------------------------------------------------
def test_detail_has_open_invoices_totals_disputes_and_timeline(admin_client, case, boss):
    create_invoice(case.customer, number="LATER", amount_due="20.00",
                   due_date=TODAY() + datetime.timedelta(days=10))
    create_invoice(case.customer, number="PAID", amount_due="0.00", due_date=DAY0)
    post(admin_client, f"{API}/cases/{case.pk}/dispute/", {"invoice_number": "LATER",
                                                            "reason": "never ordered"})
    detail = admin_client.get(f"{API}/cases/{case.pk}/").json()
    numbers = [i["number"] for i in detail["invoices"]]
    assert "LATER" in numbers and "PAID" not in numbers
    later = next(i for i in detail["invoices"] if i["number"] == "LATER")
    assert later["days_overdue"] == 0 and later["amount_due"] == "20.00"
    assert detail["totals"][0]["currency"] == "EUR"
    assert detail["disputes"][0]["reason"] == "never ordered"
    assert detail["disputes"][0]["opened_by"] == "boss"
    kinds = [entry["kind"] for entry in detail["timeline"]]
    assert kinds == ["message", "dispute"]
    assert detail["timeline"][0]["status"] == "sent"
    # Done through the API: the user, marked as an API client (issue 14).
    assert detail["timeline"][1]["by"] == "boss (API)"
    assert detail["timeline"][1]["by_kind"] == "api"


# -- the case actions: the admin's rules ------------------------------------------------------
def test_pause_and_resume(admin_client, case, boss):
    until = TODAY() + datetime.timedelta(days=7)
    response = post(admin_client, f"{API}/cases/{case.pk}/pause/",
                    {"reason": "on holiday", "until": until.isoformat()})
    assert response.status_code == 200
    assert response.json()["paused_until"] == until.isoformat()
    case.refresh_from_db()
    assert case.paused_until == until and case.pause_reason == "on holiday"
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.PAUSED)
    assert event.actor == boss and event.data == {"until": until.isoformat()}
    assert post(admin_client, f"{API}/cases/{case.pk}/resume/").status_code == 200
    case.refresh_from_db()
    assert case.paused_until is None
    refused = post(admin_client, f"{API}/cases/{case.pk}/resume/")
    assert refused.status_code == 409
    assert refused.json() == {"detail": f"{case} is not paused."}


def test_pause_until_further_notice(admin_client, case):
    assert post(admin_client, f"{API}/cases/{case.pk}/pause/", {"reason": "r"}).json()[
        "paused_until"] == "9999-12-31"


def test_input_errors_are_the_admin_forms(admin_client, case):
    past = (TODAY() - datetime.timedelta(days=1)).isoformat()
    response = post(admin_client, f"{API}/cases/{case.pk}/pause/", {"reason": "r", "until": past})
    assert response.status_code == 400
    assert response.json() == {"until": ["The end of a pause must lie in the future."]}
    response = post(admin_client, f"{API}/cases/{case.pk}/promise/",
                    {"date": past, "amount": "-1"})
    assert response.json() == {"date": ["The promised date must be today or later."],
                               "amount": ["The promised amount must be greater than zero."]}
    response = post(admin_client, f"{API}/cases/{case.pk}/call/", {"outcome": "shouted"})
    assert response.status_code == 400 and "outcome" in response.json()
    assert post(admin_client, f"{API}/cases/{case.pk}/note/", {"text": "  "}).status_code == 400
    assert not CaseEvent.objects.filter(case=case).exists()


def test_a_closed_case_is_refused_with_the_admins_message(admin_client, case):
    Case.objects.filter(pk=case.pk).update(status=Case.Status.RESOLVED)
    case.refresh_from_db()
    for action, data in [("pause", {"reason": "r"}), ("escalate", None),
                         ("promise", {"date": TODAY().isoformat(), "amount": "5"}),
                         ("dispute", {"invoice_number": "1", "reason": "r"}),
                         ("write-off", {"reason": "r"})]:
        response = post(admin_client, f"{API}/cases/{case.pk}/{action}/", data)
        assert response.status_code == 409, action
        assert response.json() == {"detail": f"{case} is not open; left unchanged."}
    response = post(admin_client, f"{API}/cases/{case.pk}/send-now/")
    assert response.status_code == 409 and response.json()["reason"] == "not-open"
    assert not CaseEvent.objects.filter(case=case).exists()


def test_promise_pauses_until_the_grace_after_the_date(admin_client, case, boss):
    date = TODAY() + datetime.timedelta(days=5)
    body = post(admin_client, f"{API}/cases/{case.pk}/promise/",
                {"date": date.isoformat(), "amount": "80.00"}).json()
    assert body["promised_on"] == date.isoformat() and body["promised_amount"] == "80.00"
    assert body["paused_until"] == (date + datetime.timedelta(days=3)).isoformat()
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.PROMISE)
    assert event.actor == boss and event.data == {"date": date.isoformat(), "amount": "80.00"}


def test_dispute_and_resolve(admin_client, case):
    number = Invoice.objects.get(customer=case.customer).number
    post(admin_client, f"{API}/cases/{case.pk}/dispute/", {"invoice_number": number,
                                                            "reason": "r"})
    case.refresh_from_db()
    assert case.paused_until is None  # a dispute holds its invoice, not the case
    response = post(admin_client, f"{API}/cases/{case.pk}/resolve-disputes/",
                    {"resolution": "credited"})
    assert response.status_code == 200 and response.json()["paused_until"] is None
    assert Dispute.objects.get(case=case).resolution == "credited"
    again = post(admin_client, f"{API}/cases/{case.pk}/resolve-disputes/", {"resolution": "x"})
    assert again.status_code == 409
    assert again.json() == {"detail": f"{case} has no open dispute."}


def test_only_the_cases_own_open_invoices_can_be_disputed(admin_client, case):
    """Issue 14: a dispute naming another customer's invoice, a paid one or none at all
    paused the case for good; it is a 400 naming the field, and nothing changes."""
    other = a_case(name="Bob")
    theirs = Invoice.objects.get(customer=other.customer).number
    paid = create_invoice(case.customer, number="PAID-1", amount_due="0.00", due_date=DAY0)
    for number in (theirs, "NO-SUCH-INVOICE", paid.number):
        response = post(admin_client, f"{API}/cases/{case.pk}/dispute/",
                        {"invoice_number": number, "reason": "not ours"})
        assert response.status_code == 400, number
        assert response.json() == {"invoice_number": [
            f"{number} is not an open invoice of {case}; only the case's own open invoices "
            "can be disputed."]}
    case.refresh_from_db()
    assert case.paused_until is None
    assert not Dispute.objects.exists()
    assert not CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.DISPUTE).exists()
    own = Invoice.objects.get(customer=case.customer, amount_due__gt=0).number
    response = post(admin_client, f"{API}/cases/{case.pk}/dispute/",
                    {"invoice_number": own, "reason": "wrong amount"})
    assert response.status_code == 200 and response.json()["disputes"][0][
        "invoice_number"] == own


@pytest.mark.parametrize("action,field,extra", [
    ("note", "text", {}),
    ("call", "text", {"outcome": "reached"}),
    ("pause", "reason", {}),
    ("dispute", "reason", {"invoice_number": "{invoice}"}),
    ("resolve-disputes", "resolution", {}),
    ("write-off", "reason", {}),
])
def test_free_text_has_a_maximum_length(admin_client, case, action, field, extra):
    from dunning.inputs import MAX_NOTE_LENGTH

    number = Invoice.objects.get(customer=case.customer).number
    data = {k: v.replace("{invoice}", number) for k, v in extra.items()}
    response = post(admin_client, f"{API}/cases/{case.pk}/{action}/",
                    {**data, field: "x" * (MAX_NOTE_LENGTH + 1)})
    assert response.status_code == 400
    assert response.json() == {field: [
        f"Ensure this field has no more than {MAX_NOTE_LENGTH} characters."]}
    assert not CaseEvent.objects.filter(case=case).exists()
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN and case.paused_until is None


def test_the_schema_shows_the_free_text_limits(admin_client):
    from dunning.inputs import MAX_NOTE_LENGTH

    schemas = admin_client.get(f"{API}/schema/?format=json").json()["components"]["schemas"]
    for name, field in [("NoteInputRequest", "text"), ("CallInputRequest", "text"),
                        ("PauseInputRequest", "reason"), ("DisputeInputRequest", "reason"),
                        ("ResolveDisputesInputRequest", "resolution"),
                        ("WriteOffInputRequest", "reason")]:
        assert schemas[name]["properties"][field]["maxLength"] == MAX_NOTE_LENGTH, name
    # A decimal travels as a string: the schema says it in words (no "minimum" for text).
    assert "never negative" in schemas["BulkInvoiceRequest"]["properties"]["amount_due"][
        "description"]


def test_assign_note_call_escalate(admin_client, case, collector, boss):
    body = post(admin_client, f"{API}/cases/{case.pk}/assign/", {"collector": collector.pk}).json()
    assert body["assigned_to"] == {"id": collector.pk, "username": "carla"}
    post(admin_client, f"{API}/cases/{case.pk}/note/", {"text": "A note"})
    post(admin_client, f"{API}/cases/{case.pk}/call/", {"outcome": "no-answer"})
    assert post(admin_client, f"{API}/cases/{case.pk}/escalate/").json()["needs_person"] is True
    events = {e.kind: e for e in CaseEvent.objects.filter(case=case)}
    assert events["assigned"].data["username"] == "carla"
    assert events["note"].message == "A note" and events["note"].actor == boss
    assert events["call"].data == {"outcome": "no-answer"}
    assert "escalated" in events


def test_assign_needs_an_active_staff_user(admin_client, case, django_user_model):
    outsider = django_user_model.objects.create_user("outsider")
    response = post(admin_client, f"{API}/cases/{case.pk}/assign/", {"collector": outsider.pk})
    assert response.status_code == 400 and "collector" in response.json()


def test_write_off_closes_for_good_and_fires_the_signal(admin_client, case, run, mailoutbox,
                                                        django_capture_on_commit_callbacks):
    fired = []

    def receiver(sender, **kwargs):
        fired.append(kwargs["case"].pk)

    signals.case_written_off.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = post(admin_client, f"{API}/cases/{case.pk}/write-off/",
                            {"reason": "gone"})
    finally:
        signals.case_written_off.disconnect(receiver)
    assert response.status_code == 200 and response.json()["status"] == "written_off"
    assert fired == [case.pk]
    assert CaseInvoice.objects.filter(case=case).count() == 1
    sent = len(mailoutbox)
    run(30)
    assert len(mailoutbox) == sent  # its invoices are never dunned again
    assert not Case.objects.filter(status=Case.Status.OPEN).exists()


def test_send_now_sends_the_next_step_and_refuses_twice_a_day(admin_client, case, boss,
                                                               mailoutbox):
    response = post(admin_client, f"{API}/cases/{case.pk}/send-now/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["sent"] == [{"step_key": "gentle-reminder", "status": "sent", "failure": ""}]
    assert body["case"]["last_step_key"] == "gentle-reminder"
    assert "gentle-reminder" in mailoutbox[-1].tags
    assert CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.SENT_BY_HAND).actor == boss
    again = post(admin_client, f"{API}/cases/{case.pk}/send-now/")
    assert again.status_code == 409
    assert again.json() == {
        "detail": f"{case} already had a step today; one a day is the most.", "reason": "today"}


def test_the_admin_and_the_api_refuse_alike(admin_client, case):
    """The same refusal through both doors (both call dunning.services)."""
    admin = admin_client.post("/admin/dunning/case/", {
        "action": "resume", "_selected_action": [case.pk]}, follow=True)
    api = post(admin_client, f"{API}/cases/{case.pk}/resume/")
    assert api.json()["detail"] in html.unescape(admin.content.decode())


# -- policies, steps, templates ----------------------------------------------------------------
@pytest.fixture
def editor(django_user_model, fast_hasher):
    """Staff with dunning.edit_policy only."""
    user = django_user_model.objects.create_user("ed", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="edit_policy"))
    client = Client()
    client.force_login(user)
    return client


def test_edit_policy_is_the_one_permission_for_writing(editor):
    response = post(editor, f"{API}/policies/", {
        "key": "soft", "name": "Soft", "minimum_balance": {"eur": "5"}})
    assert response.status_code == 201, response.content
    assert response.json()["minimum_balance"] == {"EUR": "5"}
    policy = Policy.objects.get(key="soft")
    assert post(editor, f"{API}/steps/", {"policy": policy.pk, "key": "first",
                                          "offset_days": 3}).status_code == 201
    assert editor.get(f"{API}/policies/{policy.pk}/").json()["steps"][0]["key"] == "first"
    assert editor.delete(f"{API}/policies/{policy.pk}/").status_code == 204


def test_policy_errors_are_the_models(editor):
    response = post(editor, f"{API}/policies/", {"key": "standard", "name": "Again",
                                                 "minimum_balance": {"EURO": "x"}})
    assert response.status_code == 400
    errors = response.json()
    assert errors["key"] == ["Policy with this Key already exists."]
    assert "EURO" in errors["minimum_balance"][0]
    standard = Policy.objects.get(key="standard")
    response = patch(editor, f"{API}/policies/{standard.pk}/", {"is_active": False})
    assert response.status_code == 400 and "is_active" in response.json()


def test_the_step_sequence_is_checked_as_a_whole(editor):
    policy = Policy.objects.get(key="standard")
    response = post(editor, f"{API}/steps/", {"policy": policy.pk, "key": "late",
                                              "offset_days": 60})
    assert response.json() == {"non_field_errors": [
        "The termination step 'termination' must be the last step."]}
    termination = Step.objects.get(policy=policy, key="termination")
    response = patch(editor, f"{API}/steps/{termination.pk}/", {"offset_days": 2})
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": [
        "The termination step 'termination' must be the last step."]}
    response = post(editor, f"{API}/steps/", {"policy": policy.pk, "key": "initial-notice",
                                              "offset_days": 2})
    assert response.json() == {"non_field_errors": [
        "The key 'initial-notice' is used by two steps."]}
    warning = Step.objects.get(policy=policy, key="suspension-warning")
    assert editor.delete(f"{API}/steps/{warning.pk}/").status_code == 204
    for key in ("formal-notice", "gentle-reminder"):
        assert editor.delete(
            f"{API}/steps/{Step.objects.get(policy=policy, key=key).pk}/").status_code == 204
    initial = Step.objects.get(policy=policy, key="initial-notice")
    response = editor.delete(f"{API}/steps/{initial.pk}/")
    assert response.status_code == 400
    assert "needs at least one warning step" in response.json()["non_field_errors"][0]


def test_a_policy_in_use_cannot_be_deleted(admin_client, case):
    policy = Policy.objects.get(key="standard")
    response = admin_client.delete(f"{API}/policies/{policy.pk}/")
    assert response.status_code == 409
    assert response.json() == {"detail": "The policy 'Standard' is used by 1 case and cannot "
                                         "be deleted; deactivate it instead."}


def test_template_validation_gives_the_admins_errors(admin_client):
    policy = Policy.objects.get(key="standard")
    bad = {"policy": policy.pk, "step_key": "initial-notice", "channel": "email",
           "language": "fr", "subject": "Hi {% if customer %}",
           "text_body": "{% load static %}", "html_body": ""}
    admin = admin_client.post("/admin/dunning/messagetemplate/add/", bad)
    admin_errors = admin.context["adminform"].form.errors
    response = post(admin_client, f"{API}/templates/", bad)
    assert response.status_code == 400
    errors = response.json()
    assert errors["subject"] == list(admin_errors["subject"])
    assert errors["text_body"] == list(admin_errors["text_body"])
    duplicate = {**bad, "language": "en", "subject": "Hi", "text_body": "ok"}
    admin_errors = admin_client.post("/admin/dunning/messagetemplate/add/",
                                     duplicate).context["adminform"].form.errors
    response = post(admin_client, f"{API}/templates/", duplicate)
    assert response.json()["non_field_errors"] == list(admin_errors["__all__"])


# -- reports ----------------------------------------------------------------------------------
def test_reports_are_the_dashboards_figures_as_json(admin_client, run, overdue_customer):
    from dunning.queries import reports

    overdue_customer(name="Ada", amount="120.50")
    run(1)
    body = admin_client.get(f"{API}/reports/?as_of={day(40).isoformat()}").json()
    figures = reports.dashboard(day(40))
    assert body["today"] == day(40).isoformat()
    assert body["open"]["count"] == figures["open"]["count"] == 1
    assert [(a["currency"], Decimal(a["amount"]), a["invoices"])
            for a in body["open"]["amounts"]] == [("EUR", Decimal("120.50"), 1)]
    assert [b["bucket"] for b in body["aging"]] == ["1-30", "31-60", "61-90", "90+"]
    assert [(c["currency"], Decimal(c["amount"]), c["count"])
            for c in body["aging"][1]["currencies"]] == [("EUR", Decimal("120.50"), 1)]
    assert [r["days"] for r in body["recovery"]] == [30, 90]
    assert body["steps"] == [{"step_key": "initial-notice", "sent": 1, "paid": 0, "rate": "0.0000"}]
    assert admin_client.get(f"{API}/reports/aging/?as_of={day(40)}").json() == body["aging"]
    assert admin_client.get(f"{API}/reports/days-to-collect/").json() == {"cases": 0,
                                                                           "days": None}
    bad = admin_client.get(f"{API}/reports/?as_of=yesterday")
    assert bad.status_code == 400 and "as_of" in bad.json()


# -- invoices in --------------------------------------------------------------------------------
def bulk(client, rows):
    return post(client, f"{API}/invoices/bulk/", {"invoices": rows})


def invoice_row(number, email="ada@example.com", **values):
    return {"number": number, "customer": {"email": email, "name": "Ada"},
            "amount_due": "100.00", "currency": "eur", "due_date": "2026-03-02", **values}


def test_bulk_upsert_is_idempotent_by_number(admin_client):
    rows = [invoice_row("A-1"), invoice_row("A-2", amount_due="5.50"),
            invoice_row("B-1", email="bob@example.com")]
    first = bulk(admin_client, rows)
    assert first.status_code == 200, first.content
    body = first.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (3, 0, 0)
    assert body["customers_created"] == 2
    assert [r["index"] for r in body["rows"]] == [0, 1, 2]
    assert Invoice.objects.get(number="A-2").currency == "EUR"
    again = bulk(admin_client, rows).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert Invoice.objects.count() == 3 and Customer.objects.count() == 2
    changed = bulk(admin_client, [invoice_row("A-1", amount_due="0.00")]).json()
    assert changed["updated"] == 1 and changed["rows"][0]["result"] == "updated"
    assert Invoice.objects.get(number="A-1").amount_due == 0


def test_bulk_upsert_takes_the_history_dates_and_keeps_them_when_not_given(admin_client):
    row = invoice_row("H-1", amount_due="0.00", paid_on="2026-03-01")
    row["customer"]["customer_since"] = "2024-05-01"
    assert bulk(admin_client, [row]).status_code == 200
    invoice = Invoice.objects.get(number="H-1")
    assert invoice.paid_on == datetime.date(2026, 3, 1)
    assert invoice.customer.customer_since == datetime.date(2024, 5, 1)
    # A later row without the dates leaves them as they are.
    again = bulk(admin_client, [invoice_row("H-1", amount_due="0.00")]).json()
    assert again["unchanged"] == 1
    bulk(admin_client, [invoice_row("H-1", amount_due="1.00")])
    invoice.refresh_from_db()
    assert invoice.paid_on == datetime.date(2026, 3, 1) and invoice.amount_due == 1
    assert invoice.customer.customer_since == datetime.date(2024, 5, 1)


def test_a_bad_row_is_reported_by_index_and_nothing_is_written(admin_client):
    rows = [invoice_row("OK-1"), invoice_row("BAD-1", amount_due="lots"),
            invoice_row("OK-2"), invoice_row("OK-1"),
            invoice_row("NEW-1", email="nobody@example.com", currency="EURO")]
    rows[4]["customer"].pop("name")
    response = bulk(admin_client, rows)
    assert response.status_code == 400
    errors = {r["index"]: r["errors"] for r in response.json()["rows"]}
    assert set(errors) == {1, 3, 4}
    assert "amount_due" in errors[1]
    assert errors[3] == {"number": ["The number OK-1 is in row 0 already."]}
    assert "currency" in errors[4]
    assert not Invoice.objects.exists() and not Customer.objects.exists()
    response = bulk(admin_client, [invoice_row("NEW-1", email="nobody@example.com")
                                   | {"customer": {"email": "nobody@example.com"}}])
    assert response.json() == {"rows": [{"index": 0, "errors": {"customer": {"name": [
        "There is no customer with the email address 'nobody@example.com'; give a name to "
        "create one."]}}}]}
    assert not Invoice.objects.exists()


@pytest.mark.parametrize("values,field,message", [
    ({"amount_due": "-0.01"}, "amount_due",
     "The amount due cannot be negative (it is the open balance: 0 once paid)."),
    ({"currency": "QQQ"}, "currency",
     "'QQQ' is not the ISO 4217 code of a currency in use (e.g. EUR, USD)."),
    ({"currency": "XXX"}, "currency",
     "'XXX' is not the ISO 4217 code of a currency in use (e.g. EUR, USD)."),
    ({"currency": "XTS"}, "currency",
     "'XTS' is not the ISO 4217 code of a currency in use (e.g. EUR, USD)."),
    ({"currency": "DEM"}, "currency",
     "'DEM' is not the ISO 4217 code of a currency in use (e.g. EUR, USD)."),
])
def test_bulk_refuses_a_negative_balance_and_codes_that_are_no_currency(
        admin_client, values, field, message):
    response = bulk(admin_client, [invoice_row("OK-1"), invoice_row("BAD-1", **values)])
    assert response.status_code == 400
    assert response.json() == {"rows": [{"index": 1, "errors": {field: [message]}}]}
    assert not Invoice.objects.exists()


def test_bulk_takes_currencies_in_use_in_any_case(admin_client):
    rows = [invoice_row("C-1", currency="chf"), invoice_row("C-2", currency="XOF"),
            invoice_row("C-3", currency="JPY", amount_due="0")]
    assert bulk(admin_client, rows).status_code == 200
    assert sorted(Invoice.objects.values_list("currency", flat=True)) == ["CHF", "JPY", "XOF"]


def test_bulk_never_moves_an_invoice_to_another_customer(admin_client):
    assert bulk(admin_client, [invoice_row("M-1")]).status_code == 200
    ada = Invoice.objects.get(number="M-1").customer
    response = bulk(admin_client, [
        invoice_row("M-2", email="bob@example.com"),
        invoice_row("M-1", email="bob@example.com", amount_due="1.00"),
    ])
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Some invoices belong to other customers; nothing was written.",
        "rows": [{"index": 1, "number": "M-1", "errors": {"customer": {"email": [
            "Invoice M-1 belongs to another customer (ada@example.com), not to "
            "'bob@example.com'; an invoice never moves to another customer. Check the "
            "number, or correct the invoice in the admin."]}}}],
    }
    invoice = Invoice.objects.get(number="M-1")
    assert invoice.customer == ada and invoice.amount_due == Decimal("100.00")
    assert not Invoice.objects.filter(number="M-2").exists()
    assert not Customer.objects.filter(email="bob@example.com").exists()


def test_bulk_input_shape_and_size(admin_client):
    assert bulk(admin_client, []).json() == {"invoices": ["The list of invoices is empty."]}
    assert post(admin_client, f"{API}/invoices/bulk/", {"rows": []}).status_code == 400
    with override_dunning_settings(API_BULK_MAX_ROWS=2):
        response = bulk(admin_client, [invoice_row(f"N-{i}") for i in range(3)])
    assert response.json() == {"invoices": ["At most 2 invoices per request."]}


def test_bulk_invoices_are_dunned(admin_client, run, mailoutbox):
    bulk(admin_client, [invoice_row("EXT-9", email="ext@example.com")])
    run(1)
    assert len(mailoutbox) == 1 and "EXT-9" in mailoutbox[0].body


# -- payment events ----------------------------------------------------------------------------
def event(client, **data):
    return post(client, f"{API}/payment-events/", data)


def test_invoice_paid_resolves_the_case_at_once(admin_client, case, mailoutbox):
    number = Invoice.objects.get(customer=case.customer).number
    response = event(admin_client, type="invoice.paid", invoice=number, id="evt_1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["run"]["resolved"] == 1 and body["duplicate"] is False
    assert body["case"] == {"id": case.pk, "status": "resolved",
                            "last_step_key": "initial-notice"}
    assert Invoice.objects.get(number=number).amount_due == 0
    assert "payment-received" in mailoutbox[-1].tags
    sent = len(mailoutbox)
    again = event(admin_client, type="invoice.paid", invoice=number, id="evt_1").json()
    assert again["duplicate"] is True and again["run"] == body["run"]
    assert len(mailoutbox) == sent


def test_a_partial_payment_keeps_the_case_open(admin_client, case, mailoutbox):
    number = Invoice.objects.get(customer=case.customer).number
    sent = len(mailoutbox)
    body = event(admin_client, type="invoice.paid", invoice=number, amount_due="40.00").json()
    assert body["case"]["status"] == "open" and body["run"]["resolved"] == 0
    assert Invoice.objects.get(number=number).amount_due == 40
    assert len(mailoutbox) == sent


def test_payment_failed_opens_the_case_and_sends_the_due_step_now(admin_client, mailoutbox):
    customer = create_customer(name="Ada", email="ada@example.com")
    invoice = create_invoice(customer, amount_due="70.00",
                             due_date=TODAY() - datetime.timedelta(days=2))
    other = create_customer(name="Bob")
    create_invoice(other, due_date=TODAY() - datetime.timedelta(days=2))
    body = event(admin_client, type="payment.failed", invoice=invoice.number).json()
    assert body["run"]["opened"] == 1
    assert body["run"]["executed"] == {"initial-notice": 1}
    assert body["case"]["status"] == "open"
    assert [m.to for m in mailoutbox] == [["ada@example.com"]]  # only this customer
    assert not Case.objects.filter(customer=other).exists()
    assert Run.objects.get().host == "payment-event"


def test_payment_events_input(admin_client, case):
    assert event(admin_client, type="invoice.paid", invoice="NOPE").status_code == 404
    response = event(admin_client, type="refund", invoice="1")
    assert response.status_code == 400 and "type" in response.json()
    number = Invoice.objects.get(customer=case.customer).number
    response = event(admin_client, type="invoice.paid", invoice=number, amount_due="-1")
    assert response.status_code == 400 and "amount_due" in response.json()


# -- throttling, errors, docs --------------------------------------------------------------------
def test_writes_are_throttled_and_reads_are_not(admin_client, case, settings):
    with override_dunning_settings(API_THROTTLE_RATES={"dunning_write": "2/minute"}):
        codes = [post(admin_client, f"{API}/cases/{case.pk}/note/", {"text": "x"}).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 429]
        assert "detail" in post(admin_client, f"{API}/cases/{case.pk}/note/",
                                {"text": "x"}).json()
        assert all(admin_client.get(f"{API}/cases/").status_code == 200 for _ in range(4))
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"dunning_ingest": "1/minute"}}
    bulk(admin_client, [invoice_row("T-1")])
    assert bulk(admin_client, [invoice_row("T-1")]).status_code == 429


def test_unknown_methods_and_routes_answer_in_drf_shape(admin_client, case):
    response = admin_client.delete(f"{API}/cases/{case.pk}/")
    assert response.status_code == 405 and "detail" in response.json()
    assert admin_client.get(f"{API}/cases/{case.pk}/pause/").status_code == 405


def test_the_docs_page_loads_nothing_from_the_internet(admin_client):
    page = admin_client.get(f"{API}/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "/dunning/api/v1/schema/" in page


def test_the_schema_lists_every_endpoint(admin_client):
    schema = admin_client.get(f"{API}/schema/?format=json").json()
    paths = set(schema["paths"])
    assert {f"/dunning/api/v1{p}" for p in (
        "/cases/", "/cases/{id}/", "/cases/{id}/write-off/", "/cases/{id}/send-now/",
        "/policies/", "/steps/", "/templates/", "/invoices/bulk/", "/payment-events/",
        "/reports/", "/reports/aging/")} <= paths
    assert all(p.startswith("/dunning/api/v1/") for p in paths)
    assert "tokenAuth" in schema["components"]["securitySchemes"]


# -- input the database or the date arithmetic cannot take (issue 14) -----------------------
@pytest.mark.parametrize("term", ["³", "①", "٣"])
def test_search_with_digits_that_are_no_case_number(admin_client, listed, term):
    assert ids(admin_client.get(f"{API}/cases/", {"search": term})) == []


def test_search_drops_nul_characters(admin_client, listed):
    # PostgreSQL refuses NUL in text (run with DUNNING_TEST_DB=postgres).
    response = admin_client.get(f"{API}/cases/?search=dollar%00")
    assert ids(response) == [listed["dollar"].pk]


@pytest.mark.parametrize("url,param", [
    ("/steps/?policy=9223372036854775808", "policy"),
    ("/steps/?policy=%C2%B3", "policy"),
    ("/templates/?policy=9223372036854775808", "policy"),
    ("/templates/?policy=%D9%A3", "policy"),
    ("/cases/?assigned_to=9223372036854775808", "assigned_to"),
    ("/cases/?assigned_to=%C2%B3", "assigned_to"),
])
def test_integer_filters_beyond_64_bits_or_not_ascii_are_a_400(admin_client, db, url, param):
    response = admin_client.get(API + url)
    assert response.status_code == 400, response.content
    assert "9223372036854775807" in response.json()[param][0]


def test_an_integer_filter_takes_up_to_the_largest_64_bit_id(admin_client, db):
    response = admin_client.get(f"{API}/steps/?policy=9223372036854775807")
    assert response.status_code == 200
    assert response.json()["results"] == []
    assert admin_client.get(f"{API}/steps/?policy=9223372036854775808").status_code == 400


@pytest.mark.parametrize("path", ["/reports/", "/reports/aging/", "/reports/recovery/"])
@pytest.mark.parametrize("as_of", ["0001-01-01", "1899-12-31", "9999-12-31"])
def test_reports_refuse_dates_their_arithmetic_cannot_take(admin_client, db, path, as_of):
    response = admin_client.get(f"{API}{path}?as_of={as_of}")
    assert response.status_code == 400
    assert response.json() == {"as_of": ["Enter a date between 1900-01-01 and 9000-12-31."]}


def test_reports_take_dates_up_to_the_ends_of_the_allowed_range(admin_client, db):
    for as_of in ("1900-01-01", "9000-12-31"):
        assert admin_client.get(f"{API}/reports/?as_of={as_of}").status_code == 200
    for as_of in ("1899-12-31", "9001-01-01"):
        assert admin_client.get(f"{API}/reports/?as_of={as_of}").status_code == 400


def test_the_variants_report_refuses_a_since_out_of_range(admin_client, db):
    response = admin_client.get(f"{API}/reports/variants/?since=0001-01-01")
    assert response.status_code == 400
    assert list(response.json()) == ["since"]


@pytest.mark.parametrize("path", ["/nothing/", "/cases/1/no-such-action/", "/reports/x/y/"])
def test_a_path_under_the_api_that_matches_nothing_is_a_json_404(admin_client, db, path):
    response = admin_client.get(API + path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_path_without_its_slash_is_redirected_then_a_json_404(admin_client, db):
    response = admin_client.get(f"{API}/cases")
    assert response.status_code == 301
    assert response["Location"].endswith("/cases/")
    response = admin_client.get(f"{API}/nothing", follow=True)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_an_unexpected_error_is_a_json_500_and_still_reported(admin_client, db, monkeypatch):
    from django.core.signals import got_request_exception

    from dunning.queries import reports

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(reports, "average_days_to_collect", broken)
    reported = []

    def receiver(sender, request, **kwargs):
        reported.append(request.path)

    got_request_exception.connect(receiver)
    admin_client.raise_request_exception = False
    try:
        response = admin_client.get(f"{API}/reports/days-to-collect/")
    finally:
        got_request_exception.disconnect(receiver)
    assert response.status_code == 500
    assert response.json() == {"detail": "A server error occurred."}
    assert reported == [f"{API}/reports/days-to-collect/"]


@pytest.mark.parametrize("url,param", [
    ("/cases/?policy=standard%00", "policy"),
    ("/cases/?last_step=initial%00", "last_step"),
    ("/cases/?currency=EUR%00", "currency"),
    ("/templates/?step_key=initial%00", "step_key"),
    ("/templates/?language=de%00", "language"),
    ("/policies/?key=standard%00", "key"),
])
def test_a_nul_character_in_a_text_filter_is_a_400(admin_client, db, url, param):
    # PostgreSQL refuses NUL in text (run with DUNNING_TEST_DB=postgres).
    response = admin_client.get(API + url)
    assert response.status_code == 400
    assert response.json() == {param: ["Null characters are not allowed."]}
