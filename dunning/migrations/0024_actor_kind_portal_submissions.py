"""Who did it (CaseEvent.actor_kind) and the self-service forms carried out
(PortalSubmission, so a replayed form changes nothing more).

The events recorded before say who only by their user: those with a user were a staff
user's (the admin; the API's are among them, they cannot be told apart any more); the
ones only the self-service page records without a user (late-payment feedback, a payment
plan request, and a promise, dispute or consent change outside any run) were the
customer's. Three set-based updates, whatever the number of events."""

import django.utils.timezone
from django.db import migrations, models


CUSTOMER_ONLY = ["feedback", "plan-requested"]
CUSTOMER_WITHOUT_RUN = ["promise", "dispute", "consent"]


def backfill(apps, schema_editor):
    CaseEvent = apps.get_model("dunning", "CaseEvent")
    events = CaseEvent.objects.using(schema_editor.connection.alias)
    events.filter(actor__isnull=False).update(actor_kind="staff")
    events.filter(actor__isnull=True, kind__in=CUSTOMER_ONLY).update(actor_kind="customer")
    events.filter(actor__isnull=True, run__isnull=True,
                  kind__in=CUSTOMER_WITHOUT_RUN).update(actor_kind="customer")


class Migration(migrations.Migration):

    dependencies = [
        ('dunning', '0023_invoice_validators'),
    ]

    operations = [
        migrations.AddField(
            model_name='caseevent',
            name='actor_kind',
            field=models.CharField(choices=[('system', 'System'), ('customer', 'Customer (self-service page)'), ('staff', 'Staff user'), ('api', 'API client')], default='system', max_length=16, verbose_name='done through'),
        ),
        migrations.CreateModel(
            name='PortalSubmission',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('customer_key', models.CharField(max_length=255, verbose_name='customer')),
                ('key', models.CharField(max_length=64, verbose_name='form key')),
                ('action', models.CharField(max_length=16, verbose_name='action')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at')),
            ],
            options={
                'verbose_name': 'self-service form sent',
                'verbose_name_plural': 'self-service forms sent',
                'constraints': [models.UniqueConstraint(fields=('customer_key', 'key'), name='dunning_portal_submission_once')],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
