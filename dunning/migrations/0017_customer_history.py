from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dunning", "0016_fees"),
    ]

    # The customer's history in message templates (dunning.history): when the shipped
    # Customer became a customer and when a shipped Invoice was paid.
    operations = [
        migrations.AddField(
            model_name="customer",
            name="customer_since",
            field=models.DateField(
                blank=True, help_text="The day they became a customer.", null=True,
                verbose_name="customer since",
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="paid_on",
            field=models.DateField(
                blank=True,
                help_text="The day the invoice was paid in full; empty while it is open.",
                null=True, verbose_name="paid on",
            ),
        ),
    ]
