"""The public signals of django-dunning.

Every signal is sent with the keyword arguments ``case`` (a :class:`dunning.models.Case`)
and ``customer`` (the host's customer instance), after the database work of the run that
caused it has been committed. Receivers that raise are recorded on the case's timeline and
do not stop the run: send them with :func:`send_robust`, the one way the package sends
its signals.
"""

import logging

from django.dispatch import Signal

from .failures import REASON_MAX, describe

logger = logging.getLogger("dunning.signals")

# case, customer: a suspension step was executed; the host should suspend its service.
service_suspended = Signal()

# case, customer: a suspended customer paid everything; the host should restore the service.
service_restored = Signal()

# case, customer: the termination step was executed; the case is closed for good.
account_terminated = Signal()

# case, customer: every overdue invoice of the case has been paid.
case_resolved = Signal()

# case, customer: the case was written off (by a person, by a write-off step of its policy,
# or because its collections agency reported it uncollectable); the engine leaves it
# alone. The host books the loss.
case_written_off = Signal()

# case, customer, agency (the agency's key in DUNNING["AGENCIES"]): a hand-over step gave
# the case to a collections agency (dunning.agency); dunning sends it nothing more but a
# write-off step, and a payment still resolves it.
case_handed_over = Signal()

# case, customer, amount (Decimal, newly collected since the agency's previous report),
# currency: the agency reported money collected on the case (dunning.agency). The host owns
# the invoices: it books the money and marks them paid, which resolves the case.
agency_collected = Signal()

# case (or None), customer, amount (Decimal), currency, invoices (invoice numbers),
# transaction_id: a retry of a failed payment collected the money (dunning.payments). The
# host marks its invoices paid; the shipped Invoice model is marked paid by dunning itself.
payment_succeeded = Signal()

# case, customer, step_key, charges (a list of dicts: kind "fee" | "interest" |
# "compensation", invoice_number (None for a fee), amount (Decimal as text), currency,
# period_start, period_end (ISO dates), rate (text or None), details): a reminder the run
# queued charged reminder fees and/or late-payment interest (dunning.charging,
# docs/fees.md). The invoices are the host's: it books the charges (adds them to the
# invoice, or raises a new one). Each amount is new: nothing is handed over twice.
fees_charged = Signal()


def signal_name(signal):
    """The name of one of the signals above (``"case_resolved"``), else ``repr(signal)``."""
    return next((name for name, value in globals().items() if value is signal), repr(signal))


def send_robust(signal, sender, **kwargs):
    """Send ``signal`` to every receiver, as ``Signal.send_robust`` does: a receiver that
    raises does not stop the others, nor the caller. Each failure is logged with its
    traceback and returned as one line, ``"<signal>: <receiver>: <Error>: <message>"``
    (at most 2000 characters), for the caller to record on the case's timeline (a
    ``CaseEvent`` of kind ``signal_error``). Returns ``[]`` when every receiver worked."""
    failures = []
    for receiver, response in signal.send_robust(sender=sender, **kwargs):
        if isinstance(response, Exception):
            name = signal_name(signal)
            who = getattr(receiver, "__qualname__", None) or repr(receiver)
            case = kwargs.get("case")
            logger.error("Receiver %s of the dunning signal %s failed for case %s", who, name,
                         getattr(case, "pk", None), exc_info=response)
            failures.append(f"{name}: {who}: {describe(response, None)}"[:REASON_MAX])
    return failures
