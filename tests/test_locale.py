"""The German translation shipped in dunning/locale (the wheel test checks it ships).

To update it after changing a translatable string::

    cd dunning && ../.venv/bin/django-admin makemessages -l de   # then fill every msgstr
    ../.venv/bin/django-admin compilemessages
"""

import ast
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from django.apps import apps
from django.utils import translation

import dunning
from dunning.channels.email import EmailChannel
from dunning.exceptions import TemplateRenderError
from dunning.hosts import CustomerRow
from dunning.messages.rendering import compile_template
from dunning.models import Case, CaseEvent, CaseStep, Invoice, Policy, Step
from dunning.models.policy import Action

PACKAGE = Path(dunning.__file__).resolve().parent
MESSAGES = PACKAGE / "locale" / "de" / "LC_MESSAGES"
GETTEXT_FUNCTIONS = {"_", "gettext", "gettext_lazy", "gettext_noop"}


def translatable_strings():
    """Every literal passed to a gettext function in dunning/ (as makemessages finds it)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in GETTEXT_FUNCTIONS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.setdefault(node.args[0].value, f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def compiled_catalog():
    """msgid -> msgstr of django.mo (a plural as a tuple of its forms)."""
    with open(MESSAGES / "django.mo", "rb") as fh:
        return _as_dict(read_mo(fh))


def po_catalog():
    """msgid -> msgstr of django.po (a plural as a tuple; a fuzzy entry as empty, since
    compilemessages leaves it out)."""
    with open(MESSAGES / "django.po", "rb") as fh:
        return _as_dict(read_po(fh, ignore_obsolete=True), fuzzy_as_empty=True)


def _as_dict(catalog, fuzzy_as_empty=False):
    entries = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, (list, tuple)) else message.id
        value = message.string
        if isinstance(value, list):
            value = tuple(value)
        if fuzzy_as_empty and message.fuzzy:
            value = ("",) * len(value) if isinstance(value, tuple) else ""
        entries[key] = value
    return entries


def _translated(value):
    return all(value) if isinstance(value, tuple) else bool(value)


def test_every_translatable_string_has_a_german_translation():
    catalog = compiled_catalog()
    strings = translatable_strings()
    assert len(strings) > 50  # the scan found the models' strings
    missing = {s: where for s, where in strings.items() if not _translated(catalog.get(s, ""))}
    assert not missing, f"no German translation in django.mo for: {missing}"


def test_compiled_catalog_matches_the_po_file():
    po = po_catalog()
    assert all(_translated(v) for v in po.values()), [k for k, v in po.items() if not _translated(v)]
    assert compiled_catalog() == po, "django.mo is stale: run compilemessages in dunning/"


def test_translations_keep_their_placeholders():
    for msgid, msgstr in po_catalog().items():
        if isinstance(msgstr, tuple):
            msgstr = msgstr[-1]
        for placeholder in ("%(pk)s", "%(status)s", "%(key)s", "%(address)s", "%(s)s", "%(line)s"):
            assert (placeholder in msgid) == (placeholder in msgstr), (msgid, msgstr)


def test_model_names_and_choices_in_german():
    with translation.override("de"):
        assert str(Case._meta.verbose_name) == "Fall"
        assert str(Case._meta.verbose_name_plural) == "Fälle"
        assert str(Invoice._meta.verbose_name) == "Rechnung"
        assert str(Policy._meta.verbose_name_plural) == "Mahnrichtlinien"
        assert str(Invoice._meta.get_field("due_date").verbose_name) == "Fälligkeitsdatum"
        assert str(Case.Status.OPEN.label) == "Offen"
        assert str(CaseStep.Status.FAILED.label) == "Fehlgeschlagen"
        assert str(CaseEvent.Kind.SUSPENDED.label) == "Dienst gesperrt"
        assert str(Action.TERMINATE.label) == "Konto kündigen"
        assert str(Step._meta.get_field("offset_days").help_text).startswith("Die Stufe ist fällig")
        assert str(apps.get_app_config("dunning").verbose_name) == "Mahnwesen"
        assert str(Case(pk=7, status="open")) == "Fall 7 (Offen)"


def test_english_stays_english():
    with translation.override("en"):
        assert str(Case._meta.verbose_name) == "case"
        assert str(Case(pk=7, status="open")) == "Case 7 (Open)"
        assert str(apps.get_app_config("dunning").verbose_name) == "Dunning"


@pytest.mark.parametrize(
    ("email", "english", "german"),
    [
        ("", "no email address", "keine E-Mail-Adresse"),
        ("not-an-address", "invalid email address: not-an-address",
         "ungültige E-Mail-Adresse: not-an-address"),
    ],
)
def test_failure_reasons_in_the_active_language(email, english, german):
    customer = CustomerRow(pk=1, name="Kim", email=email)
    with translation.override("en"):
        assert EmailChannel().recipient(customer) == ("", english)
    with translation.override("de"):
        assert EmailChannel().recipient(customer) == ("", german)


def test_template_error_line_in_german():
    with translation.override("de"), pytest.raises(TemplateRenderError, match=r"\(Zeile 2\)$"):
        compile_template("Hallo\n{% if %}x{% endif %}")
