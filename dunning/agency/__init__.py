"""The end of the road: hand-over to a collections agency, and write-off.

A policy's **hand-over step** (action ``agency``) gives the case to a collections agency
of ``DUNNING["AGENCIES"]`` (the one the step names, else ``DUNNING["DEFAULT_AGENCY"]``).
The run (dunning.engine.run) marks the case (``agency``, ``handed_over_on``), records a
``handed-over`` event and fires ``case_handed_over`` after commit. The case stays open,
but dunning sends it nothing more except a write-off step; a payment still resolves it
(``case_resolved``, and the ``case.resolved`` webhook tells the agency).

This module is the agency's side of it:

* :class:`AgencyCaseResource` and :func:`export_cases`: one row per handed-over case with
  what the agency needs (customer and contact through the host's field mapping, the open
  invoices, amounts as Decimal strings, days overdue, the last step, promises and
  disputes), as CSV or JSON, cells a spreadsheet would run as a formula escaped
  (``manage.py dunning agency-export``, the admin action "Export for the agency");
* :class:`AgencyUpdateResource` and :func:`import_updates`: the agency's status reports
  (``case, agency_reference, status, amount_collected, currency, note``), all or nothing:
  a bad row is reported with its number and reason and no row is imported
  (``manage.py dunning agency-import``, the admin's "cases at collections agencies" page).
  Every update is an ``agency-update`` event on the case's timeline; money collected fires
  ``agency_collected`` (the host owns the invoices and marks them paid); ``uncollectable``
  writes the case off (``case_written_off``); ``returned`` takes the case back and dunning
  resumes.

A **write-off step** (action ``write_off``) closes the case by the rules of
:func:`dunning.services.write_off` (see ``services.close_written_off``). See docs/agency.md.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from import_export import fields, resources, widgets
from import_export.formats.base_formats import CSV, JSON

from .. import signals
from ..admin.resources import AmountWidget, SafeResourceMixin
from ..conf import agency_settings
from ..engine import actions as services
from ..hosts import get_adapter
from ..inputs import MAX_NOTE_LENGTH, too_long, validate_currency
from ..models import Case, CaseEvent, CaseStep, Dispute

logger = logging.getLogger("dunning.agency")

AgencyStatus = Case.AgencyStatus

#: The statuses an agency may report (the import's ``status`` column).
STATUSES = [value for value in AgencyStatus.values if value]

#: The statuses that come with money: they need ``amount_collected`` (the total so far).
COLLECTING = (AgencyStatus.COLLECTED, AgencyStatus.PARTIALLY_COLLECTED)

FORMATS = {"csv": CSV, "json": JSON}
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}

#: Separator of several values in one cell (invoices of a case).
SEPARATOR = "; "


# -- export ------------------------------------------------------------------------------
def cases_at(agency, since=None):
    """The open cases at ``agency`` (a key), handed over on ``since`` or later if given."""
    queryset = Case.objects.filter(agency=agency, status=Case.Status.OPEN)
    if since is not None:
        queryset = queryset.filter(handed_over_on__gte=since)
    return queryset.order_by("handed_over_on", "pk")


EXPORT_COLUMNS = [
    "case", "case_status", "agency", "agency_reference", "agency_status", "handed_over_on",
    "customer_name", "customer_email", "customer_phone", "invoice_numbers",
    "invoice_due_dates", "invoice_amounts", "invoice_currencies", "currency", "total_owed",
    "days_overdue", "last_step", "last_step_on", "promises", "disputes",
]


def _text(value):
    return "" if value is None else str(value)


class AgencyCaseResource(SafeResourceMixin, resources.Resource):
    """Export only: one row per case handed over to an agency (see the module).

    Amounts are Decimal strings ("120.50"); a case owing in several currencies lists them
    in ``currency`` and ``total_owed`` in the same order, and each invoice's currency in
    ``invoice_currencies``. Several values in one cell are separated by ``"; "``. Only an
    open case owes something; a closed one exports with empty invoice columns."""

    case = fields.Field(column_name="case")
    case_status = fields.Field(column_name="case_status")
    agency = fields.Field(column_name="agency")
    agency_reference = fields.Field(column_name="agency_reference")
    agency_status = fields.Field(column_name="agency_status")
    handed_over_on = fields.Field(column_name="handed_over_on")
    customer_name = fields.Field(column_name="customer_name")
    customer_email = fields.Field(column_name="customer_email")
    customer_phone = fields.Field(column_name="customer_phone")
    invoice_numbers = fields.Field(column_name="invoice_numbers")
    invoice_due_dates = fields.Field(column_name="invoice_due_dates")
    invoice_amounts = fields.Field(column_name="invoice_amounts")
    invoice_currencies = fields.Field(column_name="invoice_currencies")
    currency = fields.Field(column_name="currency")
    total_owed = fields.Field(column_name="total_owed")
    days_overdue = fields.Field(column_name="days_overdue")
    last_step = fields.Field(column_name="last_step")
    last_step_on = fields.Field(column_name="last_step_on")
    promises = fields.Field(column_name="promises")
    disputes = fields.Field(column_name="disputes")

    class Meta:
        export_order = EXPORT_COLUMNS

    def __init__(self, today=None, **kwargs):
        super().__init__(**kwargs)
        self.today = today or timezone.localdate()
        self._customers, self._invoices, self._promises, self._disputes = {}, {}, {}, {}

    def export(self, queryset=None, **kwargs):
        if queryset is None:
            queryset = Case.objects.exclude(agency="").order_by("pk")
        cases = list(queryset)
        self.load(cases)
        return super().export(cases, **kwargs)

    def load(self, cases):
        """What the rows show, for all of ``cases`` at once (four queries)."""
        adapter = get_adapter()
        customer_ids = {case.customer_id for case in cases}
        self._customers = adapter.customer_rows(customer_ids) if customer_ids else {}
        owing = {case.customer_id for case in cases if case.is_open}
        invoices = defaultdict(list)
        if owing:
            overdue = adapter.overdue_invoices(self.today).filter(
                **{adapter.customer_annotation + "__in": owing})
            for row in adapter.invoice_rows(overdue):
                invoices[row.customer_id].append(row)
        for rows in invoices.values():
            rows.sort(key=lambda row: (row.due_date, row.number))
        self._invoices = invoices
        pks = [case.pk for case in cases]
        promises = defaultdict(list)
        for event in CaseEvent.objects.filter(case_id__in=pks, kind=CaseEvent.Kind.PROMISE
                                              ).order_by("created_at", "pk"):
            data = event.data or {}
            promises[event.case_id].append(f"{data.get('date', '')}: {data.get('amount', '')}")
        self._promises = promises
        disputes = defaultdict(list)
        for dispute in Dispute.objects.filter(case_id__in=pks).order_by("opened_at", "pk"):
            state = "open" if dispute.is_open else "resolved"
            disputes[dispute.case_id].append(
                f"{dispute.invoice_number}: {dispute.reason} ({state})")
        self._disputes = disputes

    def _owed(self, case):
        return self._invoices.get(case.customer_id, []) if case.is_open else []

    def _totals(self, case):
        totals = {}
        for row in self._owed(case):
            totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.amount_due
        return dict(sorted(totals.items()))

    def _customer(self, case, name):
        row = self._customers.get(case.customer_id)
        return getattr(row, name, "") if row is not None else ""

    def dehydrate_case(self, case):
        return case.pk

    def dehydrate_case_status(self, case):
        return case.status

    def dehydrate_agency(self, case):
        return case.agency

    def dehydrate_agency_reference(self, case):
        return case.agency_reference

    def dehydrate_agency_status(self, case):
        return case.agency_status

    def dehydrate_handed_over_on(self, case):
        return case.handed_over_on.isoformat() if case.handed_over_on else ""

    def dehydrate_customer_name(self, case):
        return self._customer(case, "name")

    def dehydrate_customer_email(self, case):
        return self._customer(case, "email")

    def dehydrate_customer_phone(self, case):
        return self._customer(case, "phone")

    def dehydrate_invoice_numbers(self, case):
        return SEPARATOR.join(row.number for row in self._owed(case))

    def dehydrate_invoice_due_dates(self, case):
        return SEPARATOR.join(row.due_date.isoformat() for row in self._owed(case))

    def dehydrate_invoice_amounts(self, case):
        return SEPARATOR.join(str(row.amount_due) for row in self._owed(case))

    def dehydrate_invoice_currencies(self, case):
        return SEPARATOR.join(row.currency for row in self._owed(case))

    def dehydrate_currency(self, case):
        return SEPARATOR.join(self._totals(case))

    def dehydrate_total_owed(self, case):
        return SEPARATOR.join(str(total) for total in self._totals(case).values())

    def dehydrate_days_overdue(self, case):
        owed = self._owed(case)
        return (self.today - owed[0].due_date).days if owed else ""

    def dehydrate_last_step(self, case):
        return case.last_step_key

    def dehydrate_last_step_on(self, case):
        return case.last_step_on.isoformat() if case.last_step_on else ""

    def dehydrate_promises(self, case):
        return SEPARATOR.join(self._promises.get(case.pk, []))

    def dehydrate_disputes(self, case):
        return SEPARATOR.join(self._disputes.get(case.pk, []))

    def import_data(self, *args, **kwargs):
        raise NotImplementedError("The agency export is export only; see AgencyUpdateResource.")


@dataclass
class Export:
    agency: str
    format: str
    content: str
    count: int

    @property
    def filename(self):
        return f"{self.agency}-cases-{timezone.localdate().isoformat()}.{self.format}"

    @property
    def content_type(self):
        return CONTENT_TYPES[self.format]


def export_cases(agency, *, since=None, fmt=None, queryset=None, today=None):
    """The export of ``agency`` (a key): its open cases (handed over on ``since`` or
    later), or the handed-over cases of ``queryset``, in ``fmt`` (default: the agency's
    format). DunningConfigurationError for an agency that is not set up."""
    agency, config = agency_settings(agency)
    fmt = (fmt or config["format"]).lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (csv or json)")
    if queryset is None:
        queryset = cases_at(agency, since)
    else:
        queryset = queryset.filter(agency=agency).order_by("handed_over_on", "pk")
    dataset = AgencyCaseResource(today=today).export(queryset)
    content = FORMATS[fmt]().export_data(dataset)
    return Export(agency=agency, format=fmt, content=content, count=len(dataset))


def export_path(export, output=None):
    """Where ``manage.py dunning agency-export`` writes: ``output``, else the agency's
    ``export_dir`` with the export's file name; None: standard output."""
    if output and output != "-":
        return Path(output)
    if output == "-":
        return None
    folder = agency_settings(export.agency)[1]["export_dir"]
    return Path(folder) / export.filename if folder else None


