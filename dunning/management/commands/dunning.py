"""The operator's command of django-dunning.

Examples::

    python manage.py dunning run                    # today's run
    python manage.py dunning run --as-of 2026-03-01 # the run as if it were that day
    python manage.py dunning run --dry-run          # who would get what; changes nothing
    python manage.py dunning --help                 # the subcommands
"""

import argparse
import datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from ...exceptions import DunningError


def iso_date(value):
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--as-of expects an ISO date such as 2026-03-01, not {value!r}."
        ) from None


class Command(BaseCommand):
    help = "Dunning: walk overdue customers through their dunning policy."

    def add_arguments(self, parser):
        subparsers = parser.add_subparsers(
            dest="subcommand", metavar="SUBCOMMAND", title="subcommands", required=True
        )
        run = subparsers.add_parser(
            "run",
            help="Advance every dunning case by at most one step and send its messages.",
            description="Open cases for customers with overdue invoices, advance every due "
            "case by at most one step, send the messages and resolve paid cases.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        run.add_argument(
            "--as-of", type=str, metavar="DATE",
            help="Run the day as if it were DATE (ISO format, e.g. 2026-03-01).",
        )
        run.add_argument(
            "--dry-run", action="store_true",
            help="Print who would get which step; write, send and signal nothing.",
        )
        run.add_argument(
            "--batch-size", type=int, metavar="N",
            help="Cases per transaction (default: DUNNING['BATCH_SIZE']).",
        )
        run.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias.")
        self.add_common_options(run)

    @staticmethod
    def add_common_options(subparser):
        """Accept Django's common options after the subcommand too (``dunning run -v 0``).

        SUPPRESS keeps a value given before the subcommand from being reset by a default.
        """
        common = {
            ("-v", "--verbosity"): {"type": int, "choices": [0, 1, 2, 3]},
            ("--settings",): {},
            ("--pythonpath",): {},
            ("--traceback",): {"action": "store_true"},
            ("--no-color",): {"action": "store_true"},
            ("--force-color",): {"action": "store_true"},
        }
        for flags, kwargs in common.items():
            subparser.add_argument(*flags, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)

    def handle(self, *args, subcommand, **options):
        return getattr(self, f"handle_{subcommand.replace('-', '_')}")(**options)

    def handle_run(self, *, as_of=None, dry_run=False, batch_size=None, database, verbosity, **_):
        from ...engine.run import run_dunning

        as_of = iso_date(as_of) if as_of else None
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be a positive number.")
        if dry_run and verbosity >= 1:
            self.stdout.write(self.style.WARNING("Dry run: nothing is written, sent or signalled."))
        try:
            result = run_dunning(as_of, dry_run=dry_run, batch_size=batch_size, using=database)
        except DunningError as exc:
            raise CommandError(str(exc)) from exc
        if dry_run:
            for label, key in result.planned:
                self.stdout.write(f"{label}: {key}")
        self.summary(result, verbosity)

    def summary(self, result, verbosity):
        if verbosity < 1:
            return
        write = self.stdout.write
        heading = "Dry run" if result.dry_run else "Dunning run"
        write(self.style.MIGRATE_HEADING(f"{heading} for {result.as_of.isoformat()} ({result.seconds:.2f}s)"))
        write(f"  cases opened: {result.opened}")
        executed = ", ".join(f"{k}={n}" for k, n in sorted(result.executed.items())) or "none"
        write(f"  steps executed: {sum(result.executed.values())} ({executed})")
        write(f"  resolved: {result.resolved}")
        write(f"  terminated: {result.terminated}")
        if not result.dry_run:
            write(f"  messages sent: {result.sent}")
        write(f"  failed: {result.failed}")
        if result.failures and verbosity >= 1:
            for pk, reason in result.failures[: 50 if verbosity < 2 else None]:
                self.stderr.write(self.style.ERROR(f"  case {pk}: {reason}"))
            if verbosity < 2 and len(result.failures) > 50:
                self.stderr.write(f"  ... and {len(result.failures) - 50} more (use -v 2)")
