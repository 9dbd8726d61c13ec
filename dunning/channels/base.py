"""The shape every channel has: check the recipient, build messages, send them in a batch,
report one outcome per message."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Outgoing:
    """Everything a channel needs to build one message (plain values only)."""

    case_id: int
    customer_id: object
    step_key: str
    recipient: str
    subject: str
    text: str
    html: str | None
    #: A legally required notice (Step.required): no unsubscribe link or header.
    required: bool = False
    #: The message's unsubscribe link (dunning.unsubscribe; "" for none).
    unsubscribe_url: str = ""


@dataclass(slots=True)
class Outcome:
    """What became of one message. ``transient``: it failed for a reason that may pass
    (a timeout, an ESP outage, SMTP 4xx), so the outbox tries again later; a failure that
    is not transient (a rejected recipient) is final."""

    ok: bool
    reason: str = ""
    message_id: str = ""
    transient: bool = False
    #: The provider refused the message because the recipient opted out with it (an SMS
    #: "STOP" reply): the outbox writes the opt-out into the consent log, so every later
    #: step uses the fallback channel or is skipped.
    opted_out: bool = False


class Channel:
    """Base class of a channel. Subclasses implement every method below."""

    key = ""

    def recipient(self, customer) -> tuple[str, str]:
        """Return ``(address, "")`` or ``("", reason)`` when the customer cannot be
        reached on this channel for a permanent reason."""
        raise NotImplementedError(f"{type(self).__name__} must implement recipient()")

    def build(self, outgoing: Outgoing):
        raise NotImplementedError(f"{type(self).__name__} must implement build()")

    def send(self, messages) -> list[Outcome]:
        """Send built messages; return one Outcome per message, in order.

        A message is sent at most once per call: a channel must not send a message again
        by itself (the outbox retries transient failures, and only those it was told
        about). Raise only when the channel cannot tell what became of the messages."""
        raise NotImplementedError(f"{type(self).__name__} must implement send()")
