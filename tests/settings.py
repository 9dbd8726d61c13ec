"""Test settings: the shipped default models. DUNNING_TEST_DB=postgres selects PostgreSQL."""

import os

from tests.clock import shift_from_environment

# `bash .ci/at HH:MM ...` runs a suite and its child processes at another hour (tests/clock.py).
shift_from_environment()

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "Europe/Berlin"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
USE_I18N = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "import_export",
    "rest_framework",  # the REST API (dunning.urls)
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "dunning",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
STATIC_URL = "static/"


def database():
    if os.environ.get("DUNNING_TEST_DB") == "postgres":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "dunning"),
            "USER": os.environ.get("PGUSER", "dunning"),
            "PASSWORD": os.environ.get("PGPASSWORD", "dunning"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": os.environ.get("PGTESTDATABASE", "test_dunning")},
        }
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DUNNING_SQLITE_NAME", ":memory:"),
        "OPTIONS": {"timeout": 30},
        "TEST": {"NAME": os.environ.get("DUNNING_SQLITE_TEST_NAME") or None},
    }


DATABASES = {"default": database()}

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEFAULT_FROM_EMAIL = "billing@example.com"
# django-q2: the ORM broker (no Redis in tests); `dunning schedule` writes its Schedule.
Q_CLUSTER = {"name": "dunning-tests", "orm": "default", "timeout": 60, "retry": 120}
DUNNING = {
    "COMPANY": {"name": "Test Shop", "email": "billing@example.com", "payment_url": "https://pay.example.com"},
}
