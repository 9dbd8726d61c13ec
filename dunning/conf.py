"""Settings of django-dunning, read lazily from ``settings.DUNNING``.

Modelled on Django REST framework's ``api_settings``: defaults first, then the host's
``DUNNING`` dict, dotted paths imported on first use, and a reload on ``setting_changed``
so that ``override_settings`` works in tests. Nothing is read at import time and nothing
is ever written to ``django.conf.settings``.
"""

from typing import NamedTuple

from django.conf import settings
from django.utils.module_loading import import_string

from .exceptions import DunningConfigurationError
from .failures import describe

CUSTOMER_MODEL_SETTING = "DUNNING_CUSTOMER_MODEL"
INVOICE_MODEL_SETTING = "DUNNING_INVOICE_MODEL"
DEFAULT_CUSTOMER_MODEL = "dunning.Customer"
DEFAULT_INVOICE_MODEL = "dunning.Invoice"

DEFAULTS = {
    # Canonical name -> host field name or ``__`` lookup path.
    "INVOICE_FIELDS": {},
    "CUSTOMER_FIELDS": {},
    # The one ISO 4217 currency (e.g. "EUR") of every invoice, for a host whose invoice
    # model has no currency column; used when INVOICE_FIELDS maps no "currency".
    "INVOICE_CURRENCY": None,
    # The class that reads the host's models; see dunning.hosts.HostAdapter.
    "ADAPTER": "dunning.hosts.FieldMapAdapter",
    # The class that sends email; see dunning.channels.base.Channel.
    "EMAIL_CHANNEL": "dunning.channels.email.EmailChannel",
    # The other channels a step can use, by key (dotted paths of Channel subclasses, built
    # once per run). A step's fallback channel must be one of these or "email".
    "CHANNELS": {
        "sms": "dunning.channels.sms.SmsChannel",
        "letter": "dunning.channels.letter.LetterChannel",
        "in_app": "dunning.channels.inapp.InAppChannel",
        "call": "dunning.channels.call.CallChannel",
    },
    # Sender of dunning email; None means settings.DEFAULT_FROM_EMAIL.
    "FROM_EMAIL": None,
    "REPLY_TO": [],
    # -- text messages (dunning.channels.sms, docs/channels.md) --
    # Dotted path of a dunning.channels.sms_backends.base.BaseSmsBackend subclass, and the
    # keyword arguments it is built with.
    "SMS_BACKEND": "dunning.channels.sms_backends.console.SmsBackend",
    "SMS_BACKEND_OPTIONS": {},
    # Sender of text messages (a number in E.164 or an alphanumeric sender id); "": the
    # backend's own.
    "SMS_FROM": "",
    # ISO 3166 region (e.g. "DE") for phone numbers written without a country code;
    # None: only numbers in international form (+49 ...) are accepted.
    "SMS_DEFAULT_REGION": None,
    # Segments one message may take (160 GSM-7 / 70 UCS-2 characters in one, 153 / 67
    # each in a longer one); longer texts are shortened, their link kept whole.
    "SMS_MAX_SEGMENTS": 2,
    # Folder of the file backend (one file per batch).
    "SMS_FILE_PATH": None,
    # Key of the policy new cases get when no other applies.
    "DEFAULT_POLICY": "standard",
    # Policy rules (dunning.segments): dotted path of f(customer_row, balances) -> a risk
    # score (a number, or None when unknown) for rules with a risk band; earlier cases
    # from which a customer counts as chronically late.
    "RISK_SCORE": None,
    "CHRONIC_AFTER": 3,
    # -- collections agencies (dunning.agency, docs/agency.md) --
    # key -> {"name": "Inkasso Nord", "format": "csv" | "json", "export_dir": a folder or
    # None}: the agencies a hand-over step can give cases to; the step names one by key,
    # else DEFAULT_AGENCY (None: the only agency, when exactly one is set up).
    "AGENCIES": {},
    "DEFAULT_AGENCY": None,
    # -- reminder fees and late-payment interest (dunning.fees, docs/fees.md) --
    # Rate tables for the statutory interest rules, by kind ({"eu-directive": {"2026-07-01":
    # "2.15", ...}, "de-bgb-288": {...}}): used by every policy whose interest rule gives
    # no "rates" of its own, instead of the tables shipped in dunning.fees. Keep them
    # current: a new rate is published for every half-year.
    "INTEREST_RATES": {},
    # Dotted path of f(invoice_pks) -> {invoice pk: [(date, open principal), ...]}: the
    # invoices' balance history from the host's own ledger, with real payment dates. None:
    # dunning records the balances it sees at each run (a payment counts from that run).
    "BALANCE_HISTORY": None,
    # Days an open dispute may wait before it goes to staff (the case is flagged "needs a
    # person"). A dispute holds only the disputed invoice; the rest of the debt is dunned.
    "DISPUTE_ESCALATE_AFTER_DAYS": 14,
    # Cases handled per transaction.
    "BATCH_SIZE": 500,
    # Worker processes that render messages during big runs (1: render in the run's own
    # process; None: one per core, at most 4). See dunning/engine/pool.py.
    "RENDER_PROCESSES": None,
    # -- limits of a message's render (dunning.sandbox, docs/templates.md) --
    # Seconds the render of one message (all its parts) may take; a message over it fails
    # alone with its reason and its case is flagged for a person.
    "RENDER_TIME_LIMIT": 2,
    # Largest rendered part (subject, text, HTML body) per channel, in bytes of UTF-8; a
    # channel left out keeps its default. A template larger than its channel's limit is
    # refused when it is saved.
    "RENDER_SIZE_LIMITS": {
        "email": 256 * 1024,
        "sms": 4 * 1024,
        "letter": 64 * 1024,
        "in_app": 16 * 1024,
        "call": 16 * 1024,
    },
    # Shard tasks a scheduled run (dunning.tasks.run under django-q2) splits its due cases
    # over; None: Q_CLUSTER["workers"] of the cluster that runs the tick.
    "SHARDS": None,
    # Seconds after which a message left queued by a crashed run is sent by a later run,
    # and after which a message still "sending" (its worker died while handing it to the
    # ESP) is marked "state unknown, check" for a person. Keep it above the longest time
    # the email backend may take over one batch. See docs/outbox.md.
    "OUTBOX_STALE_AFTER": 600,
    # Seconds a message that keeps failing for a transient reason (a timeout, an ESP
    # outage, SMTP 4xx, a provider that cannot be reached) is tried again, counted from
    # its first failure; past it the message fails with its last error and the case
    # needs a person. See docs/outbox.md.
    "OUTBOX_RETRY_HORIZON": 24 * 60 * 60,
    # Optional: charged tries (the provider was reached) after which a message fails even
    # within the horizon; None: the horizon alone decides (the default since 0020).
    "OUTBOX_MAX_ATTEMPTS": None,
    # Seconds before the first retry; each further retry waits twice as long as the one
    # before, but never longer than OUTBOX_RETRY_MAX_DELAY seconds.
    "OUTBOX_RETRY_BACKOFF": 60,
    "OUTBOX_RETRY_MAX_DELAY": 60 * 60,
    # Messages handed to a channel at once; the outcome of each chunk is recorded as soon
    # as the provider returns, so a worker killed while sending leaves at most one chunk
    # "state unknown".
    "OUTBOX_CHUNK_SIZE": 50,
    # The channel's circuit breaker: after a connection to the provider could not be
    # opened, the channel's messages wait OUTBOX_BREAKER_BACKOFF seconds, doubling for
    # every further failed probe, at most OUTBOX_BREAKER_MAX_DELAY seconds.
    "OUTBOX_BREAKER_BACKOFF": 30,
    "OUTBOX_BREAKER_MAX_DELAY": 10 * 60,
    # For an ESP whose send API takes an idempotency key: the key of anymail's esp_extra
    # that carries it (e.g. "idempotence_key" for Unisender Go); None: the key travels in
    # the message's metadata (dunning_idempotency_key) only.
    "OUTBOX_IDEMPOTENCY_ESP_EXTRA": None,
    # Seconds a run's lease lasts; the run renews it while it works. A "running" run
    # whose lease has expired (its process was killed) is marked abandoned by the next
    # run or drain.
    "RUN_LEASE_SECONDS": 15 * 60,
    # -- outbound webhooks (dunning.webhooks, docs/webhooks.md) --
    # Seconds a POST to an endpoint may take; tries of a delivery before it fails; seconds
    # before its first retry, doubling for every further one up to WEBHOOK_RETRY_MAX_DELAY.
    "WEBHOOK_TIMEOUT": 10,
    "WEBHOOK_MAX_ATTEMPTS": 12,
    "WEBHOOK_RETRY_BACKOFF": 60,
    "WEBHOOK_RETRY_MAX_DELAY": 6 * 60 * 60,
    # Shown in every message: name, email, phone, website, address, payment_url,
    # update_payment_url.
    "COMPANY": {},
    # Language of messages when the customer has none (None: settings.LANGUAGE_CODE).
    "DEFAULT_LANGUAGE": None,
    # -- the REST API (dunning.urls, docs/api.md) --
    # True: a collector (a member of API_COLLECTORS_GROUP who is not a superuser) sees and
    # acts on the cases assigned to them only; any other case is "not found" (404).
    "API_COLLECTORS_SEE_ASSIGNED_ONLY": False,
    "API_COLLECTORS_GROUP": "Collections",
    # Page size of every list (?page_size= may ask for up to API_MAX_PAGE_SIZE).
    "API_PAGE_SIZE": 50,
    "API_MAX_PAGE_SIZE": 500,
    # Throttle rates of the write endpoints per user, by DRF throttle scope; a rate in
    # REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] for the same scope wins; None: no limit.
    "API_THROTTLE_RATES": {"dunning_write": "120/minute", "dunning_ingest": "60/minute"},
    # Rows one POST to the invoice bulk endpoint may carry.
    "API_BULK_MAX_ROWS": 1000,
    # Authentication classes of the API (dotted paths); None: token authentication (when
    # rest_framework.authtoken is installed) and session authentication.
    "API_AUTHENTICATION_CLASSES": None,
    # -- retries of failed payments (dunning.payments, docs/payments.md) --
    # Dotted path of a dunning.payments.base.PaymentBackend subclass (None: failed
    # payments are not retried), and the keyword arguments it is built with.
    "PAYMENT_BACKEND": None,
    "PAYMENT_BACKEND_OPTIONS": {},
    # Days after the failure on which it is retried (moved to a payday, the 1st or 15th,
    # when one falls before the next offset), at PAYMENT_RETRY_HOUR in the customer's
    # time zone: for a policy without retry steps of its own (the admin's "payment
    # retry steps"; the shipped policy has 1, 3, 5, 7).
    "PAYMENT_RETRY_OFFSETS": [1, 3, 5, 7],
    "PAYMENT_RETRY_HOUR": 9,
    # Charges of one payment method within any 30 days, never exceeded (Visa allows 15
    # retries in 30 days, Mastercard 10; stay below both).
    "PAYMENT_MAX_ATTEMPTS_PER_METHOD_30_DAYS": 8,
    # The signing secret ("whsec_...") of the Stripe webhook endpoint that points at
    # dunning.urls' payments/stripe/webhook/ (events payment_intent.succeeded and
    # payment_intent.payment_failed settle pending bank debits). None: the endpoint
    # answers 404 and pending debits are settled by polling Stripe at each run.
    "STRIPE_WEBHOOK_SECRET": None,
    # -- the customer's self-service page (dunning.urls, docs/portal.md) --
    # Absolute URL under which the host includes dunning.urls, e.g.
    # "https://shop.example/dunning/"; None: messages carry no portal link.
    "PORTAL_BASE_URL": None,
    # Seconds a portal link stays valid (default 30 days).
    "PORTAL_LINK_MAX_AGE": 30 * 24 * 60 * 60,
    # Fresh links a customer may have emailed from an expired or revoked link, per hour
    # (counted in Django's default cache; use a shared cache with several processes).
    "PORTAL_RESEND_PER_HOUR": 3,
    # The latest date a customer may promise to pay, in days from today.
    "PORTAL_PROMISE_MAX_DAYS": 30,
    # Broken promises of a case (a promised date plus its grace passed unpaid, whoever
    # recorded the promise) after which the customer can no longer promise on the page
    # and the case goes to staff (flagged "needs a person"). Staff may still record one.
    "PORTAL_PROMISE_MAX_BROKEN": 2,
    # The least share of the undisputed overdue balance a promise on the page must cover
    # (a Decimal or a string from 0 to 1, e.g. "0.25"; 0: any amount).
    "PORTAL_PROMISE_MIN_SHARE": "0.25",
    # Most instalments a customer may ask for, and the days between two of them.
    "PORTAL_PLAN_MAX_INSTALMENTS": 6,
    "PORTAL_PLAN_INTERVAL_DAYS": 30,
    # Plans approved without a person: at most "max_instalments" instalments and at most
    # "max_amount"[currency] in total (a currency not listed is never auto-approved);
    # None or {}: every plan goes to staff.
    "PORTAL_PLAN_AUTO_APPROVE": None,
    # Days after an instalment's date before a missed instalment breaks the plan.
    "PORTAL_PLAN_GRACE_DAYS": 3,
    # The "pay now" and "update payment method" links of the page: a format string with
    # {customer} (the customer's pk) and {token} (the portal token), or the dotted path of
    # a callable (customer_row, invoices, token) -> URL or "". None: the COMPANY entries
    # payment_url / update_payment_url, if any.
    # The channels a customer may choose on the self-service page (opting out of one
    # skips the steps on it that are not legally required notices).
    "PORTAL_CHANNELS": ["email"],
    # Pre-dunning (dunning.payments.predunning): notices this many days before a stored
    # card expires, and before a renewal charged to a card that expires first.
    "PREDUNNING_CARD_DAYS": [30, 7],
    "PREDUNNING_RENEWAL_DAYS": 7,
    "PORTAL_PAY_URL": None,
    "PORTAL_UPDATE_PAYMENT_URL": None,
    # -- unsubscribe links (dunning.unsubscribe, docs/unsubscribe.md; under
    # PORTAL_BASE_URL) --
    # An address for the "mailto:" of the List-Unsubscribe header (its subject carries
    # the link's token); None: the header has the https link only.
    "UNSUBSCRIBE_MAILTO": None,
    # -- letters (dunning.channels.letter, docs/letters.md) --
    # Paper size of letters: "A4" (DIN 5008 layout, C5/6 or DL window envelope) or
    # "letter" (US Letter, #10 window envelope).
    # -- in-app notices (dunning.channels.inapp, docs/inapp.md) --
    # Longest text of a notice; the function (dotted path) that tells which customer a
    # request belongs to (None: notices cannot be dismissed from the site); days an
    # "info" notice (the thank-you) stays.
    "INAPP_MAX_CHARS": 280,
    "INAPP_CUSTOMER_FOR_REQUEST": None,
    "INAPP_INFO_DAYS": 7,
    "LETTER_PAGE_SIZE": "A4",
    # Alias in settings.STORAGES of the storage that keeps the PDFs; None: the default.
    "LETTER_STORAGE": None,
    # The customer's postal address: a field or "__" lookup path of the customer model,
    # or the dotted path of a callable f(customer) -> str (wins when set).
    "CUSTOMER_ADDRESS_FIELD": "address",
    "CUSTOMER_ADDRESS": None,
}

