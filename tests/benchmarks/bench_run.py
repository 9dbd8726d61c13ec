#!/usr/bin/env python
"""Benchmark: one dunning run against the floor of the same work without bookkeeping.

    .venv/bin/python tests/benchmarks/bench_run.py [--customers N] [--backend dummy|locmem]

Seeds a file-based SQLite database in a temporary folder with N customers (1-3 overdue
invoices each, EUR/USD/GBP, English/German), then measures, each phase in a fresh process
so that one phase's memory never counts against another:

* floor  - the shipped initial-notice (text + HTML) compiled once and rendered for every
           customer from data loaded beforehand, built into AnymailMessages and handed to
           the email backend in one ``send_messages`` call: no database work at all;
* run 1  - ``run_dunning(as_of)``: opens a case for every customer, sends initial-notice;
* run 2  - ``run_dunning(as_of + 3 days)``: claims every open case, sends gentle-reminder.

See tests/benchmarks/README.md for what each figure means. Nothing here asserts on time;
``--check`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAY0 = datetime.date(2026, 3, 2)  # latest due date of the seeded invoices
FIRST_RUN = DAY0 + datetime.timedelta(days=2)  # every customer 2-12 days overdue
SECOND_RUN = FIRST_RUN + datetime.timedelta(days=3)  # min gap 3 days: next step due
BACKENDS = {
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
}
CURRENCIES = ("EUR", "USD", "GBP")
LANGUAGES = ("en", "de")
MARK = "BENCH_RESULT "

# Targets from the issue (reported, never asserted by pytest).
TARGET_PER_SECOND = 3000  # customers/s of one run, dummy backend, 2 cores
TARGET_RATIO = 3.0  # run time within 3x of the floor
TARGET_QUERIES_PER_1000 = 50
TARGET_PEAK_RSS_MB = 300  # one run over 200,000 customers


# -- helpers -----------------------------------------------------------------------------


def setup_django(db_path, backend, render_processes=None):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DUNNING_SQLITE_NAME"] = str(db_path)
    os.environ.pop("DUNNING_TEST_DB", None)  # always SQLite
    import django
    from django.conf import settings

    django.setup()
    settings.EMAIL_BACKEND = BACKENDS[backend]
    settings.DEBUG = False  # no query log kept in memory
    if render_processes:
        settings.DUNNING = {**settings.DUNNING, "RENDER_PROCESSES": render_processes}
        from dunning.conf import dunning_settings

        dunning_settings.reload()


def maxrss_mb():
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def children_usage():
    """(CPU seconds, peak RSS MiB of the largest) of the child processes reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return usage.ru_utime + usage.ru_stime, peak


