"""System checks (tag ``dunning``). Ids are stable and never reused; see the README."""

import functools
from email.utils import parseaddr

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import models

from .conf import (  # noqa: F401 - CODE_KINDS: once defined here
    CODE_KINDS,
    CUSTOMER_MODEL_SETTING,
    DEFAULT_CUSTOMER_MODEL,
    DEFAULT_INVOICE_MODEL,
    DEFAULTS,
    IMPORT_STRINGS,
    INVOICE_MODEL_SETTING,
    check_imported,
    customer_model_label,
    dunning_settings,
    import_setting,
    invoice_model_label,
    is_dotted_path,
    setting_name,
    setting_needs,
)
from .exceptions import DunningConfigurationError
from .hosts import (
    CUSTOMER_CANONICAL,
    CUSTOMER_HISTORY,
    CUSTOMER_OPTIONAL,
    INVOICE_CANONICAL,
    INVOICE_HISTORY,
    resolve_lookup,
    resolve_path,
)

TEXT_FIELDS = (models.CharField, models.TextField)
#: Django's default DEFAULT_FROM_EMAIL, a placeholder (dunning.W091).
DJANGO_DEFAULT_FROM_EMAIL = "webmaster@localhost"

# canonical invoice field -> (accepted field classes, description)
INVOICE_TYPES = {
    "number": ((models.CharField, models.TextField, models.IntegerField), "a text or integer field"),
    "amount_due": ((models.DecimalField,), "a DecimalField"),
    "currency": (TEXT_FIELDS, "a CharField holding an ISO 4217 code"),
    "due_date": ((models.DateField,), "a DateField"),
}
#: What a required canonical field must hold (dunning.W090 names it when a swapped host
#: model supplies the field only because it has the canonical name).
INVOICE_MEANING = {
    "customer": "the ForeignKey to the customer who owes the invoice",
    "number": "the invoice number quoted in messages",
    "amount_due": "the open balance: what is still owed after payments and credit notes "
                  "(0 once paid), not the invoice total",
    "currency": "the ISO 4217 code of the invoice's amounts",
    "due_date": "the date by which the invoice was to be paid",
}
CUSTOMER_MEANING = {
    "name": "the customer's name as messages address them",
    "email": "the address reminders are sent to",
}
#: Canonical invoice fields that may be read from a key of a JSONField (text values).
INVOICE_JSON_OK = frozenset({"number", "currency"})

CUSTOMER_TYPES = {
    "name": TEXT_FIELDS,
    "email": TEXT_FIELDS,
    "phone": TEXT_FIELDS,
    "language": TEXT_FIELDS,
    "timezone": TEXT_FIELDS,
}


def _model(label, setting, error_id):
    from django.apps import apps

    try:
        return apps.get_model(label), None
    except ValueError:
        return None, Error(
            f"{setting} = {label!r} is not of the form 'app_label.ModelName'.",
            hint=f"Set {setting} to a model label such as 'billing.Invoice'.",
            id=error_id,
        )
    except LookupError:
        return None, Error(
            f"{setting} refers to model {label!r}, which is not installed.",
            hint="Add its app to INSTALLED_APPS or correct the label.",
            id=error_id,
        )


@register(Tags.models, "dunning")
def check_host_models(app_configs=None, **kwargs):
    errors = []
    try:
        user = dunning_settings.user_settings
    except DunningConfigurationError as exc:
        return [Error(str(exc), hint="DUNNING = {...}", id="dunning.E009")]
    for key in user:
        if key not in DEFAULTS:
            errors.append(Warning(
                f"DUNNING[{key!r}] is not a django-dunning setting.",
                hint="Known keys: " + ", ".join(sorted(DEFAULTS)),
                id="dunning.W001",
            ))
    customer, error = _model(customer_model_label(), CUSTOMER_MODEL_SETTING, "dunning.E001")
    if error:
        errors.append(error)
    invoice, error = _model(invoice_model_label(), INVOICE_MODEL_SETTING, "dunning.E002")
    if error:
        errors.append(error)
    errors.extend(code_setting_errors("ADAPTER"))
    errors.extend(code_setting_errors("EMAIL_CHANNEL"))
    for key, canonical in (("INVOICE_FIELDS", INVOICE_CANONICAL + INVOICE_HISTORY),
                           ("CUSTOMER_FIELDS", CUSTOMER_CANONICAL + CUSTOMER_HISTORY)):
        mapping = user.get(key, {})
        if not isinstance(mapping, dict):
            errors.append(Error(f"DUNNING[{key!r}] must be a dict.", hint="{'amount_due': 'balance'}", id="dunning.E008"))
            continue
        for name in mapping:
            if name not in canonical:
                errors.append(Error(
                    f"DUNNING[{key!r}] maps {name!r}, which is not one of its canonical names.",
                    hint="Canonical names: " + ", ".join(canonical),
                    id="dunning.E008",
                ))
    errors.extend(_check_currency(user))
    fixed = _fixed_currency(user)
    if invoice is not None:
        computed = _computed_fields()
        names = [n for n in INVOICE_CANONICAL if n not in computed
                 and not (n == "currency" and fixed)]
        errors.extend(_check_invoice_fields(invoice, customer, user.get("INVOICE_FIELDS", {}), names))
        if invoice_model_label() != DEFAULT_INVOICE_MODEL:
            errors.extend(_check_implicit(invoice, user.get("INVOICE_FIELDS", {}), names,
                                          "INVOICE_FIELDS", "invoice", INVOICE_MEANING))
    if customer is not None:
        computed = _computed_fields("computed_customer_fields")
        errors.extend(_check_customer_fields(customer, user.get("CUSTOMER_FIELDS", {}), computed))
        if customer_model_label() != DEFAULT_CUSTOMER_MODEL:
            names = [n for n in CUSTOMER_CANONICAL
                     if n not in CUSTOMER_OPTIONAL and n not in computed]
            errors.extend(_check_implicit(customer, user.get("CUSTOMER_FIELDS", {}), names,
                                          "CUSTOMER_FIELDS", "customer", CUSTOMER_MEANING))
    # The optional history fields (dunning.history): checked when mapped or present.
    if invoice is not None:
        errors.extend(_check_history_fields(
            invoice, user.get("INVOICE_FIELDS", {}),
            [n for n in INVOICE_HISTORY if n not in _computed_fields()],
            "INVOICE_FIELDS", "invoice", ("dunning.E003", "dunning.E004")))
    if customer is not None:
        errors.extend(_check_history_fields(
            customer, user.get("CUSTOMER_FIELDS", {}), CUSTOMER_HISTORY,
            "CUSTOMER_FIELDS", "customer", ("dunning.E005", "dunning.E006")))
    return errors


