"""The report endpoints in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from kiemke.collector.reports.render import CONTENT_TYPES, FORMATS


def _err(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


PERIOD = {"name": "period", "in": "query", "required": True,
          "description": "2026-11 (month), 2026-Q4 (quarter), 2026 (year) or "
                         "2026-11-01..2026-11-15, in the collector's local calendar",
          "schema": {"type": "string"}}
FORMAT = {"name": "format", "in": "query", "schema": {"enum": list(FORMATS),
                                                      "default": "json"}}
LANG = {"name": "lang", "in": "query", "schema": {"enum": ["vi", "en"], "default": "vi"}}


def _ok(text: str) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for fmt in FORMATS:
        media = CONTENT_TYPES[fmt].split(";")[0]
        content[media] = {"schema": {"type": "object"} if fmt == "json" else
                          {"type": "string", "format": "binary"}}
    return {"description": text, "content": content}


def extend(document: dict[str, Any]) -> None:
    admin: list[dict[str, list[str]]] = [{"adminToken": []}]
    errors = {
        "400": _err("A parameter is missing or wrong (malformed or future period, unknown "
                    "format or lang, unknown parameter); `field` names it"),
        "401": _err("Missing or invalid API token (field: Authorization)"),
        "403": _err("The unit (field: unit / parent) is outside the subtree of a read-only "
                    "token (error: outside_scope)"),
        "404": _err("Unknown unit (field: unit / parent), or no closed day of history in "
                    "the period (field: period)"),
        "405": _err("Method not allowed"),
    }
    document["paths"]["/api/v1/period-reports"] = {"get": {
        "summary": "Period report of a unit and its subtree, from the replayable history "
                   "(docs/reports.md)", "security": admin,
        "parameters": [{"name": "unit", "in": "query", "required": True,
                        "description": "unit id, code or path", "schema": {"type": "string"}},
                       PERIOD, FORMAT, LANG],
        "responses": {"200": _ok("The report in the asked format"), **errors}}}
    document["paths"]["/api/v1/rankings"] = {"get": {
        "summary": "Ranking of the child units of a unit over a period (rules/ranking.yml)",
        "security": admin,
        "parameters": [{"name": "parent", "in": "query", "required": True,
                        "description": "unit id, code or path", "schema": {"type": "string"}},
                       PERIOD, FORMAT, LANG],
        "responses": {"200": _ok("The ranking in the asked format"), **errors}}}
