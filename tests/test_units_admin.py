"""Units: create, rename and move over the API and the CLI (paths and levels of the
whole subtree follow, a move under a descendant is refused), and moving a machine
(its agent and its counted results follow)."""

from __future__ import annotations

import subprocess

from collector_helpers import admin_token
from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OFFICE,
    OS_FAIL,
    ROOT,
    RULE,
    build_tree,
    make_app,
    recent,
    report_at,
)
from conftest import REPO, collector_cmd
from reports import make_report
from sqlalchemy import select

from kiemke.collector.db.asset_tables import machine_depreciation
from kiemke.collector.db.compliance_tables import rule_counts, rule_results
from kiemke.collector.db.tables import agents, machines
from kiemke.collector.ingest import load_agent
from kiemke.collector.units import all_units


def _paths(app):
    with app.extensions["kiemke"].engine.connect() as conn:
        return {u.name: (u.path, u.level) for u in all_units(conn)}


def test_units_rename_move_and_machine_move(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {admin_token(app)}"}
    try:
        units = build_tree(app)
        resp = client.post("/api/v1/units", headers=auth,
                           json={"name": "Công đoàn thị trấn Nham Biền",
                                 "parent": units[DISTRICT_A], "code": "CD-NB"})
        assert resp.status_code == 201, resp.get_json()
        assert resp.get_json()["path"] == f"{ROOT} / {DISTRICT_A} / Công đoàn thị trấn Nham Biền"
        assert client.post("/api/v1/units", headers=auth, json={
            "name": "X", "code": "CD-NB"}).get_json()["field"] == "code"

        # Rename a district: its office's path follows.
        resp = client.patch(f"/api/v1/units/{units[DISTRICT_A]}", headers=auth,
                            json={"name": "LĐLĐ thị xã Yên Dũng"})
        assert resp.status_code == 200
        paths = _paths(app)
        assert paths[OFFICE] == (f"{ROOT} / LĐLĐ thị xã Yên Dũng / {OFFICE}", 2)
        # Move the district under the other one: levels shift for the subtree.
        resp = client.patch(f"/api/v1/units/{units[DISTRICT_A]}", headers=auth,
                            json={"parent": units[DISTRICT_B]})
        assert resp.status_code == 200 and resp.get_json()["level"] == 2
        assert _paths(app)[OFFICE] == (
            f"{ROOT} / {DISTRICT_B} / LĐLĐ thị xã Yên Dũng / {OFFICE}", 3)
        # A unit under its own descendant: refused, nothing changed.
        resp = client.patch(f"/api/v1/units/{units[DISTRICT_B]}", headers=auth,
                            json={"parent": units[OFFICE]})
        assert resp.status_code == 409 and resp.get_json()["field"] == "parent"
        assert "descendants" in resp.get_json()["message"]
        assert _paths(app)[DISTRICT_B] == (f"{ROOT} / {DISTRICT_B}", 1)
        # Back to the top (null parent).
        resp = client.patch(f"/api/v1/units/{units[DISTRICT_B]}", headers=auth,
                            json={"parent": None})
        assert resp.get_json()["level"] == 0
        assert _paths(app)[OFFICE][1] == 2
        show = client.get(f"/api/v1/units/{units[DISTRICT_B]}", headers=auth).get_json()
        assert [c["name"] for c in show["children"]] == ["LĐLĐ thị xã Yên Dũng"]

        # Machine move: agent and counts follow.
        mid = report_at(app, units[OFFICE], "PC-TANAN-02", recent(), **OS_FAIL)
        resp = client.patch(f"/api/v1/machines/{mid}", headers=auth,
                            json={"unit": units[ROOT]})
        assert resp.status_code == 200 and resp.get_json()["unit"]["path"] == ROOT
        with app.extensions["kiemke"].engine.connect() as conn:
            assert set(conn.execute(select(agents.c.unit_id)
                                    .where(agents.c.machine_id == mid)).scalars()) \
                == {units[ROOT]}
            assert set(conn.execute(select(rule_results.c.unit_id)
                                    .where(rule_results.c.machine_id == mid)).scalars()) \
                == {units[ROOT]}
            counts = dict(conn.execute(select(rule_counts.c.unit_id, rule_counts.c.n).where(
                rule_counts.c.rule_id == RULE, rule_counts.c.result == "fail")).all())
            # Its depreciation row follows it too (counted in the new unit at once).
            dep_unit = conn.execute(select(machine_depreciation.c.unit_id).where(
                machine_depreciation.c.machine_id == mid)).scalar_one()
        assert counts.get(units[OFFICE], 0) == 0 and counts[units[ROOT]] == 1
        assert dep_unit == units[ROOT]
        # The next report of its agent does not move it back.
        ext = app.extensions["kiemke"]
        with ext.engine.connect() as conn:
            agent_id = conn.execute(select(agents.c.id).where(agents.c.machine_id == mid)
                                    ).scalar_one()
        report = make_report(mid, hostname="PC-TANAN-02", **OS_FAIL)
        assert ext.pipeline.ingest(load_agent(ext.engine, agent_id), report)
        with ext.engine.connect() as conn:
            assert conn.execute(select(machines.c.unit_id).where(
                machines.c.machine_id == mid)).scalar_one() == units[ROOT]
        resp = client.patch(f"/api/v1/machines/{mid}", headers=auth, json={"unit": "Không có"})
        assert resp.status_code == 400 and resp.get_json()["field"] == "unit"
    finally:
        app.extensions["kiemke"].engine.dispose()


def test_units_cli_rename_move_show(tmp_path, monkeypatch, sqlite_url):
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    units = build_tree(app)
    app.extensions["kiemke"].engine.dispose()
    env = {"KIEMKE_DATABASE_URL": sqlite_url, "KIEMKE_DATA_DIR": str(tmp_path / "data"),
           "PATH": "/usr/bin:/bin"}

    def cli(*args):
        return subprocess.run([*collector_cmd(), *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    done = cli("units", "move", str(units[OFFICE]), "--parent", "LDLD-BG")
    assert done.returncode == 0, done.stderr
    assert f"{ROOT} / {OFFICE} (level 1)" in done.stderr
    bad = cli("units", "move", "LDLD-BG", "--parent", str(units[OFFICE]))
    assert bad.returncode == 2 and "descendants" in bad.stderr
    shown = cli("units", "show", "LDLD-BG")
    assert shown.returncode == 0 and RULE in shown.stdout and OFFICE in shown.stdout
