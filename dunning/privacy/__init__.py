"""Data-protection requests: erase or anonymize one customer's dunning data.

``python manage.py dunning erase CUSTOMER_PK [--anonymize] [--dry-run] [--yes]`` and
:func:`erase_customer` (docs/privacy.md has the why of every choice):

* **anonymize** (recommended): every row stays, so every figure of the dashboard and of
  ``dunning.reports`` stays the same; what names or reaches the customer is scrubbed:
  addresses and phone numbers, message and ESP ids, payment-method and transaction ids,
  free texts (reasons, notes, feedback, dispute texts, timeline messages, notices), the
  ESP's raw event payloads, the strings of JSON data that are not structural (amounts,
  currencies, dates, step keys and invoice numbers stay), and the letters' PDFs (their
  files are deleted from the storage). The cases keep their link to the host's customer
  (the host owns that row; deleting it deletes the cases with it).
* **erase**: every row of dunning's own tables that belongs to the customer or names it
  is deleted: its cases with everything hanging off them, payment attempts,
  pre-dunning notices, in-app notices, letters and their files, webhook deliveries about
  its cases, delivery events. The figures lose the customer's contribution (listed in
  the output and in :data:`FIGURES_LOST`).

Both keep the minimum that protects the customer from being contacted against their
will: a suppressed email address is kept as a SHA-256 hash (:func:`suppression_digest`),
the consent log keeps the customer's latest opt-out per topic (erase) or every entry
with its note scrubbed (anonymize), and every self-service link sent to the customer is
revoked. Neither touches the host's customer and invoice rows.

Everything happens in one transaction; the letters' files are deleted once it commits.
A customer dunning is still collecting from (an open case, a scheduled payment retry, a
message waiting in the outbox) is refused: close the case first.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..engine.run import CLOSED_FOR_GOOD
from ..exceptions import DunningError
from ..hosts import get_adapter
from ..models import (
    BalanceObservation,
    Case,
    CaseCharge,
    CaseEvent,
    CaseInvoice,
    CaseStep,
    Consent,
    DeliveryEvent,
    Dispute,
    Feedback,
    Letter,
    Notice,
    PaymentAttempt,
    PaymentPlan,
    PortalRevocation,
    PortalSubmission,
    PreDunningNotice,
    Suppression,
    UnreadableTrackingEvent,
    WebhookDelivery,
)
from ..models.notices import parse_customer_pk
from ..models.tracking import (  # noqa: F401 (re-exported: the suppressed address forms)
    SUPPRESSION_PREFIX,
    is_suppressed,
    normalize_address,
    suppression_digest,
)

logger = logging.getLogger("dunning.privacy")

#: What a scrubbed free text (a reason, a note, a message) becomes. Identifiers (an
#: address, a message id) become empty instead.
ERASED = "[erased]"

#: The figures of dunning.reports (and the dashboard) a hard erase lowers by the
#: customer's contribution. ``--anonymize`` keeps every one of them.
FIGURES_LOST = (
    "cases closed and resolved, recovery rate (reports.recovery)",
    "amounts recovered per currency (reports.recovered_amounts)",
    "average days to collect (reports.average_days_to_collect)",
    "promises kept, broken and pending (reports.promises)",
    "step effectiveness: steps sent and paid after (reports.step_effectiveness)",
    "late-payment reasons (reports.late_reasons)",
    "A/B variant recovery (variants.variant_report)",
)

#: dunning's tables that hold nothing about a customer (configuration, run summaries,
#: the channels' circuit breakers: a connection error, no recipient).
NOT_PERSONAL = ("dunning.Policy", "dunning.Step", "dunning.MessageTemplate",
                "dunning.RetryStep", "dunning.PolicyRule", "dunning.WebhookEndpoint",
                "dunning.Run", "dunning.ChannelBreaker")

#: The tables an erasure looks at, in the order it reports them.
TABLES = (
    Case, CaseStep, CaseEvent, CaseInvoice, CaseCharge, BalanceObservation, Dispute,
    PaymentPlan, Feedback, PaymentAttempt, PreDunningNotice, Notice, Letter, WebhookDelivery,
    DeliveryEvent, Consent, PortalRevocation, PortalSubmission, Suppression,
    UnreadableTrackingEvent,
)

#: Keys of JSON data (timeline event data, webhook payloads, notice data) whose string
#: values are structural (codes, ids of dunning's rows, amounts, currencies, dates) and
#: kept as they are; every other string value is scrubbed.
STRUCTURAL_KEYS = frozenset({
    "action", "actor", "amount", "amount_due", "attempts", "case", "case_step", "channel",
    "created", "currency", "customer", "decline_code", "delivery_event", "dispute", "due",
    "due_date", "esp", "event_type", "feedback", "granted", "id", "kind", "on", "opened_on",
    "outcome", "plan", "policy", "privacy", "promised_on", "resolved", "run", "source",
    "status", "step", "step_key", "topic", "type", "until",
})
#: Keys whose string values are kept unless they mention the customer (invoice numbers).
CHECKED_KEYS = frozenset({"invoice", "invoice_number"})
#: Keys whose whole value (a list or an object: invoice snapshots, totals) is kept, but
#: for strings that mention the customer.
SAFE_SUBTREES = frozenset({"amounts", "charges", "instalments", "invoice_numbers", "invoices",
                           "totals"})


class PrivacyError(DunningError):
    """An erasure that cannot be done as asked (a bad id, a customer still in dunning)."""


# -- the report -----------------------------------------------------------------------------
@dataclass
class TableAction:
    table: str  # "dunning.CaseStep", or "files" for the letters' PDFs
    action: str  # "delete", "scrub", "hash" or "keep"
    count: int
    note: str = ""


@dataclass
class Report:
    """What :func:`erase_customer` did (or, with ``dry_run``, would do)."""

    customer_pk: Any
    anonymize: bool
    dry_run: bool
    host_customer: bool
    erased_on: datetime.date
    actions: list = field(default_factory=list)
    #: Names (in the letter storage) of the PDF files deleted once the transaction commits.
    files: list = field(default_factory=list)

    def add(self, table, action, count, note=""):
        self.actions.append(TableAction(table, action, count, note))

    def count(self, table, action=None):
        """Rows of ``table`` ("dunning.CaseStep" or the model) with ``action`` (any)."""
        if isinstance(table, type):
            table = table._meta.label
        return sum(a.count for a in self.actions
                   if a.table == table and (action is None or a.action == action))

    @property
    def deleted(self):
        return {a.table: a.count for a in self.actions
                if a.action == "delete" and a.count and a.table != "files"}

    @property
    def scrubbed(self):
        return {a.table: a.count for a in self.actions if a.action == "scrub" and a.count}

    @property
    def cases(self):
        return self.count(Case)

    def lines(self):
        """The report as lines of text (the command prints them)."""
        mode = "anonymize" if self.anonymize else "erase"
        head = f"Customer {self.customer_pk}: {mode}"
        head += " (dry run: nothing is changed)" if self.dry_run else ""
        lines = [head]
        shown = [a for a in self.actions if a.count]
        width = max([len(a.table) for a in shown] + [10])
        verbs = {"delete": "delete", "scrub": "scrub", "hash": "hash", "keep": "keep"}
        if not shown:
            lines.append("  nothing left to erase")
        for a in shown:
            line = f"  {verbs[a.action]:<6}  {a.table:<{width}}  {a.count:>6}"
            lines.append(f"{line}  {a.note}".rstrip())
        lines.append(
            f"Not touched: the host's customer {self.customer_pk} and its invoices. The host "
            "owns them: delete or anonymize them in the host's own data (deleting the "
            "customer deletes its remaining dunning cases with it)."
            if self.host_customer else
            f"The host has no customer {self.customer_pk} (any more); only dunning's "
            "leftovers were looked at."
        )
        if not self.anonymize and self.cases:
            lines.append("The dashboard and report figures lose this customer's "
                         "contribution: " + "; ".join(FIGURES_LOST)
                         + ". --anonymize keeps them.")
        elif self.anonymize:
            lines.append("Every dashboard and report figure stays the same (the rows are "
                         "kept, only personal data is scrubbed).")
        return lines

    def summary(self):
        """Counts only (no personal data): what the log line says."""
        parts = [f"{a.action} {a.table}={a.count}" for a in self.actions if a.count]
        return ", ".join(parts) or "nothing"


# -- scrubbing JSON ---------------------------------------------------------------------------
def _mentions(text, identifiers):
    low = text.lower()
    return any(ident in low for ident in identifiers)


def scrub_json(value, identifiers=(), *, within=False):
    """``value`` (JSON data) with every string scrubbed that is not structural: strings
    under :data:`STRUCTURAL_KEYS` stay; strings under :data:`CHECKED_KEYS` and inside
    :data:`SAFE_SUBTREES` (``within``) stay unless they mention one of ``identifiers``
    (lower-case texts); numbers, booleans and null stay. Scrubbed strings become
    :data:`ERASED`."""

    def text(item, kept):
        if not item or (kept and not _mentions(item, identifiers)):
            return item
        return ERASED

    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            name = str(key)
            if isinstance(item, dict | list):
                result[key] = scrub_json(item, identifiers, within=within or name in SAFE_SUBTREES)
            elif isinstance(item, str):
                result[key] = item if name in STRUCTURAL_KEYS else text(
                    item, within or name in CHECKED_KEYS)
            else:
                result[key] = item
        return result
    if isinstance(value, list):
        return [scrub_json(item, identifiers, within=within) for item in value]
    if isinstance(value, str):
        return text(value, within)
    return value


# -- finding the customer's rows ------------------------------------------------------------
def _resolve(customer_pk):
    if hasattr(customer_pk, "_meta") and hasattr(customer_pk, "pk"):
        customer_pk = customer_pk.pk  # a customer instance
    try:
        return parse_customer_pk(customer_pk)
    except (ValidationError, TypeError, ValueError) as exc:
        message = "; ".join(getattr(exc, "messages", None) or [str(exc)])
        raise PrivacyError(_("'%(value)s' is not a customer id: %(error)s")
                           % {"value": str(customer_pk), "error": message}) from None


class _Scope:
    """The querysets of the customer's rows, table by table."""

    def __init__(self, pk, using):
        self.pk, self.key, self.using = pk, str(pk), using
        db = using
        self.cases = Case.objects.using(db).filter(customer_id=pk)
        in_cases = Q(case__customer_id=pk)
        self.case_pks = list(self.cases.order_by("pk").values_list("pk", flat=True))
        self.querysets = {
            Case: self.cases,
            CaseStep: CaseStep.objects.using(db).filter(in_cases),
            CaseEvent: CaseEvent.objects.using(db).filter(in_cases),
            CaseInvoice: CaseInvoice.objects.using(db).filter(in_cases),
            # Amounts, dates and invoice numbers (kept by --anonymize, like the invoice
            # snapshots: the charges are figures the host booked).
            CaseCharge: CaseCharge.objects.using(db).filter(in_cases),
            BalanceObservation: BalanceObservation.objects.using(db).filter(in_cases),
            Dispute: Dispute.objects.using(db).filter(in_cases),
            PaymentPlan: PaymentPlan.objects.using(db).filter(in_cases),
            Feedback: Feedback.objects.using(db).filter(in_cases),
            PaymentAttempt: PaymentAttempt.objects.using(db).filter(Q(customer_id=pk) | in_cases),
            PreDunningNotice: PreDunningNotice.objects.using(db).filter(customer_id=pk),
            Notice: Notice.objects.using(db).filter(Q(customer_id=pk) | in_cases),
            Letter: Letter.objects.using(db).filter(Q(customer_key=self.key) | in_cases),
            WebhookDelivery: WebhookDelivery.objects.using(db).filter(
                Q(payload__case__customer=self.key)
                | (Q(payload__case__id__in=self.case_pks) if self.case_pks else Q(pk__in=[]))
            ),
            DeliveryEvent: DeliveryEvent.objects.using(db).filter(case_step__case__customer_id=pk),
            Consent: Consent.objects.using(db).filter(customer_key=self.key),
            PortalRevocation: PortalRevocation.objects.using(db).filter(customer_key=self.key),
            PortalSubmission: PortalSubmission.objects.using(db).filter(customer_key=self.key),
        }

    def __getitem__(self, model):
        return self.querysets[model]

    def addresses(self, host_row):
        """Every email address the customer had in dunning's rows, and the host's."""
        found = set()
        if host_row is not None and host_row.email:
            found.add(host_row.email)
        for model, name in ((CaseStep, "recipient"), (PreDunningNotice, "recipient"),
                            (DeliveryEvent, "recipient")):
            found.update(self[model].exclude(**{name: ""}).values_list(name, flat=True)
                         .distinct())
        return sorted({normalize_address(a) for a in found if "@" in (a or "")})

    def suppressions(self, addresses):
        return Suppression.objects.using(self.using).filter(address__in=addresses)

    def identifiers(self, host_row, addresses):
        """Lower-case texts that name or reach the customer (for the JSON scrub)."""
        texts = set(addresses)
        if host_row is not None:
            texts.update((host_row.name, host_row.email, host_row.phone))
        for model in (CaseStep, PreDunningNotice, DeliveryEvent):
            texts.update(self[model].exclude(recipient="").values_list("recipient", flat=True)
                         .distinct())
        return tuple(sorted({t.strip().lower() for t in texts if t and len(t.strip()) >= 3}))

    def has_data(self):
        return any(qs.exists() for qs in self.querysets.values())


