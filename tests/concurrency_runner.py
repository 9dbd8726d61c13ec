"""The child-process side of tests/test_concurrency.py (and the data both sides share).

Every child runs with ``DJANGO_SETTINGS_MODULE=tests.settings_concurrency``::

    python -m tests.concurrency_runner run --as-of 2026-03-03 --batch-size 50
    python -m tests.concurrency_runner seed 1000
    python -m tests.concurrency_runner pay 0,13,26
    python -m tests.concurrency_runner snapshot

``run`` sets Django up, touches ``$DUNNING_READY_FILE``, waits until ``$DUNNING_GO_FILE``
exists (so that every process starts its run at the same moment rather than one after
the other's interpreter start-up) and then does exactly what
``python -m django dunning run ...`` does.

``EmailBackend`` writes every message it is handed to a file of the process, with its
anymail metadata (case, step, customer), so that the test can match each message back to
the step it reports; ``$DUNNING_MAIL_SCRIPT`` can make it a slow or stalled ESP.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

DAY0 = datetime.date(2026, 3, 2)  # the same DAY0 as tests/conftest.py


class EmailBackend(BaseEmailBackend):
    """Writes one JSON line per message handed to it to ``$EMAIL_FILE_PATH/<pid>.jsonl``.

    Like Django's file backend, but without serialising each message to MIME, which
    costs more than the whole dunning run and would tell this test nothing.
    """

    calls = 0  # calls in this process (the backend is instantiated per send)

    def send_messages(self, email_messages):
        EmailBackend.calls += 1
        script = os.environ.get("DUNNING_MAIL_SCRIPT")
        if script:
            act_out(json.loads(script), EmailBackend.calls)
        lines = []
        for message in email_messages:
            metadata = getattr(message, "metadata", None) or {}
            lines.append(json.dumps({
                "case": metadata.get("dunning_case"),
                "step": metadata.get("dunning_step"),
                "customer": metadata.get("customer"),
                "tags": list(getattr(message, "tags", None) or []),
                "to": list(message.to),
                "subject": message.subject,
                "html": any(t == "text/html" for _, t in getattr(message, "alternatives", [])),
            }) + "\n")
        path = Path(settings.EMAIL_FILE_PATH) / f"{os.getpid()}.jsonl"
        with path.open("a", encoding="utf-8") as stream:
            stream.writelines(lines)
        return len(lines)


def act_out(script, call):
    """Play a slow or stalled ESP before accepting the ``call``-th batch of messages.

    ``{"delays": {"1": 3}}`` takes 3 s over the first batch; ``{"pause_on": 2, "paused":
    PATH, "resume": PATH}`` touches ``paused`` on the second batch and waits for ``resume``.
    """
    delay = script.get("delays", {}).get(str(call))
    if delay:
        time.sleep(delay)
    if script.get("pause_on") == call:
        Path(script["paused"]).touch()
        deadline = time.monotonic() + 60
        while not os.path.exists(script["resume"]) and time.monotonic() < deadline:
            time.sleep(0.005)


# -- the data -------------------------------------------------------------------------
def email_of(i):
    return f"c{i}@example.com"


def index_of(email):
    return int(email[1 : email.index("@")])


def plan(n):
    """Customer index -> its invoices as (number, due date, amount, currency).

    Oldest due dates spread over 16 days, so that the same run day means different
    steps for different customers; every 5th also has an invoice that falls overdue
    later (it joins the open case); every 11th owes nothing yet on day 1 and gets its
    case opened by a later run.
    """
    invoices = {}
    for i in range(n):
        currency = "USD" if i % 7 == 0 else "EUR"
        amount = Decimal(f"{10 + i % 90}.50")
        rows = []
        if i % 11 == 0:
            rows.append((f"F-{i}", DAY0 + datetime.timedelta(days=2 + i % 6), amount, currency))
        else:
            rows.append((f"A-{i}", DAY0 - datetime.timedelta(days=i % 16), amount, currency))
            if i % 5 == 0:
                rows.append((f"B-{i}", DAY0 + datetime.timedelta(days=i % 9), amount, currency))
        invoices[i] = rows
    return invoices


def seed(n):
    """Create ``n`` customers and their invoices with two bulk inserts."""
    from dunning.models import Customer, Invoice

    Customer.objects.bulk_create(
        Customer(name=f"Customer {i}", email=email_of(i), language="de" if i % 3 == 0 else "en")
        for i in range(n)
    )
    pks = {index_of(e): pk for pk, e in Customer.objects.values_list("pk", "email")}
    Invoice.objects.bulk_create(
        Invoice(customer_id=pks[i], number=number, due_date=due, amount_due=amount,
                currency=currency)
        for i, rows in plan(n).items()
        for number, due, amount, currency in rows
    )


def pay(indices):
    """Pay every invoice of the customers with these indices."""
    from dunning.models import Invoice

    Invoice.objects.filter(customer__email__in=[email_of(i) for i in indices]).update(
        amount_due=Decimal(0)
    )


def snapshot():
    """The dunning state as plain JSON-able lists."""
    from dunning.models import Case, CaseStep, Customer, Run

    return {
        "customers": [list(r) for r in Customer.objects.values_list("pk", "email")],
        "cases": [list(r) for r in Case.objects.order_by("pk").values_list(
            "pk", "customer_id", "status")],
        "steps": [
            [pk, case, customer, key, status, str(on), run]
            for pk, case, customer, key, status, on, run in CaseStep.objects.order_by("pk")
            .values_list("pk", "case_id", "case__customer_id", "step_key", "status",
                         "executed_on", "run_id")
        ],
        "runs": [
            [pk, str(as_of), status, summary]
            for pk, as_of, status, summary in Run.objects.order_by("pk").values_list(
                "pk", "as_of", "status", "summary")
        ],
    }


# -- the child ------------------------------------------------------------------------
def wait_for_go():
    ready, go = os.environ.get("DUNNING_READY_FILE"), os.environ.get("DUNNING_GO_FILE")
    if ready:
        Path(ready).touch()
    if go:
        deadline = time.monotonic() + 120
        while not os.path.exists(go):
            if time.monotonic() > deadline:
                sys.exit("concurrency_runner: no go signal within 120 s")
            time.sleep(0.002)


def main(argv):
    import django

    django.setup()
    command, args = argv[0], argv[1:]
    if command == "run":
        from django.core.management import execute_from_command_line

        import dunning.engine.run  # noqa: F401 - imported before the start, not after
        import dunning.management.commands.dunning  # noqa: F401

        wait_for_go()
        execute_from_command_line(["django", "dunning", "run", *args])
    elif command == "seed":
        seed(int(args[0]))
    elif command == "pay":
        pay([int(i) for i in args[0].split(",") if i])
    elif command == "snapshot":
        json.dump(snapshot(), sys.stdout)
    else:
        sys.exit(f"concurrency_runner: unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
