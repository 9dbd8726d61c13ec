"""The scheduled run at scale: a tick split into shard tasks, run by django-q2.

* In django-q2's sync mode (every task in the calling process), on SQLite and PostgreSQL:
  a sharded tick does exactly what ``run_dunning`` does, day after day.
* With real ``qcluster`` processes, the Redis broker and PostgreSQL (the distributed
  deployment on one machine; ``postgres`` and ``slow``): four workers send every due step
  exactly once, each message exactly once (every worker's email backend appends to one
  file); a worker killed with SIGKILL in the middle of a batch loses nothing and
  duplicates nothing; two clusters with two schedules duplicate nothing; a tick started
  while the previous one is still running (a slow day) neither duplicates nor skips; and
  the load script (tests/benchmarks/load_qcluster.py) runs small with no duplicate and
  nothing lost.
* ``dunning schedule`` (the run and the drain schedule), ``dunning drain``, the shard count.

The cluster tests need Redis at 127.0.0.1:6379 (``bash .ci/redis.sh``) and are skipped,
saying so, when it does not answer.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Schedule, Task
from django_q.tasks import async_task

from dunning import tasks
from dunning.engine.run import run_dunning
from dunning.exceptions import DunningConfigurationError
from dunning.hosts import get_customer_model
from dunning.models import Case, CaseStep, Run
from dunning.testing import override_dunning_settings
from tests import concurrency_runner as runner
from tests.benchmarks.load_qcluster import Cluster
from tests.concurrency_runner import DAY0, index_of
from tests.recording_backend import read_mail
from tests.test_concurrency import Expected

REPO = Path(__file__).resolve().parent.parent


def day(n):
    return DAY0 + datetime.timedelta(days=n)


# -- sync mode: the tick and its shards in one process ----------------------------------
@pytest.fixture
def sync_mode(monkeypatch):
    """django-q2's ``Q_CLUSTER["sync"] = True``: async_task runs the task at once."""
    monkeypatch.setattr(Conf, "SYNC", True)


def state():
    """(customer index, step key, status) of every executed step, and the cases."""
    steps = sorted(
        (index_of(email), key, status)
        for email, key, status in CaseStep.objects.values_list(
            "case__customer__email", "step_key", "status")
    )
    cases = sorted(
        (index_of(email), status)
        for email, status in Case.objects.values_list("customer__email", "status")
    )
    return steps, cases


DAYS = [1, 4, 11, 16]
PAYMENTS = {11: lambda n: {i for i in range(n) if i % 13 == 0}}


def play_days(n, runner_fn, mailoutbox):
    """Seed ``n`` customers and run DAYS with ``runner_fn(as_of)``; check each day with the
    rules of the contract (tests/test_concurrency.py's Expected) and return the states."""
    runner.seed(n)
    expected = Expected(n)
    states = []
    for d in DAYS:
        if d in PAYMENTS:
            paid = PAYMENTS[d](n)
            runner.pay(sorted(paid))
            expected.paid |= paid
        mailoutbox.clear()
        runner_fn(day(d))
        _, _, sent = expected.run(day(d))
        got = Counter(
            (index_of(m.to[0]), m.metadata["dunning_step"]) for m in mailoutbox
        )
        assert all(c == 1 for c in got.values()), f"day {d}: a message twice"
        assert set(got) == set(sent.items()), f"day {d}: messages differ from the rules"
        states.append(state())
    assert expected.statuses() == {
        i: [s for j, s in state()[1] if j == i] for i in expected.statuses()
    }
    return states


@pytest.mark.django_db
def test_a_sharded_tick_does_what_run_dunning_does(sync_mode, mailoutbox):
    """Four days (cases opened, late openings, four kinds of step, payments) run by
    ``dunning.tasks.run`` split into 4 shards of 10-case batches, and the same days run by
    ``run_dunning``: the same steps, cases and messages, each as the rules say."""
    n = 150
    with override_dunning_settings(SHARDS=4, BATCH_SIZE=10, RENDER_PROCESSES=1):
        by_tick = play_days(n, lambda as_of: tasks.run(as_of.isoformat()), mailoutbox)
        ticks = list(Run.objects.filter(summary__has_key="shards").values_list("pk", "summary"))
        shards = list(Run.objects.filter(summary__has_key="shard").values_list("pk", "summary"))
        steps_by_run = Counter(CaseStep.objects.values_list("run_id", flat=True))
        # The same days again, from scratch, with run_dunning.
        get_customer_model()._default_manager.all().delete()  # cascades to everything
        Run.objects.all().delete()
        by_run = play_days(n, lambda as_of: run_dunning(as_of), mailoutbox)
    assert by_tick == by_run
    # It was sharded: 4 shards on the big days, each shard's Run names its tick, and the
    # shards did the due work (in sync mode the first shard takes all it finds).
    assert len(ticks) == len(DAYS) and max(s["shards"] for _, s in ticks) == 4
    assert {s["tick"] for _, s in shards} <= {pk for pk, _ in ticks}
    assert sorted({s["shard"] for _, s in shards}) == [1, 2, 3]
    assert sum(steps_by_run[pk] for pk, _ in shards) > 0


