"""Compliance figures, machine results and moves, and waivers over HTTP (admin token).

The units endpoints are in kiemke.collector.api.units.

Errors are JSON {"error", "field", "message"} (kiemke.collector.api.errors).
docs/api.md and /api/v1/openapi.json describe every endpoint.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import Select, func, select

from kiemke.collector.accounts import audit, auth
from kiemke.collector.accounts.roles import MOVE_MACHINES, READ, WAIVERS
from kiemke.collector.api.errors import ApiError
from kiemke.collector.api.params import json_object, page_params
from kiemke.collector.db.compliance_tables import rule_results, unit_rule_results
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines, units
from kiemke.collector.evaluation.admin import (
    AdminError,
    add_waiver,
    list_waivers,
    machine_row,
    move_machine,
    revoke_target,
    revoke_waiver,
)
from kiemke.collector.evaluation.evaluator import Evaluator
from kiemke.collector.evaluation.figures import compute, rule_figure
from kiemke.collector.timeutil import iso_z, parse_iso, utcnow
from kiemke.collector.units import (
    Unit,
    UnitConflict,
    UnitError,
    all_units,
    find_unit,
    subtree_ids,
    unit_ref,
)
from kiemke.compliance import RESULTS
from kiemke.compliance.rules import Rule

if TYPE_CHECKING:
    from typing_extensions import Unpack

bp = Blueprint("compliance", __name__)


def evaluator() -> Evaluator:
    return current_app.extensions["kiemke"].compliance


def _unit_arg(conn: Any, units_: list[Unit]) -> Unit | None:
    ref = request.args.get("unit", "").strip()
    if not ref:
        return None
    try:
        return find_unit(conn, ref)
    except UnitError as exc:
        raise ApiError(404, "not_found", "unit", str(exc)) from None


def _rule(rule_id: str) -> Rule:
    rule = evaluator().ruleset.by_id.get(rule_id)
    if rule is None or not rule.enabled:
        known = ", ".join(r.id for r in evaluator().ruleset.rules)
        raise ApiError(404, "not_found", "rule_id",
                       f"no enabled rule {rule_id!r}; the rules are: {known}")
    return rule


def _rule_dict(rule: Rule) -> dict[str, Any]:
    return {"rule": rule.id, "kind": rule.kind, "title": rule.title,
            "severity": rule.severity, "target": rule.target,
            "grace_seconds": rule.grace_seconds,
            "source": {"plan": rule.source.plan, "document": rule.source.document,
                       "seed": rule.source.seed}}


def _scope(conn: Any, units_: list[Unit]) -> tuple[Unit | None, list[int], list[Unit]]:
    """(the unit asked for, ids summed for it, its children)."""
    # Without a unit: the caller's own scope (everything for an unscoped token).
    unit = auth.scoped_unit(conn, _unit_arg(conn, units_), units_)
    if unit is None:
        roots = [u for u in units_ if u.parent_id is None]
        return None, [u.id for u in roots], roots
    return unit, [unit.id], [u for u in units_ if u.parent_id == unit.id]


def _filtered_rules() -> list[Rule]:
    rules = list(evaluator().ruleset.rules)
    kind = request.args.get("kind")
    if kind:
        if kind not in ("machine", "unit"):
            raise ApiError(400, "invalid_parameter", "kind", "kind must be machine or unit")
        rules = [r for r in rules if r.kind == kind]
    severity = request.args.get("severity")
    if severity:
        rules = [r for r in rules if r.severity == severity]
    wanted = request.args.get("rule")
    if wanted:
        rules = [r for r in rules if r.id in set(wanted.split(","))]
    return rules


@bp.get("/api/v1/compliance")
@auth.require(READ)
def compliance():
    ev = evaluator()
    limit, offset = page_params()
    now = utcnow()
    with ev.engine.connect() as conn:
        units_ = all_units(conn)
        unit, ids, children = _scope(conn, units_)
        figures = compute(conn, ev.ruleset, now, ev.config.stale_after, units_)
    page = children[offset:offset + limit]
    rules = []
    for rule in _filtered_rules():
        rules.append({**_rule_dict(rule), **rule_figure(figures, ids, rule),
                      "children": [{"unit": unit_ref(c), **rule_figure(figures, [c.id], rule)}
                                   for c in page]})
    return jsonify({"unit": unit_ref(unit) if unit else None, "generated_at": iso_z(now),
                    "children_total": len(children), "limit": limit, "offset": offset,
                    "rules": rules})


@bp.get("/api/v1/compliance/rules/<rule_id>")
@auth.require(READ)
def compliance_rule(rule_id: str):
    ev = evaluator()
    rule = _rule(rule_id)
    limit, offset = page_params()
    now = utcnow()
    with ev.engine.connect() as conn:
        units_ = all_units(conn)
        unit, ids, children = _scope(conn, units_)
        figures = compute(conn, ev.ruleset, now, ev.config.stale_after, units_)
    return jsonify({**_rule_dict(rule), "unit": unit_ref(unit) if unit else None,
                    "generated_at": iso_z(now), **rule_figure(figures, ids, rule),
                    "children_total": len(children), "limit": limit, "offset": offset,
                    "children": [{"unit": unit_ref(c), **rule_figure(figures, [c.id], rule)}
                                 for c in children[offset:offset + limit]]})


@bp.get("/api/v1/compliance/rules/<rule_id>/failing")
@auth.require(READ)
def compliance_failing(rule_id: str):
    """Machines (units, for a unit rule) with a result, by default fail, oldest first."""
    ev = evaluator()
    rule = _rule(rule_id)
    limit, offset = page_params()
    result = request.args.get("result", "fail")
    if result not in RESULTS:
        raise ApiError(400, "invalid_parameter", "result",
                       f"result must be one of {', '.join(RESULTS)}")
    include_stale = request.args.get("include_stale", "false").lower() in ("1", "true", "yes")
    now = utcnow()
    with ev.engine.connect() as conn:
        units_ = all_units(conn)
        unit = auth.scoped_unit(conn, _unit_arg(conn, units_), units_)
        scope = subtree_ids(units_, unit.id) if unit else None
        query: Select[Unpack[tuple[Any, ...]]]
        if rule.kind == "unit":
            table = unit_rule_results
            query = (select(table.c.unit_id, units.c.path, table.c.reason, table.c.since)
                     .join(units, units.c.id == table.c.unit_id)
                     .where(table.c.rule_id == rule.id, table.c.result == result))
            order = (table.c.since, table.c.unit_id)
        else:
            table = rule_results
            query = (select(table.c.machine_id, machines.c.hostname, table.c.unit_id,
                            units.c.path, table.c.reason, table.c.since, machines.c.last_seen)
                     .join(machines, machines.c.machine_id == table.c.machine_id)
                     .join(units, units.c.id == table.c.unit_id)
                     .where(table.c.rule_id == rule.id, table.c.result == result))
            if not include_stale:
                query = query.where(machines.c.last_seen >= now - ev.config.stale_after)
            order = (table.c.since, table.c.machine_id)
        if scope is not None:
            query = query.where(table.c.unit_id.in_(scope))
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(query.order_by(*order).limit(limit).offset(offset)).all()
    if rule.kind == "unit":
        items = [{"unit": {"id": r.unit_id, "path": r.path}, "result": result,
                  "reason": r.reason, "since": iso_z(r.since)} for r in rows]
    else:
        stale_cut = now - ev.config.stale_after
        items = [{"machine_id": r.machine_id, "hostname": r.hostname,
                  "unit": {"id": r.unit_id, "path": r.path}, "result": result,
                  "reason": r.reason, "since": iso_z(r.since),
                  "last_seen": iso_z(r.last_seen),
                  "status": "active" if r.last_seen >= stale_cut else "stale"} for r in rows]
    return jsonify({**_rule_dict(rule), "unit": unit_ref(unit) if unit else None,
                    "result": result, "total": total, "limit": limit, "offset": offset,
                    "items": items})


def machine_results(conn: Any, machine_id: str) -> list[dict[str, Any]]:
    """A machine's result for every rule (for GET /api/v1/machines/<id>)."""
    ruleset = current_app.extensions["kiemke"].compliance.ruleset
    rows = conn.execute(select(rule_results.c.rule_id, rule_results.c.result,
                               rule_results.c.reason, rule_results.c.since,
                               rule_results.c.evaluated_at)
                        .where(rule_results.c.machine_id == machine_id)
                        .order_by(rule_results.c.rule_id))
    out = []
    for r in rows:
        rule = ruleset.by_id.get(r.rule_id)
        out.append({"rule": r.rule_id, "result": r.result, "reason": r.reason,
                    "since": iso_z(r.since), "evaluated_at": iso_z(r.evaluated_at),
                    "severity": rule.severity if rule else None,
                    "title": rule.title if rule else None})
    return out


