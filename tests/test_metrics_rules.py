"""/metrics for rules, parsed with prometheus_client's parser and checked value by value
against a fleet with known facts: in process and through a real collector process, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import requests
from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OFFICE,
    OS_FAIL,
    OS_PASS,
    OS_UNKNOWN,
    ROOT,
    build_tree,
    check_metrics,
    make_app,
    metric_samples,
    populate_fleet,
)
from conftest import start_collector, stop_collector
from reports import make_report, new_machine_id
from scrape_helpers import metrics_text
from sqlalchemy import update

from kiemke.collector.db.engine import make_engine, write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.enrollment import create_enrollment_token
from kiemke.collector.units import add_unit


def test_rule_metrics_in_process(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    try:
        units = build_tree(app)
        fleet = populate_fleet(app, units)
        check_metrics(app.test_client().get("/metrics").get_data(as_text=True), fleet)
        # The stale machine's old report evaluated its unit as of then; the periodic
        # pass evaluates unit rules over the machines active now.
        stats = app.extensions["kiemke"].compliance.maintain()
        rules = len(app.extensions["kiemke"].compliance.ruleset.rules)
        assert rules >= 13
        assert stats["daily_rows"] == 4 * rules  # 4 units x every rule, first snapshot today
        text = app.test_client().get("/metrics").get_data(as_text=True)
        check_metrics(text, fleet)
        # Unit rules: the district offices (level <= 1) are measured; Tân An (level 2)
        # is not_applicable. Lục Nam has one active machine: no LAN can be shown.
        units_rows = metric_samples(text, "kiemke_rule_units")
        got = {(lab["unit"], lab["result"]): v for lab, v in units_rows
               if lab["rule"] == "unit-has-computers"}
        assert got[(ROOT, "pass")] == 3  # the root and both districts report
        assert got[(ROOT, "not_applicable")] == 1  # Tân An
        assert got[(f"{ROOT} / {DISTRICT_A} / {OFFICE}", "not_applicable")] == 1
        lan = {(lab["unit"], lab["result"]): v for lab, v in units_rows
               if lab["rule"] == "unit-has-lan"}
        assert lan[(f"{ROOT} / {DISTRICT_B}", "unknown")] == 1
    finally:
        app.extensions["kiemke"].engine.dispose()


def test_rule_metrics_through_a_real_server(db_url, tmp_path):
    server = start_collector(db_url, tmp_path / "collector",
                             extra_env={"KIEMKE_MAINTENANCE_INTERVAL": "0"})
    try:
        # Units and tokens straight into the database (each CLI call costs a process).
        engine = make_engine(db_url)
        try:
            with write_transaction(engine) as conn:
                root = add_unit(conn, ROOT, code="LDLD-BG").id
                a = add_unit(conn, DISTRICT_A, parent=root).id
                office = add_unit(conn, OFFICE, parent=a).id
                b = add_unit(conn, DISTRICT_B, parent=root).id
                tokens = {u: create_enrollment_token(conn, u)[1] for u in (root, a, office, b)}
        finally:
            engine.dispose()
        plan = [(root, "PC-VANPHONG-01", OS_PASS, False), (a, "PC-YENDUNG-01", OS_PASS, False),
                (a, "PC-YENDUNG-02", OS_FAIL, False), (office, "PC-TANAN-01", OS_PASS, False),
                (office, "PC-TANAN-02", OS_UNKNOWN, False), (office, "PC-TANAN-CU", OS_FAIL, True),
                (b, "PC-LUCNAM-01", OS_FAIL, False), (b, "PC-LUCNAM-CU", OS_PASS, True)]
        fleet, stale = {}, []
        for unit, host, overrides, is_stale in plan:
            mid = new_machine_id()
            resp = requests.post(f"{server.url}/api/v1/enroll", timeout=10, json={
                "token": tokens[unit], "machine_id": mid, "hostname": host})
            assert resp.status_code == 201, resp.text
            cred = resp.json()
            resp = requests.post(f"{server.url}/api/v1/reports", timeout=10,
                                 json=make_report(mid, hostname=host, **overrides),
                                 headers={"Authorization":
                                          f"Bearer {cred['agent_id']}.{cred['secret']}"})
            assert resp.status_code == 202, resp.text
            fleet[host] = mid
            if is_stale:
                stale.append(mid)
        # Silence two machines for 10 days, in the database the server reads.
        engine = make_engine(db_url)
        try:
            with engine.begin() as conn:
                conn.execute(update(machines).where(machines.c.machine_id.in_(stale)).values(
                    last_seen=datetime.now(timezone.utc) - timedelta(days=10)))
        finally:
            engine.dispose()
        text = metrics_text(server.url, timeout=10)
        check_metrics(text, fleet)
        assert "Liên đoàn Lao động tỉnh Bắc Giang" in text  # UTF-8 labels survive
    finally:
        stop_collector(server)
