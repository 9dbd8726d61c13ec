"""The outbox: every dunning message is a ``CaseStep`` row, sent in its own stage.

A run executes a step and queues its message in one transaction (the row is inserted
with status ``queued``). Sending is a separate stage, here:

1. **lease**: the rows of a chunk (``OUTBOX_CHUNK_SIZE``) move ``queued -> sending`` in
   one committed ``UPDATE`` guarded by ``status = 'queued'`` (``next_attempt_at`` becomes
   the lease's start; no attempt is charged); only the rows this statement moved are
   handed over, so two workers never send the same row;
2. **hand over**: the channel sends the chunk over one connection to the email backend
   and reports one outcome per message;
3. **record**, as soon as the backend returns and before the next chunk is leased:
   ``sent``; a permanent failure ``failed`` with its reason; a transient one back to
   ``queued`` with ``next_attempt_at`` = now + :func:`retry_delay`, until
   ``OUTBOX_RETRY_HORIZON`` has passed since its first failure (then ``failed``, "gave up
   after ..."). An attempt is charged only for an outcome that reached (or may have
   reached) the provider. A message that did not reach it (the connection could not be
   opened) goes back to ``queued`` uncharged, and the channel's circuit breaker
   (engine/breaker.py) holds the channel's other messages until a probe gets through.

The guarantee is **at most once**: a worker that dies between handing a message to the
ESP and recording the outcome leaves the row ``sending``. :meth:`Outbox.drain` turns a
lease older than ``OUTBOX_STALE_AFTER`` into ``unknown`` ("state unknown, check"): never
sent again by itself, the case flagged for a person, a note on its timeline. A kill
leaves at most one chunk so. An ESP
tracking event for the message settles it (``dunning.tracking``); so does a person, in
the admin ("Mark as sent" or "Send again"). See docs/outbox.md.

:func:`drain` is the stage on its own, for a periodic task between daily runs.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction
from django.db.models import Case as SqlCase
from django.db.models import CharField, DateTimeField, F, IntegerField, Q, TextField, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from .. import webhooks
from ..channels.base import Outcome, Outgoing, step_info
from ..conf import dunning_settings
from ..db import can_return_from_update, update_returning  # noqa: F401 (moved to db)
from ..failures import backoff, describe
from ..hosts import CustomerRow
from ..messages.history import customer_history
from ..models import Case, CaseEvent, CaseStep
from ..unsubscribe.optout import opt_out
from .breaker import Breakers

logger = logging.getLogger("dunning.outbox")

Status = CaseStep.Status

# Rows whose outcome a sender records: its own lease, or one a drain has meanwhile given
# up on as "unknown" (the sender was alive after all, only slow: it knows the outcome).
IN_FLIGHT = (Status.SENDING, Status.UNKNOWN)

# Rows one UPDATE ... CASE statement names (SQLite allows 999 parameters on old builds).
PER_STATEMENT = 300


def retry_delay(attempts):
    """How long a message waits after its ``attempts``-th try failed for a transient
    reason: ``OUTBOX_RETRY_BACKOFF`` seconds, doubled for every further try, at most
    ``OUTBOX_RETRY_MAX_DELAY`` seconds (with the defaults 1, 2, 4, 8 minutes)."""
    return backoff(attempts, dunning_settings.OUTBOX_RETRY_BACKOFF,
                   dunning_settings.OUTBOX_RETRY_MAX_DELAY)


def stale_before(now):
    return now - datetime.timedelta(seconds=dunning_settings.OUTBOX_STALE_AFTER)


def utc(value):
    """A datetime from a raw ``RETURNING`` row (SQLite gives it naive, in UTC, or as
    text), aware; None stays None."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, datetime.timezone.utc)
    return value


#: The columns a lease returns of each row it took (see :func:`held`).
LEASED = ("id", "case", "step_key", "attempts", "failing_since")


def held(rows, besides=()):
    """{(case pk, step key): (step pk, attempts, failing since)} of the ``LEASED`` rows a
    lease returned, less the pks ``besides``."""
    return {(case_id, key): (pk, attempts, utc(since))
            for pk, case_id, key, attempts, since in rows if pk not in besides}