@bp.get("/api/v1/machines/<machine_id>/results")
@auth.require(READ)
def get_machine_results(machine_id: str):
    ev = evaluator()
    with ev.engine.connect() as conn:
        try:
            row = machine_row(conn, machine_id)
        except AdminError as exc:
            raise ApiError(exc.status, "not_found", exc.field, str(exc)) from None
        auth.check_unit(conn, row.unit_id, "machine_id")
        facts = conn.execute(select(machines.c.facts)
                             .where(machines.c.machine_id == machine_id)).scalar()
        results = machine_results(conn, machine_id)
    return jsonify({"machine_id": machine_id, "hostname": row.hostname, "facts": facts,
                    "results": results})


def _admin_error(exc: AdminError | UnitError) -> ApiError:
    if isinstance(exc, AdminError):
        code = "not_found" if exc.status == 404 else "invalid_field"
        return ApiError(exc.status, code, exc.field, str(exc))
    if isinstance(exc, UnitConflict):
        return ApiError(409, "conflict", "parent" if "under" in str(exc) else "name", str(exc))
    return ApiError(400, "invalid_field", "unit", str(exc))


@bp.patch("/api/v1/machines/<machine_id>")
@auth.require(MOVE_MACHINES)
def patch_machine(machine_id: str):
    body = json_object()
    if set(body) - {"unit"} or "unit" not in body:
        raise ApiError(400, "invalid_field", "unit",
                       "send {\"unit\": <unit id, code or path>}; only the unit can be changed")
    ev = evaluator()
    now = utcnow()
    try:
        with write_transaction(ev.engine) as conn:
            before = machine_row(conn, machine_id)
            auth.check_unit(conn, before.unit_id, "machine_id")
            unit = move_machine(conn, ev, machine_id, body["unit"], now)
            auth.check_unit(conn, unit.id)  # a scoped caller moves within its subtree only
            audit.record(conn, auth.principal(), "machine.move", f"machine {machine_id}",
                         unit_id=unit.id, now=now,
                         details={"hostname": before.hostname, "from_unit_id": before.unit_id,
                                  "to_unit_id": unit.id, "to_unit": unit.path})
    except (AdminError, UnitError) as exc:
        raise _admin_error(exc) from None
    return jsonify({"machine_id": machine_id, "unit": unit_ref(unit)})


