"""The policy simulator: what a draft policy would have sent over the last N days of real
cases, beside what the live policy did.

``simulate(policy, days=90)`` replays every case of the live policy
(``DUNNING["DEFAULT_POLICY"]``) whose life overlaps the window with the pure rules of
``schedule.decide`` and the draft's steps, and counts the messages the draft would have
sent (per step, per week), the suspensions and the terminations. The live side is what
really happened: the executed steps (``CaseStep``) of the same cases in the window.

What the simulator knows of a case, all read with a fixed number of queries (never one per
case):

* its life: ``opened_on``, ``closed_on`` and how it ended (resolved, terminated, written
  off, still open);
* the invoices it had open on each day a live step went out: every ``CaseStep`` keeps the
  invoices its message listed (number, amount due, currency, due date);
* the invoices still open today (through the host adapter), and for a case that had no step
  before its first message was due, the customer's latest invoice due before the case
  opened (its due date is the latest the case's oldest debt can have had);
* pauses, promises to pay and disputes from the case's timeline (a pause takes effect at
  the first run after it was recorded);
* the days the live runs ran (``Run.as_of``): the draft is replayed on those days only, as
  the live policy was (every day before the first recorded run).

The assumptions (also stated on the admin page):

* **customers pay on the same day whatever the policy**: a case resolves on the day it was
  resolved in reality. A draft cannot change when people paid.
* Between two days on which a live step listed the case's invoices, an invoice that is
  missing from the later list is taken as paid the day after the earlier one; the case's
  oldest open invoice is therefore never taken to be older than it really was. With the
  live policy itself as the draft this reproduces exactly the steps the live policy sent.
* A draft that terminates a case sooner stops dunning its invoices there; invoices that fall
  due later start a new case, as they would have. After a live termination the draft goes on
  only with the invoices that are still unpaid today. A written-off case ends on the day it
  was written off.
* Every case is simulated from the day it opened (a case opened before the window brings the
  state the draft would have given it); only what falls inside the window is counted.
* A "hold back" from the "tomorrow" page leaves no trace and is not replayed.

The loop is event driven: a case is looked at only on the days its facts change or its next
step falls due, so the cost grows with the number of steps, not with the number of days.
"""

from __future__ import annotations

import bisect
import datetime
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import DEFAULT_DB_ALIAS
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from ..conf import dunning_settings
from ..exceptions import DunningConfigurationError, SimulationError
from ..hosts import ANNOTATION_PREFIX, get_adapter
from ..models import Case, CaseEvent, CaseInvoice, CaseStep, Policy, Run
from ..models.policy import PAYMENT_RECEIVED, Action
from ..rules.effects import RESOLVED, TERMINATED, CaseState, effects
from ..rules.schedule import (
    BELOW_MINIMUM,
    PAUSED_INDEFINITELY,
    PROMISE_GRACE_DAYS,
    CaseFacts,
    Kind,
    decide,
    policy_spec,
)
from .manual import SEND_NOW_RUN_HOST
from .ondemand import PAYMENT_EVENT_RUN_HOST

ONE_DAY = datetime.timedelta(days=1)
FAR = datetime.date.max
#: The facts of a case with nothing left to pay.
PAID = CaseFacts(oldest_due=None)

DEFAULT_DAYS = 90
MIN_DAYS = 7
MAX_DAYS = 365

#: Case events that change a pause, and the Run hosts that are not scheduled runs.
PAUSE_KINDS = (
    CaseEvent.Kind.PAUSED,
    CaseEvent.Kind.RESUMED,
    CaseEvent.Kind.PROMISE,
    CaseEvent.Kind.DISPUTE,
    CaseEvent.Kind.DISPUTE_RESOLVED,
)
NOT_SCHEDULED_RUN_HOSTS = (SEND_NOW_RUN_HOST, PAYMENT_EVENT_RUN_HOST)


