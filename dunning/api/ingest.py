"""Invoices in: the bulk upsert of the shipped Invoice (and Customer) models.

``{"invoices": [{"number", "customer": {"email", "name", ...}, "amount_due", "currency",
"due_date", "paid_on"?}, ...]}``. Every row is checked before anything is written; if one is bad, the
answer is 400 with ``{"rows": [{"index": i, "errors": {...}}]}`` for each bad row and
nothing is written. Otherwise, in one transaction, customers are found by email (or
created, which needs a name) and updated with the fields the row gives; invoices are
found by number and created or updated; an invoice whose number belongs to another
customer is refused (409 with the rows, nothing written), never moved. Sending the same batch again changes nothing
(every row "unchanged"): the endpoint is idempotent by invoice number.
"""

from django.db import transaction
from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError

from ..conf import dunning_settings
from ..exceptions import DunningError
from ..hosts import get_customer_model, get_invoice_model
from ..inputs import invoice_of_another_customer
from ..models import Customer, Invoice
from .serializers import BulkInvoiceSerializer

INVOICE_FIELDS = ("customer_id", "amount_due", "currency", "due_date")
CUSTOMER_FIELDS = ("name", "phone", "language", "timezone", "customer_since")


class BadRows(DunningError):
    """Rows that cannot be written: ``rows`` is ``[{"index": i, "errors": {...}}]``."""

    def __init__(self, rows):
        super().__init__(rows)
        self.rows = rows


class OtherCustomers(DunningError):
    """Rows whose invoice number belongs to another customer: ``rows`` is ``[{"index",
    "number", "errors": {"customer": {"email": [...]}}}]``. An invoice never moves to
    another customer (a typo in a number would otherwise move someone else's debt)."""

    def __init__(self, rows):
        super().__init__(rows)
        self.rows = rows


class BulkInvoices:
    def __init__(self, data):
        self.data = data

    @staticmethod
    def available():
        return get_invoice_model() is Invoice and get_customer_model() is Customer

    def rows(self):
        data = self.data
        if not isinstance(data, dict) or not isinstance(data.get("invoices"), list):
            raise ValidationError({"invoices": [_("Send an object with a list 'invoices'.")]})
        rows = data["invoices"]
        if not rows:
            raise ValidationError({"invoices": [_("The list of invoices is empty.")]})
        most = dunning_settings.API_BULK_MAX_ROWS
        if len(rows) > most:
            raise ValidationError({"invoices": [
                _("At most %(count)s invoices per request.") % {"count": most}]})
        return rows

    def clean(self):
        """The validated rows, or BadRows with every bad row."""
        cleaned, errors, seen = [], [], {}
        for index, row in enumerate(self.rows()):
            serializer = BulkInvoiceSerializer(data=row)
            if not serializer.is_valid():
                errors.append({"index": index, "errors": serializer.errors})
                continue
            number = serializer.validated_data["number"]
            if number in seen:
                errors.append({"index": index, "errors": {"number": [
                    _("The number %(number)s is in row %(first)s already.")
                    % {"number": number, "first": seen[number]}]}})
                continue
            seen[number] = index
            cleaned.append((index, serializer.validated_data))
        if errors:
            raise BadRows(errors)
        return cleaned

    def customers(self, cleaned):
        """email -> customer (found, or new and unsaved), or BadRows."""
        emails = {row["customer"]["email"] for _index, row in cleaned}
        found = {}
        for customer in Customer.objects.filter(email__in=emails).order_by("pk"):
            found.setdefault(customer.email, []).append(customer)
        result, errors = {}, []
        for index, row in cleaned:
            given = row["customer"]
            email = given["email"]
            matches = found.get(email, [])
            if len(matches) > 1:
                errors.append({"index": index, "errors": {"customer": {"email": [
                    _("Several customers have the email address '%(email)s'.")
                    % {"email": email}]}}})
                continue
            customer = result.get(email) or (matches[0] if matches else None)
            if customer is None:
                if not given.get("name"):
                    errors.append({"index": index, "errors": {"customer": {"name": [
                        _("There is no customer with the email address '%(email)s'; give "
                          "a name to create one.") % {"email": email}]}}})
                    continue
                customer = Customer(email=email)
            for name in CUSTOMER_FIELDS:
                if name in given:
                    setattr(customer, name, given[name])
            result[email] = customer
        if errors:
            raise BadRows(errors)
        return result

    def check_owners(self, cleaned, customers):
        """``{number: invoice}`` of the rows' existing invoices, or OtherCustomers when one
        of them belongs to a customer other than the row's (by email)."""
        numbers = [row["number"] for _index, row in cleaned]
        existing = {i.number: i for i in Invoice.objects.select_related("customer")
                    .filter(number__in=numbers)}
        errors = []
        for index, row in cleaned:
            invoice = existing.get(row["number"])
            customer = customers[row["customer"]["email"]]
            if invoice is not None and invoice.customer_id != customer.pk:
                errors.append({"index": index, "number": row["number"], "errors": {
                    "customer": {"email": [invoice_of_another_customer(
                        row["number"], invoice.customer.email or f"#{invoice.customer_id}",
                        row["customer"]["email"])]}}})
        if errors:
            raise OtherCustomers(errors)
        return existing

    def apply(self):
        cleaned = self.clean()
        customers = self.customers(cleaned)
        with transaction.atomic():
            # Before anything is written (a new customer has no pk yet: any invoice found
            # by the number is someone else's).
            existing = self.check_owners(cleaned, customers)
            before = {
                c.pk: tuple(getattr(c, n) for n in CUSTOMER_FIELDS)
                for c in Customer.objects.filter(pk__in=[c.pk for c in customers.values() if c.pk])
            }
            new_customers = [c for c in customers.values() if c.pk is None]
            Customer.objects.bulk_create(new_customers, batch_size=500)
            changed = [c for c in customers.values() if c.pk in before
                       and before[c.pk] != tuple(getattr(c, n) for n in CUSTOMER_FIELDS)]
            if changed:
                Customer.objects.bulk_update(changed, list(CUSTOMER_FIELDS))
            results, to_create, to_update = [], [], []
            for index, row in cleaned:
                values = {
                    "customer_id": customers[row["customer"]["email"]].pk,
                    "amount_due": row["amount_due"],
                    "currency": row["currency"],
                    "due_date": row["due_date"],
                }
                if "paid_on" in row:  # the history (dunning.history); kept when not given
                    values["paid_on"] = row["paid_on"]
                invoice = existing.get(row["number"])
                if invoice is None:
                    invoice = Invoice(number=row["number"], **values)
                    to_create.append(invoice)
                    outcome = "created"
                elif any(getattr(invoice, k) != v for k, v in values.items()):
                    for name, value in values.items():
                        setattr(invoice, name, value)
                    to_update.append(invoice)
                    outcome = "updated"
                else:
                    outcome = "unchanged"
                results.append((index, invoice, outcome))
            Invoice.objects.bulk_create(to_create, batch_size=500)
            if to_update:
                # paid_on keeps its value on rows that do not give one.
                Invoice.objects.bulk_update(to_update, [*INVOICE_FIELDS, "paid_on"])
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        for _index, _invoice, outcome in results:
            counts[outcome] += 1
        return {
            **counts,
            "customers_created": len(new_customers),
            "rows": [{"index": index, "number": invoice.number, "id": invoice.pk,
                      "result": outcome} for index, invoice, outcome in results],
        }
