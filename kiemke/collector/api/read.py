"""Read APIs (any API token; a read-only token sees its unit subtree only): units,
machines (keyset-paginated), one machine's report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import func, select

from kiemke.collector.accounts import auth
from kiemke.collector.accounts.roles import READ
from kiemke.collector.api.errors import ApiError
from kiemke.collector.api.params import limit_param
from kiemke.collector.db.tables import machines, units
from kiemke.collector.evaluation.api import machine_results
from kiemke.collector.timeutil import iso_z, utcnow
from kiemke.collector.units import UnitError, all_units, find_unit, subtree_ids

bp = Blueprint("read", __name__)

def _status(last_seen: datetime, now: datetime) -> str:
    stale_after = current_app.extensions["kiemke"].config.stale_after
    return "active" if last_seen >= now - stale_after else "stale"


def _machine_summary(row: Any, now: datetime) -> dict[str, Any]:
    return {
        "machine_id": row.machine_id, "hostname": row.hostname,
        "unit": {"id": row.unit_id, "path": row.unit_path},
        "platform": row.platform, "agent_version": row.agent_version,
        "agent_id": row.agent_id,
        "first_seen": iso_z(row.first_seen), "last_seen": iso_z(row.last_seen),
        "last_collected_at": iso_z(row.last_collected_at),
        "last_report_id": row.last_report_id, "status": _status(row.last_seen, now),
    }


@bp.get("/api/v1/units")
@auth.require(READ)
def list_units():
    with current_app.extensions["kiemke"].engine.connect() as conn:
        rows = all_units(conn)
        visible = auth.scope(conn, rows)
    return jsonify({"items": [u.as_dict() for u in rows if visible.contains(u.id)]})


_COLUMNS = (machines.c.machine_id, machines.c.hostname, machines.c.unit_id,
            units.c.path.label("unit_path"), machines.c.platform, machines.c.agent_version,
            machines.c.agent_id, machines.c.first_seen, machines.c.last_seen,
            machines.c.last_collected_at, machines.c.last_report_id)


@bp.get("/api/v1/machines")
@auth.require(READ)
def list_machines():
    """Ordered by machine_id; `cursor` is the last machine_id of the previous page."""
    limit = limit_param()
    query = select(*_COLUMNS).join(units, units.c.id == machines.c.unit_id)
    cursor = request.args.get("cursor")
    if cursor:
        query = query.where(machines.c.machine_id > cursor)
    hostname = request.args.get("hostname")
    if hostname:
        query = query.where(func.lower(machines.c.hostname).startswith(hostname.lower(),
                                                                        autoescape=True))
    ext = current_app.extensions["kiemke"]
    now = utcnow()
    with ext.engine.connect() as conn:
        unit_ref = request.args.get("unit")
        unit = None
        if unit_ref:
            try:
                unit = find_unit(conn, unit_ref)
            except UnitError as exc:
                raise ApiError(400, "invalid_parameter", "unit", str(exc)) from None
        unit = auth.scoped_unit(conn, unit)
        if unit is not None:
            query = query.where(machines.c.unit_id.in_(subtree_ids(all_units(conn), unit.id)))
        rows = list(conn.execute(query.order_by(machines.c.machine_id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify({"items": [_machine_summary(r, now) for r in rows],
                    "next_cursor": rows[-1].machine_id if more else None})


@bp.get("/api/v1/machines/<machine_id>")
@auth.require(READ)
def get_machine(machine_id: str):
    ext = current_app.extensions["kiemke"]
    with ext.engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS, machines.c.report, machines.c.facts)
                           .join(units, units.c.id == machines.c.unit_id)
                           .where(machines.c.machine_id == machine_id)).first()
        if row is None:
            raise ApiError(404, "not_found", "machine_id",
                           f"no machine {machine_id!r} has reported to this collector")
        auth.check_unit(conn, row.unit_id, "machine_id")
        results = machine_results(conn, machine_id)
    return jsonify({**_machine_summary(row, utcnow()), "report": row.report, "facts": row.facts,
                    "results": results})
