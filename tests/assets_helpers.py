"""Helpers for the asset register tests: an in-process app on any database, CSV files,
machines that report with chosen serials, tags, hostnames and manufacture dates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import enroll_agent, enrollment_token
from conftest import migrate
from reports import make_report, new_machine_id
from sqlalchemy import select

from kiemke.collector.assets.register import import_register
from kiemke.collector.db.asset_tables import assets, machine_depreciation
from kiemke.collector.db.tables import machines
from kiemke.compliance.depreciation import add_months

HEADER = "asset_tag,serial,hostname,category,purchase_date,cost,unit,description"


def write_csv(path: Path, lines: list[str], *, bom: bool = False, delimiter: str = ",",
              header: str = HEADER) -> Path:
    text = "\n".join([header.replace(",", delimiter), *lines]) + "\n"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def months_ago(today: dt.date, months: int) -> dt.date:
    """A date `months` whole months before today, on the 15th (far from month ends)."""
    return add_months(today, -months).replace(day=15)


def machine_report(machine_id: str, hostname: str, *, serial: str | None = "7XK2P53",
                   asset_tag: str | None = None, made: dt.date | None = None,
                   chassis: str = "desktop") -> dict[str, Any]:
    made = made or dt.date(2019, 9, 10)
    return make_report(machine_id, hostname=hostname,
                       identity={"asset_tag": asset_tag},
                       hardware={"serial": serial, "chassis": chassis,
                                 "is_virtual": chassis == "virtual",
                                 "manufacture_date": {"value": made.isoformat(),
                                                      "estimated": True, "evidence": []}})


def report_machine(app: Any, client: Any, unit_id: int, hostname: str, **kwargs: Any) -> str:
    """Enrol a new machine in the unit and send one report; return its machine_id."""
    mid = new_machine_id()
    headers = enroll_agent(client, enrollment_token(app, unit_id), mid, hostname)
    resp = client.post("/api/v1/reports", json=machine_report(mid, hostname, **kwargs),
                       headers=headers)
    assert resp.status_code == 202, resp.get_json()
    return mid


def register_rows(app: Any) -> list[tuple]:
    """The whole register as plain tuples (to prove a rejected import changed nothing)."""
    with app.extensions["kiemke"].engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(assets).order_by(assets.c.id))]


def depreciation_rows(app: Any) -> dict[str, Any]:
    with app.extensions["kiemke"].engine.connect() as conn:
        return {r.machine_id: r for r in conn.execute(select(machine_depreciation))}


def matches(app: Any) -> dict[int, tuple[str | None, str | None]]:
    """register line -> (machine_id, matched_by)."""
    with app.extensions["kiemke"].engine.connect() as conn:
        return {r.line: (r.machine_id, r.matched_by)
                for r in conn.execute(select(assets.c.line, assets.c.machine_id,
                                             assets.c.matched_by))}


@pytest.fixture(name="asset_app")
def asset_app_fixture(db_url, tmp_path, monkeypatch):
    """create_app on a migrated database of each backend (db_url), no maintenance thread."""
    from kiemke.collector.app import create_app

    migrate(db_url)
    application = create_app({"database_url": db_url, "data_dir": str(tmp_path / "data"),
                              "maintenance_interval": 0})
    application.config["TESTING"] = True
    yield application
    application.extensions["kiemke"].engine.dispose()


def do_import(app, path, **kwargs):
    ext = app.extensions["kiemke"]
    return import_register(ext.engine, ext.config, path, **kwargs)


def machine_facts(app, machine_id):
    with app.extensions["kiemke"].engine.connect() as conn:
        return conn.execute(select(machines.c.facts)
                            .where(machines.c.machine_id == machine_id)).scalar()
