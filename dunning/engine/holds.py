"""What keeps a promise or a dispute from stalling collection (issue 14; docs/portal.md).

* A dispute holds only the disputed invoice: :func:`disputed_numbers` tells the run which
  invoices of a batch's cases are held (one query), and the run leaves them out of what it
  demands, lists and charges fees on (``schedule.CaseFacts.disputed``: a case whose every
  open invoice is disputed waits instead of being resolved). An open dispute goes to
  staff after ``DISPUTE_ESCALATE_AFTER_DAYS`` (:func:`escalate_disputes`).
* A promise whose date plus :data:`PROMISE_GRACE_DAYS` has passed with the case still open
  is broken, and so is a promise put off by a new promise for a later date (else a
  customer could move one promise forward forever); :func:`count_broken_promises` counts
  it once on the case, on its timeline, and sends a case with
  ``PORTAL_PROMISE_MAX_BROKEN`` broken promises to staff.

Both checks are set-based (a handful of queries whatever the number of cases) and
idempotent: every run calls them (:meth:`DunningRun.execute`, stage "open").
"""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import dunning_settings
from ..models import Case, CaseEvent, Dispute
from ..rules import schedule

#: Days after a promised payment date before dunning goes on by itself (and the promise
#: counts as broken): a rule (dunning.rules.schedule), importable from here as before.
PROMISE_GRACE_DAYS = schedule.PROMISE_GRACE_DAYS

#: ``data["reason"]`` of the ``escalated`` events this module records.
ESCALATED_DISPUTE = "dispute"
ESCALATED_BROKEN_PROMISES = "broken-promises"

CHUNK = 500  # pks per ``IN (...)``: SQLite allows 999 parameters


def open_disputes(using=DEFAULT_DB_ALIAS):
    return Dispute.objects.using(using).filter(resolved_at__isnull=True)


def disputed_numbers(case_pks, using=DEFAULT_DB_ALIAS):
    """{case pk: {invoice number as text, ...}} of the open disputes of ``case_pks``
    (one query)."""
    held = defaultdict(set)
    case_pks = [pk for pk in case_pks if pk is not None]
    for start in range(0, len(case_pks), CHUNK):
        for case_id, number in open_disputes(using).filter(
            case_id__in=case_pks[start:start + CHUNK]
        ).values_list("case_id", "invoice_number"):
            held[case_id].add(str(number))
    return held


def held_numbers_of_customer(customer_pk, using=DEFAULT_DB_ALIAS):
    """{invoice number as text} held by an open dispute of the customer's open case."""
    return {str(n) for n in open_disputes(using).filter(
        case__customer_id=customer_pk, case__status=Case.Status.OPEN,
    ).values_list("invoice_number", flat=True)}


def _event(case_id, kind, message, now, run, **data):
    return CaseEvent(case_id=case_id, kind=kind, message=message, created_at=now, run=run,
                     data=data)


def waiting_disputes(as_of, using=DEFAULT_DB_ALIAS):
    """Open disputes of open cases opened at least ``DISPUTE_ESCALATE_AFTER_DAYS`` days
    before ``as_of`` (local dates) and not yet handed to staff."""
    days = int(dunning_settings.DISPUTE_ESCALATE_AFTER_DAYS)
    # Opened on or before as_of - days (local dates): before the start of the day after.
    latest_day = as_of - datetime.timedelta(days=days) + datetime.timedelta(days=1)
    before = timezone.make_aware(datetime.datetime.combine(latest_day, datetime.time.min))
    return open_disputes(using).filter(
        escalated_at__isnull=True, case__status=Case.Status.OPEN, opened_at__lt=before)


def exist(*querysets, using=DEFAULT_DB_ALIAS):
    """Whether each queryset has a row, in one query (``SELECT EXISTS(...), ...``): the
    run asks what there is to do before it does it, without a round trip per question."""
    parts, params = [], []
    for queryset in querysets:
        sql, query_params = queryset.values("pk").order_by().query.sql_with_params()
        parts.append(f"EXISTS({sql})")
        params.extend(query_params)
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        return [bool(value) for value in cursor.fetchone()]


def escalate_disputes(as_of, *, now=None, run=None, using=DEFAULT_DB_ALIAS):
    """Hand every open dispute of an open case that was opened at least
    ``DISPUTE_ESCALATE_AFTER_DAYS`` days before ``as_of`` (in the site's time zone) to
    staff: the case needs a person, and its timeline says why. Each dispute goes once.
    Returns how many disputes were escalated."""
    now = now or timezone.now()
    days = int(dunning_settings.DISPUTE_ESCALATE_AFTER_DAYS)
    waiting = waiting_disputes(as_of, using)
    if not waiting.exists():  # the usual run: one query, no transaction
        return 0
    with transaction.atomic(using=using):
        rows = list(waiting.select_for_update(skip_locked=True, of=("self",))
                    .order_by("pk").values_list("pk", "case_id", "invoice_number", "opened_at"))
        if not rows:
            return 0
        events, case_pks = [], set()
        for pk, case_id, number, opened_at in rows:
            opened_on = timezone.localdate(opened_at)
            events.append(_event(
                case_id, CaseEvent.Kind.ESCALATED,
                _("The dispute about %(invoice)s has been open since %(date)s (%(days)s days "
                  "or more): a person decides.")
                % {"invoice": number, "date": opened_on.isoformat(), "days": days},
                now, run, reason=ESCALATED_DISPUTE, dispute=pk, invoice_number=number,
                escalates_on=schedule.dispute_escalates_on(opened_on, days).isoformat()))
            case_pks.add(case_id)
        pks = [row[0] for row in rows]
        for start in range(0, len(pks), CHUNK):
            Dispute.objects.using(using).filter(pk__in=pks[start:start + CHUNK]).update(
                escalated_at=now)
        _flag(sorted(case_pks), using)
        CaseEvent.objects.using(using).bulk_create(events)
    return len(rows)