class ImportString(NamedTuple):
    """What a dotted-path setting names: ``kind`` "class" or "callable"; ``base`` the
    dotted path of the class a class must subclass (None: any class); ``container`` "one"
    (a single path), "dict" (paths by key), "list" or "url" (a URL format or a path)."""

    kind: str
    base: str | None
    container: str


#: Every setting that names code by a dotted path, as DRF's ``IMPORT_STRINGS``, with what
#: each must be. ``dunning_settings.<KEY>`` of a single path ("one", and a "url" that is
#: a dotted path) is the object it names, imported on first use and checked against its
#: kind; a dict or list setting is imported entry by entry where it is used
#: (:func:`import_setting` with the entry, or :func:`load_plugin`). ``manage.py check``
#: imports every one (dunning.checks.code_setting_errors), so a typo stops the site at
#: deploy, not at the first run that needs it. Plug-ins (channels, the SMS and payment
#: backends) are built by :func:`load_plugin`, the one loader.
IMPORT_STRINGS = {
    "ADAPTER": ("class", None, "one"),
    "EMAIL_CHANNEL": ("class", "dunning.channels.base.Channel", "one"),
    "CHANNELS": ("class", "dunning.channels.base.Channel", "dict"),
    "SMS_BACKEND": ("class", "dunning.channels.sms_backends.base.BaseSmsBackend", "one"),
    "PAYMENT_BACKEND": ("class", "dunning.payments.base.PaymentBackend", "one"),
    "API_AUTHENTICATION_CLASSES": (
        "class", "rest_framework.authentication.BaseAuthentication", "list"),
    "RISK_SCORE": ("callable", None, "one"),
    "BALANCE_HISTORY": ("callable", None, "one"),
    "INAPP_CUSTOMER_FOR_REQUEST": ("callable", None, "one"),
    "CUSTOMER_ADDRESS": ("callable", None, "one"),
    # A format string ("https://pay.example/{customer}?t={token}") or a dotted path.
    "PORTAL_PAY_URL": ("callable", None, "url"),
    "PORTAL_UPDATE_PAYMENT_URL": ("callable", None, "url"),
}
IMPORT_STRINGS = {key: ImportString(*spec) for key, spec in IMPORT_STRINGS.items()}
#: The name of IMPORT_STRINGS in 0.x (kept: the same table).
CODE_SETTINGS = IMPORT_STRINGS

