import uuid

import django.core.serializers.json
import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import dunning.models.webhooks


class Migration(migrations.Migration):
    dependencies = [("dunning", "0008_predunning_consent")]

    operations = [
        migrations.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.URLField(help_text='Every event is POSTed here as JSON.', max_length=2000, validators=[django.core.validators.URLValidator(schemes=['http', 'https'])], verbose_name='URL')),
                ('secret', models.CharField(default=dunning.models.webhooks.generate_secret, help_text='Signs every request (header Dunning-Signature); give it to the receiver.', max_length=128, verbose_name='signing secret')),
                ('description', models.CharField(blank=True, max_length=255, verbose_name='description')),
                ('is_active', models.BooleanField(default=True, help_text='Inactive endpoints get no new events; their pending deliveries wait.', verbose_name='active')),
                ('event_types', models.JSONField(blank=True, default=list, help_text='The event types posted to this URL; none chosen: all of them.', verbose_name='event types')),
                ('disabled_reason', models.TextField(blank=True, default='', verbose_name='why it was disabled')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at')),
            ],
            options={
                'verbose_name': 'webhook endpoint',
                'verbose_name_plural': 'webhook endpoints',
                'ordering': ['pk'],
            },
        ),
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_type', models.CharField(max_length=64, verbose_name='event type')),
                ('event_id', models.UUIDField(default=uuid.uuid4, verbose_name='event id')),
                ('payload', models.JSONField(encoder=django.core.serializers.json.DjangoJSONEncoder, verbose_name='payload')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('delivering', 'Delivering'), ('delivered', 'Delivered'), ('failed', 'Failed')], default='pending', max_length=16, verbose_name='status')),
                ('attempts', models.PositiveSmallIntegerField(default=0, verbose_name='attempts')),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True, verbose_name='next attempt at')),
                ('last_response_code', models.PositiveSmallIntegerField(blank=True, null=True, verbose_name='last response code')),
                ('last_error', models.TextField(blank=True, default='', verbose_name='last error')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at')),
                ('delivered_at', models.DateTimeField(blank=True, null=True, verbose_name='delivered at')),
                ('endpoint', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='dunning.webhookendpoint', verbose_name='endpoint')),
            ],
            options={
                'verbose_name': 'webhook delivery',
                'verbose_name_plural': 'webhook deliveries',
                'ordering': ['-created_at', '-pk'],
                'indexes': [models.Index(fields=['status', 'next_attempt_at'], name='dunning_webhook_due_idx')],
                'constraints': [models.UniqueConstraint(fields=('endpoint', 'event_id'), name='dunning_webhookdelivery_once')],
            },
        ),
    ]
