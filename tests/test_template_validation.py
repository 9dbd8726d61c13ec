"""Message templates are checked when staff save them: they must compile in the sandbox
and name only the documented variables; "Reset to the shipped text" restores a template."""

import pytest
from django.forms import modelform_factory

from dunning.messages.rendering import validate_message_template
from dunning.models import MessageTemplate, Policy
from dunning.shipped import shipped_message, shipped_messages

TemplateForm = modelform_factory(MessageTemplate, fields="__all__")

ADD_URL = "/admin/dunning/messagetemplate/add/"

HOSTILE = {
    "dunder class": ("{{ customer.__class__ }}", "underscore"),
    "dunder dict": ("{{ invoices.0.__dict__ }}", "underscore"),
    "load": ("{% load static %}", "load"),
    "include": ('{% include "x" %}', "include"),
    "extends": ('{% extends "x" %}', "extends"),
    "debug": ("{% debug %}", "debug"),
    "settings": ("{{ settings.SECRET_KEY }}", "unknown variable 'settings.SECRET_KEY'"),
    "password": ("{{ customer.password }}", "unknown variable 'customer.password'"),
    "deep chain": ("{{ customer.name.upper.__len__ }}", "underscore"),
    "deep chain on a leaf": ("{{ customer.name.upper }}", "unknown variable 'customer.name.upper'"),
    "invoice attr": ("{{ invoices.0.customer.email }}", "unknown variable 'invoices.0.customer.email'"),
    "loop attr": (
        "{% for i in invoices %}{{ i.amount_due }}{% endfor %}", "unknown variable 'i.amount_due'"
    ),
    "totals attr": ("{% for t in totals %}{{ t.total }}{% endfor %}", "unknown variable 't.total'"),
    "step attr": ("{{ step.policy }}", "unknown variable 'step.policy'"),
    "company attr": ("{{ company.bank_password }}", "unknown variable 'company.bank_password'"),
    "if condition": ("{% if request.user %}x{% endif %}", "unknown variable 'request.user'"),
    "with": ("{% with c=customer %}{{ c.secret }}{% endwith %}", "unknown variable 'c.secret'"),
    "filter argument": ("{{ total|default:user.password }}", "unknown variable 'user.password'"),
    "loop var outside loop": (
        "{% for i in invoices %}{% endfor %}{{ i.number }}", "unknown variable 'i.number'"
    ),
    "forloop outside loop": ("{{ forloop.counter }}", "unknown variable 'forloop.counter'"),
}


def form_data(policy, **fields):
    data = {
        "policy": policy.pk,
        "step_key": "custom-step",
        "channel": "email",
        "language": "en",
        "subject": "Reminder for {{ customer.name }}",
        "text_body": "Dear {{ customer.name }},\nyou owe {{ total }}.\n",
        "html_body": "<p>Dear {{ customer.name }}</p>",
    }
    data.update(fields)
    return data


@pytest.fixture
def policy(db):
    return Policy.objects.get(key="standard")


