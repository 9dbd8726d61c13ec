# The shipped Invoice refuses a negative amount_due and a currency that is no ISO 4217
# code in use (dunning.inputs); validators only, nothing changes in the database.

import dunning.inputs
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('dunning', '0022_unreadable_tracking_event'),
    ]

    operations = [
        migrations.AlterField(
            model_name='invoice',
            name='amount_due',
            field=models.DecimalField(decimal_places=2, help_text='The open balance.', max_digits=14, validators=[dunning.inputs.validate_amount_due], verbose_name='amount due'),
        ),
        migrations.AlterField(
            model_name='invoice',
            name='currency',
            field=models.CharField(help_text='ISO 4217 code.', max_length=3, validators=[dunning.inputs.validate_currency], verbose_name='currency'),
        ),
    ]