def _host_row(pk, using):
    adapter = get_adapter()
    try:
        rows = adapter.customer_rows([pk])
    except Exception:  # noqa: BLE001 - a host that cannot read it: nothing to look for
        logger.warning("Could not read customer %s from the host", pk, exc_info=True)
        return None
    return next((row for key, row in rows.items() if str(key) == str(pk)), None)


def _refuse_if_collecting(scope, anonymize, today):
    pk = scope.pk
    open_cases = list(scope.cases.filter(status=Case.Status.OPEN).values_list("pk", flat=True))
    if open_cases:
        raise PrivacyError(_(
            "Customer %(pk)s has an open dunning case (%(cases)s): dunning still needs its "
            "data to collect the debt. Let the case be resolved or write it off first, then "
            "erase."
        ) % {"pk": pk, "cases": ", ".join(map(str, open_cases))})
    if scope[PaymentAttempt].filter(next_attempt_at__isnull=False).exists():
        raise PrivacyError(_(
            "Customer %(pk)s has a payment retry scheduled: dunning is still collecting. "
            "Let the retries finish first, then erase."
        ) % {"pk": pk})
    waiting = (CaseStep.Status.QUEUED, CaseStep.Status.SENDING)
    if scope[CaseStep].filter(status__in=waiting).exists():
        raise PrivacyError(_(
            "A message to customer %(pk)s is still waiting in the outbox: run "
            "'manage.py dunning drain' and erase afterwards."
        ) % {"pk": pk})
    if anonymize:
        return
    # The links that end dunning for the invoices of terminated and written-off cases go
    # with the cases: invoices still unpaid would be dunned again from the start.
    adapter = get_adapter()
    linked = CaseInvoice.objects.using(scope.using).filter(
        case__customer_id=pk, case__status__in=CLOSED_FOR_GOOD).values("invoice_id")
    unpaid = adapter.overdue_invoices(today).using(scope.using).filter(
        pk__in=Subquery(linked)).count()
    if unpaid:
        raise PrivacyError(ngettext(
            "Customer %(pk)s still owes %(count)d invoice whose dunning ended for good: with "
            "its cases erased the next run would dun it again from the start. Anonymize "
            "instead (--anonymize), or settle or delete the invoice in the host first.",
            "Customer %(pk)s still owes %(count)d invoices whose dunning ended for good: "
            "with its cases erased the next run would dun them again from the start. "
            "Anonymize instead (--anonymize), or settle or delete the invoices in the host "
            "first.",
            unpaid,
        ) % {"pk": pk, "count": unpaid})


