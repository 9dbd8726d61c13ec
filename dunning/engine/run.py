"""The imperative shell around ``schedule.decide``: one dunning run, in batches.

A run has four stages:

1. **drain** the outbox (engine/outbox.py): messages whose sender died while handing them
   over become "state unknown, check"; due retries and a crashed run's queued messages
   are sent (again once more at the end of the run, for retries that fell due meanwhile);
2. **open** a case for every customer with an open overdue invoice and no open case, in one
   ``INSERT ... SELECT`` (the partial unique index on open cases is the guard);
3. **advance** due cases batch by batch: claim them with ``select_for_update(skip_locked=True)``
   (on SQLite the run takes the database's write lock itself), decide each with the pure
   rules, and record steps, events and case state in bulk, in one transaction;
4. **send** the batch's queued messages outside that transaction through the outbox (lease
   them, hand them over, record each outcome, retry transient failures later), then fire
   the public signals.

Queries per batch are constant; nothing is fetched per customer.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import socket
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import signals, webhooks
from ..channels.base import step_info
from ..conf import agency_settings, dunning_settings, load_plugin
from ..db import insert_rows
from ..exceptions import DunningConfigurationError, RenderLimitError, TemplateRenderError
from ..failures import describe
from ..formatting import babel_locale, customer_timezone
from ..hosts import CustomerRow, get_adapter, get_customer_model
from ..messages import variants
from ..messages.history import customer_history, mentions_history
from ..messages.rendering import Renderer, build_context, company_context
from ..models import (
    Case,
    CaseCharge,
    CaseEvent,
    CaseInvoice,
    CaseStep,
    MessageTemplate,
    Policy,
    Run,
)
from ..models.consent import opted_out_channels
from ..models.policy import PAYMENT_RECEIVED
from ..rules.compliance import (
    Candidate,
    Compliance,
    ComplianceConfigError,
    compliance_spec,
    filter_batch,
    split_uncounted,
)
from ..rules.effects import (  # noqa: F401 (is_day: imported from here)
    AGENCY,
    RESOLVED,
    TERMINATED,
    CaseState,
    effects,
    is_day,
)
from ..rules.schedule import CaseFacts, Kind, PolicySpec, decide, policy_spec
from ..unsubscribe.links import message_link
from . import segments
from .actions import close_written_off
from .charging import Charging
from .charging import summary as charges_summary
from .holds import check_holds, disputed_numbers, open_disputes
from .outbox import Outbox
from .plans import check_payment_plans
from .pool import RenderPool, default_processes

logger = logging.getLogger("dunning.run")

ONE_DAY = datetime.timedelta(days=1)

# Cases whose invoices are never dunned again (CaseInvoice rows link them).
CLOSED_FOR_GOOD = (Case.Status.TERMINATED, Case.Status.WRITTEN_OFF)

# The columns of an executed step the run writes.
STEP_FIELDS = (
    "case", "run", "step_key", "action", "channel", "executed_on", "created_at", "status",
    "recipient", "language", "reason", "invoices", "message_id", "sent_at", "next_attempt_at",
    "variant",
)

# Case fields a run changes, written with grouped UPDATEs.
CASE_STATE_FIELDS = (
    "status",
    "closed_on",
    "last_step_key",
    "last_step_on",
    "suspended",
    "needs_person",
    "agency",
    "handed_over_on",
)

# Step actions that need no message: without a template of their own, the step records
# the action with status "no message" instead of failing (dunning.agency).
ACTION_ONLY = ("agency", "write_off")


def invoice_snapshot(invoices):
    """The invoices as an executed step records (and its message lists) them."""
    return [
        {
            "number": i.number,
            "amount_due": str(i.amount_due),
            "currency": i.currency,
            "due_date": i.due_date.isoformat(),
        }
        for i in sorted(invoices, key=lambda i: (i.due_date, i.number))
    ]


@dataclass
class RunResult:
    as_of: datetime.date
    dry_run: bool = False
    opened: int = 0
    executed: Counter = field(default_factory=Counter)
    resolved: int = 0
    terminated: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0  # transient send failures, queued again (see engine/outbox.py)
    unknown: int = 0  # messages whose sender died while handing them over
    held: int = 0  # due steps the compliance guards made wait (quiet hours, caps, holidays)
    abandoned: int = 0  # earlier runs whose lease had expired, marked abandoned by this one
    failures: list = field(default_factory=list)  # (case pk, reason)
    # {case pk: customer label} of failures whose customer the run knew (a dry run's case
    # that is not opened yet has a negative key of its own; see case_key).
    customers: dict = field(default_factory=dict)
    planned: list = field(default_factory=list)  # dry run: (customer label, step key)
    seconds: float = 0.0
    run_id: int | None = None

    def note_failure(self, key, reason, customer_label=""):
        """A case the run records (a dry run: would record) as failed."""
        self.failed += 1
        self.failures.append((key, reason))
        if customer_label:
            self.customers[key] = customer_label

    def as_dict(self):
        return {
            "as_of": self.as_of.isoformat(),
            "opened": self.opened,
            "executed": dict(self.executed),
            "resolved": self.resolved,
            "terminated": self.terminated,
            "sent": self.sent,
            "failed": self.failed,
            "retrying": self.retrying,
            "unknown": self.unknown,
            "held": self.held,
            "abandoned": self.abandoned,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class LoadedPolicy:
    policy: Policy
    spec: PolicySpec
    # (step_key, channel) -> variants.StepTemplates ({variant: {language: template}})
    templates: dict
    compliance: Compliance = None  # quiet hours, calendar, frequency caps


def case_key(case):
    """A batch's key of a case: its pk, or for a case a dry run would open (no pk yet) a
    negative number of its own."""
    return case.pk if case.pk is not None else -id(case)


def load_compliance(policy):
    """The policy's compliance rules; a policy whose settings do not parse (saved around
    the admin's validation) gets the defaults, and the error is logged."""
    try:
        return compliance_spec(policy, settings.TIME_ZONE or "UTC")
    except ComplianceConfigError as exc:
        logger.error("Policy %r: bad compliance settings, defaults used: %s", policy.key,
                     "; ".join(str(m) for m in exc.messages))
        return Compliance(default_tz=settings.TIME_ZONE or "UTC")


@dataclass(slots=True)
class Pending:
    """A queued message of this run: sent after the batch's transaction commits."""

    case_id: int
    customer_id: object
    step_key: str
    channel: str
    recipient: str
    invoices: list
    customer: CustomerRow
    template: int | None  # pk of the MessageTemplate (picklable for the render pool)
    step_info: dict
    failure: str = ""  # known before rendering: recorded as the step's failure reason
    as_of: datetime.date | None = None  # a queued row sent later: the day it was executed
    # The message's unsubscribe link (dunning.unsubscribe), issued once: the text the
    # render pool writes and the List-Unsubscribe header the outbox adds carry the same.
    unsubscribe_url: str = ""
    # What the message charges (dunning.charging): Charge.as_dict() values.
    charges: list = field(default_factory=list)
    # The customer's history (dunning.history) when a template of the run uses it.
    history: dict | None = None


