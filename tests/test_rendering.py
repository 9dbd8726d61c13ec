"""The message sandbox and the Babel formatting of dunning/rendering.py."""

import datetime
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.template import Context
from django.test import override_settings

from dunning.exceptions import TemplateRenderError
from dunning.hosts import CustomerRow, get_adapter
from dunning.messages import rendering
from dunning.messages.rendering import (
    Renderer,
    babel_locale,
    build_context,
    company_context,
    compile_template,
    customer_timezone,
    format_money,
)
from dunning.models import MessageTemplate, Policy
from dunning.shipped import shipped_messages
from dunning.testing import override_dunning_settings
from tests.conftest import day

FORBIDDEN_TAGS = {
    "load": "{% load static %}",
    "include": '{% include "admin/base.html" %}',
    "extends": '{% extends "admin/base.html" %}',
    "debug": "{% debug %}",
    "url": '{% url "admin:index" %}',
    "csrf_token": "{% csrf_token %}",
    "ssi": "{% ssi '/etc/passwd' %}",
}

STEP_KEYS = [
    "initial-notice",
    "gentle-reminder",
    "formal-notice",
    "suspension-warning",
    "suspension",
    "final-notice",
    "termination",
]


def nbsp(text):
    """Babel separates with (narrow) no-break spaces; compare them as plain spaces."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


@dataclass
class Template:
    """What Renderer needs of a MessageTemplate, without a database row."""

    pk: int
    subject: str
    text_body: str
    html_body: str = ""
    updated_at: object = None


_pks = iter(range(1, 10**6))


def render(subject="", text="", html="", **context):
    template = Template(next(_pks), subject, text, html)
    base = {"customer": {"name": "", "email": "", "language": "en"}}
    return Renderer().render(template, {**base, **context})


# -- the sandbox ----------------------------------------------------------------------


@pytest.mark.parametrize("tag", sorted(FORBIDDEN_TAGS))
def test_tags_reaching_outside_the_context_do_not_compile(tag):
    with pytest.raises(TemplateRenderError) as excinfo:
        compile_template(f"Hello\n{FORBIDDEN_TAGS[tag]}\n")
    assert repr(tag) in str(excinfo.value)
    assert "line 2" in str(excinfo.value)


@pytest.mark.parametrize("field", ["subject", "text_body", "html_body"])
@pytest.mark.parametrize("tag", ["load", "include", "extends", "debug", "url", "csrf_token"])
def test_message_template_validation_names_the_field(db, field, tag):
    template = MessageTemplate(
        policy=Policy.objects.get(key="standard"),
        step_key="custom-step",
        channel="email",
        language="en",
        subject="Reminder",
        text_body="Please pay.",
        html_body="<p>Please pay.</p>",
    )
    template.full_clean()  # valid as it is
    setattr(template, field, FORBIDDEN_TAGS[tag])
    with pytest.raises(ValidationError) as excinfo:
        template.full_clean()
    assert set(excinfo.value.message_dict) == {field}
    assert repr(tag) in " ".join(excinfo.value.message_dict[field])


@pytest.mark.parametrize(
    "source, line",
    [
        ("Dear {{ customer.name }},\n\n{{ total|no_such_filter }}", 3),
        ("one\ntwo\nthree\n{% if days_overdue > 3 %}late", 4),
        ("one\n{% for invoice in %}{% endfor %}", 2),
        ("{{ customer.name|default: }}", 1),
    ],
)
def test_syntax_errors_name_the_line(source, line):
    with pytest.raises(TemplateRenderError) as excinfo:
        compile_template(source)
    assert f"line {line}" in str(excinfo.value)


def test_syntax_error_in_model_validation_names_the_line(db):
    template = MessageTemplate(
        policy=Policy.objects.get(key="standard"), step_key="custom-step", language="en",
        subject="Reminder", text_body="Hello\n\n{{ total|nope }}",
    )
    with pytest.raises(ValidationError) as excinfo:
        template.full_clean()
    assert "line 3" in " ".join(excinfo.value.message_dict["text_body"])


def test_private_attributes_are_refused():
    with pytest.raises(TemplateRenderError):
        compile_template("{{ customer.__class__ }}")


def test_allowed_tags_work():
    source = (
        "{% with name=customer.name|upper %}Dear {{ name }},{% endwith %}\n"
        "{% for invoice in invoices %}{{ forloop.counter }}. {{ invoice.number }}"
        "{% if invoice.days_overdue > 10 %} (long overdue){% endif %}\n{% endfor %}"
        "{% if not invoices %}nothing{% else %}{{ invoices|length }} invoices{% endif %}"
    )
    output = compile_template(source).render(Context({
        "customer": {"name": "Ada"},
        "invoices": [
            {"number": "INV-1", "days_overdue": 3},
            {"number": "INV-2", "days_overdue": 12},
        ],
    }))
    assert output == "Dear ADA,\n1. INV-1\n2. INV-2 (long overdue)\n2 invoices"


def test_html_body_is_autoescaped_and_text_body_is_not():
    customer = {"name": "<script>alert('x')</script> & Co", "email": "", "language": "en"}
    subject, text, html = render(
        subject="For {{ customer.name }}",
        text="Dear {{ customer.name }}",
        html="<p>Dear {{ customer.name }}</p>",
        customer=customer,
    )
    assert subject == "For <script>alert('x')</script> & Co"
    assert text == "Dear <script>alert('x')</script> & Co\n"
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in html
    assert "<p>Dear " in html  # the template's own markup stays markup
    assert '<html lang="en">' in html
    # The subject in the HTML layout's <title> is escaped too.
    assert "<title>For &lt;script&gt;" in html


def test_a_render_error_is_a_template_render_error():
    with pytest.raises(TemplateRenderError):
        render(text="{% widthratio 1 2 'x' %}", days_overdue=3)


# -- the context ----------------------------------------------------------------------

PLAIN = (dict, list, str, int)


def non_plain_values(value, path="context"):
    """Every (path, type) in ``value`` that is not a dict, list, str or int."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                found.append((f"{path} key {key!r}", type(key).__name__))
            found.extend(non_plain_values(item, f"{path}.{key}"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(non_plain_values(item, f"{path}[{i}]"))
    elif type(value) not in PLAIN or isinstance(value, Model):
        found.append((path, type(value).__name__))
    return found


def test_the_walker_finds_objects(make_customer):
    customer = make_customer()
    assert non_plain_values({"a": [{"b": customer}], "c": Decimal(1), "d": True}) == [
        ("context.a[0].b", "Customer"), ("context.c", "Decimal"), ("context.d", "bool"),
    ]


def test_build_context_holds_plain_values_only(make_customer):
    customer = make_customer(name="Ada", email="ada@example.com", language="de")
    row = get_adapter().customer_rows([customer.pk])[customer.pk]
    context = build_context(
        customer=row,
        invoices=[
            {"number": "INV-1", "amount_due": "120.00", "currency": "EUR", "due_date": "2026-03-02"},
            {"number": "INV-2", "amount_due": "80.5", "currency": "USD", "due_date": "2026-03-05"},
        ],
        step={"key": "formal-notice", "offset_days": 8, "action": ""},
        as_of=day(10),
        locale=babel_locale("de"),
        company=company_context(),
    )
    assert non_plain_values(context) == []
    assert context["customer"] == {"name": "Ada", "email": "ada@example.com", "language": "de"}
    assert context["days_overdue"] == 10
    assert [i["number"] for i in context["invoices"]] == ["INV-1", "INV-2"]
    assert nbsp(context["invoices"][0]["amount"]) == "120,00 €"
    assert context["invoices"][0]["due_date"] == "02.03.2026"
    assert nbsp(context["total"]) == "120,00 € + 80,50 $"
    assert context["step"]["key"] == "formal-notice"
    assert context["company"]["name"] == "Test Shop"


def test_the_engine_renders_from_plain_values_only(overdue_customer, run, monkeypatch, mailoutbox):
    from dunning.engine import run as engine

    contexts = []
    original = engine.build_context

    def spy(**kwargs):
        context = original(**kwargs)
        contexts.append(context)
        return context

    monkeypatch.setattr(engine, "build_context", spy)
    overdue_customer(name="Ada", email="ada@example.com")
    run(1)
    assert len(contexts) == 1 and len(mailoutbox) == 1
    assert non_plain_values(contexts[0]) == []


def test_unknown_currency_in_the_context_keeps_its_code():
    context = build_context(
        customer=CustomerRow(1, "Ada", "ada@example.com"),
        invoices=[{"number": "1", "amount_due": "12.30", "currency": "ABC", "due_date": "2026-03-02"}],
        step={"key": "initial-notice"}, as_of=day(2), locale=babel_locale("en"), company={},
    )
    assert context["invoices"][0]["amount"] == "12.30 ABC"
    assert context["total"] == "12.30 ABC"


# -- money, languages and time zones --------------------------------------------------


@pytest.mark.parametrize(
    "language, currency, expected",
    [
        ("en", "USD", "$1,234.50"),
        ("en", "EUR", "€1,234.50"),
        ("de", "EUR", "1.234,50 €"),
        ("de", "USD", "1.234,50 $"),
    ],
)
def test_format_money_known_currency(language, currency, expected):
    assert nbsp(format_money(Decimal("1234.50"), currency, babel_locale(language))) == expected


@pytest.mark.parametrize(
    "language, amount, expected",
    [
        ("en", "1234.50", "1,234.50 ABC"),
        ("de", "1234.50", "1.234,50 ABC"),
        ("en", "100.00", "100.00 ABC"),
        ("en", "99.99", "99.99 ABC"),
    ],
)
def test_format_money_unknown_currency_keeps_the_raw_code_beside_the_amount(
    language, amount, expected
):
    assert nbsp(format_money(Decimal(amount), "ABC", babel_locale(language))) == expected


def test_babel_locale_known_languages():
    assert str(babel_locale("de")) == "de"
    assert str(babel_locale("en")) == "en"
    assert str(babel_locale("de-AT")) == "de_AT"


@pytest.mark.parametrize("language", ["xx", None, "", "not a language", "../../etc"])
def test_babel_locale_falls_back_to_the_site_language(language):
    assert str(babel_locale(language)) == "en"  # settings.LANGUAGE_CODE


def test_babel_locale_fallback_follows_the_settings():
    assert str(babel_locale("xx")) == "en"
    with override_dunning_settings(DEFAULT_LANGUAGE="de"):
        assert str(babel_locale("xx")) == "de"
    assert str(babel_locale("xx")) == "en"
    with override_settings(LANGUAGE_CODE="de"):
        assert str(babel_locale("xx")) == "de"
        assert str(babel_locale(None)) == "de"
    assert str(babel_locale(None)) == "en"


def test_customer_timezone_fallback_follows_the_settings():
    assert customer_timezone("Mars/Olympus") == zoneinfo.ZoneInfo("Europe/Berlin")
    with override_settings(TIME_ZONE="America/New_York"):
        assert customer_timezone("Mars/Olympus") == zoneinfo.ZoneInfo("America/New_York")
    assert customer_timezone("Mars/Olympus") == zoneinfo.ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("name", ["Mars/Olympus", None, "", "../../etc/passwd", "Europe/"])
def test_customer_timezone_falls_back_to_the_site_time_zone(name):
    assert customer_timezone(name) == zoneinfo.ZoneInfo("Europe/Berlin")  # settings.TIME_ZONE


def test_customer_timezone_known_zone():
    assert customer_timezone("America/New_York") == zoneinfo.ZoneInfo("America/New_York")


# -- the shipped messages -------------------------------------------------------------

# What each message says happens next (or what to do), per language.
NEXT = {
    "en": {
        "initial-notice": "If you have already paid",
        "gentle-reminder": "we will send a formal notice",
        "formal-notice": "we will have to suspend your service",
        "suspension-warning": "your service will be suspended",
        "suspension": "your account will be terminated",
        "final-notice": "your account will be terminated",
        "termination": "collection",
        "payment-received": "your account is settled",
    },
    "de": {
        "initial-notice": "Falls Sie bereits bezahlt haben",
        "gentle-reminder": "förmliche Mahnung",
        "formal-notice": "Dienst sperren",
        "suspension-warning": "wird Ihr Dienst gesperrt",
        "suspension": "wird Ihr Konto gekündigt",
        "final-notice": "kündigen wir Ihr Konto",
        "termination": "Inkasso",
        "payment-received": "Ihr Konto ist ausgeglichen",
    },
}

INVOICES = [
    {"number": "INV-1001", "amount_due": "1234.50", "currency": "EUR", "due_date": "2026-03-02"},
    {"number": "INV-1002", "amount_due": "80.00", "currency": "USD", "due_date": "2026-03-06"},
]
EXPECTED = {
    "en": {
        "amounts": ["€1,234.50", "$80.00"],
        "dates": ["Mar 2, 2026", "Mar 6, 2026"],
        "pay": "Pay now",
        "transfer": "transfer the total",
    },
    "de": {
        "amounts": ["1.234,50 €", "80,00 $"],
        "dates": ["02.03.2026", "06.03.2026"],
        "pay": "Jetzt bezahlen",
        "transfer": "überweisen",
    },
}


def shipped(*, steps_only=False):
    return [
        pytest.param(*m, id=f"{m[0]}-{m[1]}")
        for m in shipped_messages()
        if not steps_only or m[1] != "payment-received"
    ]


def test_every_step_and_the_thank_you_is_shipped_in_english_and_german():
    keys = {(language, key) for language, key, *_ in shipped_messages()}
    assert keys == {
        (language, key) for language in ("en", "de") for key in [*STEP_KEYS, "payment-received"]
    }


@pytest.mark.parametrize("language, key, subject, text, html", shipped())
def test_shipped_message_compiles_and_validates(db, language, key, subject, text, html):
    for source in (subject, text, html):
        compile_template(source)
    assert subject and text and html
    MessageTemplate(
        policy=Policy.objects.get(key="standard"), step_key=f"copy-{key}", language=language,
        subject=subject, text_body=text, html_body=html,
    ).full_clean()


def sample_context(language, company=None):
    return build_context(
        customer=CustomerRow(7, "Ada <Lovelace>", "ada@example.com", language=language),
        invoices=INVOICES,
        step={"key": "x", "offset_days": 1, "action": ""},
        as_of=datetime.date(2026, 3, 20),
        locale=babel_locale(language),
        company=company if company is not None else company_context(),
    )


@pytest.mark.parametrize("language, key, subject, text, html", shipped())
def test_shipped_message_says_what_is_overdue_and_what_happens_next(
    language, key, subject, text, html
):
    template = Template(next(_pks), subject, text, html)
    subject_out, text_out, html_out = Renderer().render(template, sample_context(language))
    text_out, html_out = nbsp(text_out), nbsp(html_out)

    assert subject_out and "\n" not in subject_out and "{" not in subject_out
    assert "{{" not in text_out and "{%" not in text_out and "{{" not in html_out
    assert "Ada <Lovelace>" in text_out
    assert "Ada &lt;Lovelace&gt;" in html_out and "<Lovelace>" not in html_out
    assert "Test Shop" in text_out and "Test Shop" in html_out
    assert NEXT[language][key] in text_out
    assert NEXT[language][key] in html_out
    if key == "payment-received":
        assert "INV-1001" not in text_out
        return
    expected = EXPECTED[language]
    for out in (text_out, html_out):
        for invoice, amount, due in zip(INVOICES, expected["amounts"], expected["dates"], strict=True):
            assert invoice["number"] in out
            assert amount in out
            assert due in out
        assert expected["pay"] in out
        assert "https://pay.example.com" in out
    assert nbsp(sample_context(language)["total"]) in nbsp(subject_out) or key in {
        "suspension-warning", "suspension", "termination",
    }


@pytest.mark.parametrize("language, key, subject, text, html", shipped(steps_only=True))
def test_shipped_message_without_payment_url_explains_how_to_pay(
    language, key, subject, text, html
):
    company = {**company_context(), "payment_url": ""}
    _, text_out, html_out = Renderer().render(
        Template(next(_pks), subject, text, html), sample_context(language, company)
    )
    for out in (text_out, html_out):
        assert EXPECTED[language]["pay"] not in out
        assert EXPECTED[language]["transfer"] in out


def test_sandbox_engine_is_private():
    # The sandbox does not change Django's own template engine.
    from django.template import engines

    django_engine = engines["django"].engine
    assert django_engine is not rendering.sandbox_engine()
    assert "load" in django_engine.template_builtins[0].tags or any(
        "load" in lib.tags for lib in django_engine.template_builtins
    )