#: How messages name what a class setting must be, by its base class.
CODE_KINDS = {
    None: "a class",
    "dunning.channels.base.Channel": "a channel class",
    "dunning.channels.sms_backends.base.BaseSmsBackend": "an SMS backend class",
    "dunning.payments.base.PaymentBackend": "a payment backend class",
    "rest_framework.authentication.BaseAuthentication": "an authentication class",
}


def setting_needs(key):
    """What the code ``DUNNING[key]`` names must be, in words: "an SMS backend class (a
    subclass of dunning.channels.sms_backends.base.BaseSmsBackend)", "callable"."""
    kind, base, _container = IMPORT_STRINGS[key]
    if kind != "class":
        return "callable"
    return CODE_KINDS.get(base, "a class") + (f" (a subclass of {base})" if base else "")


def check_imported(key, target, path, entry=None):
    """``target`` (what ``path`` of ``DUNNING[key]`` named) if it is what the setting
    needs (IMPORT_STRINGS); else DunningConfigurationError naming the setting, or, for a
    plug-in class, the methods it leaves unimplemented."""
    kind, base, _container = IMPORT_STRINGS[key]
    if kind == "callable":
        good = callable(target)
    else:
        good = isinstance(target, type) and (base is None or issubclass(target, import_string(base)))
    if not good:
        raise DunningConfigurationError(
            f"{setting_name(key, entry)} = {path!r} is not {setting_needs(key)}.")
    missing = getattr(target, "missing_methods", None) if kind == "class" and base else None
    missing = missing() if missing else []
    if missing:
        raise DunningConfigurationError(
            f"{setting_name(key, entry)} = {path!r}: {target.__name__} must implement "
            f"{', '.join(f'{name}()' for name in missing)}.")
    return target