def _flag(case_pks, using):
    for start in range(0, len(case_pks), CHUNK):
        Case.objects.using(using).filter(pk__in=case_pks[start:start + CHUNK]).update(
            needs_person=True)


def lapsed_promises(as_of, using=DEFAULT_DB_ALIAS):
    """Open cases whose latest promise is broken on ``as_of`` but not counted yet."""
    return Case.objects.using(using).filter(
        status=Case.Status.OPEN, promise_broken=False,
        promised_on__lt=as_of - datetime.timedelta(days=PROMISE_GRACE_DAYS))


def count_broken_promises(as_of, *, cases=None, postponed_to=None, now=None, run=None,
                          using=DEFAULT_DB_ALIAS):
    """Count every lapsed promise (see :func:`lapsed_promises`; ``cases``: of these cases
    only) once: ``Case.broken_promises`` goes up, the timeline gets a ``promise-broken``
    event, and a case that reached ``PORTAL_PROMISE_MAX_BROKEN`` needs a person (with an
    ``escalated`` event). ``postponed_to``: a new promise for that date replaces the
    standing one; a standing promise for an earlier date counts as broken (put off), as
    a lapsed one does. Returns {case pk: its broken promises now}."""
    now = now or timezone.now()
    most = int(dunning_settings.PORTAL_PROMISE_MAX_BROKEN)
    if postponed_to is None:
        lapsed = lapsed_promises(as_of, using)
    else:
        lapsed = Case.objects.using(using).filter(
            status=Case.Status.OPEN, promise_broken=False, promised_on__lt=postponed_to)
    if cases is not None:
        lapsed = lapsed.filter(pk__in=cases)
    if not lapsed.exists():  # the usual run: one query, no transaction
        return {}
    with transaction.atomic(using=using):
        rows = list(lapsed.select_for_update(skip_locked=True, of=("self",))
                    .order_by("pk").values_list("pk", "broken_promises", "promised_on"))
        if not rows:
            return {}
        pks = [row[0] for row in rows]
        for start in range(0, len(pks), CHUNK):
            Case.objects.using(using).filter(pk__in=pks[start:start + CHUNK]).update(
                promise_broken=True, broken_promises=F("broken_promises") + 1)
        events, counts, limit_reached = [], {}, []
        for pk, before, promised_on in rows:
            count = counts[pk] = before + 1
            if postponed_to is None:
                message = _("The promise to pay by %(date)s was not kept (broken promise "
                            "%(count)s of at most %(max)s).")
            else:
                message = _("The promise to pay by %(date)s was put off to %(later)s (broken "
                            "promise %(count)s of at most %(max)s).")
            events.append(_event(
                pk, CaseEvent.Kind.PROMISE_BROKEN,
                message % {"date": promised_on.isoformat(), "count": count, "max": most,
                           "later": postponed_to.isoformat() if postponed_to else ""},
                now, run, date=promised_on.isoformat(), broken=count))
            if not schedule.may_promise(count, most):
                limit_reached.append(pk)
                events.append(_event(
                    pk, CaseEvent.Kind.ESCALATED,
                    _("%(count)s promises to pay were broken: the customer can no longer "
                      "promise on the self-service page, and a person decides.")
                    % {"count": count}, now, run, reason=ESCALATED_BROKEN_PROMISES,
                    broken=count))
        _flag(limit_reached, using)
        CaseEvent.objects.using(using).bulk_create(events)
    return counts


def broken_count(case, today=None, new_date=None):
    """The broken promises of ``case`` as of ``today`` (no query), counting the standing
    promise too when it has lapsed but no run has counted it yet, or when a new promise
    for ``new_date`` would put it off."""
    today = today or timezone.localdate()
    standing = not case.promise_broken and case.promised_on is not None
    pending = standing and (
        schedule.promise_broken(case.promised_on, today, PROMISE_GRACE_DAYS)
        or (new_date is not None and new_date > case.promised_on))
    return case.broken_promises + (1 if pending else 0)


def check_holds(as_of, *, now=None, run=None, using=DEFAULT_DB_ALIAS):
    """The run's check: count broken promises, escalate disputes that waited too long.
    One query when there is nothing to do (the usual run); ``open_disputes`` tells the
    run whether any dispute is open at all (else it asks no batch for its disputes)."""
    lapsed, waiting, any_open = exist(
        lapsed_promises(as_of, using), waiting_disputes(as_of, using), open_disputes(using),
        using=using)
    promises = count_broken_promises(as_of, now=now, run=run, using=using) if lapsed else {}
    disputes = escalate_disputes(as_of, now=now, run=run, using=using) if waiting else 0
    return {"broken_promises": len(promises), "escalated_disputes": disputes,
            "open_disputes": any_open}
