"""Data of the browser tests, made with the ORM and real runs of the engine.

Dates are relative to the real today: the admin's forms (a promise's date must not lie in
the past) and the dashboard ("figures as of today") work on the real date.
"""

import datetime

from django.utils import timezone

from dunning.engine.run import run_dunning
from dunning.models import Case
from dunning.testing import create_customer, create_invoice

PASSWORD = "correct horse battery staple"


def today():
    return timezone.localdate()


def days_ago(n):
    return today() - datetime.timedelta(days=n)


def seed_small():
    """Three customers in collections after three runs; returns {name: Case}."""
    ada = create_customer(name="Ada Lovelace Ltd", email="ada@example.com", language="en")
    create_invoice(ada, number="INV-2001", amount_due="250.00", due_date=days_ago(12))
    create_invoice(ada, number="INV-2002", amount_due="80.50", due_date=days_ago(6))
    brunel = create_customer(name="Brunel & Sons", email="accounts@brunel.example", language="en")
    create_invoice(brunel, number="INV-2003", amount_due="1200.00", due_date=days_ago(20))
    curie = create_customer(name="Curie Laboratorien GmbH", email="buchhaltung@curie.example",
                            language="de")
    create_invoice(curie, number="INV-2004", amount_due="99.00", currency="CHF",
                   due_date=days_ago(9))
    for n in (8, 4, 0):
        run_dunning(days_ago(n))
    return {case.customer.name: case for case in Case.objects.select_related("customer")}


#: (name, email, language, [(number, amount, currency, days overdue today)], paid after
#: this many days of dunning or None). A dozen customers and more at every stage of collections.
DEMO_CUSTOMERS = [
    ("Ada Lovelace Ltd", "ada@lovelace.example", "en",
     [("INV-1001", "250.00", "EUR", 38), ("INV-1014", "80.50", "EUR", 12)], None),
    ("Brunel & Sons", "accounts@brunel.example", "en",
     [("INV-1002", "1200.00", "GBP", 47)], None),
    ("Curie Laboratorien GmbH", "buchhaltung@curie.example", "de",
     [("INV-1003", "99.00", "CHF", 22)], None),
    ("Darwin Expeditions", "finance@darwin.example", "en",
     [("INV-1004", "480.00", "EUR", 31)], 9),
    ("Euler Rechenwerk AG", "rechnung@euler.example", "de",
     [("INV-1005", "64.90", "EUR", 16), ("INV-1015", "64.90", "EUR", 5)], None),
    ("Faraday Electrics", "billing@faraday.example", "en",
     [("INV-1006", "2300.00", "EUR", 26)], 5),
    ("Gauß & Partner", "kontakt@gauss.example", "de",
     [("INV-1007", "150.00", "EUR", 9)], None),
    ("Hopper Software Inc.", "ap@hopper.example", "en",
     [("INV-1008", "799.00", "USD", 52)], None),
    ("Izumi Trading", "", "en",
     [("INV-1009", "120.00", "EUR", 14)], None),
    ("Jackson Logistics", "payables@jackson.example", "en",
     [("INV-1010", "310.00", "EUR", 19)], 3),
    ("Kovalevskaya Analytics", "invoices@kovalevskaya.example", "en",
     [("INV-1011", "45.00", "EUR", 3)], None),
    ("Lamarr Communications", "finance@lamarr.example", "en",
     [("INV-1012", "560.00", "EUR", 35), ("INV-1013", "90.00", "EUR", 2)], 12),
    # Due on tomorrow's plan: a formal notice, and a new case.
    ("Noether Algebra GmbH", "buchhaltung@noether.example", "de",
     [("INV-1016", "1480.00", "EUR", 7)], None),
    ("Meitner Isotopes", "accounts@meitner.example", "en",
     [("INV-1017", "1850.00", "EUR", 0)], None),
]


def seed_demo(days=55, realistic_times=True):
    """A dozen customers dunned daily over ``days`` days up to today; some pay on the way."""
    start = days_ago(days)
    seen = {}
    invoices = {}
    for name, email, language, items, paid_after in DEMO_CUSTOMERS:
        customer = create_customer(name=name, email=email, language=language)
        invoices[name] = (
            [create_invoice(customer, number=number, amount_due=amount, currency=currency,
                            due_date=days_ago(overdue))
             for number, amount, currency, overdue in items],
            paid_after,
            max(overdue for _n, _a, _c, overdue in items),
        )
    for offset in range(days + 1):
        as_of = start + datetime.timedelta(days=offset)
        for items, paid_after, overdue in invoices.values():
            # Pays what is due ``paid_after`` days after its oldest invoice fell due.
            due = today() - datetime.timedelta(days=overdue)
            if paid_after is not None and as_of == due + datetime.timedelta(days=paid_after):
                for invoice in items:
                    if invoice.due_date <= as_of:
                        invoice.amount_due = 0
                        invoice.save(update_fields=["amount_due"])
        run_dunning(as_of)
        if realistic_times:
            seen = backdate(as_of, seen)


def backdate(as_of, since):
    """Give the rows written by the run on ``as_of`` that day's times (runs at 06:00),
    for screenshots whose timelines read like weeks of work, not one second of seeding.
    ``since`` holds the highest pks seen before the run; returns the new ones."""
    import itertools

    from django.db.models import Max

    from dunning.models import CaseEvent, CaseStep, Run

    start = timezone.make_aware(datetime.datetime.combine(as_of, datetime.time(6, 0)))
    tick = itertools.count()
    for model, fields in ((Run, ["started_at", "finished_at"]), (Case, ["opened_at"]),
                          (CaseStep, ["created_at", "sent_at"]), (CaseEvent, ["created_at"])):
        for row in model.objects.filter(pk__gt=since.get(model, 0)).order_by("pk"):
            at = start + datetime.timedelta(seconds=next(tick) * 7)
            for field in fields:
                if field == "sent_at" and row.sent_at is None:
                    continue
                setattr(row, field, at)
            model.objects.filter(pk=row.pk).update(**{f: getattr(row, f) for f in fields})
    return {model: model.objects.aggregate(top=Max("pk"))["top"] or 0
            for model in (Run, Case, CaseStep, CaseEvent)}
