"""The operator's command of django-dunning.

Examples::

    python manage.py dunning run                    # today's run
    python manage.py dunning run --as-of 2026-03-01 # the run as if it were that day
    python manage.py dunning run --dry-run          # who would get what, who would fail; changes nothing
    python manage.py dunning plan                   # who gets what tomorrow
    python manage.py dunning plan --as-of 2026-03-05 -v 2  # ... with the message bodies
    python manage.py dunning schedule               # run daily at 06:00 from django-q2
    python manage.py dunning drain                  # send the retries that are due now
    python manage.py dunning deliver-webhooks       # post the webhooks that are due now
    python manage.py dunning agency-export inkasso  # the cases at a collections agency
    python manage.py dunning agency-import inkasso report.csv --dry-run  # its updates
    python manage.py dunning erase 42 --anonymize --dry-run  # a data-protection request
    python manage.py dunning --help                 # the subcommands
"""

import argparse
import datetime
from dataclasses import replace

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


# Minutes between two runs of the 'dunning-drain' schedule, unless --drain-minutes says.
DRAIN_MINUTES = 5

COLLECTIONS_GROUP = "Collections"
# What a collector works with; "write_off" is deliberately not among them.
COLLECTIONS_PERMISSIONS = [
    "view_case", "change_case", "send_by_hand",
    "view_caseevent", "view_casestep",
    "view_policy", "view_messagetemplate",
    "view_letter", "print_letters", "view_notice", "view_consent", "add_consent",
]


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
            help="Print who would get which step and the failures the run would record "
            "(no or an invalid address, ...); write, send and signal nothing.",
        )
        run.add_argument(
            "--batch-size", type=int, metavar="N",
            help="Cases per transaction (default: DUNNING['BATCH_SIZE']).",
        )
        run.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias.")
        self.add_common_options(run)
        plan = subparsers.add_parser(
            "plan",
            help="Show who gets what in the run of a day (default: tomorrow).",
            description="Print one block per case the run on DATE would touch: customer, "
            "step, channel, recipient and the rendered subject (with -v 2 also the "
            "plain-text body). Writes, sends and signals nothing.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        plan.add_argument(
            "--as-of", type=str, metavar="DATE",
            help="The day of the run (ISO format; default: tomorrow in the site's time zone).",
        )
        plan.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias.")
        self.add_common_options(plan)
        schedule = subparsers.add_parser(
            "schedule",
            help="Run dunning from django-q2: create or update its schedules.",
            description="Create or update (idempotently) the django-q2 schedule "
            "'dunning-run' that runs dunning.tasks.run (a run split into shard tasks "
            "that the cluster's workers run in parallel): daily at --time in the site's "
            "TIME_ZONE (default 06:00), or every --every-minutes N; and the schedule "
            "'dunning-drain' that sends due retries between runs every --drain-minutes "
            "(default 5; --no-drain removes it). Needs 'django_q' in INSTALLED_APPS and a "
            "running 'manage.py qcluster'.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        when = schedule.add_mutually_exclusive_group()
        when.add_argument("--time", metavar="HH:MM", help="Daily at this local time (default 06:00).")
        when.add_argument("--every-minutes", type=int, metavar="N", help="Every N minutes instead.")
        when.add_argument("--remove", action="store_true", help="Delete both schedules.")
        drain_when = schedule.add_mutually_exclusive_group()
        drain_when.add_argument(
            "--drain-minutes", type=int, metavar="N",
            help=f"Send due retries every N minutes (default {DRAIN_MINUTES}).",
        )
        drain_when.add_argument(
            "--no-drain", action="store_true",
            help="No 'dunning-drain' schedule (an existing one is removed); message "
            "retries, payment retries and outbound webhooks then wait for the next run "
            "(which does them all, like 'dunning run').",
        )
        self.add_common_options(schedule)
        drain = subparsers.add_parser(
            "drain",
            help="Send the messages whose retry is due now (what 'dunning-drain' runs).",
            description="Send the queued messages whose next attempt is due, outside a "
            "run. Safe to run at any time and alongside runs: a message is claimed "
            "before it is sent.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        drain.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias.")
        self.add_common_options(drain)
        pre = subparsers.add_parser(
            "predunning",
            help="Send today's pre-dunning notices (card expiry, renewal on an expiring "
            "card, account-updater consent; also done by 'dunning run').",
            description="Ask the payment backend for cards that expire soon and renewals "
            "on expiring cards and send each notice once (docs/payments.md). Nothing "
            "without a PAYMENT_BACKEND that reports them.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        pre.add_argument("--as-of", metavar="YYYY-MM-DD", help="Date to run for (default: today).")
        pre.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias.")
        self.add_common_options(pre)
        hooks = subparsers.add_parser(
            "deliver-webhooks",
            help="Post the outbound webhooks that are due now (also done by 'dunning-drain').",
            description="Post the webhook deliveries whose (next) attempt is due to their "
            "endpoints and print how many were delivered, failed and will be retried. Safe "
            "to run at any time and in several processes: a delivery is claimed before it "
            "is posted. See docs/webhooks.md.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        hooks.add_argument("--limit", type=int, default=1000, metavar="N",
                           help="Post at most N deliveries (default 1000).")
        hooks.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias.")
        self.add_common_options(hooks)
        sim = subparsers.add_parser(
            "simulate",
            help="What a policy would have sent over the last N days, beside the live policy.",
            description="Replay POLICY_KEY (typically an inactive draft) over the last DAYS "
            "days of the live default policy's real cases with the run's rules, and print "
            "per step what it would have sent beside what the live policy sent. Writes, "
            "sends and signals nothing. Assumes customers pay on the same day whatever the "
            "policy (see docs/simulator.md).",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        sim.add_argument("policy", metavar="POLICY_KEY", help="Key of the policy to simulate.")
        sim.add_argument("--days", type=int, default=90, help="Days back (7-365, default 90).")
        sim.add_argument("--as-of", type=str, metavar="DATE",
                         help="The last day of the window (ISO format; default today).")
        sim.add_argument("--json", action="store_true", help="Print the result as JSON.")
        sim.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias.")
        self.add_common_options(sim)
        group = subparsers.add_parser(
            "collections-group",
            help="Create or update the permission group 'Collections' for collectors.",
            description="Create or update (idempotently) the auth group 'Collections' with "
            "the permissions collectors work with: view and change cases, view their steps "
            "and events, view policies and templates, send a step by hand. Writing off "
            "cases is left to those who are given it explicitly.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        self.add_common_options(group)
        agency_export = subparsers.add_parser(
            "agency-export",
            help="Export the cases handed over to a collections agency (CSV or JSON).",
            description="Write one row per open case at AGENCY (a key of "
            "DUNNING['AGENCIES']): case, agency reference, customer name, email and phone, "
            "the open invoices with amounts and due dates, total owed, days overdue, last "
            "step, promises and disputes. To --output, else to the agency's export_dir, "
            "else to standard output. See docs/agency.md.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        agency_export.add_argument("agency", metavar="AGENCY", help="The agency's key.")
        agency_export.add_argument("--since", metavar="DATE",
                                   help="Only cases handed over on DATE or later (ISO format).")
        agency_export.add_argument("--format", choices=["csv", "json"], dest="fmt",
                                   help="File format (default: the agency's).")
        agency_export.add_argument("--output", metavar="PATH",
                                   help="File to write ('-': standard output).")
        self.add_common_options(agency_export)
        agency_import = subparsers.add_parser(
            "agency-import",
            help="Import a collections agency's status updates (CSV or JSON).",
            description="Read FILE (columns case, agency_reference, status, "
            "amount_collected, currency, note; status one of accepted, in_progress, "
            "collected, partially_collected, uncollectable, returned; amount_collected the "
            "total collected so far) and record every row on its case's timeline. All or "
            "nothing: if one row is bad, each bad row is listed with its number and reason "
            "and nothing is imported. See docs/agency.md.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        agency_import.add_argument("agency", metavar="AGENCY", help="The agency's key.")
        agency_import.add_argument("file", metavar="FILE", help="The agency's file (.csv or .json).")
        agency_import.add_argument("--format", choices=["csv", "json"], dest="fmt",
                                   help="File format (default: by the file's extension).")
        agency_import.add_argument("--dry-run", action="store_true",
                                   help="Check the file and show what it would do; change nothing.")
        self.add_common_options(agency_import)
        erase = subparsers.add_parser(
            "erase",
            help="Erase or anonymize one customer's dunning data (a data-protection request).",
            description="Delete every row of dunning's own tables that belongs to or names "
            "the customer (its cases and their timeline, payment attempts, notices, letters "
            "and their files, webhook deliveries, delivery events), or with --anonymize keep "
            "the rows and scrub their personal data, so that every dashboard and report "
            "figure stays the same (recommended). Either way a suppressed address is kept "
            "hashed, the latest opt-outs are kept and the self-service links are revoked. "
            "The host's customer and invoices are not touched. One transaction; asks for "
            "confirmation unless --yes. See docs/privacy.md.",
            called_from_command_line=getattr(parser, "called_from_command_line", None),
        )
        erase.add_argument("customer", metavar="CUSTOMER_PK", help="The host customer's pk.")
        erase.add_argument(
            "--anonymize", action="store_true",
            help="Keep the rows (and every figure), scrub the personal data (recommended).",
        )
        erase.add_argument("--dry-run", action="store_true",
                           help="List what would be erased or scrubbed per table; change nothing.")
        erase.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        erase.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias.")
        self.add_common_options(erase)

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
        self.summary(result, verbosity, database)
        if not dry_run:
            # The same as the scheduled run (dunning.tasks.run) does after its stages.
            from ...tasks import after_run

            done = after_run(as_of, database=database)
            self.report_after_run(done, verbosity)

    def report_after_run(self, done, verbosity):
        if verbosity < 1:
            return
        if done["payments"]:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(done["payments"].items()))
            self.stdout.write(f"Payment retries: {shown}")
        if done["predunning"]:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(done["predunning"].items()))
            self.stdout.write(f"Pre-dunning notices: {shown}")
        hooks = done["webhooks"]
        if any(hooks[k] for k in ("delivered", "failed", "retrying", "disabled")):
            self.stdout.write(
                f"Webhooks: delivered {hooks['delivered']}, failed {hooks['failed']}, "
                f"retrying {hooks['retrying']}, endpoints disabled {hooks['disabled']}")

    def handle_predunning(self, *, as_of=None, database, verbosity, **_):
        self.predunning(iso_date(as_of) if as_of else None, database, verbosity, always=True)

    def predunning(self, as_of, database, verbosity, always=False):
        """Send the pre-dunning notices due (nothing without a PAYMENT_BACKEND)."""
        from ...payments.predunning import run_predunning

        sent = run_predunning(as_of, using=database)
        if (sent or always) and verbosity >= 1:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(sent.items())) or "none"
            self.stdout.write(f"Pre-dunning notices: {shown}")

    def handle_plan(self, *, as_of=None, database, verbosity, **_):
        from ...engine.plan import build_plan

        as_of = iso_date(as_of) if as_of else None
        try:
            plan = build_plan(as_of, using=database)
        except DunningError as exc:
            raise CommandError(str(exc)) from exc
        write = self.stdout.write
        if verbosity >= 1:
            write(self.style.MIGRATE_HEADING(
                f"Plan for {plan.as_of.isoformat()}: {len(plan.items)} message(s)"
            ))
        for item in plan.items:
            write("")
            write(f"customer:  {item.label}")
            write(f"step:      {item.step_key}" + (f" ({item.action})" if item.action else ""))
            if item.variant is None:
                write("variant:   ? (drawn when the case is opened)")
            elif item.variant:
                write(f"variant:   {item.variant}")
            write(f"channel:   {item.channel}")
            write(f"recipient: {item.recipient or '-'}")
            if item.problem:
                write(self.style.ERROR(f"problem:   {item.problem}"))
            else:
                write(f"subject:   {item.subject}")
                if verbosity >= 2:
                    write("")
                    for line in item.text.rstrip("\n").split("\n"):
                        write(f"    {line}".rstrip())
        from ...engine.run import failure_lines

        for who, reason in failure_lines(plan, database):
            self.stderr.write(self.style.ERROR(f"{who}: {reason}"))

    def handle_schedule(self, *, time=None, every_minutes=None, remove=False,
                        drain_minutes=None, no_drain=False, verbosity, **_):
        from django.apps import apps
        from django.conf import settings
        from django.utils import timezone

        if not apps.is_installed("django_q"):
            raise CommandError(
                'The schedule needs django-q2: add "django_q" to INSTALLED_APPS, run '
                "'manage.py migrate' and start 'manage.py qcluster'."
            )
        from django_q.models import Schedule

        from ...tasks import DRAIN_SCHEDULE_NAME, SCHEDULE_NAME

        say = self.stdout.write if verbosity >= 1 else (lambda *a: None)
        if remove:
            for name in (SCHEDULE_NAME, DRAIN_SCHEDULE_NAME):
                deleted, _ = Schedule.objects.filter(name=name).delete()
                say(f"Removed the schedule {name!r}." if deleted
                    else f"There was no schedule {name!r}.")
            return
        now = timezone.now()
        if every_minutes is not None:
            if not 1 <= every_minutes <= 32767:
                raise CommandError("--every-minutes must be a number of minutes from 1 to 32767.")
            values = {"schedule_type": Schedule.MINUTES, "minutes": every_minutes, "next_run": now}
            what = f"every {every_minutes} minute(s)"
        else:
            try:
                at = datetime.datetime.strptime(time or "06:00", "%H:%M").time()
            except ValueError:
                raise CommandError(f"--time expects HH:MM such as 06:00, not {time!r}.") from None
            tz = timezone.get_default_timezone()
            local_now = timezone.localtime(now, tz)
            next_run = datetime.datetime.combine(local_now.date(), at, tzinfo=tz)
            if next_run <= local_now:
                next_run = datetime.datetime.combine(
                    local_now.date() + datetime.timedelta(days=1), at, tzinfo=tz
                )
            values = {"schedule_type": Schedule.DAILY, "minutes": None, "next_run": next_run}
            what = f"daily at {at.strftime('%H:%M')} ({settings.TIME_ZONE})"
        if drain_minutes is None:
            drain_minutes = DRAIN_MINUTES
        if not no_drain and not 1 <= drain_minutes <= 32767:
            raise CommandError("--drain-minutes must be a number of minutes from 1 to 32767.")

        def naive(when):
            return when if settings.USE_TZ else timezone.make_naive(when, timezone.get_default_timezone())

        def save(name, func, values):
            # Several rows of one name (created by hand or by an older version) become one.
            rows = list(Schedule.objects.filter(name=name).order_by("pk"))
            for extra in rows[1:]:
                extra.delete()
            fields = {"func": func, "args": None, "kwargs": None, "cron": None, "repeats": -1,
                      "hook": None, "cluster": None, **values, "next_run": naive(values["next_run"])}
            if rows:
                schedule = rows[0]
                for key, value in fields.items():
                    setattr(schedule, key, value)
                schedule.save()
                return schedule, False
            return Schedule.objects.create(name=name, **fields), True

        def local(when):
            return timezone.localtime(when) if settings.USE_TZ else when

        schedule, created = save(SCHEDULE_NAME, "dunning.tasks.run", values)
        verb = "Created" if created else "Updated"
        say(f"{verb} the django-q2 schedule {SCHEDULE_NAME!r}: dunning.tasks.run {what}; "
            f"next run {local(schedule.next_run):%Y-%m-%d %H:%M %Z}".rstrip())
        if no_drain:
            deleted, _ = Schedule.objects.filter(name=DRAIN_SCHEDULE_NAME).delete()
            if deleted:
                say(f"Removed the schedule {DRAIN_SCHEDULE_NAME!r}.")
        else:
            drain, created = save(DRAIN_SCHEDULE_NAME, "dunning.tasks.drain", {
                "schedule_type": Schedule.MINUTES, "minutes": drain_minutes, "next_run": now,
            })
            verb = "Created" if created else "Updated"
            say(f"{verb} the django-q2 schedule {DRAIN_SCHEDULE_NAME!r}: dunning.tasks.drain "
                f"every {drain_minutes} minute(s).")
        say("They run while 'manage.py qcluster' runs.")

    def handle_drain(self, *, database, verbosity, **_):
        from ...engine.outbox import drain

        try:
            result = drain(using=database)
        except DunningError as exc:
            raise CommandError(str(exc)) from exc
        if verbosity >= 1:
            shown = ", ".join(f"{k}={v}" for k, v in result.as_dict().items())
            self.stdout.write(f"Drained the outbox: {shown}")
            self.stdout.write(f"  abandoned runs: {result.abandoned}")
        from ...payments.retries import run_due_retries

        outcomes = run_due_retries(using=database)
        if outcomes and verbosity >= 1:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
            self.stdout.write(f"Payment retries: {shown}")
        self.handle_deliver_webhooks(limit=1000, database=database, verbosity=verbosity)

    def handle_deliver_webhooks(self, *, limit, database, verbosity, **_):
        from ...webhooks import deliver_due

        if limit < 1:
            raise CommandError("--limit must be a positive number.")
        result = deliver_due(limit=limit, using=database)
        if verbosity >= 1:
            self.stdout.write(
                f"Webhooks: delivered {result.delivered}, failed {result.failed}, "
                f"retried later {result.retrying}"
                + (f", endpoints disabled (410 Gone) {result.disabled}" if result.disabled else "")
            )

    def handle_simulate(self, *, policy, days, as_of=None, json=False, database, verbosity,
                        **_):
        import json as json_module

        from ...engine.simulate import SimulationError, simulate

        try:
            day = datetime.date.fromisoformat(as_of) if as_of else None
        except ValueError:
            raise CommandError(f"--as-of: {as_of!r} is not a date (YYYY-MM-DD).") from None
        try:
            result = simulate(policy, days=days, today=day, using=database)
        except (SimulationError, DunningError) as exc:
            raise CommandError(str(exc)) from exc
        if json:
            self.stdout.write(json_module.dumps(result, indent=2))
            return
        if verbosity < 1:
            return
        draft, live = result["policy"]["key"], result["live_policy"]["key"]
        self.stdout.write(
            f"{draft} beside the live policy {live}, {result['start']} to {result['end']} "
            f"({result['cases']} cases; customers pay on the same day whatever the policy)"
        )
        width = max([len(row["step_key"]) for row in result["steps"]] + [4])
        self.stdout.write(f"{'step':<{width}}  {'draft':>7}  {'live':>7}  {'diff':>7}")
        for row in result["steps"]:
            self.stdout.write(f"{row['step_key']:<{width}}  {row['draft']:>7}  {row['live']:>7}"
                              f"  {row['difference']:>+7}")
        for name in ("total", "suspended", "terminated", "cases_messaged"):
            self.stdout.write(
                f"{name.replace('_', ' '):<{width}}  {result['draft'][name]:>7}  "
                f"{result['live'][name]:>7}  {result['difference'][name]:>+7}"
            )

    def handle_erase(self, *, customer, anonymize=False, dry_run=False, yes=False, database,
                     verbosity, **_):
        from ...privacy import PrivacyError, erase_customer

        if dry_run or not yes:
            try:
                plan = erase_customer(customer, anonymize=anonymize, dry_run=True,
                                      using=database)
            except PrivacyError as exc:
                raise CommandError(str(exc)) from exc
            for line in plan.lines():
                self.stdout.write(line)
            if dry_run:
                return
            what = "Anonymize" if anonymize else "Erase (delete)"
            try:
                answer = input(f"{what} this data of customer {plan.customer_pk}? "
                               "Type 'yes' to go on: ")
            except EOFError:
                answer = ""
            if answer.strip().lower() != "yes":
                raise CommandError("Cancelled: nothing was changed.")
        try:
            report = erase_customer(customer, anonymize=anonymize, using=database)
        except PrivacyError as exc:
            raise CommandError(str(exc)) from exc
        if verbosity >= 1:
            for line in report.lines():
                self.stdout.write(line)
            done = "Anonymized" if anonymize else "Erased"
            self.stdout.write(self.style.SUCCESS(
                f"{done}: {sum(report.deleted.values())} row(s) deleted, "
                f"{sum(report.scrubbed.values())} scrubbed, {len(report.files)} file(s) "
                "deleted. Logged (counts only) to the logger 'dunning.privacy'."
            ))

    def handle_agency_export(self, *, agency, since=None, fmt=None, output=None, verbosity,
                             **_):
        from ...agency import export_cases, export_path

        if since:
            try:
                since = datetime.date.fromisoformat(since)
            except ValueError:
                raise CommandError(
                    f"--since expects an ISO date such as 2026-03-01, not {since!r}.") from None
        try:
            export = export_cases(agency, since=since, fmt=fmt)
        except DunningError as exc:
            raise CommandError(str(exc)) from exc
        path = export_path(export, output)
        if path is None:
            self.stdout.write(export.content, ending="")
            if verbosity >= 1:
                self.stderr.write(f"Exported {export.count} case(s) for {export.agency}.")
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(export.content, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc}") from exc
        if verbosity >= 1:
            self.stdout.write(f"Exported {export.count} case(s) for {export.agency} to {path}.")

    def handle_agency_import(self, *, agency, file, fmt=None, dry_run=False, verbosity, **_):
        from ...agency import import_updates, read_dataset, row_errors, summary

        try:
            dataset = read_dataset(file, fmt)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        except Exception as exc:  # a file that is not CSV or JSON
            raise CommandError(f"{file} is not a readable agency file: {exc}") from exc
        try:
            result = import_updates(agency, dataset, dry_run=dry_run)
        except DunningError as exc:
            raise CommandError(str(exc)) from exc
        problems = row_errors(result)
        if problems:
            for number, message in problems:
                where = f"row {number}" if number is not None else "file"
                self.stderr.write(self.style.ERROR(f"{where}: {message}"))
            raise CommandError(
                f"Nothing was imported: {len(problems)} problem(s) in {file} (listed above).")
        if verbosity >= 1:
            counts = summary(result)
            changed = counts.get("update", 0)
            skipped = counts.get("skip", 0)
            prefix = "Dry run, nothing saved: would import" if dry_run else "Imported"
            self.stdout.write(f"{prefix} {changed} update(s) for {agency}; {skipped} row(s) "
                              "unchanged.")

    def handle_collections_group(self, *, verbosity, **_):
        from django.apps import apps
        from django.contrib.auth.management import create_permissions
        from django.contrib.auth.models import Group, Permission

        # Permissions are created after migrate; make sure they exist right now too.
        create_permissions(apps.get_app_config("dunning"), verbosity=0)
        wanted = COLLECTIONS_PERMISSIONS
        perms = list(
            Permission.objects.filter(content_type__app_label="dunning", codename__in=wanted)
        )
        missing = set(wanted) - {p.codename for p in perms}
        if missing:
            raise CommandError(
                "Missing permissions (run 'manage.py migrate' first): " + ", ".join(sorted(missing))
            )
        group, created = Group.objects.get_or_create(name=COLLECTIONS_GROUP)
        before = set(group.permissions.values_list("pk", flat=True))
        group.permissions.add(*perms)
        added = sorted(p.codename for p in perms if p.pk not in before)
        if verbosity >= 1:
            if created:
                self.stdout.write(f"Created the group {COLLECTIONS_GROUP!r} with: {', '.join(added)}.")
            elif added:
                self.stdout.write(f"Updated the group {COLLECTIONS_GROUP!r}: added {', '.join(added)}.")
            else:
                self.stdout.write(f"The group {COLLECTIONS_GROUP!r} is up to date; nothing changed.")

    def summary(self, result, verbosity, database=DEFAULT_DB_ALIAS):
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
        if not result.dry_run:
            write(f"  abandoned runs: {result.abandoned}")
        if result.held:
            write(f"  held by the compliance guards: {result.held} (sent when they allow)")
        if result.failures and verbosity >= 1:
            from ...engine.run import failure_lines

            shown = result.failures[: 50 if verbosity < 2 else None]
            for who, reason in failure_lines(replace(result, failures=shown), database):
                self.stderr.write(self.style.ERROR(f"  {who}: {reason}"))
            if verbosity < 2 and len(result.failures) > 50:
                self.stderr.write(f"  ... and {len(result.failures) - 50} more (use -v 2)")
