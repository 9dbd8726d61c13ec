"""System checks of dunning/checks.py, called directly and through Django's check framework.

``override_settings`` of DUNNING_CUSTOMER_MODEL / DUNNING_INVOICE_MODEL only changes what the
checks see (the models are bound at start-up), which is all these tests need.
"""

import pytest
from django.apps import apps
from django.core.checks import Error, Warning, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from dunning.checks import check_host_models, check_settings
from dunning.testing import override_dunning_settings


@pytest.fixture(autouse=True)
def fresh_model_caches():
    """Overriding a swappable setting leaves Django's model caches (apps.get_models, the
    reverse relations of the swapped model) computed for the override; drop them after."""
    yield
    apps.clear_cache()


def dunning_messages():
    """The dunning check messages, asserting that both ways of running them agree."""
    direct = check_host_models() + check_settings()
    framework = run_checks(tags=["dunning"])
    assert sorted(map(repr, direct)) == sorted(map(repr, framework))
    for message in direct:
        assert message.id.startswith("dunning."), message
        assert message.hint, f"{message.id} has no hint: {message.msg}"
    return direct


def ids(messages):
    return sorted(m.id for m in messages)


def only(error_id):
    messages = dunning_messages()
    assert ids(messages) == [error_id], [m.msg for m in messages]
    return messages[0]


def test_the_test_settings_pass():
    assert dunning_messages() == []


def test_check_command_runs_the_dunning_checks():
    with override_settings(DUNNING_CUSTOMER_MODEL="missing.Model"):
        with pytest.raises(SystemCheckError, match="dunning.E001"):
            call_command("check", tags=["dunning"])
    call_command("check", tags=["dunning"])  # and passes again


# -- the models -----------------------------------------------------------------------


@pytest.mark.parametrize("label", ["nope", "missing.Model", "dunning.NoSuchModel", "a.b.c"])
def test_bad_customer_model(label):
    with override_settings(DUNNING_CUSTOMER_MODEL=label):
        error = only("dunning.E001")
    assert isinstance(error, Error)
    assert "DUNNING_CUSTOMER_MODEL" in error.msg
    assert repr(label) in error.msg


@pytest.mark.parametrize("label", ["nope", "missing.Invoice", "dunning.Bill"])
def test_bad_invoice_model(label):
    with override_settings(DUNNING_INVOICE_MODEL=label):
        error = only("dunning.E002")
    assert "DUNNING_INVOICE_MODEL" in error.msg
    assert repr(label) in error.msg


def test_not_installed_hint_says_what_to_do():
    with override_settings(DUNNING_INVOICE_MODEL="missing.Invoice"):
        error = only("dunning.E002")
    assert "INSTALLED_APPS" in error.hint


def test_form_hint_gives_an_example():
    with override_settings(DUNNING_CUSTOMER_MODEL="nope"):
        error = only("dunning.E001")
    assert "app_label.ModelName" in error.msg


def test_invoice_foreign_key_must_point_at_the_customer_model():
    # A customer model that the invoice model's ForeignKey does not point at.
    with override_settings(DUNNING_CUSTOMER_MODEL="auth.User"), override_dunning_settings(
        CUSTOMER_FIELDS={"name": "username", "email": "email"}
    ):
        error = only("dunning.E004")
    assert "dunning.Invoice.customer" in error.msg
    assert "auth.User" in error.msg
    assert "INVOICE_FIELDS" in error.hint


# -- the invoice field mapping --------------------------------------------------------


@pytest.mark.parametrize("canonical", ["amount_due", "number", "currency", "due_date", "customer"])
def test_invoice_field_mapped_to_a_missing_field(canonical):
    with override_dunning_settings(INVOICE_FIELDS={canonical: "no_such_field"}):
        error = only("dunning.E003")
    assert "'no_such_field'" in error.msg
    assert "dunning.Invoice" in error.msg
    assert f"DUNNING['INVOICE_FIELDS'][{canonical!r}]" in error.hint


def test_invoice_field_path_through_a_relation_to_a_missing_field():
    with override_dunning_settings(INVOICE_FIELDS={"currency": "customer__currency"}):
        error = only("dunning.E003")
    assert "'customer__currency'" in error.msg


def test_invoice_field_mapped_to_nothing():
    with override_dunning_settings(INVOICE_FIELDS={"number": ""}):
        error = only("dunning.E003")
    assert "'number'" in error.msg