@pytest.mark.django_db
def test_the_tick_called_directly_is_a_whole_run(overdue_customer, mailoutbox):
    """Outside a cluster (no worker to take the shards) the tick does all the work itself;
    the shard tasks it enqueued find nothing left when they run."""
    for i in range(30):
        overdue_customer(name=f"C{i}", email=f"c{i}@example.com")
    with override_dunning_settings(SHARDS=3, BATCH_SIZE=10):
        summary = tasks.run(day(1).isoformat())
        assert summary["executed"] == {"initial-notice": 30} and summary["shards"] == 3
        assert len(mailoutbox) == 30
        queued = list(OrmQ.objects.all())
        assert [q.func() for q in queued] == ["dunning.tasks.shard"] * 2
        for q in queued:  # what a late worker does with them
            args = q.task["args"]
            late = tasks.shard(*args)
            assert (late["executed"], late["sent"], late["shard"]) == ({}, 0, args[3])
    assert len(mailoutbox) == 30
    assert CaseStep.objects.count() == 30


@pytest.mark.django_db
def test_a_shard_out_of_time_hands_the_rest_to_a_new_task(overdue_customer, mailoutbox,
                                                          monkeypatch):
    """A shard stops claiming at half of django-q2's min(timeout, retry) (here: at once,
    after its first batch) and enqueues a shard task for what is left, which finishes it."""
    for i in range(25):
        overdue_customer(name=f"C{i}", email=f"c{i}@example.com")
    monkeypatch.setattr(Conf, "TIMEOUT", 1e-9)
    with override_dunning_settings(SHARDS=1, BATCH_SIZE=10):
        summary = tasks.run(day(1).isoformat())
        assert summary["executed"] == {"initial-notice": 10}
        handed = 0
        while OrmQ.objects.exists():
            q = OrmQ.objects.order_by("pk").first()
            q.delete()
            assert q.func() == "dunning.tasks.shard"
            tasks.shard(*q.task["args"])
            handed += 1
    assert handed == 2  # 10 + 10 + 5 cases
    assert CaseStep.objects.filter(status="sent").count() == 25
    assert len(mailoutbox) == 25


@pytest.mark.django_db
def test_the_shard_count_setting(settings, monkeypatch):
    monkeypatch.setattr(Conf, "WORKERS", 6)
    assert tasks.shard_count() == 6  # default: the cluster's workers
    with override_dunning_settings(SHARDS=3):
        assert tasks.shard_count() == 3
    for bad in (0, -1, "many"):
        with override_dunning_settings(SHARDS=bad), pytest.raises(
            DunningConfigurationError, match="SHARDS"
        ):
            tasks.shard_count()


@pytest.mark.django_db
def test_a_bad_shard_count_fails_the_tick_before_it_does_anything(overdue_customer, mailoutbox):
    overdue_customer(name="Alice", email="alice@example.com")
    with override_dunning_settings(SHARDS=0), pytest.raises(DunningConfigurationError):
        tasks.run(day(1).isoformat())
    assert not Case.objects.exists() and not mailoutbox


# -- dunning schedule: the run and the drain -------------------------------------------
def schedule(*args):
    out = StringIO()
    call_command("dunning", "schedule", *args, stdout=out, no_color=True)
    return out.getvalue()


def schedules():
    return {s.name: s for s in Schedule.objects.all()}


@pytest.mark.django_db
def test_schedule_creates_the_run_and_the_drain():
    out = schedule()
    found = schedules()
    assert set(found) == {"dunning-run", "dunning-drain"}
    drain = found["dunning-drain"]
    assert (drain.func, drain.schedule_type, drain.minutes, drain.repeats) == (
        "dunning.tasks.drain", Schedule.MINUTES, 5, -1)
    assert drain.next_run <= timezone.now()
    assert found["dunning-run"].func == "dunning.tasks.run"
    assert "'dunning-drain': dunning.tasks.drain every 5 minute(s)" in out


