# The end of the road (dunning.agency, docs/agency.md): hand-over steps to a collections
# agency and write-off steps, the agency's fields on the case, its timeline events, the
# "no message" state of an action-only step, and the proxy model of the admin's agency page.

from decimal import Decimal

from django.db import migrations, models

EVENT_KINDS = [
    ('resolved', 'Resolved'), ('suspended', 'Service suspended'),
    ('restored', 'Service restored'), ('terminated', 'Account terminated'), ('error', 'Error'),
    ('signal-error', 'Signal receiver failed'), ('note', 'Note'), ('call', 'Call'),
    ('assigned', 'Assigned'), ('paused', 'Paused'), ('resumed', 'Resumed'),
    ('escalated', 'Escalated'), ('written-off', 'Written off'), ('promise', 'Promise to pay'),
    ('dispute', 'Dispute opened'), ('dispute-resolved', 'Dispute resolved'),
    ('sent-by-hand', 'Step sent by hand'), ('delivery', 'Delivery event'),
    ('delivery-unknown', 'Delivery state unknown'),
    ('delivery-confirmed', 'Delivery state settled'), ('send-again', 'Message queued again'),
    ('payment-declined', 'Payment declined'), ('payment-collected', 'Payment collected'),
    ('payment-update-method', 'Payment method must be updated'),
    ('plan-requested', 'Payment plan requested'), ('plan-approved', 'Payment plan approved'),
    ('plan-broken', 'Payment plan broken'), ('plan-completed', 'Payment plan completed'),
    ('feedback', 'Late-payment feedback'), ('consent', 'Contact preferences changed'),
    ('card-refreshed', 'Card details refreshed'), ('call-queued', 'Call queued'),
    ('channel-fallback', 'Sent by the fallback channel'),
    ('handed-over', 'Handed over to a collections agency'),
    ('agency-update', 'Collections agency update'),
]


class Migration(migrations.Migration):
    dependencies = [("dunning", "0012_channels_compliance")]

    operations = [
        migrations.CreateModel(
            name='AgencyCase',
            fields=[],
            options={
                'verbose_name': 'case at a collections agency',
                'verbose_name_plural': 'cases at collections agencies',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('dunning.case',),
        ),
        migrations.AddField(
            model_name='case',
            name='agency',
            field=models.CharField(blank=True, default='', editable=False, max_length=64, verbose_name='collections agency'),
        ),
        migrations.AddField(
            model_name='case',
            name='agency_reference',
            field=models.CharField(blank=True, default='', editable=False, max_length=128, verbose_name='agency reference'),
        ),
        migrations.AddField(
            model_name='case',
            name='agency_status',
            field=models.CharField(blank=True, choices=[('', 'None'), ('accepted', 'Accepted by the agency'), ('in_progress', 'In progress at the agency'), ('collected', 'Collected by the agency'), ('partially_collected', 'Partially collected by the agency'), ('uncollectable', 'Uncollectable'), ('returned', 'Returned by the agency')], default='', editable=False, max_length=32, verbose_name='agency status'),
        ),
        migrations.AddField(
            model_name='case',
            name='collected_by_agency',
            field=models.DecimalField(decimal_places=2, default=Decimal('0'), editable=False, help_text='The total the agency reported collected on this case so far.', max_digits=14, verbose_name='collected by the agency'),
        ),
        migrations.AddField(
            model_name='case',
            name='handed_over_on',
            field=models.DateField(blank=True, editable=False, null=True, verbose_name='handed over on'),
        ),
        migrations.AddField(
            model_name='step',
            name='agency',
            field=models.CharField(blank=True, default='', help_text="For a hand-over step: the key of the agency in DUNNING['AGENCIES']; empty: DUNNING['DEFAULT_AGENCY'].", max_length=64, verbose_name='collections agency'),
        ),
        migrations.AlterField(
            model_name='caseevent',
            name='kind',
            field=models.CharField(choices=EVENT_KINDS, max_length=32, verbose_name='kind'),
        ),
        migrations.AlterField(
            model_name='casestep',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('sending', 'Sending'), ('sent', 'Sent'), ('failed', 'Failed'), ('unknown', 'State unknown, check'), ('skipped', 'Skipped (opted out)'), ('no-message', 'No message (action only)')], max_length=16, verbose_name='status'),
        ),
        migrations.AlterField(
            model_name='step',
            name='action',
            field=models.CharField(blank=True, choices=[('', 'None'), ('suspend', 'Suspend service'), ('terminate', 'Terminate account'), ('agency', 'Hand over to a collections agency'), ('write_off', 'Write off')], default='', max_length=16, verbose_name='action'),
        ),
        migrations.AddIndex(
            model_name='case',
            index=models.Index(condition=models.Q(('agency', ''), _negated=True), fields=['agency', 'handed_over_on'], name='dunning_case_agency_idx'),
        ),
    ]
