"""Installs the default policy ``standard`` with its steps and shipped messages."""

from django.db import migrations


def install_standard_policy(apps, schema_editor):
    from dunning.shipped import STANDARD_POLICY, shipped_messages

    Policy = apps.get_model("dunning", "Policy")
    Step = apps.get_model("dunning", "Step")
    MessageTemplate = apps.get_model("dunning", "MessageTemplate")
    db = schema_editor.connection.alias
    if Policy.objects.using(db).filter(key=STANDARD_POLICY["key"]).exists():
        return
    policy = Policy.objects.using(db).create(
        key=STANDARD_POLICY["key"],
        name=STANDARD_POLICY["name"],
        description=STANDARD_POLICY["description"],
        min_gap_days=STANDARD_POLICY["min_gap_days"],
    )
    Step.objects.using(db).bulk_create(
        Step(policy=policy, key=key, offset_days=offset, channel="email", action=action)
        for key, offset, action in STANDARD_POLICY["steps"]
    )
    MessageTemplate.objects.using(db).bulk_create(
        MessageTemplate(
            policy=policy, step_key=key, channel="email", language=language,
            subject=subject, text_body=text, html_body=html,
        )
        for language, key, subject, text, html in shipped_messages()
    )


def remove_standard_policy(apps, schema_editor):
    Policy = apps.get_model("dunning", "Policy")
    Policy.objects.using(schema_editor.connection.alias).filter(
        key="standard", cases__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("dunning", "0001_initial")]

    operations = [migrations.RunPython(install_standard_policy, remove_standard_policy)]