@pytest.mark.parametrize(
    "canonical, target, expected",
    [
        ("amount_due", "number", "DecimalField"),  # a CharField
        ("due_date", "number", "DateField"),  # a CharField
        ("due_date", "amount_due", "DateField"),  # a DecimalField
        ("currency", "amount_due", "CharField"),
        ("number", "due_date", "text or integer"),
        ("amount_due", "customer__name", "DecimalField"),  # through a relation
    ],
)
def test_invoice_field_of_the_wrong_type(canonical, target, expected):
    with override_dunning_settings(INVOICE_FIELDS={canonical: target}):
        error = only("dunning.E004")
    assert f"dunning.Invoice.{target}" in error.msg
    assert canonical in error.msg
    assert expected in error.msg


def test_invoice_customer_mapped_to_a_non_relation():
    with override_dunning_settings(INVOICE_FIELDS={"customer": "number"}):
        error = only("dunning.E004")
    assert "ForeignKey" in error.msg


def test_a_computed_invoice_field_is_not_looked_for():
    from dunning.hosts import FieldMapAdapter

    class Computed(FieldMapAdapter):
        computed_invoice_fields = frozenset({"amount_due"})

    import sys
    import types

    module = types.ModuleType("tests._computed_adapter")
    module.Computed = Computed
    sys.modules[module.__name__] = module
    try:
        with override_dunning_settings(INVOICE_FIELDS={"amount_due": "no_such_field"}):
            assert ids(dunning_messages()) == ["dunning.E003"]
            with override_dunning_settings(ADAPTER="tests._computed_adapter.Computed"):
                assert dunning_messages() == []
    finally:
        del sys.modules[module.__name__]


# -- the customer field mapping -------------------------------------------------------


@pytest.mark.parametrize(
    "mapping",
    [
        {"email": "mail"},
        {"name": "full_name"},
        {"email": "invoices__mail"},  # through a relation
        {"phone": "mobile"},  # optional, but mapped explicitly
        {"language": "contact__lang"},
    ],
)
def test_customer_field_mapped_to_a_missing_field(mapping):
    ((canonical, path),) = mapping.items()
    with override_dunning_settings(CUSTOMER_FIELDS=mapping):
        error = only("dunning.E005")
    assert repr(path) in error.msg
    assert "dunning.Customer" in error.msg
    assert f"DUNNING['CUSTOMER_FIELDS'][{canonical!r}]" in error.hint


@pytest.mark.parametrize(
    "mapping",
    [
        {"email": "id"},
        {"name": "invoices__amount_due"},
        {"timezone": "invoices__due_date"},
    ],
)
def test_customer_field_of_the_wrong_type(mapping):
    ((canonical, path),) = mapping.items()
    with override_dunning_settings(CUSTOMER_FIELDS=mapping):
        error = only("dunning.E006")
    assert f"dunning.Customer.{path}" in error.msg
    assert canonical in error.msg
    assert f"DUNNING['CUSTOMER_FIELDS'][{canonical!r}]" in error.hint


def test_customer_model_without_optional_fields_passes():
    # auth.User has no phone, language or timezone: the optional fields are left out.
    with override_settings(DUNNING_CUSTOMER_MODEL="auth.User"), override_dunning_settings(
        CUSTOMER_FIELDS={"name": "username", "email": "email"}
    ):
        assert [m.id for m in check_host_models() if m.id in {"dunning.E005", "dunning.E006"}] == []


# -- the dunning settings -------------------------------------------------------------


@pytest.mark.parametrize("key", ["ADAPTER", "EMAIL_CHANNEL"])
@pytest.mark.parametrize("path", ["no.such.Adapter", "dunning.hosts.NoSuchClass", "nodots"])
def test_bad_dotted_path(key, path):
    with override_dunning_settings(**{key: path}):
        error = only("dunning.E007")
    assert f"DUNNING[{key!r}]" in error.msg
    assert repr(path) in error.msg


@pytest.mark.parametrize("setting", ["INVOICE_FIELDS", "CUSTOMER_FIELDS"])
def test_unknown_canonical_name(setting):
    with override_dunning_settings(**{setting: {"amount": "amount_due"}}):
        error = only("dunning.E008")
    assert f"DUNNING[{setting!r}]" in error.msg
    assert "'amount'" in error.msg
    assert "Canonical names" in error.hint


def test_field_mapping_that_is_not_a_dict():
    with override_dunning_settings(INVOICE_FIELDS=[("amount_due", "balance")]):
        error = only("dunning.E008")
    assert "must be a dict" in error.msg


def test_unknown_dunning_key_is_a_warning():
    with override_dunning_settings(BATCH_SZE=100):
        warning = only("dunning.W001")
    assert isinstance(warning, Warning)
    assert "'BATCH_SZE'" in warning.msg
    assert "BATCH_SIZE" in warning.hint


