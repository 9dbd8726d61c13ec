"""Issue 14: promises and disputes cannot stall collection.

A dispute holds only its invoice now; before, opening one paused the whole case until
9999-12-31 with no reason. Those pauses are released here (a pause by hand always has a
reason and is left alone); the run then dunns the undisputed rest of the debt.
"""

import datetime

from django.db import migrations, models
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Coalesce

PAUSED_INDEFINITELY = datetime.date(9999, 12, 31)


def release_dispute_pauses(apps, schema_editor):
    Case = apps.get_model("dunning", "Case")
    Dispute = apps.get_model("dunning", "Dispute")
    db = schema_editor.connection.alias
    open_dispute = Dispute.objects.using(db).filter(case=OuterRef("pk"), resolved_at__isnull=True)
    Case.objects.using(db).filter(
        Q(pause_reason="") | Q(pause_reason__isnull=True), Exists(open_dispute),
        status="open", paused_until=PAUSED_INDEFINITELY,
    ).update(paused_until=None, next_due_on=Coalesce("last_step_on", "opened_on"))


class Migration(migrations.Migration):

    dependencies = [
        ('dunning', '0024_actor_kind_portal_submissions'),
    ]

    operations = [
        migrations.RunPython(release_dispute_pauses, migrations.RunPython.noop),
        migrations.AddField(
            model_name='case',
            name='broken_promises',
            field=models.PositiveSmallIntegerField(db_default=0, default=0, editable=False, verbose_name='broken promises'),
        ),
        migrations.AddField(
            model_name='case',
            name='promise_broken',
            field=models.BooleanField(db_default=False, default=False, editable=False, verbose_name='latest promise broken'),
        ),
        migrations.AddField(
            model_name='dispute',
            name='escalated_at',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='escalated at'),
        ),
        migrations.AlterField(
            model_name='caseevent',
            name='kind',
            field=models.CharField(choices=[('resolved', 'Resolved'), ('suspended', 'Service suspended'), ('restored', 'Service restored'), ('terminated', 'Account terminated'), ('error', 'Error'), ('signal-error', 'Signal receiver failed'), ('note', 'Note'), ('call', 'Call'), ('assigned', 'Assigned'), ('paused', 'Paused'), ('resumed', 'Resumed'), ('escalated', 'Escalated'), ('written-off', 'Written off'), ('promise', 'Promise to pay'), ('promise-broken', 'Promise to pay broken'), ('dispute', 'Dispute opened'), ('dispute-resolved', 'Dispute resolved'), ('sent-by-hand', 'Step sent by hand'), ('delivery', 'Delivery event'), ('delivery-unknown', 'Delivery state unknown'), ('delivery-confirmed', 'Delivery state settled'), ('send-again', 'Message queued again'), ('payment-declined', 'Payment declined'), ('payment-collected', 'Payment collected'), ('payment-update-method', 'Payment method must be updated'), ('payment-pending', 'Payment pending'), ('payment-authentication', 'Payment needs authentication'), ('plan-requested', 'Payment plan requested'), ('plan-approved', 'Payment plan approved'), ('plan-broken', 'Payment plan broken'), ('plan-completed', 'Payment plan completed'), ('feedback', 'Late-payment feedback'), ('consent', 'Contact preferences changed'), ('card-refreshed', 'Card details refreshed'), ('call-queued', 'Call queued'), ('channel-fallback', 'Sent by the fallback channel'), ('handed-over', 'Handed over to a collections agency'), ('agency-update', 'Collections agency update'), ('policy-rule', 'Policy chosen by a rule'), ('charged', 'Fees and interest charged')], max_length=32, verbose_name='kind'),
        ),
    ]
