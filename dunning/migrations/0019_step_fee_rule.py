# A step's own reminder fee (dunning.charging).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('dunning', '0018_channel_templates'),
    ]

    operations = [
        migrations.AddField(
            model_name='step',
            name='fee_rule',
            field=models.JSONField(blank=True, default=dict, help_text='This step\'s fee instead of the policy\'s, e.g. {"fixed": {"EUR": "10.00"}}; empty: the policy\'s fee rule.', verbose_name='own reminder fee'),
        ),
    ]
