"""Depreciation families' share of /metrics at 100,000 machines (SQLite and PostgreSQL).

Builds machine_depreciation directly with SQL inserts (a register-matched and an
estimated population over a 3-level unit tree), then times the provider that /metrics
runs (one GROUP BY + roll-up + families), median of several scrapes. The whole-scrape
budget (100 ms) is shared with the rule families (bench_compliance.py); this part's own
budget here is 30 ms.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from kiemke.collector.assets.depreciation import compute_row  # noqa: E402
from kiemke.collector.assets.metrics import DepreciationMetrics  # noqa: E402
from kiemke.collector.db.asset_tables import machine_depreciation  # noqa: E402
from kiemke.collector.db.engine import make_engine, write_transaction  # noqa: E402
from kiemke.collector.db.migrate import upgrade  # noqa: E402
from kiemke.collector.timeutil import utcnow  # noqa: E402
from kiemke.collector.units import add_unit  # noqa: E402
from kiemke.compliance.config import load_config  # noqa: E402

MACHINES = int(os.environ.get("KIEMKE_BENCH_MACHINES", "100000"))
BUDGET_MS = 30.0  # the usual scrape (cache warm)
UNCACHED_BUDGET_MS = 100.0  # first scrape of the day / after a change: the whole budget
PG_ADMIN_URL = os.environ.get("KIEMKE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def build(url: str, n: int) -> tuple[Any, int]:
    upgrade(url)
    engine = make_engine(url)
    config = load_config(REPO / "rules").depreciation
    rng = random.Random(4)
    now = utcnow()
    with write_transaction(engine) as conn:
        province = add_unit(conn, "Liên đoàn Lao động tỉnh Bắc Giang")
        offices = []
        for d in range(10):
            district = add_unit(conn, f"LĐLĐ huyện {d}", parent=province.id)
            offices += [add_unit(conn, f"Công đoàn xã {d}-{o}", parent=district.id).id
                        for o in range(10)]
        batch = []
        for _ in range(n):
            registered = rng.random() < 0.6
            start = dt.date(rng.randint(2012, 2024), rng.randint(1, 12), rng.randint(1, 28))
            report = {"hardware": {"chassis": rng.choice(["desktop", "laptop", "virtual"]),
                                   "manufacture_date": {"value": start.isoformat(),
                                                        "estimated": True}}}
            asset = ({"id": 1, "purchase_date": start, "cost": 15_000_000,
                      "category": "desktop_computer"} if registered else None)
            row = compute_row(machine_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                              unit_id=rng.choice(offices), report=report, asset=asset,
                              config=config, keys=(None, None, None), now=now)
            batch.append({**row, "updated_at": now})
            if len(batch) == 5000:
                conn.execute(insert(machine_depreciation), batch)
                batch = []
        if batch:
            conn.execute(insert(machine_depreciation), batch)
    return engine, 1 + 10 + 100


def time_provider(engine: Any, rounds: int = 7, cached: bool = True) -> tuple[float, int]:
    """Median ms of the provider: with the process cache warm, or a new provider each time
    (the first scrape of a day, or after machine_depreciation changed)."""
    times, samples = [], 0
    provider = DepreciationMetrics()
    for _ in range(rounds):
        if not cached:
            provider = DepreciationMetrics()
        started = time.perf_counter()
        with engine.connect() as conn, conn.begin():
            families = list(provider(conn, utcnow()))
        times.append((time.perf_counter() - started) * 1000)
        samples = sum(len(f.samples) for f in families)
    return statistics.median(times), samples


def _row(name: str, value: float, budget: float = BUDGET_MS) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": "ms", "budget": f"<= {budget:g} ms",
            "ok": value <= budget}


def _measure(engine: Any, backend: str) -> list[dict[str, Any]]:
    rows = []
    ms, samples = time_provider(engine, cached=False)
    rows.append(_row(f"depreciation metrics, {MACHINES:,} machines, {backend}, recomputed",
                     ms, UNCACHED_BUDGET_MS))
    ms, samples = time_provider(engine)
    rows.append(_row(f"depreciation metrics, {MACHINES:,} machines, {backend}, usual scrape "
                     f"({samples} samples)", ms))
    return rows


def main() -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        engine, _units = build(f"sqlite:///{tmp}/bench.db", MACHINES)
        rows += _measure(engine, "SQLite")
        engine.dispose()
    try:
        import psycopg
        name = f"kiemke_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
    except Exception as exc:  # noqa: BLE001 - PostgreSQL is optional for the benchmark
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        return rows
    try:
        engine, _units = build(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", MACHINES)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE machine_depreciation")
        rows += _measure(engine, "PostgreSQL")
        engine.dispose()
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import print_table

    print_table(main())
