"""GET /api/v1/period-reports and GET /api/v1/rankings (any API token).

A read-only token sees its subtree only: a unit (a ranking's parent) outside it is 403
`outside_scope`; a ranking lists the parent's children, so nothing outside leaks. Bad
parameters answer 400 (404 for an unknown unit or a period without history) with
{"error", "field", "message"}; the field is the query parameter to fix.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import Connection

from kiemke.collector.accounts import auth
from kiemke.collector.accounts.roles import READ
from kiemke.collector.api.errors import ApiError
from kiemke.collector.reports.service import (
    Output,
    ParameterError,
    ranking_output,
    report_output,
)
from kiemke.collector.timeutil import utcnow
from kiemke.collector.units import UnitError, find_unit

bp = Blueprint("period_reports", __name__)
KNOWN = {"period-reports": {"unit", "period", "format", "lang"},
         "rankings": {"parent", "period", "format", "lang"}}


def _check_args(endpoint: str) -> None:
    unknown = sorted(set(request.args) - KNOWN[endpoint])
    if unknown:
        raise ApiError(400, "invalid_parameter", unknown[0],
                       f"unknown query parameter {unknown[0]!r}; this endpoint takes "
                       f"{', '.join(sorted(KNOWN[endpoint]))}")


def _respond(make: Any) -> Response:
    try:
        out: Output = make()
    except ParameterError as exc:
        code = {404: "not_found"}.get(exc.status, "invalid_parameter")
        raise ApiError(exc.status, code, exc.field, str(exc)) from None
    resp = Response(out.body, content_type=out.content_type)
    disposition = "inline" if out.content_type.startswith(("application/json", "text/html")) \
        else "attachment"
    resp.headers["Content-Disposition"] = f'{disposition}; filename="{out.filename}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _check_scope(conn: Connection, ref: str, field: str) -> None:
    """403 outside_scope for a unit the caller may not see; an unknown or missing unit is
    left to the service, which names it (400/404)."""
    if not (ref or "").strip():
        return
    try:
        unit = find_unit(conn, ref)
    except UnitError:
        return
    auth.check_unit(conn, unit.id, field)


def _state() -> tuple[Any, Any]:
    ext = current_app.extensions["kiemke"]
    return ext, ext.reports


@bp.get("/api/v1/period-reports")
@auth.require(READ)
def period_report() -> Response:
    _check_args("period-reports")
    ext, state = _state()
    args = request.args

    def make() -> Output:
        with ext.engine.connect() as conn:
            _check_scope(conn, args.get("unit", ""), "unit")
            return report_output(conn, args.get("unit", ""), args.get("period", ""),
                                 args.get("format", "json"), args.get("lang", "vi"),
                                 now=utcnow(), timezone=ext.config.timezone,
                                 place=state.settings.place)

    return _respond(make)


@bp.get("/api/v1/rankings")
@auth.require(READ)
def ranking() -> Response:
    _check_args("rankings")
    ext, state = _state()
    args = request.args

    def make() -> Output:
        with ext.engine.connect() as conn:
            _check_scope(conn, args.get("parent", ""), "parent")
            return ranking_output(conn, args.get("parent", ""), args.get("period", ""),
                                  args.get("format", "json"), args.get("lang", "vi"),
                                  now=utcnow(), timezone=ext.config.timezone,
                                  config=state.ranking_config, place=state.settings.place)

    return _respond(make)
