"""Console pages at 100,000 machines: server time per page, and the login.

Budgets (ARCHITECTURE.md): the root unit's overview <= 150 ms, any other page <= 300 ms,
login <= 500 ms (the argon2id cost is deliberate). The database is bench_compliance.py's
(631 units, 10 default rules, ~1 % stale) after a first evaluation and a maintenance pass,
with 90 days of daily history for every unit x rule. Pages are fetched through the Flask
test client (server time: routing, queries, templates), median of 5 after one warm-up
(pages keep the figures per process while the database's change versions hold, at most
30 s; the cold root overview, figures recomputed, is reported apart); GET /healthz
through the same client is the floor, argon2id's verify alone the login's. SQLite, and
PostgreSQL when it answers on 127.0.0.1:5432.
Run: .venv/bin/python bench/bench_console.py [machines]
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_compliance import _row, build_database, on_both_backends  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from kiemke.collector.accounts.roles import cli_principal  # noqa: E402
from kiemke.collector.accounts.users import add_user  # noqa: E402
from kiemke.collector.config import REPO_RULES_DIR  # noqa: E402
from kiemke.collector.db.compliance_tables import compliance_daily  # noqa: E402
from kiemke.collector.db.engine import write_transaction  # noqa: E402
from kiemke.collector.db.history_tables import history_days, history_units  # noqa: E402
from kiemke.collector.db.tables import machines  # noqa: E402
from kiemke.collector.timeutil import utcnow  # noqa: E402

MACHINES = 100_000
ROOT_BUDGET_S, PAGE_BUDGET_S, LOGIN_BUDGET_S = 0.150, 0.300, 0.500
PASSWORD = "bench-mật-khẩu-2026"
HISTORY_DAYS = 90


def _history(engine: Any) -> None:
    """HISTORY_DAYS days before the last snapshot, for every unit x rule: the figures
    (compliance_daily) and the closed days with their unit tree (history_days,
    history_units) that the period report and the ranking read, so the report page's
    default period (the last closed month) has days whatever the date of the run."""
    for table in (compliance_daily, history_days, history_units):
        with engine.connect() as conn:
            last = conn.execute(select(func.max(table.c.day))).scalar()
            if last is None:
                continue
            rows = [r._asdict() for r in conn.execute(select(table).where(table.c.day == last))]
            held = set(conn.execute(select(table.c.day).distinct()).scalars())
        for back in range(1, HISTORY_DAYS + 1):
            day = last - dt.timedelta(days=back)
            if day in held:
                continue
            with write_transaction(engine) as conn:
                conn.execute(insert(table), [{**r, "day": day} for r in rows])


def _median(client: Any, path: str, times: int = 5) -> tuple[float, int]:
    first = client.get(path)  # warm-up: templates compiled, caches filled
    assert first.status_code == 200, (path, first.status_code, first.get_data(as_text=True)[-800:])
    samples, status = [], 0
    for _ in range(times):
        t0 = time.perf_counter()
        resp = client.get(path)
        samples.append(time.perf_counter() - t0)
        status = resp.status_code
    return statistics.median(samples), status


def _login(app: Any, name: str) -> tuple[Any, float]:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    t0 = time.perf_counter()
    resp = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    took = time.perf_counter() - t0
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return client, took


def bench_backend(label: str, url: str, n: int, workdir: Path) -> list[dict[str, Any]]:
    from kiemke.collector.app import create_app

    def step(text: str) -> None:
        print(f"  console[{label}]: {text}", file=sys.stderr, flush=True)

    step(f"building {n} machines")
    build_database(url, n)
    rules = workdir / f"rules-{label}"
    shutil.copytree(REPO_RULES_DIR, rules)
    app = create_app({"database_url": url, "data_dir": str(workdir / "data"),
                      "rules_dir": str(rules), "maintenance_interval": 0})
    ext = app.extensions["kiemke"]
    step("maintenance pass and history")
    ext.compliance.maintain()
    # The daily job closes today as if run after midnight (a first run records the
    # sync), then _history copies that closed day back HISTORY_DAYS days.
    now = utcnow()
    ext.reports.run_job(now)
    ext.reports.run_job(now + dt.timedelta(days=1))
    _history(ext.engine)
    step("measuring")
    with write_transaction(ext.engine) as conn:
        add_user(conn, "admin", PASSWORD, role="admin", actor=cli_principal("bench"))
        add_user(conn, "district", PASSWORD, role="manager", unit=2, actor=cli_principal("bench"))
    with ext.engine.connect() as conn:
        machine_id = conn.execute(select(machines.c.machine_id).where(machines.c.unit_id == 3)
                                  .limit(1)).scalar_one()
    logins = []
    for _ in range(5):
        client, took = _login(app, "admin")
        logins.append(took)
    district, _took = _login(app, "district")
    floor, _ = _median(client, "/healthz")
    from kiemke.collector.accounts.passwords import HASHER

    stored = HASHER.hash(PASSWORD)
    hashes = []
    for _ in range(5):
        t0 = time.perf_counter()
        HASHER.verify(stored, PASSWORD)
        hashes.append(time.perf_counter() - t0)
    rows = [_row(f"console[{label}]: GET /healthz, the floor of the same client",
                 round(floor * 1000, 2), "ms", None),
            _row(f"console[{label}]: argon2id verify alone (the login's floor)",
                 round(statistics.median(hashes) * 1000, 1), "ms", None),
            _row(f"console[{label}]: login (argon2id verify, session row)",
                 round(statistics.median(logins) * 1000, 1), "ms", LOGIN_BUDGET_S * 1000)]
    pages = [("overview of the root (/)", client, "/", ROOT_BUDGET_S),
             ("overview of a district", client, "/units/2", PAGE_BUDGET_S),
             ("district manager's home", district, "/", PAGE_BUDGET_S),
             ("rule page, root", client, "/units/1/rules/os-supported", PAGE_BUDGET_S),
             ("rule page, unknown machines, root", client,
              "/units/1/rules/av-approved-active?result=unknown", PAGE_BUDGET_S),
             ("machine page", client, f"/machines/{machine_id}", PAGE_BUDGET_S),
             ("machine search", client, "/machines?q=PC-0001", PAGE_BUDGET_S),
             ("waivers", client, "/waivers", PAGE_BUDGET_S),
             ("enrolment tokens", client, "/tokens", PAGE_BUDGET_S),
             ("agents", client, "/agents", PAGE_BUDGET_S),
             ("audit log", client, "/audit", PAGE_BUDGET_S),
             ("people", client, "/users", PAGE_BUDGET_S),
             ("period report page, root", client, "/units/1/reports", PAGE_BUDGET_S),
             # The default period is the last closed year, before this history starts.
             ("ranking page (this year so far), root", client,
              f"/units/1/ranking?period={now.year}", PAGE_BUDGET_S)]
    # Cold: the first page after a change recomputes the figures (over every unit).
    app.extensions.pop("kiemke_console_figures", None)
    t0 = time.perf_counter()
    client.get("/")
    rows.append(_row(f"console[{label}]: overview of the root, cold (figures recomputed)",
                     round((time.perf_counter() - t0) * 1000, 1), "ms", None))
    for name, who, path, budget in pages:
        took, status = _median(who, path)
        assert status == 200, (path, status)
        rows.append(_row(f"console[{label}]: {name} at {n} machines", round(took * 1000, 1),
                         "ms", budget * 1000))
    ext.engine.dispose()
    return rows


def main(n: int = MACHINES) -> list[dict[str, Any]]:
    return on_both_backends(bench_backend, n, "kiemke-bench-console-")


if __name__ == "__main__":
    from run import print_table

    print_table(main(int(sys.argv[1]) if len(sys.argv) > 1 else MACHINES))
