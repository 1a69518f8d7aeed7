"""The daily history job through the real ingest path: local-day boundaries, catch-up
after an outage, reproducible closed periods, and one snapshot from two instances at
once (SQLite and PostgreSQL). About 20 s."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OFFICE,
    OS_FAIL,
    OS_PASS,
    ROOT,
    build_tree,
    make_app,
    report_at,
    utc,
)
from sqlalchemy import func, select

from kiemke.collector.db.compliance_tables import compliance_daily
from kiemke.collector.db.engine import make_engine, write_transaction
from kiemke.collector.db.history_tables import history_days
from kiemke.collector.evaluation.admin import add_waiver, move_machine, revoke_waiver
from kiemke.collector.reports.figures import build_period_report
from kiemke.collector.reports.history import run_daily_job
from kiemke.collector.reports.periods import local_day, parse_period
from kiemke.collector.reports.render import render_report
from kiemke.collector.units import move_unit, rename_unit
from kiemke.compliance import load_rules

TZ = "Asia/Ho_Chi_Minh"
RULE = "os-supported"


def job(app, now: datetime, ruleset=None) -> dict:
    ext = app.extensions["kiemke"]
    return run_daily_job(ext.engine, ruleset or ext.compliance.ruleset, timezone=TZ,
                         stale_after=ext.config.stale_after, now=now)


def night(day: date) -> datetime:
    """00:05 local time after `day` ends, in UTC."""
    return datetime(day.year, day.month, day.day, 17, 5, tzinfo=timezone.utc)


def daily(app, unit_id: int, rule: str = RULE) -> dict[date, tuple[int, int, int, int]]:
    with app.extensions["kiemke"].engine.connect() as conn:
        rows = conn.execute(select(compliance_daily).where(
            compliance_daily.c.unit_id == unit_id, compliance_daily.c.rule_id == rule))
        return {r.day: (r._mapping["pass"], r.fail,
                        r.unknown, r.stale) for r in rows}


def report(app, unit: str, period: str, lang: str = "vi"):
    with app.extensions["kiemke"].engine.connect() as conn:
        return build_period_report(conn, unit, parse_period(period), lang, timezone=TZ,
                                   now=datetime.now(timezone.utc))


def test_a_report_received_at_18z_on_30_november_belongs_to_1_december(tmp_path, monkeypatch,
                                                                     sqlite_url):
    assert local_day(utc(2026, 11, 30, 18, 0), TZ) == date(2026, 12, 1)
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    units = build_tree(app)
    mid = report_at(app, units[DISTRICT_A], "PC-YENDUNG-01", utc(2026, 11, 28, 3),
                    **OS_PASS)
    assert job(app, utc(2026, 11, 28, 5))["closed_days"] == []  # the first sync
    report_at(app, units[DISTRICT_A], "PC-YENDUNG-01", utc(2026, 11, 30, 16, 59), machine_id=mid,
              **OS_PASS)
    report_at(app, units[DISTRICT_A], "PC-YENDUNG-01", utc(2026, 11, 30, 18, 0), machine_id=mid,
              **OS_FAIL)
    stats = job(app, utc(2026, 12, 1, 17, 30))
    assert stats["closed_days"] == ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"]
    rows = daily(app, units[ROOT])
    assert rows[date(2026, 11, 30)] == (1, 0, 0, 0)  # 16:59Z is still 30 November
    assert rows[date(2026, 12, 1)] == (0, 1, 0, 0)   # 18:00Z is 01:00 on 1 December
    nov, dec = report(app, ROOT, "2026-11"), report(app, ROOT, "2026-12")
    assert next(f for f in nov.rules if f.rule_id == RULE).end_value == 1.0
    assert next(f for f in dec.rules if f.rule_id == RULE).end_value == 0.0
    assert not dec.complete and dec.last_day == date(2026, 12, 1)


def test_catch_up_after_a_five_day_outage_has_no_gap_and_no_double_count(tmp_path,
                                                                        monkeypatch,
                                                                        sqlite_url):
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    units = build_tree(app)
    a = report_at(app, units[OFFICE], "PC-TANAN-01", utc(2026, 11, 9, 2), **OS_PASS)
    b = report_at(app, units[OFFICE], "PC-TANAN-02", utc(2026, 11, 9, 2), **OS_FAIL)
    job(app, utc(2026, 11, 9, 3))
    for day in (10, 11):
        report_at(app, units[OFFICE], "PC-TANAN-01", utc(2026, 11, day, 2), machine_id=a,
                  **OS_PASS)
        report_at(app, units[OFFICE], "PC-TANAN-02", utc(2026, 11, day, 2), machine_id=b,
                  **OS_FAIL)
        assert job(app, night(date(2026, 11, day - 1)))["closed_days"] == [
            f"2026-11-{day - 1:02d}"]
    assert job(app, night(date(2026, 11, 11)))["closed_days"] == ["2026-11-11"]
    # Collector down from 12 to 16 November (local): no report, no job. On the 17th B
    # reports again, now passing; A stays silent (switched off since the 11th).
    report_at(app, units[OFFICE], "PC-TANAN-02", utc(2026, 11, 17, 2), machine_id=b,
              **OS_PASS)
    stats = job(app, utc(2026, 11, 17, 3))
    assert stats["closed_days"] == [f"2026-11-{d}" for d in range(12, 17)]
    with app.extensions["kiemke"].engine.connect() as conn:
        sources = dict(conn.execute(select(history_days.c.day, history_days.c.source)).all())
        n_days = conn.execute(select(func.count()).select_from(history_days)).scalar()
    assert n_days == 8  # 9 .. 16 November, each once
    assert sources[date(2026, 11, 11)] == "live" and sources[date(2026, 11, 14)] == "catch-up"
    rows = daily(app, units[ROOT])
    assert sorted(rows) == [date(2026, 11, d) for d in range(9, 17)]
    for d in range(9, 14):  # A's last report was 11 Nov 02:00Z: stale from the 14th 02:00Z
        assert rows[date(2026, 11, d)] == (1, 1, 0, 0), d
    for d in range(14, 17):
        assert rows[date(2026, 11, d)] == (0, 1, 0, 1), d  # B fails until it reports again
    # Running again changes nothing; the next night closes the 17th with B passing.
    assert job(app, utc(2026, 11, 17, 4))["closed_days"] == []
    assert daily(app, units[ROOT]) == rows
    job(app, night(date(2026, 11, 17)))
    assert daily(app, units[ROOT])[date(2026, 11, 17)] == (1, 0, 0, 1)


def test_a_closed_period_reads_the_same_after_renames_moves_rule_changes_and_revocations(
        tmp_path, monkeypatch, sqlite_url):
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    ext = app.extensions["kiemke"]
    units = build_tree(app)
    hosts = {"PC-YENDUNG-01": (DISTRICT_A, OS_PASS), "PC-YENDUNG-02": (DISTRICT_A, OS_FAIL),
             "PC-TANAN-01": (OFFICE, OS_FAIL), "PC-LUCNAM-01": (DISTRICT_B, OS_PASS)}
    ids: dict[str, str] = {}
    start = date(2026, 10, 1)
    for k in range(33):  # 1 October .. 2 November
        day = start + timedelta(days=k)
        for host, (unit, facts) in hosts.items():
            if host == "PC-TANAN-01" and k == 10:
                facts = OS_PASS
                hosts[host] = (unit, facts)
            ids[host] = report_at(app, units[unit], host,
                                  datetime(day.year, day.month, day.day, 2, tzinfo=timezone.utc),
                                  machine_id=ids.get(host), **facts)
        if k == 3:
            with write_transaction(ext.engine) as conn:
                waiver = add_waiver(conn, ext.compliance, machine_id=ids["PC-YENDUNG-02"],
                                    rule_id=RULE, reason="Chờ nâng cấp Windows 11",
                                    author="Nguyễn Văn An", expires_at=utc(2027, 1, 1),
                                    now=utc(2026, 10, 4, 3))
        job(app, night(day - timedelta(days=1)) if k else utc(2026, 10, 1, 3))
    before = {unit: report(app, unit, "2026-10") for unit in (ROOT, f"{ROOT} / {DISTRICT_A}")}
    assert before[ROOT].days_reported == 31 and before[ROOT].complete
    assert [w.reason for w in before[ROOT].waivers] == ["Chờ nâng cấp Windows 11"]
    fingerprint = before[ROOT].ruleset
    # Now everything changes: names, tree, a machine's unit, the rules, the waiver.
    with write_transaction(ext.engine) as conn:
        rename_unit(conn, units[DISTRICT_A], "LĐLĐ huyện Yên Dũng mới")
        move_unit(conn, units[OFFICE], units[DISTRICT_B])
        move_machine(conn, ext.compliance, ids["PC-YENDUNG-01"], units[DISTRICT_B],
                     utc(2026, 11, 3, 3))
        revoke_waiver(conn, ext.compliance, waiver["id"], utc(2026, 11, 3, 3))
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for f in Path(ext.config.rules_dir).glob("*.yml"):
        text = f.read_text(encoding="utf-8")
        if f.name == "os.yml":
            text = text.replace("target: 1.0", "target: 0.9")
            assert "target: 0.9" in text
        (rules_dir / f.name).write_text(text, encoding="utf-8")
    new_rules = load_rules([rules_dir])
    assert new_rules.fingerprint != fingerprint
    for k in range(33, 36):
        day = start + timedelta(days=k)
        job(app, night(day - timedelta(days=1)), ruleset=new_rules)
    after = {ROOT: report(app, ROOT, "2026-10"),
             f"{ROOT} / {DISTRICT_A}": report(app, units[DISTRICT_A], "2026-10")}
    for unit in before:
        old, new = before[unit].as_dict(), after[unit].as_dict()
        old.pop("generated_at"), new.pop("generated_at")
        assert json.dumps(old, ensure_ascii=False) == json.dumps(new, ensure_ascii=False)
        assert after[unit].ruleset == fingerprint  # names the rule-set version it used
    # The same holds for a rendered file (its generation line aside).
    csv_old = render_report(before[ROOT], "csv").decode("utf-8-sig").splitlines()
    csv_new = render_report(after[ROOT], "csv").decode("utf-8-sig").splitlines()
    assert csv_old == csv_new
    # ... while November shows the new state.
    nov = report(app, ROOT, "2026-11")
    assert nov.ruleset == new_rules.fingerprint
    assert [c.name for c in nov.children] == [DISTRICT_B, "LĐLĐ huyện Yên Dũng mới"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_instances_running_the_job_at_once_give_one_snapshot(tmp_path, monkeypatch,
                                                                 backend, request):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    app = make_app(url, tmp_path, monkeypatch)
    units = build_tree(app)
    for i in range(6):
        report_at(app, units[OFFICE], f"PC-TANAN-{i:02d}", utc(2026, 11, 20, 2),
                  **(OS_PASS if i % 2 else OS_FAIL))
    job(app, utc(2026, 11, 20, 3))
    ruleset = app.extensions["kiemke"].compliance.ruleset
    engines = [make_engine(url) for _ in range(2)]  # two instances: own pools
    barrier = threading.Barrier(2)
    results: list[dict] = []

    def instance(engine) -> None:
        barrier.wait()
        results.append(run_daily_job(engine, ruleset, timezone=TZ,
                                     stale_after=timedelta(days=3), now=utc(2026, 11, 23, 18)))

    threads = [threading.Thread(target=instance, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:
        e.dispose()
    assert len(results) == 2
    closed = [d for r in results for d in r.get("closed_days", [])]
    assert sorted(closed) == ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"]
    with app.extensions["kiemke"].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(history_days)).scalar() == 4
        per_day = dict(conn.execute(
            select(compliance_daily.c.day, func.count()).where(
                compliance_daily.c.unit_id == units[ROOT])
            .group_by(compliance_daily.c.day)).all())
    assert set(per_day) == {date(2026, 11, d) for d in range(20, 24)}
    assert len(set(per_day.values())) == 1  # the same rows every day, none doubled
    assert daily(app, units[ROOT])[date(2026, 11, 22)] == (3, 3, 0, 0)
