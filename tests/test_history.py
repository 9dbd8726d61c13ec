"""The customer's history in message templates (dunning.history): months as a customer,
the on-time rate of paid invoices, earlier closed cases; the canonical fields
``customer_since`` / ``paid_on`` behind them, their checks, and the template context."""

import datetime
import re
import zoneinfo

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dunning.hosts import get_adapter
from dunning.messages.history import CLOSED_STATUSES, customer_history, months_between
from dunning.messages.rendering import (
    Renderer,
    babel_locale,
    build_context,
    compile_template,
    validate_message_template,
)
from dunning.models import Case, Invoice, MessageTemplate, Policy
from dunning.payments.retries import mark_shipped_invoices_paid
from dunning.testing import create_customer, create_invoice, override_dunning_settings
from tests.conftest import DAY0, day

D = datetime.date
AS_OF = D(2026, 3, 2)


# -- months as a customer -------------------------------------------------------------


@pytest.mark.parametrize(
    "since, as_of, months",
    [
        (None, D(2026, 3, 2), None),
        (D(2026, 1, 15), D(2026, 1, 15), 0),  # the first day
        (D(2026, 1, 15), D(2026, 2, 14), 0),  # the day before the first month is full
        (D(2026, 1, 15), D(2026, 2, 15), 1),  # same day next month
        (D(2026, 1, 15), D(2026, 2, 16), 1),
        (D(2026, 1, 31), D(2026, 2, 27), 0),
        (D(2026, 1, 31), D(2026, 2, 28), 1),  # February has no 31st: its last day counts
        (D(2026, 1, 31), D(2026, 3, 30), 1),
        (D(2026, 1, 31), D(2026, 3, 31), 2),
        (D(2026, 3, 31), D(2026, 4, 30), 1),
        (D(2024, 2, 29), D(2025, 2, 28), 12),  # a leap day, a year later
        (D(2024, 2, 29), D(2025, 3, 28), 12),
        (D(2024, 2, 29), D(2025, 3, 29), 13),
        (D(2025, 12, 20), D(2026, 1, 19), 0),  # over the turn of the year
        (D(2025, 12, 20), D(2026, 1, 20), 1),
        (D(2023, 6, 10), D(2026, 3, 2), 32),
        (D(2026, 4, 1), D(2026, 3, 2), 0),  # customer from a later day: not negative
    ],
)
def test_whole_months_as_a_customer(since, as_of, months):
    assert months_between(since, as_of) == months


def test_a_datetime_counts_by_its_day_in_the_sites_time_zone():
    # 23:30 UTC on 14 January is 00:30 on 15 January in Berlin (the tests' TIME_ZONE).
    since = datetime.datetime(2026, 1, 14, 23, 30, tzinfo=zoneinfo.ZoneInfo("UTC"))
    assert months_between(since, D(2026, 2, 14)) == 0
    assert months_between(since, D(2026, 2, 15)) == 1


def test_history_reads_customer_since_from_the_shipped_model(db):
    old = create_customer(customer_since=D(2023, 6, 10))
    new = create_customer()  # no date known
    history = customer_history([old.pk, new.pk], as_of=AS_OF)
    assert history[old.pk]["customer_since"] == D(2023, 6, 10)
    assert history[old.pk]["months_as_customer"] == 32
    assert history[new.pk]["customer_since"] is None
    assert history[new.pk]["months_as_customer"] is None


# -- on-time rate -----------------------------------------------------------------------


def paid(customer, due, paid_on, **kwargs):
    return create_invoice(customer, amount_due="0.00", due_date=due, paid_on=paid_on, **kwargs)


def test_no_paid_invoice_means_no_rate(db):
    customer = create_customer()
    create_invoice(customer, due_date=DAY0)  # open: paid_on empty
    entry = customer_history([customer.pk], as_of=AS_OF)[customer.pk]
    assert entry["on_time_rate"] is None
    assert entry["invoices_paid"] == 0


def test_three_of_four_paid_on_time_is_75_percent(db):
    customer = create_customer()
    paid(customer, D(2025, 10, 1), D(2025, 9, 28))
    paid(customer, D(2025, 11, 1), D(2025, 11, 1))  # on the due date: on time
    paid(customer, D(2025, 12, 1), D(2025, 11, 30))
    paid(customer, D(2026, 1, 1), D(2026, 1, 20))  # late
    create_invoice(customer, due_date=D(2026, 2, 1))  # still open: not counted
    entry = customer_history([customer.pk], as_of=AS_OF)[customer.pk]
    assert entry["invoices_paid"] == 4
    assert entry["on_time_rate"] == 75


