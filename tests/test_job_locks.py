"""The locks that make periodic jobs run once across instances (kiemke/collector/db/
job_locks.py): one holder at a time on SQLite and PostgreSQL, a killed holder does not
block the job for good, the interval claim has one winner, and a period's reports are
delivered once even by instances with their own report folders (other hosts)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from compliance_helpers import OFFICE, ROOT, build_tree, make_app, report_at
from conftest import REPO, migrate

from kiemke.collector.db.engine import make_engine
from kiemke.collector.db.job_locks import claim_every, exclusive
from kiemke.collector.reports.delivery import deliver, delivered_at, forget_delivery
from kiemke.collector.reports.history import run_daily_job
from kiemke.collector.reports.periods import month
from kiemke.collector.reports.settings import ReportSettings

NOW = datetime(2026, 12, 1, 17, 5, tzinfo=timezone.utc)
HOLD = """
import sys, time
from datetime import datetime, timezone
from kiemke.collector.db.engine import make_engine
from kiemke.collector.db.job_locks import exclusive
engine = make_engine(sys.argv[1])
with exclusive(engine, "maintenance", datetime.now(timezone.utc)) as got:
    print("held" if got else "refused", flush=True)
    time.sleep(600)
"""


def _holder(url: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url], cwd=REPO, text=True,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_holder_and_a_killed_holder_frees_the_job(backend, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    migrate(url)
    engine = make_engine(url)
    now = datetime.now(timezone.utc)
    proc = _holder(url)
    try:
        with exclusive(engine, "maintenance", now) as got:
            assert not got  # another process (instance) holds it
        with exclusive(engine, "retention", now) as got:
            assert got  # each job has its own lock
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # SIGKILL: PostgreSQL ends the session (and its lock); on SQLite the row names a dead
    # process of this host, which the next caller takes over.
    with exclusive(engine, "maintenance", now) as got:
        assert got
        seen = []

        def try_it() -> None:
            with exclusive(engine, "maintenance", now) as other_got:
                seen.append(other_got)

        other = threading.Thread(target=try_it)
        other.start()
        other.join(timeout=30)
        assert seen == [False]  # a live holder (another thread) is never taken over
    with exclusive(engine, "maintenance", now) as got:
        assert got  # released on leaving the block
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_interval_claim_has_one_winner(backend, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    migrate(url)
    engines = [make_engine(url) for _ in range(4)]
    wins: list[bool] = []
    barrier = threading.Barrier(len(engines))

    def claim(engine):
        barrier.wait()
        wins.append(claim_every(engine, "retention", NOW, timedelta(hours=1)))

    threads = [threading.Thread(target=claim, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(wins) == [False, False, False, True]
    assert not claim_every(engines[0], "retention", NOW + timedelta(minutes=59),
                           timedelta(hours=1))
    assert claim_every(engines[0], "retention", NOW + timedelta(hours=1), timedelta(hours=1))
    for e in engines:
        e.dispose()


def test_a_period_is_delivered_once_by_instances_with_their_own_folders(
        tmp_path: Path, monkeypatch, sqlite_url):
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    engine = app.extensions["kiemke"].engine
    ext = app.extensions["kiemke"]
    units = build_tree(app)
    report_at(app, units[OFFICE], "PC-TANAN-01", datetime(2026, 10, 30, 2, tzinfo=timezone.utc))
    run_daily_job(engine, ext.compliance.ruleset, timezone="Asia/Ho_Chi_Minh",
                  stale_after=ext.config.stale_after, now=NOW - timedelta(days=32))
    run_daily_job(engine, ext.compliance.ruleset, timezone="Asia/Ho_Chi_Minh",
                  stale_after=ext.config.stale_after, now=NOW)
    november = month(2026, 11)
    folders = [tmp_path / "host-a" / "reports", tmp_path / "host-b" / "reports"]
    results = []
    for folder in folders:
        settings = ReportSettings.from_env({"KIEMKE_REPORT_DIR": str(folder),
                                            "KIEMKE_REPORT_UNITS": ROOT,
                                            "KIEMKE_REPORT_FORMATS": "csv"})
        results.append(deliver(engine, settings, november, now=NOW,
                               timezone="Asia/Ho_Chi_Minh"))
    assert results[0]["files"] and "skipped" not in results[0], results[0]
    assert results[1] == {"period": "2026-11", "skipped": "already delivered"}
    assert sorted(p.name for p in (folders[0] / "2026-11").iterdir()) == \
        sorted([".delivered", *results[0]["files"]])
    assert not (folders[1] / "2026-11").exists()
    assert delivered_at(engine, november) == NOW
    forget_delivery(engine, november)  # `reports deliver --again`
    assert delivered_at(engine, november) is None
    again = deliver(engine, settings, november, now=NOW, timezone="Asia/Ho_Chi_Minh")
    assert again["files"] == results[0]["files"]
