"""The child-process side of tests/test_outbox.py's kill and connection-drop tests.

Run with ``DJANGO_SETTINGS_MODULE=tests.settings_outbox``::

    python -m tests.outbox_runner seed 60
    python -m tests.outbox_runner run --as-of 2026-03-03 --batch-size 10
    python -m tests.outbox_runner drain
    python -m tests.outbox_runner state

``run`` is ``manage.py dunning run``; ``drain`` is ``dunning.engine.outbox.drain()``;
``state`` prints the outbox's state as JSON.
"""

from __future__ import annotations

import json
import sys


def state():
    from dunning.models import Case, CaseEvent, CaseStep, Customer, Run

    return {
        "customers": {str(pk): email for pk, email in Customer.objects.values_list("pk", "email")},
        "steps": [
            {"pk": pk, "case": case, "customer": customer, "step": key, "status": status,
             "reason": reason, "attempts": attempts, "run": run}
            for pk, case, customer, key, status, reason, attempts, run in
            CaseStep.objects.order_by("pk").values_list(
                "pk", "case_id", "case__customer_id", "step_key", "status", "reason",
                "attempts", "run_id")
        ],
        "needs_person": sorted(Case.objects.filter(needs_person=True).values_list("pk", flat=True)),
        "unknown_events": sorted(
            CaseEvent.objects.filter(kind=CaseEvent.Kind.DELIVERY_UNKNOWN)
            .values_list("case_id", "data__case_step")
        ),
        "runs": [list(r) for r in Run.objects.order_by("pk").values_list("pk", "status")],
        "run_summaries": [s for s in Run.objects.order_by("pk").values_list("summary", flat=True)],
    }


def main(argv):
    import django

    django.setup()
    command, args = argv[0], argv[1:]
    if command == "seed":
        from tests.concurrency_runner import seed

        seed(int(args[0]))
    elif command == "run":
        from django.core.management import execute_from_command_line

        execute_from_command_line(["django", "dunning", "run", *args])
    elif command == "drain":
        from dunning.engine.outbox import drain

        print(json.dumps(drain().as_dict()))
    elif command == "state":
        json.dump(state(), sys.stdout)
    else:
        sys.exit(f"outbox_runner: unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
