#!/usr/bin/env python
"""Benchmark: the collections dashboard on PostgreSQL with 1,000,000 invoices.

    .venv/bin/python tests/benchmarks/bench_dashboard.py [--scale 1.0] [--reuse] [--explain]

Creates (drops first) the PostgreSQL database ``bench_dashboard`` on the server of
``DUNNING_TEST_DB=postgres`` in tests/settings.py (PGHOST, PGPORT, PGUSER, PGPASSWORD as
there), migrates it, and loads with ``INSERT ... SELECT generate_series`` (raw SQL,
table and column names from the models' ``_meta``):

* 250,000 customers with 4 invoices each (1,000,000 invoices; EUR, USD, GBP);
* 200,000 cases, one per customer: 15 % open, 65 % resolved, 10 % terminated, 10 %
  written off, opened and closed over the last 18 months; the executed steps of the
  standard policy each case would have got (about 3.4 per case, every 50th failed),
  with the invoice snapshot its message listed, and the thank-you of resolved cases;
* a promise to pay on every 7th case (kept, broken or pending).

Then ``VACUUM ANALYZE``, and times (warm, median of ``--repeat`` calls) each
``dunning.reports`` function and a full GET of the admin dashboard page with the Django
test client as a superuser, with their query counts. ``--scale 0.1`` loads a tenth of
everything (quick tries). Nothing here asserts; ``--check`` exits 1 when the page takes
a second or more. See tests/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TODAY = datetime.date(2026, 3, 2)  # the dashboard's "as of" date; all data lies before it
TARGET_PAGE_SECONDS = 1.0
URL = "/admin/dunning/case/dashboard/"


def setup_django(database, serial=False):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DUNNING_TEST_DB"] = "postgres"
    os.environ["PGDATABASE"] = database
    import django
    from django.conf import settings

    if serial:
        options = settings.DATABASES["default"].setdefault("OPTIONS", {})
        options["options"] = "-c max_parallel_workers_per_gather=0"
    django.setup()
    settings.DEBUG = False


def maintenance(*statements):
    """Run statements (with one database name each) on the server's ``postgres`` database."""
    import psycopg
    from psycopg import sql

    from tests.settings import database as settings_database

    conf = settings_database()
    with psycopg.connect(
        host=conf["HOST"], port=conf["PORT"], user=conf["USER"], password=conf["PASSWORD"],
        dbname="postgres", autocommit=True,
    ) as conn:
        for statement, database in statements:
            conn.execute(sql.SQL(statement).format(sql.Identifier(database)))


def create_database(database):
    maintenance(("DROP DATABASE IF EXISTS {}", database), ("CREATE DATABASE {}", database))


def drop_database(database):
    maintenance(("DROP DATABASE IF EXISTS {}", database))


# -- loading -----------------------------------------------------------------------------


def names(model):
    """Quoted table name and a function giving a field's quoted column."""
    from django.db import connection

    qn = connection.ops.quote_name
    return qn(model._meta.db_table), lambda field: qn(model._meta.get_field(field).column)


STEPS = [  # the shipped standard policy: key, offset days, action
    ("initial-notice", 1, ""), ("gentle-reminder", 4, ""), ("formal-notice", 8, ""),
    ("suspension-warning", 14, ""), ("suspension", 21, "suspend"),
    ("final-notice", 30, ""), ("termination", 45, "terminate"),
]


