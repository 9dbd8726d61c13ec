"""Entry points for a task queue (django-q2): primitive arguments in, a plain dict out.

``python manage.py dunning schedule`` points two django-q2 schedules here: ``dunning-run``
at :func:`run` (daily, or every N minutes) and ``dunning-drain`` at :func:`drain` (every few
minutes).

A scheduled run is a **tick** that splits its work over **shards**:

1. :func:`run` (the tick) does the run's set-wide stages once: it sends what a crashed run
   left queued, opens the new cases (one ``INSERT ... SELECT``) and resolves the paid ones;
2. it enqueues up to ``DUNNING["SHARDS"] - 1`` :func:`shard` tasks (default: the cluster's
   ``Q_CLUSTER["workers"]``; fewer when there are fewer batches of due cases than shards)
   and then works as one shard itself;
3. every shard advances due cases batch by batch with the same claim as ``dunning run``
   (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the batches take turns),
   until none is left. Shards do not own a part of the cases: they take the next free
   batch, so a fast shard does more and a lost shard's cases are taken by the others, or
   by the next tick.

django-q2 delivers at least once (a task that outlives ``retry`` is delivered again, a
missed schedule is caught up), and every task here is idempotent: a case leaves its batch
with a later ``next_due_on`` or closed, and a unique constraint on (case, step) makes the
same step to the same case impossible, so a task run twice, two ticks at once (two
schedules, two clusters) or a tick overlapping the previous day's only finish what the
others left undone. A shard stops claiming after half of ``min(timeout, retry)`` of the
cluster and hands the rest to a new shard task, so that no shard is killed by the
cluster's timeout or delivered a second time while it works.

Each task writes its own ``Run`` row: the tick's (stages drain, open, paid and its share of
due cases) and one per shard (``summary`` has ``"tick"``: the tick's ``Run`` id and
``"shard"``: its number; continuations keep the number).
"""

from __future__ import annotations

import datetime
import logging
import math
import time

# The django-q2 schedules `manage.py dunning schedule` creates, updates and removes.
SCHEDULE_NAME = "dunning-run"
DRAIN_SCHEDULE_NAME = "dunning-drain"

logger = logging.getLogger("dunning.tasks")


def run(as_of: str | None = None) -> dict:
    """The scheduled run (``as_of``: an ISO date; default today in the site's time zone).

    Called directly (or by a cluster with one worker) it is a whole run, like ``dunning
    run``, and does everything ``dunning run`` does (:func:`after_run`: due payment
    retries, pre-dunning notices, due outbound webhooks), whether or not the
    ``dunning-drain`` schedule is installed. Returns the summary of the tick's own part,
    with ``"shards"``: the number of shards the run was split into (the tick included),
    and ``"payments"``, ``"predunning"`` and ``"webhooks"``.
    """
    date = datetime.date.fromisoformat(as_of) if as_of else None
    tick = _tick_class()(date)
    tick.max_shards = shard_count()  # a bad DUNNING["SHARDS"] fails before anything is done
    result = tick.execute(deadline=_deadline())
    summary = result.as_dict()
    summary["shards"] = tick.shards
    summary.update(after_run(date))
    _note(result.run_id, summary)
    if tick.stopped_early:
        _continue(tick, tick.run.pk, 0)
    return summary


def shard(as_of: str, explicit: bool = True, tick: int | None = None, index: int = 0) -> dict:
    """Advance due cases of the run for ``as_of`` until none is left (one shard of the tick
    whose ``Run`` id is ``tick``). Idempotent: run late, twice or after the tick's other
    shards, it finds nothing left to do."""
    from .engine.run import DunningRun

    part = DunningRun(datetime.date.fromisoformat(as_of))
    # The tick's date, fixed when it started; with `explicit` False messages show each
    # customer's own date, as in a run without --as-of.
    part.explicit_date = explicit
    result = part.execute(stages=("due",), deadline=_deadline())
    summary = result.as_dict()
    summary.update(tick=tick, shard=index)
    _note(result.run_id, summary)
    if part.stopped_early:
        _continue(part, tick, index)
    return summary