def imported(key, value, entry=None):
    """The object ``value`` of ``DUNNING[key]`` (or its entry ``entry``) names, checked
    against IMPORT_STRINGS: a dotted path is imported, an object is checked as it is."""
    return check_imported(key, import_setting(key, value, entry), value, entry)


def load_plugin(key, entry=None, optional=None, **kwargs):
    """The one loader of plug-ins: an instance of the class ``DUNNING[key]`` (or its entry
    ``entry``, e.g. ``load_plugin("CHANNELS", "sms")``) names, built with the keyword
    arguments of ``DUNNING["<key>_OPTIONS"]`` (when the family has one) and ``kwargs``;
    ``optional`` keyword arguments are passed only to a class whose constructor takes
    them. None when the setting is empty. A path that cannot be imported, names the wrong
    thing, or whose options the class refuses raises DunningConfigurationError naming the
    setting."""
    import inspect

    value = getattr(dunning_settings, key)
    if entry is not None:
        value = (value or {}).get(entry) if isinstance(value, dict) else None
    if value is None or value == "":
        return None
    cls = imported(key, value, entry)
    options_key = f"{key}_OPTIONS"
    options = dict(getattr(dunning_settings, options_key) or {}) if options_key in DEFAULTS else {}
    options.update(kwargs)
    if optional:
        try:
            accepted = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            accepted = {}
        options.update({k: v for k, v in optional.items() if k in accepted})
    try:
        return cls(**options)
    except TypeError as exc:
        where = f"DUNNING[{options_key!r}]" if options_key in DEFAULTS else setting_name(key, entry)
        raise DunningConfigurationError(
            f"{where} does not fit {cls.__module__}.{cls.__qualname__}: {exc}") from exc