def load(scale, say):
    """Insert the data set; returns the row counts."""
    from django.db import connection

    from dunning.hosts import get_customer_model, get_invoice_model
    from dunning.models import Case, CaseStep, Policy

    customers = max(int(250_000 * scale), 20)
    cases = max(int(200_000 * scale), 16)
    policy = Policy.objects.get(key="standard").pk
    cust_t, cust = names(get_customer_model())
    inv_t, inv = names(get_invoice_model())
    case_t, case = names(Case)
    step_t, step = names(CaseStep)
    today = f"DATE '{TODAY.isoformat()}'"
    # amount of invoice j of customer c (the snapshots use the same formula)
    amount = "(20 + ((c * 13 + j * 7) % 480) + 0.5)::numeric(14, 2)"
    steps_values = ", ".join(f"('{k}', {o}, '{a}')" for k, o, a in STEPS)

    statements = [
        ("customers", f"""
            INSERT INTO {cust_t} ({cust('id')}, {cust('name')}, {cust('email')}, {cust('phone')},
                {cust('language')}, {cust('timezone')})
            SELECT c, 'Customer ' || c, 'c' || c || '@example.com', '',
                   CASE WHEN c % 2 = 0 THEN 'de' ELSE 'en' END, 'Europe/Berlin'
            FROM generate_series(1, {customers}) c"""),
        # The plan of every case: status, days from opening to closing (open: to today),
        # closing date; one case per customer c = k.
        ("plan", f"""
            CREATE TEMPORARY TABLE bench_plan AS
            SELECT ROW_NUMBER() OVER (ORDER BY COALESCE(closed_on, {today}) - dur, k) AS id,
                   k, status, dur, COALESCE(closed_on, {today}) - dur AS opened_on, closed_on
            FROM (
                SELECT k, status,
                       CASE status WHEN 'open' THEN (k * 7) % 44
                                   WHEN 'resolved' THEN (k * 13) % 8
                                   WHEN 'terminated' THEN 44
                                   ELSE 10 + k % 20 END AS dur,
                       CASE WHEN status = 'open' THEN NULL
                            ELSE {today} - 1 - (k * 31) % 540 END AS closed_on
                FROM (
                    SELECT k, CASE WHEN k % 20 < 3 THEN 'open'
                                   WHEN k % 20 < 16 THEN 'resolved'
                                   WHEN k % 20 < 18 THEN 'terminated'
                                   ELSE 'written_off' END AS status
                    FROM generate_series(1, {cases}) k
                ) s
            ) t"""),
        ("invoices", f"""
            INSERT INTO {inv_t} ({inv('customer')}, {inv('number')}, {inv('amount_due')},
                {inv('currency')}, {inv('due_date')})
            SELECT c, 'B' || c || '-' || j,
                   CASE WHEN p.k IS NULL THEN CASE WHEN j = 3 THEN {amount} ELSE 0 END
                        WHEN j = 3 THEN {amount}
                        WHEN p.status = 'open' THEN {amount}
                        WHEN j = 0 AND p.status <> 'resolved' THEN {amount}
                        ELSE 0 END,
                   CASE WHEN c / 20 % 10 < 6 THEN 'EUR' WHEN c / 20 % 10 < 9 THEN 'USD' ELSE 'GBP' END,
                   CASE WHEN p.k IS NULL AND j = 3 THEN {today} - 10 + c % 30
                        WHEN p.k IS NULL THEN {today} - (c % 300) - 30 * j
                        WHEN j = 0 THEN p.opened_on - 1
                        WHEN j = 1 AND p.status = 'open' THEN p.opened_on - 1 - ((c / 3) % 4) * 35
                        WHEN j = 1 THEN p.opened_on - 200
                        WHEN j = 2 THEN p.opened_on + 5
                        ELSE {today} + c % 30 END
            FROM generate_series(1, {customers}) c
            CROSS JOIN generate_series(0, 3) j
            LEFT JOIN bench_plan p ON p.k = c"""),
        ("cases", f"""
            INSERT INTO {case_t} ({case('id')}, {case('customer')}, {case('policy')},
                {case('status')}, {case('opened_on')}, {case('opened_at')}, {case('closed_on')},
                {case('last_step_key')}, {case('last_step_on')}, {case('next_due_on')},
                {case('suspended')}, {case('needs_person')}, {case('pause_reason')},
                {case('promised_on')}, {case('promised_amount')}, {case('updated_at')})
            SELECT p.id, p.k, {policy}, p.status, p.opened_on, p.opened_on + TIME '06:00',
                   p.closed_on, last.key, p.opened_on + last.off - 1,
                   CASE WHEN p.status = 'open' THEN {today} + 1 END,
                   p.status = 'open' AND p.dur >= 20, p.k % 50 = 0, '',
                   CASE WHEN p.k % 7 <> 0 THEN NULL
                        WHEN p.status = 'open' THEN {today} - 10 + p.k / 20 % 20
                        WHEN p.status = 'resolved' THEN p.closed_on - p.k % 9
                        ELSE p.closed_on - 10 END,
                   CASE WHEN p.k % 7 = 0 THEN 50 + p.k % 100 END,
                   now()
            FROM bench_plan p
            CROSS JOIN LATERAL (
                SELECT st.key, st.off FROM (VALUES {steps_values}) st(key, off, action)
                WHERE st.off - 1 <= p.dur ORDER BY st.off DESC LIMIT 1
            ) last
            ORDER BY p.id"""),
        # Every executed step and the thank-yous of resolved cases, in the order a live
        # system writes them (by date), so that the table's physical order is realistic.
        ("steps", f"""
            INSERT INTO {step_t} ({step('case')}, {step('step_key')}, {step('action')},
                {step('channel')}, {step('executed_on')}, {step('created_at')},
                {step('status')}, {step('recipient')}, {step('language')}, {step('reason')},
                {step('invoices')}, {step('message_id')}, {step('sent_at')},
                {step('delivery_status')}, {step('attempts')})
            SELECT p.id, st.key, st.action, 'email', p.opened_on + st.off - 1,
                   p.opened_on + st.off - 1 + TIME '06:00',
                   CASE WHEN (p.k + st.off) % 50 = 0 THEN 'failed' ELSE 'sent' END,
                   'c' || p.k || '@example.com', CASE WHEN p.k % 2 = 0 THEN 'de' ELSE 'en' END,
                   CASE WHEN (p.k + st.off) % 50 = 0 THEN 'bench: no address' ELSE '' END,
                   CASE WHEN p.status = 'open' THEN jsonb_build_array(
                            jsonb_build_object('number', 'B' || p.k || '-1',
                                'amount_due', (20 + ((p.k * 13 + 7) % 480) + 0.5)::numeric(14, 2)::text,
                                'currency', cur.code,
                                'due_date', (p.opened_on - 1 - ((p.k / 3) % 4) * 35)::text),
                            jsonb_build_object('number', 'B' || p.k || '-0',
                                'amount_due', (20 + ((p.k * 13) % 480) + 0.5)::numeric(14, 2)::text,
                                'currency', cur.code, 'due_date', (p.opened_on - 1)::text))
                        ELSE jsonb_build_array(
                            jsonb_build_object('number', 'B' || p.k || '-0',
                                'amount_due', (20 + ((p.k * 13) % 480) + 0.5)::numeric(14, 2)::text,
                                'currency', cur.code, 'due_date', (p.opened_on - 1)::text)) END,
                   '', p.opened_on + st.off - 1 + TIME '06:01', '', 1
            FROM bench_plan p
            CROSS JOIN LATERAL (SELECT CASE WHEN p.k / 20 % 10 < 6 THEN 'EUR' WHEN p.k / 20 % 10 < 9
                                THEN 'USD' ELSE 'GBP' END AS code) cur
            JOIN (VALUES {steps_values}) st(key, off, action) ON st.off - 1 <= p.dur
            UNION ALL
            SELECT p.id, 'payment-received', '', 'email', p.closed_on, p.closed_on + TIME '06:00',
                   'sent', 'c' || p.k || '@example.com', 'en', '', '[]'::jsonb, '',
                   p.closed_on + TIME '06:01', '', 1
            FROM bench_plan p WHERE p.status = 'resolved'
            ORDER BY 5, 1"""),
    ]
    with connection.cursor() as cursor:
        for label, statement in statements:
            started = time.perf_counter()
            cursor.execute(statement)
            say(f"  {label:<12} {cursor.rowcount:>10,} rows  {time.perf_counter() - started:6.1f} s")
        for table, model in ((cust_t, get_customer_model()), (inv_t, get_invoice_model()),
                             (case_t, Case), (step_t, CaseStep)):
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, %s), (SELECT MAX(id) FROM "
                f"{table}))", [model._meta.db_table, model._meta.pk.column],
            )
        cursor.execute("DROP TABLE bench_plan")


