"""Issue 5, second part: payment retries as steps of a policy, pre-dunning notices (card
expiry, renewal on an expiring card, account-updater consent), the consent log (channel
opt-outs on the self-service page) and legally required notices."""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# The customer model is swappable; read with a default as in 0001_initial.
from dunning.conf import customer_model_label

DEFAULT_RETRY_OFFSETS = (1, 3, 5, 7)
# The shipped policy's notices that go out even to customers who opted out of a channel.
REQUIRED_NOTICES = ("suspension-warning", "final-notice", "termination")


def install(apps, schema_editor):
    from dunning.shipped import PREDUNNING_KEYS, STANDARD_POLICY, shipped_messages

    db = schema_editor.connection.alias
    Policy = apps.get_model("dunning", "Policy")
    RetryStep = apps.get_model("dunning", "RetryStep")
    Step = apps.get_model("dunning", "Step")
    MessageTemplate = apps.get_model("dunning", "MessageTemplate")
    RetryStep.objects.using(db).bulk_create(
        RetryStep(policy=policy, key=f"retry-{n}", offset_days=offset)
        for policy in Policy.objects.using(db).all()
        for n, offset in enumerate(DEFAULT_RETRY_OFFSETS, start=1)
    )
    standard = Policy.objects.using(db).filter(key=STANDARD_POLICY["key"]).first()
    if standard is None:
        return
    Step.objects.using(db).filter(policy=standard, key__in=REQUIRED_NOTICES).update(required=True)
    existing = set(MessageTemplate.objects.using(db).filter(policy=standard).values_list(
        "step_key", "channel", "language"))
    MessageTemplate.objects.using(db).bulk_create(
        MessageTemplate(policy=standard, step_key=key, channel="email", language=language,
                        subject=subject, text_body=text, html_body=html)
        for language, key, subject, text, html in shipped_messages(PREDUNNING_KEYS)
        if (key, "email", language) not in existing
    )


