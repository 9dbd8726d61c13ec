"""The built wheel, installed (not editable) into a brand-new site with its own models.

Builds the wheel from this source tree, checks what it ships, installs it with
``pip install --target`` and runs a fresh Django site (tests/wheel_site: ``shopapp`` with
``Kunde`` and ``Rechnung``, German field names) in subprocesses whose working directory is
outside the repository, so that only the installed copy of ``dunning`` can be imported.
"""

import email
import email.policy
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import dunning

REPO = Path(__file__).resolve().parent.parent
SITE_SOURCE = Path(__file__).resolve().parent / "wheel_site"

TIMEOUT = 180
AS_OF = "2026-03-05"  # the Rechnung below fell due on 2026-03-01


def _run(cmd, *, cwd, env=None, check=True):
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("wheel")


@pytest.fixture(scope="module")
def wheel_path(workdir):
    out = workdir / "dist"
    proc = _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=REPO,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            "building the wheel failed (is hatchling installed? `pip install -e .[test]`)\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def site_packages(workdir, wheel_path):
    target = workdir / "site-packages"
    _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(wheel_path)],
        cwd=workdir,
    )
    return target


@pytest.fixture(scope="module")
def site(workdir, site_packages):
    """The shop's folder with its migrations written; returns a function running
    ``python -m django ...`` there."""
    root = workdir / "site"
    shutil.copytree(
        SITE_SOURCE, root, ignore=shutil.ignore_patterns("__pycache__", "migrations", "*.sqlite3")
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DUNNING_", "PYTHON"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(site_packages), str(root)]),
        DJANGO_SETTINGS_MODULE="shopsite.settings",
        PYTHONDONTWRITEBYTECODE="1",
    )

    def django(*args, check=True):
        return _run([sys.executable, "-m", "django", *args], cwd=root, env=env, check=check)

    django.root = root
    django("makemigrations", "shopapp", "--verbosity", "0")
    assert (root / "shopapp" / "migrations" / "0001_initial.py").is_file()
    return django


def test_wheel_ships_the_app_its_data_and_nothing_else(wheel_path):
    names = set(zipfile.ZipFile(wheel_path).namelist())

    for required in (
        "dunning/__init__.py",
        "dunning/migrations/__init__.py",
        "dunning/migrations/0001_initial.py",
        "dunning/migrations/0002_default_policy.py",
        "dunning/locale/de/LC_MESSAGES/django.mo",
        "dunning/py.typed",
        "dunning/management/commands/dunning.py",
    ):
        assert required in names, f"{required} is missing from {wheel_path.name}"
    keys = ["initial-notice", "gentle-reminder", "formal-notice", "suspension-warning",
            "suspension", "final-notice", "termination", "payment-received"]
    for language in ("en", "de"):
        for key in keys:
            for ext in ("txt", "html"):
                name = f"dunning/shipped/{language}/{key}.{ext}"
                assert name in names, f"{name} is missing from {wheel_path.name}"
            # The shipped texts per channel (migration 0018 reads them from the package).
            for name in (f"{channel}/{key}.txt" for channel in ("sms", "letter", "in_app")):
                name = f"dunning/shipped/{language}/{name}"
                assert name in names, f"{name} is missing from {wheel_path.name}"
            name = f"dunning/shipped/{language}/letter/{key}.html"
            assert name in names, f"{name} is missing from {wheel_path.name}"

    top_level = {name.split("/")[0] for name in names}
    assert "tests" not in top_level
    assert "example_project" not in top_level
    assert not [n for n in names if n.startswith(("tests/", "example_project/"))]
    assert top_level == {"dunning", f"django_dunning-{dunning.__version__}.dist-info"}
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".sqlite3"))]


def test_site_imports_the_installed_wheel_not_the_source_tree(site, site_packages):
    out = site(
        "shell", "-c",
        "import json, dunning, django.conf;"
        "print(json.dumps([dunning.__file__, dunning.__version__]))",
    ).stdout
    path, version = json.loads(out.strip().splitlines()[-1])
    assert Path(path).resolve().is_relative_to(site_packages.resolve()), path
    assert not Path(path).resolve().is_relative_to(REPO / "dunning")
    assert version == dunning.__version__