def vacuum_analyze(say):
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    say(f"  VACUUM ANALYZE            {time.perf_counter() - started:6.1f} s")


def counts():
    from django.db.models import Count

    from dunning.hosts import get_customer_model, get_invoice_model
    from dunning.models import Case, CaseStep

    result = {
        "customers": get_customer_model()._default_manager.count(),
        "invoices": get_invoice_model()._default_manager.count(),
        "cases": Case.objects.count(),
        "steps": CaseStep.objects.count(),
        "promises": Case.objects.filter(promised_on__isnull=False).count(),
    }
    result["by status"] = dict(
        Case.objects.order_by().values_list("status").annotate(n=Count("pk"))
    )
    return result


# -- timing ------------------------------------------------------------------------------


def backend_pid():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def process_cpu(pid):
    """CPU seconds (user + system) of a local process so far, or None (not local/Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def timed(func, repeat):
    """Median wall seconds of ``repeat`` warm calls, all times, CPU seconds per call
    (this process + the PostgreSQL backend serving it; parallel query workers are not
    included), query count, the queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    func()  # warm: the first call pays for imports, template compiling, cold caches
    pid = backend_pid()
    own, backend = time.process_time(), process_cpu(pid)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    cpu = None
    backend_after = process_cpu(pid)
    if backend is not None and backend_after is not None and backend_pid() == pid:
        cpu = (time.process_time() - own + backend_after - backend) / repeat
    with CaptureQueriesContext(connection) as ctx:
        func()
    return statistics.median(times), times, cpu, len(ctx.captured_queries), ctx.captured_queries