def check_days(days):
    """``days`` as an int between MIN_DAYS and MAX_DAYS, else SimulationError."""
    try:
        value = int(days)
    except (TypeError, ValueError):
        raise SimulationError(
            f"The number of days must be a whole number from {MIN_DAYS} to {MAX_DAYS}, "
            f"not {days!r}."
        ) from None
    if not MIN_DAYS <= value <= MAX_DAYS:
        raise SimulationError(
            f"The number of days must be from {MIN_DAYS} to {MAX_DAYS}, not {value}."
        )
    return value


# -- the facts of one case, day by day ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Inv:
    number: str
    due: datetime.date
    amount: Decimal | None  # None: unknown (the opening estimate)
    currency: str


def _amount(value):
    try:
        return Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None


def _snapshot(invoices, cache):
    """A CaseStep's invoice list as {number: Inv} (``cache``: the Inv of each listing
    already seen, since consecutive steps mostly list the same invoices)."""
    result = {}
    for item in invoices or ():
        try:
            key = (item["number"], item["due_date"], item.get("amount_due"),
                   item.get("currency"))
        except (KeyError, TypeError):
            continue
        inv = cache.get(key)
        if inv is None:
            try:
                due = datetime.date.fromisoformat(str(key[1])[:10])
            except (TypeError, ValueError):
                continue
            inv = cache[key] = Inv(str(key[0]), due, _amount(key[2]), str(key[3] or "").upper())
        result[inv.number] = inv
    return result


class Timeline:
    """The open invoices of one live case on any day of its life.

    ``observations`` are (day, {number: Inv}) sorted by day: the invoice lists of the live
    steps, then the end of the case (empty on the day it was resolved; the invoices open
    today, the day after the window, for a case still open). On an observation's day the
    case owed exactly those invoices. Between two observations it surely owed the invoices
    on both lists, and those only on the later list once they were overdue; when that is
    nothing, it owed at least one other invoice (it was still open), and the simulator takes
    the one with the latest due date it could have been: one of the customer's invoices that
    fell overdue in between and is paid today (``hidden``), else the latest one of the
    earlier list, else (before the first observation) ``opening``, the customer's latest
    invoice due before the case opened. The oldest debt is thus never taken to be older than
    it was, and an invoice whose open amount no message showed counts as owing nothing
    towards the policy's minimum balance (see the module docstring).
    """

    __slots__ = ("days", "sets", "opening", "hidden", "hidden_dues", "opened_on",
                 "change_days")

    def __init__(self, observations, opening, opened_on, hidden=(), last_day=FAR):
        self.days = [day for day, _ in observations]
        self.sets = [invs for _, invs in observations]
        self.opened_on = opened_on
        self.opening = {opening.number: opening}
        self.hidden = hidden  # Inv sorted by due date
        self.hidden_dues = [inv.due for inv in hidden]
        changes = set()
        for day, invs in observations:
            changes.add(day)
            changes.add(day + ONE_DAY)
            for inv in invs.values():
                changes.add(inv.due + ONE_DAY)
        lo = bisect.bisect_left(self.hidden_dues, opened_on - ONE_DAY)
        hi = bisect.bisect_right(self.hidden_dues, last_day)
        changes.update(inv.due + ONE_DAY for inv in hidden[lo:hi])
        # Keep only the days on which the open invoices really differ from the day before.
        self.change_days = []
        previous = self._signature(opened_on)
        for day in sorted(changes):
            if day <= opened_on or day > last_day:
                continue
            signature = self._signature(day)
            if signature != previous:
                self.change_days.append(day)
                previous = signature

    def open_on(self, day):
        days, sets = self.days, self.sets
        k = bisect.bisect_right(days, day) - 1
        if k >= 0 and days[k] == day:
            return sets[k]
        if k == len(days) - 1:
            return sets[k]
        later = sets[k + 1]
        earlier = sets[k] if k >= 0 else {}
        current = {}
        for number, inv in later.items():
            if number in earlier or inv.due < day:
                current[number] = inv
        if current:
            return current
        # Owing something we did not see: the latest plausible invoice.
        since = days[k] if k >= 0 else self.opened_on
        i = bisect.bisect_left(self.hidden_dues, day) - 1
        if i >= 0 and self.hidden_dues[i] >= since:
            inv = self.hidden[i]
            return {inv.number: inv}
        gone = [inv for number, inv in earlier.items() if number not in later]
        if gone:
            last = max(gone, key=lambda i: (i.due, i.number))
            return {last.number: last}
        return self.opening

    def _signature(self, day):
        return sorted((inv.number, inv.amount) for inv in self.open_on(day).values())

    def next_change(self, day):
        """The first day after ``day`` on which the open invoices may differ."""
        i = bisect.bisect_right(self.change_days, day)
        return self.change_days[i] if i < len(self.change_days) else FAR

