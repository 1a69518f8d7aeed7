"""OpenAPI paths of the asset register API (merged into /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _ERROR}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_LIMIT = _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000,
                                       "default": 100})
_UNIT = _query("unit", "unit id, code or path; includes its descendants")
_STATUS = {"enum": ["in_service", "fully_depreciated", "overdue", "unknown"]}
_DEPRECIATION = {"type": "object", "properties": {
    "status": _STATUS,
    "estimated": {"type": "boolean", "description": "dates from the firmware, not the register"},
    "category": {"type": ["string", "null"]},
    "useful_life_years": {"type": ["integer", "null"]},
    "start_date": {"type": ["string", "null"], "format": "date"},
    "age": {"type": ["object", "null"], "properties": {"years": {"type": "integer"},
                                                       "months": {"type": "integer"}}},
    "cost": {"type": ["integer", "null"], "description": "nguyên giá, đồng"},
    "book_value": {"type": ["integer", "null"], "description": "giá trị còn lại, đồng"},
    "fully_depreciated_on": {"type": ["string", "null"], "format": "date"},
    "replacement_year": {"type": ["integer", "null"]},
    "reason": {"type": ["string", "null"], "description": "why the status is unknown"}}}
_FIGURES = {"type": "object", "properties": {
    "machines": {"type": "integer"},
    "status": {"type": "object", "description": "status -> {registered, estimated} counts"},
    "forecast": {"type": "array", "items": {"type": "object", "properties": {
        "year": {"type": "integer"}, "machines": {"type": "integer"}}}},
    "age_years": {"type": "object", "description": "\"0\"..\"9\", \"10+\", \"unknown\" -> count"}}}
_UNAUTH = _error("Missing, wrong or revoked admin token (field: Authorization)")


def paths() -> dict[str, Any]:
    admin: list[dict[str, list[str]]] = [{"adminToken": []}]
    return {
        "/api/v1/assets": {"get": {
            "summary": "The asset register as last imported, with the machine each row "
                       "matched (keyset-paginated by row id)", "security": admin,
            "parameters": [_LIMIT, _query("cursor", "next_cursor of the previous page"),
                           _query("matched", "true or false", {"type": "boolean"}),
                           _query("unit", "the register row's unit, with descendants")],
            "responses": {
                "200": {"description": "One page", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "items": {"type": "array", "items": {"type": "object", "properties": {
                            "line": {"type": "integer", "description": "line in the CSV"},
                            "asset_tag": {"type": ["string", "null"]},
                            "serial": {"type": ["string", "null"]},
                            "hostname": {"type": ["string", "null"]},
                            "category": {"type": "string"},
                            "purchase_date": {"type": "string", "format": "date"},
                            "cost": {"type": ["integer", "null"]},
                            "matched_by": {"enum": ["serial", "asset_tag", "hostname", None]},
                            "depreciation": {"oneOf": [_DEPRECIATION, {"type": "null"}]}}}},
                        "next_cursor": {"type": ["string", "null"]},
                        "import": {"type": ["object", "null"]}}}}}},
                "400": _error("Invalid parameter (field: limit, cursor, matched or unit)"),
                "401": _UNAUTH}}},
        "/api/v1/depreciation": {"get": {
            "summary": "Depreciation status counts, replacement forecast per year (this year "
                       "and the next five) and ages, for a unit and each of its children",
            "security": admin, "parameters": [_UNIT],
            "responses": {
                "200": {"description": "Figures as of today (UTC date)", "content": {
                    "application/json": {"schema": {"allOf": [_FIGURES, {
                        "type": "object", "properties": {
                            "as_of": {"type": "string", "format": "date"},
                            "regulation": {"type": "object"},
                            "unit": {"oneOf": [{"$ref": "#/components/schemas/Unit"},
                                               {"type": "null"}]},
                            "children": {"type": "array", "items": _FIGURES}}}]}}}},
                "400": _error("Unknown unit (field: unit)"), "401": _UNAUTH}}},
        "/api/v1/depreciation/machines": {"get": {
            "summary": "Per machine: age, book value, fully-depreciated date, status "
                       "(keyset-paginated by machine_id)", "security": admin,
            "parameters": [_LIMIT, _query("cursor", "next_cursor of the previous page"), _UNIT,
                           _query("status", "filter by status", _STATUS),
                           _query("estimated", "true or false", {"type": "boolean"})],
            "responses": {
                "200": {"description": "One page", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "as_of": {"type": "string", "format": "date"},
                        "items": {"type": "array", "items": {"allOf": [_DEPRECIATION, {
                            "type": "object", "properties": {
                                "machine_id": {"type": "string"},
                                "hostname": {"type": "string"},
                                "unit": {"type": "object"},
                                "asset": {"type": ["object", "null"]}}}]}},
                        "next_cursor": {"type": ["string", "null"]}}}}}},
                "400": _error("Invalid parameter (field: limit, unit, status or estimated)"),
                "401": _UNAUTH}}},
    }