def test_dunning_setting_that_is_not_a_dict():
    with override_settings(DUNNING=[("BATCH_SIZE", 10)]):
        error = only("dunning.E009")
    assert "settings.DUNNING must be a dict" in error.msg


@pytest.mark.parametrize("value", [0, -1, "500"])
def test_bad_batch_size(value):
    with override_dunning_settings(BATCH_SIZE=value):
        error = only("dunning.E010")
    assert repr(value) in error.msg


@pytest.mark.parametrize(("key", "value"), [
    ("OUTBOX_MAX_ATTEMPTS", 0), ("OUTBOX_STALE_AFTER", "600"), ("OUTBOX_RETRY_BACKOFF", -5),
    ("OUTBOX_RETRY_MAX_DELAY", None), ("OUTBOX_MAX_ATTEMPTS", True),
])
def test_bad_outbox_numbers(key, value):
    with override_dunning_settings(**{key: value}):
        error = only("dunning.E013")
    assert key in error.msg and repr(value) in error.msg and "default" in error.hint


@pytest.mark.parametrize(("key", "value"), [
    ("OUTBOX_RETRY_HORIZON", 0), ("OUTBOX_RETRY_HORIZON", "86400"), ("OUTBOX_CHUNK_SIZE", 0),
    ("OUTBOX_BREAKER_BACKOFF", 1.5), ("OUTBOX_BREAKER_MAX_DELAY", None),
    ("RUN_LEASE_SECONDS", True), ("RUN_LEASE_SECONDS", 0),
])
def test_bad_outbox_fault_settings(key, value):
    with override_dunning_settings(**{key: value}):
        error = only("dunning.E060")
    assert key in error.msg and repr(value) in error.msg and "default" in error.hint


@pytest.mark.parametrize("value", ["", 5, ["idempotence_key"]])
def test_bad_idempotency_field(value):
    with override_dunning_settings(OUTBOX_IDEMPOTENCY_ESP_EXTRA=value):
        error = only("dunning.E061")
    assert repr(value) in error.msg


def test_outbox_max_attempts_may_be_none_the_horizon_decides():
    with override_dunning_settings(OUTBOX_MAX_ATTEMPTS=None,
                                   OUTBOX_IDEMPOTENCY_ESP_EXTRA="idempotence_key"):
        assert [m for m in dunning_messages() if m.id in ("dunning.E013", "dunning.E060",
                                                          "dunning.E061")] == []


def test_no_sender_address_is_a_warning():
    with override_settings(DEFAULT_FROM_EMAIL=""):
        assert only("dunning.W002").hint
        with override_dunning_settings(FROM_EMAIL="dunning@example.com"):
            assert dunning_messages() == []


def test_several_problems_are_all_reported():
    with override_settings(DUNNING_INVOICE_MODEL="missing.Invoice"), override_dunning_settings(
        ADAPTER="no.such.Adapter",
        CUSTOMER_FIELDS={"email": "mail", "mail": "email"},
        COLOUR="blue",
    ):
        assert ids(dunning_messages()) == [
            "dunning.E002", "dunning.E005", "dunning.E007", "dunning.E008", "dunning.W001",
        ]


def test_the_admin_without_import_export_is_an_error(settings):
    from dunning.checks import check_admin_dependencies

    assert check_admin_dependencies() == []
    apps_without = [a for a in settings.INSTALLED_APPS if a != "import_export"]
    with override_settings(INSTALLED_APPS=apps_without):
        (error,) = check_admin_dependencies()
    assert error.id == "dunning.E012" and "import_export" in error.hint


# -- issue 14: the host contract --------------------------------------------------------


def _install_adapter(name, cls):
    import sys
    import types

    module = types.ModuleType(f"tests._{name}")
    setattr(module, cls.__name__, cls)
    sys.modules[module.__name__] = module
    return f"{module.__name__}.{cls.__name__}"


@pytest.mark.parametrize("code", ["EUR", "CHF", "JPY"])
def test_a_fixed_invoice_currency_passes(code):
    with override_dunning_settings(INVOICE_CURRENCY=code):
        assert dunning_messages() == []


@pytest.mark.parametrize("code", ["EURO", "€", "ZZZ", "eur", "", 978, ["EUR"]])
def test_a_fixed_invoice_currency_must_be_an_iso_4217_code(code):
    with override_dunning_settings(INVOICE_CURRENCY=code):
        error = only("dunning.E090")
    assert "DUNNING['INVOICE_CURRENCY']" in error.msg
    assert repr(code) in error.msg
    assert "ISO 4217" in error.msg
    assert "'EUR'" in error.hint


