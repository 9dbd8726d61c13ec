"""Several real ``dunning run`` processes at once, on PostgreSQL and on SQLite.

Each day, N processes are started together (tests/concurrency_runner.py holds them at a
barrier until every interpreter is up) with a small batch size, so that they interleave
over the same cases. Each hands its email to a backend that writes every message to a
file of its own. After each day the test compares the database and the written email
with what the contract says that day must bring, computed here from the rules (not by
the engine):

* every process exits 0 and writes nothing to stderr (no "database is locked", no
  deadlock, no traceback);
* each customer got exactly the step due that day, once; CaseStep(case, step_key) is
  unique; every step is recorded as sent;
* the messages written by all processes together are exactly the sent steps: none
  twice, none missing, each to its customer's address;
* exactly one open case per customer that owes; the runs' summaries add up.

PostgreSQL tests run with ``DUNNING_TEST_DB=postgres``; the children connect to the test
database of this session. SQLite tests use a database file of their own.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from django.db import connection

from tests import concurrency_runner as runner
from tests.concurrency_runner import DAY0, email_of, index_of

# real_clock: the child processes read the real clock, and so does this one.
pytestmark = [pytest.mark.slow, pytest.mark.real_clock]

REPO = Path(__file__).resolve().parent.parent
ONE_DAY = datetime.timedelta(days=1)

# The contract: the default policy's steps (key, days overdue) and the minimum gap.
STEPS = (
    ("initial-notice", 1),
    ("gentle-reminder", 4),
    ("formal-notice", 8),
    ("suspension-warning", 14),
    ("suspension", 21),
    ("final-notice", 30),
    ("termination", 45),
)
MIN_GAP = 3
PAYMENT_RECEIVED = "payment-received"

PROBLEMS = ("database is locked", "deadlock", "Traceback", "IntegrityError")

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: run with DUNNING_TEST_DB=postgres (server at 127.0.0.1:5432)",
)


def day(n):
    return DAY0 + datetime.timedelta(days=n)


# -- what the contract says must happen -----------------------------------------------
class Expected:
    """The contract's rules applied to ``runner.plan(n)``, one run day after another."""

    def __init__(self, n):
        self.invoices = runner.plan(n)
        self.paid = set()
        self.cases = defaultdict(list)  # index -> [{"status", "steps": [(key, date)]}]

    def run(self, as_of):
        """Apply one run; return (cases opened, cases resolved, {index: step key sent})."""
        opened, resolved, sent = 0, 0, {}
        for i, rows in self.invoices.items():
            owing = [] if i in self.paid else [due for _, due, _, _ in rows if due < as_of]
            cases = self.cases[i]
            case = cases[-1] if cases and cases[-1]["status"] == "open" else None
            if case is None:
                if not owing:
                    continue
                case = {"status": "open", "steps": []}
                cases.append(case)
                opened += 1
            if not owing:
                case["status"] = "resolved"
                resolved += 1
                if case["steps"]:
                    case["steps"].append((PAYMENT_RECEIVED, as_of))
                    sent[i] = PAYMENT_RECEIVED
                continue
            done = len(case["steps"])
            if done == len(STEPS):
                continue
            key, offset = STEPS[done]
            due_on = min(owing) + datetime.timedelta(days=offset)
            if case["steps"]:
                last = case["steps"][-1][1]
                due_on = max(due_on, last + datetime.timedelta(days=MIN_GAP), last + ONE_DAY)
            if due_on <= as_of:
                case["steps"].append((key, as_of))
                sent[i] = key
                if key == "termination":
                    case["status"] = "terminated"
        return opened, resolved, sent

    def statuses(self):
        return {i: [c["status"] for c in cases] for i, cases in self.cases.items() if cases}


