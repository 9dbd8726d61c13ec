"""Outbound webhooks: every case event, posted to the configured URLs, signed, retried.

Two stages, like the outbox of messages (docs/webhooks.md has the receiver's side):

1. **enqueue**, in the transaction that records the events: one
   :class:`~dunning.models.WebhookDelivery` row per event and interested endpoint, all rows
   of a batch in one ``INSERT``. A rollback takes the deliveries with the events, so no
   delivery is lost or invented. The events:

   * ``case.<kind>`` for every :class:`~dunning.models.CaseEvent` (``case.resolved``,
     ``case.suspended``, ``case.promise``, ...): single creates by the ``post_save``
     receiver in ``dunning.models.webhooks``, bulk creates by an explicit
     :func:`events_created` after the ``bulk_create``;
   * ``case.opened`` for every case a run opened (:func:`cases_opened`);
   * ``step.sent`` / ``step.failed`` for every executed step's outcome, where the run
     records it (:func:`batch_recorded` for steps that fail before sending: no address,
     and :func:`step_outcomes` + :func:`save` where the outbox records what the channel
     did).

   The active endpoints are cached per process for :data:`CACHE_SECONDS` seconds (and
   dropped at once when this process saves or deletes one): with no endpoint a run
   makes no webhook query but that cached read, and with endpoints one ``INSERT`` per
   transaction that records events (per 2,000 deliveries).

2. **deliver** (:func:`deliver_due`; ``dunning.tasks.drain`` and ``manage.py dunning
   deliver-webhooks`` call it): due deliveries are leased (``pending -> delivering``;
   ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, one guarded ``UPDATE`` elsewhere),
   so two workers never post the same one, then POSTed with the standard library,
   signed with the endpoint's secret (``Dunning-Signature: t=<unix>,v1=<hex>``, HMAC-SHA256
   of ``"<t>.<body>"``). 2xx: delivered; 410 Gone: the endpoint is disabled; anything else
   (other status, timeout, refused connection): retried with exponential backoff, failed
   after ``WEBHOOK_MAX_ATTEMPTS`` tries. A worker that dies while posting leaves a lease
   that runs out, and the delivery is posted again: **at least once**; receivers
   deduplicate by the event id (``Dunning-Delivery`` header, ``"id"`` in the body), which
   is the same for every retry.

:func:`verify_signature` is the receiver's check, for receivers that are Django sites.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
import weakref
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Exists, F, OuterRef
from django.db.models.constants import OnConflict
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from .. import __version__
from ..conf import dunning_settings
from ..db import max_query_params, update_returning
from ..failures import backoff, describe
from ..models import Case, CaseEvent, CaseStep, Policy, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger("dunning.webhooks")

Status = WebhookDelivery.Status

CASE_OPENED = "case.opened"
STEP_SENT = "step.sent"
STEP_FAILED = "step.failed"

#: Seconds a process caches the active endpoints (and the policies' keys). A change made
#: in another process reaches the runs of this one within this time.
CACHE_SECONDS = 30

#: Deliveries one lease takes (they are posted one after another).
LEASE_SIZE = 10

#: Seconds a lease lasts beyond the time its posts may take (WEBHOOK_TIMEOUT each).
LEASE_MARGIN = 60

#: Characters of a response body kept in ``last_error``.
ERROR_BODY_CHARS = 500

USER_AGENT = f"django-dunning/{__version__} (+webhooks)"

HEADER_EVENT = "Dunning-Event"
HEADER_DELIVERY = "Dunning-Delivery"
HEADER_TIMESTAMP = "Dunning-Timestamp"
HEADER_SIGNATURE = "Dunning-Signature"


def event_types():
    """Every event type, in the order the admin lists them."""
    return [CASE_OPENED, *(f"case.{kind}" for kind in CaseEvent.Kind.values),
            STEP_SENT, STEP_FAILED]


def wants(filter_types, event_type):
    """Whether an endpoint with the event filter ``filter_types`` (empty: everything)
    gets ``event_type``; ``"case.*"`` stands for every ``case.`` type."""
    if not filter_types:
        return True
    return event_type in filter_types or f"{event_type.split('.', 1)[0]}.*" in filter_types


# -- signatures -----------------------------------------------------------------------
def sign(secret, timestamp, body):
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``."""
    if isinstance(body, str):
        body = body.encode()
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret, body, timestamp=None):
    """The ``Dunning-Signature`` header of ``body``: ``t=<unix time>,v1=<hex>``."""
    timestamp = int(time.time() if timestamp is None else timestamp)
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify_signature(secret, header, body, tolerance=300, *, now=None):
    """True if ``header`` (the ``Dunning-Signature`` request header) signs ``body`` (the
    raw request body, bytes, exactly as received: ``request.body``) with ``secret`` and
    its timestamp is at most ``tolerance`` seconds away from ``now`` (default: the
    current time; ``tolerance=None``: any age). Compares in constant time."""
    if not header or not secret:
        return False
    timestamp, candidates = None, []
    for part in str(header).split(","):
        key, _sep, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - timestamp) > tolerance:
            return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# -- caches -----------------------------------------------------------------------------