def test_a_fixed_invoice_currency_beside_a_mapped_one_is_ambiguous():
    with override_dunning_settings(INVOICE_CURRENCY="EUR", INVOICE_FIELDS={"currency": "currency"}):
        error = only("dunning.E090")
    assert "also maps 'currency'" in error.msg


def test_a_fixed_invoice_currency_stands_in_for_the_column(make_customer, make_invoice):
    from decimal import Decimal

    from dunning.hosts import get_adapter
    from tests.conftest import day

    customer = make_customer()
    make_invoice(customer, amount_due="10.00", currency="USD", due_date=day(-3))
    # The check does not look for a currency field (there might be none) ...
    with override_dunning_settings(INVOICE_CURRENCY="CHF",
                                   INVOICE_FIELDS={"currency": "no_such_field"}):
        assert ids(dunning_messages()) == ["dunning.E003", "dunning.E090"]
    with override_dunning_settings(INVOICE_CURRENCY="CHF"):
        assert dunning_messages() == []
        adapter = get_adapter()
        rows = adapter.invoice_rows(adapter.overdue_invoices(day(1)))
    assert [(r.amount_due, r.currency) for r in rows] == [(Decimal("10.00"), "CHF")]


def test_a_computed_customer_field_is_not_looked_for():
    from django.db.models import Value

    from dunning.hosts import FieldMapAdapter

    class ComputedCustomer(FieldMapAdapter):
        computed_customer_fields = frozenset({"email"})

        def customer_expression(self, name):
            if name == "email":
                return Value("fixed@example.com")
            return super().customer_expression(name)

    path = _install_adapter("computed_customer", ComputedCustomer)
    with override_dunning_settings(CUSTOMER_FIELDS={"email": "no_such_field"}):
        assert ids(dunning_messages()) == ["dunning.E005"]
        with override_dunning_settings(ADAPTER=path):
            assert dunning_messages() == []


def test_shipped_models_take_canonical_fields_by_name_without_a_warning():
    # dunning.W090 is for swapped host models only: the shipped ones are canonical.
    assert dunning_messages() == []


def test_a_swapped_model_field_taken_by_its_name_is_named_with_what_it_must_hold():
    with override_settings(DUNNING_CUSTOMER_MODEL="auth.User"), override_dunning_settings(
        CUSTOMER_FIELDS={"name": "username"}
    ):
        messages = dunning_messages()
        assert ids(messages) == ["dunning.E004", "dunning.W090"]  # E004: auth.User is no FK
        (warning,) = [m for m in messages if m.id == "dunning.W090"]
        assert isinstance(warning, Warning)
        assert "auth.User.email" in warning.msg
        assert "the address reminders are sent to" in warning.msg
        assert "DUNNING['CUSTOMER_FIELDS']['email'] = 'email'" in warning.hint
        # Mapped explicitly: the host said so, no warning.
        with override_dunning_settings(CUSTOMER_FIELDS={"name": "username", "email": "email"}):
            assert ids(dunning_messages()) == ["dunning.E004"]


@pytest.mark.django_db
def test_a_model_setting_changed_after_the_first_migrate_is_found_in_the_database():
    """Changing DUNNING_CUSTOMER_MODEL after migrate passed check and migrate, and the first
    run failed with IntegrityError: FOREIGN KEY constraint failed (issue 14)."""
    from dunning.checks import check_foreign_key_targets

    assert check_foreign_key_targets(databases=["default"]) == []
    assert check_foreign_key_targets() == []  # without --database: not looked at
    with override_settings(DUNNING_CUSTOMER_MODEL="auth.User"):
        (error,) = check_foreign_key_targets(databases=["default"])
        assert error.id == "dunning.E091"
        assert "DUNNING_CUSTOMER_MODEL = 'auth.User' (table auth_user)" in error.msg
        assert "dunning_case.customer_id -> dunning_customer" in error.msg
        assert "FOREIGN KEY constraint failed" in error.msg
        assert "migrate dunning zero" in error.hint
        assert "dunning_customer" in error.hint
        # migrate runs the database checks: it stops instead of passing.
        with pytest.raises(SystemCheckError, match="dunning.E091"):
            call_command("migrate", verbosity=0, skip_checks=False)  # as from the shell
        with pytest.raises(SystemCheckError, match="dunning.E091"):
            call_command("check", databases=["default"])


