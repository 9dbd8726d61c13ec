"""A/B variants of a step's message (dunning.variants): the weighted, deterministic split;
the run sending and recording one variant per case and step; a drained message keeping
its variant; the plan showing it; the report (counts, Wilson intervals, z-test) in one
query; the dashboard table; the admin; import and export; the API."""

import datetime
import hashlib
import json
import math
from collections import Counter
from io import StringIO

import pytest
import tablib
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from import_export.formats.base_formats import CSV, JSON

from dunning.admin.resources import MessageTemplateResource, PolicyCSV, PolicyResource
from dunning.engine.outbox import drain
from dunning.engine.plan import build_plan
from dunning.messages.variants import (
    StepTemplates,
    assignment_point,
    two_proportion_p_value,
    variant_report,
    wilson_interval,
)
from dunning.models import Case, CaseStep, MessageTemplate, Policy
from dunning.queries import reports
from dunning.testing import create_customer

from .conftest import DAY0, day

STEP = "initial-notice"
DASHBOARD_URL = "/admin/dunning/case/dashboard/"
API = "/dunning/api/v1"


@pytest.fixture
def standard(db):
    return Policy.objects.get(key="standard")


def add_variant(policy, variant, *, step_key=STEP, weight=1, languages=("en", "de")):
    """Templates of ``variant`` for the step, their subject starting with [variant]."""
    return [
        MessageTemplate.objects.create(
            policy=policy, step_key=step_key, channel="email", language=language,
            variant=variant, weight=weight, subject=f"[{variant}] {language} reminder",
            text_body=f"Variant {variant}: dear {{{{ customer.name }}}}, please pay.",
            html_body=f"<p>Variant {variant}</p>",
        )
        for language in languages
    ]


def drawn(case_pk, step_key, weights):
    """The variant the documented rule gives: the point of the case's step in the
    cumulative weights of the variants in name order (control "" first)."""
    point, total, cumulative = assignment_point(case_pk, step_key), sum(weights.values()), 0
    for name in sorted(weights):
        cumulative += weights[name]
        if point * total < cumulative:
            return name
    raise AssertionError("the point is below 1")


def variant_of_message(message):
    return message.subject[1:].split("]")[0] if message.subject.startswith("[") else ""


def arms(weights, languages=("en",)):
    """A StepTemplates of unsaved templates: {variant: weight}."""
    return StepTemplates(
        MessageTemplate(step_key=STEP, language=language, variant=variant, weight=weight)
        for variant, weight in weights.items() for language in languages
    )


# -- the split ---------------------------------------------------------------------------
@pytest.mark.parametrize("weights", [{"": 1, "b": 1}, {"": 3, "b": 1}, {"": 1, "b": 1, "c": 2}])
def test_the_split_follows_the_weights_and_is_deterministic(weights):
    step_templates = arms(weights)
    pairs = [(pk, key) for pk in range(1, 1001) for key in (STEP, "gentle-reminder")]
    chosen = [step_templates.choose("en", case_pk=pk, step_key=key)[0] for pk, key in pairs]

    shares = Counter(chosen)
    total = sum(weights.values())
    for variant, weight in weights.items():
        # 2,000 draws: the standard error of a share is at most 0.011; 0.035 is > 3 of them.
        assert abs(shares[variant] / len(pairs) - weight / total) < 0.035, shares
    # The same case and step always get the same variant ...
    again = [step_templates.choose("en", case_pk=pk, step_key=key)[0] for pk, key in pairs]
    assert again == chosen
    # ... the one the documented rule gives, and a case's steps are drawn independently.
    assert chosen == [drawn(pk, key, weights) for pk, key in pairs]
    by_case = {pk: set() for pk in range(1, 1001)}
    for (pk, _key), variant in zip(pairs, chosen, strict=True):
        by_case[pk].add(variant)
    assert any(len(variants) > 1 for variants in by_case.values())


def test_the_assignment_point_is_stable_across_processes_and_releases():
    # BLAKE2b of "<case pk>:<step key>", not Python's salted hash(): a release that
    # changed it would move running A/B tests' customers to other variants.
    assert assignment_point(42, STEP) == int.from_bytes(
        hashlib.blake2b(b"42:initial-notice", digest_size=8).digest(), "big") / 2**64
    assert 0 <= assignment_point(42, STEP) < 1
    assert assignment_point(42, STEP) != assignment_point(43, STEP)
    assert assignment_point(42, STEP) != assignment_point(42, "gentle-reminder")


