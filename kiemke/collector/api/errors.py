"""JSON errors: {"error": code, "field": json path or header, "message": plain words}."""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    def __init__(self, status: int, error: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.field, self.message = status, error, field, message


def error_response(status: int, error: str, field: str | None, message: str):
    resp = jsonify({"error": error, "field": field, "message": message})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="kiemke"'
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.error, exc.field, exc.message)

    @app.errorhandler(413)
    def _too_large(_exc: HTTPException):
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return error_response(413, "body_too_large", "body",
                              f"the request body is larger than the collector accepts "
                              f"({limit} bytes); raise KIEMKE_MAX_BODY_BYTES on the collector "
                              f"if such reports are expected")

    @app.errorhandler(404)
    def _not_found(_exc: HTTPException):
        return error_response(404, "not_found", "path",
                              "no such endpoint or object; see /api/v1/openapi.json")

    @app.errorhandler(405)
    def _not_allowed(exc: HTTPException):
        resp = error_response(405, "method_not_allowed", "method",
                              "this endpoint does not accept that HTTP method")
        for key, value in (exc.get_headers() or []):
            if key.lower() == "allow":
                resp.headers["Allow"] = value
        return resp

    @app.errorhandler(500)
    def _internal(_exc: Exception):
        return error_response(500, "internal_error", None,
                              "the collector failed to handle this request; its log says why")
