# Reminder fees and late-payment interest: the policy's rules, a step free of charge,
# what a case was charged and the balances it was computed from (dunning.charging).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("dunning", "0015_ab_variants"),
    ]

    operations = [
        migrations.AddField(
            model_name='policy',
            name='business_debtors',
            field=models.BooleanField(default=False, help_text="The statutory interest rules and the fixed compensation treat this policy's customers as businesses (use a policy rule to send business customers to such a policy).", verbose_name='debtors are businesses'),
        ),
        migrations.AddField(
            model_name='policy',
            name='fee_rule',
            field=models.JSONField(blank=True, default=dict, help_text='Per reminder, e.g. {"fixed": {"EUR": "5.00"}, "percent": "1", "maximum": {"EUR": "25.00"}}; the first reminder is free unless "first_free" is false. Empty: no fees.', verbose_name='reminder fee'),
        ),
        migrations.AddField(
            model_name='policy',
            name='interest_rule',
            field=models.JSONField(blank=True, default=dict, help_text='E.g. {"kind": "fixed", "rate": "8"} (percent a year), {"kind": "eu-directive"} or {"kind": "de-bgb-288"} (statutory rates and the EUR 40 compensation for businesses). Empty: no interest.', verbose_name='late-payment interest'),
        ),
        migrations.AddField(
            model_name='step',
            name='free_of_charge',
            field=models.BooleanField(default=False, help_text="This step charges no reminder fee, whatever the policy's fee rule says (interest is still charged with it).", verbose_name='no reminder fee'),
        ),
        migrations.AlterField(
            model_name='caseevent',
            name='kind',
            field=models.CharField(choices=[('resolved', 'Resolved'), ('suspended', 'Service suspended'), ('restored', 'Service restored'), ('terminated', 'Account terminated'), ('error', 'Error'), ('signal-error', 'Signal receiver failed'), ('note', 'Note'), ('call', 'Call'), ('assigned', 'Assigned'), ('paused', 'Paused'), ('resumed', 'Resumed'), ('escalated', 'Escalated'), ('written-off', 'Written off'), ('promise', 'Promise to pay'), ('dispute', 'Dispute opened'), ('dispute-resolved', 'Dispute resolved'), ('sent-by-hand', 'Step sent by hand'), ('delivery', 'Delivery event'), ('delivery-unknown', 'Delivery state unknown'), ('delivery-confirmed', 'Delivery state settled'), ('send-again', 'Message queued again'), ('payment-declined', 'Payment declined'), ('payment-collected', 'Payment collected'), ('payment-update-method', 'Payment method must be updated'), ('plan-requested', 'Payment plan requested'), ('plan-approved', 'Payment plan approved'), ('plan-broken', 'Payment plan broken'), ('plan-completed', 'Payment plan completed'), ('feedback', 'Late-payment feedback'), ('consent', 'Contact preferences changed'), ('card-refreshed', 'Card details refreshed'), ('call-queued', 'Call queued'), ('channel-fallback', 'Sent by the fallback channel'), ('handed-over', 'Handed over to a collections agency'), ('agency-update', 'Collections agency update'), ('policy-rule', 'Policy chosen by a rule'), ('charged', 'Fees and interest charged')], max_length=32, verbose_name='kind'),
        ),
        migrations.CreateModel(
            name='BalanceObservation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('invoice_number', models.CharField(max_length=255, verbose_name='invoice number')),
                ('currency', models.CharField(max_length=3, verbose_name='currency')),
                ('since', models.DateField(verbose_name='since')),
                ('balance', models.DecimalField(decimal_places=4, max_digits=18, verbose_name='open balance')),
                ('case', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='balances', to='dunning.case', verbose_name='case')),
            ],
            options={
                'verbose_name': 'balance observation',
                'verbose_name_plural': 'balance observations',
                'ordering': ['case', 'invoice_number', 'since', 'pk'],
                'constraints': [models.UniqueConstraint(fields=('case', 'invoice_number', 'since'), name='dunning_balance_unique_day')],
            },
        ),
        migrations.CreateModel(
            name='CaseCharge',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('step_key', models.CharField(help_text='The reminder the charge was listed in.', max_length=64, verbose_name='step')),
                ('kind', models.CharField(choices=[('fee', 'Reminder fee'), ('interest', 'Late-payment interest'), ('compensation', 'Fixed compensation for recovery costs')], max_length=16, verbose_name='kind')),
                ('invoice_number', models.CharField(blank=True, default='', help_text='Empty for a reminder fee (one per reminder, not per invoice).', max_length=255, verbose_name='invoice number')),
                ('amount', models.DecimalField(decimal_places=4, max_digits=18, verbose_name='amount')),
                ('currency', models.CharField(max_length=3, verbose_name='currency')),
                ('period_start', models.DateField(verbose_name='from')),
                ('period_end', models.DateField(verbose_name='until')),
                ('rate', models.DecimalField(blank=True, decimal_places=4, help_text='Interest: the rate when one applied throughout; a fee: its percentage.', max_digits=9, null=True, verbose_name='yearly rate (%)')),
                ('details', models.JSONField(blank=True, default=list, verbose_name='details')),
                ('created_at', models.DateTimeField(verbose_name='created at')),
                ('case', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='charges', to='dunning.case', verbose_name='case')),
                ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='dunning.run', verbose_name='run')),
            ],
            options={
                'verbose_name': 'charge',
                'verbose_name_plural': 'charges',
                'ordering': ['case', 'created_at', 'pk'],
                'indexes': [models.Index(fields=['case', 'kind'], name='dunning_charge_case_kind')],
            },
        ),
    ]
