import datetime
import zoneinfo

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from dunning.engine.run import run_dunning
from dunning.testing import create_customer, create_invoice

collect_ignore = ["benchmarks"]
# tests/host runs with --ds=tests.settings_host, tests/ledger with --ds=tests.settings_ledger.
_invoice_model = getattr(settings, "DUNNING_INVOICE_MODEL", "dunning.Invoice")
if _invoice_model != "host_app.Charge":
    collect_ignore.append("host")
if _invoice_model != "ledger_app.LedgerInvoice":
    collect_ignore.append("ledger")

DAY0 = datetime.date(2026, 3, 2)  # the due date most tests use

#: The instant every test runs at, whatever the wall clock says: a Monday, 11:00 in the
#: site's time zone (tests/settings.py), inside every channel's send window. The clock
#: ticks on from there during a test. A test that needs another instant moves the clock
#: (the ``time_machine`` fixture) or passes ``now=``; a test whose other processes read
#: the real clock is marked ``real_clock`` (CI runs those at a night hour and at a day
#: hour, see .ci/run).
PINNED_NOW = datetime.datetime(2026, 12, 7, 11, 0, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin"))


def edit_standard(**fields):
    """The shipped policy ``standard`` with ``fields`` changed, validated and saved."""
    from dunning.models import Policy

    policy = Policy.objects.get(key="standard")
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.full_clean()
    policy.save()
    return policy


def day(n):
    """The date ``n`` days after DAY0 (so ``day(4)`` is 4 days overdue)."""
    return DAY0 + datetime.timedelta(days=n)


@pytest.fixture
def make_customer(db):
    return create_customer


@pytest.fixture
def make_invoice(db):
    return create_invoice


@pytest.fixture
def overdue_customer(db):
    """A customer with one invoice due on DAY0, by a factory that works on any host."""

    def make(amount="100.00", currency="EUR", due=DAY0, **customer):
        c = create_customer(**customer)
        create_invoice(c, amount_due=amount, currency=currency, due_date=due)
        return c

    return make


@pytest.fixture
def run(db):
    def do(as_of, **kwargs):
        if isinstance(as_of, int):
            as_of = day(as_of)
        return run_dunning(as_of, **kwargs)

    return do


# -- the admin: users and logged-in clients (shared by the workbench and admin tests) --
@pytest.fixture
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def boss(django_user_model, fast_hasher):
    """A superuser."""
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")


@pytest.fixture
def admin_client(boss):
    client = Client()
    client.force_login(boss)
    return client


@pytest.fixture
def collector(django_user_model, fast_hasher, db):
    """A staff user in the 'Collections' group (no write-off permission)."""
    call_command("dunning", "collections-group", verbosity=0)
    user = django_user_model.objects.create_user("carla", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Collections"))
    return user


@pytest.fixture
def collector_client(collector):
    client = Client()
    client.force_login(collector)
    return client


@pytest.fixture
def staff_client(django_user_model, fast_hasher):
    """A staff user without any permission."""
    client = Client()
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def case(run, overdue_customer):
    """An open case with its first step sent (customer Ada, 1 day overdue)."""
    from dunning.models import Case

    customer = overdue_customer(name="Ada")
    run(1)
    return Case.objects.get(customer=customer)


@pytest.fixture(autouse=True)
def _pinned_clock(request):
    """Every test runs at :data:`PINNED_NOW` (see there), never at the wall clock's hour:
    quiet hours, "today", link expiry and the like behave the same at any hour."""
    if request.node.get_closest_marker("real_clock"):
        yield None
        return
    with time_machine.travel(PINNED_NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def _site_language_after_each_test():
    """A test that served a German page (LocaleMiddleware activates the language for the
    thread and never deactivates it) must not leave German behind for the next test."""
    yield
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def _no_webhook_endpoints_left_cached():
    """The outbound webhooks cache the active endpoints for a while (per process); a test's
    endpoints are rolled back with its transaction, so the cache must not outlive it."""
    from dunning import webhooks

    webhooks.clear_cache()
    yield
    webhooks.clear_cache()
