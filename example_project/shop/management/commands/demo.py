"""Seed demo customers and invoices, run dunning day by day over two months, report.

    python manage.py demo [--days 60] [--customers 40]
"""

import datetime
import random
from collections import Counter, defaultdict
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction

from dunning.engine.run import run_dunning
from dunning.models import Case, CaseStep, Customer, Invoice, Run

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
        pays_on = self.seed(rng, customers, start)
        out = self.stdout.write
        out(self.style.MIGRATE_HEADING(f"Simulating {days} days of dunning from {start} ..."))
        recovered = defaultdict(Decimal)
        for offset in range(days + 1):
            today = start + datetime.timedelta(days=offset)
            result = run_dunning(today)
            if sum(result.executed.values()) or result.resolved:
                steps = ", ".join(f"{k}={n}" for k, n in sorted(result.executed.items()))
                out(f"{today}  opened {result.opened:>2}  sent {result.sent:>2}  failed {result.failed}"
                    f"  resolved {result.resolved:>2}  {steps}")
            with transaction.atomic():
                for invoice in Invoice.objects.filter(customer_id__in=pays_on.get(today, ()), amount_due__gt=0):
                    recovered[invoice.currency] += invoice.amount_due
                    invoice.amount_due = Decimal("0.00")
                    invoice.save(update_fields=["amount_due"])
        self.report(recovered)

    def seed(self, rng, count, start):
        Case.objects.all().delete()
        Run.objects.all().delete()
        Invoice.objects.all().delete()
        Customer.objects.all().delete()
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
            customer = Customer.objects.create(**data)
            currency = rng.choice(["EUR", "EUR", "USD", "GBP", "XTS" if i % 13 == 0 else "EUR"])
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
        out("  recovered: " + (", ".join(f"{cur} {amt:,.2f}" for cur, amt in sorted(recovered.items())) or "nothing"))
        still = defaultdict(Decimal)
        for cur, amt in Invoice.objects.filter(amount_due__gt=0).values_list("currency", "amount_due"):
            still[cur] += amt
        out("  still open: " + ", ".join(f"{cur} {amt:,.2f}" for cur, amt in sorted(still.items())))