@pytest.fixture
def superuser_client(client, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_templates_are_rejected_by_the_model_form(policy, name):
    source, expected = HOSTILE[name]
    form = TemplateForm(data=form_data(policy, text_body=f"Hello\n\n{source}\n"))
    assert not form.is_valid()
    assert "text_body" in form.errors
    assert expected in " ".join(form.errors["text_body"])
    assert not MessageTemplate.objects.filter(step_key="custom-step").exists()


@pytest.mark.parametrize("name", ["settings", "password", "load", "dunder class", "include"])
def test_hostile_templates_are_rejected_in_the_admin_with_the_message(
    superuser_client, policy, name
):
    source, expected = HOSTILE[name]
    response = superuser_client.post(ADD_URL, form_data(policy, html_body=source))
    assert response.status_code == 200  # the form again, with its errors
    assert expected in response.content.decode().replace("&#x27;", "'")
    assert not MessageTemplate.objects.filter(step_key="custom-step").exists()


def test_the_error_names_the_line(policy):
    source = "Dear {{ customer.name }},\n\nYour password: {{ customer.password }}\n"
    form = TemplateForm(data=form_data(policy, text_body=source))
    assert not form.is_valid()
    assert form.errors["text_body"] == ["line 3: unknown variable 'customer.password'"]


def test_the_subject_is_checked_too(policy):
    form = TemplateForm(data=form_data(policy, subject="{{ customer.phone }}"))
    assert not form.is_valid()
    assert form.errors["subject"] == ["line 1: unknown variable 'customer.phone'"]


@pytest.mark.parametrize("source", [
    "{% for invoice in invoices %}{{ forloop.counter }}. {{ invoice.number }} {{ invoice.amount }}"
    " {{ invoice.currency }} {{ invoice.due_date }} {{ invoice.days_overdue }}{% endfor %}",
    "{% for t in totals %}{{ t.currency }}: {{ t.amount }}{% if not forloop.last %}, {% endif %}"
    "{% endfor %}",
    "{{ customer.name|default:customer.email }} ({{ customer.language }})",
    "{{ step.key }} {{ step.offset_days }} {{ step.action }} {{ days_overdue }} {{ today }}",
    "{{ company.name }} {{ company.email }} {{ company.phone }} {{ company.website }} "
    "{{ company.address }} {{ company.payment_url }} {{ company.update_payment_url }}",
    "{{ portal_url }} {{ invoices.0.number }} {{ invoices|length }} {{ total|upper }}",
    "{% with first=invoices|first %}{{ first.number }}{% endwith %}",
    "{% if days_overdue > 30 and customer.name %}late{% elif True %}x{% endif %}",
    "{% regroup invoices by currency as groups %}{% for g in groups %}{{ g.grouper }}"
    "{% for i in g.list %}{{ i.number }}{% endfor %}{% endfor %}",
    "{% for i in invoices %}{% for t in totals %}{{ forloop.parentloop.counter }}{{ i.number }}"
    "{{ t.amount }}{% endfor %}{% empty %}none{% endfor %}",
    "{% cycle 'a' 'b' as row silent %}{{ row }} {% firstof customer.name customer.email %}",
])
def test_documented_variables_pass(policy, source):
    form = TemplateForm(data=form_data(policy, text_body=source))
    assert form.is_valid(), form.errors


def test_every_shipped_template_validates():
    count = 0
    for _language, _key, subject, text, html in shipped_messages():
        for source in (subject, text, html):
            validate_message_template(source)
        count += 1
    assert count == 16  # 8 messages in English and German


def test_a_shipped_template_saves_through_the_admin(superuser_client, policy):
    subject, text, html = shipped_message("en", "formal-notice")
    response = superuser_client.post(ADD_URL, form_data(
        policy, step_key="custom-step", subject=subject, text_body=text, html_body=html
    ))
    assert response.status_code == 302, response.content.decode()[:3000]
    saved = MessageTemplate.objects.get(step_key="custom-step")
    assert saved.text_body == text.strip()  # the form strips the trailing newline


def test_reset_to_the_shipped_text(superuser_client, policy):
    changed = MessageTemplate.objects.get(policy=policy, step_key="gentle-reminder", language="de",
                                           channel="email")
    changed.subject = "Geändert"
    changed.text_body = "Geändert"
    changed.html_body = ""
    changed.save()
    custom = MessageTemplate.objects.create(
        policy=policy, step_key="custom-step", language="en", subject="Mine", text_body="Mine"
    )
    response = superuser_client.post(
        "/admin/dunning/messagetemplate/",
        {"action": "reset_to_shipped", "_selected_action": [changed.pk, custom.pk]},
        follow=True,
    )
    assert response.status_code == 200
    changed.refresh_from_db()
    custom.refresh_from_db()
    assert (changed.subject, changed.text_body, changed.html_body) == shipped_message(
        "de", "gentle-reminder"
    )
    assert custom.subject == "Mine" and custom.text_body == "Mine"
    shown = [str(m) for m in response.context["messages"]]
    assert "gentle-reminder [de]: reset to the shipped text." in shown
    assert any(m.startswith("custom-step [en]: there is no shipped text") for m in shown)


def test_reset_needs_change_permission(client, django_user_model, policy):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_messagetemplate"))
    client.force_login(user)
    template = MessageTemplate.objects.get(policy=policy, step_key="gentle-reminder", language="en",
                                           channel="email")
    template.subject = "Changed"
    template.save()
    response = client.post(
        "/admin/dunning/messagetemplate/",
        {"action": "reset_to_shipped", "_selected_action": [template.pk]},
    )
    template.refresh_from_db()
    assert template.subject == "Changed"
    assert response.status_code in (200, 302, 403)