def chunks(items, size=PER_STATEMENT):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class DrainResult:
    """What one :func:`drain` did."""

    sent: int = 0
    failed: int = 0
    retrying: int = 0  # transient failures, queued again for later
    unknown: int = 0  # leases given up on: "state unknown, check"
    abandoned: int = 0  # runs whose lease had expired, marked abandoned
    seconds: float = 0.0

    def as_dict(self):
        return {"sent": self.sent, "failed": self.failed, "retrying": self.retrying,
                "unknown": self.unknown, "abandoned": self.abandoned,
                "seconds": round(self.seconds, 3)}


def rows_of(items):
    """A filter for the step rows of ``items`` (anything with ``case_id`` and
    ``step_key``): one ``case_id IN (...)`` per step key."""
    by_key = defaultdict(list)
    for item in items:
        by_key[item.step_key].append(item.case_id)
    which = Q()
    for key, case_ids in by_key.items():
        which |= Q(step_key=key, case_id__in=case_ids)
    return which


class Outbox:
    """The send stage of a run (``run`` is a ``DunningRun``: its channel, renderer, batch
    size, database and ``result`` counters)."""

    def __init__(self, run):
        self.run = run
        self.using = run.using
        self.steps = CaseStep.objects.using(run.using)
        self.opted_out = []  # (customer pk, channel) the providers reported opted out

    # -- sending ----------------------------------------------------------------------
    def clock(self):
        return self.run.clock()

    @property
    def breakers(self):
        run = self.run
        if getattr(run, "breakers", None) is None:
            run.breakers = Breakers(self.using)
        return run.breakers

    def send(self, pending, rendered):
        """Send queued messages (``Pending`` items and their rendering: (subject, text,
        html) or the reason they cannot be sent) and record each outcome: channel by
        channel, in chunks of ``OUTBOX_CHUNK_SIZE``, each chunk leased, handed over and
        recorded before the next is leased. A channel whose provider cannot be reached
        (its circuit breaker is open, or opens on this chunk) hands over nothing more:
        its other messages are queued again, uncharged."""
        run = self.run
        built, unsendable = [], []
        for item, result in zip(pending, rendered, strict=True):
            if isinstance(result, str):
                unsendable.append((item, result))
                continue
            subject, text, html = result
            try:
                message = run.channel_for(item.channel).build(Outgoing(
                    case_id=item.case_id, customer_id=item.customer_id,
                    step_key=item.step_key, recipient=item.recipient,
                    subject=subject, text=text, html=html,
                    required=item.step_info.get("required", False),
                    unsubscribe_url=item.unsubscribe_url,
                ))
            except Exception as exc:  # noqa: BLE001 - a message that cannot be built fails
                unsendable.append((item, describe(exc)))
                continue
            built.append((item, message))
        if unsendable:
            self.record([], [], unsendable)
        by_channel = defaultdict(list)
        for item, message in built:
            by_channel[item.channel].append((item, message))
        size = max(int(dunning_settings.OUTBOX_CHUNK_SIZE), 1)
        for channel, group in by_channel.items():
            self.send_channel(channel, [group[i : i + size] for i in range(0, len(group), size)])

    def send_channel(self, channel, parts):
        """Hand the chunks ``parts`` of one channel over, one after the other. The lease
        of a chunk is taken in the statement that records the one before (one statement
        per chunk when it went out whole)."""
        handed = None  # the leased rows of the chunk about to be handed over
        for index, pairs in enumerate(parts):
            if handed is None:
                paused = self.breakers.open_until(channel, self.clock())
                if paused is not None:
                    self.hold(channel, [pair for part in parts[index:] for pair in part], paused)
                    return
                handed = self.leased(pairs)
            following = parts[index + 1] if index + 1 < len(parts) else None
            handed = self.hand_over(channel, handed, following) if handed else None

    def leased(self, pairs, leased=None):
        """Lease the rows of ``pairs`` ((item, message)) unless ``leased`` has them; the
        (item, message, step pk, attempts, failing since) of the rows this worker now
        holds."""
        if leased is None:
            leased = self.lease([item for item, _ in pairs])
        handed = []
        for item, message in pairs:
            lease = leased.get((item.case_id, item.step_key))
            if lease is None:
                # Another worker has it (a long run's batch taken for a crash's leftovers,
                # or the other way round): that worker sends it, this one does not.
                logger.info("Step %s of case %s is being sent by another worker",
                            item.step_key, item.case_id)
                continue
            handed.append((item, message, *lease))
        return handed

    def hand_over(self, channel, handed, following=None):
        """Hand one leased chunk to its channel and record the outcomes at once; in the
        same statement lease the ``following`` chunk (pairs), unless the provider could
        not be reached. Returns the following chunk's leased rows, or None."""
        outcomes = list(self.run.channel_for(channel).send([h[1] for h in handed]))
        if len(outcomes) != len(handed):
            raise RuntimeError(f"The {channel} channel returned {len(outcomes)} outcomes "
                               f"for {len(handed)} messages")
        now = self.clock()
        unreached = next((o for o in outcomes if not o.reached), None)
        paused = None
        if unreached is not None:
            paused = self.breakers.trip(channel, now, unreached.reason,
                                        answered=any(o.reached for o in outcomes))
        elif outcomes:
            self.breakers.close(channel, now)
        if paused is not None:
            following = None
        leased = self.record(handed, outcomes, [], paused=paused,
                             lease=[item for item, _ in following] if following else None)
        renew = getattr(self.run, "renew_lease", None)
        if renew is not None:
            renew()  # a long hand-over is not taken for a dead run
        return self.leased(following, leased) if following else None

    def hold(self, channel, pairs, until):
        """The channel is paused (its provider cannot be reached) until ``until``: these
        messages are not handed over; they are queued again, uncharged, for then (or fail
        when their retry horizon has passed)."""
        handed = self.leased(pairs)
        if not handed:
            return
        reason = self.breakers.current().get(channel)
        reason = reason.reason if reason is not None else ""
        outcome = Outcome(False, reason=reason or _("the provider cannot be reached"),
                          transient=True, reached=False)
        self.record(handed, [outcome] * len(handed), [], paused=until)

    def lease(self, items):
        """Move these queued rows to ``sending`` in one committed statement; return
        {(case pk, step key): (step pk, attempts, failing since)} of the rows this worker
        now holds. No attempt is charged here: only an outcome that reached (or may have
        reached) the provider is."""
        if not items:
            return {}
        rows = update_returning(
            self.steps.filter(rows_of(items), status=Status.QUEUED),
            {"status": Status.SENDING, "next_attempt_at": self.clock()},
            LEASED,
        )
        return held(rows)

    def record(self, handed, outcomes, unsendable, *, paused=None, lease=None):
        """Record the outcomes of one handed-over chunk (one transaction). ``paused``:
        until when the channel's breaker is open (for the messages that did not reach
        the provider). ``lease``: items of the next chunk to lease in the same
        transaction; returns what :meth:`lease` returns for them (else None)."""
        result = self.run.result
        now = self.clock()
        max_attempts = dunning_settings.OUTBOX_MAX_ATTEMPTS
        horizon = datetime.timedelta(seconds=dunning_settings.OUTBOX_RETRY_HORIZON)
        sent_plain, sent_ids = [], []
        retry = defaultdict(list)  # (next attempt at, reason, charged) -> step pks
        final = defaultdict(list)  # (reason, charged) -> step pks
        failed_cases = set()
        charged_handed = []
        for (item, message, pk, attempts, since), outcome in zip(handed, outcomes, strict=True):
            tries = attempts + 1 if outcome.reached else attempts
            charged_handed.append((item, message, pk, tries))
            if outcome.ok:
                result.sent += 1
                if outcome.message_id:
                    sent_ids.append((pk, outcome.message_id[:255]))
                else:
                    sent_plain.append(pk)
                continue
            reason = outcome.reason
            if outcome.transient:
                since = since or now
                if max_attempts and outcome.reached and tries >= max_attempts:
                    reason = _("gave up after %(attempts)s attempts: %(reason)s") % {
                        "attempts": tries, "reason": reason}
                elif now >= since + horizon:
                    reason = _("gave up after %(hours)s hours and %(attempts)s attempts: "
                               "%(reason)s") % {
                        "hours": round(horizon.total_seconds() / 3600, 1),
                        "attempts": tries, "reason": reason}
                else:
                    later = now + retry_delay(tries) if outcome.reached else (
                        paused or now + retry_delay(1))
                    result.retrying += 1
                    retry[(min(later, since + horizon), reason[:2000],
                           outcome.reached)].append(pk)
                    continue
            if outcome.opted_out:
                self.opted_out.append((item.customer_id, item.channel))
            reason = reason[:2000]
            final[(reason, outcome.reached)].append(pk)
            failed_cases.add(item.case_id)
            result.note_failure(item.case_id, reason, item.customer.label)
        never_handed = defaultdict(lambda: defaultdict(list))  # reason -> key -> case pks
        for item, reason in unsendable:
            never_handed[reason][item.step_key].append(item.case_id)
            failed_cases.add(item.case_id)
            result.note_failure(item.case_id, reason, item.customer.label)
        if not (handed or unsendable):
            return self.lease(lease) if lease else None
        finals = defaultdict(list)
        for (reason, _charged), pks in final.items():
            finals[reason].extend(pks)
        self.webhook_rows = webhooks.step_outcomes(self, now, charged_handed, sent_plain,
                                                   sent_ids, finals, unsendable)
        args = (now, sent_plain, sent_ids, retry, final, never_handed, failed_cases, lease)
        connection = connections[self.using]
        try:
            leased = self.write_outcomes(*args)
        except (OperationalError, InterfaceError):
            # The database connection broke while the outcomes of messages that did go
            # out were being recorded. Not knowing them would leave the rows "sending"
            # (later "unknown"): reconnect once and record them again (every UPDATE is
            # guarded, so a first attempt that did commit changes nothing the second time;
            # a next chunk the first attempt did lease is not handed over: its rows are
            # "unknown" later, never sent twice).
            if connection.in_atomic_block:
                raise
            logger.warning("The database connection broke while recording sent messages; "
                           "reconnecting once", exc_info=True)
            connection.close()
            leased = self.write_outcomes(*args)
        self.record_opt_outs()
        return leased

    def record_opt_outs(self):
        """Recipients the provider says opted out (an SMS "STOP"): into the consent log,
        so every later step uses the fallback channel or is skipped."""
        for customer_id, channel in dict.fromkeys(self.opted_out):
            opt_out(customer_id, channel, source="unsubscribe", message=_(
                "The %(channel)s provider reports that the customer opted out (a STOP "
                "reply).") % {"channel": channel})
        self.opted_out = []

    def write_outcomes(self, now, sent_plain, sent_ids, retry, final, never_handed,
                       failed_cases, lease=None):
        """The outcomes' statements and the lease of ``lease`` (the next chunk's items),
        in one transaction. A chunk that went out whole and the lease of the next are one
        ``UPDATE`` (see :meth:`sent_and_lease`). Returns the lease (or None)."""
        steps = self.steps
        simple = not (retry or final or never_handed or failed_cases or self.webhook_rows)
        if simple and lease and len(sent_plain) + len(sent_ids) + len(lease) <= PER_STATEMENT:
            return self.sent_and_lease(now, sent_plain, sent_ids, lease)
        charge = {"attempts": F("attempts") + 1}
        done = {"status": Status.SENT, "sent_at": now, "reason": "", "next_attempt_at": None,
                **charge}
        statements = []
        if sent_plain:
            statements.append(lambda: steps.filter(
                pk__in=sent_plain, status__in=IN_FLIGHT).update(**done))
        for chunk in chunks(sent_ids):
            def sent_with_ids(chunk=chunk):
                message_id = SqlCase(
                    *[When(pk=pk, then=Value(mid)) for pk, mid in chunk],
                    default=F("message_id"),
                )
                steps.filter(pk__in=[pk for pk, _ in chunk], status__in=IN_FLIGHT).update(
                    message_id=message_id, **done)
            statements.append(sent_with_ids)
        for (next_at, reason, charged), pks in retry.items():
            statements.append(lambda pks=pks, next_at=next_at, reason=reason, charged=charged:
                              steps.filter(pk__in=pks, status=Status.SENDING).update(
                status=Status.QUEUED, next_attempt_at=next_at, reason=reason,
                failing_since=Coalesce(F("failing_since"), Value(now)),
                **(charge if charged else {})))
        for (reason, charged), pks in final.items():
            statements.append(lambda pks=pks, reason=reason, charged=charged:
                              steps.filter(pk__in=pks, status__in=IN_FLIGHT).update(
                status=Status.FAILED, reason=reason, next_attempt_at=None,
                **(charge if charged else {})))
        # Never handed over (no template, no address, ...): still queued, unless
        # another worker has taken the row meanwhile.
        for reason, keys in never_handed.items():
            for key, case_ids in keys.items():
                statements.append(lambda key=key, case_ids=case_ids, reason=reason:
                                  steps.filter(step_key=key, case_id__in=case_ids,
                                               status=Status.QUEUED).update(
                    status=Status.FAILED, reason=reason, next_attempt_at=None))
        if failed_cases:
            statements.append(lambda: Case.objects.using(self.using).filter(
                pk__in=failed_cases).update(needs_person=True))
        if self.webhook_rows:
            statements.append(lambda: webhooks.save(self.webhook_rows, self.using))
        if len(statements) == 1 and not lease:
            statements[0]()
            return None
        with transaction.atomic(using=self.using):
            for statement in statements:
                statement()
            return self.lease(lease) if lease else None

    def sent_and_lease(self, now, sent_plain, sent_ids, items):
        """One guarded ``UPDATE ... RETURNING``: the rows of a chunk that went out whole
        become ``sent`` (charged), and the queued rows of ``items`` (the next chunk) become
        ``sending``, this worker's lease. Returns the lease as :meth:`lease` does."""
        sent = [*sent_plain, *(pk for pk, _ in sent_ids)]
        is_sent = Q(pk__in=sent)

        def either(if_sent, otherwise, field):
            return SqlCase(When(is_sent, then=if_sent), default=otherwise, output_field=field)

        values = {
            "status": either(Value(Status.SENT), Value(Status.SENDING), CharField()),
            "sent_at": either(Value(now), F("sent_at"), DateTimeField()),
            "reason": either(Value(""), F("reason"), TextField()),
            "next_attempt_at": either(Value(None), Value(now), DateTimeField()),
            "attempts": either(F("attempts") + 1, F("attempts"), IntegerField()),
        }
        if sent_ids:
            values["message_id"] = SqlCase(
                *[When(pk=pk, then=Value(mid[:255])) for pk, mid in sent_ids],
                default=F("message_id"), output_field=CharField())
        rows = update_returning(
            self.steps.filter(Q(pk__in=sent, status__in=IN_FLIGHT)
                              | Q(rows_of(items), status=Status.QUEUED)),
            values, LEASED,
        )
        return held(rows, besides=set(sent))

    # -- draining ---------------------------------------------------------------------
    def drain(self):
        """Give up on dead leases, then send every queued message that is due: retries
        whose time has come and messages a crashed run left queued (at the run's own
        clock when it was given one)."""
        now = self.clock()
        self.expire(now)
        self.send_due(now)

    def expire(self, now):
        """``sending`` rows whose lease is older than ``OUTBOX_STALE_AFTER`` -> ``unknown``
        (at most once: the message may have gone out; a person checks)."""
        before = stale_before(now)
        stale = self.steps.filter(status=Status.SENDING).filter(
            Q(next_attempt_at__lt=before) | Q(next_attempt_at__isnull=True, created_at__lt=before)
        )
        if not stale.exists():
            return  # the usual case: one SELECT, no transaction
        with transaction.atomic(using=self.using):
            # Charged: it may well have reached the provider.
            rows = update_returning(stale, {"status": Status.UNKNOWN,
                                            "attempts": F("attempts") + 1},
                                    ("id", "case", "step_key"))
            if not rows:
                return
            run = self.run.run
            created = CaseEvent.objects.using(self.using).bulk_create([
                CaseEvent(
                    case_id=case_id, run=run, kind=CaseEvent.Kind.DELIVERY_UNKNOWN,
                    created_at=now,
                    message=_(
                        "The message of step %(step)s was being handed to the email "
                        "service when its worker stopped: it may or may not have gone out. "
                        "It is not sent again by itself. Check the email service's log, "
                        "then mark the step as sent or send it again (executed steps, "
                        "status \"State unknown, check\")."
                    ) % {"step": key},
                    data={"case_step": pk, "step_key": key},
                )
                for pk, case_id, key in rows
            ])
            webhooks.events_created(created, self.using, run=self.run)
            Case.objects.using(self.using).filter(pk__in={r[1] for r in rows}).update(
                needs_person=True
            )
        logger.warning("%d message(s) in state unknown: their worker died while sending",
                       len(rows))
        self.run.result.unknown += len(rows)

    def send_due(self, now):
        """Send, batch by batch, the queued rows due at ``now``: retries whose
        ``next_attempt_at`` has come, and rows never tried that have waited longer than
        ``OUTBOX_STALE_AFTER`` (a crashed run's; a live run sends its own at once). Each
        row is looked at once per call, however it fares."""
        run = self.run
        due = Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True,
                                               created_at__lt=stale_before(now))
        horizon = now - datetime.timedelta(seconds=dunning_settings.OUTBOX_RETRY_HORIZON)
        last = 0
        while True:
            # A channel whose provider cannot be reached is skipped (not even rendered)
            # until its breaker lets a probe through, except for the messages whose retry
            # horizon has passed: they fail now, with their last error.
            paused = list(self.breakers.paused(now))
            waiting = Q(channel__in=paused) & ~Q(failing_since__lte=horizon)
            rows = list(
                self.steps.filter(due, status=Status.QUEUED, pk__gt=last)
                .exclude(waiting)
                .select_related("case").order_by("pk")[: run.batch_size]
            )
            if not rows:
                return
            last = rows[-1].pk
            webhooks.remember_cases(run, rows)
            policies = {row.case_id: row.case.policy_id for row in rows}
            pending = self.outside_quiet_hours(self.pending(rows), now, policies)
            self.send(pending, [run.render_item(item) for item in pending])

    def outside_quiet_hours(self, pending, now, policies):
        """The items that may go out at ``now``; the others (a drain that came late, into
        the quiet hours of the step's channel or a holiday) are queued again until the
        policy's window opens."""
        run, allowed, later = self.run, [], defaultdict(list)
        for item in pending:
            loaded = run.policies.get(policies.get(item.case_id))
            at = now if loaded is None or loaded.compliance.unrestricted(item.channel) else (
                loaded.compliance.send_time(now, item.customer.timezone, item.channel))
            if at > now:
                later[at].append(item)
            else:
                allowed.append(item)
        for at, items in later.items():
            self.steps.filter(rows_of(items), status=Status.QUEUED).update(next_attempt_at=at)
        return allowed

    def pending(self, rows):
        """``Pending`` items of queued rows, checked again: the address may have been
        suppressed (a bounce) since the message was queued."""
        from .run import Pending

        run = self.run
        customers = run.adapter.customer_rows({r.case.customer_id for r in rows})
        charges = run.charging.listed_charges(rows) if run.charging.any else {}
        history = (customer_history({r.case.customer_id for r in rows}, as_of=run.as_of,
                                    using=run.using, adapter=run.adapter)
                   if run.uses_history else {})
        items = []
        for row in rows:
            customer = customers.get(row.case.customer_id)
            failure = _("customer not found")
            if customer is not None:
                failure = run.channel_for(row.channel).recipient(customer)[1]
            loaded = run.policies.get(row.case.policy_id)
            step = next((s for s in loaded.spec.steps if s.key == row.step_key), None) if loaded else None
            info = step_info(step, row.step_key)
            # The A/B variant the step recorded (dunning.variants), not a new draw.
            template = run.template_pk(row.case.policy_id, row.step_key, row.channel,
                                       row.language, variant=row.variant, case_pk=row.case_id)
            items.append(Pending(
                case_id=row.case_id, customer_id=row.case.customer_id, step_key=row.step_key,
                channel=row.channel, recipient=row.recipient, invoices=row.invoices,
                customer=customer or CustomerRow(row.case.customer_id, "", ""),
                template=template, step_info=info, failure=failure, as_of=row.executed_on,
                unsubscribe_url=run.unsubscribe_url(row.case.customer_id, row.channel, info),
                charges=charges.get((row.case_id, row.step_key), []),
                history=history.get(row.case.customer_id),
            ))
        return items


def drain(*, using=DEFAULT_DB_ALIAS, batch_size=None, now=None):
    """The send stage on its own, for a periodic task between daily runs: mark runs whose
    lease expired abandoned, give up on dead leases ("state unknown, check"), send
    transient failures whose retry is due and messages a crashed run left queued. Safe to
    run at any time, also while runs are going and in several processes at once. ``now``:
    the instant taken as the present (default: the clock). Returns a :class:`DrainResult`."""
    from .run import DunningRun, abandon_dead_runs

    started = time.perf_counter()
    as_of = timezone.localdate(now) if now is not None else None
    run = DunningRun(as_of, using=using, batch_size=batch_size, now=now)
    run.render_processes = 1
    run.load_policies()
    abandoned = abandon_dead_runs(run.clock(), using=using)
    Outbox(run).drain()
    r = run.result
    return DrainResult(sent=r.sent, failed=r.failed, retrying=r.retrying, unknown=r.unknown,
                       abandoned=abandoned, seconds=time.perf_counter() - started)
