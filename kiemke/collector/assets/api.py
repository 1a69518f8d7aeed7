"""Read APIs (admin token): the asset register, depreciation per unit and per machine."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import Connection, select

from kiemke.collector.accounts import auth
from kiemke.collector.accounts.roles import READ
from kiemke.collector.api.errors import ApiError
from kiemke.collector.api.params import bool_param, limit_param
from kiemke.collector.assets import depreciation as dep
from kiemke.collector.assets.state import AssetsState
from kiemke.collector.assets.store import last_import
from kiemke.collector.db.asset_tables import assets, machine_depreciation
from kiemke.collector.db.tables import machines, units
from kiemke.collector.timeutil import iso_z, utcnow
from kiemke.collector.units import Unit, UnitError, all_units, find_unit, subtree_ids

bp = Blueprint("assets", __name__)


def _state() -> AssetsState:
    state: AssetsState = current_app.extensions["kiemke"].assets
    return state


def _unit_param(conn: Connection) -> tuple[Unit | None, list[Unit]]:
    """The unit asked for (or the caller's own scope unit), checked against the scope."""
    units_ = all_units(conn)
    ref = request.args.get("unit")
    unit = None
    if ref:
        try:
            unit = find_unit(conn, ref)
        except UnitError as exc:
            raise ApiError(400, "invalid_parameter", "unit", str(exc)) from None
    return auth.scoped_unit(conn, unit, units_), units_


def _machine_view(row: Any) -> dict[str, Any]:
    today = dep.utc_today(utcnow())
    return dep.on_day(row, today, _state().config).as_dict()


@bp.get("/api/v1/assets")
@auth.require(READ)
def list_assets():
    """The register as last imported, with the machine each row matched; by line number."""
    limit = limit_param()
    matched = bool_param("matched")
    cursor = request.args.get("cursor", "")
    if cursor and not cursor.isdigit():
        raise ApiError(400, "invalid_parameter", "cursor",
                       "cursor must be the next_cursor of the previous page")
    md = machine_depreciation
    query = (select(assets, units.c.path.label("unit_path"),
                    machines.c.hostname.label("machine_hostname"), md.c.estimated,
                    md.c.category.label("md_category"), md.c.start_date, md.c.cost.label("md_cost"),
                    md.c.useful_life_years, md.c.fully_depreciated_on, md.c.overdue_from,
                    md.c.reason)
             .outerjoin(units, units.c.id == assets.c.unit_id)
             .outerjoin(machines, machines.c.machine_id == assets.c.machine_id)
             .outerjoin(md, md.c.machine_id == assets.c.machine_id))
    if cursor:
        query = query.where(assets.c.id > int(cursor))
    if matched is not None:
        query = query.where(assets.c.machine_id.is_not(None) if matched
                            else assets.c.machine_id.is_(None))
    with _state().engine.connect() as conn:
        unit, units_ = _unit_param(conn)
        if unit is not None:
            query = query.where(assets.c.unit_id.in_(subtree_ids(units_, unit.id)))
        rows = list(conn.execute(query.order_by(assets.c.id).limit(limit + 1)))
        imported = last_import(conn)
    more = len(rows) > limit
    rows = rows[:limit]
    items = []
    for r in rows:
        item = {
            "id": r.id, "line": r.line, "asset_tag": r.asset_tag, "serial": r.serial,
            "hostname": r.hostname, "category": r.category,
            "purchase_date": r.purchase_date.isoformat(), "cost": r.cost,
            "unit": {"id": r.unit_id, "path": r.unit_path} if r.unit_id else None,
            "unit_text": r.unit_text, "description": r.description,
            "machine": {"machine_id": r.machine_id, "hostname": r.machine_hostname}
            if r.machine_id else None,
            "matched_by": r.matched_by, "depreciation": None,
        }
        if r.machine_id and r.estimated is not None:
            view = _MdRow(r)
            item["depreciation"] = _machine_view(view)
        items.append(item)
    return jsonify({
        "items": items, "next_cursor": str(rows[-1].id) if more else None,
        "import": None if imported is None else {
            "file_name": imported.file_name, "sha256": imported.sha256, "rows": imported.rows,
            "matched": imported.matched, "imported_at": iso_z(imported.imported_at)},
    })


class _MdRow:
    """The machine_depreciation columns of a joined row, under their own names."""

    def __init__(self, row: Any) -> None:
        self.estimated = row.estimated
        self.category = row.md_category
        self.start_date = row.start_date
        self.cost = row.md_cost
        self.useful_life_years = row.useful_life_years
        self.fully_depreciated_on = row.fully_depreciated_on
        self.overdue_from = row.overdue_from
        self.reason = row.reason


def _figures(agg: dep.Aggregates, ids: set[int]) -> dict[str, Any]:
    status = {s: {"registered": 0, "estimated": 0} for s in dep.STATUSES}
    for (uid, (name, estimated)), n in agg.by_status.items():
        if uid in ids:
            status[name]["estimated" if estimated else "registered"] += int(n)
    forecast = {y: 0 for y in agg.years}
    for (uid, year), n in agg.forecast.items():
        if uid in ids and year in forecast:
            forecast[year] += int(n)
    ages = {b: 0 for b in dep.AGE_BUCKETS}
    for (uid, bucket), n in agg.by_age.items():
        if uid in ids:
            ages[bucket] += int(n)
    return {"machines": sum(v["registered"] + v["estimated"] for v in status.values()),
            "status": status,
            "forecast": [{"year": y, "machines": n} for y, n in forecast.items()],
            "age_years": ages}


@bp.get("/api/v1/depreciation")
@auth.require(READ)
def depreciation_summary():
    """Status counts, replacement forecast per year and ages for a unit (with its
    descendants) and for each of its children; without `unit`, for everything and each root."""
    state = _state()
    today = dep.utc_today(utcnow())
    with state.engine.connect() as conn:
        unit, units_ = _unit_param(conn)
        agg = dep.aggregate(conn, today)
    if unit is None:
        scope = {u.id for u in units_}
        children = [u for u in units_ if u.parent_id is None]
    else:
        scope = set(subtree_ids(units_, unit.id))
        children = [u for u in units_ if u.parent_id == unit.id]
    cfg = state.config
    return jsonify({
        "as_of": today.isoformat(),
        "regulation": {"key": cfg.regulation, "document": cfg.document,
                       "useful_life_years": {k: c.years for k, c in cfg.categories.items()},
                       "overdue_after_months": cfg.overdue_after_months},
        "unit": unit.as_dict() if unit else None,
        **_figures(agg, scope),
        "children": [{"unit": c.as_dict(), **_figures(agg, set(subtree_ids(units_, c.id)))}
                     for c in children],
    })


@bp.get("/api/v1/depreciation/machines")
@auth.require(READ)
def depreciation_machines():
    """Per machine: age, book value, fully-depreciated date, status; keyset by machine_id."""
    state = _state()
    limit = limit_param()
    today = dep.utc_today(utcnow())
    md = machine_depreciation
    status_sql = dep.status_expr(today)
    query = (select(md, machines.c.hostname, machines.c.unit_id.label("machine_unit"),
                    units.c.path.label("unit_path"),
                    assets.c.asset_tag, assets.c.id.label("asset_row"))
             .join(machines, machines.c.machine_id == md.c.machine_id)
             .join(units, units.c.id == machines.c.unit_id)
             .outerjoin(assets, assets.c.id == md.c.asset_id))
    status = request.args.get("status")
    if status:
        if status not in dep.STATUSES:
            raise ApiError(400, "invalid_parameter", "status",
                           f"status must be one of {', '.join(dep.STATUSES)}")
        query = query.where(status_sql == status)
    estimated = bool_param("estimated")
    if estimated is not None:
        query = query.where(md.c.estimated == estimated)
    cursor = request.args.get("cursor")
    if cursor:
        query = query.where(md.c.machine_id > cursor)
    with state.engine.connect() as conn:
        unit, units_ = _unit_param(conn)
        if unit is not None:
            query = query.where(machines.c.unit_id.in_(subtree_ids(units_, unit.id)))
        rows = list(conn.execute(query.order_by(md.c.machine_id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify({
        "as_of": today.isoformat(),
        "items": [{"machine_id": r.machine_id, "hostname": r.hostname,
                   "unit": {"id": r.machine_unit, "path": r.unit_path},
                   "asset": {"id": r.asset_row, "asset_tag": r.asset_tag}
                   if r.asset_row else None, **_machine_view(r)} for r in rows],
        "next_cursor": rows[-1].machine_id if more else None,
    })
