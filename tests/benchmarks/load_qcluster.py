"""Load test of the scheduled run: real qcluster processes, Redis broker, PostgreSQL.

For each worker count (default 1, 2 and 4) in turn, on a fresh database state:

1. seed N customers (default 50,000) with one overdue invoice each (two ``INSERT ...
   SELECT generate_series`` statements), so that the day's run has N due steps;
2. start ``python -m django qcluster`` with that many workers (settings
   ``tests.settings_qcluster``: Redis at 127.0.0.1:6379, a queue of this script's own);
3. enqueue one tick (``dunning.tasks.run``) and wait until every step is sent;
4. count: steps recorded twice, messages recorded twice in the mail file (one JSON line per
   message handed to the email backend, from every worker), due cases without their step,
   sent steps without a message.

It prints the figures; it asserts nothing about time (tests/test_scale.py runs it small
and checks the counts). The database ``--dbname`` (default ``dunning_load``) is created if
missing and migrated; its dunning and django-q tables are emptied before each round.

    .venv/bin/python tests/benchmarks/load_qcluster.py                    # 50,000 cases
    .venv/bin/python tests/benchmarks/load_qcluster.py --cases 5000 --workers 1,2

Needs PostgreSQL (``bash .ci/postgres.sh``) and Redis (``bash .ci/redis.sh``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AS_OF = datetime.date(2026, 3, 2)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=50_000, help="due cases (default 50,000)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--dbname", default="dunning_load", help="PostgreSQL database")
    parser.add_argument("--batch-size", type=int, help="DUNNING['BATCH_SIZE'] (default 500)")
    parser.add_argument("--shards", type=int,
                        help="DUNNING['SHARDS'] (default: the cluster's workers)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per round")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds per worker count, interleaved; the best counts")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",") if w]
    return args


def environment(args, workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings_qcluster",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        PGDATABASE=args.dbname,
        DUNNING_Q_NAME=f"dunning-load-{uuid.uuid4().hex[:8]}",
        DUNNING_MAIL_FILE=str(workdir / "mail.jsonl"),
    )
    if args.batch_size:
        env["DUNNING_BATCH_SIZE"] = str(args.batch_size)
    if args.shards:
        env["DUNNING_SHARDS"] = str(args.shards)
    return env


def create_database(name):
    import psycopg

    params = {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", "dunning"),
        "password": os.environ.get("PGPASSWORD", "dunning"),
    }
    with psycopg.connect(dbname=os.environ.get("PGMAINDATABASE", "postgres"), autocommit=True,
                         **params) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


# -- one round ---------------------------------------------------------------------------
def reset():
    """Empty the dunning and django-q tables (policies and templates stay)."""
    from django.db import connection
    from django_q.models import OrmQ, Schedule, Task

    from dunning.hosts import get_customer_model, get_invoice_model
    from dunning.models import Case, CaseEvent, CaseInvoice, CaseStep, Run

    models = [CaseInvoice, CaseEvent, CaseStep, Case, Run, get_invoice_model(),
              get_customer_model(), Task, OrmQ, Schedule]
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def seed(n):
    """``n`` customers, each with one invoice 1 to 30 days overdue on AS_OF."""
    from django.db import connection

    from dunning.hosts import get_customer_model, get_invoice_model

    qn = connection.ops.quote_name
    customers = qn(get_customer_model()._meta.db_table)
    invoices = qn(get_invoice_model()._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {customers} (name, email, phone, language, timezone) "
            "SELECT 'Customer ' || g, 'c' || g || '@example.com', '', "
            "CASE WHEN g %% 3 = 0 THEN 'de' ELSE 'en' END, '' "
            "FROM generate_series(1, %s) AS g",
            [n],
        )
        cursor.execute(
            f"INSERT INTO {invoices} (customer_id, number, amount_due, currency, due_date) "
            "SELECT c.id, 'INV-' || c.id, 10.50 + c.id %% 90, "
            "CASE WHEN c.id %% 7 = 0 THEN 'USD' ELSE 'EUR' END, %s::date - (1 + c.id %% 30)::integer "
            f"FROM {customers} c",
            [AS_OF],
        )
        cursor.execute(f"ANALYZE {customers}")
        cursor.execute(f"ANALYZE {invoices}")


class Cluster:
    """``python -m django qcluster`` in a session of its own (so it can be killed whole)."""

    def __init__(self, env, workers, log):
        self.log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "django", "qcluster"],
            cwd=REPO, env={**env, "DUNNING_Q_WORKERS": str(workers)},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self, timeout=30):
        """SIGTERM (django-q2 lets running tasks finish), then SIGKILL for what is left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


