"""The bridge to the host's own Customer and Invoice models.

The engine never touches host models directly: it asks an adapter, named by
``DUNNING["ADAPTER"]``, for querysets and for plain rows in canonical names.

The default :class:`FieldMapAdapter` reads ``DUNNING["INVOICE_FIELDS"]`` and
``DUNNING["CUSTOMER_FIELDS"]`` (canonical name -> host field or ``__`` lookup path).
Where a mapping is not enough, subclass it and override one method per question, e.g.::

    class Adapter(FieldMapAdapter):
        def invoice_expression(self, name):
            if name == "amount_due":
                return F("total") - F("paid")
            return super().invoice_expression(name)
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from django.apps import apps as django_apps
from django.core.exceptions import ImproperlyConfigured
from django.db.models import CharField, Expression, F, JSONField, Model, Q, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform

from .conf import (
    CUSTOMER_MODEL_SETTING,
    INVOICE_MODEL_SETTING,
    customer_model_label,
    dunning_settings,
    invoice_model_label,
    load_plugin,
)

INVOICE_CANONICAL = ("customer", "number", "amount_due", "currency", "due_date")
CUSTOMER_CANONICAL = ("name", "email", "phone", "language", "timezone", "segment")
CUSTOMER_OPTIONAL = frozenset({"phone", "language", "timezone", "segment", "customer_since"})
# The customer's history (dunning.history): optional canonical fields, read only by
# dunning.history.customer_history (never part of the rows above). Not mapped and not a
# field of the model: the figures that need them are None.
CUSTOMER_HISTORY = ("customer_since",)
INVOICE_HISTORY = ("paid_on",)
INVOICE_OPTIONAL = frozenset(INVOICE_HISTORY)

# Prefix of the annotations the adapter adds to host querysets (never a host field).
ANNOTATION_PREFIX = "dunning_"


def _get_model(label, setting):
    try:
        return django_apps.get_model(label, require_ready=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"{setting} must be of the form 'app_label.model_name'"
        ) from None
    except LookupError:
        raise ImproperlyConfigured(
            f"{setting} refers to model '{label}' that has not been installed"
        ) from None


def get_customer_model():
    """The host's customer model class (``settings.DUNNING_CUSTOMER_MODEL``)."""
    return _get_model(customer_model_label(), CUSTOMER_MODEL_SETTING)


def get_invoice_model():
    """The host's invoice model class (``settings.DUNNING_INVOICE_MODEL``)."""
    return _get_model(invoice_model_label(), INVOICE_MODEL_SETTING)


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    pk: Any
    customer_id: Any
    number: str
    amount_due: Decimal
    currency: str
    due_date: datetime.date


@dataclass(frozen=True, slots=True)
class CustomerRow:
    pk: Any
    name: str
    email: str
    phone: str = ""
    language: str = ""
    timezone: str = ""
    #: The customer's segment or tag (policy rules, dunning.segments).
    segment: str = ""

    @property
    def label(self):
        return self.name or self.email or f"#{self.pk}"


class HostAdapter(Protocol):
    """Everything the package asks of the host's adapter (``DUNNING["ADAPTER"]``): every
    attribute and method below is called somewhere in dunning (a test scans the package
    for ``adapter.<name>`` and checks it is declared here). Subclass
    :class:`FieldMapAdapter` and override what differs, or implement all of it.

    Canonical names: invoices have ``customer``, ``number``, ``amount_due``,
    ``currency``, ``due_date``; customers ``name``, ``email``, ``phone``, ``language``,
    ``timezone``, ``segment`` (and the optional ``customer_since``).
    """

    #: The annotation (``ANNOTATION_PREFIX + "customer"``) that carries an invoice's
    #: customer pk on every queryset of :meth:`annotated_invoices`.
    customer_annotation: str

    @property
    def invoice_model(self) -> type[Model]:
        """The host's invoice model."""

    @property
    def customer_model(self) -> type[Model]:
        """The host's customer model."""

    # -- mapping ----------------------------------------------------------------------
    def invoice_field(self, name: str) -> str | None:
        """The host's lookup path of the canonical invoice field ``name``, or None when
        the host has no such optional field (dunning.testing builds invoices with it)."""

    def customer_field(self, name: str) -> str | None:
        """The host's lookup path of the canonical customer field ``name``, or None (the
        admin's and the API's customer search, dunning.testing)."""

    def invoice_expression(self, name: str) -> Expression:
        """An expression over the invoice model that yields the canonical field ``name``
        (the customer history's queries)."""

    def customer_expression(self, name: str) -> Expression:
        """An expression over the customer model that yields the canonical field ``name``
        ("" for an optional field the host does not have)."""

    # -- querysets --------------------------------------------------------------------
    def invoices(self) -> QuerySet:
        """Every invoice the engine may look at (override to exclude drafts, say)."""

    def annotated_invoices(self) -> QuerySet:
        """:meth:`invoices` annotated with every canonical invoice field, each under
        ``ANNOTATION_PREFIX + name`` (the API, payments, pre-dunning filter on them)."""

    def overdue_invoices(self, as_of: datetime.date) -> QuerySet:
        """Invoices with an open balance (> 0) due before ``as_of``, annotated as by
        :meth:`annotated_invoices` (``dunning_customer``: the customer's pk)."""

    def customer_queryset(self) -> QuerySet:
        """Every customer (the customer history's queries; override to narrow)."""

    # -- rows -------------------------------------------------------------------------
    def invoice_rows(self, queryset: QuerySet) -> Iterable[InvoiceRow]:
        """Canonical rows for a queryset returned by :meth:`overdue_invoices` or
        :meth:`annotated_invoices`."""

    def customer_rows(self, pks: Iterable[Any]) -> dict[Any, CustomerRow]:
        """Canonical rows of the given customers, by pk (missing pks are left out)."""


