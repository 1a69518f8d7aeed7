"""GET /metrics at 100,000 machines: cold, steady and after a change (budget ≤ 100 ms).

The database is built like bench_compliance.py builds it (its builder, imported): 631
units, 10 default rules, ~1 % stale machines, 15-20 % failing per rule. Measured on
SQLite and on PostgreSQL when it answers on 127.0.0.1:5432 (a database of its own,
dropped after):
- through the Flask test client: the first scrape of a new process (cold: every family
  built from the database), the first scrape of another new process that finds the state
  the first one saved (kiemke.collector.metrics_snapshot), the steady scrape (median of
  5: nothing changed), and the
  scrape after rule results of 1, 10, 100 and 1,000 random machines changed through the
  store (what ingest does: the blocks they touch are rebuilt), plain and gzip; after 100
  (issue 12's goal: <= 100 ms) the median of 5 changes and scrapes, with its CPU time
  and the load average, and why when missed;
- `render_metrics()` (kiemke/collector/metrics.py), the body GET /metrics serves once
  api/ops.py calls it, steady, median of 5;
- through a real gunicorn server (`kiemke-collector serve`, 2 workers) on loopback:
  a worker's first scrape and the steady median of 10, gzip (as Prometheus asks) and
  plain, and the resident memory (VmRSS) of each worker after them.
Run: .venv/bin/python bench/bench_metrics.py [machines] [--keep DIR]
`--keep DIR` keeps the SQLite database (DIR/kiemke.db) and the PostgreSQL database
(kiemke_bench_keep_<hash of DIR>: runs with other DIRs never share it) and reuses them on
the next run with the same DIR: building them takes minutes; the changes a run makes are
small and keep the fleet's shape. Two runs with the same DIR at once write into each
other's databases: the restore row then says that the database moved after the save.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_compliance import _pg_database, _row, build_database, on_both_backends  # noqa: E402
from sqlalchemy import select  # noqa: E402

from kiemke.collector.db.compliance_tables import rule_results  # noqa: E402
from kiemke.collector.db.engine import write_transaction  # noqa: E402
from kiemke.collector.db.migrate import upgrade  # noqa: E402
from kiemke.collector.evaluation.store import ResultWriter, load_results  # noqa: E402
from kiemke.collector.exposition import gunzip_members  # noqa: E402
from kiemke.collector.timeutil import utcnow  # noqa: E402

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


FLIP = {"pass": "fail", "fail": "pass", "unknown": "fail"}


def change_results(engine: Any, machine_ids: list[str], n: int, rng: random.Random) -> None:
    """Flip one rule result of `n` random machines through the store, as ingest does."""
    chosen = sorted(rng.sample(machine_ids, n))
    with write_transaction(engine) as conn:
        old = load_results(conn, chosen)
        writer = ResultWriter(utcnow())
        for mid in chosen:
            flippable = [r for r, v in old[mid].items() if v.result in FLIP]
            if not flippable:
                continue
            rule_id = rng.choice(flippable)
            new = {r: (v.result, v.reason) for r, v in old[mid].items()}
            result = FLIP[new[rule_id][0]]
            new[rule_id] = (result, "Máy đổi kết quả (bench)" if result == "fail" else None)
            writer.machine(mid, old[mid][rule_id].unit_id, new, old[mid])
        writer.flush(conn)


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
    gz = {"Accept-Encoding": "gzip"}
    started = time.perf_counter()
    packed = client.get("/metrics", headers=gz).get_data()
    first_gzip = time.perf_counter() - started
    assert gzip.decompress(packed).startswith(b"# HELP")
    steady_gzip = _median(lambda: client.get("/metrics", headers=gz).get_data(), 5)
    with ext.engine.connect() as conn:
        machine_ids = list(conn.execute(select(rule_results.c.machine_id).distinct()).scalars())
    rng = random.Random(11)
    changed: list[dict[str, Any]] = []
    for n in (1, 10, 100, 1000):
        for encoding in ("gzip", "identity"):
            changed.append(after_changes(label, client, ext.engine, machine_ids, n, encoding,
                                         rng))
    # A new process of the same collector (same data dir): it starts from the state the
    # scrapes above saved (kiemke.collector.metrics_snapshot). One more scrape once the
    # save interval has passed saves the state after the changes above, as a serving
    # process does (a new process that finds an older state also reads the blocks changed
    # since: the "after N machines changed" rows).
    from kiemke.collector.metrics_snapshot import SAVE_EVERY

    wait_saved()
    time.sleep(SAVE_EVERY)
    saved_at = _versions(ext.engine)  # before the scrape whose state is saved
    client.get("/metrics").get_data()
    wait_saved()
    restarted = create_app(config)
    moved = _versions(ext.engine)
    started = time.perf_counter()
    again = restarted.test_client().get("/metrics").get_data()
    restored = time.perf_counter() - started
    restarted.extensions["kiemke"].engine.dispose()
    ext.engine.dispose()
    name = f"metrics[{label}]"
    # The goal: first scrape of a new process <= 1 s.
    restore = _row(f"{name}: GET /metrics, first scrape of a new process with the saved "
                   f"state ({_series(again)} series; load average {os.getloadavg()[0]:.1f})",
                   round(restored, 4), "s", 1.0)
    if saved_at != moved:
        # Not this bench's writes: the new process reads what changed since the save (a
        # re-evaluation or a log gap: everything), as it should.
        restore["why"] = (f"the database changed after the save ({saved_at} -> {moved}): "
                          "another process wrote to it (a second run on the same --keep "
                          "DIR?); the new process read what changed since")
    return [
        _row(f"{name}: GET /metrics cold, first scrape of a process ({_series(body)} series, "
             f"{len(body) // 1024} KiB)", round(cold, 4), "s", None),
        restore,
        _row(f"{name}: GET /metrics steady (Flask test client)", round(steady, 4), "s",
             BUDGET_S),
        _row(f"{name}: render_metrics() steady (the body ops.py serves)", round(fast, 4), "s",
             BUDGET_S),
        _row(f"{name}: GET /metrics gzip, first of the process after plain "
             f"({len(packed) // 1024} KiB compressed)", round(first_gzip, 4), "s", None),
        _row(f"{name}: GET /metrics gzip steady", round(steady_gzip, 4), "s", BUDGET_S),
        *changed,
    ]


def _versions(engine: Any) -> dict[str, int]:
    """The change versions (kiemke/collector/changes.py) as the database has them now."""
    from kiemke.collector.changes import versions

    with engine.connect() as conn:
        return versions(conn)


GOAL_ROUNDS = 5  # scrapes after 100 changed machines, per encoding (issue 12's goal)


def after_changes(label: str, client: Any, engine: Any, machine_ids: list[str], n: int,
                  encoding: str, rng: random.Random) -> dict[str, Any]:
    """GET /metrics after `n` machines' results changed. For 100 (the goal: <= 100 ms)
    the median of GOAL_ROUNDS changes and scrapes, with the scrape's CPU time and the
    load average, and why when the goal is missed."""
    rounds = GOAL_ROUNDS if n == 100 else 1
    walls, cpus = [], []
    for _ in range(rounds):
        change_results(engine, machine_ids, n, rng)
        started, cpu = time.perf_counter(), time.thread_time()
        client.get("/metrics", headers={"Accept-Encoding": encoding}).get_data()
        walls.append(time.perf_counter() - started)
        cpus.append(time.thread_time() - cpu)
    wall, cpu_s = statistics.median(walls), statistics.median(cpus)
    name = f"metrics[{label}]: GET /metrics ({encoding}) after {n} machines' results changed"
    if n != 100:
        return _row(name, round(wall, 4), "s", BUDGET_S if n < 100 else None)
    load = os.getloadavg()[0]
    row = _row(f"{name} (goal; median of {rounds}, CPU {cpu_s * 1000:.0f} ms, load average "
               f"{load:.1f} on {os.cpu_count()} cores)", round(wall, 4), "s", BUDGET_S)
    if not row["ok"]:
        row["why"] = (
            f"the scrape's own CPU time is {cpu_s * 1000:.0f} ms (median), "
            + ("within the goal: the rest is waiting for a core on a machine at load "
               f"average {load:.1f}" if cpu_s <= BUDGET_S else
               "over the goal too: profile a scrape after 100 changes "
               "(docs/metrics.md, \"Measured\")"))
    return row


def wait_saved() -> None:
    """Until the background saves of the metrics state are written."""
    for thread in threading.enumerate():
        if thread.name == "kiemke-metrics-snapshot":
            thread.join(120)


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
            [sys.executable, "-m", "kiemke.collector", "serve", "--bind",
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
        with session.get(f"{base}/metrics", timeout=60, stream=True,
                         headers={"Accept-Encoding": "gzip"}) as resp:
            # The bytes as sent, decoded here (gunzip_members: not requests' decoder).
            body, members = gunzip_members(resp.raw.read(decode_content=False))
        first = time.perf_counter() - started
        for _ in range(4):  # fill the other worker's caches too
            session.get(f"{base}/metrics", timeout=60)
        def transfer() -> bytes:
            # The bytes as sent (gzip): decompressing is the scraper's own work.
            with session.get(f"{base}/metrics", timeout=60, stream=True) as resp:
                return resp.raw.read(decode_content=False)

        steady = _median(transfer, 10)
        plain = {"Accept-Encoding": "identity"}
        plain_body = session.get(f"{base}/metrics", headers=plain, timeout=60).content
        session.get(f"{base}/metrics", headers=plain, timeout=60)
        steady_plain = _median(lambda: session.get(f"{base}/metrics", headers=plain,
                                                   timeout=60).content, 10)
        rss = [worker_rss_mb(pid) for pid in child_pids(proc.pid)]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    name = f"metrics[{label}]"
    first_row = _row(f"{name}: gunicorn 2 workers, first scrape (gzip, {members} members: "
                     f"{_series(body)} series; plain text: {_series(plain_body)})",
                     round(first, 4), "s", None)
    if _series(body) != _series(plain_body):  # nothing writes meanwhile: a part lost
        first_row.update(budget="gzip = plain", ok=False, why=(
            "the gzip and the plain scrape hold different series: a part of the body was "
            "lost"))
    return [
        first_row,
        _row(f"{name}: gunicorn 2 workers, steady scrape over loopback (gzip, as "
             f"Prometheus asks)", round(steady, 4), "s", BUDGET_S),
        _row(f"{name}: gunicorn 2 workers, steady scrape over loopback (plain text)",
             round(steady_plain, 4), "s", None),
        # The goal: collector RSS per worker at 100,000 machines <= 150 MB.
        _row(f"{name}: RSS of the largest gunicorn worker after these scrapes "
             f"({len(rss)} workers: {', '.join(f'{r:.0f}' for r in rss)} MB)",
             round(max(rss, default=float("nan")), 1), "MB", 150.0),
    ]


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the gunicorn workers of a master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def worker_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_backend(label: str, url: str, n: int, workdir: Path, reuse: bool = False
                  ) -> list[dict[str, Any]]:
    if reuse:
        upgrade(url)  # a kept database from an older schema
    else:
        build_database(url, n)
    if url.startswith("postgresql"):
        import psycopg

        # What autovacuum does for a real database: planner statistics.
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"),
                             autocommit=True) as conn:
            conn.execute("ANALYZE")
    return bench_flask(label, url, workdir) + bench_gunicorn(label, url, workdir)


def main(n: int = MACHINES, keep: Path | None = None) -> list[dict[str, Any]]:
    if keep is not None:
        return _main_kept(n, keep)
    return on_both_backends(bench_backend, n, "kiemke-bench-metrics-")


def kept_pg(keep: Path) -> str:
    """The kept PostgreSQL database of `keep`: one per DIR, so that runs with other DIRs
    (other helpers on the machine) never write into it."""
    return f"kiemke_bench_keep_{hashlib.sha256(str(keep.resolve()).encode()).hexdigest()[:10]}"


def _main_kept(n: int, keep: Path) -> list[dict[str, Any]]:
    """Databases kept in `keep` (SQLite) and as kept_pg(keep) (PostgreSQL), built when
    missing."""
    keep.mkdir(parents=True, exist_ok=True)
    kept = kept_pg(keep)
    work = Path(tempfile.mkdtemp(prefix="kiemke-bench-metrics-", dir=keep))
    rows: list[dict[str, Any]] = []
    try:
        db = keep / "kiemke.db"
        rows += bench_backend("sqlite", f"sqlite:///{db}", n, work, reuse=db.exists())
        pg = _pg_database()
        if pg is not None:
            url, (admin, name) = pg
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                   (kept,)).fetchone() is not None
            if not exists:
                admin.execute(f'CREATE DATABASE "{kept}" ENCODING \'UTF8\' TEMPLATE template0')
            admin.close()
            rows += bench_backend("postgres", f"{url.rsplit('/', 1)[0]}/{kept}", n, work,
                                  reuse=exists)
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