# -- the two ways -----------------------------------------------------------------------------
def _latest_opt_outs(scope):
    """pks of the customer's latest consent entry per topic where that entry is an
    opt-out (granted False)."""
    latest = {}
    for pk, topic, granted in (scope[Consent].order_by("topic", "created_at", "pk")
                               .values_list("pk", "topic", "granted")):
        latest[topic] = (pk, granted)
    return sorted(pk for pk, granted in latest.values() if not granted)


def _letter_files(scope):
    return sorted(name for name in scope[Letter].exclude(pdf="").values_list("pdf", flat=True)
                  if name)


def _delete_files(names):
    from ..models.letters import letter_storage

    for name in names:
        try:
            letter_storage.delete(name)
        except Exception:  # noqa: BLE001 - a file that cannot go is logged, not fatal
            logger.warning("Could not delete the letter file %s", name, exc_info=True)


def _unreadable_events(scope, addresses):
    """Unreadable tracking events (raw ESP bodies nobody could parse, so not linked to a
    case) that mention one of the customer's addresses."""
    which = Q(pk__in=[])
    for address in addresses:
        which |= Q(body__icontains=address)
    return UnreadableTrackingEvent.objects.using(scope.using).filter(which)


def _keep_minimum(scope, report, addresses, now, dry_run, *, anonymize):
    """What both ways keep: hashed suppressions, the opt-outs, revoked links. (And what
    both delete: raw unreadable ESP bodies that mention the customer's address; a raw body
    cannot be scrubbed reliably.)"""
    unreadable = _unreadable_events(scope, addresses)
    unreadable_count = unreadable.count()
    if unreadable_count:
        report.add(UnreadableTrackingEvent._meta.label, "delete", unreadable_count,
                   "unreadable ESP bodies that mention the customer's address")
        if not dry_run:
            unreadable.delete()
    plain = scope.suppressions(addresses)
    rows = list(plain.values_list("address", "reason", "created_at"))
    report.add(Suppression._meta.label, "hash", len(rows),
               "suppressed address kept as a SHA-256 hash: still never emailed")
    consent = scope[Consent]
    if anonymize:
        report.add(Consent._meta.label, "scrub", consent.count(), "notes scrubbed")
    else:
        keep = _latest_opt_outs(scope)
        report.add(Consent._meta.label, "delete", consent.exclude(pk__in=keep).count())
        report.add(Consent._meta.label, "keep", len(keep),
                   "the latest opt-out per topic, note scrubbed: still not contacted")
    report.add(PortalRevocation._meta.label, "keep", 1,
               "every self-service link sent to the customer is revoked")
    submissions = scope[PortalSubmission]
    submitted = submissions.count()
    if submitted:
        report.add(PortalSubmission._meta.label, "delete", submitted,
                   "the keys of the self-service forms the customer sent")
    if dry_run:
        return
    submissions.delete()
    for address, reason, created_at in rows:
        Suppression.objects.using(scope.using).get_or_create(
            address=suppression_digest(address),
            defaults={"reason": reason, "created_at": created_at})
    plain.delete()
    if anonymize:
        consent.exclude(note="").update(note=ERASED)
    else:
        consent.exclude(pk__in=keep).delete()
        consent.exclude(note="").update(note=ERASED)
    PortalRevocation.objects.using(scope.using).update_or_create(
        customer_key=scope.key, defaults={"revoked_at": now})


