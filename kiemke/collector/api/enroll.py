"""POST /api/v1/enroll: an enrolment token buys an agent credential bound to a unit."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from kiemke.collector.api.errors import ApiError
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.enrollment import EnrollmentError, enroll

bp = Blueprint("enroll", __name__)

MACHINE_ID = re.compile(r"^[0-9a-f]{32}$")


def json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type",
                       "send the body as JSON with 'Content-Type: application/json'")
    # Not silent: the bounded loader's 400 names the field (kiemke/collector/api/inputs.py).
    data = request.get_json()
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_field", "body", "the body must be a JSON object")
    return data


def _string(data: dict[str, Any], name: str, max_len: int) -> str:
    value = data.get(name)
    if value is None:
        raise ApiError(400, "missing_field", name, f"the field {name!r} is required")
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_field", name, f"{name!r} must be a non-empty string")
    if len(value) > max_len:
        raise ApiError(400, "invalid_field", name, f"{name!r} is longer than {max_len} characters")
    return value


@bp.post("/api/v1/enroll")
def post_enroll():
    data = json_body()
    token = _string(data, "token", 256)
    machine_id = _string(data, "machine_id", 32)
    if not MACHINE_ID.match(machine_id):
        raise ApiError(400, "invalid_field", "machine_id",
                       "'machine_id' must be 32 lowercase hexadecimal digits")
    hostname = _string(data, "hostname", 255)
    ext = current_app.extensions["kiemke"]
    try:
        with write_transaction(ext.engine) as conn:
            result = enroll(conn, token.strip(), machine_id, hostname)
    except EnrollmentError as exc:
        raise ApiError(exc.status, exc.code, "token", exc.message) from None
    resp = jsonify({"agent_id": result.agent_id, "secret": result.secret, "unit": result.unit})
    resp.status_code = 201
    return resp