@pytest.mark.parametrize(
    "paid_on, rate",
    [
        (D(2026, 1, 31), 100),  # a day early
        (D(2026, 2, 1), 100),  # on the due date
        (D(2026, 2, 2), 0),  # a day late is late
    ],
)
def test_paid_on_the_due_date_is_on_time_a_day_later_is_late(db, paid_on, rate):
    customer = create_customer()
    paid(customer, D(2026, 2, 1), paid_on)
    assert customer_history([customer.pk], as_of=AS_OF)[customer.pk]["on_time_rate"] == rate


def test_the_rate_is_rounded_to_a_whole_percent_and_per_customer(db):
    ada, bob = create_customer(), create_customer()
    paid(ada, D(2026, 1, 1), D(2026, 1, 1))
    paid(ada, D(2026, 1, 2), D(2026, 1, 1))
    paid(ada, D(2026, 1, 3), D(2026, 1, 9))
    paid(bob, D(2026, 1, 1), D(2026, 1, 5))
    history = customer_history([ada.pk, bob.pk], as_of=AS_OF)
    assert history[ada.pk]["on_time_rate"] == 67  # 2 of 3
    assert history[bob.pk]["on_time_rate"] == 0


def test_payments_after_the_day_asked_about_do_not_count(db):
    customer = create_customer()
    paid(customer, D(2026, 1, 1), D(2026, 1, 1))
    paid(customer, D(2026, 2, 1), AS_OF + datetime.timedelta(days=1))
    entry = customer_history([customer.pk], as_of=AS_OF)[customer.pk]
    assert (entry["invoices_paid"], entry["on_time_rate"]) == (1, 100)


# -- past cases ---------------------------------------------------------------------------


def make_case(customer, status, closed_on=None):
    return Case.objects.create(
        customer=customer, policy=Policy.objects.get(key="standard"), status=status,
        opened_on=D(2025, 1, 1), opened_at=timezone.now(),
        closed_on=closed_on if status != Case.Status.OPEN else None,
    )


def test_closed_statuses_are_every_status_but_open():
    assert set(CLOSED_STATUSES) == set(Case.Status.values) - {Case.Status.OPEN}


def test_past_cases_count_closed_ones_only(db):
    loyal, repeat = create_customer(), create_customer()
    make_case(loyal, Case.Status.OPEN)  # the case at hand is not a past one
    for status in (Case.Status.RESOLVED, Case.Status.TERMINATED, Case.Status.WRITTEN_OFF):
        make_case(repeat, status, closed_on=D(2025, 6, 1))
    make_case(repeat, Case.Status.OPEN)
    history = customer_history([loyal.pk, repeat.pk], as_of=AS_OF)
    assert (history[loyal.pk]["past_cases"], history[loyal.pk]["first_time_late"]) == (0, 1)
    assert (history[repeat.pk]["past_cases"], history[repeat.pk]["first_time_late"]) == (3, 0)


def test_a_case_closed_after_the_day_asked_about_or_excluded_is_not_past(db):
    customer = create_customer()
    later = make_case(customer, Case.Status.RESOLVED, closed_on=AS_OF + datetime.timedelta(days=3))
    assert customer_history([customer.pk], as_of=AS_OF)[customer.pk]["past_cases"] == 0
    assert customer_history([customer.pk], as_of=later.closed_on)[customer.pk]["past_cases"] == 1
    # The case a thank-you is about, once resolved, is not its own history.
    entry = customer_history([customer.pk], as_of=later.closed_on,
                             exclude_cases=[later.pk])[customer.pk]
    assert (entry["past_cases"], entry["first_time_late"]) == (0, 1)


def test_every_customer_asked_about_gets_an_entry(db):
    customer = create_customer()
    assert customer_history([], as_of=AS_OF) == {}
    history = customer_history([customer.pk, customer.pk, 987654], as_of=AS_OF)
    assert set(history) == {customer.pk, 987654}
    assert history[987654] == {"months_as_customer": None, "customer_since": None,
                               "on_time_rate": None, "invoices_paid": 0, "past_cases": 0,
                               "first_time_late": 1}


# -- unmapped fields and the number of queries -------------------------------------------