def test_a_variant_without_a_language_the_customer_reads_is_not_drawn_for_them():
    step_templates = StepTemplates([
        MessageTemplate(step_key=STEP, language="en", variant="", weight=1),
        MessageTemplate(step_key=STEP, language="de", variant="", weight=1),
        MessageTemplate(step_key=STEP, language="fr", variant="b", weight=1),
    ])
    english = {step_templates.choose("en", case_pk=pk, step_key=STEP)[0] for pk in range(200)}
    german = {step_templates.choose("de-AT", case_pk=pk, step_key=STEP)[0]
              for pk in range(200)}
    french = Counter(step_templates.choose("fr", case_pk=pk, step_key=STEP)[0]
                     for pk in range(200))
    # "b" has neither German, nor the site's language (en), nor English.
    assert english == german == {""}
    assert set(french) == {"", "b"}  # the control reaches them in the site's language
    variant, template = step_templates.choose("fr", case_pk=7, step_key=STEP, variant="b")
    assert (variant, template.language) == ("b", "fr")  # a recorded variant is kept


def test_a_step_whose_only_variant_lacks_every_language_falls_back_like_today():
    step_templates = StepTemplates([MessageTemplate(step_key=STEP, language="fr",
                                                    variant="b", weight=1)])
    variant, template = step_templates.choose("de", case_pk=1, step_key=STEP)
    assert (variant, template.language) == ("b", "fr")  # the only text there is


# -- the run -----------------------------------------------------------------------------
def test_a_run_with_two_variants_sends_each_customer_one_variant_and_records_it(
        standard, overdue_customer, run, mailoutbox):
    add_variant(standard, "b", weight=3)
    customers = [overdue_customer(name=f"C{n}", email=f"c{n}@example.com") for n in range(40)]
    german = overdue_customer(name="Greta", email="greta@example.com", language="de")

    run(1)

    assert len(mailoutbox) == 41
    assert len({m.to[0] for m in mailoutbox}) == 41  # one message per customer
    control_subject = MessageTemplate.objects.get(
        policy=standard, step_key=STEP, language="en", variant="", channel="email").subject.split("{")[0]
    seen = Counter()
    for message in mailoutbox:
        step = CaseStep.objects.get(case_id=int(message.metadata["dunning_case"]), step_key=STEP)
        expected = drawn(step.case_id, STEP, {"": 1, "b": 3})
        assert step.variant == expected == variant_of_message(message)
        if expected == "b":
            assert "Variant b: dear" in message.body
        elif message.to != ["greta@example.com"]:  # Greta's (German) is checked below
            assert message.subject.startswith(control_subject)
        seen[expected] += 1
    assert set(seen) == {"", "b"}
    greta = CaseStep.objects.get(case__customer=german)
    message = next(m for m in mailoutbox if m.to == ["greta@example.com"])
    assert message.subject.startswith("[b] de" if greta.variant == "b" else "Zahlungs")
    assert len(customers) == 40


def test_a_policy_without_variants_is_unchanged(standard, overdue_customer, run, mailoutbox):
    overdue_customer(name="Ada", email="ada@example.com")
    overdue_customer(name="Greta", email="greta@example.com", language="de")

    run(1)

    assert list(CaseStep.objects.values_list("variant", flat=True)) == ["", ""]
    subjects = {m.to[0]: m.subject for m in mailoutbox}
    assert subjects["ada@example.com"].startswith("Payment reminder")
    assert not subjects["greta@example.com"].startswith("Payment reminder")  # German
    # A variant added later does not touch the steps already recorded.
    add_variant(standard, "b")
    assert list(CaseStep.objects.values_list("variant", flat=True)) == ["", ""]


