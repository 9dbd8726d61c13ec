"""A brand-new shop that installs django-dunning from its wheel and keeps its own
customer and invoice models, in German field names (tests/test_wheel.py copies this
site into a temporary folder and runs it there)."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "wheel-site-only"
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
TIME_ZONE = "Europe/Berlin"
LANGUAGE_CODE = "en"
USE_I18N = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "import_export",
    "shopapp",
    "dunning",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "shopsite.urls"
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

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "shop.sqlite3")}
}

EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = str(BASE_DIR / "sent_mail")
DEFAULT_FROM_EMAIL = "buchhaltung@laden.example"

DUNNING_CUSTOMER_MODEL = "shopapp.Kunde"
DUNNING_INVOICE_MODEL = "shopapp.Rechnung"
DUNNING = {
    "INVOICE_FIELDS": {
        "customer": "kunde",
        "number": "nummer",
        "amount_due": "offen",
        "currency": "waehrung",
        "due_date": "faellig_am",
    },
    "CUSTOMER_FIELDS": {"name": "voller_name", "email": "mail", "language": "sprache"},
    "COMPANY": {"name": "Laden GmbH", "email": "buchhaltung@laden.example"},
}