def _check_history_fields(model, mapping, names, key, kind, ids):
    """Optional date fields of the customer's history: a mapped path must exist and be
    a DateField (or DateTimeField); unmapped and absent is fine (the figure is None)."""
    errors = []
    label = model._meta.label
    for name in names:
        explicit = isinstance(mapping, dict) and name in mapping
        path = _mapped(mapping, name)
        if path is None:
            continue  # mapped to None: the host has no such field
        if not isinstance(path, str) or not path:
            errors.append(Error(
                f"DUNNING[{key!r}][{name!r}] must be a field name or None.",
                hint=f"Map it to a date field of {label}, or to None.", id=ids[0],
            ))
            continue
        try:
            field = resolve_path(model, path)
        except (LookupError, AttributeError) as exc:
            if not explicit:
                continue  # an optional field the host does not have
            errors.append(Error(
                f"The {kind} model {label} has no field {path!r} (for {name!r}; "
                f"{exc.args[0]!r} does not exist).",
                hint=f"Set DUNNING[{key!r}][{name!r}] to the date field of {label} that "
                "holds it (a '__' path through a relation is allowed), or to None.",
                id=ids[0],
            ))
            continue
        if not isinstance(field, models.DateField):
            errors.append(Error(
                f"{label}.{path} ({type(field).__name__}) cannot hold the {kind}'s {name}: "
                "it must be a DateField or DateTimeField.",
                hint=f"Map DUNNING[{key!r}][{name!r}] to a date field, or to None.",
                id=ids[1],
            ))
    return errors


def _computed_fields(attribute="computed_invoice_fields"):
    """Invoice (or customer) fields a custom adapter computes itself (no host field to
    check)."""
    try:
        adapter = dunning_settings.ADAPTER
    except DunningConfigurationError:
        return frozenset()
    return frozenset(getattr(adapter, attribute, ()))


def _fixed_currency(user):
    """The currency of DUNNING["INVOICE_CURRENCY"] when it stands in for the invoices'
    currency column (set, and INVOICE_FIELDS maps no "currency")."""
    mapping = user.get("INVOICE_FIELDS", {})
    value = user.get("INVOICE_CURRENCY")
    if value is None or (isinstance(mapping, dict) and "currency" in mapping):
        return None
    return value


def is_iso_currency(code):
    """Is ``code`` an ISO 4217 currency code that Babel (CLDR) knows, in capitals?"""
    from babel.numbers import list_currencies

    return isinstance(code, str) and len(code) == 3 and code in list_currencies()


def _check_currency(user):
    """dunning.E090: DUNNING["INVOICE_CURRENCY"] is not an ISO 4217 code, or is set
    beside a mapped currency column (which of the two is meant?)."""
    value = user.get("INVOICE_CURRENCY")
    if value is None:
        return []
    mapping = user.get("INVOICE_FIELDS", {})
    if isinstance(mapping, dict) and "currency" in mapping:
        return [Error(
            f"DUNNING['INVOICE_CURRENCY'] = {value!r} is set, but DUNNING['INVOICE_FIELDS'] "
            f"also maps 'currency' to {mapping['currency']!r}: which one is the invoices' "
            "currency?",
            hint="Keep INVOICE_CURRENCY for a host whose invoices have no currency column; "
            "otherwise remove it and keep the mapping.",
            id="dunning.E090",
        )]
    if not is_iso_currency(value.strip() if isinstance(value, str) else value):
        return [Error(
            f"DUNNING['INVOICE_CURRENCY'] = {value!r} is not an ISO 4217 currency code.",
            hint="Three capital letters such as 'EUR', 'USD' or 'CHF', or None when "
            "INVOICE_FIELDS maps the invoices' currency column.",
            id="dunning.E090",
        )]
    return []


