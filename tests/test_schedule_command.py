"""``manage.py dunning schedule``: the django-q2 schedule that runs dunning by itself."""

import datetime
import zoneinfo
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from django_q.models import Schedule

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def schedule(*args):
    out = StringIO()
    call_command("dunning", "schedule", *args, stdout=out, no_color=True)
    return out.getvalue()


def the_schedule():
    (s,) = Schedule.objects.filter(name="dunning-run")
    return s


def test_creates_a_daily_schedule_at_six_in_the_site_time_zone(db):
    assert settings.TIME_ZONE == "Europe/Berlin"
    out = schedule()
    s = the_schedule()
    assert (s.name, s.func, s.schedule_type, s.repeats) == (
        "dunning-run", "dunning.tasks.run", Schedule.DAILY, -1)
    local = s.next_run.astimezone(BERLIN)
    assert (local.hour, local.minute) == (6, 0)
    now = timezone.now()
    assert now < s.next_run <= now + datetime.timedelta(days=1)
    assert "Created" in out and "daily at 06:00 (Europe/Berlin)" in out


@override_settings(TIME_ZONE="America/New_York")
def test_the_time_is_local_to_settings_time_zone(db):
    schedule("--time", "23:30")
    s = the_schedule()
    local = s.next_run.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (23, 30)
    assert timezone.now() < s.next_run <= timezone.now() + datetime.timedelta(days=1)


def test_running_it_twice_leaves_one_schedule(db):
    schedule("--time", "07:15")
    out = schedule("--time", "05:45")
    s = the_schedule()
    local = s.next_run.astimezone(BERLIN)
    assert (local.hour, local.minute) == (5, 45)
    assert "Updated" in out


def test_every_n_minutes(db):
    schedule()
    schedule("--every-minutes", "15")
    s = the_schedule()
    assert (s.schedule_type, s.minutes, s.func, s.repeats) == (
        Schedule.MINUTES, 15, "dunning.tasks.run", -1)
    # django-q2 computes the following run from it: 15 minutes later.
    assert s.calculate_next_run() - s.next_run == datetime.timedelta(minutes=15)


def test_back_to_daily_clears_the_minutes(db):
    schedule("--every-minutes", "15")
    schedule("--time", "06:00")
    s = the_schedule()
    assert (s.schedule_type, s.minutes) == (Schedule.DAILY, None)


def test_remove(db):
    Schedule.objects.create(name="someone-else", func="math.floor")
    schedule()
    out = schedule("--remove")
    assert "Removed" in out
    assert list(Schedule.objects.values_list("name", flat=True)) == ["someone-else"]
    assert "no schedule" in schedule("--remove")


@pytest.mark.parametrize("args, message", [
    (["--time", "25:00"], "--time expects HH:MM"),
    (["--time", "six"], "--time expects HH:MM"),
    (["--every-minutes", "0"], "--every-minutes must be"),
    (["--time", "06:00", "--every-minutes", "5"], "not allowed with argument"),
])
def test_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        schedule(*args)
    assert not Schedule.objects.exists()


def test_needs_django_q_installed(db):
    apps = [a for a in settings.INSTALLED_APPS if a != "django_q"]
    with override_settings(INSTALLED_APPS=apps), pytest.raises(CommandError, match='"django_q"'):
        schedule()


def test_help_lists_the_subcommand():
    from dunning.management.commands.dunning import Command

    parser = Command().create_parser("manage.py", "dunning")
    assert "schedule" in parser.format_help()