def test_site_with_its_own_models_passes_checks_and_needs_no_new_migrations(site):
    checked = site("check")
    assert "System check identified no issues" in checked.stdout, checked.stdout + checked.stderr

    pending = site("makemigrations", "--check", "--dry-run", check=False)
    assert pending.returncode == 0, pending.stdout + pending.stderr
    assert "No changes detected" in pending.stdout


@pytest.fixture(scope="module")
def dunned_site(site):
    site("migrate", "--verbosity", "0")
    site(
        "shell", "-c",
        "import datetime; from decimal import Decimal;"
        "from shopapp.models import Kunde, Rechnung;"
        "k = Kunde.objects.create(voller_name='Jürgen Übermann', mail='juergen@example.com', sprache='de');"
        "Rechnung.objects.create(kunde=k, nummer='RE-2026-0042', offen=Decimal('119.00'),"
        " waehrung='EUR', faellig_am=datetime.date(2026, 3, 1));"
        "p = Kunde.objects.create(voller_name='Paula Bezahlt', mail='paula@example.com', sprache='de');"
        "Rechnung.objects.create(kunde=p, nummer='RE-2026-0043', offen=Decimal('0.00'),"
        " waehrung='EUR', faellig_am=datetime.date(2026, 2, 1))",
    )
    run = site("dunning", "run", "--as-of", AS_OF)
    return site, run


def _sent_messages(mail_dir):
    messages = []
    separator = b"\n" + b"-" * 79 + b"\n"
    for path in sorted(mail_dir.glob("*.log")):
        for chunk in path.read_bytes().split(separator):
            if chunk.strip():
                messages.append(email.message_from_bytes(chunk, policy=email.policy.default))
    return messages


def test_run_sends_one_german_email_from_the_installed_wheel(dunned_site):
    site, run = dunned_site
    assert "initial-notice" in run.stdout, run.stdout

    messages = _sent_messages(site.root / "sent_mail")
    assert len(messages) == 1, [m["To"] for m in messages]
    message = messages[0]
    assert message["To"] == "juergen@example.com"
    assert message["From"] == "buchhaltung@laden.example"

    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Jürgen Übermann" in body
        assert "RE-2026-0042" in body
        assert "119,00\xa0€" in body  # Babel, German
        assert "01.03.2026" in body
    # The German shipped text, not the English one.
    assert "Zahlungserinnerung" in message["Subject"]
    assert "Guten Tag" in text
    assert "Mit freundlichen Grüßen" in text
    assert "Dear" not in text
    assert "Laden GmbH" in text


def test_run_records_the_step_against_the_hosts_own_customer(dunned_site):
    site, _ = dunned_site
    out = site(
        "shell", "-c",
        "import json; from dunning.models import Case, CaseStep;"
        "print(json.dumps({"
        "'cases': [[str(c.customer), c.status, c.last_step_key] for c in Case.objects.all()],"
        "'steps': list(CaseStep.objects.values_list('step_key', 'status', 'recipient', 'language'))"
        "}))",
    ).stdout
    state = json.loads(out.strip().splitlines()[-1])
    assert state["cases"] == [["Jürgen Übermann", "open", "initial-notice"]]
    assert state["steps"] == [["initial-notice", "sent", "juergen@example.com", "de"]]


def test_installed_wheel_ships_german_translations(site):
    out = site(
        "shell", "-c",
        "import json; from django.utils import translation; from django.apps import apps;"
        "from dunning.models import Case, CaseStep;"
        "translation.activate('de');"
        "print(json.dumps([str(Case._meta.verbose_name), str(Case._meta.verbose_name_plural),"
        " str(CaseStep.Status.SENT.label), str(apps.get_app_config('dunning').verbose_name)]))",
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == ["Fall", "Fälle", "Gesendet", "Mahnwesen"]