def explain(queries):
    from django.db import connection

    with connection.cursor() as cursor:
        for query in queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            print("\n" + sql[:300] + (" ..." if len(sql) > 300 else ""))
            for (line,) in cursor.fetchall():
                print("    " + line)


def measure(repeat, do_explain):
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    from dunning.queries import reports

    setup_test_environment()  # ALLOWED_HOSTS gets "testserver"
    functions = {
        "open_cases": lambda: reports.open_cases(TODAY),
        "recovery": lambda: reports.recovery(TODAY),
        "recovered_amounts": lambda: reports.recovered_amounts(TODAY),
        "average_days_to_collect": reports.average_days_to_collect,
        "promises": lambda: reports.promises(TODAY),
        "aging": lambda: reports.aging(TODAY),
        "step_effectiveness (all)": reports.step_effectiveness,
        "step_effectiveness (90 d)": lambda: reports.step_effectiveness(
            today=TODAY, days=reports.STEP_WINDOW_DAYS),
        "case_figures": lambda: reports.case_figures(TODAY),
        "dashboard (all figures)": lambda: reports.dashboard(TODAY),
    }
    rows = []
    for label, func in functions.items():
        median, times, cpu, queries, captured = timed(func, repeat)
        rows.append((label, median, min(times), max(times), cpu, queries))
        if do_explain and label not in ("case_figures", "dashboard (all figures)"):
            explain(captured)

    User = get_user_model()
    user = User._default_manager.filter(username="bench-admin").first()
    if user is None:
        user = User._default_manager.create_superuser("bench-admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(user)

    def page():
        response = client.get(URL, {"as_of": TODAY.isoformat()})
        assert response.status_code == 200, response.status_code
        return response

    started = time.perf_counter()
    page()
    first = time.perf_counter() - started
    median, times, cpu, queries, _captured = timed(page, repeat)
    rows.append(("GET dashboard page", median, min(times), max(times), cpu, queries))
    return rows, first, reports.dashboard(TODAY)


def git_revision():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "dunning"], cwd=ROOT,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in dunning/" if dirty else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the full data set (default 1.0: 1,000,000 invoices)")
    parser.add_argument("--database", default="bench_dashboard",
                        help="PostgreSQL database to (re)create (default bench_dashboard)")
    parser.add_argument("--reuse", action="store_true",
                        help="time an already loaded database: no drop, no load")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls each (median)")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN ANALYZE of each report function's queries")
    parser.add_argument("--serial", action="store_true",
                        help="no parallel query (max_parallel_workers_per_gather = 0), so "
                             "that the CPU column counts all the database's work")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when the page takes {TARGET_PAGE_SECONDS:g} s or more")
    args = parser.parse_args(argv)

    def say(text):
        print(text, flush=True)

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    # Before tests.settings is first imported: it reads them once.
    os.environ["DUNNING_TEST_DB"] = "postgres"
    os.environ["PGDATABASE"] = args.database
    load_seconds = None
    if not args.reuse:
        say(f"creating database {args.database} ...")
        create_database(args.database)
    setup_django(args.database, serial=args.serial)
    if not args.reuse:
        from django.core.management import call_command

        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        say(f"  migrate                   {time.perf_counter() - started:6.1f} s")
        say(f"loading (scale {args.scale:g}) ...")
        started = time.perf_counter()
        load(args.scale, say)
        vacuum_analyze(say)
        load_seconds = time.perf_counter() - started
    data = counts()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        server = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    rows, first, figures = measure(args.repeat, args.explain)

    print()
    print(f"django-dunning dashboard benchmark, code at {git_revision()}")
    print(f"{server}, database {args.database} ({size}); Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(", ".join(f"{value:,} {key}" for key, value in data.items() if key != "by status")
          + "; cases by status " + ", ".join(f"{k} {v:,}" for k, v in sorted(data["by status"].items())))
    if load_seconds is not None:
        print(f"load (INSERT ... SELECT generate_series + VACUUM ANALYZE): {load_seconds:.1f} s")
    print()
    header = (f"{'figure':<28}{'median s':>10}{'min s':>9}{'max s':>9}{'cpu s':>9}"
              f"{'queries':>9}")
    print(header)
    print("-" * len(header))
    for label, median, low, high, cpu, queries in rows:
        cpu_text = "-" if cpu is None else f"{cpu:.3f}"
        print(f"{label:<28}{median:>10.3f}{low:>9.3f}{high:>9.3f}{cpu_text:>9}{queries:>9}")
    print("(cpu s: CPU time per call of this process and its PostgreSQL backend, "
          + ("no parallel query workers: --serial" if args.serial
             else "without parallel query workers' CPU; --serial counts it all") + ")")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(f"(first GET of the page, after the report calls above: {first:.3f} s)")
    print()
    print(f"open cases {figures['open']['count']:,}; amounts overdue "
          + ", ".join(f"{a['currency']} {a['amount']:,}" for a in figures["open"]["amounts"]))
    for days, window in figures["recovery"].items():
        recovered = ", ".join(f"{a['currency']} {a['amount']:,}" for a in figures["recovered"][days])
        print(f"last {days} days: {window['closed']:,} closed, {window['resolved']:,} resolved, "
              f"rate {window['rate']}; recovered {recovered or '-'}")
    print(f"days to collect {figures['days_to_collect']}; promises {figures['promises']}")
    print("aging " + ", ".join(f"{b['bucket']}: {b['count']:,}" for b in figures["aging"]))
    print("steps " + ", ".join(f"{s['step_key']} {s['paid']:,}/{s['sent']:,}" for s in figures["steps"]))
    page_median = rows[-1][1]
    ok = page_median < TARGET_PAGE_SECONDS
    print()
    print(f"  [{'ok' if ok else 'MISS'}] page: median {page_median:.3f} s of {args.repeat} warm GETs "
          f"(target < {TARGET_PAGE_SECONDS:g} s at scale 1)")
    if args.drop:
        connection.close()
        drop_database(args.database)
        print(f"database {args.database} dropped")
    return 1 if (args.check and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