@pytest.mark.parametrize("sender", ["webmaster@localhost", "Billing <WEBMASTER@localhost>"])
def test_django_s_placeholder_sender_is_warned_about(sender):
    with override_settings(DEFAULT_FROM_EMAIL=sender):
        warning = only("dunning.W091")
        assert repr(sender) in warning.msg and "DEFAULT_FROM_EMAIL" in warning.msg
        assert "DUNNING['FROM_EMAIL']" in warning.hint
        with override_dunning_settings(FROM_EMAIL="billing@shop.example"):
            assert dunning_messages() == []
    with override_dunning_settings(FROM_EMAIL=sender):
        assert "DUNNING['FROM_EMAIL']" in only("dunning.W091").msg


# -- every dotted-path setting is imported by check (dunning.E092) ----------------------


def not_callable():
    pass


NOT_CALLABLE = 42


@pytest.mark.parametrize(("settings_", "where", "text"), [
    ({"CHANNELS": {"sms": "dunning.channels.sms.NoSuchChannel"}}, "DUNNING['CHANNELS']['sms']",
     "cannot be imported"),
    ({"CHANNELS": {"sms": "dunning.channels.sms.SmsMessage"}}, "DUNNING['CHANNELS']['sms']",
     "is not a channel class"),
    ({"CHANNELS": ["dunning.channels.sms.SmsChannel"]}, "DUNNING['CHANNELS']", "must be a dict"),
    ({"PAYMENT_BACKEND": "dunning.payments.nothing.Backend"}, "DUNNING['PAYMENT_BACKEND']",
     "No module named 'dunning.payments.nothing'"),
    ({"PAYMENT_BACKEND": "dunning.payments.base.ChargeResult"}, "DUNNING['PAYMENT_BACKEND']",
     "is not a payment backend class"),
    ({"RISK_SCORE": "tests.test_checks.no_such_function"}, "DUNNING['RISK_SCORE']",
     "cannot be imported"),
    ({"RISK_SCORE": "tests.test_checks.NOT_CALLABLE"}, "DUNNING['RISK_SCORE']",
     "is not callable"),
    ({"BALANCE_HISTORY": "nodots"}, "DUNNING['BALANCE_HISTORY']", "cannot be imported"),
    ({"INAPP_CUSTOMER_FOR_REQUEST": "tests.nothing.finder"},
     "DUNNING['INAPP_CUSTOMER_FOR_REQUEST']", "cannot be imported"),
    ({"API_AUTHENTICATION_CLASSES": ["rest_framework.authentication.Nope"]},
     "DUNNING['API_AUTHENTICATION_CLASSES'][0]", "cannot be imported"),
    ({"API_AUTHENTICATION_CLASSES": ["dunning.hosts.FieldMapAdapter"]},
     "DUNNING['API_AUTHENTICATION_CLASSES'][0]", "is not an authentication class"),
    ({"API_AUTHENTICATION_CLASSES": "rest_framework.authentication.SessionAuthentication"},
     "DUNNING['API_AUTHENTICATION_CLASSES']", "must be a list"),
    ({"PORTAL_PAY_URL": "pay.example.com"}, "DUNNING['PORTAL_PAY_URL']",
     "a URL must start with its scheme"),
    ({"PORTAL_UPDATE_PAYMENT_URL": 12}, "DUNNING['PORTAL_UPDATE_PAYMENT_URL']",
     "must be a URL format or a dotted path"),
])
def test_a_dotted_path_setting_is_imported_by_check(settings_, where, text):
    with override_dunning_settings(**settings_):
        error = only("dunning.E092")
    assert where in error.msg
    assert text in error.msg
    assert error.hint


def test_a_module_that_fails_on_import_is_reported_not_raised(tmp_path, monkeypatch):
    (tmp_path / "broken_hook.py").write_text("raise RuntimeError('no licence key')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with override_dunning_settings(RISK_SCORE="broken_hook.score"):
        error = only("dunning.E092")
    assert "RuntimeError: no licence key" in error.msg


@pytest.mark.parametrize("settings_", [
    {"RISK_SCORE": "tests.test_checks.not_callable", "BALANCE_HISTORY": not_callable},
    {"PAYMENT_BACKEND": "dunning.payments.simulated.SimulatedBackend"},
    {"API_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"]},
    {"PORTAL_PAY_URL": "https://pay.example/{customer}?t={token}",
     "PORTAL_UPDATE_PAYMENT_URL": "tests.test_checks.not_callable"},
    {"CHANNELS": {}},
])
def test_good_dotted_path_settings_pass(settings_):
    with override_dunning_settings(**settings_):
        assert dunning_messages() == []
