"""Units over HTTP: show (any API token, within its scope); create, rename and move
(admin token, recorded in the audit log).

A change to the tree re-evaluates the unit rules of the units it touched (levels and
machines per unit change what those rules see), in the same transaction.
Errors are JSON {"error", "field", "message"} (kiemke.collector.api.errors).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import func, select

from kiemke.collector.accounts import audit, auth
from kiemke.collector.accounts.roles import READ, UNITS
from kiemke.collector.api.errors import ApiError
from kiemke.collector.api.params import json_object
from kiemke.collector.db.compliance_tables import unit_rule_results
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.api import evaluator
from kiemke.collector.timeutil import iso_z, utcnow
from kiemke.collector.units import (
    Unit,
    UnitConflict,
    UnitError,
    add_unit,
    all_units,
    find_unit,
    move_unit,
    rename_unit,
    subtree_ids,
    unit_ref,
)

bp = Blueprint("units", __name__)


@bp.post("/api/v1/units")
@auth.require(UNITS)
def create_unit():
    body = json_object()
    name = body.get("name")
    if not isinstance(name, str):
        raise ApiError(400, "invalid_field", "name", "give the unit's name as text")
    for key in ("parent", "code"):
        if body.get(key) is not None and not isinstance(body[key], (str, int)):
            raise ApiError(400, "invalid_field", key, f"{key} must be text or a number")
    ev = evaluator()
    try:
        with write_transaction(ev.engine) as conn:
            unit = add_unit(conn, name, parent=body.get("parent"), code=body.get("code"))
            if not auth.scope(conn).everything:
                auth.check_unit(conn, unit.parent_id, "parent")
            ev.evaluate_units(conn, [unit.id], utcnow())
            audit.record(conn, auth.principal(), "unit.add", f"unit {unit.id}",
                         unit_id=unit.id, details={"path": unit.path, "code": unit.code})
    except UnitError as exc:
        if "already" in str(exc):
            raise ApiError(409, "conflict", "code" if "code" in str(exc) else "name",
                           str(exc)) from None
        field = exc.field or ("parent" if "no unit" in str(exc) else "name")
        raise ApiError(400, "invalid_field", field, str(exc)) from None
    resp = jsonify(unit_ref(unit) | {"parent_id": unit.parent_id})
    resp.status_code = 201
    return resp


def _unit_or_404(conn: Any, unit_id: int) -> Unit:
    try:
        return find_unit(conn, unit_id)
    except UnitError as exc:
        raise ApiError(404, "not_found", "unit_id", str(exc)) from None


@bp.get("/api/v1/units/<int:unit_id>")
@auth.require(READ)
def show_unit(unit_id: int):
    ev = evaluator()
    now = utcnow()
    with ev.engine.connect() as conn:
        unit = _unit_or_404(conn, unit_id)
        units_ = all_units(conn)
        auth.check_unit(conn, unit.id, "unit_id")
        cutoff = now - ev.config.stale_after
        tree = subtree_ids(units_, unit.id)
        direct: dict[int, int] = dict(conn.execute(select(machines.c.unit_id, func.count())
                                   .where(machines.c.unit_id == unit.id,
                                          machines.c.last_seen >= cutoff)
                                   .group_by(machines.c.unit_id)).all())
        active = conn.execute(select(func.count()).where(
            machines.c.unit_id.in_(tree), machines.c.last_seen >= cutoff)).scalar_one()
        stale = conn.execute(select(func.count()).where(
            machines.c.unit_id.in_(tree), machines.c.last_seen < cutoff)).scalar_one()
        unit_results = [{"rule": r.rule_id, "result": r.result, "reason": r.reason,
                         "since": iso_z(r.since)} for r in conn.execute(
            select(unit_rule_results).where(unit_rule_results.c.unit_id == unit.id)
            .order_by(unit_rule_results.c.rule_id))]
    return jsonify({**unit_ref(unit), "parent_id": unit.parent_id,
                    "children": [unit_ref(u) for u in units_ if u.parent_id == unit.id],
                    "machines": {"own_active": direct.get(unit.id, 0), "active": active,
                                 "stale": stale},
                    "unit_results": unit_results})


@bp.patch("/api/v1/units/<int:unit_id>")
@auth.require(UNITS)
def patch_unit(unit_id: int):
    """{"name": new name} renames; {"parent": id|code|path|null} moves (null = top)."""
    body = json_object()
    unknown = set(body) - {"name", "parent"}
    if unknown or not body:
        raise ApiError(400, "invalid_field", sorted(unknown)[0] if unknown else "body",
                       "send {\"name\": ...} to rename and/or {\"parent\": ...} to move")
    if "name" in body and not isinstance(body["name"], str):
        raise ApiError(400, "invalid_field", "name", "name must be text")
    ev = evaluator()
    now = utcnow()
    try:
        with write_transaction(ev.engine) as conn:
            unit = _unit_or_404(conn, unit_id)
            auth.check_unit(conn, unit.id, "unit_id")
            before = unit
            if "parent" in body:
                unit = move_unit(conn, unit.id, body["parent"])
                audit.record(conn, auth.principal(), "unit.move", f"unit {unit.id}",
                             unit_id=unit.id, now=now,
                             details={"from_parent_id": before.parent_id,
                                      "to_parent_id": unit.parent_id, "path": unit.path})
            if "name" in body:
                renamed = rename_unit(conn, unit.id, body["name"])
                if renamed.name != unit.name:
                    audit.record(conn, auth.principal(), "unit.rename", f"unit {unit.id}",
                                 unit_id=unit.id, now=now,
                                 details={"from": unit.name, "to": renamed.name})
                unit = renamed
            # Levels changed: rules scoped by level apply differently now.
            ev.evaluate_units(conn, subtree_ids(all_units(conn), unit.id), now)
    except UnitConflict as exc:
        raise ApiError(409, "conflict", "parent" if "parent" in body and "under" in str(exc)
                       else "name", str(exc)) from None
    except UnitError as exc:
        field = exc.field or ("parent" if "no unit" in str(exc) else "name")
        raise ApiError(400, "invalid_field", field, str(exc)) from None
    return jsonify(unit_ref(unit) | {"parent_id": unit.parent_id})
