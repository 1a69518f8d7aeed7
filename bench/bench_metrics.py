"""GET /metrics at 100,000 machines: cold, steady and after a change (budget ≤ 100 ms).

The database is built like bench_compliance.py builds it (its builder, imported): 631
units, 10 default rules, ~1 % stale machines, 15-20 % failing per rule. Measured on
SQLite and on PostgreSQL when it answers on 127.0.0.1:5432 (a database of its own,
dropped after):
- through the Flask test client: the first scrape of a new process (cold: every family
  built from the database), the steady scrape (median of 5: nothing changed), and the
  scrape after a rule result changed (the compliance families rebuilt);
- `render_metrics()` (kiemke/collector/metrics.py), the body GET /metrics serves once
  api/ops.py calls it, steady, median of 5;
- through a real gunicorn server (`kiemke-collector serve`, 2 workers) on loopback:
  a worker's first scrape and the steady median of 10.
Run: .venv/bin/python bench/bench_metrics.py [machines]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_compliance import _pg_database, _row, build_database  # noqa: E402

from kiemke.collector.changes import COMPLIANCE, bump  # noqa: E402
from kiemke.collector.db.engine import write_transaction  # noqa: E402

MACHINES = 100_000
BUDGET_S = 0.100
REPO = Path(__file__).resolve().parents[1]


def _series(body: bytes) -> int:
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))


def _median(run: Any, times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bench_flask(label: str, url: str, workdir: Path) -> list[dict[str, Any]]:
    from kiemke.collector.app import create_app
    from kiemke.collector.metrics import render_metrics

    config = {"database_url": url, "data_dir": str(workdir / "data"),
              "maintenance_interval": 0}
    create_app(config).extensions["kiemke"].engine.dispose()  # first rule evaluation
    app = create_app(config)  # a new process as far as the caches go
    ext = app.extensions["kiemke"]
    client = app.test_client()
    started = time.perf_counter()
    body = client.get("/metrics").get_data()
    cold = time.perf_counter() - started
    steady = _median(lambda: client.get("/metrics").get_data(), 5)
    fast = _median(lambda: render_metrics(ext), 5)
    with write_transaction(ext.engine) as conn:
        bump(conn, COMPLIANCE)  # what a changed rule result does in its transaction
    started = time.perf_counter()
    client.get("/metrics").get_data()
    changed = time.perf_counter() - started
    ext.engine.dispose()
    name = f"metrics[{label}]"
    return [
        _row(f"{name}: GET /metrics cold, first scrape of a process ({_series(body)} series, "
             f"{len(body) // 1024} KiB)", round(cold, 4), "s", None),
        _row(f"{name}: GET /metrics steady (Flask test client)", round(steady, 4), "s",
             BUDGET_S),
        _row(f"{name}: GET /metrics after a rule result changed", round(changed, 4), "s",
             None),
        _row(f"{name}: render_metrics() steady (the body ops.py serves)", round(fast, 4), "s",
             BUDGET_S),
    ]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_gunicorn(label: str, url: str, workdir: Path) -> list[dict[str, Any]]:
    import requests

    port = _free_port()
    data = workdir / f"serve-{label}"
    data.mkdir()
    env = {**os.environ, "KIEMKE_DATABASE_URL": url, "KIEMKE_DATA_DIR": str(data),
           "KIEMKE_MAINTENANCE_INTERVAL": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(data / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiemke.collector.cli", "serve", "--bind",
             f"127.0.0.1:{port}", "--workers", "2"], env=env, cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"collector did not start:\n"
                                   f"{(data / 'server.log').read_text('utf-8')[-2000:]}")
            time.sleep(0.2)
        session = requests.Session()
        started = time.perf_counter()
        body = session.get(f"{base}/metrics", timeout=60).content
        first = time.perf_counter() - started
        for _ in range(4):  # fill the other worker's caches too
            session.get(f"{base}/metrics", timeout=60)
        steady = _median(lambda: session.get(f"{base}/metrics", timeout=60).content, 10)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    name = f"metrics[{label}]"
    return [
        _row(f"{name}: gunicorn 2 workers, first scrape ({_series(body)} series)",
             round(first, 4), "s", None),
        _row(f"{name}: gunicorn 2 workers, steady scrape over loopback", round(steady, 4),
             "s", BUDGET_S),
    ]


def bench_backend(label: str, url: str, n: int, workdir: Path) -> list[dict[str, Any]]:
    build_database(url, n)
    if url.startswith("postgresql"):
        import psycopg

        # What autovacuum does for a real database: planner statistics.
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"),
                             autocommit=True) as conn:
            conn.execute("ANALYZE")
    return bench_flask(label, url, workdir) + bench_gunicorn(label, url, workdir)


def main(n: int = MACHINES) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="kiemke-bench-metrics-"))
    rows: list[dict[str, Any]] = []
    try:
        rows += bench_backend("sqlite", f"sqlite:///{workdir / 'kiemke.db'}", n, workdir)
        pg = _pg_database()
        if pg is not None:
            url, (admin, name) = pg
            try:
                rows += bench_backend("postgres", url, n, workdir)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


if __name__ == "__main__":
    for row in main(int(sys.argv[1]) if len(sys.argv) > 1 else MACHINES):
        budget = f"(budget {row['budget']} {row['unit']})" if row["budget"] is not None else ""
        print(f"{'ok ' if row['ok'] else 'BAD'} {row['name']}: {row['value']} {row['unit']} "
              f"{budget}", flush=True)
    print(json.dumps({"done": True}))