def _check_implicit(model, mapping, names, key, kind, meanings):
    """dunning.W090: on a swapped host, a required canonical field that no mapping names
    is read from the host's field of the same name. Its name may mean something else
    there (django-ledger's ``amount_due`` is the invoice total): say what it must hold."""
    if not isinstance(mapping, dict):
        return []  # reported by dunning.E008
    warnings = []
    label = model._meta.label
    for name in names:
        if name in mapping or name not in meanings or not _has_field(model, name):
            continue
        warnings.append(Warning(
            f"{label}.{name} is read as the {kind}'s {name!r} only because of its name: it "
            f"must hold {meanings[name]}.",
            hint=f"If it does, map it explicitly to silence this warning: "
            f"DUNNING[{key!r}][{name!r}] = {name!r}. If it does not, map the field that "
            f"does, or compute the value in an adapter (DUNNING['ADAPTER'], "
            f"computed_{kind}_fields).",
            id="dunning.W090",
        ))
    return warnings


def _has_field(model, path):
    try:
        resolve_path(model, path)
    except LookupError:
        return False
    return True


def _mapped(mapping, name):
    value = mapping.get(name, name) if isinstance(mapping, dict) else name
    return value


def _check_invoice_fields(invoice, customer, mapping, only=INVOICE_CANONICAL):
    errors = []
    label = invoice._meta.label
    for name in only:
        path = _mapped(mapping, name)
        if not isinstance(path, str) or not path:
            errors.append(Error(
                f"DUNNING['INVOICE_FIELDS'][{name!r}] must be a field name.",
                hint="Map it to a field of " + label, id="dunning.E003",
            ))
            continue
        try:
            field, keys = resolve_lookup(invoice, path)
        except LookupError as exc:
            errors.append(Error(
                f"The invoice model {label} has no field {path!r} (for {name!r}; "
                f"{exc.args[0]!r} does not exist).",
                hint=f"Set DUNNING['INVOICE_FIELDS'][{name!r}] to the field of {label} that "
                "holds it, or name an adapter in DUNNING['ADAPTER'].",
                id="dunning.E003",
            ))
            continue
        if name == "customer":
            if not (field.many_to_one or field.one_to_one) or (
                customer is not None and field.related_model is not customer
            ):
                errors.append(Error(
                    f"{label}.{path} must be a ForeignKey to the customer model "
                    f"{customer_model_label()}.",
                    hint="Point DUNNING['INVOICE_FIELDS']['customer'] at that ForeignKey.",
                    id="dunning.E004",
                ))
            continue
        if keys and name in INVOICE_JSON_OK:
            continue  # a key of a JSONField: its text
        classes, description = INVOICE_TYPES[name]
        if keys or not isinstance(field, classes) or (
            name == "due_date" and isinstance(field, models.DateTimeField)
        ):
            errors.append(Error(
                f"{label}.{path} ({type(field).__name__}) cannot hold the invoice's {name}: "
                f"it must be {description}.",
                hint="Map another field, or compute the value in an adapter (DUNNING['ADAPTER']).",
                id="dunning.E004",
            ))
    return errors


def _check_customer_fields(customer, mapping, computed=frozenset()):
    errors = []
    label = customer._meta.label
    for name in CUSTOMER_CANONICAL:
        if name in computed:
            continue  # the adapter's customer_expression computes it
        explicit = isinstance(mapping, dict) and name in mapping
        path = _mapped(mapping, name)
        if path is None and name in CUSTOMER_OPTIONAL:
            continue
        try:
            field, keys = resolve_lookup(customer, path)
        except (LookupError, AttributeError):
            if name in CUSTOMER_OPTIONAL and not explicit:
                continue  # an optional field the host does not have
            errors.append(Error(
                f"The customer model {label} has no field {path!r} (for {name!r}).",
                hint=f"Set DUNNING['CUSTOMER_FIELDS'][{name!r}] to the field of {label} that "
                "holds it (a '__' path through a relation, or into the keys of a JSONField, "
                "is allowed).",
                id="dunning.E005",
            ))
            continue
        if keys:
            continue  # a key of a JSONField (additional_info__language): read as text
        if not isinstance(field, CUSTOMER_TYPES[name]):
            errors.append(Error(
                f"{label}.{path} ({type(field).__name__}) cannot hold the customer's {name}: "
                "it must be a CharField, EmailField or TextField.",
                hint=f"Map DUNNING['CUSTOMER_FIELDS'][{name!r}] to a text field.",
                id="dunning.E006",
            ))
    return errors


#: The outbox's numeric settings: (key, smallest allowed value, what it means).
OUTBOX_NUMBERS = [
    ("OUTBOX_STALE_AFTER", 1, "seconds after which a sending worker is taken for dead"),
    ("OUTBOX_MAX_ATTEMPTS", 1, "tries of a message before it fails for good"),
    ("OUTBOX_RETRY_BACKOFF", 0, "seconds before the first retry"),
    ("OUTBOX_RETRY_MAX_DELAY", 0, "seconds a retry waits at most"),
]

