"""Waivers: exempt at once, not in the ratio, end at expiry (frozen `now`), revocation,
API and CLI."""

from __future__ import annotations

import subprocess
from datetime import timedelta

from collector_helpers import admin_token
from compliance_helpers import DISTRICT_A, OS_FAIL, RULE, build_tree, make_app, recent, report_at
from conftest import REPO, collector_cmd
from sqlalchemy import select

from kiemke.collector.db.compliance_tables import rule_results
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.evaluation.admin import add_waiver, list_waivers
from kiemke.collector.evaluation.figures import compute


def _result(app, machine_id):
    with app.extensions["kiemke"].engine.connect() as conn:
        return conn.execute(select(rule_results.c.result, rule_results.c.reason,
                                   rule_results.c.since)
                            .where(rule_results.c.machine_id == machine_id,
                                   rule_results.c.rule_id == RULE)).one()


def test_waiver_applies_at_once_and_ends_at_expiry(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    ext = app.extensions["kiemke"]
    try:
        units = build_tree(app)
        t0 = recent(60)
        mid = report_at(app, units[DISTRICT_A], "PC-YENDUNG-02", t0, **OS_FAIL)
        assert _result(app, mid).result == "fail"
        with write_transaction(ext.engine) as conn:
            waiver = add_waiver(conn, ext.compliance, machine_id=mid, rule_id=RULE,
                                reason="Máy kế toán chờ nâng cấp Windows 11 (quý 1/2027)",
                                author="Nguyễn Văn Tâm", expires_at=t0 + timedelta(days=1),
                                now=t0 + timedelta(minutes=1))
        assert waiver["state"] == "active"
        row = _result(app, mid)
        assert row.result == "exempt" and "Windows 11" in row.reason
        with ext.engine.connect() as conn:
            figures = compute(conn, ext.compliance.ruleset, t0 + timedelta(minutes=2),
                              ext.config.stale_after)
            counts = figures.counts(units[DISTRICT_A], RULE, "machine")
        assert counts["exempt"] == 1 and counts.get("fail", 0) == 0  # outside the ratio

        # Before expiry the maintenance pass changes nothing ...
        stats = ext.compliance.maintain(t0 + timedelta(hours=23))
        assert stats["waivers_changed_machines"] == 0 and _result(app, mid).result == "exempt"
        # ... after it the machine fails again, since the expiry pass.
        expired_at = t0 + timedelta(days=1, minutes=1)
        stats = ext.compliance.maintain(expired_at)
        assert stats["waivers_changed_machines"] == 1
        row = _result(app, mid)
        assert row.result == "fail" and row.since == expired_at
        with ext.engine.connect() as conn:
            items, total = list_waivers(conn, expired_at, state="expired")
        assert total == 1 and items[0]["author"] == "Nguyễn Văn Tâm"
        assert ext.compliance.maintain(expired_at + timedelta(minutes=1))[
            "waivers_changed_machines"] == 0  # idempotent
    finally:
        ext.engine.dispose()


def test_waiver_api_create_list_revoke(tmp_path, monkeypatch, sqlite_url):
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {admin_token(app)}"}
    units = build_tree(app)
    mid = report_at(app, units[DISTRICT_A], "PC-YENDUNG-02", recent(), **OS_FAIL)
    resp = client.post("/api/v1/waivers", headers=auth, json={
        "machine_id": mid, "rule": RULE, "reason": "Chờ thay máy mới", "author": "Trần Thị Hà",
        "expires_at": "2099-01-31"})
    assert resp.status_code == 201, resp.get_json()
    waiver = resp.get_json()
    assert waiver["expires_at"] == "2099-01-31T00:00:00Z" and waiver["reason"] == \
        "Chờ thay máy mới"
    assert _result(app, mid).result == "exempt"
    listed = client.get("/api/v1/waivers", query_string={"state": "active"},
                        headers=auth).get_json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == waiver["id"]
    resp = client.delete(f"/api/v1/waivers/{waiver['id']}", headers=auth)
    assert resp.status_code == 200 and resp.get_json()["state"] == "revoked"
    assert _result(app, mid).result == "fail"
    for body, field in (({"machine_id": mid, "rule": "unit-has-lan", "reason": "x",
                          "author": "y", "expires_at": "2099-01-01"}, "rule"),
                        ({"machine_id": mid, "rule": RULE, "reason": "x", "author": "y",
                          "expires_at": "2001-01-01"}, "expires_at"),
                        ({"machine_id": mid, "rule": RULE, "reason": " ", "author": "y",
                          "expires_at": "2099-01-01"}, "reason"),
                        ({"machine_id": "0" * 32, "rule": RULE, "reason": "x", "author": "y",
                          "expires_at": "2099-01-01"}, "machine_id")):
        resp = client.post("/api/v1/waivers", headers=auth, json=body)
        assert resp.status_code in (400, 404) and resp.get_json()["field"] == field, body
    assert client.delete("/api/v1/waivers/999", headers=auth).status_code == 404
    app.extensions["kiemke"].engine.dispose()


def test_waiver_cli(tmp_path, monkeypatch, sqlite_url):
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    units = build_tree(app)
    mid = report_at(app, units[DISTRICT_A], "PC-YENDUNG-02", recent(), **OS_FAIL)
    app.extensions["kiemke"].engine.dispose()
    env = {"KIEMKE_DATABASE_URL": sqlite_url, "KIEMKE_DATA_DIR": str(tmp_path / "data"),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([*collector_cmd(), "waivers", "add", "--machine", mid, "--rule", RULE,
                           "--reason", "Máy dự phòng, không nối mạng", "--author",
                           "Lê Văn Bình", "--expires", "2099-12-31"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().isdigit()
    assert _result(app, mid).result == "exempt"
    bad = subprocess.run([*collector_cmd(), "waivers", "add", "--machine", mid, "--rule",
                          "khong-co", "--reason", "x", "--author", "y", "--expires",
                          "2099-12-31"], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "not a machine rule" in bad.stderr
