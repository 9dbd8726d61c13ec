"""The preview of a message template in the admin and its "send me a test" button."""

import datetime
import html
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from dunning.models import Case, CaseStep, MessageTemplate
from dunning.testing import create_customer, create_invoice


@pytest.fixture
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def template(db):
    return MessageTemplate.objects.get(
        policy__key="standard", step_key="initial-notice", channel="email", language="en"
    )


def preview_url(template):
    return f"/admin/dunning/messagetemplate/{template.pk}/preview/"


def user_client(django_user_model, username, *codenames, email="", superuser=False):
    if superuser:
        user = django_user_model.objects.create_superuser(username, email, "pw")
    else:
        user = django_user_model.objects.create_user(username, email, "pw", is_staff=True)
        for codename in codenames:
            user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(django_user_model, fast_passwords):
    return user_client(django_user_model, "admin", email="admin@example.com", superuser=True)


@pytest.fixture
def viewer_client(django_user_model, fast_passwords):
    return user_client(django_user_model, "viewer", "view_messagetemplate",
                       email="viewer@example.com")


@pytest.fixture
def nobody_client(django_user_model, fast_passwords):
    return user_client(django_user_model, "nobody", email="nobody@example.com")


def srcdoc(content):
    """The HTML the sandboxed iframe shows, and the iframe tag itself."""
    match = re.search(r'<iframe[^>]*\ssrcdoc="([^"]*)"[^>]*>', content)
    assert match, "no iframe with srcdoc"
    return html.unescape(match.group(1)), match.group(0)


def test_preview_renders_subject_both_bodies_for_a_sample_customer(admin_client, template):
    response = admin_client.get(preview_url(template))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Sample Customer Ltd" in content
    assert "INV-1001" in content and "INV-1002" in content
    subject = re.search(r'id="dunning-preview-subject">([^<]*)<', content).group(1)
    assert subject.strip()
    text = re.search(r'<pre id="dunning-preview-text"[^>]*>(.*?)</pre>', content, re.S).group(1)
    assert "INV-1001" in text and "INV-1002" in text
    assert "200.50" in text  # the total of the two sample invoices
    inner, tag = srcdoc(content)
    assert 'sandbox=""' in tag
    assert "allow-" not in tag
    assert "<html" in inner and "INV-1001" in inner
    # The HTML only ever appears escaped inside the attribute, never as page markup.
    assert "<html" not in content.split("<iframe", 1)[1].split(">", 1)[1]


def test_the_customer_name_stays_text_everywhere(admin_client, template):
    customer = create_customer(name="<script>alert(1)</script>", email="evil@example.com")
    today = timezone.localdate()
    create_invoice(customer, number="X-1", amount_due="10.00", currency="EUR",
                   due_date=today - datetime.timedelta(days=3))
    response = admin_client.get(preview_url(template), {"customer": customer.pk})
    assert response.status_code == 200
    content = response.content.decode()
    assert "<script>alert(1)" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    inner, _tag = srcdoc(content)
    # Inside the iframe the name is escaped once more: text, not a script.
    assert "<script>alert(1)" not in inner
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in inner


def test_real_customer_preview_lists_its_overdue_invoices_only(admin_client, template):
    today = timezone.localdate()
    ada = create_customer(name="Ada Lovelace", email="ada@example.com")
    create_invoice(ada, number="ADA-1", amount_due="120.00", currency="EUR",
                   due_date=today - datetime.timedelta(days=20))
    create_invoice(ada, number="ADA-2", amount_due="30.00", currency="EUR",
                   due_date=today - datetime.timedelta(days=2))
    create_invoice(ada, number="ADA-FUTURE", amount_due="50.00", currency="EUR",
                   due_date=today + datetime.timedelta(days=10))
    bob = create_customer(name="Bob", email="bob@example.com")
    create_invoice(bob, number="BOB-1", amount_due="99.00", currency="EUR",
                   due_date=today - datetime.timedelta(days=20))
    response = admin_client.get(preview_url(template), {"customer": ada.pk})
    assert response.status_code == 200
    content = response.content.decode()
    assert "Ada Lovelace" in content
    text = re.search(r'<pre id="dunning-preview-text"[^>]*>(.*?)</pre>', content, re.S).group(1)
    assert "ADA-1" in text and "ADA-2" in text
    assert "ADA-FUTURE" not in content
    assert "BOB-1" not in content
    assert "Sample Customer" not in content