# -- the two kinds of database ---------------------------------------------------------
def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings_concurrency"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run_child(env, *args, timeout=120):
    done = subprocess.run(
        [sys.executable, "-m", "tests.concurrency_runner", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


class PostgresSite:
    """The session's PostgreSQL test database: seeded and read in this process."""

    def __init__(self):
        name = connection.settings_dict["NAME"]  # the test database of this session
        self.env = child_env(DUNNING_TEST_DB="postgres", PGDATABASE=name)

    def seed(self, n):
        runner.seed(n)

    def pay(self, indices):
        runner.pay(indices)

    def snapshot(self):
        return runner.snapshot()


class SqliteSite:
    """A SQLite database file, migrated, seeded and read by child processes."""

    def __init__(self, path):
        self.env = child_env(DUNNING_TEST_DB=None, DUNNING_SQLITE_NAME=str(path))
        migrate = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr

    def seed(self, n):
        run_child(self.env, "seed", str(n))

    def pay(self, indices):
        run_child(self.env, "pay", ",".join(map(str, indices)))

    def snapshot(self):
        return json.loads(run_child(self.env, "snapshot"))


# -- running the processes ---------------------------------------------------------------
def wait_for(condition, what, processes=(), timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        ended = [p.finish() for p in processes if p.proc.poll() is not None]
        assert not ended, f"a process ended while waiting until {what}: {ended}"
        assert time.monotonic() < deadline, f"not {what} within {timeout} s"
        time.sleep(0.01)


class Process:
    """One ``dunning run`` child, set up and held at the barrier until ``go()``."""

    def __init__(self, site, as_of, workdir, name, batch_size, **env):
        self.mail = workdir / f"mail-{name}"
        self.mail.mkdir(parents=True)
        self.ready, self.go_file = workdir / f"ready-{name}", workdir / f"go-{name}"
        self.out = open(workdir / f"out-{name}", "w+")  # noqa: SIM115
        self.err = open(workdir / f"err-{name}", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.concurrency_runner", "run",
             "--as-of", as_of.isoformat(), "--batch-size", str(batch_size)],
            cwd=REPO, stdout=self.out, stderr=self.err,
            env={**site.env, **env, "DUNNING_MAIL_DIR": str(self.mail),
                 "DUNNING_READY_FILE": str(self.ready), "DUNNING_GO_FILE": str(self.go_file)},
        )
        self.result = None

    def go(self):
        self.go_file.touch()

    def finish(self, timeout=120):
        """(exit code, stdout, stderr); kills the process if it outlives ``timeout``."""
        if self.result is None:
            try:
                code = self.proc.wait(timeout=timeout)
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
            self.out.seek(0)
            self.err.seek(0)
            self.result = (code, self.out.read(), self.err.read())
            self.out.close()
            self.err.close()
        return self.result


def run_together(site, as_of, processes, workdir, batch_size, **env):
    """Run ``processes`` runs of ``dunning run --as-of as_of``, all started at once."""
    started = []
    try:
        for n in range(processes):
            started.append(Process(site, as_of, workdir, n, batch_size, **env))
        wait_for(lambda: all(p.ready.exists() for p in started), "all are ready", started)
        for p in started:
            p.go()
        return [p.finish() for p in started]
    finally:
        for p in started:
            if p.result is None:
                p.proc.kill()
                p.finish()


def read_mail(workdir):
    """Every message the processes handed to their email backend."""
    messages = []
    for path in sorted(workdir.glob("**/mail-*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            m = json.loads(line)
            messages.append({**m, "case": int(m["case"]), "customer": int(m["customer"])})
    return messages


# -- the checks --------------------------------------------------------------------------
def check_day(as_of, results, mail, before, after, expected, today, processes, batch_size,
              killed=0, must_share=True, unknown=frozenset()):
    """``unknown``: the (case, step key) pairs a killed run was handing to the ESP. The
    outbox sends at most once: they end "unknown" (for a person to check), never sent
    again, and every other due step is sent exactly once."""
    label = f"run of {as_of}"
    expected_opened, expected_resolved, expected_sent = today
    for n, (code, out, err) in enumerate(results):
        assert code == 0, f"{label}, process {n}: exit {code}\n{out}\n{err}"
        for problem in PROBLEMS:
            assert problem not in err, f"{label}, process {n} wrote {problem!r}:\n{err}"
        if not unknown:  # marking messages "unknown" logs a warning
            assert err.strip() == "", f"{label}, process {n} wrote to stderr:\n{err}"

    index = {pk: index_of(e) for pk, e in after["customers"]}
    old_steps = {s[0] for s in before["steps"]}
    new_steps = [s for s in after["steps"] if s[0] not in old_steps]

    # The database: each (case, step) once; today's steps exactly those due today.
    pairs = Counter((case, key) for _, case, _, key, *_ in after["steps"])
    twice = sorted(p for p, c in pairs.items() if c > 1)
    assert not twice, f"{label}: steps recorded twice, e.g. {twice[:10]}"
    got = defaultdict(list)
    for _, case, customer, key, status, on, _ in new_steps:
        got[index[customer]].append(key)
        want = "unknown" if (case, key) in unknown else "sent"
        assert (status, on) == (want, as_of.isoformat()), (label, customer, key, status, on)
    twice = {i: keys for i, keys in got.items() if len(keys) > 1}
    assert not twice, f"{label}: customers with two steps in one day: {list(twice.items())[:10]}"
    got = {i: keys[0] for i, keys in got.items()}
    missing = {i: k for i, k in expected_sent.items() if got.get(i) != k}
    extra = {i: k for i, k in got.items() if expected_sent.get(i) != k}
    assert not missing and not extra, (
        f"{label}: {len(missing)} expected steps missing or different, e.g. "
        f"{list(missing.items())[:5]}; {len(extra)} unexpected, e.g. {list(extra.items())[:5]}"
    )

    # The email: exactly the sent steps, none twice, each to its customer.
    written = Counter((m["case"], m["step"]) for m in mail)
    twice = sorted(p for p, c in written.items() if c > 1)
    assert not twice, f"{label}: {len(twice)} messages sent more than once, e.g. {twice[:10]}"
    assert len(new_steps) == len(expected_sent)
    assert len(mail) == len(new_steps) - len(unknown)
    assert set(written) == {(case, key) for _, case, _, key, *_ in new_steps} - set(unknown)
    case_customer = {case: customer for case, customer, _ in after["cases"]}
    for m in mail:
        assert case_customer[m["case"]] == m["customer"], m
        assert m["to"] == [email_of(index[m["customer"]])], m
        assert m["step"] in m["tags"] and m["html"] and m["subject"], m

    # The cases: one open case per customer that owes, and the history the rules give.
    statuses = defaultdict(list)
    for _, customer, status in after["cases"]:
        statuses[index[customer]].append(status)
    assert all(s.count("open") <= 1 for s in statuses.values())
    assert dict(statuses) == expected.statuses(), f"{label}: cases differ from the rules"

    # The runs: one completed run per process, whose summaries add up (a killed run
    # stays "running" and has no summary: what it did is not counted).
    old_runs = {r[0] for r in before["runs"]}
    runs = [r for r in after["runs"] if r[0] not in old_runs]
    assert all(on == as_of.isoformat() for _, on, _, _ in runs)
    run_statuses = sorted(status for _, _, status, _ in runs)
    assert run_statuses == ["completed"] * processes + ["running"] * killed, run_statuses
    summaries = [summary for _, _, status, summary in runs if status == "completed"]
    assert sum(s["sent"] for s in summaries) == len(mail)
    assert sum(s["failed"] for s in summaries) == 0
    if not killed:
        assert sum(s["opened"] for s in summaries) == expected_opened
        assert sum(s["resolved"] for s in summaries) == expected_resolved
        executed = Counter()
        for s in summaries:
            executed.update(s["executed"])
        assert executed == Counter(k for k in expected_sent.values() if k != PAYMENT_RECEIVED)

    # The test proves something only if the processes shared the work. (Not asked of
    # SQLite: it serializes writers, and the process holding the lock may finish the day
    # alone; what SQLite must show is that the others waited and exited 0, checked above.)
    if must_share and len(new_steps) >= 4 * batch_size:
        sharing = Counter(run for *_, run in new_steps)
        assert len(sharing) >= 2, f"{label}: one process did all the work: {sharing}"


def play(site, tmp_path, n, days, processes, batch_size=50, payments=None):
    """Seed ``n`` customers, then for each day run ``processes`` at once and check."""
    payments = payments or {}
    site.seed(n)
    expected = Expected(n)
    before = site.snapshot()
    assert len(before["customers"]) == n and not before["cases"]
    for number, d in enumerate(days):
        as_of = day(d)
        if d in payments and not payments[d] <= expected.paid:
            site.pay(sorted(payments[d]))
            expected.paid |= set(payments[d])
        today = expected.run(as_of)
        workdir = tmp_path / f"{number}-day-{d}"
        results = run_together(site, as_of, processes, workdir, batch_size)
        after = site.snapshot()
        check_day(as_of, results, read_mail(workdir), before, after, expected, today,
                  processes, batch_size, must_share=isinstance(site, PostgresSite))
        before = after
    return expected


# -- the tests ---------------------------------------------------------------------------
@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_postgres_four_processes_over_several_days(tmp_path):
    """Five run days with four processes each: the first opens ~1,800 cases at once; later
    days claim existing cases, open cases for invoices that fell overdue meanwhile and
    resolve the customers who paid."""
    n = 2000
    expected = play(
        PostgresSite(), tmp_path, n, days=[1, 4, 7, 11, 16], processes=4,
        payments={11: {i for i in range(n) if i % 13 == 0}},
    )
    # The days covered every stage: cases opened late, several steps, payments.
    keys = Counter(k for cases in expected.cases.values() for c in cases for k, _ in c["steps"])
    assert {"initial-notice", "gentle-reminder", "formal-notice", "suspension-warning",
            "suspension", PAYMENT_RECEIVED} <= set(keys)


@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_postgres_the_same_day_again_sends_nothing(tmp_path):
    """Four processes for day 1, then four more for day 1: nothing more is written or
    sent; the same for day 4, when every case has a step behind it."""
    play(PostgresSite(), tmp_path, 600, days=[1, 1, 4, 4], processes=4)


def test_sqlite_four_processes_over_several_days(tmp_path):
    """On SQLite the runs wait for each other's write lock: none fails with "database is
    locked" (the default timeout of tests/settings.py is 30 s), and the counts are exact."""
    n = 1000
    play(
        SqliteSite(tmp_path / "dunning.sqlite3"), tmp_path, n, days=[1, 4, 4, 11],
        processes=4, payments={11: {i for i in range(n) if i % 13 == 0}},
    )


@pytest.mark.parametrize("database", [
    "sqlite",
    pytest.param("postgres", marks=[
        postgres_only, pytest.mark.postgres,
        pytest.mark.django_db(transaction=True, serialized_rollback=True),
    ]),
])
def test_a_run_started_during_a_long_run_does_not_send_its_messages_again(database, tmp_path):
    """A run that has been going for longer than OUTBOX_STALE_AFTER (a big site, a slow
    ESP) is alive, not crashed: a run started meanwhile must not take the messages that it
    has just queued and is handing to the ESP for leftovers of a crash and send them too.

    Run A's ESP takes 4 s over A's first batch; when A hands over its second batch, the
    ESP stalls until run B (OUTBOX_STALE_AFTER = 3 s, started then) has finished.
    """
    n, batch_size, stale_after = 100, 10, 3
    site = PostgresSite() if database == "postgres" else SqliteSite(tmp_path / "db.sqlite3")
    site.seed(n)
    before = site.snapshot()
    expected = Expected(n)
    today = expected.run(day(1))
    workdir = tmp_path / "runs"
    paused, resume = workdir / "a-paused", workdir / "a-resume"
    # The ESP is called once per message: call batch_size + 1 opens the second batch.
    script = {"delays": {"1": stale_after + 1}, "pause_on": batch_size + 1,
              "paused": str(paused), "resume": str(resume)}
    env = {"DUNNING_OUTBOX_STALE_AFTER": str(stale_after)}
    a = b = None
    try:
        a = Process(site, day(1), workdir, "a", batch_size,
                    DUNNING_MAIL_SCRIPT=json.dumps(script), **env)
        b = Process(site, day(1), workdir, "b", batch_size, **env)
        wait_for(lambda: a.ready.exists() and b.ready.exists(), "both are ready", [a, b])
        a.go()
        wait_for(paused.exists, "run A hands over its second batch", [a, b])
        b.go()
        result_b = b.finish()
        resume.touch()
        results = [a.finish(), result_b]
    finally:
        for p in (a, b):
            if p is not None and p.result is None:
                p.proc.kill()
                p.finish()
    after = site.snapshot()
    check_day(day(1), results, read_mail(workdir), before, after, expected, today,
              processes=2, batch_size=batch_size)


@pytest.mark.parametrize("database", [
    "sqlite",
    pytest.param("postgres", marks=[
        postgres_only, pytest.mark.postgres,
        pytest.mark.django_db(transaction=True, serialized_rollback=True),
    ]),
])
def test_the_batch_of_a_killed_run_is_never_sent_twice(database, tmp_path):
    """A run killed while it hands a batch to the ESP (which may or may not have taken
    it): once OUTBOX_STALE_AFTER has passed, the next runs (four at once) mark that batch
    "state unknown" for a person and never send it again (at most once, see
    docs/outbox.md), and do the rest of the day's work, each message exactly once."""
    n, batch_size, stale_after = 100, 10, 1
    site = PostgresSite() if database == "postgres" else SqliteSite(tmp_path / "db.sqlite3")
    site.seed(n)
    before = site.snapshot()
    expected = Expected(n)
    today = expected.run(day(1))
    workdir = tmp_path / "runs"
    paused = workdir / "killed-paused"
    script = {"pause_on": 1, "paused": str(paused), "resume": str(workdir / "never")}
    env = {"DUNNING_OUTBOX_STALE_AFTER": str(stale_after)}
    killed = Process(site, day(1), workdir, "killed", batch_size,
                     DUNNING_MAIL_SCRIPT=json.dumps(script), **env)
    try:
        wait_for(killed.ready.exists, "the run to be killed is ready", [killed])
        killed.go()
        wait_for(paused.exists, "it hands over its first batch", [killed])
    finally:
        killed.proc.kill()
        killed.finish()
    in_flight = [s for s in site.snapshot()["steps"] if s[4] == "sending"]
    assert len(in_flight) == batch_size, "the killed run was handing over its first batch"
    time.sleep(stale_after + 0.5)
    results = run_together(site, day(1), 4, workdir / "after", batch_size, **env)
    after = site.snapshot()
    check_day(day(1), results, read_mail(workdir), before, after, expected, today,
              processes=4, batch_size=batch_size, killed=1,
              unknown={(case, key) for _, case, _, key, *_ in in_flight})