def _erase(scope, report, dry_run):
    """Delete the customer's rows, children first (so that every count is exact)."""
    report.files = _letter_files(scope)
    order = (DeliveryEvent, Letter, Notice, PaymentAttempt, PreDunningNotice, WebhookDelivery,
             CaseEvent, CaseStep, CaseInvoice, CaseCharge, BalanceObservation, Dispute,
             PaymentPlan, Feedback, Case)
    counts = {model: scope[model].count() for model in order}
    for model in TABLES:
        if model in counts:
            report.add(model._meta.label, "delete", counts[model])
    if report.files:
        report.add("files", "delete", len(report.files), "letter PDFs in the letter storage")
    if dry_run:
        return
    for model in order:
        if counts[model]:
            scope[model].delete()


def _blank(queryset, *names):
    """Identifiers -> ""."""
    for name in names:
        queryset.exclude(**{name: ""}).update(**{name: ""})


def _erased(queryset, *names):
    """Free texts with content -> ERASED."""
    for name in names:
        queryset.exclude(**{name: ""}).exclude(**{name: ERASED}).update(**{name: ERASED})


def _scrub_json_field(queryset, name, identifiers, replace=None, within=False):
    changed = []
    for row in queryset.only("pk", name):
        value = getattr(row, name)
        new = replace if replace is not None else scrub_json(value, identifiers, within=within)
        if new != value:
            setattr(row, name, new)
            changed.append(row)
    if changed:
        queryset.model._base_manager.using(queryset.db).bulk_update(changed, [name],
                                                                    batch_size=500)