class RunDays:
    """The days the draft is replayed on: those of the recorded scheduled runs (every day
    before the first one), and the run that first saw a change made at a given moment."""

    def __init__(self, runs):
        # runs: (as_of, started_at) of the scheduled runs
        self.days = sorted({as_of for as_of, _ in runs})
        self.first = self.days[0] if self.days else None
        by_start = sorted((started, as_of) for as_of, started in runs if started is not None)
        self.starts = [started for started, _ in by_start]
        self.start_days = [as_of for _, as_of in by_start]

    def on_or_after(self, day):
        """The first run day on or after ``day`` (None: no run since)."""
        if self.first is None or day < self.first:
            return day
        i = bisect.bisect_left(self.days, day)
        return self.days[i] if i < len(self.days) else None

    def effective(self, moment):
        """The day of the first run that started after ``moment`` (a pause recorded after
        the morning's run takes effect the next day)."""
        if not self.starts or moment < self.starts[0]:
            return timezone.localdate(moment) if timezone.is_aware(moment) else moment.date()
        i = bisect.bisect_right(self.starts, moment)
        return self.start_days[i] if i < len(self.starts) else FAR


def pause_timeline(events, run_days):
    """(effective day, paused_until) changes of one case, from its timeline events."""

    changes = []
    paused = None
    for kind, created_at, data in sorted(events, key=lambda e: e[1]):
        data = data or {}
        if kind == CaseEvent.Kind.PAUSED:
            until = data.get("until")
            paused = _date(until) or PAUSED_INDEFINITELY
        elif kind == CaseEvent.Kind.RESUMED:
            paused = None
        elif kind == CaseEvent.Kind.PROMISE:
            promised = _date(data.get("date"))
            if promised is None:
                continue
            until = promised + datetime.timedelta(days=PROMISE_GRACE_DAYS)
            paused = max(until, paused) if paused else until
        elif kind in (CaseEvent.Kind.DISPUTE, CaseEvent.Kind.DISPUTE_RESOLVED):
            continue  # a dispute holds its invoice, not the case (dispute_timeline)
        changes.append((run_days.effective(created_at), paused))
    changes.sort(key=lambda c: c[0])
    return changes


def dispute_timeline(events, run_days):
    """(effective day, {disputed invoice numbers}) changes of one case: a dispute holds its
    invoice from the first run after it was opened until its case's disputes are resolved
    (dunning.engine.holds)."""
    changes, held = [], frozenset()
    for kind, created_at, data in sorted(events, key=lambda e: e[1]):
        if kind == CaseEvent.Kind.DISPUTE:
            held = held | {str((data or {}).get("invoice_number", ""))}
        elif kind == CaseEvent.Kind.DISPUTE_RESOLVED:
            held = frozenset()
        else:
            continue
        changes.append((run_days.effective(created_at), held))
    changes.sort(key=lambda c: c[0])
    return changes


def _date(value):
    try:
        return datetime.date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _paused_on(changes, day):
    value = None
    for effective, paused in changes:
        if effective > day:
            break
        value = paused
    return value


def _next_pause_change(changes, day):
    for effective, _ in changes:
        if effective > day:
            return effective
    return FAR


# -- counting --------------------------------------------------------------------------
class Tally:
    def __init__(self, start, end):
        self.start, self.end = start, end
        self.steps = Counter()
        self.weeks = Counter()
        self.suspended = 0
        self.terminated = 0
        self.cases = set()

    def add(self, case_id, day, key, action=""):
        if not self.start <= day <= self.end:
            return
        self.steps[key] += 1
        self.weeks[day - datetime.timedelta(days=day.weekday())] += 1
        self.cases.add(case_id)
        if action == Action.SUSPEND:
            self.suspended += 1
        elif action == Action.TERMINATE:
            self.terminated += 1

    def as_dict(self):
        return {
            "total": sum(self.steps.values()),
            "steps": dict(self.steps),
            "suspended": self.suspended,
            "terminated": self.terminated,
            "cases_messaged": len(self.cases),
        }


