"""Request parameters shared by the read and admin APIs: paging, numbers, flags, bodies.

Every bad value is an ApiError (400) naming the parameter, so a caller sees which one
to fix; the limits here are the ones the OpenAPI document states.
"""

from __future__ import annotations

from typing import Any

from flask import request

from kiemke.collector.api.errors import ApiError

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_OFFSET = 10**9


def int_param(name: str, default: int, low: int, high: int) -> int:
    """The query parameter `name` as a whole number in low..high (`default` when absent)."""
    raw = request.args.get(name, str(default)).strip()
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_parameter", name,
                       f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def limit_param() -> int:
    """`limit`: the page size, 1..MAX_LIMIT."""
    return int_param("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


def page_params() -> tuple[int, int]:
    """(`limit`, `offset`) of an offset-paginated list."""
    return limit_param(), int_param("offset", 0, 0, MAX_OFFSET)


def bool_param(name: str) -> bool | None:
    """`name` as true/false, None when absent or empty."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise ApiError(400, "invalid_parameter", name, f"{name} must be true or false")
    return raw.lower() == "true"


def json_object() -> dict[str, Any]:
    """The request body as a JSON object (admin APIs)."""
    # Not silent: the bounded loader's 400 names the field (kiemke/collector/api/inputs.py).
    body = request.get_json()
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "body",
                       "send a JSON object with 'Content-Type: application/json'")
    return body
