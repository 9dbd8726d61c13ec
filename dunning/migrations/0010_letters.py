import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import dunning.models.letters


class Migration(migrations.Migration):
    dependencies = [("dunning", "0009_webhooks")]

    operations = [
        migrations.CreateModel(
            name='Letter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('customer_key', models.CharField(db_index=True, max_length=64, verbose_name='customer')),
                ('step_key', models.CharField(max_length=64, verbose_name='step')),
                ('recipient_address', models.TextField(help_text="The lines in the envelope's window.", verbose_name='recipient address')),
                ('pdf', models.FileField(max_length=255, storage=dunning.models.letters.get_letter_storage, upload_to='dunning/letters/%Y/%m/', verbose_name='PDF')),
                ('pages', models.PositiveSmallIntegerField(default=1, verbose_name='pages')),
                ('size', models.PositiveIntegerField(default=0, verbose_name='size (bytes)')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at')),
                ('printed_at', models.DateTimeField(blank=True, help_text='When it was first downloaded for printing or marked as printed.', null=True, verbose_name='printed at')),
                ('status', models.CharField(choices=[('ready', 'Ready to print'), ('printed', 'Printed'), ('cancelled', 'Cancelled')], default='ready', max_length=16, verbose_name='status')),
                ('case', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='letters', to='dunning.case', verbose_name='case')),
                ('case_step', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='letter', to='dunning.casestep', verbose_name='executed step')),
            ],
            options={
                'verbose_name': 'letter',
                'verbose_name_plural': 'letters',
                'ordering': ['-created_at', '-pk'],
                'permissions': [('print_letters', 'Can download letters for printing')],
                'indexes': [models.Index(fields=['status', 'created_at'], name='dunning_letter_status_idx')],
            },
        ),
    ]