# -- import of the agency's updates ---------------------------------------------------------
#: The import's columns; ``case`` and ``status`` are required, the others may be empty.
IMPORT_COLUMNS = ["case", "agency_reference", "status", "amount_collected", "currency", "note"]

#: Column names of the case fields the import writes (for error messages).
COLUMN_OF = {"agency_status": "status", "collected_by_agency": "amount_collected",
             "agency_reference": "agency_reference"}


class AgencyStatusWidget(widgets.CharWidget):
    """One of STATUSES (any case, blanks or hyphens for underscores)."""

    def clean(self, value, row=None, **kwargs):
        text = str(value or "").strip().lower().replace("-", "_").replace(" ", "_")
        if not text:
            raise ValueError(_("The status is missing."))
        if text not in STATUSES:
            raise ValueError(_("'%(value)s' is not an agency status; use one of: %(statuses)s.")
                             % {"value": value, "statuses": ", ".join(STATUSES)})
        return text


class ReferenceWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        text = str(value or "").strip()
        if len(text) > Case._meta.get_field("agency_reference").max_length:
            raise ValueError(_("The agency reference is too long."))
        return text


@dataclass
class Update:
    """One row of the agency's report, checked."""

    status: str
    reference: str
    total: Decimal  # collected so far, as the agency reports it
    collected: Decimal  # new since its previous report
    currency: str
    note: str
    previous_status: str


