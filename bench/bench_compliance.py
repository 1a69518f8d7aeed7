"""Compliance in the collector at 100,000 machines (database built by SQL inserts).

Measured on SQLite (and on PostgreSQL when it answers on 127.0.0.1:5432):
- full re-evaluation of the default rules from stored facts, first time (every result
  row inserted) and a forced pass after a rule change (nothing left to write), in one
  process and over every core (alternating, median of 2), beside the floor: reading
  and json-decoding every machine's facts in one process;
- the re-evaluation after one rule changed (only that rule's results are re-evaluated,
  kiemke.collector.evaluation.changed_rules): its condition (the results of ~40% of
  the machines change and are written), and its target alone (nothing to write:
  what reading and comparing that rule costs, median of 2);
- /metrics render: the whole scrape (every provider, rules and depreciation included)
  through the Flask app, median of 5 (budget ≤ 100 ms);
- one maintenance pass (waiver expiry, unit rules of every unit, today's snapshot).
Tree: 1 province, 30 districts, 20 offices each (631 units); ~1% stale machines.
Run: .venv/bin/python bench/bench_compliance.py [machines]
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_rules import synthetic_facts  # noqa: E402
from sqlalchemy import String, Text, cast, select, type_coerce  # noqa: E402

from kiemke.collector.config import DEFAULT_RULES_DIR  # noqa: E402
from kiemke.collector.db.engine import make_engine, write_transaction  # noqa: E402
from kiemke.collector.db.migrate import upgrade  # noqa: E402
from kiemke.collector.db.tables import machines, units  # noqa: E402
from kiemke.collector.evaluation.evaluator import Evaluator  # noqa: E402
from kiemke.compliance import facts_to_json, load_rules  # noqa: E402

MACHINES = 100_000
RE_EVAL_BUDGET_S = 1.0  # the architecture's figure for the engine; the DB part is reported
METRICS_BUDGET_S = 0.100
PG_ADMIN_URL = os.environ.get("KIEMKE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def build_database(url: str, n: int, seed: int = 7) -> None:
    upgrade(url)
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    engine = make_engine(url)
    try:
        with write_transaction(engine) as conn:
            unit_rows = [{"id": 1, "parent_id": None, "name": "Liên đoàn Lao động tỉnh Bắc Giang",
                          "code": "LDLD-BG", "path": "Liên đoàn Lao động tỉnh Bắc Giang",
                          "level": 0, "created_at": now}]
            offices = []
            for d in range(30):
                did = len(unit_rows) + 1
                dpath = f"{unit_rows[0]['path']} / LĐLĐ huyện số {d + 1}"
                unit_rows.append({"id": did, "parent_id": 1, "name": f"LĐLĐ huyện số {d + 1}",
                                  "code": None, "path": dpath, "level": 1, "created_at": now})
                for o in range(20):
                    oid = len(unit_rows) + 1
                    unit_rows.append({"id": oid, "parent_id": did,
                                      "name": f"Công đoàn cơ sở {d + 1}.{o + 1}", "code": None,
                                      "path": f"{dpath} / Công đoàn cơ sở {d + 1}.{o + 1}",
                                      "level": 2, "created_at": now})
                    offices.append(oid)
            conn.execute(units.insert(), unit_rows)
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT setval('units_id_seq', 1000)")
        facts = synthetic_facts(n)
        batch: list[dict[str, Any]] = []
        for i, f in enumerate(facts):
            f["printers.names"] = ["HP LaserJet Pro M404dn"] if rng.random() < 0.6 else []
            f["network.subnets"] = ["10.20.1.0/24"]
            f["network.gateway"] = "10.20.1.1"
            unit_id = offices[i % len(offices)] if i % 10 else 1 + (i // 10) % 31
            stale = rng.random() < 0.01
            seen = now - (timedelta(days=10) if stale else timedelta(minutes=rng.randint(1, 600)))
            batch.append({"machine_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                          "agent_id": None, "unit_id": unit_id, "hostname": f"PC-{i:06d}",
                          "platform": "windows", "agent_version": "0.1.0",
                          "first_seen": seen, "last_seen": seen, "last_report_id": None,
                          "last_collected_at": seen, "report": None,
                          "facts": facts_to_json(f)})
            if len(batch) == 5000:
                with write_transaction(engine) as conn:
                    conn.execute(machines.insert(), batch)
                batch = []
        if batch:
            with write_transaction(engine) as conn:
                conn.execute(machines.insert(), batch)
    finally:
        engine.dispose()


def read_floor(engine: Any) -> float:
    """Seconds to read every machine's facts as text and json-decode them in one
    process: what any pass from stored facts must do at least."""
    text_facts = cast(machines.c.facts, Text) if engine.dialect.name == "postgresql" \
        else type_coerce(machines.c.facts, String)
    started = time.perf_counter()
    with engine.connect() as conn:
        for (raw,) in conn.execute(select(text_facts)):
            if raw is not None:
                json.loads(raw)
    return time.perf_counter() - started


def _schedstat() -> tuple[float, float]:
    """Seconds this thread ran on a CPU and waited runnable for one (Linux; else 0)."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as f:
            on, wait, _ = f.read().split()
    except OSError:
        return 0.0, 0.0
    return int(on) / 1e9, int(wait) / 1e9


