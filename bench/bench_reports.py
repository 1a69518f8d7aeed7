"""Period reports and the ranking at scale (issue 9), on SQLite.

A SIMULATED fleet (kiemke/collector/reports/simulate.py): ~100,000 machines in ~600 units
(20 districts x 30 offices), a year of daily history (2025), state changes every ~90 days
per machine x rule. Measured: the root's yearly report with its PDF (budget 2 s), a
district's monthly report (300 ms), the ranking of the root's child units over the year
(1 s), the daily job closing one night at that size (5 s), and the history's bytes per
machine per year. PostgreSQL is not measured here.

Run: .venv/bin/python bench/bench_reports.py [machines] [--keep DIR]
`--keep DIR` keeps DIR/reports.db and reuses it (building it takes minutes).
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select, update  # noqa: E402

from kiemke.collector.db.engine import make_engine, write_transaction  # noqa: E402
from kiemke.collector.db.history_tables import history_lock, history_units  # noqa: E402
from kiemke.collector.db.migrate import upgrade  # noqa: E402
from kiemke.collector.reports import simulate  # noqa: E402
from kiemke.collector.reports.figures import build_period_report  # noqa: E402
from kiemke.collector.reports.history import LOCK_NAME, close_days, run_daily_job  # noqa: E402
from kiemke.collector.reports.periods import day_end, parse_period  # noqa: E402
from kiemke.collector.reports.ranking import build_ranking  # noqa: E402
from kiemke.collector.reports.render import render_ranking, render_report  # noqa: E402
from kiemke.compliance import default_rules_dir, load_rules  # noqa: E402

TZ = "Asia/Ho_Chi_Minh"
MACHINES = 100_000
START, DAYS = date(2025, 1, 1), 365
HISTORY_TABLES = ("history_intervals", "history_presence", "compliance_daily",
                  "history_units", "history_days", "history_rulesets")


def _row(name: str, value: float, unit: str, budget: float | None) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "budget": budget,
            "ok": None if budget is None else value <= budget}


def _timed(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def build(url: str, n: int) -> dict[str, Any]:
    ruleset = load_rules([default_rules_dir()])
    per_office = max(1, n // 600)
    sim = simulate.Simulation(ruleset.machine_rules, start=START, days=DAYS, seed=2025,
                              districts=20, offices_per_district=30,
                              machines_per_office=(per_office - 10, per_office + 10),
                              change_every=90.0, tz=TZ)
    engine = make_engine(url)
    loaded_at = day_end(START + timedelta(days=DAYS - 1), TZ)
    started = time.perf_counter()
    info = simulate.load(engine, ruleset, sim, now=loaded_at, close=False)
    load_s = time.perf_counter() - started
    days = [START + timedelta(days=k) for k in range(DAYS)]
    started = time.perf_counter()
    for k in range(0, DAYS, 31):
        with write_transaction(engine) as conn:
            close_days(conn, days[k:k + 31], ruleset, TZ, loaded_at, "simulated")
    close_s = time.perf_counter() - started
    with write_transaction(engine) as conn:  # the job synced when the fleet was loaded
        if conn.execute(select(history_lock.c.name)).first() is None:
            conn.execute(history_lock.insert().values(name=LOCK_NAME))
        conn.execute(update(history_lock).values(synced_at=loaded_at))
    engine.dispose()
    return {**info, "load_s": load_s, "close_s": close_s}


def history_bytes(path: Path) -> int | None:
    with sqlite3.connect(path) as db:
        try:
            rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.OperationalError:
            return None  # SQLite built without dbstat
    sizes = dict(rows)
    return sum(int(v) for k, v in sizes.items()
               if k in HISTORY_TABLES or any(k.startswith(f"sqlite_autoindex_{t}")
                                             or k.startswith(f"ix_{t}") for t in HISTORY_TABLES))


def main(n: int = MACHINES, keep: Path | None = None) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="kiemke-bench-reports-"))
    folder = keep or work
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "reports.db"
    url = f"sqlite:///{db}"
    rows: list[dict[str, Any]] = []
    try:
        if not db.exists():
            upgrade(url)
            info = build(url, n)
            rows.append(_row(f"build: simulated fleet ({info['machines']:,} machines, "
                             f"{info['intervals']:,} intervals)", info["load_s"], "s", None))
            rows.append(_row("build: close 365 days in one pass per month", info["close_s"],
                             "s", None))
        engine = make_engine(url)
        ruleset = load_rules([default_rules_dir()])
        with engine.connect() as conn:
            root = simulate.ROOT
            district = conn.execute(select(history_units.c.path).where(
                history_units.c.level == 1).limit(1)).scalar()
            machines = conn.execute(select(history_units.c.machines).where(
                history_units.c.level == 0, history_units.c.day == date(2025, 12, 31))).scalar()
        now = datetime(2026, 1, 2, 3, tzinfo=timezone.utc)

        def yearly_pdf() -> bytes:
            with engine.connect() as conn:
                report = build_period_report(conn, root, parse_period("2025"), "vi",
                                             timezone=TZ, now=now)
            return render_report(report, "pdf")

        def yearly_figures() -> Any:
            with engine.connect() as conn:
                return build_period_report(conn, root, parse_period("2025"), "vi",
                                           timezone=TZ, now=now)

        def district_monthly() -> bytes:
            with engine.connect() as conn:
                report = build_period_report(conn, district, parse_period("2025-11"), "vi",
                                             timezone=TZ, now=now)
            return render_report(report, "json")

        def district_monthly_pdf() -> bytes:
            with engine.connect() as conn:
                report = build_period_report(conn, district, parse_period("2025-11"), "vi",
                                             timezone=TZ, now=now)
            return render_report(report, "pdf")

        def ranking() -> bytes:
            with engine.connect() as conn:
                result = build_ranking(conn, root, parse_period("2025"), "vi", timezone=TZ,
                                       now=now)
            return render_ranking(result, "json")

        render_report(yearly_figures(), "pdf")  # WeasyPrint's first run loads pango/fonts
        seconds, _ = _timed(yearly_pdf)
        rows.append(_row(f"root yearly report incl. PDF ({machines:,} machines)", seconds,
                         "s", 2.0))
        seconds, report = _timed(yearly_figures)
        rows.append(_row(f"  of which figures (failing machines listed: "
                         f"{len(report.failing):,})", seconds, "s", None))
        seconds, _ = _timed(district_monthly, 5)
        rows.append(_row("district monthly report (figures + JSON)", seconds * 1000, "ms", 300))
        seconds, _ = _timed(district_monthly_pdf)
        rows.append(_row("district monthly report as PDF", seconds * 1000, "ms", None))
        seconds, _ = _timed(ranking)
        rows.append(_row("ranking of the root's 20 districts over the year", seconds, "s", 1.0))
        # The daily job: sync 100,000 machines' intervals, close 1 January 2026.
        started = time.perf_counter()
        stats = run_daily_job(engine, ruleset, timezone=TZ, stale_after=timedelta(days=3),
                              now=datetime(2026, 1, 1, 17, 5, tzinfo=timezone.utc))
        job_s = time.perf_counter() - started
        if stats.get("closed_days"):
            rows.append(_row("daily job (interval sync + one day closed)", job_s, "s", 5.0))
        engine.dispose()
        size = history_bytes(db)
        if size is not None:
            rows.append(_row("history per machine per year", size / max(machines or 1, 1),
                             "bytes", None))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    args = sys.argv[1:]
    kept = None
    if "--keep" in args:
        at = args.index("--keep")
        kept = Path(args[at + 1])
        del args[at:at + 2]
    from run import print_table  # bench/run.py: the same table as `make bench`

    print_table(main(int(args[0]) if args else MACHINES, kept))