@pytest.mark.django_db
def test_schedule_is_idempotent_and_merges_copies():
    schedule("--drain-minutes", "2")
    # A copy made by hand under the same name: the command leaves one of each.
    Schedule.objects.create(name="dunning-run", func="dunning.tasks.run",
                            schedule_type=Schedule.MINUTES, minutes=1)
    out = schedule("--every-minutes", "30", "--drain-minutes", "3")
    assert "Updated" in out
    names = sorted(Schedule.objects.values_list("name", flat=True))
    assert names == ["dunning-drain", "dunning-run"]
    found = schedules()
    assert (found["dunning-run"].schedule_type, found["dunning-run"].minutes) == (Schedule.MINUTES, 30)
    assert found["dunning-drain"].minutes == 3


@pytest.mark.django_db
def test_no_drain_removes_the_drain_schedule_and_remove_removes_both():
    Schedule.objects.create(name="someone-else", func="math.floor")
    schedule()
    out = schedule("--no-drain")
    assert "Removed the schedule 'dunning-drain'" in out
    assert sorted(schedules()) == ["dunning-run", "someone-else"]
    schedule()
    out = schedule("--remove")
    assert "Removed the schedule 'dunning-run'" in out and "'dunning-drain'" in out
    assert sorted(schedules()) == ["someone-else"]


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["--drain-minutes", "0"], "--drain-minutes must be"),
    (["--drain-minutes", "5", "--no-drain"], "not allowed with argument"),
])
def test_bad_drain_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        schedule(*args)
    assert not Schedule.objects.exists()


def test_help_lists_drain():
    from dunning.management.commands.dunning import Command

    assert "drain" in Command().create_parser("manage.py", "dunning").format_help()


def failed_send_left_queued():
    """A step whose message is queued and due for sending (as a transient failure leaves
    it): what ``drain`` sends."""
    customer = runner_customer()
    run_dunning(day(1))
    step = CaseStep.objects.get(case__customer=customer)
    CaseStep.objects.filter(pk=step.pk).update(
        status=CaseStep.Status.QUEUED, next_attempt_at=timezone.now() - datetime.timedelta(seconds=1),
        attempts=1,
    )
    return step


def runner_customer():
    from dunning.testing import create_customer, create_invoice

    customer = create_customer(name="Alice", email="alice@example.com")
    create_invoice(customer, amount_due="10.00", currency="EUR", due_date=DAY0)
    return customer


@pytest.mark.django_db
def test_drain_command_sends_due_retries(mailoutbox):
    pytest.importorskip("dunning.engine.outbox")
    step = failed_send_left_queued()
    mailoutbox.clear()
    out = StringIO()
    call_command("dunning", "drain", stdout=out)
    assert "sent=1" in out.getvalue()
    assert [m.to for m in mailoutbox] == [["alice@example.com"]]
    step.refresh_from_db()
    assert step.status == CaseStep.Status.SENT
    call_command("dunning", "drain", stdout=StringIO())
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_drain_task_through_django_q(mailoutbox):
    pytest.importorskip("dunning.engine.outbox")
    failed_send_left_queued()
    mailoutbox.clear()
    task_id = async_task("dunning.tasks.drain", sync=True)
    task = Task.objects.get(id=task_id)
    assert task.success, task.result
    assert task.result["sent"] == 1 and len(mailoutbox) == 1


# -- real clusters: Redis broker, PostgreSQL -------------------------------------------
def redis_answers():
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001
        return False


CLUSTER_MARKS = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="needs PostgreSQL: run with DUNNING_TEST_DB=postgres"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    # The clusters' schedulers compare the schedules' next_run (written here) with their
    # own clock: this process must read the same one (tests/conftest.py).
    pytest.mark.real_clock,
]


def cluster_test(fn):
    for mark in reversed(CLUSTER_MARKS):
        fn = mark(fn)
    return fn


