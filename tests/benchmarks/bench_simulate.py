#!/usr/bin/env python
"""Benchmark: the policy simulator over tens of thousands of cases.

    .venv/bin/python tests/benchmarks/bench_simulate.py [--customers N] [--days 90]

Seeds a file-based SQLite database in a temporary folder (tests/settings.py, migrated) with
N customers, each with one invoice due some day in the 210 days before "today"
(2026-06-01); 80 % pay 1-60 days after the due date (those due recently may not have paid
yet), 20 % never. The history the standard policy would have written is seeded directly
(cases, executed steps with their invoice lists, terminations, thank-yous, one Run per
day), computed with the pure rules, so seeding stays fast. Then, timed:

* ``simulate("standard")``: the live policy replayed; its counts must equal the live
  counts (printed as a check);
* ``simulate(draft)``: a draft with fewer steps and a longer gap.

Prints wall and CPU seconds (CPU time hardly changes when other programs compete for the
machine), queries and cases for both. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TODAY = datetime.date(2026, 6, 1)
ONE_DAY = datetime.timedelta(days=1)


def setup_django(db_path):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DUNNING_SQLITE_NAME"] = str(db_path)
    os.environ.pop("DUNNING_TEST_DB", None)
    import django
    from django.conf import settings

    django.setup()
    settings.DEBUG = False
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def history(spec, due, paid_on):
    """The steps the live policy took for one invoice: [(day, step)], and how it ended."""
    from dunning.engine.schedule import CaseFacts, Kind, decide

    opened = due + ONE_DAY
    steps, done, last = [], frozenset(), None
    day = opened
    end = min(paid_on - ONE_DAY, TODAY) if paid_on else TODAY
    while day <= end:
        decision = decide(spec, CaseFacts(due, {}, done, last), day)
        if decision.kind is Kind.EXECUTE:
            steps.append((day, decision.step))
            done, last = done | {decision.step.key}, day
            if decision.step.action == "terminate":
                return opened, steps, "terminated", day
        if decision.kind is not Kind.EXECUTE and decision.kind is not Kind.WAIT:
            break
        if decision.next_check is None:
            break
        day = max(decision.next_check, day + ONE_DAY)
    if paid_on and paid_on <= TODAY:
        return opened, steps, "resolved", paid_on
    return opened, steps, "open", None


def seed(customers, rng):
    from django.utils import timezone

    from dunning.engine.simulate import policy_spec
    from dunning.models import Case, CaseInvoice, CaseStep, Customer, Invoice, Policy, Run

    standard = Policy.objects.get(key="standard")
    spec = policy_spec(standard)
    now = timezone.now()
    Customer.objects.bulk_create(
        [Customer(name=f"Customer {i}", email=f"c{i}@example.com") for i in range(customers)],
        batch_size=2000,
    )
    people = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
    invoices, plans = [], []
    for i, pk in enumerate(people):
        due = TODAY - datetime.timedelta(days=rng.randint(1, 210))
        paid_on = None if rng.random() < 0.2 else due + datetime.timedelta(days=rng.randint(1, 60))
        amount = Decimal(rng.choice(["20.00", "80.00", "150.00", "400.00"]))
        open_now = paid_on is None or paid_on > TODAY
        invoices.append(Invoice(customer_id=pk, number=f"B-{i:07d}", currency="EUR",
                                amount_due=amount if open_now else Decimal(0), due_date=due))
        plans.append((pk, due, paid_on, amount))
    Invoice.objects.bulk_create(invoices, batch_size=2000)
    invoice_pks = dict(Invoice.objects.values_list("number", "pk"))
    cases, case_plans = [], []
    for i, (pk, due, paid_on, amount) in enumerate(plans):
        if due + ONE_DAY > TODAY or (paid_on and paid_on <= due + ONE_DAY):
            continue  # never overdue at a run
        opened, steps, status, closed = history(spec, due, paid_on)
        cases.append(Case(customer_id=pk, policy=standard, status=status, opened_on=opened,
                          opened_at=now, closed_on=closed, last_step_key="",
                          suspended=False, needs_person=False))
        case_plans.append((f"B-{i:07d}", due, amount, steps, status, closed))
    Case.objects.bulk_create(cases, batch_size=2000)
    rows, links = [], []
    for case, (number, due, amount, steps, status, closed) in zip(cases, case_plans, strict=True):
        snapshot = [{"number": number, "amount_due": str(amount), "currency": "EUR",
                     "due_date": due.isoformat()}]
        for day, step in steps:
            rows.append(CaseStep(case=case, step_key=step.key, action=step.action,
                                 channel="email", executed_on=day, created_at=now,
                                 status="sent", invoices=snapshot))
        if status == "resolved" and steps:
            rows.append(CaseStep(case=case, step_key="payment-received", channel="email",
                                 executed_on=closed, created_at=now, status="sent", invoices=[]))
        if status == "terminated":
            links.append(CaseInvoice(case=case, invoice_id=invoice_pks[number]))
    CaseStep.objects.bulk_create(rows, batch_size=2000)
    CaseInvoice.objects.bulk_create(links, batch_size=2000)
    first = TODAY - datetime.timedelta(days=215)
    Run.objects.bulk_create([
        Run(as_of=first + datetime.timedelta(days=n), status="completed",
            started_at=now - datetime.timedelta(days=215 - n))
        for n in range(216)
    ])
    return len(cases), len(rows)


def measure(policy, days):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from dunning.engine.simulate import simulate

    with CaptureQueriesContext(connection) as queries:
        started, cpu = time.perf_counter(), time.process_time()
        result = simulate(policy, days=days, today=TODAY)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return result, seconds, cpu, len(queries.captured_queries)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary database")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-simulate-"))
    try:
        setup_django(folder / "db.sqlite3")
        started = time.perf_counter()
        cases, steps = seed(args.customers, random.Random(args.seed))
        print(f"seeded {args.customers} customers, {cases} cases, {steps} executed steps "
              f"in {time.perf_counter() - started:.1f} s")
        from dunning.models import Policy, Step

        draft = Policy.objects.create(key="bench-draft", name="Draft", is_active=False,
                                      min_gap_days=5)
        for key, offset, action in [("reminder", 3, ""), ("warning", 12, ""),
                                    ("cut-off", 25, "suspend"), ("end", 60, "terminate")]:
            Step.objects.create(policy=draft, key=key, offset_days=offset, action=action)
        print(f"{'policy':<10} {'cases':>7} {'seconds':>8} {'cpu s':>6} {'queries':>8} "
              f"{'draft msgs':>11} {'live msgs':>10} {'cases/s':>8}")
        for label, policy in (("standard", "standard"), ("draft", draft)):
            result, seconds, cpu, queries = measure(policy, args.days)
            print(f"{label:<10} {result['cases']:>7} {seconds:>8.2f} {cpu:>6.2f} {queries:>8} "
                  f"{result['draft']['total']:>11} {result['live']['total']:>10} "
                  f"{result['cases'] / seconds:>8.0f}")
            if label == "standard":
                same = result["draft"] == result["live"]
                print(f"           the live policy reproduces its own counts: {same}")
    finally:
        if args.keep:
            print(f"database kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