def test_a_drained_message_is_sent_with_the_variant_its_step_recorded(
        standard, overdue_customer, run, mailoutbox):
    control = MessageTemplate.objects.filter(policy=standard, step_key=STEP, variant="")
    variant_b = add_variant(standard, "b")
    overdue_customer(name="Ada", email="ada@example.com")
    run(1)
    step = CaseStep.objects.get()
    recorded = step.variant
    (first,) = mailoutbox
    assert variant_of_message(first) == recorded

    # The weights change so much that the case would now draw the other variant ...
    point = assignment_point(step.case_id, STEP)
    if recorded == "":
        heavy = math.floor((1 - point) / point) + 1  # "b" gets more than 1 - point
        MessageTemplate.objects.filter(pk__in=[t.pk for t in variant_b]).update(weight=heavy)
        weights = {"": 1, "b": heavy}
    else:
        heavy = math.floor(point / (1 - point)) + 1  # the control gets more than point
        control.update(weight=heavy)
        weights = {"": heavy, "b": 1}
    assert heavy <= 32767 and drawn(step.case_id, STEP, weights) != recorded
    # ... and the message is queued again (a due retry, "send again" in the admin).
    CaseStep.objects.filter(pk=step.pk).update(
        status=CaseStep.Status.QUEUED, next_attempt_at=timezone.now() - datetime.timedelta(
            minutes=1))
    mailoutbox.clear()

    assert drain().sent == 1

    (again,) = mailoutbox
    assert variant_of_message(again) == recorded
    assert (again.subject, again.body) == (first.subject, first.body)
    assert CaseStep.objects.get().variant == recorded


def test_a_later_step_is_drawn_for_itself_and_the_thank_you_has_no_variant(
        standard, overdue_customer, run, mailoutbox):
    add_variant(standard, "b", step_key="gentle-reminder")
    customer = overdue_customer(name="Ada", email="ada@example.com")
    run(1)
    run(4)
    case = Case.objects.get(customer=customer)
    assert case.steps.get(step_key=STEP).variant == ""  # no variants on this step
    gentle = case.steps.get(step_key="gentle-reminder")
    assert gentle.variant == drawn(case.pk, "gentle-reminder", {"": 1, "b": 1})
    assert variant_of_message(mailoutbox[-1]) == gentle.variant


# -- the plan ----------------------------------------------------------------------------
def test_the_plan_shows_the_variant(standard, overdue_customer, run, admin_client):
    add_variant(standard, "b", step_key="gentle-reminder")
    add_variant(standard, "b")
    ada = overdue_customer(name="Ada", email="ada@example.com")
    run(1)
    case = Case.objects.get(customer=ada)
    overdue_customer(name="Bob", email="bob@example.com", due=day(3))  # opened on day 4

    plan = build_plan(day(4))

    items = {item.label: item for item in plan.items}
    expected = drawn(case.pk, "gentle-reminder", {"": 1, "b": 1})
    assert items["Ada"].variant == expected
    assert items["Ada"].subject.startswith("[b]") == (expected == "b")
    assert items["Bob"].variant is None  # no case yet: drawn once it has its pk

    out = StringIO()
    call_command("dunning", "plan", "--as-of", day(4).isoformat(), stdout=out, no_color=True)
    blocks = {block.split("\n")[0]: block for block in out.getvalue().split("\n\n")[1:]}
    assert "variant:   ? (drawn when the case is opened)" in blocks["customer:  Bob"]
    assert ("variant:   b" in blocks["customer:  Ada"]) == (expected == "b")
    assert "variant" not in blocks["customer:  Ada"] or expected == "b"

    page = admin_client.get(reverse("admin:dunning_case_plan"), {"as_of": day(4).isoformat()})
    content = page.content.decode()
    assert "variant drawn when the case is opened" in content
    assert ("variant b" in content) == (expected == "b")


# -- the report --------------------------------------------------------------------------
def make_step(policy, step_key, executed_on, *, variant="", status="sent", closed_after=None,
              case_status=Case.Status.RESOLVED):
    """A sent step of a case of its own; the case closed ``closed_after`` days after the
    step (None: still open)."""
    closed = closed_after is not None
    case = Case.objects.create(
        customer=create_customer(), policy=policy,
        status=case_status if closed else Case.Status.OPEN,
        opened_on=executed_on, opened_at=timezone.now(),
        closed_on=executed_on + datetime.timedelta(days=closed_after) if closed else None,
    )
    return CaseStep.objects.create(
        case=case, step_key=step_key, executed_on=executed_on, created_at=timezone.now(),
        status=status, variant=variant,
    )