def after_run(as_of: datetime.date | None = None, *, now=None, database: str = "default") -> dict:
    """What every run does after its stages (``dunning run`` and the scheduled
    :func:`run` alike; the drain does the first and the last between runs):

    * ``"payments"``: the payment retries due (pending debits polled first), recorded on
      the run's date ``as_of`` at ``now`` (default: that date at the present time of
      day, ``dunning.engine.run.on_date``, like the run's own send clock);
    * ``"predunning"``: the pre-dunning notices due on ``as_of``;
    * ``"webhooks"``: the outbound webhooks due now.

    Nothing of the first two without a ``PAYMENT_BACKEND``, nothing of the last without
    endpoints."""
    from django.utils import timezone

    from .engine.run import on_date
    from .payments.predunning import run_predunning
    from .payments.retries import run_due_retries
    from .webhooks import deliver_due

    now = now or on_date(as_of, timezone.now())
    return {
        "payments": dict(run_due_retries(now, as_of=as_of, using=database)),
        "predunning": dict(run_predunning(as_of, using=database)),
        "webhooks": deliver_due(using=database).as_dict(),
    }


def drain(database: str = "default") -> dict:
    """Between runs: send the messages whose retry is due (``dunning.engine.outbox.drain``)
    and charge the payment retries that are due (``dunning.payments.retries``, when a
    ``PAYMENT_BACKEND`` is set). Idempotent like the runs: a message or a retry is claimed
    before it is sent or charged."""
    from .engine.outbox import drain as drain_outbox
    from .payments.retries import run_due_retries
    from .webhooks import deliver_due

    summary = drain_outbox(using=database).as_dict()
    summary["payments"] = dict(run_due_retries(using=database))
    # Outbound webhooks whose (re)try is due (dunning.webhooks, docs/webhooks.md).
    summary["webhooks"] = deliver_due(using=database).as_dict()
    return summary


# -- the pieces --------------------------------------------------------------------------
def shard_count() -> int:
    """``DUNNING["SHARDS"]``, else the cluster's ``Q_CLUSTER["workers"]``."""
    from .conf import dunning_settings
    from .exceptions import DunningConfigurationError

    shards = dunning_settings.SHARDS
    if shards is None:
        from django_q.conf import Conf

        shards = Conf.WORKERS
    try:
        shards = int(shards)
    except (TypeError, ValueError):
        shards = 0
    if shards < 1:
        raise DunningConfigurationError("DUNNING['SHARDS'] must be a whole number of at least 1.")
    return shards


_TICK = None


def _tick_class():
    """``Tick``: a run that enqueues its shards between the paid pass and the due stage.
    (Built on first use: importing this module must not import the engine.)"""
    global _TICK
    if _TICK is None:
        from .engine.run import DunningRun

        class Tick(DunningRun):
            shards = 1
            max_shards = 1

            def advance(self, *, paid=True, due=True):
                super().advance(paid=paid, due=False)
                if due:
                    self.enqueue_shards()
                    super().advance(paid=False, due=True)

            def enqueue_shards(self):
                due = self.due_cases().count()
                wanted = max(1, min(self.max_shards, math.ceil(due / self.batch_size)))
                for index in range(1, wanted):
                    try:
                        _enqueue(self, self.run.pk, index)
                    except Exception:
                        from django_q.conf import Conf

                        if Conf.SYNC:
                            raise  # the shard itself failed, in this process
                        # The broker does not answer: this tick does the run alone.
                        logger.exception("Could not enqueue dunning shard %s", index)
                        break
                    self.shards += 1

        _TICK = Tick
    return _TICK


def _enqueue(run, tick, index):
    from django_q.tasks import async_task

    async_task(
        "dunning.tasks.shard", run.as_of.isoformat(), run.explicit_date, tick, index,
        q_options={"group": f"dunning-{run.as_of.isoformat()}",
                   "task_name": f"dunning-{run.as_of.isoformat()}-{tick}-{index}"},
    )


def _continue(run, tick, index):
    """The deadline stopped ``run``: hand what is left to a new shard task."""
    if run.due_cases().exists():
        logger.info("Dunning shard %s of run %s: time is up, continuing in a new task", index, tick)
        _enqueue(run, tick, index)


def _deadline():
    """Half of the cluster's ``min(timeout, retry)`` from now (None in sync mode): a shard
    claims no batch after it, so django-q2 neither kills it nor delivers it again."""
    from django_q.conf import Conf

    if Conf.SYNC:
        return None
    limits = [s for s in (Conf.TIMEOUT, Conf.RETRY) if s]
    if not limits:
        return None
    return time.monotonic() + min(limits) / 2


def _note(run_id, summary):
    """Write the task's summary (with its shard fields) into its ``Run`` row."""
    if run_id is None:
        return
    from .models import Run

    Run.objects.filter(pk=run_id).update(summary=summary)
