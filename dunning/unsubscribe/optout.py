"""The opt-out: a consent log entry and a ``consent`` event on the open case (see the
package's docstring). Shared by the unsubscribe page, the self-service page, the ESP
tracking receiver and the outbox (an SMS "STOP" reply)."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from ..engine import actions, actors
from ..hosts import get_customer_model
from ..models import Case, CaseEvent, Consent
from ..models.consent import channel_topic, current_choices
from ..models.policy import Channel


def channel_label(channel):
    return dict(Channel.choices).get(channel, channel)


def log_consent(customer_pk, case, entries, message, source=Consent.Source.PORTAL):
    """Append ``entries`` ((topic, granted), ...) to the customer's consent log, made
    through ``source``, and note the change on the timeline of ``case`` (the customer's
    open case, or None). Shared by the self-service page and the opt-out."""
    key = str(customer_pk)
    with transaction.atomic():
        Consent.objects.bulk_create(
            Consent(customer_key=key, topic=topic, granted=granted, source=source)
            for topic, granted in entries)
        if case is not None:
            actions.record(case, CaseEvent.Kind.CONSENT, actors.CUSTOMER, message,
                           **{topic: granted for topic, granted in entries})


def has_opted_out(customer_pk, channel):
    topic = channel_topic(channel)
    key = str(customer_pk)
    return current_choices([key], prefix=topic).get(key, {}).get(topic) is False


def opt_out(customer_pk, channel, source=None, message=""):
    """Opt the customer out of ``channel``: a ``Consent`` entry (not granted, made through
    ``source``, default "unsubscribe") and a ``consent`` event on their open case.
    Nothing when they have opted out already; returns whether an entry was written.

    The public way for a host to record an opt-out it received itself (a text message
    "STOP" from its SMS provider, an email to ``UNSUBSCRIBE_MAILTO``)."""
    source = source or Consent.Source.UNSUBSCRIBE
    with transaction.atomic():
        # Two opt-outs of one customer at once (a one-click POST and the page) queue here
        # on databases that lock rows, so the second sees the first and adds nothing.
        list(get_customer_model()._default_manager.select_for_update()
             .filter(pk=customer_pk).values_list("pk", flat=True))
        if has_opted_out(customer_pk, channel):
            return False
        case = Case.objects.filter(customer_id=customer_pk, status=Case.Status.OPEN).first()
        log_consent(customer_pk, case, [(channel_topic(channel), False)],
                    message or _("Opted out of %(channel)s with the unsubscribe link.")
                    % {"channel": channel_label(channel)}, source=source)
    return True


#: Email events of the ESP (anymail's event types) that are the customer's choice, with
#: the source their consent entry records.
ESP_OPT_OUTS = {"unsubscribed": "unsubscribe", "complained": "bounce"}


def opt_out_by_esp_event(case_id, event_type):
    """An ESP reported ``unsubscribed`` or ``complained`` (spam) for a message of case
    ``case_id``: the customer is opted out of email in the consent log (source
    "unsubscribe" or "bounce"). Called by dunning.tracking."""
    source = ESP_OPT_OUTS.get(event_type)
    customer_id = Case.objects.filter(pk=case_id).values_list("customer_id", flat=True).first()
    if source is None or customer_id is None:
        return False
    return opt_out(customer_id, "email", source, _(
        "Opted out of email: the email service reported %(event)s.") % {"event": event_type})