_endpoints = {}  # alias -> (expires at (monotonic), ((pk, frozenset of types), ...))
_policy_keys = {}  # alias -> (expires at, {policy pk: key})
# Per run (DunningRun): case pk -> (status, customer pk, policy pk) as the run left it,
# for the payloads of step outcomes recorded after the batch.
_case_states = weakref.WeakKeyDictionary()


def clear_cache():
    """Forget the cached endpoints and policy keys (the next enqueue reads them again)."""
    _endpoints.clear()
    _policy_keys.clear()


def active_endpoints(using=DEFAULT_DB_ALIAS):
    """((pk, event filter), ...) of the active endpoints, cached for CACHE_SECONDS."""
    now = time.monotonic()
    cached = _endpoints.get(using)
    if cached is not None and cached[0] > now:
        return cached[1]
    endpoints = tuple(
        (pk, frozenset(types or ()))
        for pk, types in WebhookEndpoint.objects.using(using)
        .filter(is_active=True).order_by("pk").values_list("pk", "event_types")
    )
    _endpoints[using] = (now + CACHE_SECONDS, endpoints)
    return endpoints


def _policy_key(policy_id, using, run=None):
    loaded = getattr(run, "policies", None) or {}
    if policy_id in loaded:
        return loaded[policy_id].policy.key
    now = time.monotonic()
    cached = _policy_keys.get(using)
    if cached is None or cached[0] <= now or policy_id not in cached[1]:
        keys = dict(Policy.objects.using(using).values_list("pk", "key"))
        cached = _policy_keys[using] = (now + CACHE_SECONDS, keys)
    return cached[1].get(policy_id, "")


# -- events -----------------------------------------------------------------------------
@dataclass
class Event:
    """One event, before it becomes a delivery per endpoint."""

    type: str
    key: str  # unique per event and stable: the event id derives from it
    created: datetime.datetime
    case_id: int
    data: dict
    case: tuple | None = None  # (status, customer pk, policy pk) when known


def event_id(key):
    """The UUID of the event ``key``: the same whenever that event is enqueued again (a
    retried transaction), different between sites (it is keyed by SECRET_KEY)."""
    digest = salted_hmac("dunning.webhooks.event", key, algorithm="sha256").digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def _case_state(case):
    return (case.status, case.customer_id, case.policy_id)


def _remember(run, states):
    if run is not None:
        _case_states.setdefault(run, {}).update(states)


