"""The compliance endpoints in the OpenAPI document (docs/api.md has the prose)."""

from __future__ import annotations

from typing import Any

RESULT = {"enum": ["pass", "fail", "unknown", "not_applicable", "exempt"]}
PAGE = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                     "maximum": 1000, "default": 100}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                      "default": 0}}]
UNIT_Q = {"name": "unit", "in": "query", "description": "unit id, code or path (default: "
          "the whole organisation)", "schema": {"type": "string"}}


def _err(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(schema: dict[str, Any], text: str = "OK") -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Figure": {"type": "object", "properties": {
        "counts": {"type": "object", "properties": {r: {"type": "integer"} for r in
                                                    RESULT["enum"]}},
        "ratio": {"type": ["number", "null"]}, "target": {"type": "number"},
        "gap": {"type": "integer"}, "meets_target": {"type": ["boolean", "null"]},
        "stale": {"type": "integer", "description": "stale machines left out"}}},
    "RuleFigure": {"allOf": [_ref("Figure"), {"type": "object", "properties": {
        "rule": {"type": "string"}, "kind": {"enum": ["machine", "unit"]},
        "title": {"type": "object"}, "severity": {"type": "string"},
        "grace_seconds": {"type": "integer"}, "source": {"type": "object"},
        "children": {"type": "array", "items": {"allOf": [_ref("Figure"), {
            "type": "object", "properties": {"unit": _ref("Unit")}}]}}}}]},
    "Waiver": {"type": "object", "properties": {
        "id": {"type": "integer"}, "machine_id": {"type": "string"},
        "rule": {"type": "string"}, "reason": {"type": "string"},
        "author": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "state": {"enum": ["active", "expired", "revoked"]}}},
    "MachineResult": {"type": "object", "properties": {
        "rule": {"type": "string"}, "result": RESULT, "reason": {"type": ["string", "null"]},
        "since": {"type": "string", "format": "date-time"},
        "evaluated_at": {"type": "string", "format": "date-time"},
        "severity": {"type": ["string", "null"]}}},
}