@dataclass
class Batch:
    pending: list = field(default_factory=list)
    signals: list = field(default_factory=list)  # (signal, case) or (signal, case, kwargs)


#: Cases opened by one run from which the run refreshes the case table's statistics on
#: PostgreSQL (see DunningRun.refresh_case_statistics).
ANALYZE_AFTER_OPENING = 1000

# The stages of a run, in order. A scheduled tick (dunning/tasks.py) runs the set-wide
# ones ("drain", "open", "paid") once and leaves "due" to its shard tasks.
STAGES = ("drain", "open", "paid", "due")


def run_dunning(as_of=None, *, dry_run=False, batch_size=None, using=DEFAULT_DB_ALIAS,
                now=None):
    """Run dunning for ``as_of`` (default: today in the site's time zone); ``now``: the
    instant the run takes as the present (default: the clock)."""
    return DunningRun(as_of, dry_run=dry_run, batch_size=batch_size, using=using,
                      now=now).execute()


def on_date(as_of, now):
    """The instant a run of the date ``as_of`` takes as the present: ``now``, or for
    another date (a back-dated or replayed run, ``--as-of``) that date at ``now``'s time
    of day in the site's time zone. ``as_of`` None: ``now``."""
    if as_of is None:
        return now
    local = timezone.localtime(now)
    if as_of == local.date():
        return now
    return datetime.datetime.combine(as_of, local.timetz())


def run_lease():
    return datetime.timedelta(seconds=int(dunning_settings.RUN_LEASE_SECONDS))


def abandon_dead_runs(now, *, using=DEFAULT_DB_ALIAS, exclude=None):
    """Mark "running" runs whose lease expired before ``now`` abandoned (their process
    was killed: SIGKILL, OOM, a deploy); a run from before leases existed counts from
    its start. Returns how many. One guarded ``UPDATE``: a run that renews its lease
    meanwhile is left alone."""
    dead = Run.objects.using(using).filter(status=Run.Status.RUNNING).filter(
        Q(lease_expires_at__lt=now)
        | Q(lease_expires_at__isnull=True, started_at__lt=now - run_lease())
    )
    if exclude is not None:
        dead = dead.exclude(pk=exclude)
    count = dead.update(status=Run.Status.ABANDONED,
                        finished_at=Coalesce(F("lease_expires_at"), F("started_at")))
    if count:
        logger.warning("%d dunning run(s) abandoned: their process stopped without "
                       "recording an end", count)
    return count