def _payloads(events, endpoints, using, run=None):
    """Delivery rows (dicts of WebhookDelivery fields) for ``events`` x ``endpoints``.
    Case states not known yet are read in one query."""
    if not events:
        return []
    known = _case_states.get(run, {}) if run is not None else {}
    missing = {e.case_id for e in events if e.case is None and e.case_id not in known}
    if missing:
        known = dict(known)
        for pk, *state in Case.objects.using(using).filter(pk__in=missing).values_list(
            "pk", "status", "customer_id", "policy_id"
        ):
            known[pk] = tuple(state)
    rows = []
    now = timezone.now()
    for event in events:
        state = event.case or known.get(event.case_id)
        if state is None:
            continue  # the case is gone (deleted in the same transaction)
        status, customer_id, policy_id = state
        targets = [pk for pk, types in endpoints if wants(types, event.type)]
        if not targets:
            continue
        eid = event_id(event.key)
        payload = {
            "id": str(eid),
            "type": event.type,
            "created": event.created,
            "case": {
                "id": event.case_id,
                "status": str(status),
                "customer": str(customer_id),
                "policy": _policy_key(policy_id, using, run),
            },
            "data": event.data,
        }
        # One JSON round trip: Decimals, dates and UUIDs become strings once, here.
        payload = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
        for endpoint_pk in targets:
            rows.append({
                "endpoint": endpoint_pk, "event_type": event.type, "event_id": eid,
                "payload": payload, "status": Status.PENDING, "attempts": 0,
                "next_attempt_at": now, "last_response_code": None, "last_error": "",
                "created_at": now, "delivered_at": None,
            })
    return rows


ROW_FIELDS = ("endpoint", "event_type", "event_id", "payload", "status", "attempts",
              "next_attempt_at", "last_response_code", "last_error", "created_at",
              "delivered_at")


