import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

# The customer model is swappable; read with a default as in 0001_initial.
from dunning.conf import customer_model_label


class Migration(migrations.Migration):
    dependencies = [
        ("dunning", "0010_letters"),
        migrations.swappable_dependency(customer_model_label()),
    ]

    operations = [
        migrations.CreateModel(
            name='Notice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('step_key', models.CharField(blank=True, default='', max_length=64, verbose_name='step')),
                ('level', models.CharField(choices=[('info', 'Information'), ('warning', 'Warning'), ('danger', 'Urgent')], default='warning', max_length=16, verbose_name='level')),
                ('title', models.CharField(max_length=255, verbose_name='title')),
                ('text', models.TextField(blank=True, default='', verbose_name='text')),
                ('action_label', models.CharField(blank=True, default='', max_length=100, verbose_name='action label')),
                ('action_url', models.URLField(blank=True, default='', max_length=2000, verbose_name='action URL')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at')),
                ('expires_at', models.DateTimeField(blank=True, help_text='Not shown from this moment on; empty: until dismissed or resolved.', null=True, verbose_name='expires at')),
                ('seen_at', models.DateTimeField(blank=True, null=True, verbose_name='seen at')),
                ('dismissed_at', models.DateTimeField(blank=True, null=True, verbose_name='dismissed at')),
                ('resolved_at', models.DateTimeField(blank=True, help_text='Set when the case is resolved: the notice disappears by itself.', null=True, verbose_name='resolved at')),
                ('case', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='notices', to='dunning.case', verbose_name='case')),
                ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='dunning_notices', to=customer_model_label(), verbose_name='customer')),
            ],
            options={
                'verbose_name': 'in-app notice',
                'verbose_name_plural': 'in-app notices',
                'ordering': ['-created_at', '-pk'],
                'indexes': [models.Index(condition=models.Q(('dismissed_at__isnull', True), ('resolved_at__isnull', True)), fields=['customer', '-created_at'], name='dunning_notice_active_idx')],
            },
        ),
    ]
