"""``make demo`` (``manage.py demo`` of the example project): the same outcome every time,
from an empty mail folder, telling where the messages are."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def example(*args, db_file, mail_dir, timeout=300):
    """``manage.py ...`` of the example project in a subprocess, on its own SQLite file
    and mail folder."""
    env = dict(os.environ)
    env.pop("DUNNING_TEST_DB", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(DEMO_DB=str(db_file), DEMO_MAIL_DIR=str(mail_dir), TZ="Pacific/Kiritimati",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


@pytest.mark.real_clock  # the demo's processes read the clock; its outcome must not
def test_the_demo_gives_the_same_outcome_every_time(tmp_path):
    db_file, mail_dir = tmp_path / "demo.sqlite3", tmp_path / "mail"
    example("migrate", "-v", "0", db_file=db_file, mail_dir=mail_dir)
    mail_dir.mkdir()
    (mail_dir / "20250101-000000-1.log").write_text("Subject: an earlier demo's message\n")
    demo = ("demo", "--customers", "12", "--days", "20", "--no-color")
    first = example(*demo, db_file=db_file, mail_dir=mail_dir)
    files = sorted(mail_dir.glob("*.log"))
    assert "an earlier demo's message" not in "".join(f.read_text() for f in files)
    second = example(*demo, db_file=db_file, mail_dir=mail_dir)
    assert first == second
    assert "payment retries:" in first and "Outcome" in first
    sent = sum(f.read_text().count("\n" + "-" * 79 + "\n") for f in mail_dir.glob("*.log"))
    assert sent > 0
    assert f"{sent} email message(s), as sent, in {mail_dir}" in first
