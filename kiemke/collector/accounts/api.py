"""GET /api/v1/audit: the audit log of the caller's scope (admin and manager tokens)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from kiemke.collector.accounts import auth
from kiemke.collector.accounts.audit import list_entries
from kiemke.collector.accounts.roles import AUDIT
from kiemke.collector.api.errors import ApiError
from kiemke.collector.timeutil import parse_iso

bp = Blueprint("audit", __name__)


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, str(default)).strip()
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_parameter", name,
                       f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _time(name: str) -> Any:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return parse_iso(raw if "T" in raw else f"{raw}T00:00:00Z")
    except ValueError:
        raise ApiError(400, "invalid_parameter", name,
                       f"{name} must be a date (2026-12-01) or a UTC time "
                       f"(2026-12-01T08:00:00Z)") from None


@bp.get("/api/v1/audit")
@auth.require(AUDIT)
def get_audit():
    limit, offset = _int("limit", 100, 1, 1000), _int("offset", 0, 0, 10**9)
    since, until = _time("since"), _time("until")
    with current_app.extensions["kiemke"].engine.connect() as conn:
        items, total = list_entries(conn, auth.scope(conn), action=request.args.get("action"),
                                    actor=request.args.get("actor"), since=since, until=until,
                                    limit=limit, offset=offset)
    return jsonify({"items": items, "total": total, "limit": limit, "offset": offset})


def openapi_extend(doc: dict[str, Any]) -> None:
    err = {"description": "error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
    entry = {"type": "object", "properties": {
        "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
        "actor_kind": {"enum": ["user", "token", "cli", "system"]},
        "actor": {"type": "string"}, "action": {"type": "string"},
        "target": {"type": "string"}, "unit_id": {"type": ["integer", "null"]},
        "details": {"type": "object"}}}
    doc["components"]["schemas"]["AuditEntry"] = entry
    doc["paths"]["/api/v1/audit"] = {"get": {
        "summary": "Audit log: every write with its author, newest first (admin or unit "
                   "manager; a scoped caller sees its subtree's entries)",
        "security": [{"adminToken": []}],
        "parameters": [
            {"name": "action", "in": "query", "schema": {"type": "string"},
             "description": "waiver, unit, token, user, machine, assets, or one action "
                            "such as waiver.add"},
            {"name": "actor", "in": "query", "schema": {"type": "string"}},
            {"name": "since", "in": "query", "schema": {"type": "string"}},
            {"name": "until", "in": "query", "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                         "maximum": 1000, "default": 100}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
                "total": {"type": "integer"}, "limit": {"type": "integer"},
                "offset": {"type": "integer"}}}}}},
            "400": err, "401": err, "403": err}}}
