"""Settings of the example host site: the shipped default Customer and Invoice models.

``example_project.settings_billing`` is the same site with its own models instead.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "import_export",
    "rest_framework",  # the REST API at /dunning/api/v1/ (docs/api.md)
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "dunning",
    "example_project.shop",
    "example_project.billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = None

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {"timeout": 20},
    }
}

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
TIME_ZONE = "Europe/Berlin"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Mail goes to files under example_project/sent_mail/ (use django-anymail for a real ESP).
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("DEMO_MAIL_DIR", str(BASE_DIR / "sent_mail"))
DEFAULT_FROM_EMAIL = "billing@example.com"

# django-anymail: the ESP's webhooks post delivery events to /anymail/<esp>/tracking/
# (see urls.py); dunning records them and suppresses addresses that bounce hard. Give the
# same "user:password" to the ESP's webhook URL. Check dunning.E011 (`check --deploy`)
# refuses to pass without it when DEBUG is off; the demo runs with DEBUG on and starts
# without it. ESP credentials go here too, e.g. "MAILGUN_API_KEY" (and EMAIL_BACKEND =
# "anymail.backends.mailgun.EmailBackend").
ANYMAIL = {}
if os.environ.get("ANYMAIL_WEBHOOK_SECRET"):
    ANYMAIL["WEBHOOK_SECRET"] = os.environ["ANYMAIL_WEBHOOK_SECRET"]

Q_CLUSTER = {"name": "example", "orm": "default", "workers": 2, "timeout": 300, "retry": 600}

DUNNING = {
    "COMPANY": {
        "name": "Example Shop Ltd.",
        "email": "billing@example.com",
        "payment_url": "https://shop.example.com/pay",
        "update_payment_url": "https://shop.example.com/account/payment-method",
    },
    # The demo's payments go through the simulated backend: deterministic outcomes per
    # customer (docs/payments.md), cards that expire, a monthly renewal, and the account
    # updater. A real site names dunning.payments.stripe_backend.StripeBackend or its own.
    "PAYMENT_BACKEND": "dunning.payments.simulated.SimulatedBackend",
    "PAYMENT_BACKEND_OPTIONS": {
        "account_updater": True,
        "monthly_renewal": {"amount": "29.00", "currency": "EUR"},
    },
    "PORTAL_BASE_URL": "http://127.0.0.1:8000/dunning/",
}
