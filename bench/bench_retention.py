"""Raw reports on disk and the retention job (issue 12), on SQLite and PostgreSQL.

- Bytes of the `reports` table (rows, TOAST, indexes) per stored report, for this
  machine's own periodic report and full inventory (built by the agent's collectors, as
  `kiemke-agent collect` would) sent by MACHINES machines, REPORTS each, through the real
  ingest pipeline; then bytes per machine per day at the agent's defaults (a periodic
  report every hour, a full inventory every day: 24 + 1 a day); and the current state
  kept per machine (machines, rule_results, agents).
- The retention job deleting the older half of them (batches of 500 rows,
  docs/deployment.md): rows per second, and the longest delete transaction (how long
  ingest may wait for the write lock on SQLite).

Run: .venv/bin/python bench/bench_retention.py
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from fleet import postgres_database  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from kiemke.agent.collectors.base import Context  # noqa: E402
from kiemke.agent.config import load_config  # noqa: E402
from kiemke.agent.probe_policy import ALLOW_ENV  # noqa: E402
from kiemke.agent.report import build_report  # noqa: E402
from kiemke.collector.db.engine import write_transaction  # noqa: E402
from kiemke.collector.db.migrate import upgrade  # noqa: E402
from kiemke.collector.db.tables import reports  # noqa: E402
from kiemke.collector.enrollment import create_enrollment_token  # noqa: E402
from kiemke.collector.ingest import load_agent  # noqa: E402
from kiemke.collector.retention import prune_reports  # noqa: E402
from kiemke.collector.units import add_unit  # noqa: E402

MACHINES = 200
REPORTS = 10  # per machine and kind
PER_DAY = {"periodic": 24, "full": 1}  # agent defaults: interval 1 h, full_interval 1 day


def _row(name: str, value: float, unit: str) -> dict[str, Any]:
    return {"name": name, "value": round(value, 1), "unit": unit, "budget": None, "ok": None}


def _agent_reports(tmp: Path) -> dict[str, dict[str, Any]]:
    sys.path.insert(0, str(REPO / "bench"))
    from bench_agent import _conf

    cfg = load_config(_conf(tmp), env={})
    (tmp / "state").mkdir(exist_ok=True)
    return {kind: build_report(cfg, kind, Context(config=cfg, state_dir=tmp / "state"))
            for kind in ("periodic", "full")}


def _table_bytes(engine: Any, url: str, table: str = "reports") -> int:
    """Bytes of a table with its indexes (and TOAST on PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"),
                                    {"t": table}).scalar())
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat WHERE name = ? OR name LIKE ? "
                          "OR name LIKE ? GROUP BY name",
                          (table, f"ix_{table}_%", f"sqlite_autoindex_{table}%")).fetchall()
    return sum(int(v) for _k, v in rows)


CURRENT = ("machines", "rule_results", "agents")  # each machine's current state


def measure(url: str, data_dir: Path, bodies: dict[str, dict[str, Any]]) -> dict[str, float]:
    from kiemke.collector.app import create_app

    upgrade(url)
    app = create_app({"database_url": url, "data_dir": str(data_dir),
                      "maintenance_interval": 0})
    ext = app.extensions["kiemke"]
    engine = ext.engine
    client = app.test_client()
    with write_transaction(engine) as conn:
        unit = add_unit(conn, "Liên đoàn Lao động tỉnh Bắc Giang").id
        token = create_enrollment_token(conn, unit)[1]
    agents = []
    for i in range(MACHINES):
        machine_id = uuid.uuid4().hex
        resp = client.post("/api/v1/enroll", json={"token": token, "machine_id": machine_id,
                                                   "hostname": f"PC-{i:03d}"})
        agents.append((machine_id, load_agent(engine, resp.get_json()["agent_id"])))
    start = datetime.now(timezone.utc) - timedelta(days=REPORTS + 1)
    out: dict[str, float] = {}
    for kind, body in bodies.items():
        before = _table_bytes(engine, url)
        with engine.connect() as conn:
            rows0 = conn.execute(select(func.count()).select_from(reports)).scalar() or 0
        for n in range(REPORTS):
            when = start + timedelta(days=n)
            for machine_id, agent in agents:
                report = {**body, "report_id": str(uuid.uuid4()), "kind": kind,
                          "collected_at": when.isoformat().replace("+00:00", "Z"),
                          "identity": {**body["identity"], "machine_id": machine_id}}
                assert ext.pipeline.ingest(agent, report, now=when)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE reports"))
        with engine.connect() as conn:
            rows = (conn.execute(select(func.count()).select_from(reports)).scalar() or 0) - rows0
        out[kind] = (_table_bytes(engine, url) - before) / rows
    if engine.dialect.name == "postgresql":
        # Each machine's row was rewritten per report (MVCC): compact them, so the figure
        # is the live data; autovacuum keeps a running system within a small multiple.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in CURRENT:
                conn.execute(text(f"VACUUM FULL {table}"))
    out["current"] = sum(_table_bytes(engine, url, t) for t in CURRENT) / MACHINES
    # The retention job on the older half (each machine keeps its latest anyway).
    cutoff_days = (datetime.now(timezone.utc) - (start + timedelta(days=REPORTS // 2))).days
    started = time.perf_counter()
    stats = prune_reports(engine, cutoff_days, pause=0)
    seconds = time.perf_counter() - started
    out["pruned"] = stats["deleted"]
    out["prune_rate"] = stats["deleted"] / seconds if seconds else 0.0
    out["longest_batch_ms"] = stats["longest_batch_s"] * 1000
    engine.dispose()
    return out


def main() -> list[dict[str, Any]]:
    os.environ[ALLOW_ENV] = "127.0.0.0/8,::1"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kiemke-bench-retention-") as d:
        tmp = Path(d)
        bodies = _agent_reports(tmp / "agent")
        targets: list[tuple[str, str, Any]] = [("SQLite", f"sqlite:///{tmp / 'r.db'}", None)]
        made = postgres_database()
        if made is not None:
            targets.append(("PostgreSQL", made[0], made[1]))
        for name, url, drop in targets:
            try:
                got = measure(url, tmp / f"data-{name}", bodies)
            finally:
                if drop is not None:
                    drop()
            per_day = sum(got[k] * n for k, n in PER_DAY.items())
            rows += [
                _row(f"raw report bytes, periodic, {name}", got["periodic"], "B/report"),
                _row(f"raw report bytes, full inventory, {name}", got["full"], "B/report"),
                _row(f"raw reports per machine per day (24 periodic + 1 full), {name}",
                     per_day / 1024, "KiB/day"),
                _row(f"current state per machine ({', '.join(CURRENT)}), {name}",
                     got["current"] / 1024, "KiB"),
                _row(f"retention job, {name} ({got['pruned']:.0f} rows deleted)",
                     got["prune_rate"], "rows/s"),
                _row(f"retention job, longest delete transaction, {name}",
                     got["longest_batch_ms"], "ms"),
            ]
        if made is None:
            rows.append({"name": "raw report bytes, PostgreSQL", "value": float("nan"),
                         "unit": "", "budget": None, "ok": None})
    return rows


if __name__ == "__main__":
    for r in main():
        print(f"{r['name']:<70} {r['value']:>10} {r['unit']}")
