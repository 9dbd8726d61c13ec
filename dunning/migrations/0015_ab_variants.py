import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dunning", "0014_policy_rules")]

    # A/B variants of a step's message (dunning.variants, docs/variants.md).
    operations = [
        migrations.AlterModelOptions(
            name="messagetemplate",
            options={
                "ordering": ["policy", "step_key", "variant", "language"],
                "verbose_name": "message template",
                "verbose_name_plural": "message templates",
            },
        ),
        migrations.RemoveConstraint(
            model_name="messagetemplate",
            name="dunning_template_unique",
        ),
        migrations.AddField(
            model_name="casestep",
            name="variant",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=32, verbose_name="variant"
            ),
        ),
        migrations.AddField(
            model_name="messagetemplate",
            name="variant",
            field=models.SlugField(
                blank=True,
                default="",
                help_text='For an A/B test of this step\'s message: a short name such as "b" '
                "for another version of it. Empty: the control (A).",
                max_length=32,
                verbose_name="variant",
            ),
        ),
        migrations.AddField(
            model_name="messagetemplate",
            name="weight",
            field=models.PositiveSmallIntegerField(
                blank=True,
                default=1,
                help_text="The variant's share of the customers, relative to the other "
                "variants of the step (1 and 1: half each; 3 and 1: three in four).",
                validators=[django.core.validators.MinValueValidator(1)],
                verbose_name="weight",
            ),
        ),
        migrations.AddConstraint(
            model_name="messagetemplate",
            constraint=models.UniqueConstraint(
                fields=("policy", "step_key", "channel", "language", "variant"),
                name="dunning_template_unique",
            ),
        ),
        migrations.AddIndex(
            model_name="casestep",
            index=models.Index(
                condition=models.Q(("variant", ""), _negated=True),
                fields=["variant"],
                name="dunning_casestep_variant_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="messagetemplate",
            constraint=models.CheckConstraint(
                condition=models.Q(("weight__gte", 1)), name="dunning_template_weight_positive"
            ),
        ),
    ]
