"""The shape every channel has: check the recipient, build messages, send them in a batch,
report one outcome per message."""

from __future__ import annotations

from dataclasses import dataclass

from ..plugins import Plugin, Result


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

    def metadata(self):
        """The message's metadata, the same on every channel (a public contract: ESP
        tracking and the SMS provider's callbacks match a message back by it):
        ``dunning_case``, ``dunning_step`` and ``customer``, as text."""
        return {"dunning_case": str(self.case_id), "dunning_step": self.step_key,
                "customer": str(self.customer_id)}

    @property
    def idempotency_key(self):
        """A key the same for every try of this (case, step) and nothing else: an ESP
        that takes an idempotency key drops a second message with it (see
        :func:`idempotency_key`)."""
        return idempotency_key(self.case_id, self.step_key)


def step_info(step, key=""):
    """What a message knows of its step (the template's ``step``, the unsubscribe rule):
    ``{"key", "offset_days", "action", "required"}`` of ``step`` (a policy's Step row or
    a StepSpec), or just ``{"key": key}`` when there is no such step (the thank-you, a
    step deleted since)."""
    if step is None:
        return {"key": key}
    return {"key": step.key, "offset_days": step.offset_days, "action": step.action,
            "required": step.required}


def idempotency_key(case_id, step_key):
    """The idempotency key of the message of step ``step_key`` of case ``case_id``:
    derived from the pair and the site's ``SECRET_KEY`` (so that two sites on one ESP
    account never share a key), the same in every process and on every try."""
    from django.utils.crypto import salted_hmac

    digest = salted_hmac("dunning.outbox.idempotency", f"{case_id}:{step_key}",
                         algorithm="sha256").hexdigest()
    return f"dunning-{digest[:40]}"


@dataclass(slots=True)
class Outcome(Result):
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
    #: False when the message was certainly never handed to the provider: the connection
    #: could not be opened (refused, no DNS answer, a connect timeout), or an earlier
    #: message showed the provider unreachable and this one was not tried. The outbox
    #: charges no attempt for it, queues it again and pauses the channel (its circuit
    #: breaker). A failure that may have reached the provider leaves it True.
    reached: bool = True


class Channel(Plugin):
    """Base class of a channel (``DUNNING["EMAIL_CHANNEL"]``, ``DUNNING["CHANNELS"]``).
    Subclasses implement every method below. A channel that writes rows takes a
    ``using`` keyword argument (the run's database)."""

    key = ""
    required = ("recipient", "build", "send")

    def recipient(self, customer) -> tuple[str, str]:
        """Return ``(address, "")`` or ``("", reason)`` when the customer cannot be
        reached on this channel for a permanent reason."""
        raise self.not_implemented("recipient")

    def build(self, outgoing: Outgoing):
        raise self.not_implemented("build")

    def send(self, messages) -> list[Outcome]:
        """Send built messages; return one Outcome per message, in order.

        A message is sent at most once per call: a channel must not send a message again
        by itself (the outbox retries transient failures, and only those it was told
        about). Raise only when the channel cannot tell what became of the messages."""
        raise self.not_implemented("send")