# -- the replay of one case ----------------------------------------------------------------
def replay(spec, case_id, timeline, start_day, last_day, run_days, pauses, tally,
           disputes=None):
    """Replay one case with the draft's rules from ``start_day`` to ``last_day``
    (``disputes``: :func:`dispute_timeline` of the case)."""
    excluded = set()  # invoices the draft terminated: never dunned again
    is_open, done, last_step_on = False, frozenset(), None
    day = run_days.on_or_after(start_day)
    while day is not None and day <= last_day:
        invoices = timeline.open_on(day)
        if excluded:
            invoices = {n: i for n, i in invoices.items() if n not in excluded}
        held = (_paused_on(disputes, day) or frozenset()) if disputes else frozenset()
        demanded = {n: i for n, i in invoices.items() if str(n) not in held}
        following = FAR
        if invoices and not demanded:
            pass  # every open invoice disputed: the case waits (schedule.ALL_DISPUTED)
        elif not invoices:
            if is_open:
                # Paid: resolved, with the thank-you message of a case that had steps.
                effect = effects(decide(spec, PAID, day), CaseState(day, bool(done)))
                if effect.thank_you:
                    tally.add(case_id, day, PAYMENT_RECEIVED)
                is_open = effect.status != RESOLVED
        else:
            if not is_open:
                is_open, done, last_step_on = True, frozenset(), None
            invoices = demanded
            balances = {}
            for inv in invoices.values():
                if inv.amount is not None:
                    balances[inv.currency] = balances.get(inv.currency, Decimal(0)) + inv.amount
            facts = CaseFacts(
                oldest_due=min(inv.due for inv in invoices.values()),
                balances=balances,
                done_keys=done,
                last_step_on=last_step_on,
                paused_until=_paused_on(pauses, day) if pauses else None,
            )
            decision = decide(spec, facts, day)
            effect = effects(decision, CaseState(day, bool(done)))
            if effect.step is not None:
                step = effect.step
                tally.add(case_id, day, step.key, step.action)
                done, last_step_on = done | {step.key}, day
            if effect.status == TERMINATED:
                excluded.update(invoices)
                is_open = False
            elif decision.kind is Kind.WAIT and decision.reason == BELOW_MINIMUM:
                following = FAR  # until the invoices change
            else:
                following = effect.next_due_on or FAR
        following = min(following, timeline.next_change(day))
        if pauses:
            following = min(following, _next_pause_change(pauses, day))
        if disputes:
            following = min(following, _next_pause_change(disputes, day))
        if following >= FAR:
            return
        day = run_days.on_or_after(max(following, day + ONE_DAY))


# -- the whole simulation --------------------------------------------------------------------
def _resolve_policy(policy, using):
    if isinstance(policy, Policy):
        return Policy.objects.using(using).prefetch_related("steps").get(pk=policy.pk)
    try:
        return Policy.objects.using(using).prefetch_related("steps").get(key=policy)
    except Policy.DoesNotExist:
        raise SimulationError(f"There is no dunning policy with the key {policy!r}.") from None