class Site:
    """The session's PostgreSQL test database, a Redis queue of this test's own, and the
    qcluster processes working on them (all stopped, whatever happens, by the fixture)."""

    def __init__(self, tmp_path, **env):
        if not redis_answers():
            pytest.skip("needs Redis at 127.0.0.1:6379: run `bash .ci/redis.sh`")
        self.tmp = tmp_path
        self.queue = f"dunning-test-{uuid.uuid4().hex[:10]}"
        self.mail_file = tmp_path / "mail.jsonl"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        self.env.update(
            DJANGO_SETTINGS_MODULE="tests.settings_qcluster",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")])),
            PGDATABASE=connection.settings_dict["NAME"],
            DUNNING_Q_NAME=self.queue,
            DUNNING_MAIL_FILE=str(self.mail_file),
            **env,
        )
        self.clusters = []

    def start(self, workers=4):
        cluster = Cluster(self.env, workers, self.tmp / f"qcluster-{len(self.clusters)}.log")
        self.clusters.append(cluster)
        return cluster

    def enqueue(self, func, *args):
        """async_task on this test's Redis queue (as the cluster's settings would)."""
        from django_q.brokers.redis_broker import Redis

        saved = Conf.PREFIX, Conf.CLUSTER_NAME, Conf.REDIS
        Conf.PREFIX = Conf.CLUSTER_NAME = self.queue  # the signing salt and the queue
        Conf.REDIS = {"host": "127.0.0.1", "port": 6379}
        try:
            return async_task(func, *args, broker=Redis(list_key=self.queue))
        finally:
            Conf.PREFIX, Conf.CLUSTER_NAME, Conf.REDIS = saved

    def wait_ready(self, cluster, timeout=60):
        """A trivial task comes back from the cluster."""
        task_id = self.enqueue("math.floor", 1.5)
        wait_for(lambda: Task.objects.filter(id=task_id).exists(), "the cluster takes tasks",
                 [cluster], timeout)

    def worker_pids(self, cluster):
        import psutil

        return {p.pid for p in psutil.Process(cluster.proc.pid).children(recursive=True)}

    def stop(self):
        for cluster in self.clusters:
            cluster.stop(timeout=15)
        try:
            import redis

            redis.Redis(host="127.0.0.1", port=6379).delete(f"django_q:{self.queue}:q")
        except Exception:  # noqa: BLE001
            pass

    def logs(self):
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.tmp.glob("*.log"))


@pytest.fixture
def site(tmp_path):
    sites = []

    def make(**env):
        s = Site(tmp_path / f"site{len(sites)}", **env)
        s.tmp.mkdir()
        sites.append(s)
        return s

    yield make
    for s in sites:
        s.stop()


def wait_for(condition, what, clusters=(), timeout=90):
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [c.proc.returncode for c in clusters if c.proc.poll() is not None]
        assert not dead, f"a cluster exited ({dead}) while waiting until {what}"
        assert time.monotonic() < deadline, f"not {what} within {timeout} s\n{progress()}"
        time.sleep(0.1)


def progress():
    """The runs and steps so far (for a failure message)."""
    runs = "\n".join(
        f"  run {pk} {as_of} {status} {host} {summary}"
        for pk, as_of, status, host, summary in Run.objects.order_by("pk").values_list(
            "pk", "as_of", "status", "host", "summary")
    )
    steps = Counter(CaseStep.objects.values_list("status", flat=True))
    tasks_ = list(Task.objects.values_list("func", "success"))
    return f"runs:\n{runs}\nsteps: {dict(steps)}\ntasks: {tasks_}"


def sent_steps():
    return CaseStep.objects.filter(status=CaseStep.Status.SENT).count()


def wait_quiet(what, clusters, timeout=120, quiet=2.0):
    """Until nothing changes for ``quiet`` seconds: no step written, none sent."""
    last, since = None, time.monotonic()
    deadline = since + timeout

    def snapshot():
        return CaseStep.objects.count(), sent_steps(), Run.objects.filter(status="completed").count()

    while True:
        now = snapshot()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
        assert time.monotonic() < deadline, f"not {what} within {timeout} s"
        assert all(c.proc.poll() is None for c in clusters), "a cluster exited"
        time.sleep(0.1)