@pytest.fixture
def ab_history(standard):
    """Initial notices of an A/B test sent on DAY0:

    - control: 20 sent, 5 recovered (one of them on the 14th day, the last that counts);
      of the 15 others one was paid on the 15th day, one terminated on the 3rd, 13 open;
    - variant b: 20 sent, 12 recovered (resolved 2 days after); 8 open;
    - not counted: a failed b step, a b step before ``since``, the thank-you messages,
      and gentle reminders without variants.
    """
    for n in range(5):
        make_step(standard, STEP, DAY0, closed_after=14 if n == 0 else 1)
    make_step(standard, STEP, DAY0, closed_after=15)
    make_step(standard, STEP, DAY0, closed_after=3, case_status=Case.Status.TERMINATED)
    for _ in range(13):
        make_step(standard, STEP, DAY0)
    for n in range(20):
        make_step(standard, STEP, DAY0, variant="b", closed_after=2 if n < 12 else None)
    make_step(standard, STEP, DAY0, variant="b", status="failed", closed_after=2)
    make_step(standard, STEP, DAY0 - datetime.timedelta(days=1), variant="b", closed_after=2)
    make_step(standard, "payment-received", DAY0, variant="b", closed_after=0)
    for _ in range(3):
        make_step(standard, "gentle-reminder", DAY0, closed_after=1)
    return standard


def test_the_report_counts_and_intervals_match_the_hand_computed_values(ab_history):
    rows = variant_report(since=DAY0)

    assert [(r["policy"], r["step_key"], r["variant"], r["control"], r["sent"],
             r["recovered"]) for r in rows] == [
        ("standard", STEP, "", True, 20, 5),
        ("standard", STEP, "b", False, 20, 12),
    ]
    control, b = rows
    # Wilson, z = 1.959964, z² = 3.841459:
    # control, p = 5/20 = 0.25, n = 20:
    #   1 + z²/n = 1.192073;  centre = (0.25 + 3.841459/40) / 1.192073 = 0.290281
    #   half = 1.959964 / 1.192073 * sqrt(0.25 * 0.75 / 20 + 3.841459 / 1600)
    #        = 1.644164 * sqrt(0.009375 + 0.002401) = 1.644164 * 0.108517 = 0.178420
    #   -> [0.111862, 0.468701]
    # b, p = 12/20 = 0.6:  centre = (0.6 + 0.096037) / 1.192073 = 0.583887
    #   half = 1.644164 * sqrt(0.6 * 0.4 / 20 + 0.002401) = 1.644164 * 0.120004 = 0.197306
    #   -> [0.386582, 0.781193]
    assert control["rate"] == 0.25 and b["rate"] == 0.6
    assert (round(control["low"], 4), round(control["high"], 4)) == (0.1119, 0.4687)
    assert (round(b["low"], 4), round(b["high"], 4)) == (0.3866, 0.7812)
    # z-test: pooled p = 17/40 = 0.425; se = sqrt(0.425 * 0.575 * (1/20 + 1/20))
    #   = sqrt(0.0244375) = 0.156325; z = (0.6 - 0.25) / 0.156325 = 2.238926
    #   p-value = erfc(2.238926 / sqrt(2)) = 0.025161
    assert control["p_value"] is None
    assert round(b["p_value"], 4) == 0.0252

    # Without ``since`` the b step of the day before counts too (recovered: 13 of 21).
    assert [(r["sent"], r["recovered"]) for r in variant_report()] == [(20, 5), (21, 13)]
    # A longer window also counts the control's payment on the 15th day.
    assert variant_report(since=DAY0, recovery_days=15)[0]["recovered"] == 6


def test_the_statistics_against_textbook_values():
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(0, 10)  # not empty at 0 successes, unlike the Wald interval
    assert round(low, 12) == 0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and round(high, 12) == 1
    assert two_proportion_p_value(5, 10, 5, 10) == 1.0
    assert two_proportion_p_value(0, 10, 0, 12) == 1.0  # both 0 %: no difference
    assert two_proportion_p_value(1, 10, 0, 0) is None
    # 1.959964 standard errors apart is p = 0.05.
    assert abs(math.erfc(1.959964 / math.sqrt(2)) - 0.05) < 1e-6