def test_unmapped_fields_give_none_without_a_query_on_them(db):
    customer = create_customer(customer_since=D(2020, 1, 1))
    paid(customer, D(2026, 1, 1), D(2026, 1, 1))
    make_case(customer, Case.Status.RESOLVED, closed_on=D(2026, 1, 2))
    with override_dunning_settings(CUSTOMER_FIELDS={"customer_since": None},
                                   INVOICE_FIELDS={"paid_on": None}):
        with CaptureQueriesContext(connection) as queries:
            entry = customer_history([customer.pk], as_of=AS_OF)[customer.pk]
    assert entry == {"months_as_customer": None, "customer_since": None, "on_time_rate": None,
                     "invoices_paid": None, "past_cases": 1, "first_time_late": 0}
    assert len(queries) == 1  # the customers, with their cases counted
    sql = " ".join(q["sql"] for q in queries)
    assert "customer_since" not in sql and "paid_on" not in sql
    assert "dunning_invoice\"" not in sql


def test_one_unmapped_field_skips_only_its_query(db):
    customer = create_customer(customer_since=D(2025, 3, 2))
    paid(customer, D(2026, 1, 1), D(2026, 1, 1))
    with override_dunning_settings(INVOICE_FIELDS={"paid_on": None}):
        with CaptureQueriesContext(connection) as queries:
            entry = customer_history([customer.pk], as_of=AS_OF)[customer.pk]
    assert len(queries) == 1 and "paid_on" not in queries[0]["sql"]
    assert entry["months_as_customer"] == 12 and entry["on_time_rate"] is None


def customers_with_history(n):
    customers = []
    for i in range(n):
        customer = create_customer(customer_since=D(2024, 1, 1) + datetime.timedelta(days=i))
        paid(customer, D(2026, 1, 1), D(2026, 1, 1 + i % 3))
        make_case(customer, Case.Status.RESOLVED, closed_on=D(2026, 1, 5))
        customers.append(customer.pk)
    return customers


def test_the_number_of_queries_does_not_grow_with_the_customers(db, django_assert_num_queries):
    one, fifty = customers_with_history(1), customers_with_history(50)
    with django_assert_num_queries(1):
        single = customer_history(one, as_of=AS_OF)
    with django_assert_num_queries(1):
        many = customer_history(fifty, as_of=AS_OF)
    assert single[one[0]]["on_time_rate"] == 100
    assert [many[pk]["on_time_rate"] for pk in fifty[:3]] == [100, 0, 0]
    assert {many[pk]["past_cases"] for pk in fifty} == {1}
    assert many[fifty[0]]["months_as_customer"] == 26


# -- the canonical fields: mapping and checks ---------------------------------------------


def test_the_shipped_models_map_both_fields_by_default():
    adapter = get_adapter()
    assert adapter.customer_field("customer_since") == "customer_since"
    assert adapter.invoice_field("paid_on") == "paid_on"


def check_ids(**dunning):
    with override_dunning_settings(**dunning):
        return sorted(m.id for m in run_checks(tags=["dunning"]) if m.id.startswith("dunning."))


def test_checks_report_a_mapped_history_field_that_does_not_exist():
    assert check_ids() == []
    assert check_ids(CUSTOMER_FIELDS={"customer_since": "joined"}) == ["dunning.E005"]
    assert check_ids(INVOICE_FIELDS={"paid_on": "settled"}) == ["dunning.E003"]


def test_checks_report_a_history_field_that_is_not_a_date():
    assert check_ids(CUSTOMER_FIELDS={"customer_since": "name"}) == ["dunning.E006"]
    assert check_ids(INVOICE_FIELDS={"paid_on": "amount_due"}) == ["dunning.E004"]


def test_checks_accept_history_fields_mapped_to_none_or_through_a_relation():
    assert check_ids(CUSTOMER_FIELDS={"customer_since": None},
                     INVOICE_FIELDS={"paid_on": None}) == []
    # The invoice's customer's start day: a date reached through the ForeignKey.
    assert check_ids(INVOICE_FIELDS={"paid_on": "customer__customer_since"}) == []


def test_checks_name_the_missing_field():
    with override_dunning_settings(INVOICE_FIELDS={"paid_on": "settled"}):
        [message] = [m for m in run_checks(tags=["dunning"]) if m.id == "dunning.E003"]
    assert "'settled'" in message.msg and "'paid_on'" in message.msg and message.hint


# -- dunning marks its own invoices paid ---------------------------------------------------


