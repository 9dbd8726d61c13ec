"""Fixtures of the browser tests: Playwright driving the system's Chromium (Debian's
``chromium`` package) against pytest-django's live server.

No browser is ever downloaded (``playwright install`` is never run): the tests launch the
executable named by ``DUNNING_CHROMIUM`` or found as ``chromium`` on the PATH. Without one
they are skipped with the reason, except under CI (``CI`` set), where they fail.
"""

import os
import shutil

import pytest

from tests.browser import data

#: Chromium flags for a machine without a display, a sandbox or a network: no GPU, no
#: background requests (updates, sync, safe browsing) that would hammer refused connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000


def chromium_executable():
    """The system Chromium: $DUNNING_CHROMIUM, else `chromium` (or `chromium-browser`)."""
    configured = os.environ.get("DUNNING_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable(reason):
    """Fail under CI (the browser tests must run there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path():
    path = chromium_executable()
    if path is None:
        unavailable(
            "no Chromium executable: install Debian's `chromium` (apt-get install chromium) "
            "or set DUNNING_CHROMIUM; the browser tests never download one"
        )
    return path


@pytest.fixture(scope="session")
def playwright_sync(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the Python package `playwright` is not installed (pip install -e '.[test]')")
    # Playwright's sync API keeps an asyncio event loop running in this thread, and Django
    # refuses ORM calls from such a thread (SynchronousOnlyOperation) although they are
    # synchronous here: the documented way out for Playwright with pytest-django.
    from django.db import connections

    # The running loop also makes asgiref keep Django's (thread-critical) connections in
    # another storage: the test code would get new connection objects, without the
    # transaction, the live server's sharing or the serialized data of pytest-django's.
    # Hand it the connections that pytest-django set up.
    originals = {alias: connections[alias] for alias in connections}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            for alias, connection in originals.items():
                connections[alias] = connection
            yield playwright


@pytest.fixture(scope="session")
def browser(playwright_sync, chromium_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    browser = playwright_sync.chromium.launch(
        executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def new_page(browser):
    """Open pages in fresh browser contexts (one per user: its own cookies)."""
    contexts = []

    def make():
        context = browser.new_context(
            viewport=VIEWPORT, locale="en-US", timezone_id="Europe/Berlin"
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture(autouse=True)
def _session_cookies_without_expiry(settings):
    """The server runs at the suite's pinned clock (tests/conftest.py), the browser at the
    real one: a session cookie that expires two weeks after the pinned instant would be
    dropped at once by a browser running later than that. Session cookies end with the
    browser context instead."""
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True


@pytest.fixture
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def boss(django_user_model, fast_hasher, transactional_db):
    return django_user_model.objects.create_superuser(
        "boss", "boss@example.com", data.PASSWORD, first_name="Bea", last_name="Boss"
    )


@pytest.fixture
def collector(django_user_model, fast_hasher, transactional_db):
    """A staff user in the 'Collections' group: no write-off permission."""
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    call_command("dunning", "collections-group", verbosity=0)
    user = django_user_model.objects.create_user(
        "carla", "carla@example.com", data.PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name="Collections"))
    return user


@pytest.fixture
def login(live_server):
    """Log ``user`` in through the admin login form; returns the page on the admin index."""

    def do(page, user):
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(data.PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/admin/")
        return page

    return do