def _anonymize(scope, report, identifiers, now, dry_run):
    notes = {
        Case: "pause reason",
        CaseStep: "recipient, message id, failure reason",
        CaseEvent: "messages; non-structural strings of their data",
        Dispute: "reasons and resolutions",
        Feedback: "comments (the reason chosen stays)",
        PaymentAttempt: "payment method and transaction ids, messages",
        PreDunningNotice: "recipient, message id, payment method, reason, data",
        Notice: "title, text, link",
        Letter: "recipient address; PDF file deleted",
        WebhookDelivery: "payload strings that are not structural, last error",
        DeliveryEvent: "recipient, event id, description, ESP payload",
    }
    for model in TABLES:
        if model in notes:
            report.add(model._meta.label, "scrub", scope[model].count(), notes[model])
    report.files = _letter_files(scope)
    if report.files:
        report.add("files", "delete", len(report.files), "letter PDFs in the letter storage")
    if dry_run:
        return
    _erased(scope[Case], "pause_reason")
    _blank(scope[CaseStep], "recipient", "message_id")
    _erased(scope[CaseStep], "reason")
    # The invoice snapshots stay (the recovered amounts are summed from them), but for an
    # invoice number that names the customer.
    _scrub_json_field(scope[CaseStep], "invoices", identifiers, within=True)
    # The note each case gets about the anonymization is kept as written.
    events = scope[CaseEvent].exclude(data__has_key="privacy")
    _erased(events, "message")
    _scrub_json_field(events, "data", identifiers)
    _erased(scope[Dispute], "reason", "resolution")
    _erased(scope[Feedback], "text")
    _blank(scope[PaymentAttempt], "method_id", "next_method_id", "transaction_id")
    _erased(scope[PaymentAttempt], "message")
    notices = scope[PreDunningNotice]
    _blank(notices, "recipient", "message_id")
    _erased(notices, "reason")
    _scrub_json_field(notices, "data", identifiers)
    # A notice is sent once per (customer, kind, method, reference): a pseudonym per row
    # keeps them apart.
    for pk, method in notices.exclude(method_id="").values_list("pk", "method_id"):
        if not method.startswith("erased-"):
            PreDunningNotice.objects.using(scope.using).filter(pk=pk).update(
                method_id=f"erased-{pk}")
    _erased(scope[Notice], "title", "text")
    _blank(scope[Notice], "action_url")
    scope[Notice].filter(dismissed_at__isnull=True, resolved_at__isnull=True).update(
        resolved_at=now)
    letters = scope[Letter]
    _erased(letters, "recipient_address")
    letters.exclude(pdf="").update(pdf="", size=0)
    letters.filter(status=Letter.Status.READY).update(status=Letter.Status.CANCELLED)
    # ... and so is the webhook that tells the receivers about it.
    deliveries = scope[WebhookDelivery].exclude(payload__data__has_key="privacy")
    _scrub_json_field(deliveries, "payload", identifiers)
    _erased(deliveries, "last_error")
    delivery_events = scope[DeliveryEvent]
    _blank(delivery_events, "recipient")
    delivery_events.filter(event_id__isnull=False).update(event_id=None)
    _erased(delivery_events, "description")
    _scrub_json_field(delivery_events, "esp_event", identifiers, replace={})