def test_a_collected_payment_sets_paid_on_once(db):
    customer = create_customer()
    open_one = create_invoice(customer, number="A-1", due_date=DAY0)
    earlier = create_invoice(customer, number="A-2", amount_due="0.00", due_date=DAY0,
                             paid_on=D(2026, 1, 5))
    mark_shipped_invoices_paid(customer.pk, ["A-1", "A-2"])
    open_one.refresh_from_db()
    earlier.refresh_from_db()
    assert open_one.amount_due == 0 and open_one.paid_on == timezone.localdate()
    assert earlier.paid_on == D(2026, 1, 5)  # paid before: its day stays


def test_a_retried_payment_is_paid_on_the_day_of_the_retry_not_today(overdue_customer, run):
    from dunning.payments.retries import record_failure, run_due_retries

    customer = overdue_customer()
    run(1)
    numbers = list(customer.invoices.values_list("number", flat=True))
    with override_dunning_settings(
        PAYMENT_BACKEND="dunning.payments.simulated.SimulatedBackend",
        PAYMENT_BACKEND_OPTIONS={"outcomes": {str(customer.pk): {"card1": ["ok"]}}},
    ):
        record_failure(customer.pk, invoices=numbers, decline_code="insufficient_funds",
                       failed_at=datetime.datetime(2026, 3, 3, 13, tzinfo=datetime.UTC))
        # 23:30 UTC on 5 March is already 6 March in Berlin (the site's time zone).
        retry_at = datetime.datetime(2026, 3, 5, 23, 30, tzinfo=datetime.UTC)
        assert run_due_retries(now=retry_at) == {"succeeded": 1}
    assert customer.invoices.get().paid_on == D(2026, 3, 6)
    entry = customer_history([customer.pk], as_of=D(2026, 3, 6))[customer.pk]
    assert (entry["invoices_paid"], entry["on_time_rate"]) == (1, 0)  # due 2 March: late


def test_the_invoice_paid_event_sets_paid_on_and_a_partial_payment_does_not(admin_client):
    customer = create_customer()
    full = create_invoice(customer, number="EV-1", due_date=DAY0)
    part = create_invoice(customer, number="EV-2", due_date=DAY0)
    for number, extra in (("EV-1", {}), ("EV-2", {"amount_due": "40.00"})):
        response = admin_client.post("/dunning/api/v1/payment-events/",
                                     {"type": "invoice.paid", "invoice": number, **extra},
                                     content_type="application/json")
        assert response.status_code == 200, response.content
    full.refresh_from_db()
    part.refresh_from_db()
    assert full.paid_on == timezone.localdate()
    assert part.paid_on is None and part.amount_due == 40


# -- the template context --------------------------------------------------------------------


def context(language, history):
    from dunning.hosts import CustomerRow

    return build_context(
        customer=CustomerRow(7, "Ada", "ada@example.com", language=language),
        invoices=[{"number": "INV-1", "amount_due": "10.00", "currency": "EUR",
                   "due_date": "2026-03-02"}],
        step={"key": "initial-notice", "offset_days": 1, "action": ""},
        as_of=day(3), locale=babel_locale(language), company={},
        portal_url="", unsubscribe_url="", history=history,
    )


LOYAL = {"months_as_customer": 32, "customer_since": D(2023, 6, 10), "on_time_rate": 95,
         "invoices_paid": 20, "past_cases": 0, "first_time_late": 1}


@pytest.mark.parametrize("language, since", [("de", "10.06.2023"), ("en", "Jun 10, 2023")])
def test_build_context_formats_customer_since_in_the_customers_language(language, since):
    history = context(language, LOYAL)["history"]
    assert history == {**LOYAL, "customer_since": since}


def test_build_context_without_history_knows_no_figure():
    assert context("en", None)["history"] == {"customer_since": ""}
    unknown = context("en", {**LOYAL, "customer_since": None, "months_as_customer": None,
                             "on_time_rate": None})["history"]
    assert unknown == {"customer_since": "", "invoices_paid": 20, "past_cases": 0,
                       "first_time_late": 1}


def test_an_unknown_figure_renders_empty_never_none():
    template = Template(2, "x", "[{{ history.on_time_rate }}|{{ history.customer_since }}|"
                                "{{ history.past_cases }}]")
    for history in (None, {**LOYAL, "on_time_rate": None, "customer_since": None}):
        _subject, text, _html = Renderer().render(template, context("en", history))
        assert "None" not in text
    assert text.strip() == "[||0]"


