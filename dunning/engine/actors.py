"""Who did something on a case: the value every interface hands to :mod:`dunning.services`.

Each door says who came through it, and the timeline (dunning.timeline) says it back:

* the self-service page (dunning.portal, dunning.unsubscribe): :data:`CUSTOMER`;
* the admin: the staff user (``request.user``, or :func:`staff`);
* the REST API: :func:`api` of the authenticated user;
* the run, webhooks, the scheduler: :data:`SYSTEM` (or None).

The services' ``actor`` argument takes an :class:`Actor`, a bare user (a staff user, as the
admin has always passed it) or None (the system); :func:`resolve` turns any of them into
the pair a :class:`~dunning.models.CaseEvent` stores (``actor_kind``, ``actor``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import ActorKind


@dataclass(frozen=True)
class Actor:
    kind: str
    #: The Django user behind it (staff and API clients); None for the customer and system.
    user: object = None


SYSTEM = Actor(ActorKind.SYSTEM)
CUSTOMER = Actor(ActorKind.CUSTOMER)


def staff(user):
    return Actor(ActorKind.STAFF, user)


def api(user):
    return Actor(ActorKind.API, user)


def _signed_in(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def resolve(actor):
    """``(kind, user)`` of ``actor`` (an Actor, a user or None). A user that is not signed
    in (AnonymousUser) is nobody: the system, never a staff user without a name."""
    if actor is None:
        return ActorKind.SYSTEM, None
    if isinstance(actor, Actor):
        if actor.kind in (ActorKind.STAFF, ActorKind.API):
            user = _signed_in(actor.user)
            return (actor.kind, user) if user is not None else (ActorKind.SYSTEM, None)
        return actor.kind, None
    user = _signed_in(actor)
    return (ActorKind.STAFF, user) if user is not None else (ActorKind.SYSTEM, None)


def user_of(actor):
    """The Django user behind ``actor`` (None for the customer and the system)."""
    return resolve(actor)[1]