def save(rows, using=DEFAULT_DB_ALIAS):
    """INSERT delivery rows with as few statements as the database allows (one per batch
    in practice). An event already enqueued for an endpoint (same event id) is skipped,
    so enqueueing again after a retried transaction adds nothing."""
    if not rows:
        return
    connection = connections[using]
    opts = WebhookDelivery._meta
    fields = [opts.get_field(name) for name in ROW_FIELDS]
    qn = connection.ops.quote_name
    ignore = OnConflict.IGNORE if connection.features.supports_ignore_conflicts else None
    head = (f"{connection.ops.insert_statement(on_conflict=ignore)} {qn(opts.db_table)} "
            f"({', '.join(qn(f.column) for f in fields)}) VALUES ")
    suffix = connection.ops.on_conflict_suffix_sql(fields, ignore, None, None) if ignore else ""
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_statement = max(1, min(max_query_params(connection) // len(fields), 2000))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params = [f.get_db_prep_save(row[f.name], connection) for row in chunk for f in fields]
            sql = head + ", ".join([row_sql] * len(chunk))
            cursor.execute(f"{sql} {suffix}" if suffix else sql, params)


def _case_event(event, trust_case):
    """An :class:`Event` of a saved CaseEvent; ``trust_case``: the case instance it holds
    is the state to report (a run's batch), else the case is read from the database."""
    data = dict(event.data or {})
    data.setdefault("message", event.message)
    data.setdefault("actor", str(event.actor_id) if event.actor_id is not None else None)
    case = event.case if trust_case and CaseEvent.case.is_cached(event) else None
    return Event(
        type=f"case.{event.kind}",
        key=f"case-event:{event.pk}" if event.pk is not None else f"case-event:{uuid.uuid4()}",
        created=event.created_at or timezone.now(),
        case_id=event.case_id,
        data=data,
        case=_case_state(case) if case is not None else None,
    )


def events_created(events, using=DEFAULT_DB_ALIAS, run=None):
    """Enqueue ``case.<kind>`` for saved CaseEvents (call it right after their
    ``bulk_create``, in the same transaction; single creates are enqueued by the
    ``post_save`` receiver). No query when no endpoint is active."""
    endpoints = active_endpoints(using)
    if not endpoints or not events:
        return
    events = [_case_event(e, trust_case=run is not None) for e in events]
    save(_payloads(events, endpoints, using, run), using)


def batch_recorded(run, cases, steps, events):
    """A run recorded a batch (in its transaction): enqueue its events and the steps that
    failed before sending (``step.failed``), and remember the cases' state for the
    outcomes the outbox records later."""
    using = run.using
    endpoints = active_endpoints(using)
    if not endpoints:
        return
    _remember(run, {case.pk: _case_state(case) for case in cases})
    found = [_case_event(e, trust_case=True) for e in events]
    for row in steps:
        if row["status"] != CaseStep.Status.FAILED:
            continue
        found.append(Event(
            type=STEP_FAILED,
            key=f"{STEP_FAILED}:{row['case']}:{row['step_key']}:{row['created_at'].isoformat()}",
            created=row["created_at"], case_id=row["case"],
            data=_step_data(row["step_key"], row["action"], row["channel"], row["recipient"],
                            row["invoices"], reason=row["reason"], attempts=0),
        ))
    save(_payloads(found, endpoints, using, run), using)


def cases_opened(run):
    """Enqueue ``case.opened`` for the cases ``run`` opened (call it in the transaction of
    its ``INSERT ... SELECT``; the cases are read back by their ``opened_in``)."""
    using = run.using
    endpoints = active_endpoints(using)
    if not endpoints or not run.result.opened or run.run is None:
        return
    events = []
    for pk, status, customer_id, policy_id, opened_at, opened_on in (
        Case.objects.using(using).filter(opened_in=run.run).order_by("pk").values_list(
            "pk", "status", "customer_id", "policy_id", "opened_at", "opened_on")
    ):
        events.append(Event(
            type=CASE_OPENED, key=f"{CASE_OPENED}:{pk}", created=opened_at, case_id=pk,
            data={"opened_on": opened_on, "run": run.run.pk},
            case=(status, customer_id, policy_id),
        ))
    save(_payloads(events, endpoints, using, run), using)


def remember_cases(run, steps):
    """The outbox is about to send queued ``steps`` (CaseSteps with their case loaded):
    remember their cases' state for the payloads of the outcomes."""
    if active_endpoints(run.using):
        _remember(run, {s.case_id: _case_state(s.case) for s in steps})


def _totals(invoices):
    totals = {}
    for invoice in invoices or ():
        try:
            amount = Decimal(str(invoice.get("amount_due", "0")))
        except (InvalidOperation, AttributeError):
            continue
        currency = invoice.get("currency", "")
        totals[currency] = totals.get(currency, Decimal(0)) + amount
    return {currency: str(amount) for currency, amount in sorted(totals.items())}


def _step_data(step_key, action, channel, recipient, invoices, **extra):
    return {
        "step": step_key,
        "action": action or "",
        "channel": channel,
        "recipient": recipient,
        "invoice_numbers": [i.get("number") for i in invoices or ()],
        "invoices": list(invoices or ()),
        "totals": _totals(invoices),
        **extra,
    }


def step_outcomes(outbox, now, handed, sent_plain, sent_ids, final, unsendable):
    """Delivery rows for the outcomes the outbox is about to record for one handed-over
    batch: ``step.sent`` and ``step.failed`` (a retry still to come is no outcome).
    Returns the rows; :func:`save` them in the transaction that records the outcomes."""
    run = outbox.run
    endpoints = active_endpoints(outbox.using)
    if not endpoints:
        return []
    by_pk = {pk: (item, attempts) for item, _message, pk, attempts in handed}
    events = []

    def add(kind, item, key, **extra):
        events.append(Event(
            type=kind, key=f"{kind}:{key}:{now.isoformat()}", created=now,
            case_id=item.case_id,
            data=_step_data(item.step_key, item.step_info.get("action", ""), item.channel,
                            item.recipient, item.invoices, **extra),
        ))

    sent = [(pk, "") for pk in sent_plain] + list(sent_ids)
    for pk, message_id in sent:
        item, attempts = by_pk[pk]
        add(STEP_SENT, item, pk, case_step=pk, attempts=attempts, message_id=message_id)
    for reason, pks in final.items():
        for pk in pks:
            item, attempts = by_pk[pk]
            add(STEP_FAILED, item, pk, case_step=pk, attempts=attempts, reason=reason)
    for item, reason in unsendable:
        add(STEP_FAILED, item, f"{item.case_id}:{item.step_key}", attempts=0,
            reason=reason[:2000])
    return _payloads(events, endpoints, outbox.using, run)


# -- delivery ---------------------------------------------------------------------------
@dataclass
class DeliveryResult:
    """What one :func:`deliver_due` did."""

    delivered: int = 0
    failed: int = 0  # gave up: attempts used up, or the endpoint is gone (410)
    retrying: int = 0  # failed this time, posted again later
    disabled: int = 0  # endpoints that answered 410 Gone and were disabled
    seconds: float = 0.0

    def as_dict(self):
        return {"delivered": self.delivered, "failed": self.failed, "retrying": self.retrying,
                "disabled": self.disabled, "seconds": round(self.seconds, 3)}


def retry_delay(attempts):
    """How long a delivery waits after its ``attempts``-th try failed:
    ``WEBHOOK_RETRY_BACKOFF`` seconds, doubled for every further try, at most
    ``WEBHOOK_RETRY_MAX_DELAY`` seconds."""
    return backoff(attempts, dunning_settings.WEBHOOK_RETRY_BACKOFF,
                   dunning_settings.WEBHOOK_RETRY_MAX_DELAY)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer other than 2xx (a POST is never replayed elsewhere)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


@dataclass
class Response:
    code: int | None  # None: no answer (timeout, refused, ...)
    error: str = ""

    @property
    def ok(self):
        return self.code is not None and 200 <= self.code < 300


def post(url, secret, event_type, event_id_, payload, *, timeout=None, timestamp=None):
    """POST one event; returns a :class:`Response` (never raises for network errors)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time() if timestamp is None else timestamp)
    if urlsplit(url).scheme not in ("http", "https"):
        return Response(None, f"not an http(s) URL: {url[:200]}")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        HEADER_EVENT: event_type,
        HEADER_DELIVERY: str(event_id_),
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: f"t={timestamp},v1={sign(secret, timestamp, body)}",
    })
    if timeout is None:
        timeout = float(dunning_settings.WEBHOOK_TIMEOUT)
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(ERROR_BODY_CHARS)
            return Response(response.status)
    except urllib.error.HTTPError as exc:
        try:
            text = exc.read(ERROR_BODY_CHARS).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - the body is only for the error text
            text = ""
        finally:
            exc.close()
        return Response(exc.code, f"HTTP {exc.code} {exc.reason}: {text}".strip().rstrip(":"))
    except urllib.error.URLError as exc:
        return Response(None, describe(exc.reason, None))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Response(None, describe(exc, None) if str(exc) else type(exc).__name__)


def _lease(now, size, using, after, skip, only):
    """Move up to ``size`` due deliveries to ``delivering`` (one committed transaction);
    return them, with their endpoints, in pk order. Expired leases count as due."""
    timeout = float(dunning_settings.WEBHOOK_TIMEOUT)
    until = now + datetime.timedelta(seconds=size * timeout + LEASE_MARGIN)
    due = WebhookDelivery.objects.using(using).filter(
        status__in=(Status.PENDING, Status.DELIVERING), next_attempt_at__lte=now,
        endpoint__is_active=True, pk__gt=after,
    )
    if skip:
        due = due.exclude(endpoint_id__in=skip)
    if only is not None:
        due = due.filter(pk__in=only)
    values = {"status": Status.DELIVERING, "attempts": F("attempts") + 1,
              "next_attempt_at": until}
    manager = WebhookDelivery.objects.using(using)
    connection = connections[using]
    with transaction.atomic(using=using):
        if connection.features.has_select_for_update_skip_locked:
            pks = list(due.select_for_update(skip_locked=True, of=("self",))
                       .order_by("pk").values_list("pk", flat=True)[:size])
            if pks:
                manager.filter(pk__in=pks).update(**values)
        else:
            # One UPDATE ... RETURNING under the database's write lock (SQLite: one
            # writer at a time): exactly the rows this statement moved.
            picked = due.order_by("pk").values("pk")[:size]
            pks = [row[0] for row in update_returning(
                manager.filter(pk__in=picked), values, ("id",))]
    if not pks:
        return []
    return list(manager.filter(pk__in=pks).select_related("endpoint").order_by("pk"))


def _remove_orphans(using):
    """Deliveries whose endpoint was deleted while a run had it cached."""
    endpoint = WebhookEndpoint.objects.using(using).filter(pk=OuterRef("endpoint_id"))
    WebhookDelivery.objects.using(using).filter(
        status=Status.PENDING
    ).filter(~Exists(endpoint)).delete()


def deliver_due(now=None, limit=1000, *, using=DEFAULT_DB_ALIAS, only=None):
    """Post the deliveries that are due (``now``: default the current time), at most
    ``limit`` of them; each is looked at once per call. Safe in several processes at
    once. ``only``: these delivery pks only. Returns a :class:`DeliveryResult`."""
    started = time.perf_counter()
    result = DeliveryResult()
    max_attempts = max(int(dunning_settings.WEBHOOK_MAX_ATTEMPTS), 1)
    _remove_orphans(using)
    manager = WebhookDelivery.objects.using(using)
    skip = set()  # endpoints not to post to again in this call (no answer, 5xx, gone)
    after, remaining = 0, limit
    while remaining is None or remaining > 0:
        size = LEASE_SIZE if remaining is None else min(LEASE_SIZE, remaining)
        clock = now or timezone.now()
        leased = _lease(clock, size, using, after, skip, only)
        if not leased:
            break
        after = leased[-1].pk
        if remaining is not None:
            remaining -= len(leased)
        put_back = []
        for delivery in leased:
            endpoint = delivery.endpoint
            if endpoint.pk in skip:
                put_back.append(delivery.pk)
                continue
            response = post(endpoint.url, endpoint.secret, delivery.event_type,
                            delivery.event_id, delivery.payload)
            at = now or timezone.now()
            mine = manager.filter(pk=delivery.pk, status=Status.DELIVERING,
                                  attempts=delivery.attempts)
            if response.ok:
                mine.update(status=Status.DELIVERED, delivered_at=at, next_attempt_at=None,
                            last_response_code=response.code, last_error="")
                result.delivered += 1
                continue
            if response.code == 410:
                reason = _("The endpoint answered 410 Gone and was disabled.")
                with transaction.atomic(using=using):
                    WebhookEndpoint.objects.using(using).filter(pk=endpoint.pk).update(
                        is_active=False, disabled_reason=reason)
                    mine.update(status=Status.FAILED, next_attempt_at=None,
                                last_response_code=410, last_error=reason)
                clear_cache()
                logger.warning("Webhook endpoint %s answered 410 Gone: disabled", endpoint.pk)
                skip.add(endpoint.pk)
                result.failed += 1
                result.disabled += 1
                continue
            error = (response.error or f"HTTP {response.code}")[:2000]
            if response.code is None or response.code >= 500 or response.code == 429:
                skip.add(endpoint.pk)  # down or overloaded: no more posts to it this time
            if delivery.attempts < max_attempts:
                mine.update(status=Status.PENDING,
                            next_attempt_at=at + retry_delay(delivery.attempts),
                            last_response_code=response.code, last_error=error)
                result.retrying += 1
            else:
                reason = _("gave up after %(attempts)s attempts: %(reason)s") % {
                    "attempts": delivery.attempts, "reason": error}
                mine.update(status=Status.FAILED, next_attempt_at=None,
                            last_response_code=response.code, last_error=reason[:2000])
                result.failed += 1
                logger.warning("Webhook delivery %s failed for good: %s", delivery.pk, reason)
        if put_back:
            # Not tried: back to pending, as due as before, the lease's attempt undone.
            manager.filter(pk__in=put_back, status=Status.DELIVERING).update(
                status=Status.PENDING, attempts=F("attempts") - 1,
                next_attempt_at=now or timezone.now(),
            )
    result.seconds = time.perf_counter() - started
    return result


def retry_now(deliveries, using=DEFAULT_DB_ALIAS):
    """Make pending and failed ``deliveries`` due now (a failed one gets its tries
    back). Returns how many were changed."""
    pks = [d.pk for d in deliveries if d.status in (Status.PENDING, Status.FAILED)]
    if not pks:
        return 0
    now = timezone.now()
    manager = WebhookDelivery.objects.using(using)
    with transaction.atomic(using=using):
        pending = manager.filter(pk__in=pks, status=Status.PENDING).update(next_attempt_at=now)
        failed = manager.filter(pk__in=pks, status=Status.FAILED).update(
            status=Status.PENDING, attempts=0, next_attempt_at=now, last_error="")
    return failed + pending