def simulate(policy, days=DEFAULT_DAYS, today=None, *, using=DEFAULT_DB_ALIAS):
    """What ``policy`` would have sent over the ``days`` days up to ``today`` (default:
    today in the site's time zone) to the cases of the live default policy, beside what the
    live policy sent. ``policy`` is a Policy or a policy key. Returns plain dicts (dates as
    ISO strings); see docs/simulator.md."""
    started = time.perf_counter()
    days = check_days(days)
    today = today or timezone.localdate()
    start = today - datetime.timedelta(days=days - 1)
    draft = _resolve_policy(policy, using)
    live_key = dunning_settings.DEFAULT_POLICY
    live = Policy.objects.using(using).prefetch_related("steps").filter(key=live_key).first()
    if live is None:
        raise DunningConfigurationError(
            f"There is no dunning policy with the key {live_key!r} (DUNNING['DEFAULT_POLICY'])."
        )
    spec = policy_spec(draft)

    adapter = get_adapter()
    p = adapter.customer_annotation
    cases = Case.objects.using(using).filter(policy=live, opened_on__lte=today).filter(
        Q(closed_on__isnull=True) | Q(closed_on__gte=start)
    )
    case_pks = cases.values("pk")
    rows = cases.order_by()
    annotated = getattr(adapter, "annotated_invoices", None)
    if annotated is not None:
        due_field = ANNOTATION_PREFIX + "due_date"
        opening = (
            annotated().using(using)
            .filter(**{p: OuterRef("customer_id"), f"{due_field}__lt": OuterRef("opened_on")})
            .order_by(f"-{due_field}")
        )
        rows = rows.annotate(
            opening_due=Subquery(opening.values(due_field)[:1]),
            opening_currency=Subquery(opening.values(ANNOTATION_PREFIX + "currency")[:1]),
        )
        columns = ("pk", "customer_id", "status", "opened_on", "closed_on", "opening_due",
                   "opening_currency")
    else:
        columns = ("pk", "customer_id", "status", "opened_on", "closed_on")
    case_rows = list(rows.values_list(*columns))

    observations = defaultdict(dict)  # case -> day -> {number: Inv}
    listed = {}
    live_tally = Tally(start, today)
    for case_id, key, action, executed_on, invoices in (
        CaseStep.objects.using(using).filter(case__in=case_pks).order_by()
        .values_list("case_id", "step_key", "action", "executed_on", "invoices")
    ):
        live_tally.add(case_id, executed_on, key, action)
        if key != PAYMENT_RECEIVED and invoices:
            observations[case_id].setdefault(executed_on, {}).update(
                _snapshot(invoices, listed))

    # Invoices open today, of the customers of cases still open or terminated.
    still = cases.filter(status__in=(Case.Status.OPEN, Case.Status.TERMINATED))
    open_now = adapter.invoice_rows(
        adapter.overdue_invoices(today + ONE_DAY).using(using)
        .filter(**{f"{p}__in": still.values("customer_id")})
    )
    closed_links = dict(
        CaseInvoice.objects.using(using)
        .filter(case__status__in=(Case.Status.TERMINATED, Case.Status.WRITTEN_OFF),
                case__customer__in=still.values("customer_id"))
        .values_list("invoice_id", "case_id")
    )
    open_by_customer = defaultdict(dict)  # customer -> closed case or None -> {number: Inv}
    open_numbers = defaultdict(set)
    for row in open_now:
        open_numbers[row.customer_id].add(row.number)
        inv = Inv(row.number, row.due_date, row.amount_due, row.currency)
        open_by_customer[row.customer_id].setdefault(closed_links.get(row.pk), {})[
            row.number] = inv

    # The customers' invoices paid by today that fell due during the cases' lives: what a
    # case may have owed between two of its steps without any message listing it.
    hidden = defaultdict(list)
    if annotated is not None and case_rows:
        p_due, p_number, p_currency = (ANNOTATION_PREFIX + n for n in ("due_date", "number",
                                                                       "currency"))
        earliest = min(row[3] for row in case_rows) - ONE_DAY
        for customer_id, number, due, currency in (
            annotated().using(using)
            .filter(**{f"{p}__in": cases.values("customer_id"), f"{p_due}__gte": earliest,
                       f"{p_due}__lte": today})
            .order_by().values_list(p, p_number, p_due, p_currency)
        ):
            number = str(number)
            if number in open_numbers.get(customer_id, ()):
                continue
            if isinstance(due, datetime.datetime):
                due = due.date()
            hidden[customer_id].append(
                Inv(number, due, Decimal(0), (currency or "").strip().upper())
            )
        for invs in hidden.values():
            invs.sort(key=lambda i: (i.due, i.number))

    events = defaultdict(list)
    for case_id, kind, created_at, data in (
        CaseEvent.objects.using(using).filter(case__in=case_pks, kind__in=PAUSE_KINDS)
        .order_by().values_list("case_id", "kind", "created_at", "data")
    ):
        events[case_id].append((kind, created_at, data))

    run_days = RunDays(list(
        Run.objects.using(using).filter(as_of__lte=today)
        .exclude(host__in=NOT_SCHEDULED_RUN_HOSTS).values_list("as_of", "started_at")
    ))

    draft_tally = Tally(start, today)
    for row in case_rows:
        case_id, customer_id, status, opened_on, closed_on = row[:5]
        opening_due, opening_currency = row[5:7] if len(row) > 5 else (None, "")
        if isinstance(opening_due, datetime.datetime):
            opening_due = opening_due.date()
        if isinstance(opening_due, str):
            opening_due = _date(opening_due)
        seen = sorted(observations.get(case_id, {}).items())
        last_seen = seen[-1][1] if seen else {}
        if status == Case.Status.RESOLVED:
            final, last_day = (closed_on, {}), closed_on
        elif status == Case.Status.OPEN:
            current = open_by_customer.get(customer_id, {}).get(None, {})
            final, last_day = (today + ONE_DAY, current), today
        elif status == Case.Status.TERMINATED:
            going_on = open_by_customer.get(customer_id, {}).get(case_id, {})
            if going_on:
                final, last_day = (today + ONE_DAY, going_on), today
            else:
                final, last_day = ((closed_on or today) + ONE_DAY, last_seen), closed_on or today
        else:  # written off: a person closed it
            final, last_day = ((closed_on or today) + ONE_DAY, last_seen), closed_on or today
        seen = [obs for obs in seen if obs[0] < final[0]]
        opening = Inv("", opening_due or opened_on - ONE_DAY, Decimal(0),
                      (opening_currency or "").strip().upper())
        timeline = Timeline([*seen, final], opening, opened_on, hidden.get(customer_id, ()),
                            min(last_day, today))
        pauses = pause_timeline(events[case_id], run_days) if case_id in events else None
        disputes = dispute_timeline(events[case_id], run_days) if case_id in events else None
        replay(spec, case_id, timeline, opened_on, min(last_day, today), run_days, pauses,
               draft_tally, disputes)

    return _report(draft, live, spec, start, today, days, len(case_rows), draft_tally,
                   live_tally, time.perf_counter() - started)


