"""The query bound of the issue: a whole run executes at most 50 queries per 1,000 customers.

20,000 customers with one overdue invoice each, on SQLite. "A whole run" is one call of
``run_dunning``: the Run row, draining the outbox, opening every case, deciding, recording
steps, sending (dummy email backend) and recording the outcomes.

The runs are measured outside any test transaction, so that the count is exactly what a
production run sends (a test transaction would turn every BEGIN into SAVEPOINT + RELEASE);
the fixtures delete the rows afterwards. Each size is measured once, by a module-scoped
fixture, and shared by the tests below. ``pytest -s`` prints the figures.
"""

from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from dunning.engine.run import RunResult, run_dunning
from dunning.models import Case, CaseEvent, CaseInvoice, CaseStep, Customer, Invoice, Run

from .conftest import day

pytestmark = [
    pytest.mark.skipif(
        getattr(settings, "DUNNING_INVOICE_MODEL", "dunning.Invoice") != "dunning.Invoice",
        reason="seeds the shipped Customer and Invoice models in bulk",
    ),
    pytest.mark.django_db,  # makes pytest-django create the test database
]

QUERIES_PER_1000 = 50
LARGE = 20_000
SMALL = 2_000
# The runs measured for each size: (label, run date, the step every customer is due).
RUNS = (
    ("first", day(2), "initial-notice"),  # opens every case and sends the first step
    ("second", day(5), "gentle-reminder"),  # 3 days later: claims the cases, next step
)


@dataclass
class Measured:
    customers: int
    label: str
    step_key: str
    queries: int
    statements: dict = field(repr=False)
    result: RunResult = field(repr=False)
    sent_rows: int  # CaseStep rows of step_key with status "sent"

    @property
    def per_1000(self):
        return self.queries * 1000 / self.customers

    def show(self):
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.statements.items()))
        print(
            f"\n[query bound] {self.label} run, {self.customers:,} customers: "
            f"{self.queries} queries = {self.per_1000:.1f} per 1,000 customers "
            f"(bound {QUERIES_PER_1000}); {self.result.seconds:.1f} s; statements: {kinds}"
        )


def seed(n):
    customers = Customer.objects.bulk_create(
        Customer(name=f"Customer {i}", email=f"customer{i}@example.com", language="en")
        for i in range(n)
    )
    Invoice.objects.bulk_create(
        Invoice(
            customer_id=c.pk, number=f"Q-{c.pk:07d}", amount_due=Decimal("100.00"),
            currency="EUR", due_date=day(0),
        )
        for c in customers
    )


def delete_everything():
    """Remove what seeding and the runs wrote; the shipped policy stays."""
    qn = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        for model in (CaseEvent, CaseInvoice, CaseStep, Case, Run, Invoice, Customer):
            cursor.execute(f"DELETE FROM {qn(model._meta.db_table)}")


def measure(n):
    assert not connection.in_atomic_block, "would count savepoints instead of transactions"
    assert not Customer.objects.exists(), "another test left customers behind"
    seed(n)
    measured = {}
    try:
        for label, as_of, step_key in RUNS:
            connection.queries_log.clear()  # a full log would make the capture read 0
            with CaptureQueriesContext(connection) as ctx:
                result = run_dunning(as_of)
            assert len(ctx) < connection.queries_log.maxlen, "query log overflowed"
            statements = {}
            for query in ctx.captured_queries:
                kind = query["sql"].lstrip().split(None, 1)[0].upper()
                statements[kind] = statements.get(kind, 0) + 1
            measured[label] = Measured(
                customers=n, label=label, step_key=step_key, queries=len(ctx),
                statements=statements, result=result,
                sent_rows=CaseStep.objects.filter(
                    step_key=step_key, status=CaseStep.Status.SENT
                ).count(),
            )
            measured[label].show()
    finally:
        delete_everything()
    return measured


def measure_once(n, django_db_blocker):
    with (
        django_db_blocker.unblock(),
        override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"),
    ):
        return measure(n)


# Module-scoped, so they run before the function-scoped test transaction of django_db.
@pytest.fixture(scope="module")
def large(django_db_setup, django_db_blocker):
    """{"first": Measured, "second": Measured} for 20,000 customers."""
    return measure_once(LARGE, django_db_blocker)


@pytest.fixture(scope="module")
def small(django_db_setup, django_db_blocker):
    """{"first": Measured, "second": Measured} for 2,000 customers."""
    return measure_once(SMALL, django_db_blocker)


def assert_did_the_work(m):
    """The count only means something if the run did everything for every customer."""
    assert m.result.failed == 0, m.result.failures[:5]
    assert dict(m.result.executed) == {m.step_key: m.customers}
    assert m.result.sent == m.customers
    assert m.sent_rows == m.customers


@pytest.mark.slow
def test_first_run_over_20000_customers_stays_within_50_queries_per_1000(large):
    first = large["first"]

    assert first.result.opened == LARGE
    assert_did_the_work(first)
    assert first.queries <= LARGE // 1000 * QUERIES_PER_1000, (
        f"{first.queries} queries for {LARGE:,} customers ({first.per_1000:.1f} per 1,000): "
        f"{first.statements}"
    )


@pytest.mark.slow
def test_second_run_over_20000_open_cases_stays_within_50_queries_per_1000(large):
    second = large["second"]

    assert second.result.opened == 0
    assert_did_the_work(second)
    assert second.queries <= LARGE // 1000 * QUERIES_PER_1000, (
        f"{second.queries} queries for {LARGE:,} customers ({second.per_1000:.1f} per 1,000): "
        f"{second.statements}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("label", [label for label, _, _ in RUNS])
def test_queries_per_customer_do_not_grow_with_the_number_of_customers(small, large, label):
    small, large = small[label], large[label]
    assert_did_the_work(small)
    assert_did_the_work(large)
    print(
        f"\n[query growth] {label} run: {small.per_1000:.1f} per 1,000 at {SMALL:,} customers, "
        f"{large.per_1000:.1f} per 1,000 at {LARGE:,}"
    )

    assert large.per_1000 <= small.per_1000, (
        f"{label} run: {large.queries} queries for {LARGE:,} customers "
        f"({large.per_1000:.1f} per 1,000) but {small.queries} for {SMALL:,} "
        f"({small.per_1000:.1f} per 1,000): something is fetched per customer"
    )



@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner statistics")
@pytest.mark.postgres
def test_a_first_run_tells_postgresql_how_many_cases_it_opened():
    """A first run opens every case, then looks for open cases without an overdue invoice.
    Planned from statistics that still said "no cases", PostgreSQL nested a scan of every
    invoice inside a scan of every case: 20,000 customers took longer than 12 minutes.
    The run analyzes the case table after opening many cases (here, in the test's own
    transaction, where autovacuum cannot see the rows at all)."""
    n = 1_500
    seed(n)
    result = run_dunning(day(2))
    assert result.opened == n and result.failed == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s",
                       [Case._meta.db_table])
        assert cursor.fetchone()[0] >= n * 0.9