def rss_mb():
    """Current resident set size in MiB (Linux; else the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return maxrss_mb()


class QueryCounter:
    """Counts what ``CaptureQueriesContext`` would count, without its cost.

    Every statement (an execute wrapper) plus the COMMITs and ROLLBACKs that Django logs
    outside cursors. The debug cursor is not used: on SQLite it runs extra queries to quote
    every parameter of every statement for the log, which would slow the run measured.
    Nothing is kept, so counting costs no memory and has no 9,000-entry cap.
    """

    def __init__(self):
        self.count = 0
        self.kinds = Counter()

    def add(self, sql):
        self.count += 1
        self.kinds[sql.lstrip().split(None, 1)[0].upper()] += 1

    def __call__(self, execute, sql, params, many, context):
        self.add(sql)
        return execute(sql, params, many, context)

    @contextmanager
    def counting(self, connection):
        saved = connection._commit, connection._rollback

        def commit():
            self.add("COMMIT")
            return saved[0]()

        def rollback():
            self.add("ROLLBACK")
            return saved[1]()

        connection._commit, connection._rollback = commit, rollback
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            del connection._commit, connection._rollback  # back to the class's methods


class Profiler:
    """cProfile around a block when asked; prints the top functions afterwards."""

    def __init__(self, enabled, top, out=None):
        self.enabled = enabled
        self.top = top
        self.out = out
        self.profile = None

    def __enter__(self):
        if self.enabled:
            import cProfile

            self.profile = cProfile.Profile()
            self.profile.enable()
        return self

    def __exit__(self, *exc):
        if self.profile is not None:
            self.profile.disable()
        return False

    def report(self, title):
        if self.profile is None:
            return
        import io
        import pstats

        for order in ("cumulative", "tottime"):
            buffer = io.StringIO()
            stats = pstats.Stats(self.profile, stream=buffer)
            stats.strip_dirs().sort_stats(order).print_stats(self.top)
            print(f"\n===== profile of {title}: top {self.top} by {order} =====")
            print(buffer.getvalue().split("\n", 4)[-1].rstrip())
        if self.out:
            self.profile.dump_stats(self.out)
            print(f"(pstats written to {self.out})")


def profile_out(args, phase):
    return f"{args.profile_out}.{phase}" if args.profile_out else None


def emit(data):
    print(MARK + json.dumps(data), flush=True)


# -- phases (each runs in its own process) -----------------------------------------------


def phase_seed(args):
    setup_django(args.db, args.backend)
    from django.core.management import call_command
    from django.db import transaction

    from dunning.models import Customer, Invoice

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    rng = random.Random(args.seed)
    invoices_total = 0
    chunk = 10_000
    with transaction.atomic():
        for start in range(0, args.customers, chunk):
            customers = []
            for i in range(start, min(args.customers, start + chunk)):
                language = rng.choice(LANGUAGES)
                name = f"Customer {i}" if language == "en" else f"Müller & Söhne {i}"
                customers.append(
                    Customer(
                        name=name,
                        email=f"customer{i}@example.com",
                        language=language,
                        timezone=rng.choice(("", "Europe/Berlin", "America/New_York")),
                    )
                )
            customers = Customer.objects.bulk_create(customers)
            invoices = []
            for customer in customers:
                for k in range(rng.randint(1, 3)):
                    invoices.append(
                        Invoice(
                            customer=customer,
                            number=f"INV-{customer.pk:07d}-{k}",
                            amount_due=Decimal(rng.randint(1_000, 99_999)).scaleb(-2),
                            currency=rng.choice(CURRENCIES),
                            due_date=DAY0 - datetime.timedelta(days=rng.randint(0, 10)),
                        )
                    )
            Invoice.objects.bulk_create(invoices)
            invoices_total += len(invoices)
    emit({
        "customers": args.customers,
        "invoices": invoices_total,
        "seconds": time.perf_counter() - started,
    })


def phase_floor(args):
    """Render and send the same content with no bookkeeping: the least a run can do."""
    setup_django(args.db, args.backend)
    from django.core import mail

    from dunning.channels.base import Outgoing
    from dunning.channels.email import EmailChannel
    from dunning.hosts import get_adapter
    from dunning.messages.rendering import Renderer, babel_locale, build_context, company_context
    from dunning.models import MessageTemplate

    as_of = FIRST_RUN
    step_key = "initial-notice"
    # -- untimed: load everything the floor needs ------------------------------------
    adapter = get_adapter()
    templates = {
        t.language: t
        for t in MessageTemplate.objects.filter(
            policy__key="standard", step_key=step_key, channel="email"
        )
    }
    rows = defaultdict(list)
    for row in adapter.invoice_rows(adapter.overdue_invoices(as_of)):
        rows[row.customer_id].append(row)
    customers = adapter.customer_rows(rows)
    snapshots = {
        customer_id: [
            {
                "number": i.number,
                "amount_due": str(i.amount_due),
                "currency": i.currency,
                "due_date": i.due_date.isoformat(),
            }
            for i in sorted(invoices, key=lambda i: (i.due_date, i.number))
        ]
        for customer_id, invoices in rows.items()
    }
    del rows
    renderer = Renderer()
    for template in templates.values():
        renderer.compiled(template)  # compile once, before the clock starts
    channel = EmailChannel()
    company = company_context()
    step = {"key": step_key, "offset_days": 1, "action": ""}
    connection = mail.get_connection(fail_silently=False)
    base_maxrss = maxrss_mb()

    # -- timed: context, render, build, one send_messages call --------------------------
    with Profiler("floor" in args.profile, args.profile_top, profile_out(args, "floor")) as profiler:
        started, cpu_started = time.perf_counter(), time.process_time()
        messages = []
        for customer_id, invoices in snapshots.items():
            customer = customers[customer_id]
            locale = babel_locale(customer.language)
            template = templates.get(customer.language) or templates["en"]
            context = build_context(
                customer=customer, invoices=invoices, step=step, as_of=as_of,
                locale=locale, company=company,
            )
            subject, text, html = renderer.render(template, context)
            messages.append(channel.build(Outgoing(
                case_id=customer_id, customer_id=customer_id, step_key=step_key,
                recipient=customer.email, subject=subject, text=text, html=html,
            )))
        sent = connection.send_messages(messages)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    profiler.report("the floor")
    emit({
        "phase": "floor",
        "customers": len(snapshots),
        "sent": sent,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "queries": 0,
        "base_maxrss_mb": base_maxrss,
        "peak_rss_mb": maxrss_mb(),
    })


def phase_run(args):
    setup_django(args.db, args.backend, args.render_processes)
    import tracemalloc

    from django.db import connection
    from django.db.models import Count

    from dunning.engine.run import run_dunning
    from dunning.models import CaseStep

    as_of = datetime.date.fromisoformat(args.as_of)
    name = "run" if as_of == FIRST_RUN else "second"
    connection.ensure_connection()
    base_maxrss = maxrss_mb()
    base_rss = rss_mb()
    counter = QueryCounter()
    if args.tracemalloc:
        tracemalloc.start()
    with (
        counter.counting(connection),
        Profiler(name in args.profile, args.profile_top, profile_out(args, name)) as profiler,
    ):
        started, cpu_started = time.perf_counter(), time.process_time()
        children_started = children_usage()[0]
        result = run_dunning(as_of, batch_size=args.batch_size)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        children_cpu, children_peak = children_usage()
        children_cpu -= children_started
    traced_peak = None
    if args.tracemalloc:
        traced_peak = tracemalloc.get_traced_memory()[1] / (1024 * 1024)
        tracemalloc.stop()
    peak = maxrss_mb()
    profiler.report(f"run_dunning({as_of})")
    statuses = dict(
        CaseStep.objects.filter(executed_on=as_of)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    customers = result.opened if name == "run" else sum(result.executed.values())
    emit({
        "phase": name,
        "as_of": as_of.isoformat(),
        "customers": customers,
        "opened": result.opened,
        "executed": dict(result.executed),
        "sent": result.sent,
        "failed": result.failed,
        "step_statuses": statuses,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds + children_cpu,  # with render workers' CPU time
        "children_cpu_seconds": children_cpu,
        "children_peak_rss_mb": children_peak,  # largest render worker, if any
        "queries": counter.count,
        "query_kinds": dict(counter.kinds),
        "base_maxrss_mb": base_maxrss,
        "base_rss_mb": base_rss,
        "peak_rss_mb": peak,
        "tracemalloc_peak_mb": traced_peak,
    })


PHASES = {"seed": phase_seed, "floor": phase_floor, "run": phase_run}


# -- orchestration -----------------------------------------------------------------------


def child(args, phase, **extra):
    command = [
        sys.executable, str(Path(__file__).resolve()), "--phase", phase,
        "--db", str(args.db), "--customers", str(args.customers), "--backend", args.backend,
        "--seed", str(args.seed), "--profile-top", str(args.profile_top),
    ]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    if args.render_processes:
        command += ["--render-processes", str(args.render_processes)]
    for what in args.profile:
        command += ["--profile", what]
    if args.profile_out:
        command += ["--profile-out", args.profile_out]
    if args.tracemalloc:
        command.append("--tracemalloc")
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    completed = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    data = None
    for line in completed.stdout.splitlines():
        if line.startswith(MARK):
            data = json.loads(line[len(MARK):])
        else:
            print(line)
    if completed.returncode != 0 or data is None:
        raise SystemExit(f"phase {phase} failed (exit code {completed.returncode})")
    return data


def git_revision():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "dunning"], cwd=ROOT,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in dunning/" if dirty else "")


def fmt(value, spec=",.0f"):
    return "-" if value is None else format(value, spec)


def report(args, seed, floor, runs):
    print()
    print(
        f"django-dunning run benchmark: {seed['customers']:,} customers, "
        f"{seed['invoices']:,} invoices, backend {args.backend}, SQLite file, "
        f"batch size {args.batch_size or 'default'}, render processes "
        f"{args.render_processes or 'default'}, code at {git_revision()}"
    )
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}, seeding took {seed['seconds']:.1f} s (not timed below)"
    )
    if args.profile:
        print(f"NOTE: profiled phases ({', '.join(args.profile)}) are slowed by cProfile.")
    header = (
        f"{'phase':<28}{'customers':>10}{'seconds':>9}{'cpu s':>8}{'cust/s':>8}{'queries':>9}"
        f"{'q/1000':>8}{'RSS MB':>8}{'peak MB':>9}{'growth':>8}{'traced':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    labels = {
        "floor": "floor: render+build+send",
        "run": f"run 1 {FIRST_RUN}: open+first",
        "second": f"run 2 {SECOND_RUN}: next step",
    }
    for row in ([floor] if floor else []) + runs:
        n = row["customers"] or 0
        per_second = n / row["seconds"] if row["seconds"] else None
        per_1000 = row["queries"] * 1000 / n if n else None
        growth = row["peak_rss_mb"] - row["base_maxrss_mb"]
        print(
            f"{labels[row['phase']]:<28}{n:>10,}{row['seconds']:>9.2f}"
            f"{row['cpu_seconds']:>8.2f}{fmt(per_second):>8}"
            f"{row['queries']:>9,}{fmt(per_1000, '.1f'):>8}{fmt(row['base_maxrss_mb']):>8}"
            f"{fmt(row['peak_rss_mb']):>9}{fmt(growth):>8}"
            f"{fmt(row.get('tracemalloc_peak_mb'), '.1f'):>8}"
        )
    print()
    misses = []

    def target(label, ok, text):
        print(f"  [{'ok' if ok else 'MISS'}] {label}: {text}")
        if not ok:
            misses.append(label)

    for row in runs:
        expected_step = "initial-notice" if row["phase"] == "run" else "gentle-reminder"
        done = row["executed"].get(expected_step, 0)
        target(
            f"{labels[row['phase']]} did the work",
            done == seed["customers"] and row["sent"] == seed["customers"] and not row["failed"],
            f"{done:,} x {expected_step}, {row['sent']:,} sent, {row['failed']:,} failed, "
            f"steps by status {row['step_statuses']}",
        )
    first = next((r for r in runs if r["phase"] == "run"), None)
    if first and {"floor", "run"} & set(args.profile):
        print("  [n/a] run 1 speed and run 1 / floor: not judged while profiling")
    elif first:
        per_second = first["customers"] / first["seconds"]
        per_cpu_second = first["customers"] / max(first["cpu_seconds"], 1e-9)
        target(
            "run 1 speed", per_second >= TARGET_PER_SECOND,
            f"{per_second:,.0f} customers/s wall, {per_cpu_second:,.0f} per CPU second "
            f"(target >= {TARGET_PER_SECOND:,}/s with the dummy backend)",
        )
        if floor:
            ratio = first["seconds"] / floor["seconds"]
            cpu_ratio = first["cpu_seconds"] / max(floor["cpu_seconds"], 1e-9)
            target(
                "run 1 / floor", ratio <= TARGET_RATIO,
                f"{ratio:.2f}x the floor's wall time, {cpu_ratio:.2f}x its CPU time "
                f"(target <= {TARGET_RATIO:g}x)",
            )
    for row in runs:
        per_1000 = row["queries"] * 1000 / max(row["customers"], 1)
        target(
            f"{labels[row['phase']]} queries", per_1000 <= TARGET_QUERIES_PER_1000,
            f"{per_1000:.1f} per 1,000 customers (target <= {TARGET_QUERIES_PER_1000})",
        )
    for row in runs:
        workers = ""
        if row.get("children_cpu_seconds"):
            workers = (
                f"; render workers: largest peak RSS {row['children_peak_rss_mb']:.0f} MB "
                f"(mostly pages shared with the run by fork), "
                f"{row['children_cpu_seconds']:.1f} CPU s"
            )
        target(
            f"{labels[row['phase']]} memory",
            row["peak_rss_mb"] < TARGET_PEAK_RSS_MB,
            f"peak RSS {row['peak_rss_mb']:.0f} MB, of which "
            f"{row['peak_rss_mb'] - row['base_maxrss_mb']:.0f} MB grown during the run "
            f"(target < {TARGET_PEAK_RSS_MB} MB at 200,000 customers){workers}",
        )
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"seed": seed, "floor": floor, "runs": runs, "backend": args.backend}, indent=2
        ))
        print(f"\nfigures written to {args.json}")
    return misses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="dummy")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="passed to run_dunning (default: DUNNING['BATCH_SIZE'])")
    parser.add_argument("--render-processes", type=int, default=None,
                        help="DUNNING['RENDER_PROCESSES'] for the runs (default: the setting's)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor")
    parser.add_argument("--no-second", action="store_true", help="skip the second run")
    parser.add_argument("--profile", action="append", default=[],
                        choices=["floor", "run", "second"],
                        help="profile this phase with cProfile (repeatable); slows it down")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--profile-out", default=None, help="also dump pstats to this file")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report tracemalloc's peak for the runs (slower)")
    parser.add_argument("--keep", action="store_true", help="keep the database folder")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase:
        PHASES[args.phase](args)
        return 0

    folder = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    args.db = folder / "bench.sqlite3"
    try:
        print(f"seeding {args.customers:,} customers into {args.db} ...", flush=True)
        seed = child(args, "seed")
        floor = None if args.no_floor else child(args, "floor")
        runs = [child(args, "run", as_of=FIRST_RUN.isoformat())]
        if not args.no_second:
            runs.append(child(args, "run", as_of=SECOND_RUN.isoformat()))
        misses = report(args, seed, floor, runs)
    finally:
        if args.keep:
            print(f"database kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    sys.exit(main())
