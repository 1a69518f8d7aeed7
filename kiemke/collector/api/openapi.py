"""GET /api/v1/openapi.json: the OpenAPI 3.1 description of every endpoint."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from kiemke import __version__
from kiemke.collector.accounts.api import openapi_extend as audit_openapi
from kiemke.collector.api.openapi_complete import complete
from kiemke.collector.assets.openapi import paths as asset_paths
from kiemke.collector.evaluation import openapi as evaluation_openapi
from kiemke.collector.reports import openapi as reports_openapi
from kiemke.schema import load_schema

bp = Blueprint("openapi", __name__)


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


UNAUTH = _error("Missing, wrong or revoked credential (field: Authorization)")


def build_document() -> dict[str, Any]:
    admin: list[dict[str, list[str]]] = [{"adminToken": []}]
    machine_summary = {"$ref": "#/components/schemas/MachineSummary"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "kiemke collector API", "version": __version__,
                 "description": "Agents enrol and send reports; administrators read units "
                                "and machines. Every error body is an Error object naming "
                                "the field at fault. Timestamps are UTC ISO 8601 with Z."},
        "servers": [{"url": "/"}],
        "paths": {
            "/api/v1/enroll": {"post": {
                "summary": "Exchange an enrolment token for an agent credential",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/EnrollRequest"}}}},
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/EnrollResponse"},
                                 "Enrolled; the secret is shown only this once"),
                    "400": _error("Malformed JSON or a missing/invalid field"),
                    "401": _error("Unknown enrolment token (field: token)"),
                    "403": _error("Token revoked, expired or used up (field: token)"),
                    "415": _error("Body is not application/json"),
                }}},
            "/api/v1/reports": {"post": {
                "summary": "Send one report (optionally Content-Encoding: gzip)",
                "security": [{"agentCredential": []}],
                "parameters": [{"name": "Content-Encoding", "in": "header", "required": False,
                                "schema": {"enum": ["gzip", "identity"]}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Report"}}}},
                "responses": {
                    "202": _json({"$ref": "#/components/schemas/IngestResult"}, "Stored"),
                    "200": _json({"$ref": "#/components/schemas/IngestResult"},
                                 "Already stored (same report_id): nothing changed"),
                    "400": _error("Malformed JSON or gzip, or a schema violation (field: "
                                  "JSON path such as hardware.memory_bytes)"),
                    "401": UNAUTH,
                    "403": _error("identity.machine_id is not the enrolled machine"),
                    "409": _error("An unchanged report whose facts_digest the collector does "
                                  "not hold (facts_digest_unknown): nothing was stored; the "
                                  "agent sends the same report in full"),
                    "413": _error("Body larger than KIEMKE_MAX_BODY_BYTES, compressed or not"),
                    "415": _error("Not application/json, or an unsupported Content-Encoding"),
                }}},
            "/api/v1/units": {"get": {
                "summary": "The unit tree", "security": admin,
                "responses": {"200": _json({"type": "object", "properties": {"items": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Unit"}}}},
                    "All units, ordered by path"), "401": UNAUTH}}},
            "/api/v1/machines": {"get": {
                "summary": "Machines, keyset-paginated by machine_id", "security": admin,
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                "maximum": 1000, "default": 100}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"},
                     "description": "next_cursor of the previous page"},
                    {"name": "unit", "in": "query", "schema": {"type": "string"},
                     "description": "unit id, code or path; includes its descendants"},
                    {"name": "hostname", "in": "query", "schema": {"type": "string"},
                     "description": "case-insensitive hostname prefix"}],
                "responses": {
                    "200": _json({"type": "object", "properties": {
                        "items": {"type": "array", "items": machine_summary},
                        "next_cursor": {"type": ["string", "null"]}}}, "One page"),
                    "400": _error("Invalid parameter (field: limit or unit)"),
                    "401": UNAUTH}}},
            "/api/v1/machines/{machine_id}": {"get": {
                "summary": "One machine with its current report", "security": admin,
                "parameters": [{"name": "machine_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {
                    "200": _json({"allOf": [machine_summary, {"type": "object", "properties": {
                        "report": {"$ref": "#/components/schemas/Report"},
                        "facts": {"type": ["object", "null"]}}}]}, "The machine"),
                    "401": UNAUTH, "404": _error("No such machine (field: machine_id)")}}},
            **asset_paths(),  # kiemke/collector/assets/openapi.py
            "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": {"description": "OpenAPI 3.1 document"}}}},
            "/healthz": {"get": {"summary": "The process is up (does not touch the database)",
                                 "responses": {"200": {"description": "up"}}}},
            "/readyz": {"get": {"summary": "The database answers and is migrated", "responses": {
                "200": {"description": "ready"},
                "503": _error("Database unreachable or not migrated")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
        "components": {
            "securitySchemes": {
                "agentCredential": {"type": "http", "scheme": "bearer",
                                    "description": "<agent_id>.<secret> from /api/v1/enroll"},
                "adminToken": {"type": "http", "scheme": "bearer",
                               "description": "from `kiemke-collector admin-tokens create`"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error", "field", "message"],
                          "properties": {
                              "error": {"type": "string", "description": "machine-readable code"},
                              "field": {"type": ["string", "null"],
                                        "description": "JSON path of the field or header at "
                                                       "fault, e.g. hardware.memory_bytes"},
                              "message": {"type": "string",
                                          "description": "what is wrong and what to do"}}},
                "EnrollRequest": {"type": "object", "required": ["token", "machine_id", "hostname"],
                                  "properties": {
                                      "token": {"type": "string"},
                                      "machine_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                                      "hostname": {"type": "string", "maxLength": 255}}},
                "EnrollResponse": {"type": "object", "required": ["agent_id", "secret", "unit"],
                                   "properties": {
                                       "agent_id": {"type": "string"},
                                       "secret": {"type": "string"},
                                       "unit": {"type": "object", "properties": {
                                           "id": {"type": "integer"}, "name": {"type": "string"},
                                           "path": {"type": "string"}}}}},
                "IngestResult": {"type": "object", "properties": {
                    "status": {"enum": ["accepted", "duplicate"]},
                    "report_id": {"type": "string"}}},
                "Unit": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "parent_id": {"type": ["integer", "null"]},
                    "name": {"type": "string"}, "code": {"type": ["string", "null"]},
                    "path": {"type": "string"}, "level": {"type": "integer"}}},
                "MachineSummary": {"type": "object", "properties": {
                    "machine_id": {"type": "string"}, "hostname": {"type": "string"},
                    "unit": {"type": "object", "properties": {"id": {"type": "integer"},
                                                              "path": {"type": "string"}}},
                    "platform": {"type": ["string", "null"]},
                    "agent_version": {"type": ["string", "null"]},
                    "agent_id": {"type": ["string", "null"]},
                    "first_seen": {"type": "string", "format": "date-time"},
                    "last_seen": {"type": "string", "format": "date-time"},
                    "last_collected_at": {"type": ["string", "null"], "format": "date-time"},
                    "last_report_id": {"type": ["string", "null"]},
                    "status": {"enum": ["active", "stale"]}}},
                # Inlined from kiemke/schema/report-v1.json by openapi_complete.
                "Report": {"description": load_schema()["description"]},
            },
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi_json():
    document = build_document()
    evaluation_openapi.extend(document)  # compliance, units, waivers
    audit_openapi(document)  # GET /api/v1/audit (kiemke/collector/accounts/api.py)
    reports_openapi.extend(document)  # period reports, rankings
    complete(document)  # the report schema inlined; answers every route can give
    return jsonify(document)