def extend(document: dict[str, Any]) -> None:
    admin: list[dict[str, list[str]]] = [{"adminToken": []}]
    unauth = _err("Missing or invalid admin token (field: Authorization)")
    paths = {
        "/api/v1/compliance": {"get": {
            "summary": "Compliance per rule for a unit and its children (rolled up, active "
                       "machines only)", "security": admin,
            "parameters": [UNIT_Q, *PAGE,
                           {"name": "kind", "in": "query", "schema": {"enum": ["machine",
                                                                               "unit"]}},
                           {"name": "severity", "in": "query", "schema": {"type": "string"}},
                           {"name": "rule", "in": "query", "schema": {"type": "string"},
                            "description": "comma-separated rule ids"}],
            "responses": {"200": _ok({"type": "object", "properties": {
                "unit": {"oneOf": [_ref("Unit"), {"type": "null"}]},
                "children_total": {"type": "integer"},
                "rules": {"type": "array", "items": _ref("RuleFigure")}}}),
                "401": unauth, "404": _err("Unknown unit (field: unit)")}}},
        "/api/v1/compliance/rules/{rule_id}": {"get": {
            "summary": "One rule for a unit and each child", "security": admin,
            "parameters": [{"name": "rule_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}, UNIT_Q, *PAGE],
            "responses": {"200": _ok(_ref("RuleFigure")), "401": unauth,
                          "404": _err("Unknown rule or unit")}}},
        "/api/v1/compliance/rules/{rule_id}/failing": {"get": {
            "summary": "Machines (offices for a unit rule) with a result, oldest first",
            "security": admin,
            "parameters": [{"name": "rule_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}, UNIT_Q, *PAGE,
                           {"name": "result", "in": "query", "schema": RESULT},
                           {"name": "include_stale", "in": "query",
                            "schema": {"type": "boolean", "default": False}}],
            "responses": {"200": _ok({"type": "object", "properties": {
                "total": {"type": "integer"}, "items": {"type": "array", "items": {
                    "type": "object"}}}}), "400": _err("Bad limit, offset or result"),
                "401": unauth, "404": _err("Unknown rule or unit")}}},
        "/api/v1/machines/{machine_id}/results": {"get": {
            "summary": "A machine's facts and its result for every rule", "security": admin,
            "parameters": [{"name": "machine_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _ok({"type": "object", "properties": {
                "facts": {"type": "object"},
                "results": {"type": "array", "items": _ref("MachineResult")}}}),
                "401": unauth, "404": _err("Unknown machine")}}},
        "/api/v1/units/{unit_id}": {
            "get": {"summary": "A unit, its children, machine counts, unit-rule results",
                    "security": admin,
                    "parameters": [{"name": "unit_id", "in": "path", "required": True,
                                    "schema": {"type": "integer"}}],
                    "responses": {"200": _ok(_ref("Unit")), "401": unauth,
                                  "404": _err("Unknown unit")}},
            "patch": {"summary": "Rename ({name}) and/or move ({parent}: ref or null) a unit "
                                 "with its subtree", "security": admin,
                      "parameters": [{"name": "unit_id", "in": "path", "required": True,
                                      "schema": {"type": "integer"}}],
                      "requestBody": _body({"type": "object", "properties": {
                          "name": {"type": "string"},
                          "parent": {"type": ["string", "integer", "null"]}}}),
                      "responses": {"200": _ok(_ref("Unit")), "400": _err("Invalid field"),
                                    "401": unauth, "404": _err("Unknown unit"),
                                    "409": _err("Duplicate path, or a move under the unit "
                                                "itself or a descendant (field: parent)")}}},
        "/api/v1/machines/{machine_id}": {"patch": {
            "summary": "Move a machine to another unit ({unit}); its agent follows",
            "security": admin,
            "parameters": [{"name": "machine_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": _body({"type": "object", "required": ["unit"], "properties": {
                "unit": {"type": ["string", "integer"]}}}),
            "responses": {"200": _ok({"type": "object"}), "400": _err("Unknown unit"),
                          "401": unauth, "404": _err("Unknown machine")}}},
        "/api/v1/waivers": {
            "get": {"summary": "Waivers, newest first", "security": admin,
                    "parameters": [*PAGE, {"name": "machine", "in": "query",
                                           "schema": {"type": "string"}},
                                   {"name": "rule", "in": "query", "schema": {"type": "string"}},
                                   {"name": "state", "in": "query", "schema": {
                                       "enum": ["active", "expired", "revoked", "all"]}}],
                    "responses": {"200": _ok({"type": "object", "properties": {
                        "total": {"type": "integer"},
                        "items": {"type": "array", "items": _ref("Waiver")}}}),
                        "401": unauth}},
            "post": {"summary": "Exempt a machine from a machine rule until expires_at "
                                "(applied at once)", "security": admin,
                     "requestBody": _body({"type": "object", "required": [
                         "machine_id", "rule", "reason", "author", "expires_at"],
                         "properties": {"machine_id": {"type": "string"},
                                        "rule": {"type": "string"},
                                        "reason": {"type": "string"},
                                        "author": {"type": "string"},
                                        "expires_at": {"type": "string",
                                                       "description": "date or date-time"}}}),
                     "responses": {"201": _ok(_ref("Waiver"), "Created"),
                                   "400": _err("Invalid field (named)"), "401": unauth,
                                   "404": _err("Unknown machine (field: machine_id)")}}},
        "/api/v1/waivers/{waiver_id}": {"delete": {
            "summary": "Revoke a waiver (the machine is re-evaluated at once)",
            "security": admin,
            "parameters": [{"name": "waiver_id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {"200": _ok(_ref("Waiver")), "401": unauth,
                          "404": _err("Unknown waiver")}}},
    }
    for path, operations in paths.items():
        document["paths"].setdefault(path, {}).update(operations)
    document["paths"].setdefault("/api/v1/units", {})["post"] = {
        "summary": "Create a unit", "security": admin,
        "requestBody": _body({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "parent": {"type": ["string", "integer", "null"]},
            "code": {"type": ["string", "null"]}}}),
        "responses": {"201": _ok(_ref("Unit"), "Created"), "400": _err("Invalid field"),
                      "401": unauth, "409": _err("Duplicate path or code")}}
    document["components"]["schemas"].update(SCHEMAS)