def is_dotted_path(value):
    """Is a PORTAL_*_URL value the dotted path of a callable rather than a URL format?"""
    return isinstance(value, str) and "{" not in value and "." in value and "/" not in value


def setting_name(key, entry=None):
    """How messages name a setting: ``DUNNING['CHANNELS']``, ``DUNNING['CHANNELS']['sms']``."""
    return f"DUNNING[{key!r}]" + ("" if entry is None else f"[{entry!r}]")


def import_setting(key, value, entry=None):
    """``value`` of ``DUNNING[key]`` (or of its entry ``entry``, a key of a dict or an
    index of a list): the object a dotted path names, or ``value`` itself when it is not
    a string. Raises DunningConfigurationError naming the setting and the import error."""
    if not isinstance(value, str):
        return value
    name = setting_name(key, entry)
    try:
        return import_string(value)
    except ImportError as exc:
        raise DunningConfigurationError(f"{name} = {value!r} cannot be imported: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - the module itself fails on import
        raise DunningConfigurationError(
            f"{name} = {value!r} cannot be imported: its module raised {describe(exc, None)}"
        ) from exc

# Settings whose change must drop every cached value.
RELOAD_ON = {"DUNNING", CUSTOMER_MODEL_SETTING, INVOICE_MODEL_SETTING, "LANGUAGE_CODE", "TIME_ZONE"}


class DunningSettings:
    def __init__(self, defaults=None, import_strings=None):
        self.defaults = defaults or DEFAULTS
        self.import_strings = import_strings or IMPORT_STRINGS
        self._cached = set()
        self._reload_hooks = []

    @property
    def user_settings(self):
        value = getattr(settings, "DUNNING", None) or {}
        if not isinstance(value, dict):
            raise DunningConfigurationError("settings.DUNNING must be a dict.")
        return value

    def __getattr__(self, name):
        if name not in self.defaults:
            raise AttributeError(f"Invalid django-dunning setting: {name!r}")
        value = self.user_settings.get(name, self.defaults[name])
        spec = self.import_strings.get(name)
        if spec and spec.container == "one" and value is not None and value != "":
            value = imported(name, value)
        elif spec and spec.container == "url" and is_dotted_path(value):
            value = imported(name, value)
        self._cached.add(name)
        setattr(self, name, value)
        return value

    def on_reload(self, hook):
        """Register a callable that drops a cache derived from these settings."""
        self._reload_hooks.append(hook)
        return hook

    def reload(self):
        for name in self._cached:
            self.__dict__.pop(name, None)
        self._cached.clear()
        for hook in self._reload_hooks:
            hook()


dunning_settings = DunningSettings()


def customer_model_label():
    """The customer model's label: ``settings.DUNNING_CUSTOMER_MODEL`` or the shipped model."""
    return getattr(settings, CUSTOMER_MODEL_SETTING, DEFAULT_CUSTOMER_MODEL)


def invoice_model_label():
    """The invoice model's label: ``settings.DUNNING_INVOICE_MODEL`` or the shipped model."""
    return getattr(settings, INVOICE_MODEL_SETTING, DEFAULT_INVOICE_MODEL)


AGENCY_FORMATS = ("csv", "json")


def agency_settings(key=""):
    """``(key, {"name", "format", "export_dir"})`` of the collections agency ``key`` in
    ``DUNNING["AGENCIES"]`` ("" or None: ``DEFAULT_AGENCY``, or the only agency when
    exactly one is set up). Raises DunningConfigurationError (translated) otherwise."""
    from django.utils.translation import gettext as _

    agencies = dunning_settings.AGENCIES or {}
    if not isinstance(agencies, dict):
        raise DunningConfigurationError(_("DUNNING['AGENCIES'] must be a dict of agencies by key."))
    if not key:
        key = dunning_settings.DEFAULT_AGENCY or (next(iter(agencies)) if len(agencies) == 1 else "")
    if not key:
        raise DunningConfigurationError(_(
            "No collections agency to hand over to: set up DUNNING['AGENCIES'] and "
            "DUNNING['DEFAULT_AGENCY'], or name the agency on the step."))
    config = agencies.get(key)
    if not isinstance(config, dict):
        raise DunningConfigurationError(
            _("There is no collections agency '%(agency)s' in DUNNING['AGENCIES'].")
            % {"agency": key})
    fmt = str(config.get("format") or "csv").lower()
    if fmt not in AGENCY_FORMATS:
        raise DunningConfigurationError(
            _("The format of the agency '%(agency)s' must be csv or json, not '%(format)s'.")
            % {"agency": key, "format": fmt})
    return key, {"name": str(config.get("name") or key), "format": fmt,
                 "export_dir": config.get("export_dir") or None}


def share_setting(key):
    """``DUNNING[key]`` as a Decimal fraction from 0 to 1 (a Decimal, an int or a string
    like "0.25"; a float is refused: 0.1 is not what it looks like). Raises
    DunningConfigurationError naming the setting otherwise."""
    from decimal import Decimal, InvalidOperation

    value = getattr(dunning_settings, key)
    share = None
    if isinstance(value, Decimal | str) or (isinstance(value, int) and not isinstance(value, bool)):
        try:
            share = Decimal(str(value).strip())
        except InvalidOperation:
            share = None
    if share is None or not share.is_finite() or not 0 <= share <= 1:
        raise DunningConfigurationError(
            f"DUNNING[{key!r}] must be a fraction from 0 to 1 written as a string or a "
            f"Decimal (e.g. \"0.25\"), not {value!r}."
        )
    return share
