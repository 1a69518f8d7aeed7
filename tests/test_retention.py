"""Raw report retention (kiemke/collector/retention.py) on SQLite and PostgreSQL: the
job deletes exactly the reports older than the retention, keeps every machine's latest
report however old, changes no period report, and runs once across instances."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from compliance_helpers import DISTRICT_A, OFFICE, OS_FAIL, OS_PASS, ROOT, build_tree, make_app
from compliance_helpers import report_at as ingest_at
from sqlalchemy import select

from kiemke.collector.config import CollectorConfig, ConfigError
from kiemke.collector.db.job_locks import exclusive
from kiemke.collector.db.tables import machines, reports
from kiemke.collector.reports.figures import build_period_report
from kiemke.collector.reports.history import run_daily_job
from kiemke.collector.reports.periods import parse_period
from kiemke.collector.reports.render import render_report
from kiemke.collector.retention import prune_reports

TZ = "Asia/Ho_Chi_Minh"
T0 = datetime(2026, 8, 1, 2, 0, tzinfo=timezone.utc)


def _rows(app) -> dict[tuple[str, str], datetime]:
    with app.extensions["kiemke"].engine.connect() as conn:
        return {(m, r): at for m, r, at in conn.execute(
            select(reports.c.machine_id, reports.c.report_id, reports.c.received_at))}


def _period(app, unit: str, period: str) -> bytes:
    with app.extensions["kiemke"].engine.connect() as conn:
        built = build_period_report(conn, unit, parse_period(period), "vi", timezone=TZ,
                                    now=T0 + timedelta(days=120))
    return render_report(built, "json")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_pruning_removes_exactly_what_is_older_and_keeps_latest_and_reports(
        backend, tmp_path, monkeypatch, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    app = make_app(url, tmp_path, monkeypatch)
    engine = app.extensions["kiemke"].engine
    units = build_tree(app)
    # A reports every 10 days for 100 days (passing, then failing from day 50); B three
    # days at the start and never again (its latest report is old and must stay);
    # C once near the end. The daily job runs along, so history covers every day.
    a = b = None
    for day in range(0, 101, 10):
        a = ingest_at(app, units[OFFICE], "PC-TANAN-01", T0 + timedelta(days=day),
                      machine_id=a, **(OS_PASS if day < 50 else OS_FAIL))
        if day < 30:
            b = ingest_at(app, units[DISTRICT_A], "PC-YENDUNG-01",
                          T0 + timedelta(days=day // 10), machine_id=b, **OS_PASS)
        ext = app.extensions["kiemke"]
        run_daily_job(engine, ext.compliance.ruleset, timezone=TZ,
                      stale_after=ext.config.stale_after, now=T0 + timedelta(days=day, hours=1))
    c = ingest_at(app, units[OFFICE], "PC-TANAN-02", T0 + timedelta(days=95), **OS_PASS)
    before = _rows(app)
    assert len(before) == 11 + 3 + 1
    periods = {p: _period(app, ROOT, p) for p in ("2026-08", "2026-09", "2026-Q3")}
    assert b'"machines"' in periods["2026-08"]

    now = T0 + timedelta(days=100, hours=2)
    retention = 30
    cutoff = now - timedelta(days=retention)
    latest = {m: max(at for (mm, _r), at in before.items() if mm == m) for m in (a, b, c)}
    expected = {k: at for k, at in before.items() if at >= cutoff or at == latest[k[0]]}
    assert len(expected) == 3 + 1 + 1  # A: days 80, 90, 100; B: day 2; C: day 95

    stats = prune_reports(engine, retention, now, batch=3, pause=0)
    assert stats["deleted"] == len(before) - len(expected) == 10
    assert stats["batches"] == 4  # 3 + 3 + 3 + 1
    assert _rows(app) == expected
    with engine.connect() as conn:
        last_ids = dict(conn.execute(select(machines.c.machine_id,
                                               machines.c.last_report_id)).all())
    assert all((m, rid) in expected for m, rid in last_ids.items())
    # The period reports read the history, never raw reports: byte for byte the same.
    for period, body in periods.items():
        assert _period(app, ROOT, period) == body, period
    # Running again deletes nothing; B's single old report stays for good.
    assert prune_reports(engine, retention, now + timedelta(days=365), pause=0)["deleted"] == 2
    left = _rows(app)
    assert {m for m, _r in left} == {a, b, c} and len(left) == 3


def test_a_second_instance_skips_while_one_prunes(tmp_path, monkeypatch, sqlite_url):
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    engine = app.extensions["kiemke"].engine
    units = build_tree(app)
    m = None
    for day in range(3):
        m = ingest_at(app, units[OFFICE], "PC-TANAN-01", T0 + timedelta(days=day), machine_id=m)
    now = T0 + timedelta(days=60)
    with exclusive(engine, "retention", now) as got:
        assert got
        assert "skipped" in prune_reports(engine, 30, now)
        assert len(_rows(app)) == 3
    assert prune_reports(engine, 30, now, pause=0)["deleted"] == 2
    assert prune_reports(engine, 0, now)["skipped"].startswith("KIEMKE_REPORT_RETENTION_DAYS=0")


@pytest.mark.parametrize("value", ["3", "-1", "ninety", "6"])
def test_a_retention_too_short_to_catch_agents_retries_is_refused(value):
    with pytest.raises(ConfigError) as err:
        CollectorConfig.from_env({"KIEMKE_REPORT_RETENTION_DAYS": value})
    message = str(err.value)
    assert "KIEMKE_REPORT_RETENTION_DAYS" in message and "at least 7" in message
    keep_all = CollectorConfig.from_env({"KIEMKE_REPORT_RETENTION_DAYS": "0"})
    assert keep_all.report_retention_days == 0
    assert CollectorConfig.from_env({}).report_retention_days == 30