class Migration(migrations.Migration):

    dependencies = [
        ('dunning', '0007_portal_payments'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        migrations.swappable_dependency(customer_model_label()),
    ]

    operations = [
        migrations.AddField(
            model_name='paymentattempt',
            name='next_step_key',
            field=models.CharField(blank=True, default='', max_length=64, verbose_name='next retry step'),
        ),
        migrations.AddField(
            model_name='paymentattempt',
            name='step_key',
            field=models.CharField(blank=True, default='', max_length=64, verbose_name='retry step'),
        ),
        migrations.AddField(
            model_name='step',
            name='required',
            field=models.BooleanField(default=False, help_text='Sent even to customers who opted out of this channel (a notice the law requires, such as the last notice before termination). Other steps are skipped for them.', verbose_name='legally required notice'),
        ),
        migrations.AlterField(
            model_name='casestep',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('sending', 'Sending'), ('sent', 'Sent'), ('failed', 'Failed'), ('unknown', 'State unknown, check'), ('skipped', 'Skipped (opted out)')], max_length=16, verbose_name='status'),
        ),
        migrations.CreateModel(
            name='Consent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('customer_key', models.CharField(db_index=True, max_length=255, verbose_name='customer')),
                ('topic', models.CharField(max_length=64, verbose_name='topic')),
                ('granted', models.BooleanField(verbose_name='granted')),
                ('source', models.CharField(choices=[('portal', 'Self-service page'), ('unsubscribe', 'Unsubscribe link'), ('staff', 'Staff'), ('api', 'API'), ('bounce', 'Bounce or complaint')], max_length=16, verbose_name='source')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='at')),
                ('note', models.TextField(blank=True, default='', verbose_name='note')),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='by')),
            ],
            options={
                'verbose_name': 'consent',
                'verbose_name_plural': 'consent log',
                'ordering': ['-created_at', '-pk'],
                'indexes': [models.Index(fields=['customer_key', 'topic', 'created_at'], name='dunning_consent_latest_idx')],
            },
        ),
        migrations.CreateModel(
            name='PreDunningNotice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('card-expiring-30', 'Card expires in 30 days'), ('card-expiring-7', 'Card expires in 7 days'), ('renewal-card-expiring', 'Renewal on an expiring card'), ('account-updater-consent', 'Account updater consent request')], max_length=32, verbose_name='kind')),
                ('method_id', models.CharField(blank=True, default='', max_length=255, verbose_name='payment method')),
                ('reference', models.CharField(blank=True, default='', max_length=32, verbose_name='reference')),
                ('status', models.CharField(choices=[('sending', 'Sending'), ('sent', 'Sent'), ('failed', 'Failed')], max_length=16, verbose_name='status')),
                ('recipient', models.CharField(blank=True, max_length=320, verbose_name='recipient')),
                ('language', models.CharField(blank=True, max_length=16, verbose_name='language')),
                ('reason', models.TextField(blank=True, verbose_name='failure reason')),
                ('message_id', models.CharField(blank=True, max_length=255, verbose_name='message id')),
                ('data', models.JSONField(blank=True, default=dict, verbose_name='data')),
                ('created_at', models.DateTimeField(verbose_name='created at')),
                ('sent_at', models.DateTimeField(blank=True, null=True, verbose_name='sent at')),
                ('claim', models.CharField(blank=True, default='', editable=False, max_length=32)),
                ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='dunning_predunning_notices', to=customer_model_label(), verbose_name='customer')),
            ],
            options={
                'verbose_name': 'pre-dunning notice',
                'verbose_name_plural': 'pre-dunning notices',
                'ordering': ['-created_at', '-pk'],
                'constraints': [models.UniqueConstraint(fields=('customer', 'kind', 'method_id', 'reference'), name='dunning_predunning_once')],
            },
        ),
        migrations.CreateModel(
            name='RetryStep',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.SlugField(max_length=64, verbose_name='key')),
                ('offset_days', models.PositiveSmallIntegerField(help_text="Retried this many days after the payment failed (then moved to a payday or the customer's morning when the schedule allows).", validators=[django.core.validators.MinValueValidator(1)], verbose_name='days after the failed payment')),
                ('policy', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='retry_steps', to='dunning.policy', verbose_name='policy')),
            ],
            options={
                'verbose_name': 'payment retry step',
                'verbose_name_plural': 'payment retry steps',
                'ordering': ['policy', 'offset_days', 'pk'],
                'constraints': [models.UniqueConstraint(fields=('policy', 'key'), name='dunning_retrystep_unique_key'), models.UniqueConstraint(fields=('policy', 'offset_days'), name='dunning_retrystep_unique_offset')],
            },
        ),
        migrations.AlterField(
            model_name='caseevent',
            name='kind',
            field=models.CharField(choices=[('resolved', 'Resolved'), ('suspended', 'Service suspended'), ('restored', 'Service restored'), ('terminated', 'Account terminated'), ('error', 'Error'), ('signal-error', 'Signal receiver failed'), ('note', 'Note'), ('call', 'Call'), ('assigned', 'Assigned'), ('paused', 'Paused'), ('resumed', 'Resumed'), ('escalated', 'Escalated'), ('written-off', 'Written off'), ('promise', 'Promise to pay'), ('dispute', 'Dispute opened'), ('dispute-resolved', 'Dispute resolved'), ('sent-by-hand', 'Step sent by hand'), ('delivery', 'Delivery event'), ('delivery-unknown', 'Delivery state unknown'), ('delivery-confirmed', 'Delivery state settled'), ('send-again', 'Message queued again'), ('payment-declined', 'Payment declined'), ('payment-collected', 'Payment collected'), ('payment-update-method', 'Payment method must be updated'), ('plan-requested', 'Payment plan requested'), ('plan-approved', 'Payment plan approved'), ('plan-broken', 'Payment plan broken'), ('plan-completed', 'Payment plan completed'), ('feedback', 'Late-payment feedback'), ('consent', 'Contact preferences changed'), ('card-refreshed', 'Card details refreshed')], max_length=32, verbose_name='kind'),
        ),
        migrations.RunPython(install, migrations.RunPython.noop),
    ]