class FieldMapAdapter:
    """The default adapter: canonical names mapped to host fields by the settings."""

    customer_annotation = ANNOTATION_PREFIX + "customer"
    #: Canonical invoice fields that a subclass computes in ``invoice_expression`` rather
    #: than reads from a mapped field; the system checks do not look for them.
    computed_invoice_fields: frozenset = frozenset()
    #: The same for customer fields a subclass computes in ``customer_expression``.
    computed_customer_fields: frozenset = frozenset()

    def __init__(self, invoice_fields=None, customer_fields=None):
        self.invoice_fields = dict(
            invoice_fields if invoice_fields is not None else dunning_settings.INVOICE_FIELDS
        )
        self.customer_fields = dict(
            customer_fields if customer_fields is not None else dunning_settings.CUSTOMER_FIELDS
        )

    # -- models -----------------------------------------------------------------------
    @property
    def invoice_model(self):
        return get_invoice_model()

    @property
    def customer_model(self):
        return get_customer_model()

    # -- mapping ----------------------------------------------------------------------
    def invoice_field(self, name):
        """The host's lookup path for a canonical invoice field, or None when the host
        has no such (optional) field, or (``currency``) when every invoice is in the one
        currency of ``DUNNING["INVOICE_CURRENCY"]``."""
        if name in self.invoice_fields:
            return self.invoice_fields[name]
        if name == "currency" and fixed_currency():
            return None
        if name in INVOICE_OPTIONAL and not _has_path(self.invoice_model, name):
            return None
        return name

    def customer_field(self, name):
        """The host's lookup path for a canonical customer field, or None when the host
        has no such (optional) field."""
        if name in self.customer_fields:
            return self.customer_fields[name]
        if name in CUSTOMER_OPTIONAL and not _has_path(self.customer_model, name):
            return None
        return name

    def invoice_expression(self, name) -> Expression:
        """The expression that yields canonical invoice field ``name`` (a ``__`` path
        into a JSONField yields the key's text)."""
        path = self.invoice_field(name)
        if path is None and name == "currency":
            return Value(fixed_currency(), output_field=CharField())
        return path_expression(self.invoice_model, path)

    def customer_expression(self, name) -> Expression:
        """The expression that yields canonical customer field ``name``: the mapped field
        or ``__`` path (into a JSONField: the key's text, e.g.
        ``additional_info__language``), or "" when the host has no such optional field.
        Override it for a value computed from several columns and name the field in
        ``computed_customer_fields``."""
        path = self.customer_field(name)
        return path_expression(self.customer_model, path) if path else Value("")

    # -- querysets --------------------------------------------------------------------
    def invoices(self) -> QuerySet:
        """Every invoice the engine may look at. Override to exclude drafts, say."""
        return self.invoice_model._default_manager.all()

    def annotated_invoices(self) -> QuerySet:
        return self.invoices().annotate(
            **{ANNOTATION_PREFIX + name: self.invoice_expression(name) for name in INVOICE_CANONICAL}
        )

    def overdue_invoices(self, as_of) -> QuerySet:
        p = ANNOTATION_PREFIX
        return self.annotated_invoices().filter(
            **{f"{p}amount_due__gt": 0, f"{p}due_date__lt": as_of}
        )

    # -- rows -------------------------------------------------------------------------
    def invoice_rows(self, queryset) -> list[InvoiceRow]:
        p = ANNOTATION_PREFIX
        names = [p + n for n in INVOICE_CANONICAL]
        rows = []
        for pk, customer, number, amount, currency, due in queryset.order_by().values_list(
            "pk", *names
        ):
            if isinstance(due, datetime.datetime):
                due = due.date()
            rows.append(
                InvoiceRow(
                    pk=pk,
                    customer_id=customer,
                    number=str(number),
                    amount_due=_to_decimal(amount),
                    currency=(currency or "").strip().upper(),
                    due_date=due,
                )
            )
        return rows

    def customer_queryset(self) -> QuerySet:
        return self.customer_model._default_manager.all()

    def customer_rows(self, pks) -> dict[Any, CustomerRow]:
        p = ANNOTATION_PREFIX
        qs = (
            self.customer_queryset()
            .filter(pk__in=list(pks))
            .annotate(**{p + n: self.customer_expression(n) for n in CUSTOMER_CANONICAL})
            .order_by()
            .values_list("pk", *[p + n for n in CUSTOMER_CANONICAL])
        )
        result = {}
        for pk, *values in qs:
            result[pk] = CustomerRow(pk, *[("" if v is None else str(v)) for v in values])
        return result


