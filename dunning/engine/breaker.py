"""Per-channel circuit breakers of the outbox (docs/outbox.md, "Provider outages").

When a channel's provider cannot be reached (the connection cannot be opened), the
breaker **opens**: no message of the channel is handed over until ``open_until``
(``OUTBOX_BREAKER_BACKOFF`` seconds, doubling for every further failure in a row, at most
``OUTBOX_BREAKER_MAX_DELAY``). Then it is **half-open**: one worker claims the probe (a
guarded ``UPDATE``, so two processes never probe at once) and hands over its next chunk;
if the provider is reached the breaker **closes**, otherwise it opens again for longer.

The state lives in the ``ChannelBreaker`` table so that every process (runs, drains,
shards) respects it. A run or a drain reads it once, when it first sends (one query, so
the queries of a run stay constant); a breaker another process opens later costs this
process one failed connection, which opens it here too.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F

from ..conf import dunning_settings
from ..failures import backoff
from ..models import ChannelBreaker

logger = logging.getLogger("dunning.outbox")

def breaker_delay(failures):
    """Seconds a channel pauses after ``failures`` failed connections in a row."""
    base = float(dunning_settings.OUTBOX_BREAKER_BACKOFF)
    return backoff(failures, base, max(float(dunning_settings.OUTBOX_BREAKER_MAX_DELAY), base),
                   least=1.0)


@dataclass
class State:
    failures: int = 0
    open_until: datetime.datetime | None = None
    reason: str = ""
    probing: bool = False  # this process holds the half-open probe


class Breakers:
    """The breakers of one database, as one process sees them."""

    def __init__(self, using):
        self.using = using
        self.states = {}
        self.loaded = False

    def rows(self):
        return ChannelBreaker.objects.using(self.using)

    def current(self):
        if not self.loaded:
            fresh = {
                channel: State(failures, until, reason)
                for channel, failures, until, reason in self.rows().filter(failures__gt=0)
                .values_list("channel", "failures", "open_until", "reason")
            }
            for channel, state in fresh.items():
                if self.states.get(channel, State()).probing:
                    state.probing = True
            self.states = fresh
            self.loaded = True
        return self.states

    def paused(self, now):
        """{channel: open until} of the channels whose breaker is open at ``now``, not
        counting one this process probes."""
        return {channel: s.open_until for channel, s in self.current().items()
                if s.failures and not s.probing and s.open_until and s.open_until > now}

    def open_until(self, channel, now):
        """None when the channel's messages may be handed over now (closed, or the probe
        of a half-open breaker, claimed here); else until when the channel is paused."""
        state = self.current().get(channel)
        if state is None or not state.failures or state.probing:
            return None
        if state.open_until is not None and state.open_until > now:
            return state.open_until
        # Half-open: claim the probe. The claim pauses the others for another delay; a
        # prober that dies leaves the breaker to the next one after it.
        until = now + breaker_delay(state.failures)
        claimed = self.rows().filter(channel=channel, failures=state.failures).filter(
            open_until__lte=now).update(open_until=until)
        if claimed:
            state.open_until, state.probing = until, True
            logger.info("Probing the %s provider (%d failed connections in a row)",
                        channel, state.failures)
            return None
        self.loaded = False  # another process probes, or closed it: read it again
        state = self.current().get(channel)
        if state is None or not state.failures or state.open_until is None or state.open_until <= now:
            return None
        return state.open_until

    def trip(self, channel, now, reason, *, answered=False):
        """The channel's provider could not be reached: open the breaker (for longer
        than last time, unless it ``answered`` other messages of the same chunk first: then
        the failures in a row start again at one) and return until when the channel is
        paused."""
        state = self.current().get(channel) or State()
        failures = 1 if answered else state.failures + 1
        until = now + breaker_delay(failures)
        reason = reason[:2000]
        values = {"failures": 1 if answered else F("failures") + 1, "open_until": until,
                  "reason": reason, "changed_at": now}
        with transaction.atomic(using=self.using):
            if not self.rows().filter(channel=channel).update(**values):
                try:
                    with transaction.atomic(using=self.using):
                        self.rows().create(channel=channel, failures=1, open_until=until,
                                           reason=reason, changed_at=now)
                except IntegrityError:  # another process created it meanwhile
                    self.rows().filter(channel=channel).update(**values)
        self.states[channel] = State(failures, until, reason)
        logger.warning("The %s provider cannot be reached (%s): its messages wait until %s",
                       channel, reason, until.isoformat())
        return until

    def close(self, channel, now):
        """The channel's provider was reached: close its breaker (a write only when it
        was not closed already)."""
        state = self.current().get(channel)
        if state is None or not state.failures:
            return
        self.rows().filter(channel=channel).update(failures=0, open_until=None,
                                                   changed_at=now)
        self.states.pop(channel, None)
        logger.warning("The %s provider answers again: sending resumes", channel)


def release(breaker, now):
    """A person closed ``breaker`` (deleted its row, the provider being back): the
    channel's messages that wait for it are due at ``now``."""
    from ..models import CaseStep

    if breaker.open_until is None:
        return 0
    return CaseStep.objects.using(breaker._state.db).filter(
        channel=breaker.channel, status=CaseStep.Status.QUEUED,
        next_attempt_at__gt=now, next_attempt_at__lte=breaker.open_until,
    ).update(next_attempt_at=now)
