"""Phone calls: a call step puts the case in the collectors' call queue with a script, and
logging a call takes it out."""

from dunning.channels.base import Outgoing
from dunning.channels.call import CallChannel
from dunning.engine.actions import log_call
from dunning.hosts import CustomerRow
from dunning.models import Case, CaseEvent
from dunning.queries import in_call_queue


def test_the_call_channel_wants_a_valid_number_landlines_included():
    channel = CallChannel()
    row = CustomerRow(pk=1, name="Ada", email="", phone="+49 30 901820")  # a Berlin landline
    assert channel.recipient(row) == ("+4930901820", "")
    assert channel.recipient(CustomerRow(pk=1, name="Ada", email=""))[1] == "no phone number"
    assert "invalid" in channel.recipient(CustomerRow(pk=1, name="A", email="", phone="+49 1"))[1]


def test_a_queued_call_waits_with_its_script_until_a_collector_logs_the_call(
        overdue_customer, run, boss):
    ada, bob = overdue_customer(name="Ada"), overdue_customer(name="Bob")
    run(1)
    cases = {c.customer_id: c for c in Case.objects.all()}
    channel = CallChannel()
    outcomes = channel.send([channel.build(Outgoing(
        case_id=cases[c.pk].pk, customer_id=c.pk, step_key="call-reminder",
        recipient="+4930901820", subject="Call about INV-1",
        text=f"Say hello to {c.name}; 100.00 EUR overdue.", html=None)) for c in (ada, bob)])
    assert [o.ok for o in outcomes] == [True, True]
    queued = CaseEvent.objects.filter(kind=CaseEvent.Kind.CALL_QUEUED).order_by("pk")
    assert [o.message_id for o in outcomes] == [f"call:{e.pk}" for e in queued]
    assert queued[0].message.startswith("Call about INV-1\n\nSay hello to Ada")
    assert queued[0].data == {"step": "call-reminder", "number": "+4930901820"}
    assert list(in_call_queue(Case.objects.all())) == [cases[ada.pk], cases[bob.pk]]
    assert all(c.needs_person for c in Case.objects.all())
    log_call(cases[ada.pk], "reached", "Will pay on Friday.", boss)
    assert list(in_call_queue(Case.objects.all())) == [cases[bob.pk]]


def test_the_call_queue_filter_in_the_admin(overdue_customer, run, admin_client):
    ada = overdue_customer(name="Ada Queue")
    overdue_customer(name="Bob Other")
    run(1)
    case = Case.objects.get(customer=ada)
    channel = CallChannel()
    channel.send([channel.build(Outgoing(case_id=case.pk, customer_id=ada.pk, step_key="call",
                                         recipient="+4930901820", subject="", text="Script",
                                         html=None))])
    body = admin_client.get("/admin/dunning/case/?call_queue=waiting").content.decode()
    assert "Ada Queue" in body and "Bob Other" not in body