class Template:
    def __init__(self, pk, subject, text):
        self.pk, self.updated_at = pk, None
        self.subject, self.text_body, self.html_body = subject, text, ""


TAILORED = (
    "{% if history.first_time_late and history.on_time_rate >= 90 %}"
    "You have paid us on time for {{ history.months_as_customer }} months, since "
    "{{ history.customer_since }}: surely an oversight."
    "{% else %}Please pay now.{% endif %}"
)


@pytest.mark.parametrize(
    "history, expected",
    [
        (LOYAL, "You have paid us on time for 32 months, since Jun 10, 2023: surely an oversight."),
        ({**LOYAL, "on_time_rate": 89}, "Please pay now."),
        ({**LOYAL, "past_cases": 2, "first_time_late": 0}, "Please pay now."),
        ({**LOYAL, "on_time_rate": None}, "Please pay now."),  # nothing paid yet
        (None, "Please pay now."),  # history not computed: false, not an error
    ],
)
def test_a_template_tailors_its_wording_to_the_history(history, expected):
    validate_message_template(TAILORED)  # staff can save it: history is documented
    compile_template(TAILORED)
    _subject, text, _html = Renderer().render(Template(1, "Reminder", TAILORED),
                                              context("en", history))
    assert text.strip() == expected


def test_an_undocumented_history_figure_is_refused_at_save_time():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="history.lifetime_value"):
        validate_message_template("{{ history.lifetime_value }}")


# -- the admin preview ----------------------------------------------------------------------


@pytest.fixture
def history_template(db):
    template = MessageTemplate.objects.get(policy__key="standard", step_key="initial-notice",
                                           channel="email", language="en")
    MessageTemplate.objects.filter(pk=template.pk).update(
        text_body="On time: {{ history.on_time_rate }}% since {{ history.customer_since }}; "
                  "earlier cases: {{ history.past_cases }}.")
    template.refresh_from_db()
    return template


def preview_text(client, template, **query):
    response = client.get(f"/admin/dunning/messagetemplate/{template.pk}/preview/", query)
    assert response.status_code == 200
    match = re.search(r'<pre id="dunning-preview-text"[^>]*>(.*?)</pre>',
                      response.content.decode(), re.S)
    return match.group(1)


def test_the_preview_shows_a_sample_history(admin_client, history_template):
    text = preview_text(admin_client, history_template)
    assert "On time: 96%" in text and "earlier cases: 0." in text


def test_the_preview_of_a_real_customer_shows_its_own_history(admin_client, history_template):
    today = timezone.localdate()
    ada = create_customer(name="Ada", email="ada@example.com", customer_since=D(2024, 5, 1))
    create_invoice(ada, due_date=today - datetime.timedelta(days=10))
    paid(ada, today - datetime.timedelta(days=60), today - datetime.timedelta(days=61))
    paid(ada, today - datetime.timedelta(days=40), today - datetime.timedelta(days=30))
    make_case(ada, Case.Status.RESOLVED, closed_on=today - datetime.timedelta(days=30))
    text = preview_text(admin_client, history_template, customer=ada.pk)
    assert "On time: 50% since May 1, 2024; earlier cases: 1." in text


def test_invoice_model_has_paid_on_null_while_open(db):
    customer = create_customer()
    assert create_invoice(customer, due_date=DAY0).paid_on is None
    assert Invoice._meta.get_field("paid_on").null


def test_mentions_history_tells_which_templates_need_it():
    from dunning.messages.history import mentions_history

    assert mentions_history("Hello", "{% if history.first_time_late %}x{% endif %}", None)
    assert not mentions_history("Hello {{ customer.name }}", "", None)


# -- wired into the run ------------------------------------------------------------------------
def test_a_run_gives_the_templates_the_customer_s_history(overdue_customer, mailoutbox):
    from dunning.engine.run import run_dunning
    from dunning.models import MessageTemplate

    from .conftest import day

    ada = overdue_customer(name="Ada")
    type(ada).objects.filter(pk=ada.pk).update(customer_since=datetime.date(2024, 3, 2))
    run_dunning(day(1))
    template = MessageTemplate.objects.get(policy__key="standard", step_key="gentle-reminder",
                                           channel="email", language="en")
    template.text_body = ("MONTHS {{ history.months_as_customer }} FIRST "
                          "{{ history.first_time_late }}\n" + template.text_body)
    template.save()
    run_dunning(day(4))
    assert "MONTHS 24 FIRST 1" in mailoutbox[-1].body