def handover_currencies(case):
    """The currencies of the invoices the case had when it was handed over (the hand-over
    step's snapshot), else of what it owes now."""
    snapshot = CaseStep.objects.filter(case=case, action="agency").values_list(
        "invoices", flat=True).first() or []
    currencies = {str(item.get("currency", "")).upper() for item in snapshot} - {""}
    if not currencies:
        adapter = get_adapter()
        currencies = {row.currency for row in adapter.invoice_rows(
            adapter.overdue_invoices(timezone.localdate()).filter(
                **{adapter.customer_annotation: case.customer_id}))} - {""}
    return currencies


class AgencyUpdateResource(SafeResourceMixin, resources.ModelResource):
    """Import only: the status updates of one agency (``agency=`` its key), one row per
    update (see the module and docs/agency.md). ``amount_collected`` is the total the
    agency collected on the case so far; the money new since its previous report is what
    ``agency_collected`` announces. A row that repeats the last report changes nothing."""

    case = fields.Field(column_name="case", attribute="pk", readonly=True)
    agency_reference = fields.Field(column_name="agency_reference", attribute="agency_reference",
                                    widget=ReferenceWidget())
    status = fields.Field(column_name="status", attribute="agency_status",
                          widget=AgencyStatusWidget())
    amount_collected = fields.Field(column_name="amount_collected",
                                    attribute="collected_by_agency", widget=AmountWidget())
    currency = fields.Field(column_name="currency")
    note = fields.Field(column_name="note")

    class Meta:
        model = Case
        import_id_fields = ["case"]
        fields = IMPORT_COLUMNS
        import_order = IMPORT_COLUMNS
        export_order = IMPORT_COLUMNS
        skip_unchanged = False
        report_skipped = True

    def __init__(self, agency=None, **kwargs):
        super().__init__()
        self.agency = agency

    def before_import(self, dataset, **kwargs):
        super().before_import(dataset, **kwargs)
        if not self.agency:
            raise ValueError("AgencyUpdateResource needs the agency (agency=<key>).")
        agency_settings(self.agency)

    def get_or_init_instance(self, instance_loader, row):
        raw = row.get("case")
        try:
            pk = int(str(raw).strip())
        except (TypeError, ValueError):
            raise ValidationError(
                {"case": _("'%(value)s' is not a case number.") % {"value": raw or ""}}
            ) from None
        # Locked until the import commits: a run deciding the case waits, and vice versa.
        case = Case.objects.select_for_update().filter(pk=pk).first()
        if case is None:
            raise ValidationError({"case": _("There is no case %(case)s.") % {"case": pk}})
        if case.agency != self.agency:
            raise ValidationError({"case": _("Case %(case)s is not with the agency "
                                             "'%(agency)s'.") % {"case": pk,
                                                                  "agency": self.agency}})
        case._agency_before = (case.agency_status, case.agency_reference,
                               case.collected_by_agency)
        return case, False

    def import_instance(self, instance, row, **kwargs):
        errors = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        status_before, reference_before, total_before = instance._agency_before
        # Empty cells keep what the agency reported before.
        if not instance.agency_reference:
            instance.agency_reference = reference_before
        if instance.collected_by_agency is None:
            instance.collected_by_agency = total_before
        total = instance.collected_by_agency
        status = instance.agency_status
        if "collected_by_agency" not in errors:
            if total < 0:
                errors["collected_by_agency"] = [_("The amount collected cannot be negative.")]
            elif total < total_before:
                errors["collected_by_agency"] = [_(
                    "The agency reported %(before)s collected before: amount_collected is "
                    "the total so far and cannot go down.") % {"before": total_before}]
            elif status in COLLECTING and total <= 0:
                errors["collected_by_agency"] = [_(
                    "A collection needs amount_collected, the total collected so far.")]
        collected = max(total - total_before, Decimal(0))
        currency = str(row.get("currency") or "").strip().upper()
        if collected and not errors and not currency:
            currencies = handover_currencies(instance)
            if len(currencies) == 1:
                currency = currencies.pop()
            else:
                errors["currency"] = [_(
                    "Name the currency of the amount (column currency): the case was "
                    "handed over in %(currencies)s.") % {
                        "currencies": ", ".join(sorted(currencies)) or "-"}]
        if str(row.get("currency") or "").strip() and "currency" not in errors:
            try:  # as given by the agency (one inferred from the hand-over is the host's)
                validate_currency(currency)
            except ValidationError as exc:
                errors["currency"] = exc.messages
        note = str(row.get("note") or "").strip()
        if len(note) > MAX_NOTE_LENGTH:
            errors["note"] = [too_long(MAX_NOTE_LENGTH)]
        if errors:
            raise ValidationError(errors)
        instance._agency_update = Update(
            status=status, reference=instance.agency_reference, total=total,
            collected=collected, currency=currency,
            note=note, previous_status=status_before,
        )

    def skip_row(self, instance, original, row, import_validation_errors=None):
        """A row that repeats the agency's last report changes nothing (the same file
        imported twice is harmless)."""
        if import_validation_errors:
            return False
        update = instance._agency_update
        if (update.status, update.reference, update.total) != instance._agency_before:
            return False
        last_note = CaseEvent.objects.filter(
            case=instance, kind=CaseEvent.Kind.AGENCY_UPDATE
        ).order_by("-created_at", "-pk").values_list("message", flat=True).first()
        return not update.note or update.note == last_note

    def save_instance(self, instance, is_create, row, **kwargs):
        if self._is_dry_run(kwargs) and not self._is_using_transactions(kwargs):
            return
        apply_update(instance, self.agency, instance._agency_update, actor=kwargs.get("user"))

    def save_m2m(self, instance, row, **kwargs):
        pass