# ------------------------------------------------------------------------------ waivers

@bp.get("/api/v1/waivers")
@auth.require(READ)
def get_waivers():
    ev = evaluator()
    limit, offset = page_params()
    try:
        with ev.engine.connect() as conn:
            items, total = list_waivers(conn, utcnow(), machine_id=request.args.get("machine"),
                                        rule_id=request.args.get("rule"),
                                        state=request.args.get("state"), limit=limit,
                                        offset=offset, unit_ids=auth.scope_ids(conn))
    except AdminError as exc:
        raise _admin_error(exc) from None
    return jsonify({"items": items, "total": total, "limit": limit, "offset": offset})


def _expiry(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", "expires_at",
                       "give expires_at as a date (2027-01-31) or UTC time (2027-01-31T00:00:00Z)")
    try:
        return parse_iso(value if "T" in value else f"{value}T00:00:00Z")
    except ValueError:
        raise ApiError(400, "invalid_field", "expires_at",
                       f"{value!r} is not a date like 2027-01-31") from None


@bp.post("/api/v1/waivers")
@auth.require(WAIVERS)
def post_waiver():
    body = json_object()
    for key in ("machine_id", "rule", "reason"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            raise ApiError(400, "invalid_field", key, f"'{key}' is required (text)")
    expires_at = _expiry(body.get("expires_at"))
    ev = evaluator()
    principal = auth.principal()
    now = utcnow()
    try:
        with write_transaction(ev.engine) as conn:
            machine_unit = machine_row(conn, body["machine_id"]).unit_id
            auth.check_unit(conn, machine_unit, "machine_id")
            # The author is who authenticated (the token's name), never free text; an
            # `author` in the body (older clients) is kept in the audit entry only.
            waiver = add_waiver(conn, ev, machine_id=body["machine_id"], rule_id=body["rule"],
                                reason=body["reason"], author=principal.label,
                                expires_at=expires_at, now=now)
            audit.record(conn, principal, "waiver.add", f"waiver {waiver['id']}",
                         unit_id=machine_unit, now=now,
                         details={"machine_id": body["machine_id"], "rule": body["rule"],
                                  "reason": waiver["reason"], "expires_at": waiver["expires_at"],
                                  **({"author_given": str(body["author"])[:255]}
                                     if body.get("author") else {})})
    except AdminError as exc:
        raise _admin_error(exc) from None
    resp = jsonify(waiver)
    resp.status_code = 201
    return resp


@bp.delete("/api/v1/waivers/<int:waiver_id>")
@auth.require(WAIVERS)
def delete_waiver(waiver_id: int):
    ev = evaluator()
    now = utcnow()
    try:
        with write_transaction(ev.engine) as conn:
            before = revoke_target(conn, waiver_id)
            auth.check_unit(conn, before.unit_id, "id")
            waiver = revoke_waiver(conn, ev, waiver_id, now)
            if before.revoked_at is None:
                audit.record(conn, auth.principal(), "waiver.revoke", f"waiver {waiver_id}",
                             unit_id=before.unit_id, now=now,
                             details={"machine_id": waiver["machine_id"], "rule": waiver["rule"]})
    except AdminError as exc:
        raise _admin_error(exc) from None
    return jsonify(waiver)