def test_the_report_runs_one_query_whatever_the_history(ab_history, django_assert_num_queries):
    with django_assert_num_queries(1):
        small = variant_report()
    for n in range(30):
        make_step(ab_history, "formal-notice", DAY0, variant="c" if n % 2 else "")
        make_step(ab_history, STEP, DAY0, variant="c")
    with django_assert_num_queries(1):
        large = variant_report()
    assert len(small) == 2 and len(large) == 5
    assert [r["variant"] for r in large if r["step_key"] == "formal-notice"] == ["", "c"]


def test_a_step_tested_without_a_control_compares_with_its_first_variant(standard):
    for n in range(4):
        make_step(standard, STEP, DAY0, variant="x", closed_after=1 if n else None)
        make_step(standard, STEP, DAY0, variant="y")
    rows = variant_report()
    assert [(r["variant"], r["control"], r["p_value"] is None) for r in rows] == [
        ("x", True, True), ("y", False, False)]


# -- the dashboard and the API ------------------------------------------------------------
def test_the_dashboard_shows_the_ab_table_only_when_there_are_variants(
        standard, admin_client, django_assert_num_queries):
    make_step(standard, STEP, DAY0, closed_after=1)
    as_of = DAY0 + datetime.timedelta(days=14)
    page = admin_client.get(DASHBOARD_URL, {"as_of": as_of.isoformat()}).content.decode()
    assert "A/B variants" not in page
    assert reports.dashboard(as_of)["variants"] is None

    make_step(standard, STEP, DAY0, variant="b")
    make_step(standard, STEP, DAY0 + datetime.timedelta(days=1), variant="b",
              closed_after=1)  # not 14 days old on as_of: not in the table yet
    with django_assert_num_queries(7):  # the six of the dashboard and the report
        figures = reports.dashboard(as_of)
    assert [(r["variant"], r["sent"], r["recovered"]) for r in figures["variants"]] == [
        ("", 1, 1), ("b", 1, 0)]

    page = admin_client.get(DASHBOARD_URL, {"as_of": as_of.isoformat()}).content.decode()
    assert "A/B variants" in page
    table = page.split('id="dunning-variants"')[1].split("</table>")[0]
    assert "control (A)" in table and "<td>b</td>" in table
    assert "100.0 %" in table and "0.0 %" in table
    # 1 of 1: Wilson [0.2065, 1]; 0 of 1: [0, 0.7935]; z-test p = erfc(1.414214/sqrt 2)
    assert "20.7 – 100.0 %" in table and "0.0 – 79.3 %" in table
    assert "0.157" in table
    assert f"Messages sent up to {DAY0.isoformat()}" in page  # 14 days before as_of

    early = admin_client.get(DASHBOARD_URL, {"as_of": DAY0.isoformat()}).content.decode()
    assert "No message of an A/B variant has had its 14 days yet." in early


def test_the_api_reports_the_variants(ab_history, admin_client):
    response = admin_client.get(f"{API}/reports/variants/", {"since": DAY0.isoformat()})
    assert response.status_code == 200
    body = response.json()
    assert [(r["variant"], r["sent"], r["recovered"], r["control"]) for r in body] == [
        ("", 20, 5, True), ("b", 20, 12, False)]
    assert round(body[1]["p_value"], 4) == 0.0252
    assert admin_client.get(f"{API}/reports/variants/", {"since": "soon"}).status_code == 400
    assert len(admin_client.get(f"{API}/reports/variants/").json()) == 2

    template = MessageTemplate.objects.filter(variant="").first()
    detail = admin_client.get(f"{API}/templates/{template.pk}/").json()
    assert (detail["variant"], detail["weight"]) == ("", 1)


# -- the admin -----------------------------------------------------------------------------
def template_form(policy, **fields):
    return {"policy": policy.pk, "step_key": STEP, "channel": "email", "language": "en",
            "variant": "b", "weight": "2", "subject": "Hi {{ customer.name }}",
            "text_body": "Please pay.", "html_body": "", **fields}