def apply_update(case, agency, update, actor=None):
    """Record one checked update of ``agency`` on ``case`` (in the caller's transaction):
    the case's agency fields, an ``agency-update`` event, ``agency_collected`` after
    commit for money new since the previous report; ``uncollectable`` writes an open
    case off; ``returned`` takes it back from the agency and dunning resumes."""
    name = agency_settings(agency)[1]["name"]
    with transaction.atomic():
        if update.status == AgencyStatus.RETURNED:
            values = {"agency": "", "agency_reference": "", "agency_status": "",
                      "handed_over_on": None, "collected_by_agency": Decimal(0)}
            if case.is_open:
                # The next run decides again: the policy's next step, when it is due.
                values["next_due_on"] = services.recheck_from(case)
        else:
            values = {"agency_reference": update.reference, "agency_status": update.status,
                      "collected_by_agency": update.total}
        Case.objects.filter(pk=case.pk).update(updated_at=timezone.now(), **values)
        for field, value in values.items():
            setattr(case, field, value)
        services.record(
            case, CaseEvent.Kind.AGENCY_UPDATE, actor, update.note, agency=agency,
            status=update.status, previous_status=update.previous_status,
            agency_reference=update.reference, amount_collected=str(update.total),
            amount=str(update.collected), currency=update.currency,
        )
        if update.collected > 0:
            amount, currency = update.collected, update.currency
            transaction.on_commit(lambda: send_signal(
                signals.agency_collected, case, amount=amount, currency=currency))
        if update.status == AgencyStatus.UNCOLLECTABLE and case.is_open:
            reason = _("%(agency)s reported the case uncollectable.") % {"agency": name}
            if update.note:
                reason = f"{reason} {update.note}"
            services.write_off(case, reason, None)