def _report(draft, live, spec, start, end, days, case_count, draft_tally, live_tally, seconds):
    order = [s.key for s in spec.steps]
    live_steps = sorted(live.steps.all(), key=lambda s: (s.offset_days, s.pk))
    for key in [s.key for s in live_steps] + sorted(live_tally.steps):
        if key not in order and key != PAYMENT_RECEIVED:
            order.append(key)
    order.append(PAYMENT_RECEIVED)
    draft_counts, live_counts = draft_tally.as_dict(), live_tally.as_dict()
    steps = [
        {
            "step_key": key,
            "draft": draft_tally.steps.get(key, 0),
            "live": live_tally.steps.get(key, 0),
            "difference": draft_tally.steps.get(key, 0) - live_tally.steps.get(key, 0),
            "in_draft": key in {s.key for s in spec.steps} or key == PAYMENT_RECEIVED,
        }
        for key in order
    ]
    weeks = []
    monday = start - datetime.timedelta(days=start.weekday())
    while monday <= end:
        weeks.append({
            "week": monday.isoformat(),
            "draft": draft_tally.weeks.get(monday, 0),
            "live": live_tally.weeks.get(monday, 0),
        })
        monday += datetime.timedelta(days=7)
    difference = {
        name: draft_counts[name] - live_counts[name]
        for name in ("total", "suspended", "terminated", "cases_messaged")
    }
    return {
        "policy": {"key": draft.key, "name": draft.name, "is_active": draft.is_active},
        "live_policy": {"key": live.key, "name": live.name},
        "days": days,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "cases": case_count,
        "draft": draft_counts,
        "live": live_counts,
        "difference": difference,
        "steps": steps,
        "weeks": weeks,
        "seconds": round(seconds, 3),
    }


__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "MIN_DAYS", "SimulationError", "check_days",
           "policy_spec", "simulate"]
