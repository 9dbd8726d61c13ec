"""Seed demo customers and invoices, run dunning day by day over two months, report.

    python manage.py demo [--days 60] [--customers 40]

The same outcome every time: the data come from a seeded random generator, the demo's
tables start empty with their ids from 1 again (the simulated payment backend and the A/B
variants draw by id), every run of a day is pinned to noon of that day in the site's time
zone, and the mail folder (the file email backend's ``EMAIL_FILE_PATH``) is emptied first.
"""

import datetime
import random
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone

from dunning.engine.run import run_dunning
from dunning.models import (
    Case,
    CaseCharge,
    CaseStep,
    Consent,
    Customer,
    Invoice,
    PaymentAttempt,
    Policy,
    PreDunningNotice,
    Run,
)
from dunning.models.consent import ACCOUNT_UPDATER
from dunning.payments import declines
from dunning.payments.predunning import run_predunning
from dunning.payments.retries import record_failure, run_due_retries

FIRST_NAMES = ["Ada", "Björn", "Chloé", "Dmitri", "Emma", "Farid", "Greta", "Hugo", "Ines", "Jonas",
               "Kira", "Lars", "Mila", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sven", "Tara"]
LAST_NAMES = ["Lovelace", "Müller", "Dubois", "Ivanov", "Schmidt", "Haddad", "Berg", "Martin"]


class Command(BaseCommand):
    help = "Seed demo data and simulate two months of dunning."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=60)
        parser.add_argument("--customers", type=int, default=40)
        parser.add_argument("--start", type=datetime.date.fromisoformat, default=datetime.date(2026, 1, 1))

    def handle(self, *args, days, customers, start, **options):
        rng = random.Random(42)
        mail_dir = self.empty_mail_folder()
        pays_on = self.seed(rng, customers, start)
        # Reminder fees from the second reminder on, and 5 % a year interest (docs/fees.md).
        Policy.objects.filter(key="standard").update(
            fee_rule={"fixed": {"EUR": "2.50", "USD": "3.00", "GBP": "2.50"}},
            interest_rule={"kind": "fixed", "rate": "5"})
        fails_on = self.card_customers(rng)
        out = self.stdout.write
        out(self.style.MIGRATE_HEADING(f"Simulating {days} days of dunning from {start} ..."))
        recovered = defaultdict(Decimal)
        for offset in range(days + 1):
            today = start + datetime.timedelta(days=offset)
            result = run_dunning(today, now=self.noon(today))
            # Card customers: the subscription charge on the oldest invoice's due date fails;
            # the simulated backend's retries (and the account updater) take it from there.
            for customer in fails_on.get(today, ()):
                record_failure(customer.pk, invoices=list(customer.invoices.values_list(
                    "number", flat=True)), decline_code=rng.choice(
                    [declines.INSUFFICIENT_FUNDS, declines.EXPIRED, declines.DO_NOT_HONOR]),
                    failed_at=self.noon(today))
            retries = run_due_retries(now=self.noon(today))
            notices = run_predunning(today)
            if sum(result.executed.values()) or result.resolved or retries or notices:
                steps = ", ".join(f"{k}={n}" for k, n in sorted(result.executed.items()))
                extra = "".join(f"  {label}: " + ", ".join(f"{k}={n}" for k, n in sorted(c.items()))
                                for label, c in (("retries", retries), ("pre-dunning", notices)) if c)
                out(f"{today}  opened {result.opened:>2}  sent {result.sent:>2}  failed {result.failed}"
                    f"  resolved {result.resolved:>2}  {steps}{extra}")
            with transaction.atomic():
                for invoice in Invoice.objects.filter(customer_id__in=pays_on.get(today, ()), amount_due__gt=0):
                    recovered[invoice.currency] += invoice.amount_due
                    invoice.amount_due = Decimal("0.00")
                    invoice.paid_on = today  # the customer's history (dunning.history)
                    invoice.save(update_fields=["amount_due", "paid_on"])
        self.report(recovered)
        self.where_the_messages_are(mail_dir)

    @staticmethod
    def noon(day):
        """Noon of ``day`` in the site's time zone: the instant every part of that day's
        run takes as the present (never the clock, so the outcome is always the same)."""
        return datetime.datetime.combine(day, datetime.time(12),
                                         tzinfo=timezone.get_default_timezone())

    @staticmethod
    def file_backend():
        return settings.EMAIL_BACKEND == "django.core.mail.backends.filebased.EmailBackend"

    def empty_mail_folder(self):
        """The file email backend's folder, emptied of earlier demos' messages (only its
        ``.log`` message files); None with another email backend."""
        if not self.file_backend() or not getattr(settings, "EMAIL_FILE_PATH", None):
            return None
        folder = Path(settings.EMAIL_FILE_PATH)
        if folder.is_dir():
            for old in folder.glob("*.log"):
                old.unlink()
        return folder

    def where_the_messages_are(self, folder):
        out = self.stdout.write
        out("")
        if folder is None:
            out(self.style.MIGRATE_HEADING("Messages") + f": sent through {settings.EMAIL_BACKEND}")
            return
        files = sorted(folder.glob("*.log")) if folder.is_dir() else []
        # Django's file backend ends every message with a line of 79 dashes.
        count = sum(f.read_text(encoding="utf-8", errors="replace").count("\n" + "-" * 79 + "\n")
                    for f in files)
        out(self.style.MIGRATE_HEADING("Messages"))
        out(f"  {count} email message(s), as sent, in {folder}")
        out("  (the .log files there; open them in any text editor)")

    @staticmethod
    def reset_ids():
        """Ids from 1 again in every table of dunning and the shop that is empty now."""
        models = [m for label in ("dunning", "shop", "billing") if label in {
            c.label for c in apps.get_app_configs()} for m in apps.get_app_config(label).get_models()]
        empty = [m for m in models if not m._meta.proxy and m._meta.managed
                 and not m._default_manager.exists()]
        sequences = [{"table": m._meta.db_table, "column": m._meta.pk.column} for m in empty]
        statements = connection.ops.sequence_reset_by_name_sql(no_style(), sequences)
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)

    def card_customers(self, rng):
        """A third of the customers pay by card: {due date of the oldest invoice: [customer]};
        half of them agreed to the account updater."""
        fails_on = defaultdict(list)
        for customer in Customer.objects.filter(email__contains="@").order_by("pk"):
            if rng.random() < 1 / 3:
                oldest = customer.invoices.order_by("due_date").first()
                fails_on[oldest.due_date].append(customer)
                if rng.random() < 0.5:
                    Consent.objects.create(customer_key=str(customer.pk), topic=ACCOUNT_UPDATER,
                                           granted=True, source=Consent.Source.PORTAL)
        return fails_on

    def seed(self, rng, count, start):
        Consent.objects.all().delete()
        Case.objects.all().delete()
        Run.objects.all().delete()
        Invoice.objects.all().delete()
        Customer.objects.all().delete()
        self.reset_ids()
        pays_on = defaultdict(list)
        specials = [
            {"name": "<script>alert('x')</script> Ltd.", "email": "html@example.com"},
            {"name": "No Email GmbH", "email": ""},
            {"name": "Broken Address Inc.", "email": "not-an-address"},
            {"name": "Fernand Rare", "email": "fernand@example.fr", "language": "fr", "timezone": "Mars/Olympus"},
        ]
        for i in range(count):
            data = specials[i] if i < len(specials) else {
                "name": f"{FIRST_NAMES[i % 20]} {LAST_NAMES[(i // 20 + i) % 8]}",
                "email": f"customer{i}@example.com",
            }
            data.setdefault("language", rng.choice(["en", "en", "de", "de-AT"]))
            data.setdefault("timezone", rng.choice(["Europe/Berlin", "America/New_York", "Asia/Tokyo"]))
            # Customers for a month to about four years (not drawn from rng: the rest of the
            # demo stays the same).
            data.setdefault("customer_since", start - datetime.timedelta(days=30 + (i * 97) % 1430))
            customer = Customer.objects.create(**data)
            currency = rng.choice(["EUR", "EUR", "USD", "GBP", "CHF" if i % 13 == 0 else "EUR"])
            for n in range(rng.choice([1, 1, 2, 3])):
                Invoice.objects.create(
                    customer=customer,
                    number=f"INV-{1000 + i * 10 + n}",
                    amount_due=Decimal(rng.randrange(1500, 250000)) / 100,
                    currency=currency,
                    due_date=start + datetime.timedelta(days=rng.randrange(-20, 25)),
                )
            # Some pay after a reminder or two, some much later, some never.
            behaviour = rng.random()
            if behaviour < 0.75:
                pays_on[start + datetime.timedelta(days=rng.randrange(3, 55))].append(customer.pk)
        return pays_on

    def report(self, recovered):
        out = self.stdout.write
        out("")
        out(self.style.MIGRATE_HEADING("What was sent to whom"))
        rows = (
            CaseStep.objects.select_related("case__customer")
            .order_by("case__customer__name", "executed_on", "pk")
        )
        per_customer = defaultdict(list)
        for row in rows:
            mark = "" if row.status == CaseStep.Status.SENT else f" [{row.status}: {row.reason}]"
            per_customer[str(row.case.customer)].append(f"{row.executed_on:%m-%d} {row.step_key}{mark}")
        for name, entries in per_customer.items():
            out(f"  {name}")
            for entry in entries:
                out(f"      {entry}")
        counts = Counter(CaseStep.objects.values_list("step_key", flat=True))
        out("")
        out(self.style.MIGRATE_HEADING("Messages by step"))
        for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            out(f"  {key:<20} {n}")
        cases = Counter(Case.objects.values_list("status", flat=True))
        out("")
        out(self.style.MIGRATE_HEADING("Outcome"))
        out("  cases: " + ", ".join(f"{k} {v}" for k, v in sorted(cases.items())))
        attempts = Counter(PaymentAttempt.objects.exclude(cycle=None).values_list("status", flat=True))
        out("  payment retries: " + (", ".join(f"{k} {v}" for k, v in sorted(attempts.items())) or "none"))
        notices = Counter(PreDunningNotice.objects.values_list("kind", flat=True))
        out("  pre-dunning notices: " + (", ".join(f"{k} {v}" for k, v in sorted(notices.items())) or "none"))
        charged = defaultdict(Decimal)
        for kind, cur, amt in CaseCharge.objects.values_list("kind", "currency", "amount"):
            charged[(kind, cur)] += amt
        out("  charged: " + (", ".join(f"{kind} {cur} {amt:,.2f}" for (kind, cur), amt
                                       in sorted(charged.items())) or "nothing"))
        out("  recovered: " + (", ".join(f"{cur} {amt:,.2f}" for cur, amt in sorted(recovered.items())) or "nothing"))
        still = defaultdict(Decimal)
        for cur, amt in Invoice.objects.filter(amount_due__gt=0).values_list("currency", "amount_due"):
            still[cur] += amt
        out("  still open: " + ", ".join(f"{cur} {amt:,.2f}" for cur, amt in sorted(still.items())))