def timed_pass(ev: Any, force: bool = True) -> dict[str, Any]:
    """ensure_current(force=...) with its CPU time (this process and its workers) and
    how long this process waited for a core."""
    before, (_, waited) = os.times(), _schedstat()
    stats = ev.ensure_current(force=force)
    after = os.times()
    cpu = sum(getattr(after, f) - getattr(before, f)
              for f in ("user", "system", "children_user", "children_system"))
    return {**stats, "cpu": cpu, "waited": _schedstat()[1] - waited}


def why_slow(run: dict[str, Any], budget: float, label: str) -> str:
    """Why a pass took more than `budget` s: its CPU against the cores it used, and the
    wait for a core (the machine's load); on PostgreSQL the server's CPU is not in it."""
    if run["seconds"] <= budget:
        return ""
    per = run["cpu"] / run["processes"]
    server = ", the database server's CPU not counted" if label == "postgres" else ""
    bound = (f"CPU bound: {per:.2f} s CPU per process" if per > budget else
             f"{per:.2f} s CPU per process, the rest waiting")
    return (f"{bound} ({run['cpu'] * 1e6 / max(run['machines'], 1):.1f} us per "
            f"machine over {run['processes']}{server}); this process waited "
            f"{run['waited']:.2f} s for a core")


def _median_pass(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return ordered[(len(ordered) - 1) // 2]


def _row(name: str, value: float, unit: str, budget: float | None, why: str = ""
         ) -> dict[str, Any]:
    """A row for bench/run.py; `why` is printed under the table when the budget is missed."""
    row = {"name": name, "value": value, "unit": unit, "budget": budget,
           "ok": None if budget is None else value <= budget}
    if why:
        row["why"] = why
    return row


def bench_backend(label: str, url: str, n: int, workdir: Path) -> list[dict[str, Any]]:
    from kiemke.collector.app import create_app

    started = time.perf_counter()
    build_database(url, n)
    build_s = time.perf_counter() - started
    rules = workdir / f"rules-{label}"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    started = time.perf_counter()
    app = create_app({"database_url": url, "data_dir": str(workdir / "data"),
                      "rules_dir": str(rules), "maintenance_interval": 0})  # first evaluation
    first_s = time.perf_counter() - started
    first = app.extensions["kiemke"]
    os_yml = rules / "os.yml"
    os_yml.write_text(os_yml.read_text("utf-8").replace(
        "condition: os.supported\n", 'condition: os.supported or os.family == "linux"\n'),
        "utf-8")
    # One rule changed, as a collector restarted with the new rules does it first thing.
    changed = timed_pass(Evaluator(first.engine, first.config, load_rules([rules])),
                         force=False)
    first.engine.dispose()
    app = create_app({"database_url": url, "data_dir": str(workdir / "data"),
                      "rules_dir": str(rules), "maintenance_interval": 0})
    ext = app.extensions["kiemke"]
    ev = ext.compliance
    floor_s = read_floor(ext.engine)
    # Forced passes with nothing to change, one process then all cores, alternating.
    cores = ev.workers
    passes: dict[int, list[dict[str, Any]]] = {1: [], cores: []}
    for _ in range(2):
        for workers in passes:
            ev.workers = workers
            passes[workers].append(timed_pass(ev))
    ev.workers = cores
    serial = _median_pass(passes[1])
    parallel = _median_pass(passes[cores])
    # The same rule's target alone, back and forth: read and compare, nothing to write.
    targets = []
    for target in ("0.99", "1.0"):
        os_yml.write_text(os_yml.read_text("utf-8").replace(
            "target: 1.0\n" if target != "1.0" else "target: 0.99\n", f"target: {target}\n",
            1), "utf-8")
        targets.append(timed_pass(Evaluator(ext.engine, ext.config, load_rules([rules])),
                                  force=False))
    target = _median_pass(targets)
    started = time.perf_counter()
    ev.maintain()
    maintain_s = time.perf_counter() - started
    client = app.test_client()
    times, size = [], 0
    for _ in range(6):
        t0 = time.perf_counter()
        body = client.get("/metrics").get_data()
        times.append(time.perf_counter() - t0)
        size = len(body)
    scrape = statistics.median(times[1:])
    series = sum(1 for line in body.decode("utf-8").splitlines()
                 if line and not line.startswith("#"))
    app.extensions["kiemke"].engine.dispose()
    return [
        _row(f"compliance[{label}]: build {n} machines by SQL (setup)", round(build_s, 2), "s",
             None),
        _row(f"compliance[{label}]: first evaluation of {n} machines (all rows inserted)",
             round(first_s, 2), "s", None),
        _row(f"compliance[{label}]: floor: read and json-decode every machine's facts, one "
             f"process", round(floor_s, 3), "s", None),
        _row(f"compliance[{label}]: full re-evaluation, one process (median of 2; "
             f"{serial['cpu']:.2f} s CPU; {serial['seconds'] / floor_s:.1f}x the floor)",
             serial["seconds"], "s", None),
        # ARCHITECTURE.md: full rule re-evaluation, 100,000 machines x 10 rules <= 1 s.
        _row(f"compliance[{label}]: full re-evaluation of {n} machines, nothing changed, "
             f"{parallel['processes']} processes (median of 2; {parallel['cpu']:.2f} s CPU in "
             f"all; {parallel['seconds'] / floor_s:.1f}x the floor; load average "
             f"{os.getloadavg()[0]:.1f})", parallel["seconds"], "s",
             RE_EVAL_BUDGET_S if n >= 100_000 else None,
             why_slow(parallel, RE_EVAL_BUDGET_S, label)),
        _row(f"compliance[{label}]: one rule changed (os-supported's condition), only its "
             f"results re-evaluated, {changed['written']} written, {changed['processes']} "
             f"processes ({changed['cpu']:.2f} s CPU in all)", changed["seconds"], "s", None),
        _row(f"compliance[{label}]: one rule's target changed, only its results "
             f"re-evaluated, nothing to write, {target['processes']} processes (median of 2; "
             f"{target['cpu']:.2f} s CPU in all; {target['seconds'] / floor_s:.1f}x the floor)",
             target["seconds"], "s", None),
        _row(f"compliance[{label}]: maintenance pass (unit rules, waivers, snapshot)",
             round(maintain_s, 2), "s", None),
        _row(f"compliance[{label}]: /metrics render at {n} machines ({series} series, "
             f"{size // 1024} KiB)", round(scrape, 4), "s", METRICS_BUDGET_S),
    ]


def _pg_database() -> tuple[str, Any] | None:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception:  # noqa: BLE001 - PostgreSQL is optional for this benchmark
        return None
    name = f"kiemke_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", (admin, name)


BackendBench = Callable[[str, str, int, Path], list[dict[str, Any]]]


def on_both_backends(bench: BackendBench, n: int, prefix: str) -> list[dict[str, Any]]:
    """Run `bench(label, url, n, workdir)` on a fresh SQLite file, then on a scratch
    PostgreSQL database when one answers; clean both up."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    rows: list[dict[str, Any]] = []
    try:
        rows += bench("sqlite", f"sqlite:///{workdir / 'kiemke.db'}", n, workdir)
        pg = _pg_database()
        if pg is not None:
            url, (admin, name) = pg
            try:
                rows += bench("postgres", url, n, workdir)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main(n: int = MACHINES) -> list[dict[str, Any]]:
    return on_both_backends(bench_backend, n, "kiemke-bench-compliance-")


if __name__ == "__main__":
    from run import print_table  # bench/run.py: the same table as `make bench`

    print_table(main(int(sys.argv[1]) if len(sys.argv) > 1 else MACHINES))