def test_the_admin_lists_filters_and_validates_variants(standard, admin_client):
    add_url = "/admin/dunning/messagetemplate/add/"
    refused = admin_client.post(add_url, template_form(standard, weight="0"))
    assert refused.status_code == 200
    assert "weight" in refused.context["adminform"].form.errors
    assert not MessageTemplate.objects.filter(variant="b").exists()

    assert admin_client.post(add_url, template_form(standard)).status_code == 302
    saved = MessageTemplate.objects.get(variant="b")
    assert saved.weight == 2
    # The same step and language again in another variant is fine; twice the same is not.
    duplicate = admin_client.post(add_url, template_form(standard))
    assert duplicate.status_code == 200
    assert admin_client.post(add_url, template_form(standard, variant="c",
                                                    weight="")).status_code == 302
    assert MessageTemplate.objects.get(variant="c").weight == 1  # empty: the default

    listing = admin_client.get("/admin/dunning/messagetemplate/", {"variant": "b"})
    content = listing.content.decode()
    assert "column-variant" in content and "column-weight" in content
    assert listing.context["cl"].result_count == 1


# -- import and export ---------------------------------------------------------------------
def template_rows(policy):
    return sorted(policy.templates.values_list("step_key", "channel", "language", "variant",
                                               "weight", "subject", "text_body"))


@pytest.mark.parametrize("fmt", [PolicyCSV, JSON])
def test_a_policy_with_variants_exports_and_imports_unchanged(standard, fmt):
    add_variant(standard, "b", weight=3)
    add_variant(standard, "b", step_key="final-notice", languages=("en",))
    before = template_rows(standard)
    exported = fmt().export_data(PolicyResource().export(Policy.objects.filter(key="standard")))
    templates = json.loads(json.loads(exported)[0]["templates"] if fmt is JSON
                           else next(iter(PolicyCSV().create_dataset(exported).dict))["templates"])
    assert {t["variant"] for t in templates} == {"", "b"}

    Policy.objects.filter(key="standard").delete()
    result = PolicyResource().import_data(fmt().create_dataset(exported), dry_run=False)

    assert not result.has_errors() and not result.has_validation_errors()
    assert template_rows(Policy.objects.get(key="standard")) == before


def test_an_export_from_before_variants_imports_as_the_control(standard):
    exported = PolicyResource().export(Policy.objects.filter(key="standard"))
    row = dict(zip(exported.headers, exported[0], strict=True))
    row["templates"] = json.dumps([{"step_key": STEP, "channel": "email", "language": "en",
                                    "subject": "Old", "text_body": "Old text",
                                    "html_body": ""}])
    dataset = tablib.Dataset(headers=exported.headers)
    dataset.append([row[name] for name in exported.headers])
    result = PolicyResource().import_data(dataset, dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors(), result
    (template,) = Policy.objects.get(key="standard").templates.all()
    assert (template.variant, template.weight, template.subject) == ("", 1, "Old")


def test_templates_on_their_own_round_trip_keyed_by_variant(standard):
    add_variant(standard, "b", weight=3)
    before = template_rows(standard)
    control_subject = MessageTemplate.objects.get(variant="", language="en", step_key=STEP,
                                                 channel="email").subject
    exported = CSV().export_data(MessageTemplateResource().export(
        MessageTemplate.objects.filter(policy=standard)))
    assert exported.splitlines()[0].split(",")[:7] == [
        "policy", "step_key", "channel", "language", "variant", "weight", "subject"]
    changed = exported.replace("[b] en reminder", "[b] changed")
    result = MessageTemplateResource().import_data(CSV().create_dataset(changed), dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == 0  # each row found its template, variant included
    after = template_rows(standard)
    assert len(after) == len(before)
    assert MessageTemplate.objects.get(variant="b", language="en").subject == "[b] changed"
    assert MessageTemplate.objects.get(variant="", language="en", step_key=STEP,
                                                 channel="email").subject == (
        control_subject)

    # A file from before variants (no variant and weight columns) updates the controls.
    old = ("policy,step_key,channel,language,subject,text_body,html_body\r\n"
           f"standard,{STEP},email,en,Old subject,Old text,\r\n")
    result = MessageTemplateResource().import_data(CSV().create_dataset(old), dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["update"] == 1
    control = MessageTemplate.objects.get(policy=standard, step_key=STEP, language="en",
                                          variant="", channel="email")
    assert (control.subject, control.weight) == ("Old subject", 1)
    assert MessageTemplate.objects.get(variant="b", language="en").weight == 3
