"""Issue 13, part 5: money paths. A payment that is accepted but not settled yet (a SEPA
or ACH debit "processing") is *pending*, never a decline; a payment the bank wants the
customer to authenticate sends the message ``payment-authentication`` (its shipped texts
are installed here for the default policy)."""

from django.db import migrations, models


def install(apps, schema_editor):
    from dunning.shipped import PAYMENT_KEYS, STANDARD_POLICY, shipped_messages

    db = schema_editor.connection.alias
    Policy = apps.get_model("dunning", "Policy")
    MessageTemplate = apps.get_model("dunning", "MessageTemplate")
    standard = Policy.objects.using(db).filter(key=STANDARD_POLICY["key"]).first()
    if standard is None:
        return
    existing = set(MessageTemplate.objects.using(db).filter(policy=standard).values_list(
        "step_key", "channel", "language"))
    MessageTemplate.objects.using(db).bulk_create(
        MessageTemplate(policy=standard, step_key=key, channel="email", language=language,
                        subject=subject, text_body=text, html_body=html)
        for language, key, subject, text, html in shipped_messages(PAYMENT_KEYS)
        if (key, "email", language) not in existing
    )


class Migration(migrations.Migration):

    dependencies = [
        ('dunning', '0019_step_fee_rule'),
    ]

    operations = [
        migrations.AlterField(
            model_name='caseevent',
            name='kind',
            field=models.CharField(choices=[('resolved', 'Resolved'), ('suspended', 'Service suspended'), ('restored', 'Service restored'), ('terminated', 'Account terminated'), ('error', 'Error'), ('signal-error', 'Signal receiver failed'), ('note', 'Note'), ('call', 'Call'), ('assigned', 'Assigned'), ('paused', 'Paused'), ('resumed', 'Resumed'), ('escalated', 'Escalated'), ('written-off', 'Written off'), ('promise', 'Promise to pay'), ('dispute', 'Dispute opened'), ('dispute-resolved', 'Dispute resolved'), ('sent-by-hand', 'Step sent by hand'), ('delivery', 'Delivery event'), ('delivery-unknown', 'Delivery state unknown'), ('delivery-confirmed', 'Delivery state settled'), ('send-again', 'Message queued again'), ('payment-declined', 'Payment declined'), ('payment-collected', 'Payment collected'), ('payment-update-method', 'Payment method must be updated'), ('payment-pending', 'Payment pending'), ('payment-authentication', 'Payment needs authentication'), ('plan-requested', 'Payment plan requested'), ('plan-approved', 'Payment plan approved'), ('plan-broken', 'Payment plan broken'), ('plan-completed', 'Payment plan completed'), ('feedback', 'Late-payment feedback'), ('consent', 'Contact preferences changed'), ('card-refreshed', 'Card details refreshed'), ('call-queued', 'Call queued'), ('channel-fallback', 'Sent by the fallback channel'), ('handed-over', 'Handed over to a collections agency'), ('agency-update', 'Collections agency update'), ('policy-rule', 'Policy chosen by a rule'), ('charged', 'Fees and interest charged')], max_length=32, verbose_name='kind'),
        ),
        migrations.AlterField(
            model_name='paymentattempt',
            name='status',
            field=models.CharField(choices=[('succeeded', 'Succeeded'), ('declined', 'Declined'), ('error', 'Error'), ('cancelled', 'Not needed'), ('pending', 'Pending')], max_length=16, verbose_name='status'),
        ),
        migrations.AlterField(
            model_name='predunningnotice',
            name='kind',
            field=models.CharField(choices=[('card-expiring-30', 'Card expires in 30 days'), ('card-expiring-7', 'Card expires in 7 days'), ('renewal-card-expiring', 'Renewal on an expiring card'), ('account-updater-consent', 'Account updater consent request'), ('payment-authentication', 'Request to authenticate a payment')], max_length=32, verbose_name='kind'),
        ),
        migrations.AddIndex(
            model_name='paymentattempt',
            index=models.Index(condition=models.Q(('status', 'pending')), fields=['transaction_id'], name='dunning_payattempt_pending_idx'),
        ),
        migrations.RunPython(install, migrations.RunPython.noop),
    ]