def check_exactly_once(site, expected_sent):
    """Every due step recorded once and sent; every message in the file once, to its
    customer; nothing else. Returns (duplicates, lost)."""
    steps = list(CaseStep.objects.values_list(
        "case_id", "case__customer__email", "step_key", "status"))
    twice = [p for p, c in Counter((case, key) for case, _, key, _ in steps).items() if c > 1]
    assert not twice, f"steps recorded twice: {twice[:10]}"
    got = Counter((index_of(email), key) for _, email, key, _ in steps)
    assert max(Counter(i for i, _ in got).values()) == 1, "a customer with two steps in a day"
    want = set(expected_sent.items())
    lost = want - set(got)
    extra = set(got) - want
    assert not lost and not extra, f"{len(lost)} lost, e.g. {sorted(lost)[:5]}; {len(extra)} extra"
    not_sent = [s for s in steps if s[3] != "sent"]
    assert not not_sent, f"{len(not_sent)} steps not sent, e.g. {not_sent[:5]}"
    mail = read_mail(site.mail_file)
    written = Counter((int(m["case"]), m["step"]) for m in mail)
    again = [p for p, c in written.items() if c > 1]
    assert not again, f"{len(again)} messages sent more than once, e.g. {again[:10]}"
    assert set(written) == {(case, key) for case, _, key, _ in steps}, "messages lost"
    email = {case: e for case, e, _, _ in steps}
    assert all(m["to"] == [email[int(m["case"])]] for m in mail)
    return mail


def seeded(n):
    """``n`` customers of tests/concurrency_runner.py's plan; the steps due on day 1."""
    runner.seed(n)
    return Expected(n).run(day(1))[2]


@cluster_test
def test_four_workers_send_every_step_once(site, tmp_path):
    """One tick on a 4-worker cluster over ~2,700 due cases in 100-case batches: 4 shards
    share the work; each step recorded and mailed exactly once."""
    s = site(DUNNING_BATCH_SIZE="100")
    expected = seeded(3000)
    cluster = s.start(workers=4)
    s.wait_ready(cluster)
    workers = s.worker_pids(cluster)
    s.enqueue("dunning.tasks.run", day(1).isoformat())
    wait_for(lambda: sent_steps() >= len(expected), "every step is sent", [cluster], 120)
    wait_quiet("the cluster is idle", [cluster])
    check_exactly_once(s, expected)
    runs = list(Run.objects.values_list("status", "host", "summary"))
    (tick,) = [r for r in runs if "shards" in r[2]]
    assert tick[2]["shards"] == 4
    assert [status for status, _, _ in runs] == ["completed"] * 4
    # The work was shared: every shard advanced cases, in the cluster's worker processes.
    assert all(sum(summary["executed"].values()) > 0 for *_, summary in runs), runs
    assert {int(host.rsplit(":", 1)[1]) for _, host, _ in runs} <= workers
    assert sum(summary["sent"] for *_, summary in runs) == len(expected)


@cluster_test
def test_a_worker_killed_in_the_middle_of_a_batch(site, tmp_path):
    """The first worker to reach its second batch is held inside the batch's transaction
    (its cases claimed and locked) and killed with SIGKILL. The other workers finish the
    day; the killed batch is rolled back by PostgreSQL and its cases are done by the other
    shards if they are still at work, else by the next tick. No step twice, none lost."""
    paused, resume = tmp_path / "paused", tmp_path / "resume"
    s = site(DUNNING_BATCH_SIZE="50", DUNNING_PAUSE_SCRIPT=json.dumps(
        {"on_batch": 2, "paused": str(paused), "resume": str(resume)}))
    expected = seeded(2000)
    cluster = s.start(workers=4)
    s.wait_ready(cluster)
    s.enqueue("dunning.tasks.run", day(1).isoformat())
    wait_for(paused.exists, "a worker is in the middle of its second batch", [cluster], 90)
    victim = int(paused.read_text())
    assert victim in s.worker_pids(cluster), "the held process is a worker of the cluster"
    os.kill(victim, signal.SIGKILL)
    wait_quiet("the other workers are done", [cluster])
    next_tick = sent_steps() < len(expected)
    if next_tick:
        s.enqueue("dunning.tasks.run", day(1).isoformat())
        wait_for(lambda: sent_steps() >= len(expected), "the next tick finishes", [cluster], 120)
        wait_quiet("the cluster is idle", [cluster])
    check_exactly_once(s, expected)
    statuses = Counter(Run.objects.values_list("status", flat=True))
    assert statuses["running"] == 1, statuses  # the killed shard's Run
    # The killed worker was replaced: the cluster still has 4 workers to work with.
    print(f"killed worker {victim}; finished by "
          f"{'the next tick' if next_tick else 'the other shards'}")


