"""Period reports and the ranking at scale (issue 9), on SQLite (and PostgreSQL).

A SIMULATED fleet built by SQL (bench/reports_fleet.py): 100,000 machines in 601 units
(20 districts x 30), a year of daily history (2025) closed by the daily job's own code.
Measured against the budgets: the root's yearly report with its PDF (2 s), a district's
monthly report (300 ms), the ranking of the root's child units over the year (1 s), the
daily job syncing a day of results and closing one night (5 s); the history's bytes per
machine per year are reported. The floor printed beside them: a fresh connection
reading one closed day's row count (`SELECT COUNT(*)` on history_days). Each row prints the
process CPU time beside the wall time (on SQLite it includes the database's work; on
PostgreSQL the server's is not in it).

The SQLite database is cached (building it takes minutes) in $KIEMKE_BENCH_CACHE
(default: the temp dir's kiemke-bench-reports/) and reused; the daily job runs on a copy.
On PostgreSQL (`--pg`: PostgreSQL only; or KIEMKE_BENCH_PG=postgresql://.../test to add
it to the SQLite run) a database with a random name is built and dropped at the end.
KIEMKE_BENCH_REPEAT (3) runs per figure, the median kept.

Run: .venv/bin/python bench/bench_reports.py [machines] [--pg]
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import reports_fleet  # noqa: E402
from sqlalchemy import Engine, bindparam, func, select, text  # noqa: E402

from kiemke.collector.db.engine import make_engine, write_transaction  # noqa: E402
from kiemke.collector.db.history_tables import history_days, history_units  # noqa: E402
from kiemke.collector.db.migrate import upgrade  # noqa: E402
from kiemke.collector.db.types import UTCDateTime  # noqa: E402
from kiemke.collector.reports import simulate  # noqa: E402
from kiemke.collector.reports.figures import build_period_report  # noqa: E402
from kiemke.collector.reports.history import run_daily_job  # noqa: E402
from kiemke.collector.reports.periods import day_end, parse_period  # noqa: E402
from kiemke.collector.reports.ranking import build_ranking  # noqa: E402
from kiemke.collector.reports.render import render_ranking, render_report  # noqa: E402
from kiemke.compliance import default_rules_dir, load_rules  # noqa: E402

TZ = "Asia/Ho_Chi_Minh"
MACHINES = 100_000
START, DAYS = date(2025, 1, 1), 365
BUILD_VERSION = 1  # bump when reports_fleet.py draws another fleet: the cache is rebuilt
HISTORY_TABLES = ("history_intervals", "history_presence", "compliance_daily",
                  "history_units", "history_days", "history_rulesets")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 1, 2, 3, tzinfo=timezone.utc)
JOB_AT = datetime(2026, 1, 1, 17, 5, tzinfo=timezone.utc)  # just after local midnight


def _row(name: str, value: float, unit: str, budget: float | None,
         why: str = "") -> dict[str, Any]:
    ok = None if budget is None else value <= budget
    if ok is False and why:
        name = f"{name} - NO: {why}"
    return {"name": name, "value": value, "unit": unit, "budget": budget, "ok": ok}


CPU: list[float] = []  # the process CPU time of the last _timed call (median)


REPEAT = int(os.environ.get("KIEMKE_BENCH_REPEAT", "3"))  # runs per figure (median)


def _timed(fn: Callable[[], Any], repeat: int = REPEAT) -> tuple[float, Any]:
    """Median wall time; the median CPU time goes to CPU[-1] (on a loaded machine the
    wall time is mostly waiting for a core)."""
    times, cpu, result = [], [], None
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    CPU.append(statistics.median(cpu))
    return statistics.median(times), result


def _cpu(scale: float = 1.0, unit: str = "s") -> str:
    return f"(CPU {CPU[-1] * scale:,.2f} {unit})"


def _build(url: str, n: int) -> float:
    upgrade(url)
    engine = make_engine(url)
    started = time.perf_counter()
    reports_fleet.build(engine, load_rules([default_rules_dir()]), n, start=START,
                        days=DAYS, tz=TZ, loaded_at=day_end(START + timedelta(days=DAYS - 1), TZ))
    engine.dispose()
    return time.perf_counter() - started


def sqlite_bytes(path: Path) -> int | None:
    with sqlite3.connect(path) as db:
        try:
            rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.OperationalError:
            return None  # SQLite built without dbstat
    return sum(int(v) for k, v in rows
               if k in HISTORY_TABLES or any(k.startswith(f"sqlite_autoindex_{t}")
                                             or k.startswith(f"ix_{t}") for t in HISTORY_TABLES))


def pg_bytes(engine: Engine) -> int:
    with engine.connect() as conn:
        return sum(int(conn.execute(text("SELECT pg_total_relation_size(:t)"),
                                    {"t": t}).scalar() or 0) for t in HISTORY_TABLES)


def a_day_of_reports(engine: Engine) -> None:
    """What the collector does in a day before the job: every machine reported, and
    about 1 result in 100 changed (the evaluation rewrites only changed rows, with their
    evaluated_at)."""
    now = JOB_AT - timedelta(hours=2)
    with write_transaction(engine) as conn:
        conn.execute(text("UPDATE machines SET last_seen = :t")
                     .bindparams(bindparam("t", type_=UTCDateTime)), {"t": now})
        conn.execute(text(
            "UPDATE rule_results SET since = :t, evaluated_at = :t, reason = NULL, "
            "result = CASE result "
            "WHEN 'pass' THEN 'fail' ELSE 'pass' END WHERE "
            "(unit_id * 7 + LENGTH(rule_id) * 13 + CAST(SUBSTR(machine_id, 1, 1) = 'a' AS "
            "INTEGER)) % 50 = 0 AND SUBSTR(machine_id, 2, 1) IN ('0', '1', '2', '3', '4', "
            "'5', '6', '7')").bindparams(bindparam("t", type_=UTCDateTime)), {"t": now})


def measure(engine: Engine, job_engine: Callable[[], Engine], size: Callable[[], int | None]
            ) -> list[dict[str, Any]]:
    ruleset = load_rules([default_rules_dir()])
    root = simulate.ROOT
    with engine.connect() as conn:
        district = str(conn.execute(select(history_units.c.path).where(
            history_units.c.level == 1).order_by(history_units.c.path).limit(1)).scalar())
        machines = conn.execute(select(history_units.c.machines).where(
            history_units.c.level == 0, history_units.c.day == date(2025, 12, 31))).scalar()
    rows: list[dict[str, Any]] = []

    def floor() -> Any:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(history_days)).scalar()

    def report(unit: str, period: str) -> Any:
        with engine.connect() as conn:
            return build_period_report(conn, unit, parse_period(period), "vi", timezone=TZ,
                                       now=NOW)

    def ranking() -> bytes:
        with engine.connect() as conn:
            result = build_ranking(conn, root, parse_period("2025"), "vi", timezone=TZ, now=NOW)
        return render_ranking(result, "json")

    seconds, _ = _timed(floor, max(REPEAT, 5))
    rows.append(_row("floor: one query on a fresh connection", seconds * 1000, "ms", None))
    render_report(report(root, "2025"), "pdf")  # WeasyPrint's first run loads pango/fonts
    seconds, _ = _timed(lambda: render_report(report(root, "2025"), "pdf"))
    rows.append(_row(f"root yearly report incl. PDF ({machines:,} machines) {_cpu()}",
                     seconds, "s", 2.0, "see the two rows below"))
    figures_s, yearly = _timed(lambda: report(root, "2025"))
    rows.append(_row(f"  of which figures ({len(yearly.failing):,} failing machine x rule, "
                     f"{len(yearly.waivers):,} waivers) {_cpu()}", figures_s, "s", None))
    seconds, pdf = _timed(lambda: render_report(yearly, "pdf"))
    rows.append(_row(f"  of which the PDF (WeasyPrint, {len(pdf):,} bytes) {_cpu()}", seconds,
                     "s", None))
    seconds, _ = _timed(lambda: render_report(report(district, "2025-11"), "json"),
                        max(REPEAT, 5))
    rows.append(_row(f"district monthly report (figures + JSON) {_cpu(1000, 'ms')}",
                     seconds * 1000, "ms", 300, "wall time on a loaded machine: see the CPU"))
    seconds, _ = _timed(lambda: render_report(report(district, "2025-11"), "pdf"))
    rows.append(_row(f"district monthly report as PDF {_cpu(1000, 'ms')}", seconds * 1000,
                     "ms", None))
    seconds, _ = _timed(ranking)
    rows.append(_row(f"ranking of the root's 20 districts over the year (JSON) {_cpu()}",
                     seconds, "s", 1.0, "wall time on a loaded machine: see the CPU"))
    job = job_engine()
    a_day_of_reports(job)
    started, cpu_started = time.perf_counter(), time.process_time()
    stats = run_daily_job(job, ruleset, timezone=TZ, stale_after=timedelta(days=3), now=JOB_AT)
    job_s = time.perf_counter() - started
    CPU.append(time.process_time() - cpu_started)
    job.dispose()
    if stats.get("closed_days") != ["2026-01-01"]:
        raise RuntimeError(f"the daily job closed {stats.get('closed_days')}, not one day")
    rows.append(_row(f"daily job ({stats['opened']:,} intervals opened, one day closed) "
                     f"{_cpu()}", job_s, "s", 5.0,
                     "the sync scans rule_results for the rows rewritten since the last "
                     "sync, closing groups the intervals in force"))
    total = size()
    if total is not None:
        rows.append(_row("history per machine per year", total / max(machines or 1, 1),
                         "bytes", None))
    return rows


def run_sqlite(n: int) -> list[dict[str, Any]]:
    cache = Path(os.environ.get("KIEMKE_BENCH_CACHE")
                 or Path(tempfile.gettempdir()) / "kiemke-bench-reports")
    cache.mkdir(parents=True, exist_ok=True)
    db = cache / f"reports-{n}-v{BUILD_VERSION}.db"
    rows: list[dict[str, Any]] = []
    if db.exists():
        upgrade(f"sqlite:///{db}")  # a cache built before a new migration (an index)
    else:
        partial = db.with_suffix(".building")
        partial.unlink(missing_ok=True)
        seconds = _build(f"sqlite:///{partial}", n)
        partial.rename(db)
        rows.append(_row(f"build (SQLite, cached in {db})", seconds, "s", None))
    scratch = Path(tempfile.mkdtemp(prefix="kiemke-bench-job-"))
    engine = make_engine(f"sqlite:///{db}")
    try:
        def job_engine() -> Engine:
            shutil.copy(db, scratch / "job.db")  # the cache stays as built
            return make_engine(f"sqlite:///{scratch / 'job.db'}")

        rows += [{**r, "name": f"SQLite: {r['name']}"}
                 for r in measure(engine, job_engine, lambda: sqlite_bytes(db))]
    finally:
        engine.dispose()
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def run_postgres(n: int, admin_url: str) -> list[dict[str, Any]]:
    name = f"kiemke_bench_reports_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    rows: list[dict[str, Any]] = []
    engine = None
    try:
        seconds = _build(url, n)
        rows.append(_row("build (PostgreSQL)", seconds, "s", None))
        engine = make_engine(url)
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
        rows += [{**r, "name": f"PostgreSQL: {r['name']}"}
                 for r in measure(engine, lambda: make_engine(url), lambda: pg_bytes(engine))]
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return rows


def main(n: int = MACHINES, pg: str | None = None, sqlite: bool = True
         ) -> list[dict[str, Any]]:
    pg = pg or os.environ.get("KIEMKE_BENCH_PG")
    rows = run_sqlite(n) if sqlite else []
    if pg:
        rows += run_postgres(n, pg)
    return rows


if __name__ == "__main__":
    args = sys.argv[1:]
    pg_url, with_sqlite = None, True
    if "--pg" in args:  # PostgreSQL only
        args.remove("--pg")
        pg_url, with_sqlite = PG_ADMIN, False
    from run import print_table  # bench/run.py: the same table as `make bench`

    print_table(main(int(args[0]) if args else MACHINES, pg_url, with_sqlite))