def _to_decimal(value):
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    return Decimal(value)


def _has_path(model, path):
    try:
        resolve_path(model, path)
    except LookupError:
        return False
    return True


def resolve_lookup(model, path):
    """Follow a ``__`` lookup path from ``model``: ``(field, keys)``, the last model
    field on the path and, when that is a JSONField, the keys looked up in it (a tuple,
    empty when the path ends at a field), e.g. ``additional_info__language`` ->
    ``(<JSONField additional_info>, ("language",))``.

    Raises LookupError naming the part that does not exist (or an empty key).
    """
    field = None
    current = model
    parts = path.split("__")
    for index, part in enumerate(parts):
        if current is None:
            if isinstance(field, JSONField):
                keys = tuple(parts[index:])
                if not all(keys):
                    raise LookupError("")  # "info__" or "info____lang": an empty key
                return field, keys
            raise LookupError(part)
        try:
            field = current._meta.get_field(part)
        except Exception:
            raise LookupError(part) from None
        current = field.related_model if field.is_relation else None
    return field, ()


def resolve_path(model, path):
    """Follow a ``__`` lookup path from ``model``; return the final field (the JSONField
    for a path that goes on into its keys).

    Raises LookupError naming the part that does not exist.
    """
    return resolve_lookup(model, path)[0]


def path_expression(model, path):
    """``F(path)``, or for a path into a JSONField's keys the keys' text (the same on
    SQLite and PostgreSQL: ``"de"``, not ``'"de"'``)."""
    if not isinstance(path, str):
        return F(path)  # not a path: the checks report it (dunning.E003 / E005)
    try:
        _field, keys = resolve_lookup(model, path)
    except LookupError:
        return F(path)  # the query names the missing part; the checks report it first
    if not keys:
        return F(path)
    expression = F("__".join(path.split("__")[: -len(keys)]))
    for key in keys:
        expression = KeyTextTransform(key, expression)
    return expression


def customer_contains(adapter, name, term, relation="customer"):
    """A ``Q`` on a model with a ForeignKey ``relation`` to the customer: the customer's
    canonical text field ``name`` contains ``term`` (case-insensitive); None when the host
    has no such field. A field the adapter computes (``computed_customer_fields``) is
    matched through its ``customer_expression`` in a subquery (one query, not a lookup
    path that does not exist)."""
    if name in getattr(adapter, "computed_customer_fields", ()):
        expression = getattr(adapter, "customer_expression", None)
        queryset = getattr(adapter, "customer_queryset", None)
        if expression is None or queryset is None:
            return None
        matching = (queryset().annotate(**{ANNOTATION_PREFIX + "match": expression(name)})
                    .filter(**{ANNOTATION_PREFIX + "match__icontains": term})
                    .order_by().values("pk"))
        return Q(**{f"{relation}_id__in": matching})
    customer_field = getattr(adapter, "customer_field", None)
    path = customer_field(name) if customer_field else None
    return Q(**{f"{relation}__{path}__icontains": term}) if path else None


def fixed_currency():
    """``DUNNING["INVOICE_CURRENCY"]`` in capitals (the one ISO 4217 currency of every
    invoice of a host without a currency column), or ""."""
    value = dunning_settings.INVOICE_CURRENCY
    return value.strip().upper() if isinstance(value, str) else ""


_adapter = None


def get_adapter() -> HostAdapter:
    """The configured adapter instance (cached until the settings change)."""
    global _adapter
    if _adapter is None:
        _adapter = load_plugin("ADAPTER")
    return _adapter


@dunning_settings.on_reload
def _drop_adapter():
    global _adapter
    _adapter = None