@cluster_test
def test_two_clusters_and_two_schedules(site):
    """Two qcluster processes on one queue (started by mistake on two machines) and the
    run scheduled twice (``dunning schedule`` and a copy under another name): both
    schedules fire (two ticks, 2 x 4 shards over 4 workers); nothing is sent twice."""
    s = site(DUNNING_BATCH_SIZE="100", DUNNING_SHARDS="4")
    today = timezone.localdate()
    runner.seed(1500)
    expected = Expected(1500).run(today)[2]
    clusters = [s.start(workers=2), s.start(workers=2)]
    for c in clusters:
        s.wait_ready(c)
    call_command("dunning", "schedule", "--every-minutes", "60", "--no-drain", stdout=StringIO())
    Schedule.objects.create(name="dunning-run (copy)", func="dunning.tasks.run",
                            schedule_type=Schedule.MINUTES, minutes=60, repeats=-1,
                            next_run=timezone.now())
    Schedule.objects.update(next_run=timezone.now() - datetime.timedelta(seconds=1))
    # django-q2's scheduler runs in each cluster's guard loop about every 30 s.
    wait_for(lambda: Run.objects.filter(summary__has_key="shards").count() >= 2,
             "both schedules fired", clusters, 90)
    wait_for(lambda: sent_steps() >= len(expected), "every step is sent", clusters, 120)
    wait_quiet("the clusters are idle", clusters)
    check_exactly_once(s, expected)
    ticks = Run.objects.filter(summary__has_key="shards").count()
    assert ticks == 2, "each schedule fired once (django-q2 locks the schedule rows)"
    assert set(Run.objects.values_list("status", flat=True)) == {"completed"}


@cluster_test
def test_a_tick_that_overlaps_the_previous_one(site, tmp_path):
    """Day 1's run is slow: its tick (one shard here) is held in the middle of its second
    50-case batch. Meanwhile day 2's tick runs and finishes, then day 1's tick is delivered
    a second time and finishes; then the held batch commits and the slow tick ends. Every
    customer owing on day 2 got exactly one step, its first (nothing skipped), each sent
    once: the two day-1 batches on day 1, everything else on day 2."""
    paused, resume = tmp_path / "paused", tmp_path / "resume"
    s = site(DUNNING_BATCH_SIZE="50", DUNNING_SHARDS="1", DUNNING_PAUSE_SCRIPT=json.dumps(
        {"on_batch": 2, "paused": str(paused), "resume": str(resume)}))
    runner.seed(1500)
    expected = Expected(1500).run(day(2))[2]
    cluster = s.start(workers=3)
    s.wait_ready(cluster)
    s.enqueue("dunning.tasks.run", day(1).isoformat())
    wait_for(paused.exists, "day 1's tick is in the middle of its second batch", [cluster])
    slow = Run.objects.get(status="running", host__endswith=f":{paused.read_text()}")

    def ticks_done(n):
        return Run.objects.filter(status="completed", summary__has_key="shards").count() == n

    s.enqueue("dunning.tasks.run", day(2).isoformat())
    wait_for(lambda: ticks_done(1), "day 2's tick is done", [cluster])
    s.enqueue("dunning.tasks.run", day(1).isoformat())
    wait_for(lambda: ticks_done(2), "day 1's tick delivered again is done", [cluster])
    slow.refresh_from_db()
    assert slow.status == "running"
    resume.touch()
    wait_for(lambda: sent_steps() >= len(expected), "every step is sent", [cluster], 120)
    wait_quiet("the cluster is idle", [cluster])
    check_exactly_once(s, expected)
    assert set(Run.objects.values_list("status", flat=True)) == {"completed"}
    by_day = Counter(CaseStep.objects.values_list("executed_on", flat=True))
    assert by_day == {day(1): 100, day(2): len(expected) - 100}, by_day
    slow.refresh_from_db()
    day2 = Run.objects.get(as_of=day(2))
    assert slow.started_at < day2.started_at < day2.finished_at < slow.finished_at


@cluster_test
def test_the_load_script_small(tmp_path):
    """tests/benchmarks/load_qcluster.py with 2,000 cases, 1 and 2 workers: no duplicate,
    nothing lost (its timings are printed, not judged here)."""
    if not redis_answers():
        pytest.skip("needs Redis at 127.0.0.1:6379: run `bash .ci/redis.sh`")
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "tests/benchmarks/load_qcluster.py", "--cases", "2000",
         "--workers", "1,2", "--dbname", connection.settings_dict["NAME"], "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)
    figures = json.loads(out.read_text())
    assert [f["workers"] for f in figures] == [1, 2]
    for f in figures:
        assert (f["steps"], f["messages"]) == (2000, 2000), f
        assert f["duplicate_steps"] == f["duplicate_messages"] == 0, f
        assert f["lost_cases"] == f["lost_steps"] == f["lost_messages"] == f["not_sent"] == 0, f
    assert figures[1]["shards"] == 2