def _note_anonymized(scope, erased_on, now):
    """One timeline note per case (once): the personal data was scrubbed, and when. (Its
    webhook, ``case.note`` with ``data.privacy``, tells receivers to scrub their copies.)"""
    for case in scope.cases.exclude(events__data__has_key="privacy").distinct():
        CaseEvent.objects.using(scope.using).create(
            case=case, kind=CaseEvent.Kind.NOTE, created_at=now,
            message=_("Personal data anonymized on %(date)s (data-protection request).")
            % {"date": erased_on.isoformat()},
            data={"privacy": "anonymized", "on": erased_on.isoformat()},
        )


# -- the entry point --------------------------------------------------------------------------
def erase_customer(customer_pk, anonymize=False, dry_run=False, *, using=DEFAULT_DB_ALIAS,
                   today=None):
    """Erase (delete) or, with ``anonymize``, scrub one customer's dunning data, in one
    transaction; with ``dry_run`` only count what would be done. Returns a
    :class:`Report`. Raises :class:`PrivacyError` for a pk that is not a customer id,
    for a customer neither the host nor dunning knows, and for a customer dunning is
    still collecting from (an open case, a scheduled payment retry, a message in the
    outbox; a hard erase also while invoices of its terminated or written-off cases are
    still unpaid). Idempotent: running it again finds nothing more to do."""
    pk = _resolve(customer_pk)
    now = timezone.now()
    today = today or timezone.localdate()
    with transaction.atomic(using=using):
        scope = _Scope(pk, using)
        host_row = _host_row(pk, using)
        addresses = scope.addresses(host_row)
        if host_row is None and not scope.has_data() and not scope.suppressions(addresses).exists():
            raise PrivacyError(_("There is no customer %(pk)s and no dunning data about it.")
                               % {"pk": pk})
        _refuse_if_collecting(scope, anonymize, today)
        report = Report(pk, anonymize, dry_run, host_row is not None, today)
        if anonymize:
            _anonymize(scope, report, scope.identifiers(host_row, addresses), now, dry_run)
        else:
            _erase(scope, report, dry_run)
        _keep_minimum(scope, report, addresses, now, dry_run, anonymize=anonymize)
        if not dry_run:
            if anonymize:
                _note_anonymized(scope, today, now)
            if report.files:
                files = list(report.files)
                transaction.on_commit(lambda: _delete_files(files), using=using)
    if not dry_run:
        # Counts only: the log is no place for the personal data just erased.
        logger.warning("dunning erase: customer %s %s on request: %s", pk,
                       "anonymized" if anonymize else "erased", report.summary())
    return report