class DunningRun:
    def __init__(self, as_of=None, *, dry_run=False, batch_size=None, using=DEFAULT_DB_ALIAS,
                 now=None):
        # Days overdue count in the site's time zone; with no explicit date, the date a
        # message shows is the customer's own (see local_today).
        self.explicit_date = as_of is not None
        self.as_of = as_of or timezone.localdate()
        # {customer pk as text: {channel, ...}} the customers of the batch opted out of.
        self.opted_out = {}
        self.disputed = {}  # customer pk -> its invoices held by a dispute (per batch)
        self._any_disputes = None  # whether any dispute is open: asked once per run
        self.history = {}  # customer pk -> dunning.history figures (when templates use them)
        self._reached = {}
        self.hold = {}  # case pk -> date (wait) or datetime (later today): compliance
        self.rules = []  # active policy rules (dunning.segments), loaded with the policies
        self.dry_run = dry_run
        self.batch_size = int(batch_size or dunning_settings.BATCH_SIZE)
        processes = dunning_settings.RENDER_PROCESSES
        self.render_processes = default_processes() if processes is None else int(processes)
        if self.batch_size < 1:
            raise DunningConfigurationError("DUNNING['BATCH_SIZE'] must be at least 1.")
        self.using = using
        self.adapter = get_adapter()
        self.channel = load_plugin("EMAIL_CHANNEL")
        self._channels = {"email": self.channel}
        self.renderer = Renderer()
        self.company = company_context()
        self.result = RunResult(as_of=self.as_of, dry_run=dry_run)
        self.run = None
        self.now = now or timezone.now()
        self.given_now = now  # a run told what time it is (tests, replays) keeps it
        self._skip = set()  # cases that failed even on their own: left for the next run
        self._local_today = {}
        self.batch_now = self.now
        self.deadline = None  # time.monotonic() after which no new due batch is claimed
        self.stopped_early = False  # the deadline stopped the due stage with cases left
        self.breakers = None  # the channels' circuit breakers (engine/breaker.py)
        self._renewed = None  # time.monotonic() of the last renewal of the run's lease

    # -- set-up -----------------------------------------------------------------------
    def load_policies(self):
        policies = {}
        self.templates = {}
        templates = defaultdict(variants.StepTemplates)
        for t in MessageTemplate.objects.using(self.using).all():
            templates[(t.policy_id, t.step_key, t.channel)].add(t)
            self.templates[t.pk] = t
        # The customer's history (dunning.history) costs queries: only when a template
        # uses it.
        self.uses_history = any(mentions_history(t.subject, t.text_body, t.html_body)
                                for t in self.templates.values())
        for policy in Policy.objects.using(self.using).prefetch_related("steps"):
            spec = policy_spec(policy)
            policy_templates = {
                (key, channel): arms
                for (pk, key, channel), arms in templates.items()
                if pk == policy.pk
            }
            policies[policy.pk] = LoadedPolicy(policy, spec, policy_templates,
                                               load_compliance(policy))
        self.policies = policies
        self.rules = segments.active_rules(self.using)
        self.charging = Charging(self)  # reminder fees and interest (dunning.charging)
        self.charge_rows = []
        key = dunning_settings.DEFAULT_POLICY
        default = next((p for p in policies.values() if p.policy.key == key), None)
        if default is None or not default.policy.is_active:
            raise DunningConfigurationError(
                f"There is no active dunning policy with the key {key!r} "
                "(DUNNING['DEFAULT_POLICY']). Run 'manage.py migrate dunning' to install the "
                "default policy, or activate one in the admin."
            )
        self.default_policy = default

    def template_pk(self, policy_pk, step_key, channel, language, *, variant=None,
                    case_pk=None):
        template = self.template_for(policy_pk, step_key, channel, language,
                                     variant=variant, case_pk=case_pk)
        return None if template is None else template.pk

    def template_for(self, policy_pk, step_key, channel, language, *, variant=None,
                     case_pk=None):
        """The template for a step in the customer's language, else the site's language,
        else English, else any language the step has; of the A/B ``variant`` recorded
        for the step, else of the variant the case draws (dunning.variants)."""
        return self.variant_template(policy_pk, step_key, channel, language,
                                     variant=variant, case_pk=case_pk)[1]

    def variant_template(self, policy_pk, step_key, channel, language, *, variant=None,
                         case_pk=None):
        """``(variant, template)`` of a step (see :meth:`template_for`); the variant is
        "" for a step without variants, None when a case without pk (a dry run's new
        case) would have to draw one."""
        templates = self.policies[policy_pk].templates
        # A channel without a template of its own says what the email says (the SMS
        # channel fits it to its length; a letter prints its HTML).
        arms = templates.get((step_key, channel)) or templates.get((step_key, "email"))
        if not arms:
            return variants.CONTROL, None
        return arms.choose(language, case_pk=case_pk, step_key=step_key, variant=variant)

    # -- the run ----------------------------------------------------------------------
    def execute(self, stages=STAGES, *, deadline=None):
        """Run the given ``stages`` (all by default; a dry run plans all of them).
        ``deadline``: a ``time.monotonic()`` value after which the due stage claims no
        new batch and sets ``stopped_early``."""
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown run stages: {sorted(unknown)}")
        self.deadline = deadline
        started = time.perf_counter()
        self.load_policies()
        self.charging.warn_stale_rates()
        if self.dry_run:
            self.plan_openings()
            self.plan_due_cases()
        else:
            self.run = Run.objects.using(self.using).create(
                as_of=self.as_of,
                started_at=self.now,
                host=f"{socket.gethostname()}:{os.getpid()}"[:255],
                lease_expires_at=self.clock() + run_lease(),
            )
            self._renewed = time.monotonic()
            self.result.run_id = self.run.pk
            try:
                self.result.abandoned = abandon_dead_runs(self.clock(), using=self.using,
                                                          exclude=self.run.pk)
                if "drain" in stages:
                    self.drain_stale_outbox()
                if "open" in stages:
                    self.open_cases()
                    # Payment plans from the self-service page: a missed instalment
                    # breaks the plan and ends its pause, so this run dunns again.
                    check_payment_plans(self.as_of)
                    # Broken promises counted, disputes that waited too long to staff.
                    holds = check_holds(self.as_of, now=self.clock(), run=self.run,
                                        using=self.using)
                    self._any_disputes = holds["open_disputes"]
                self.advance(paid="paid" in stages, due="due" in stages)
                # One more pass: transient send failures whose retry fell due meanwhile.
                self.drain_stale_outbox()
            except BaseException:
                self.mark_failed()
                raise
        self.result.seconds = time.perf_counter() - started
        if self.run is not None:
            Run.objects.using(self.using).filter(pk=self.run.pk).update(
                status=Run.Status.COMPLETED,
                finished_at=timezone.now(),
                summary=self.result.as_dict(),
            )
        return self.result

    def clock(self):
        """The present: the run's own "now" when it was given one (tests, replays),
        else the clock."""
        return self.given_now or timezone.now()

    def renew_lease(self):
        """Move the run's lease forward (at most every quarter of RUN_LEASE_SECONDS, so
        it costs one ``UPDATE`` now and then, not one per batch)."""
        if self.run is None or self._renewed is None:
            return
        if time.monotonic() - self._renewed < int(dunning_settings.RUN_LEASE_SECONDS) / 4:
            return
        self._renewed = time.monotonic()
        Run.objects.using(self.using).filter(pk=self.run.pk, status=Run.Status.RUNNING).update(
            lease_expires_at=self.clock() + run_lease())

    def mark_failed(self):
        """Record the run as failed. A run that failed because its database connection
        dropped gets a new connection for this, once; a run that cannot even do that is
        left "running" (and logged), never hidden behind a second error."""
        for attempt in (1, 2):
            try:
                Run.objects.using(self.using).filter(pk=self.run.pk).update(
                    status=Run.Status.FAILED, finished_at=timezone.now()
                )
                return
            except DatabaseError:
                connection = connections[self.using]
                if attempt == 2 or connection.in_atomic_block:
                    logger.exception("Could not record dunning run %s as failed", self.run.pk)
                    return
                connection.close()

    @contextmanager
    def write_transaction(self):
        """A transaction that holds the database's write lock from its first statement.

        On SQLite a deferred transaction that reads first and writes later fails at once
        with "database is locked" when another connection writes; one that writes first
        waits for the lock within the connection's timeout instead. Django leaves SQLite in
        deferred mode, so the run takes the lock itself by touching its own Run row.
        """
        with transaction.atomic(using=self.using):
            connection = connections[self.using]
            if connection.vendor == "sqlite" and self.run is not None:
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {Run._meta.db_table} SET status = status WHERE id = %s",
                        [self.run.pk],
                    )
            yield

    # -- querysets --------------------------------------------------------------------
    def overdue(self):
        """Open, overdue invoices, less those of terminated or written-off cases."""
        terminated = CaseInvoice.objects.filter(
            invoice=OuterRef("pk"), case__status__in=CLOSED_FOR_GOOD
        )
        return self.adapter.overdue_invoices(self.as_of).using(self.using).filter(~Exists(terminated))

    def customers_to_open(self):
        p = self.adapter.customer_annotation
        open_case = Case.objects.filter(customer=OuterRef(p), status=Case.Status.OPEN)
        return self.overdue().filter(~Exists(open_case)).order_by().values_list(p, flat=True).distinct()

    def open_case_set(self):
        return Case.objects.using(self.using).filter(status=Case.Status.OPEN)

    def due_cases(self):
        """Open cases whose next check date has come (an index range scan)."""
        return self.open_case_set().filter(next_due_on__lte=self.as_of)

    def paid_case_pks(self):
        """Open cases whose customer owes nothing overdue any more, whatever their next
        check date: one pass over the open cases, at the start of the run."""
        p = self.adapter.customer_annotation
        owing = self.overdue().filter(**{p: OuterRef("customer_id")})
        return list(
            self.open_case_set().filter(~Exists(owing)).order_by("pk").values_list("pk", flat=True)
        )

    # -- stage 1: drain ---------------------------------------------------------------
    def drain_stale_outbox(self):
        """The outbox's drain (see engine/outbox.py): leases of dead workers become
        "state unknown, check"; due retries and a crashed run's queued messages are sent."""
        Outbox(self).drain()

    # -- stage 2: open ----------------------------------------------------------------
    def open_cases(self):
        connection = connections[self.using]
        qn = connection.ops.quote_name
        source_sql, source_params = self.customers_to_open().query.sql_with_params()
        p = self.adapter.customer_annotation
        values = {
            "policy": self.default_policy.policy.pk,
            "status": Case.Status.OPEN,
            "opened_on": self.as_of,
            "opened_at": self.now,
            "opened_in": self.run.pk,
            "last_step_key": "",
            "next_due_on": self.as_of,
            "suspended": False,
            "needs_person": False,
            "updated_at": self.now,
        }
        columns, exprs, params = [], [], []
        for f in Case._meta.concrete_fields:
            if f.primary_key:
                continue
            columns.append(qn(f.column))
            if f.name == "customer":
                exprs.append(f"src.{qn(p)}")
            else:
                exprs.append("%s")
                value = values[f.name] if f.name in values else f.get_default()
                params.append(f.get_db_prep_save(value, connection))
        sql = (
            f"INSERT INTO {qn(Case._meta.db_table)} ({', '.join(columns)}) "
            f"SELECT {', '.join(exprs)} FROM ({source_sql}) src WHERE 1 = 1 "
            # A fixed order: two runs inserting overlapping customers cannot deadlock.
            f"ORDER BY src.{qn(p)} "
            "ON CONFLICT DO NOTHING"
        )
        with self.write_transaction(), connection.cursor() as cursor:
            cursor.execute(sql, params + list(source_params))
            self.result.opened = max(cursor.rowcount, 0)
            if self.result.opened:
                # Policy rules (dunning.segments): another policy than the default.
                segments.assign_new_cases(self, self.rules)
            webhooks.cases_opened(self)
        if self.result.opened >= ANALYZE_AFTER_OPENING:
            self.refresh_case_statistics()

    def refresh_case_statistics(self):
        """``ANALYZE`` the case table on PostgreSQL after this run opened many cases.

        The run's next set-wide query (:meth:`paid_case_pks`: open cases without an
        overdue invoice) is planned from the table's statistics; on a first run they still
        say "empty", and PostgreSQL then nests a scan of every invoice inside a scan of
        every case: 20,000 new cases took longer than 12 minutes. Sampling the table costs
        tens of milliseconds. A role that may not analyze the table only gets a warning
        from PostgreSQL; any error is logged and the run goes on."""
        connection = connections[self.using]
        if connection.vendor != "postgresql":
            return
        table = connection.ops.quote_name(Case._meta.db_table)
        try:
            with transaction.atomic(using=self.using), connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {table}")
        except DatabaseError:
            logger.warning("Could not refresh the statistics of %s", table, exc_info=True)

    # -- stage 3: advance -------------------------------------------------------------
    def advance(self, *, paid=True, due=True):
        if paid:
            paid_pks = self.paid_case_pks()
            for start in range(0, len(paid_pks), self.batch_size):
                chunk = paid_pks[start : start + self.batch_size]
                self.advance_batch(self.open_case_set().filter(pk__in=chunk), deliver=True)
        if not due:
            return
        pool, in_flight, first = None, None, True
        try:
            while True:
                # Past the deadline, stop claiming (after one batch at least: no run
                # hands everything on without doing anything).
                if not first and self.deadline is not None and time.monotonic() >= self.deadline:
                    self.stopped_early = True
                    break
                first = False
                batch = self.advance_batch(self.due_cases(), deliver=pool is None)
                if batch is None:
                    break
                if pool is None:
                    # This batch was delivered in-process. A full batch means a big run:
                    # from the next batch on, render in the pool.
                    if len(batch.pending) >= self.batch_size // 2 and self.render_processes > 1:
                        pool = RenderPool.start(self, self.render_processes)
                    continue
                # Pipelined: the workers render this batch while the previous one is sent
                # and the next one is claimed and recorded.
                try:
                    futures = pool.submit(batch.pending) if batch.pending else []
                except Exception:
                    logger.exception("The render pool failed; rendering in-process from now on")
                    pool.close()
                    pool = None
                    self.render_processes = 1
                    if in_flight is not None:
                        self.deliver(in_flight[0])
                        in_flight = None
                    self.deliver(batch)
                    continue
                if in_flight is not None:
                    self.deliver_rendered(pool, *in_flight)
                in_flight = (batch, futures)
            if in_flight is not None:
                self.deliver_rendered(pool, *in_flight)
        finally:
            if pool is not None:
                pool.close()

    def advance_batch(self, queryset, *, deliver):
        """Claim one batch of ``queryset`` and record it; with ``deliver``, also send its
        messages and fire its signals. Returns the batch, or None when nothing was due."""
        claimed = []
        try:
            with self.write_transaction():
                claimed = self.claim(queryset)
                if not claimed:
                    return None
                batch = self.process(claimed)
        except Exception:
            if not claimed:
                raise  # the claim itself failed: a database problem, not a bad row
            logger.exception("Dunning batch failed; retrying its cases one by one")
            for case in claimed:
                self.advance_one(case.pk)
            return Batch()
        if deliver:
            self.deliver(batch)
        self.renew_lease()
        return batch

    def deliver(self, batch, rendered=None):
        self.send(batch, rendered)
        self.fire(batch)

    def deliver_rendered(self, pool, batch, futures):
        try:
            rendered = pool.results(futures) if futures else []
        except Exception:
            logger.exception("The render pool failed; rendering this batch in-process")
            rendered = None
        self.deliver(batch, rendered)

    def claim(self, queryset):
        if self._skip:
            queryset = queryset.exclude(pk__in=self._skip)
        return list(
            queryset.select_for_update(skip_locked=True, of=("self",))
            .order_by("next_due_on", "pk")[: self.batch_size]
        )

    def advance_one(self, pk):
        """Process one case on its own, so that one bad row cannot stop the others."""
        try:
            with self.write_transaction():
                claimed = self.claim(self.open_case_set().filter(pk=pk))
                batch = self.process(claimed) if claimed else Batch()
        except Exception as exc:
            logger.exception("Dunning case %s failed", pk)
            self.record_case_failure(pk, exc)
            return
        self.deliver(batch)

    def record_case_failure(self, pk, exc):
        reason = describe(exc)
        self.result.failed += 1
        self.result.failures.append((pk, reason))
        try:
            with self.write_transaction():
                Case.objects.using(self.using).filter(pk=pk).update(
                    next_due_on=self.as_of + ONE_DAY, needs_person=True
                )
                CaseEvent.objects.using(self.using).create(
                    case_id=pk, run=self.run, kind=CaseEvent.Kind.ERROR,
                    created_at=timezone.now(), message=reason,
                )
        except Exception:
            logger.exception("Could not record the failure of dunning case %s", pk)
            self._skip.add(pk)
        else:
            self._skip.add(pk)

    def gather(self, cases):
        """Facts for a batch: open overdue invoices, customers and done steps (3 queries)."""
        p = self.adapter.customer_annotation
        customer_ids = {c.customer_id for c in cases}
        invoices = defaultdict(list)
        for row in self.adapter.invoice_rows(self.overdue().filter(**{f"{p}__in": customer_ids})):
            invoices[row.customer_id].append(row)
        # A disputed invoice is held: not demanded, listed or charged until its dispute is
        # resolved; the rest of the debt keeps its schedule (dunning.engine.holds).
        # Most runs have no open dispute at all: one EXISTS per run instead of a query per
        # batch (a dispute opened while the run goes counts from the next run on).
        if self._any_disputes is None:
            self._any_disputes = open_disputes(self.using).exists()
        held = (disputed_numbers([c.pk for c in cases], using=self.using)
                if self._any_disputes else {})
        self.disputed = {}  # customer pk -> the invoice rows held by a dispute
        for case in cases:
            numbers = held.get(case.pk)
            rows = invoices.get(case.customer_id)
            if numbers and rows:
                kept = [row for row in rows if str(row.number) not in numbers]
                if len(kept) < len(rows):
                    self.disputed[case.customer_id] = [
                        row for row in rows if str(row.number) in numbers]
                    invoices[case.customer_id] = kept
        customers = self.adapter.customer_rows(customer_ids)
        self.opted_out = opted_out_channels(customer_ids, using=self.using)
        self._reached = {}  # reach() per batch: the guards and the step row ask the same
        self.history = (customer_history(customer_ids, as_of=self.as_of, using=self.using,
                                         adapter=self.adapter)
                        if self.uses_history else {})
        done = defaultdict(set)
        case_pks = [c.pk for c in cases if c.pk is not None]
        if case_pks:
            for case_id, key in CaseStep.objects.using(self.using).filter(
                case_id__in=case_pks
            ).values_list("case_id", "step_key"):
                done[case_id].add(key)
        return invoices, customers, done

    #: The rule that decides a case (send-now: ``decide_now``).
    decide_rule = staticmethod(decide)

    def decide(self, case, invoices, done):
        return self.decide_rule(self.policies[case.policy_id].spec,
                         self.case_facts(case, invoices, done), self.as_of)

    def case_facts(self, case, invoices, done):
        """The rules' view of a case (schedule.CaseFacts)."""
        balances = {}
        for inv in invoices:
            balances[inv.currency] = balances.get(inv.currency, Decimal(0)) + inv.amount_due
        return CaseFacts(
            oldest_due=min((i.due_date for i in invoices), default=None),
            balances=balances,
            done_keys=frozenset(done),
            last_step_on=case.last_step_on,
            paused_until=case.paused_until,
            disputed=case.customer_id in self.disputed,
            at_agency=bool(case.agency),
        )

    def process(self, cases):
        """Decide and record a claimed batch (inside the write transaction)."""
        self.batch_now = self.clock()  # one instant for a run given "now"
        invoices, customers, done = self.gather(cases)
        batch = Batch()
        steps, events, links, changed = [], [], [], []
        decisions = self.decide_batch(cases, invoices, done)
        self.hold = self.compliance_holds(cases, decisions, customers)
        self.charge_rows = []
        if self.charging.any:
            self.charging.prepare(cases, invoices)
        for case in cases:
            try:
                invs = invoices.get(case.customer_id, [])
                decision = decisions[case_key(case)]
                if isinstance(decision, Exception):
                    raise decision
                self.apply(case, decision, invs, customers.get(case.customer_id),
                           done.get(case.pk, set()), batch, steps, events, links)
            except Exception as exc:
                logger.exception("Dunning case %s failed", case.pk)
                reason = describe(exc)
                known = customers.get(case.customer_id)
                self.result.note_failure(case.pk, reason, known.label if known else "")
                case.next_due_on = self.as_of + ONE_DAY
                case.needs_person = True
                events.append(self.event(case, CaseEvent.Kind.ERROR, reason))
            changed.append(case)
        db = self.using
        insert_rows(CaseStep, steps, STEP_FIELDS, db)
        if events:
            CaseEvent.objects.using(db).bulk_create(events)
        if links:
            CaseInvoice.objects.using(db).bulk_create(links, ignore_conflicts=True)
        if self.charge_rows:
            CaseCharge.objects.using(db).bulk_create(self.charge_rows)
        self.save_cases(changed)
        webhooks.batch_recorded(self, changed, steps, events)
        return batch

    def decide_batch(self, cases, invoices, done):
        """{case key: Decision, or the exception deciding raised} of a batch: decided
        before anything is recorded, so the compliance guards see the whole batch."""
        decisions = {}
        for case in cases:
            try:
                decisions[case_key(case)] = self.decide(
                    case, invoices.get(case.customer_id, []), done.get(case.pk, ()))
            except Exception as exc:  # the caller records it like a failure to apply
                decisions[case_key(case)] = exc
        return decisions

    # -- compliance guards (dunning.engine.compliance, docs/compliance.md) ----------------
    @property
    def send_clock(self):
        """The instant the run's messages would go out: now, or for a run of another date
        (``--as-of``) that date at the present time of day."""
        if self.given_now is not None:
            return self.given_now
        return on_date(self.as_of if self.explicit_date else None, self.batch_now)

    def compliance_holds(self, cases, decisions, customers):
        """{case pk: date or datetime} for the batch's due steps that may not go out now:
        a date when the step waits for that day (quiet hours or a holiday until then, or a
        frequency cap), a datetime when it goes out later today (queued until then)."""
        clock = self.send_clock
        candidates, rules = [], {}
        for case in cases:
            decision = decisions.get(case_key(case))
            customer = customers.get(case.customer_id)
            if (isinstance(decision, Exception) or customer is None
                    or decision.kind is not Kind.EXECUTE):
                continue
            step = decision.step
            # The guards apply to the channel the message will actually go by (the
            # fallback when the customer cannot be reached on the first); a customer who
            # opted out of every channel gets nothing, which no guard needs to hold.
            try:
                channel, _address, _failure, skipped, _note = self.reach(
                    customer, step.channel, step.fallback, step.required)
            except Exception:  # a channel that is not set up: apply() records the failure
                continue
            if skipped:
                continue
            rules[case_key(case)] = compliance = self.policies[case.policy_id].compliance
            at = (clock if compliance.unrestricted(channel)
                  else compliance.send_time(clock, customer.timezone, channel))
            candidates.append(Candidate(
                customer=case.customer_id, case=case_key(case), channel=channel, at=at,
                tz=customer.timezone, cap=compliance.cap,
            ))
        if not candidates:
            return {}
        history = self.sent_history(candidates, rules)
        counted, free = split_uncounted(candidates, history)
        plan = filter_batch(counted, history, default_tz=settings.TIME_ZONE or "UTC")
        plan.allowed.extend(free)
        holds = {}
        for held in plan.held:
            c = held.candidate
            at = rules[c.case].send_time(held.retry_at, c.tz, c.channel)
            holds[c.case] = max(timezone.localtime(at).date(), self.as_of + ONE_DAY)
        for c in plan.allowed:
            if c.at > clock:
                day = timezone.localtime(c.at).date()
                holds[c.case] = day if day > self.as_of else c.at
        return holds

    def sent_history(self, candidates, rules):
        """{customer pk: [(instant, channel), ...]} of the messages of these customers
        over all their cases within the longest frequency cap (one query). A message
        counts from the day its step was executed."""
        longest = max((r.cap.longest for r in rules.values()), default=1)
        since = self.as_of - datetime.timedelta(days=longest + 1)
        history = defaultdict(list)
        zone = timezone.get_current_timezone()
        rows = CaseStep.objects.using(self.using).filter(
            case__customer_id__in={c.customer for c in candidates}, executed_on__gte=since,
            status__in=[CaseStep.Status.QUEUED, CaseStep.Status.SENDING, CaseStep.Status.SENT,
                        CaseStep.Status.UNKNOWN],
        ).values_list("case__customer_id", "executed_on", "created_at", "channel")
        for customer_id, executed_on, created_at, channel in rows:
            local = timezone.localtime(created_at, zone).timetz()
            history[customer_id].append((datetime.datetime.combine(executed_on, local), channel))
        return history

    def event(self, case, kind, message="", **data):
        return CaseEvent(case=case, run=self.run, kind=kind, created_at=self.batch_now,
                         message=message, data=data)

    def step_spec(self, case, key):
        """The StepSpec of ``key`` in the case's policy (None for the thank-you)."""
        return next((s for s in self.policies[case.policy_id].spec.steps if s.key == key), None)

    def channel_for(self, key):
        """The channel of ``key`` ("email": ``EMAIL_CHANNEL``; others: ``CHANNELS``),
        built once per run."""
        channel = self._channels.get(key)
        if channel is None:
            # Channels that write rows (letters, in-app notices) write to the run's database.
            channel = load_plugin("CHANNELS", key, optional={"using": self.using})
            if channel is None:
                raise DunningConfigurationError(
                    f"No channel {key!r}: add it to DUNNING['CHANNELS']."
                )
            self._channels[key] = channel
        return channel

    def reach(self, customer, channel, fallback="", required=False):
        """How to reach the customer for a step on ``channel``: ``(channel, address,
        failure, skipped, note)``. The fallback channel is used when the first cannot
        reach them (no phone number, a suppressed address) or they opted out of it (unless
        the step is a required notice); ``note`` says why. ``skipped``: opted out of
        every channel tried."""
        key = (customer.pk, channel, fallback, required)
        reached = self._reached.get(key)
        if reached is None:
            reached = self._reached[key] = self._reach(customer, channel, fallback, required)
        return reached

    def _reach(self, customer, channel, fallback, required):
        opted_out = self.opted_out.get(str(customer.pk), ())
        first_problem, opt_outs = "", 0
        for candidate in dict.fromkeys(c for c in (channel, fallback) if c):
            if candidate in opted_out and not required:
                problem = _("The customer opted out of %(channel)s.") % {"channel": candidate}
                opt_outs += 1
            else:
                address, problem = self.channel_for(candidate).recipient(customer)
                if not problem:
                    note = "" if candidate == channel else _(
                        "Sent by %(fallback)s instead of %(channel)s: %(reason)s") % {
                        "fallback": candidate, "channel": channel, "reason": first_problem}
                    return candidate, address, "", False, note
            first_problem = first_problem or problem
        tried = len(dict.fromkeys(c for c in (channel, fallback) if c))
        return channel, "", first_problem, opt_outs == tried, ""

    def step_row(self, case, key, action, channel, customer, invoices, events, required=False,
                 fallback="", silent=False):
        """The row of an executed step (a dict of CaseStep fields). A customer who opted
        out of the channel gets no message (status skipped), unless the step is a required
        notice; the step's fallback channel is tried before giving up. ``silent``: an
        action-only step without a message (status "no message"). A message sent by the
        fallback channel adds its timeline note to ``events``."""
        if silent:
            address, reason, skipped, note = "", "", False, ""
        else:
            channel, address, reason, skipped, note = self.reach(customer, channel, fallback,
                                                                 required)
        # The A/B variant of the message (dunning.variants): drawn for the case and step,
        # recorded, and the one queue() and a later drain of the row send.
        variant = "" if silent or skipped else self.variant_template(
            case.policy_id, key, channel, customer.language, case_pk=case.pk)[0] or ""
        row = {
            "case": case.pk,
            "run": self.run.pk,
            "step_key": key,
            "action": action,
            "channel": channel,
            "executed_on": self.as_of,
            # Stamped when queued, not when the run started: a later run drains only
            # messages left queued for OUTBOX_STALE_AFTER, never a live run's new batch.
            "created_at": self.batch_now,
            "status": (CaseStep.Status.NO_MESSAGE if silent else
                       CaseStep.Status.SKIPPED if skipped else
                       CaseStep.Status.FAILED if reason else CaseStep.Status.QUEUED),
            "recipient": (address or customer.email)[:320],
            "language": customer.language[:16],
            "reason": reason,
            "invoices": invoice_snapshot(invoices),
            "message_id": "",
            "sent_at": None,
            "next_attempt_at": None,
            "variant": variant,
        }
        if reason and not skipped:
            case.needs_person = True
            self.result.note_failure(case.pk, reason, customer.label)
        if note:
            events.append(self.event(case, CaseEvent.Kind.FALLBACK, note, step_key=key,
                                     channel=channel))
        return row

    def apply(self, case, decision, invoices, customer, done_keys, batch, steps, events, links):
        """Record a case's decision: its step row, events, signals, queued message and
        new state, as ``effects()`` (dunning.rules.effects) says. ``done_keys``: the keys
        of the steps the case executed before."""
        effect = effects(decision, CaseState(self.as_of, bool(done_keys), case.suspended,
                                             self.hold.get(case_key(case))))
        case.next_due_on = effect.next_due_on
        if effect.step is None and not effect.status and not effect.held:
            return  # wait, or nothing more until something changes
        if customer is None:
            raise LookupError(f"customer {case.customer_id} of case {case.pk} not found")
        if effect.status == RESOLVED:
            case.status = Case.Status.RESOLVED
            case.closed_on = effect.closed_on
            self.result.resolved += 1
            events.append(self.event(case, CaseEvent.Kind.RESOLVED))
            if effect.thank_you:
                row = self.step_row(case, PAYMENT_RECEIVED, "", "email", customer, [], events)
                steps.append(row)
                self.queue(batch, row, case, customer, {"key": PAYMENT_RECEIVED})
            batch.signals.append((signals.case_resolved, case))
            if effect.restore:
                case.suspended = False
                events.append(self.event(case, CaseEvent.Kind.RESTORED))
                batch.signals.append((signals.service_restored, case))
            return
        if effect.held:  # quiet hours, a holiday or a frequency cap: wait for that day
            self.result.held += 1
            return
        step = effect.step
        # Before anything is recorded: an agency that is not set up fails the case here.
        agency, agency_name = self.step_agency(case, step) if effect.hand_over else ("", "")
        silent = step.action in ACTION_ONLY and self.template_for(
            case.policy_id, step.key, step.channel, customer.language, case_pk=case.pk) is None
        row = self.step_row(case, step.key, step.action, step.channel, customer, invoices,
                            events, step.required, step.fallback, silent=silent)
        if effect.send_at is not None and row["status"] == CaseStep.Status.QUEUED:
            # Goes out later today: queued until then and sent by the outbox's drain.
            row["next_attempt_at"] = effect.send_at
        steps.append(row)
        self.result.executed[step.key] += 1
        case.last_step_key = step.key
        case.last_step_on = self.as_of
        info = step_info(step)
        charges = self.charge(case, step, done_keys, row, batch, events) if effect.charge else []
        self.queue(batch, row, case, customer, info, charges)
        if effect.suspend:
            case.suspended = True
            events.append(self.event(case, CaseEvent.Kind.SUSPENDED, step_key=step.key))
            batch.signals.append((signals.service_suspended, case))
        elif effect.status == TERMINATED:
            case.status = Case.Status.TERMINATED
            case.closed_on = effect.closed_on
            self.result.terminated += 1
            events.append(self.event(case, CaseEvent.Kind.TERMINATED, step_key=step.key))
            # The disputed invoices too: no later case dunns them without their dispute.
            links.extend(CaseInvoice(case=case, invoice_id=i.pk)
                         for i in [*invoices, *self.disputed.get(case.customer_id, ())])
            batch.signals.append((signals.account_terminated, case))
        elif effect.hand_over:
            case.agency, case.handed_over_on = agency, self.as_of
            events.append(self.event(
                case, CaseEvent.Kind.HANDED_OVER,
                _("Handed over to %(agency)s.") % {"agency": agency_name},
                agency=agency, step_key=step.key))
            batch.signals.append((signals.case_handed_over, case))
        elif effect.write_off:
            close_written_off(case, _("Written off by the step %(step)s.") % {"step": step.key},
                              None, self.as_of, using=self.using, run=self.run,
                              step_key=step.key)

    def step_agency(self, case, step):
        """(key, name) of the agency a hand-over ``step`` of the case's policy names (or
        the default one); DunningConfigurationError when it is not set up."""
        named = next((s.agency for s in self.policies[case.policy_id].policy.steps.all()
                      if s.key == step.key), "")
        key, config = agency_settings(named)
        return key, config["name"]

    def hand_over_failure(self, case, key, action):
        """Why the run would fail the hand-over step ``key`` of the case (its agency is not
        set up), as the run records it; "" when it would not, or for another step. The dry
        run and the plan ask, as apply() fails the case before recording anything."""
        if action != AGENCY:
            return ""
        try:
            self.step_agency(case, self.step_spec(case, key))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:2000]
        return ""

    def charge(self, case, step, done_keys, row, batch, events):
        """The reminder fees and interest of a queued step (dunning.charging): recorded
        with the batch, noted on the timeline, handed to the host by ``fees_charged``;
        returns their values for the message."""
        if not self.charging.any or row["status"] != CaseStep.Status.QUEUED:
            return []
        charges = self.charging.charges_for_step(case, step, done_keys)
        if not charges:
            return []
        rows, values = self.charging.record(case, step.key, charges, self.batch_now)
        self.charge_rows.extend(rows)
        events.append(self.event(case, CaseEvent.Kind.CHARGED,
                                 charges_summary(values, babel_locale("")),
                                 step_key=step.key, charges=values))
        batch.signals.append((signals.fees_charged, case,
                              {"step_key": step.key, "charges": values}))
        return values

    def queue(self, batch, row, case, customer, info, charges=()):
        if row["status"] != CaseStep.Status.QUEUED or row["next_attempt_at"] is not None:
            return
        template = self.template_pk(case.policy_id, row["step_key"], row["channel"],
                                    customer.language, variant=row["variant"], case_pk=case.pk)
        batch.pending.append(Pending(
            case_id=case.pk, customer_id=case.customer_id, step_key=row["step_key"],
            channel=row["channel"], recipient=row["recipient"], invoices=row["invoices"],
            customer=customer, template=template, step_info=info,
            unsubscribe_url=self.unsubscribe_url(case.customer_id, row["channel"], info),
            charges=list(charges),
            history=self.history.get(case.customer_id),
        ))

    def save_cases(self, cases):
        """Write the batch's case state with as few UPDATEs as the values allow."""
        if not cases:
            return
        manager = Case.objects.using(self.using)
        by_state = defaultdict(list)
        for case in cases:
            by_state[tuple(getattr(case, f) for f in CASE_STATE_FIELDS)].append(case)
        for state, group in by_state.items():
            manager.filter(pk__in=[c.pk for c in group]).update(
                updated_at=self.now, **dict(zip(CASE_STATE_FIELDS, state, strict=True))
            )
        by_date = defaultdict(list)
        for case in cases:
            by_date[case.next_due_on].append(case.pk)
        per_query = 300  # rows one bulk_update statement carries on SQLite (999 parameters)
        if len(by_date) <= max(2, math.ceil(len(cases) / per_query)):
            for day, pks in by_date.items():
                manager.filter(pk__in=pks).update(next_due_on=day)
        else:
            manager.bulk_update(cases, ["next_due_on"])

    # -- stage 4: send ----------------------------------------------------------------
    def local_today(self, tz_name):
        """The run's date in the customer's time zone (an unknown zone falls back to the
        site's). A run for an explicit ``--as-of`` date shows that date to everyone."""
        if self.explicit_date:
            return self.as_of
        today = self._local_today.get(tz_name)
        if today is None:
            today = self._local_today[tz_name] = self.now.astimezone(customer_timezone(tz_name)).date()
        return today

    def render_item(self, item):
        """(subject, text, html) of a queued message, or the reason it cannot be rendered.
        Pure: runs in this process or in a worker of the render pool."""
        if item.failure:
            return item.failure
        try:
            if item.template is None:
                raise TemplateRenderError(f"no {item.channel} template for step {item.step_key!r}")
            context = build_context(
                customer=item.customer,
                invoices=item.invoices,
                step=item.step_info,
                as_of=item.as_of or self.as_of,
                locale=babel_locale(item.customer.language),
                company=self.company,
                today=self.local_today(item.customer.timezone),
                # The same link as the List-Unsubscribe header (engine/outbox.py).
                unsubscribe_url=item.unsubscribe_url,
                charges=item.charges,
                history=item.history,
            )
            return self.renderer.render(self.templates[item.template], context)
        except RenderLimitError as exc:  # its message says which limit, for staff
            return str(exc)[:2000]
        except Exception as exc:
            return describe(exc)

    def unsubscribe_url(self, customer_id, channel, step_info):
        """The unsubscribe link of a message ("" for a legally required notice), issued
        at the run's time; set once on its ``Pending`` item."""
        return message_link(customer_id, channel, issued=self.now,
                            required=step_info.get("required", False))

    def render(self, batch):
        return [self.render_item(item) for item in batch.pending]

    def send(self, batch, rendered=None):
        """Send a batch's queued messages (rendered here unless the pool did it) through
        the outbox (engine/outbox.py), which records each outcome."""
        if not batch.pending:
            return
        if rendered is None:
            rendered = self.render(batch)
        Outbox(self).send(batch.pending, rendered)

    def fire(self, batch):
        if not batch.signals:
            return
        customers = get_customer_model()._default_manager.using(self.using).in_bulk(
            {entry[1].customer_id for entry in batch.signals}
        )
        errors = []
        for signal, case, *kwargs in batch.signals:
            customer = customers.get(case.customer_id)
            extra = dict(kwargs[0]) if kwargs else {}
            if signal is signals.case_handed_over:
                extra["agency"] = case.agency
            errors.extend(self.event(case, CaseEvent.Kind.SIGNAL_ERROR, failure) for failure in
                          signals.send_robust(signal, Case, case=case, customer=customer, **extra))
        if errors:
            with self.write_transaction():
                CaseEvent.objects.using(self.using).bulk_create(errors)
                webhooks.events_created(errors, self.using, run=self)

    # -- dry run ----------------------------------------------------------------------
    def plan_openings(self):
        p = self.adapter.customer_annotation
        source = self.customers_to_open().order_by(p)
        last = None
        while True:
            page = source if last is None else source.filter(**{f"{p}__gt": last})
            ids = list(page[: self.batch_size])
            if not ids:
                return
            last = ids[-1]
            self.result.opened += len(ids)
            policies = self.planned_policies(ids)
            cases = [
                Case(customer_id=cid, policy_id=policies.get(cid, self.default_policy.policy.pk),
                     status=Case.Status.OPEN, last_step_key="")
                for cid in ids
            ]
            self.plan(cases)

    def planned_policies(self, customer_ids):
        """{customer pk: policy pk} the policy rules would give new cases (dry run)."""
        if not self.rules:
            return {}
        facts = segments.gather_facts(self, customer_ids, [])
        chosen = {cid: segments.choose(self.rules, facts[cid], int(dunning_settings.CHRONIC_AFTER))
                  for cid in customer_ids}
        return {cid: rule.policy_id for cid, rule in chosen.items() if rule is not None}

    def plan_due_cases(self):
        paid = self.paid_case_pks()
        for start in range(0, len(paid), self.batch_size):
            self.plan(list(self.open_case_set().filter(pk__in=paid[start : start + self.batch_size])))
        paid = set(paid)
        last = 0
        while True:
            cases = list(self.due_cases().filter(pk__gt=last).order_by("pk")[: self.batch_size])
            if not cases:
                return
            last = cases[-1].pk
            self.plan([c for c in cases if c.pk not in paid])

    def plan(self, cases):
        invoices, customers, done_keys = self.gather(cases)
        decisions = self.decide_batch(cases, invoices, done_keys)
        holds = self.compliance_holds(cases, decisions, customers)
        for case in cases:
            decision = decisions[case_key(case)]
            customer = customers.get(case.customer_id)
            if isinstance(decision, Exception):
                self.result.note_failure(
                    case.pk if case.pk is not None else case_key(case),
                    describe(decision),
                    customer.label if customer else "")
                continue
            effect = effects(decision, CaseState(self.as_of, bool(done_keys.get(case.pk)),
                                                 case.suspended, holds.get(case_key(case))))
            if effect.held:
                self.result.held += 1
                continue
            if effect.step is not None:
                step = effect.step
                self.result.executed[step.key] += 1
                if effect.status == TERMINATED:
                    self.result.terminated += 1
                info = step_info(step)
                self.planned(case, customer, step.key, step.action, step.channel,
                             invoices.get(case.customer_id, []), info)
            elif effect.status == RESOLVED:
                self.result.resolved += 1
                if effect.thank_you:
                    self.planned(case, customer, PAYMENT_RECEIVED, "", "email", [],
                                 {"key": PAYMENT_RECEIVED}, resolves=True)

    def planned(self, case, customer, key, action, channel, invoices, info, *, resolves=False):
        """A message the dry run would send (a hook: ``dunning plan`` renders it too), and
        the failure the real run would record for it (no or an invalid address, a
        suppressed one, a channel that is not set up, a template that does not render)."""
        label = customer.label if customer else f"#{case.customer_id}"
        self.result.planned.append((label, key))
        problem = self.planned_failure(case, customer, key, action, channel, invoices, info)
        if problem:
            self.result.note_failure(case.pk if case.pk is not None else case_key(case),
                                     problem, label)

    def planned_failure(self, case, customer, key, action, channel, invoices, info):
        """Why the real run would record the planned message as failed ("": it would
        not), by the same checks: reach() as step_row() does, then the rendering."""
        if customer is None:
            return f"LookupError: customer {case.customer_id} of case {case.pk} not found"
        problem = self.hand_over_failure(case, key, action)
        if problem:
            return problem
        if action in ACTION_ONLY and self.template_for(
                case.policy_id, key, channel, customer.language, case_pk=case.pk) is None:
            return ""  # an action without a message
        spec = self.step_spec(case, key)
        try:
            channel, address, reason, skipped, _note = self.reach(
                customer, channel, spec.fallback if spec else "", spec.required if spec else False)
        except Exception as exc:  # a channel that is not set up fails the case
            return describe(exc)
        if skipped:
            return ""  # opted out: skipped, not failed
        if reason:
            return reason
        rendered = self.render_planned(case, customer, key, channel, address, invoices, info)
        return rendered if isinstance(rendered, str) else ""

    def render_planned(self, case, customer, key, channel, address, invoices, info):
        """The rendering of a planned message: (subject, text, html) or why it fails."""
        _variant, template = self.variant_template(
            case.policy_id, key, channel, customer.language, case_pk=case.pk)
        return self.render_item(Pending(
            case_id=case.pk, customer_id=case.customer_id, step_key=key, channel=channel,
            recipient=address, invoices=invoice_snapshot(invoices), customer=customer,
            template=None if template is None else template.pk, step_info=info,
            unsubscribe_url=self.unsubscribe_url(case.customer_id, channel, info),
            history=self.history.get(case.customer_id),
        ))


def failure_lines(result, using=DEFAULT_DB_ALIAS):
    """[(who, reason)] of a run's failures, naming the customer: "case 12 (Ada Lovelace)",
    or "new case (Ada Lovelace)" for a case a dry run would open. Customers the run did
    not note are looked up (one query per kind of row)."""
    missing = {pk for pk, _reason in result.failures
               if pk not in result.customers and isinstance(pk, int) and pk > 0}
    labels = dict(result.customers)
    if missing:
        owners = dict(Case.objects.using(using).filter(pk__in=missing)
                      .values_list("pk", "customer_id"))
        rows = get_adapter().customer_rows(set(owners.values()))
        for pk, customer_id in owners.items():
            row = rows.get(customer_id)
            labels[pk] = row.label if row is not None else f"#{customer_id}"
    lines = []
    for pk, reason in result.failures:
        label = labels.get(pk, "")
        if pk is None or (isinstance(pk, int) and pk < 0):
            who = _("new case (%(customer)s)") % {"customer": label} if label else _("new case")
        else:
            who = (_("case %(case)s (%(customer)s)") % {"case": pk, "customer": label}
                   if label else _("case %(case)s") % {"case": pk})
        lines.append((who, reason))
    return lines