def wait_until_ready(cluster, timeout=60):
    """A trivial task comes back: the cluster takes tasks from the queue."""
    from django_q.models import Task
    from django_q.tasks import async_task

    task_id = async_task("math.floor", 1.5)
    deadline = time.monotonic() + timeout
    while not Task.objects.filter(id=task_id).exists():
        if cluster.proc.poll() is not None:
            raise SystemExit(f"the cluster exited with {cluster.proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the cluster took no task within {timeout} s")
        time.sleep(0.05)


class CpuMeter:
    """CPU seconds used by the cluster's processes and by the PostgreSQL backends of the
    database during a round (sampled every 0.2 s: a process's last reading counts), and
    the machine's, to tell a slow round from a busy machine. Needs psutil."""

    def __init__(self, cluster, dbname):
        import threading

        import psutil

        self.psutil = psutil
        self.cluster, self.dbname = cluster, dbname
        self.seen = {"cluster": {}, "postgres": {}, "autovacuum": {}}
        self.sample()
        # What the processes alive now had used before (start-up): not the round's.
        self.baseline = {pid: t for seen in self.seen.values() for pid, t in seen.items()}
        self.seen = {"cluster": {}, "postgres": {}, "autovacuum": {}}
        self.stopped = threading.Event()
        self.machine_before = psutil.cpu_times()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def sample(self):
        psutil = self.psutil
        try:
            tree = psutil.Process(self.cluster.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree:
            self.read("cluster", proc)
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if cmd.startswith("postgres:") and f" {self.dbname} " in cmd:
                self.read("autovacuum" if "autovacuum" in cmd else "postgres", proc)

    def read(self, kind, proc):
        try:
            t = proc.cpu_times()
        except self.psutil.Error:
            return
        self.seen[kind][proc.pid] = t.user + t.system - getattr(self, "baseline", {}).get(proc.pid, 0)

    def loop(self):
        while not self.stopped.wait(0.2):
            self.sample()

    def stop(self):
        self.sample()
        self.stopped.set()
        self.thread.join()
        after = self.psutil.cpu_times()
        busy = sum(
            getattr(after, f) - getattr(self.machine_before, f)
            for f in ("user", "system", "nice", "irq", "softirq", "steal") if hasattr(after, f)
        )
        return {
            "cluster_cpu_seconds": round(sum(self.seen["cluster"].values()), 1),
            "postgres_cpu_seconds": round(
                sum(self.seen["postgres"].values()) + sum(self.seen["autovacuum"].values()), 1),
            "autovacuum_cpu_seconds": round(sum(self.seen["autovacuum"].values()), 1),
            "machine_cpu_seconds": round(busy, 1),
        }


def sent_count():
    """Messages sent by the finished tasks (their ``Run`` summaries: a few rows, so that
    polling costs the database next to nothing)."""
    from dunning.models import Run

    return sum(
        (summary or {}).get("sent", 0)
        for summary in Run.objects.filter(status=Run.Status.COMPLETED).values_list(
            "summary", flat=True)
    )


def check(n, mail_file):
    """Duplicates and losses, from the database and the recorded messages."""
    from django.db.models import Count

    from dunning.models import Case, CaseStep
    from tests.recording_backend import read_mail

    steps = list(CaseStep.objects.values_list("case_id", "step_key", "status"))
    twice_in_db = (
        CaseStep.objects.values("case_id", "step_key").annotate(n=Count("pk")).filter(n__gt=1).count()
    )
    mail = Counter((int(m["case"]), m["step"]) for m in read_mail(mail_file))
    twice_in_mail = sum(c - 1 for c in mail.values() if c > 1)
    stepped = {case for case, key, status in steps if key == "initial-notice" and status == "sent"}
    cases = set(Case.objects.values_list("pk", flat=True))
    return {
        "steps": len(steps),
        "messages": sum(mail.values()),
        "duplicate_steps": twice_in_db,
        "duplicate_messages": twice_in_mail,
        # every customer owes: each must have a case with its first step, sent, and mailed
        "lost_cases": n - len(cases),
        "lost_steps": len(cases - stepped),
        "lost_messages": len({(c, "initial-notice") for c in stepped} - set(mail)),
        "not_sent": sum(1 for *_, status in steps if status != "sent"),
    }


def round_(args, env, workers, workdir):
    from django.db.models import Max, Min
    from django_q.tasks import async_task

    from dunning.models import Run

    reset()
    seed(args.cases)
    mail_file = workdir / "mail.jsonl"
    if mail_file.exists():
        mail_file.unlink()
    cluster = Cluster(env, workers, workdir / f"qcluster-{workers}.log")
    meter = None
    try:
        wait_until_ready(cluster)
        meter = CpuMeter(cluster, args.dbname) if psutil_available() else None
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        async_task("dunning.tasks.run", AS_OF.isoformat())
        deadline = started + args.timeout
        while sent_count() < args.cases:
            if cluster.proc.poll() is not None:
                raise SystemExit(f"the cluster exited with {cluster.proc.returncode}")
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
        cpu = meter.stop() if meter else {}
        meter = None
        load = round(max(load_before, os.getloadavg()[0]), 1)
        # Let any straggler (a duplicate would be one) reach the mail file.
        time.sleep(1.0)
    finally:
        if meter:
            meter.stop()
        cluster.stop()
    span = Run.objects.aggregate(start=Min("started_at"), end=Max("finished_at"))
    runs = list(Run.objects.values_list("status", "summary"))
    seconds = (span["end"] - span["start"]).total_seconds() if span["end"] else wall
    figures = {
        "workers": workers,
        "cases": args.cases,
        "seconds": round(seconds, 2),
        "wall_seconds": round(wall, 2),
        "cases_per_second": round(args.cases / seconds, 1),
        "tasks": len(runs),
        "shards": next((s.get("shards") for _, s in runs if "shards" in s), None),
        "runs_completed": sum(1 for status, _ in runs if status == "completed"),
        **check(args.cases, mail_file),
        "load_average": load,
        **cpu,
    }
    if cpu:
        # The round's own CPU (workers + their PostgreSQL backends) against what the
        # machine spent meanwhile: the rest went to other processes.
        ours = cpu["cluster_cpu_seconds"] + cpu["postgres_cpu_seconds"]
        figures["others_cpu_seconds"] = round(max(cpu["machine_cpu_seconds"] - ours, 0), 1)
        figures["cpu_ms_per_case"] = round(1000 * ours / args.cases, 2)
    return figures


def psutil_available():
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None):
    args = parse_args(argv)
    create_database(args.dbname)
    workdir = Path(tempfile.mkdtemp(prefix="dunning-load-"))
    env = environment(args, workdir)
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"{args.cases:,} due cases; PostgreSQL database {args.dbname!r}; Redis queue "
          f"{env['DUNNING_Q_NAME']!r}; {os.cpu_count()} cores; logs in {workdir}", flush=True)
    results = []
    for repeat in range(args.repeat):
        for workers in args.workers:
            figures = round_(args, env, workers, workdir)
            figures["repeat"] = repeat
            results.append(figures)
            print(
                f"workers={figures['workers']} shards={figures['shards']} "
                f"seconds={figures['seconds']} cases/s={figures['cases_per_second']} "
                f"steps={figures['steps']} messages={figures['messages']} "
                f"duplicate_steps={figures['duplicate_steps']} "
                f"duplicate_messages={figures['duplicate_messages']} "
                f"lost_steps={figures['lost_steps']} lost_messages={figures['lost_messages']} "
                f"lost_cases={figures['lost_cases']} not_sent={figures['not_sent']}",
                flush=True,
            )
            if "cluster_cpu_seconds" in figures:
                print(
                    f"    cpu: cluster={figures['cluster_cpu_seconds']}s "
                    f"postgres={figures['postgres_cpu_seconds']}s "
                f"(autovacuum {figures['autovacuum_cpu_seconds']}s) "
                    f"({figures['cpu_ms_per_case']} ms/case); other processes on the machine "
                    f"{figures['others_cpu_seconds']}s; load average {figures['load_average']}",
                    flush=True,
                )
    # The best round of each worker count: the one the other processes on the machine
    # disturbed least.
    best = {}
    for f in results:
        if f["cases_per_second"] > best.get(f["workers"], {}).get("cases_per_second", 0):
            best[f["workers"]] = f
    cores = os.cpu_count() or 1
    if 1 in best:
        base = best[1]
        for w, f in sorted(best.items()):
            if w == 1:
                continue
            line = f"speed-up {w} workers / 1 worker: {f['cases_per_second'] / base['cases_per_second']:.2f}x"
            if "cpu_ms_per_case" in f:
                # The ceiling: this round's own CPU (workers and PostgreSQL) spread over
                # min(N, cores) cores with nothing else running, against the measured
                # 1-worker round (whose other processes' CPU is shown: it should be ~0).
                ideal = 1000 / f["cpu_ms_per_case"] * min(w, cores)
                line += (f"; ceiling with {min(w, cores)} idle core(s): "
                         f"{ideal / base['cases_per_second']:.2f}x (1-worker round: other "
                         f"processes {base.get('others_cpu_seconds', '?')}s)")
            print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