#: The fault-handling settings of the outbox and the runs (dunning.E060).
FAULT_NUMBERS = [
    ("OUTBOX_RETRY_HORIZON", 60, "seconds a failing message is retried"),
    ("OUTBOX_CHUNK_SIZE", 1, "messages handed to a channel at once"),
    ("OUTBOX_BREAKER_BACKOFF", 1, "seconds a channel pauses after its provider could not "
     "be reached"),
    ("OUTBOX_BREAKER_MAX_DELAY", 1, "seconds a channel pauses at most"),
    ("RUN_LEASE_SECONDS", 1, "seconds after which a run that stopped renewing its lease "
     "is taken for dead"),
]


def _check_fault_settings():
    """dunning.E060 (numbers), dunning.E061 (the idempotency key's esp_extra key)."""
    errors = []
    for key, least, meaning in FAULT_NUMBERS:
        value = getattr(dunning_settings, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            errors.append(Error(
                f"DUNNING['{key}'] must be a whole number of at least {least} ({meaning}), "
                f"not {value!r}.",
                hint=f"The default is {dunning_settings.defaults[key]!r}.", id="dunning.E060",
            ))
    extra = dunning_settings.OUTBOX_IDEMPOTENCY_ESP_EXTRA
    if extra is not None and not (isinstance(extra, str) and extra.strip()):
        errors.append(Error(
            f"DUNNING['OUTBOX_IDEMPOTENCY_ESP_EXTRA'] must be None or the name of the ESP's "
            f"idempotency field, not {extra!r}.",
            hint="E.g. 'idempotence_key' for Unisender Go; None when the ESP takes none.",
            id="dunning.E061",
        ))
    return errors


def _check_outbox_numbers():
    errors = []
    for key, least, meaning in OUTBOX_NUMBERS:
        value = getattr(dunning_settings, key)
        if key == "OUTBOX_MAX_ATTEMPTS" and value is None:
            continue  # no count: the retry horizon alone decides
        if isinstance(value, bool) or not isinstance(value, int | float) or value < least:
            errors.append(Error(
                f"DUNNING['{key}'] must be a number of at least {least} ({meaning}), "
                f"not {value!r}.",
                hint=f"The default is {dunning_settings.defaults[key]!r}.", id="dunning.E013",
            ))
    return errors


def _check_sms():
    """The SMS channel's settings (dunning.channels.sms): dunning.E020-E022."""
    errors = code_setting_errors("SMS_BACKEND")
    options = dunning_settings.SMS_BACKEND_OPTIONS
    if options is not None and not isinstance(options, dict):
        errors.append(Error(
            f"DUNNING['SMS_BACKEND_OPTIONS'] must be a dict, not {options!r}.",
            hint="The keyword arguments of the backend, e.g. {'account_sid': '...'}.",
            id="dunning.E020",
        ))
    region = dunning_settings.SMS_DEFAULT_REGION
    if region is not None:
        try:
            from phonenumbers import SUPPORTED_REGIONS
        except ImportError:
            errors.append(Error(
                "DUNNING['SMS_DEFAULT_REGION'] is set but the phonenumbers library is not "
                "installed.", hint="pip install phonenumbers", id="dunning.E021",
            ))
        else:
            if not isinstance(region, str) or region.upper() not in SUPPORTED_REGIONS:
                errors.append(Error(
                    f"DUNNING['SMS_DEFAULT_REGION'] = {region!r} is not a region phone "
                    "numbers know.",
                    hint="An ISO 3166-1 alpha-2 code such as 'DE' or 'US', or None (numbers "
                    "must then be written with their country code, +49 ...).",
                    id="dunning.E021",
                ))
    segments = dunning_settings.SMS_MAX_SEGMENTS
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
        errors.append(Error(
            f"DUNNING['SMS_MAX_SEGMENTS'] must be an integer of at least 1, not {segments!r}.",
            hint="The default is 2 (up to 306 GSM-7 or 134 UCS-2 characters).",
            id="dunning.E022",
        ))
    return errors


#: Dotted-path settings checked with their feature's settings, under that check's id;
#: every other one of conf.CODE_SETTINGS is dunning.E092.
CODE_SETTING_IDS = {
    "ADAPTER": "dunning.E007",
    "EMAIL_CHANNEL": "dunning.E007",
    "SMS_BACKEND": "dunning.E020",
    "CUSTOMER_ADDRESS": "dunning.E031",
}
CODE_HINTS = {
    "ADAPTER": "The dotted path of a dunning.hosts.FieldMapAdapter subclass (docs/hosts.md).",
    "SMS_BACKEND": "E.g. 'dunning.channels.sms_backends.twilio.SmsBackend' (pip install "
                   "django-dunning[twilio]).",
    "PAYMENT_BACKEND": "E.g. 'dunning.payments.stripe_backend.StripeBackend' (pip install "
                       "django-dunning[stripe]), or None.",
    "RISK_SCORE": "The dotted path of a function f(customer_row, balances) -> a number or "
                  "None, or None.",
    "BALANCE_HISTORY": "The dotted path of a function f(invoice_pks) -> {pk: [(date, "
                       "balance), ...]}, or None (docs/fees.md).",
    "INAPP_CUSTOMER_FOR_REQUEST": "The dotted path of a function f(request) -> a customer, "
                                  "its pk or None, or None (docs/inapp.md).",
    "CUSTOMER_ADDRESS": "The dotted path of a function f(customer) -> str.",
    "PORTAL_PAY_URL": "An absolute URL format ('https://pay.example/{customer}?t={token}') "
                      "or the dotted path of a function (customer, invoices, token) -> URL.",
    "API_AUTHENTICATION_CLASSES": "A list of dotted paths of DRF authentication classes, "
                                  "or None for token and session authentication.",
}
CODE_HINTS["PORTAL_UPDATE_PAYMENT_URL"] = CODE_HINTS["PORTAL_PAY_URL"]


def code_setting_errors(key):
    """The errors of one dotted-path setting of conf.IMPORT_STRINGS: each path is imported
    now (``manage.py check``), not at the first run, request or charge that needs it, and
    must name what the setting needs (a subclass of its base class implementing what the
    base requires, or a callable), as conf.imported() checks it when it is used."""
    _kind, _base, container = IMPORT_STRINGS[key]
    error_id = CODE_SETTING_IDS.get(key, "dunning.E092")
    user = dunning_settings.user_settings
    value = user.get(key, DEFAULTS[key])
    what = setting_needs(key)
    hint = CODE_HINTS.get(key) or f"Give the dotted path of {what}."

    def error(message):
        return Error(message, hint=hint, id=error_id)

    if value is None or value == "":
        return []
    if container == "dict":
        if not isinstance(value, dict):
            return [error(f"DUNNING['{key}'] must be a dict of dotted paths by key, not "
                          f"{value!r}.")]
        entries = list(value.items())
    elif container == "list":
        if not isinstance(value, list | tuple):
            return [error(f"DUNNING['{key}'] must be a list of dotted paths, not {value!r}.")]
        entries = list(enumerate(value))
    elif container == "url":
        if isinstance(value, str) and not is_dotted_path(value):
            return []  # a URL format: checked where the portal is
        if not isinstance(value, str) and not callable(value):
            return [error(f"DUNNING['{key}'] must be a URL format or a dotted path, not "
                          f"{value!r}.")]
        entries = [(None, value)]
    else:
        entries = [(None, value)]
    errors = []
    for entry, path in entries:
        name = setting_name(key, entry)
        if not isinstance(path, str) and not callable(path) or path == "":
            errors.append(error(f"{name} must be a dotted path, not {path!r}."))
            continue
        try:
            target = import_setting(key, path, entry)
        except DunningConfigurationError as exc:
            message = str(exc)
            if container == "url":
                message += " (a URL must start with its scheme, https://...)"
            errors.append(error(message))
            continue
        try:
            check_imported(key, target, path, entry)
        except DunningConfigurationError as exc:
            errors.append(error(str(exc)))
    return errors


@register("dunning")
def check_settings(app_configs=None, **kwargs):
    errors = []
    try:
        batch = dunning_settings.BATCH_SIZE
        if not isinstance(batch, int) or batch < 1:
            errors.append(Error(
                f"DUNNING['BATCH_SIZE'] must be a positive integer, not {batch!r}.",
                hint="The default is 500.", id="dunning.E010",
            ))
    except DunningConfigurationError:
        pass
    try:
        errors.extend(_check_outbox_numbers())
        errors.extend(_check_fault_settings())
    except DunningConfigurationError:
        pass  # reported by dunning.E009
    try:
        errors.extend(_check_sms())
    except DunningConfigurationError:
        pass  # reported by dunning.E009
    try:
        for key in IMPORT_STRINGS:
            if key not in CODE_SETTING_IDS:
                errors.extend(code_setting_errors(key))
    except DunningConfigurationError:
        pass  # reported by dunning.E009
    try:
        own = dunning_settings.user_settings.get("FROM_EMAIL")
    except DunningConfigurationError:
        own = None  # reported by dunning.E009
    sender = own or getattr(settings, "DEFAULT_FROM_EMAIL", None)
    if not sender:
        errors.append(Warning(
            "Dunning email has no sender address.",
            hint="Set DUNNING['FROM_EMAIL'] or DEFAULT_FROM_EMAIL.", id="dunning.W002",
        ))
    elif isinstance(sender, str) and parseaddr(sender)[1].lower() == DJANGO_DEFAULT_FROM_EMAIL:
        where = "DUNNING['FROM_EMAIL']" if own else "DEFAULT_FROM_EMAIL"
        errors.append(Warning(
            f"Dunning email would be sent from {sender!r} ({where}, Django's placeholder): "
            "customers cannot reply to it and most mail providers refuse or bin it.",
            hint="Set DUNNING['FROM_EMAIL'] (or DEFAULT_FROM_EMAIL) to the address reminders "
            "come from, e.g. 'Billing <billing@example.com>'.",
            id="dunning.W091",
        ))
    return errors


@register("dunning", deploy=True)
def check_webhook_secret(app_configs=None, **kwargs):
    """Delivery tracking trusts what anymail's webhooks report (a bounce suppresses an
    address): in production the webhooks must be authenticated."""
    from anymail.utils import get_anymail_setting

    if settings.DEBUG or get_anymail_setting("webhook_secret", default=None):
        return []
    return [Error(
        "django-anymail's WEBHOOK_SECRET is not set: anyone can post delivery events "
        "(bounces suppress addresses and flag cases).",
        hint='Set ANYMAIL = {"WEBHOOK_SECRET": "random:secret", ...} and give the same '
        "credentials to your ESP's webhook URL.",
        id="dunning.E011",
    )]


@register("dunning")
def check_admin_dependencies(app_configs=None, **kwargs):
    """The dunning admin uses django-import-export's admin templates."""
    from django.apps import apps

    if apps.is_installed("django.contrib.admin") and not apps.is_installed("import_export"):
        return [Error(
            "The dunning admin needs django-import-export's app in INSTALLED_APPS.",
            hint='Add "import_export" to INSTALLED_APPS (the package is installed with '
            "django-dunning).",
            id="dunning.E012",
        )]
    return []


#: The outbound webhooks' numeric settings (dunning.webhooks): key -> (is the value
#: allowed, what is allowed, what it means).
WEBHOOK_NUMBERS = {
    "WEBHOOK_TIMEOUT": (lambda v: v > 0, "a number above 0", "seconds a POST may take"),
    "WEBHOOK_MAX_ATTEMPTS": (lambda v: isinstance(v, int) and v >= 1,
                             "a whole number of at least 1",
                             "tries of a delivery before it fails for good"),
    "WEBHOOK_RETRY_BACKOFF": (lambda v: v >= 0, "a number of at least 0",
                              "seconds before the first retry"),
    "WEBHOOK_RETRY_MAX_DELAY": (lambda v: v >= 0, "a number of at least 0",
                                "seconds a retry waits at most"),
}


@register("dunning")
def check_webhook_settings(app_configs=None, **kwargs):
    """The numbers of the outbound webhooks (docs/webhooks.md): dunning.E014."""
    errors = []
    for key, (allowed, what, meaning) in WEBHOOK_NUMBERS.items():
        try:
            value = getattr(dunning_settings, key)
        except DunningConfigurationError:
            return []  # reported by dunning.E009
        if isinstance(value, bool) or not isinstance(value, int | float) or not allowed(value):
            errors.append(Error(
                f"DUNNING['{key}'] must be {what} ({meaning}), not {value!r}.",
                hint=f"The default is {dunning_settings.defaults[key]!r}.", id="dunning.E014",
            ))
    return errors


@register("dunning")
def check_letter_settings(app_configs=None, **kwargs):
    """The letter channel's settings (dunning.channels.letter, docs/letters.md):
    dunning.E030 (page size), E031 (the customer's address), E032 (storage alias)."""
    from django.apps import apps

    from .channels.letter import PAGE_GEOMETRY, page_size

    try:
        user = dunning_settings.user_settings
        size = dunning_settings.LETTER_PAGE_SIZE
    except DunningConfigurationError:
        return []  # reported by dunning.E009
    errors = []
    if page_size() is None:
        errors.append(Error(
            f"DUNNING['LETTER_PAGE_SIZE'] = {size!r} is not a page size letters know.",
            hint="One of: " + ", ".join(repr(k) for k in PAGE_GEOMETRY) + " (the default is 'A4').",
            id="dunning.E030",
        ))
    if user.get("CUSTOMER_ADDRESS"):
        errors.extend(code_setting_errors("CUSTOMER_ADDRESS"))
    elif "CUSTOMER_ADDRESS_FIELD" in user:
        path = user["CUSTOMER_ADDRESS_FIELD"]
        try:
            customer = apps.get_model(customer_model_label())
        except (LookupError, ValueError):
            customer = None  # reported by dunning.E001
        if customer is not None:
            try:
                field = resolve_path(customer, path) if isinstance(path, str) and path else None
            except LookupError:
                field = None
            if field is None or not isinstance(field, TEXT_FIELDS):
                errors.append(Error(
                    f"DUNNING['CUSTOMER_ADDRESS_FIELD'] = {path!r} is not a text field of "
                    f"the customer model {customer._meta.label}.",
                    hint="Name the CharField or TextField that holds the postal address (a "
                    "'__' path through a relation is allowed), or set DUNNING['CUSTOMER_ADDRESS'].",
                    id="dunning.E031",
                ))
    alias = user.get("LETTER_STORAGE")
    if alias and alias not in (getattr(settings, "STORAGES", None) or {}):
        errors.append(Error(
            f"DUNNING['LETTER_STORAGE'] = {alias!r} is not an alias in settings.STORAGES.",
            hint="Name a storage of settings.STORAGES, or None for the default storage.",
            id="dunning.E032",
        ))
    return errors


@register("dunning")
def check_agency_settings(app_configs=None, **kwargs):
    """dunning.E040: DUNNING["AGENCIES"] / DEFAULT_AGENCY that an `agency` step could not
    hand over with (checked here rather than at the first hand-over)."""
    from .conf import agency_settings
    from .exceptions import DunningConfigurationError

    try:
        agencies = dunning_settings.AGENCIES or {}
        default = dunning_settings.DEFAULT_AGENCY
    except DunningConfigurationError:
        return []  # reported by dunning.E009
    keys = list(agencies) if isinstance(agencies, dict) else [None]
    errors = []
    for key in keys + ([default] if default and default not in keys else []):
        try:
            agency_settings(key or "")
        except DunningConfigurationError as exc:
            errors.append(Error(str(exc), hint="See docs/agency.md.", id="dunning.E040"))
            if key is None:
                break
    return errors


@register("dunning")
def check_interest_rates(app_configs=None, **kwargs):
    """dunning.E041: DUNNING["INTEREST_RATES"] tables that do not parse; dunning.W042
    (with ``check --database``, below): a policy's statutory interest rule whose rate
    table has no rate for the current half-year."""
    from .fees import INTEREST_KINDS, parse_rate_table

    try:
        tables = dunning_settings.INTEREST_RATES or {}
    except DunningConfigurationError:
        return []
    errors = []
    if not isinstance(tables, dict):
        tables = {None: tables}
    for kind, table in tables.items():
        try:
            if kind not in INTEREST_KINDS or kind == "fixed":
                raise ValueError(f"{kind!r} is not a statutory interest kind "
                                 "(eu-directive, de-bgb-288)")
            parse_rate_table(table)
        except ValueError as exc:
            errors.append(Error(f"DUNNING['INTEREST_RATES'][{kind!r}]: {exc}",
                                hint="See docs/fees.md.", id="dunning.E041"))
    return errors


@register(Tags.database, "dunning")
def check_interest_rates_current(app_configs=None, databases=None, **kwargs):
    """dunning.W042: an active policy's statutory interest rule whose rate table ends
    before the current half-year (the last rate keeps applying; a new one is published
    every half-year). Runs with ``manage.py check --database default``; the run logs the
    same warning."""
    from .engine.charging import stale_rate_tables

    if not databases:
        return []
    try:
        stale = stale_rate_tables(using=next(iter(databases)))
    except Exception:  # noqa: BLE001 - not migrated yet: nothing to check
        return []
    return [Warning(message, hint="Add the published rate to DUNNING['INTEREST_RATES'] "
                                  "(docs/fees.md).", id="dunning.W042")
            for message in stale]


@register("dunning")
def check_stripe_webhook_secret(app_configs=None, **kwargs):
    """The Stripe webhook's signing secret (dunning.payments.stripe_webhook):
    dunning.E080 when it is not text, dunning.W080 when it does not look like one."""
    try:
        secret = dunning_settings.STRIPE_WEBHOOK_SECRET
    except DunningConfigurationError:
        return []  # reported by dunning.E009
    if secret is None or secret == "":
        return []
    if not isinstance(secret, str):
        return [Error(
            f"DUNNING['STRIPE_WEBHOOK_SECRET'] must be text, not {type(secret).__name__}.",
            hint="Copy the endpoint's signing secret (\"whsec_...\") from Stripe's dashboard, "
            "or set None to settle pending payments by polling only.",
            id="dunning.E080",
        )]
    if not secret.startswith("whsec_") or secret.strip() != secret:
        return [Warning(
            "DUNNING['STRIPE_WEBHOOK_SECRET'] does not look like a Stripe signing secret "
            "(\"whsec_...\"): every event would be refused as badly signed.",
            hint="Copy the signing secret of the endpoint, not the API key.",
            id="dunning.W080",
        )]
    return []


@register("dunning")
def check_render_limits(app_configs=None, **kwargs):
    """The limits of a message's render (dunning.sandbox, docs/templates.md):
    dunning.E070 (RENDER_TIME_LIMIT), dunning.E071 (RENDER_SIZE_LIMITS)."""
    from .models.policy import Channel

    try:
        seconds = dunning_settings.RENDER_TIME_LIMIT
        limits = dunning_settings.RENDER_SIZE_LIMITS
    except DunningConfigurationError:
        return []  # reported by dunning.E009
    errors = []
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 300:
        errors.append(Error(
            f"DUNNING['RENDER_TIME_LIMIT'] must be a number of seconds above 0 and at most "
            f"300 (the time one message's render may take), not {seconds!r}.",
            hint="The default is 2.", id="dunning.E070",
        ))
    if not isinstance(limits, dict):
        errors.append(Error(
            f"DUNNING['RENDER_SIZE_LIMITS'] must be a dict of bytes by channel, not {limits!r}.",
            hint="For example {'email': 262144, 'sms': 4096}; a channel left out keeps its "
            "default.", id="dunning.E071",
        ))
        return errors
    channels = set(Channel.values)
    for channel, value in limits.items():
        if channel not in channels:
            errors.append(Error(
                f"DUNNING['RENDER_SIZE_LIMITS'] has a limit for {channel!r}, which is not a "
                "channel.", hint="Channels: " + ", ".join(sorted(channels)),
                id="dunning.E071",
            ))
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.append(Error(
                f"DUNNING['RENDER_SIZE_LIMITS'][{channel!r}] must be a whole number of bytes "
                f"of at least 1, not {value!r}.",
                hint=f"The default is {DEFAULTS['RENDER_SIZE_LIMITS'].get(channel)!r}.",
                id="dunning.E071",
            ))
    return errors


#: Whole-number settings of promises and disputes (dunning.E100): key, least, most, meaning.
STALLING_NUMBERS = [
    ("PORTAL_PROMISE_MAX_BROKEN", 1, 100,
     "broken promises after which a customer can no longer promise on the self-service page"),
    ("DISPUTE_ESCALATE_AFTER_DAYS", 1, 365, "days an open dispute waits before it goes to staff"),
]


@register("dunning")
def check_stalling_settings(app_configs=None, **kwargs):
    """What keeps the self-service page from stalling collection (docs/portal.md):
    dunning.E100 (PORTAL_PROMISE_MAX_BROKEN, DISPUTE_ESCALATE_AFTER_DAYS),
    dunning.E101 (PORTAL_PROMISE_MIN_SHARE)."""
    from .conf import share_setting

    errors = []
    try:
        for key, least, most, meaning in STALLING_NUMBERS:
            value = getattr(dunning_settings, key)
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
                errors.append(Error(
                    f"DUNNING['{key}'] must be a whole number from {least} to {most} "
                    f"({meaning}), not {value!r}.",
                    hint=f"The default is {DEFAULTS[key]!r}.", id="dunning.E100",
                ))
        try:
            share_setting("PORTAL_PROMISE_MIN_SHARE")
        except DunningConfigurationError as exc:
            errors.append(Error(
                str(exc), hint=f"The default is {DEFAULTS['PORTAL_PROMISE_MIN_SHARE']!r} (a "
                "quarter of the balance); \"0\" accepts any amount.", id="dunning.E101",
            ))
    except DunningConfigurationError:
        return []  # settings.DUNNING is no dict: reported by dunning.E009
    return errors


@functools.cache
def swappable_foreign_keys():
    """``{setting: [(table, column), ...]}``: the columns of dunning's tables that are
    foreign keys to a swappable model (DUNNING_CUSTOMER_MODEL, DUNNING_INVOICE_MODEL,
    AUTH_USER_MODEL). Worked out once, by DunningConfig.ready(), under the settings the
    models were bound with (a swapped-in host model is recognised through the setting
    that names it then)."""
    from django.apps import apps

    columns = {}
    for model in apps.get_app_config("dunning").get_models():
        meta = model._meta
        if meta.proxy or not meta.managed or meta.swapped:
            continue
        for field in meta.local_concrete_fields:
            setting = getattr(field, "swappable_setting", None) if field.is_relation else None
            if setting and field.db_constraint:
                pair = (meta.db_table, field.column)
                if pair not in columns.setdefault(setting, []):
                    columns[setting].append(pair)
    return columns


@register(Tags.database, "dunning")
def check_foreign_key_targets(app_configs=None, databases=None, **kwargs):
    """dunning.E091: a foreign key of dunning's tables references another table than the
    model its setting names now (DUNNING_CUSTOMER_MODEL / DUNNING_INVOICE_MODEL changed
    after the first ``migrate``): every run would fail with ``IntegrityError: FOREIGN KEY
    constraint failed``. Runs under ``migrate`` and ``check --database default``; the
    migration state cannot tell (the migrations follow the setting), the database can."""
    from django.apps import apps
    from django.db import DatabaseError, connections

    if not databases:
        return []
    errors = []
    for alias in databases:
        connection = connections[alias]
        try:
            with connection.cursor() as cursor:
                tables = set(connection.introspection.table_names(cursor))
                found = {}
                for setting, columns in swappable_foreign_keys().items():
                    for table, column in columns:
                        if table not in tables:
                            continue  # not migrated yet: the first migrate creates it right
                        relations = connection.introspection.get_relations(cursor, table)
                        if column in relations:
                            found.setdefault(setting, []).append(
                                (table, column, relations[column][1]))
        except DatabaseError:
            continue  # the database cannot be reached: Django's own checks say so
        for setting, references in found.items():
            label = getattr(settings, setting, None) or {
                CUSTOMER_MODEL_SETTING: DEFAULT_CUSTOMER_MODEL,
                INVOICE_MODEL_SETTING: DEFAULT_INVOICE_MODEL,
            }.get(setting)
            try:
                expected = apps.get_model(label)._meta.db_table
            except (LookupError, ValueError, TypeError):
                continue  # reported by dunning.E001 / E002 (or Django's auth checks)
            wrong = [(t, c, target) for t, c, target in references
                     if target.lower() != expected.lower()]
            if not wrong:
                continue
            targets = sorted({target for _t, _c, target in wrong})
            columns = ", ".join(f"{t}.{c} -> {target}" for t, c, target in wrong)
            errors.append(Error(
                f"{setting} = {label!r} (table {expected}), but dunning's tables in the "
                f"database {alias!r} were created for another model: {columns}. Every run "
                "would fail with 'FOREIGN KEY constraint failed'.",
                hint=f"{setting} was changed after the first migrate. Set it back to the model "
                f"whose table is {' / '.join(targets)}. To move dunning to {label}: with the "
                "old setting run 'manage.py migrate dunning zero' (this drops dunning's tables "
                f"and their data), then set {setting} again and run 'manage.py migrate'.",
                id="dunning.E091",
            ))
    return errors
