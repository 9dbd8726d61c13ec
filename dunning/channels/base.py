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


@dataclass(slots=True)
class Outcome:
    ok: bool
    reason: str = ""
    message_id: str = ""


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
        """Send built messages; return one Outcome per message, in order."""
        raise NotImplementedError(f"{type(self).__name__} must implement send()")