def send_signal(signal, case, **kwargs):
    """Send ``signal`` for ``case`` (and its customer); a receiver that raises is logged
    and recorded on the case's timeline, as the run does."""
    for failure in signals.send_robust(signal, Case, case=case, customer=case.customer, **kwargs):
        CaseEvent.objects.create(case=case, kind=CaseEvent.Kind.SIGNAL_ERROR,
                                 created_at=timezone.now(), message=failure)


def read_dataset(path, fmt=None):
    """The rows of the file at ``path`` (CSV or JSON, by ``fmt`` or the file's
    extension; CSV when neither says)."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "csv").lower()
    if fmt not in FORMATS:
        raise ValueError(_("'%(format)s' is not a format of agency files (csv or json).")
                         % {"format": fmt})
    data = path.read_bytes().decode("utf-8-sig")
    return FORMATS[fmt]().create_dataset(data)


def import_updates(agency, dataset, *, dry_run=False, user=None):
    """Import the agency's report (a tablib Dataset): every row or none. Returns the
    django-import-export Result (``row_errors(result)`` lists the bad rows)."""
    agency = agency_settings(agency)[0]
    return AgencyUpdateResource(agency=agency).import_data(
        dataset, dry_run=dry_run, raise_errors=False, user=user)


def row_errors(result):
    """``[(row number or None, message)]`` of an import's problems, by row."""
    problems = [(None, str(error.error)) for error in result.base_errors]
    for invalid in result.invalid_rows:
        parts = []
        for field, messages in invalid.error_dict.items():
            text = " ".join(str(m) for m in messages)
            parts.append(text if field in (NON_FIELD_ERRORS, "case")
                         else f"{COLUMN_OF.get(field, field)}: {text}")
        problems.append((invalid.number, "; ".join(parts)))
    for number, errors in result.row_errors():
        problems.extend((number, str(error.error)) for error in errors)
    return sorted(problems, key=lambda p: (p[0] is not None, p[0] or 0))


def summary(result):
    """{"new", "update", "skip", ...}: rows by what the import did with them."""
    return {key: value for key, value in result.totals.items() if value}