def test_unknown_customer_is_a_message_not_an_error(admin_client, template):
    response = admin_client.get(preview_url(template), {"customer": "999999"})
    assert response.status_code == 200
    assert "There is no customer with the id" in html.unescape(response.content.decode())
    response = admin_client.get(preview_url(template), {"customer": "not-a-number"})
    assert response.status_code == 200
    assert "There is no customer with the id" in html.unescape(response.content.decode())


def test_a_template_that_fails_to_render_shows_the_error(admin_client, template):
    # Saved around the form's validation, as an import or an old row might.
    MessageTemplate.objects.filter(pk=template.pk).update(subject="{% if %}broken")
    response = admin_client.get(preview_url(template))
    assert response.status_code == 200
    content = html.unescape(response.content.decode())
    assert "The template cannot be rendered" in content
    assert "<iframe" not in content


def test_the_change_form_links_to_the_preview(admin_client, template):
    response = admin_client.get(f"/admin/dunning/messagetemplate/{template.pk}/change/")
    assert response.status_code == 200
    assert f'href="{preview_url(template)}"' in response.content.decode()


def test_send_me_a_test_mails_only_the_staff_user(admin_client, template, mailoutbox):
    customer = create_customer(name="Ada", email="ada@example.com")
    create_invoice(customer, number="ADA-1", amount_due="120.00", currency="EUR",
                   due_date=timezone.localdate() - datetime.timedelta(days=5))
    response = admin_client.post(preview_url(template), {"customer": customer.pk}, follow=True)
    assert response.status_code == 200
    assert "A test was sent to admin@example.com" in response.content.decode()
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["admin@example.com"]
    assert message.subject.startswith("[TEST] ")
    assert "ADA-1" in message.body
    assert message.alternatives and "ADA-1" in message.alternatives[0][0]
    assert "ada@example.com" not in message.to + message.cc + message.bcc
    assert not CaseStep.objects.exists()
    assert not Case.objects.exists()


def test_send_me_a_test_for_the_sample_customer(admin_client, template, mailoutbox):
    response = admin_client.post(preview_url(template))
    assert response.status_code == 302
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["admin@example.com"]
    assert mailoutbox[0].subject.startswith("[TEST] ")
    assert not CaseStep.objects.exists()


def test_send_me_a_test_needs_an_email_address(django_user_model, fast_passwords, template,
                                                mailoutbox):
    client = user_client(django_user_model, "noaddress", superuser=True)
    response = client.post(preview_url(template), follow=True)
    assert response.status_code == 200
    assert "no email address" in html.unescape(response.content.decode())
    assert mailoutbox == []


def test_send_me_a_test_needs_a_csrf_token(django_user_model, fast_passwords, template,
                                            mailoutbox):
    user = django_user_model.objects.create_superuser("csrf", "csrf@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(preview_url(template)).status_code == 403
    assert mailoutbox == []


def test_a_view_only_user_sees_the_preview_but_cannot_send(viewer_client, template, mailoutbox):
    response = viewer_client.get(preview_url(template))
    assert response.status_code == 200
    assert "<iframe" in response.content.decode()
    assert "Send me a test" not in response.content.decode()
    assert viewer_client.post(preview_url(template)).status_code == 403
    assert mailoutbox == []


def test_a_user_without_permission_gets_no_preview(nobody_client, client, template, mailoutbox):
    assert nobody_client.get(preview_url(template)).status_code == 403
    assert nobody_client.post(preview_url(template)).status_code == 403
    # Not logged in: the admin's login page.
    response = client.get(preview_url(template))
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert mailoutbox == []
