"""Period reports and the ranking: choose a period, read the figures, download a file.

Built on kiemke.collector.reports (issue 9; docs/reports.md): the same functions as
`kiemke-collector report|ranking` and GET /api/v1/period-reports|rankings, so a
downloaded file is the one the CLI would write. The unit (the ranking's parent) must be
in the viewer's scope; a ranking lists the parent's children, so nothing outside it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, render_template, request

from kiemke.collector.console import web_auth
from kiemke.collector.console.blueprint import bp
from kiemke.collector.console.i18n import current_lang
from kiemke.collector.console.i18n import gettext as _
from kiemke.collector.reports.figures import ReportError, build_period_report
from kiemke.collector.reports.periods import PeriodError, parse_period
from kiemke.collector.reports.ranking import build_ranking
from kiemke.collector.reports.service import (
    Output,
    ParameterError,
    ranking_output,
    report_output,
)
from kiemke.collector.reports.state import ReportsState
from kiemke.collector.timeutil import utcnow

# The files a page offers; HTML and JSON stay with the API.
DOWNLOADS = ("pdf", "xlsx", "csv")


def _config() -> Any:
    return current_app.extensions["kiemke"].config


def _reports() -> ReportsState:
    return current_app.extensions["kiemke"].reports  # type: ignore[no-any-return]


def _today() -> dt.date:
    return utcnow().astimezone(ZoneInfo(_config().timezone)).date()


def _default_period() -> str:
    today = _today()
    # The last closed month: this month's report is only complete at its end.
    first = today.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year}-{first.month:02d}"


def _unit(conn: Any, unit_id: int | None) -> Any:
    units_, scope = web_auth.units_and_scope(conn)
    if unit_id is None and request.args.get("unit_id", "").isdigit():
        unit_id = int(request.args["unit_id"])  # the unit chooser of the period form
    if unit_id is None:
        if scope.root is not None:
            return scope.root
        roots = [u for u in units_ if u.parent_id is None]
        return roots[0] if roots else None
    unit = next((u for u in units_ if u.id == unit_id), None)
    if unit is None:
        abort(404)
    if not scope.contains(unit.id):
        abort(403)
    return unit


def _choices(conn: Any) -> list[Any]:
    units_, scope = web_auth.units_and_scope(conn)
    return [u for u in units_ if scope.contains(u.id)]


def _download(out: Output) -> Response:
    # The bytes and file name of `kiemke-collector report|ranking` (the shared service).
    resp = Response(out.body, content_type=out.content_type)
    resp.headers["Content-Disposition"] = f'attachment; filename="{out.filename}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _field(exc: ReportError | PeriodError | ParameterError) -> str:
    return "period" if exc.field == "period" else "unit"


@bp.get("/reports")
@bp.get("/units/<int:unit_id>/reports")
@web_auth.page()
def reports_page(unit_id: int | None = None) -> Any:
    period_text = request.args.get("period", "").strip() or _default_period()
    fmt = request.args.get("format", "")
    errors: dict[str, str] = {}
    report = None
    state = _reports()
    with web_auth.engine().connect() as conn:
        unit = _unit(conn, unit_id)
        choices = _choices(conn)
        if unit is not None and fmt in DOWNLOADS:
            try:
                return _download(report_output(
                    conn, str(unit.id), period_text, fmt, current_lang(), now=utcnow(),
                    timezone=_config().timezone, place=state.settings.place))
            except ParameterError as exc:
                errors[_field(exc)] = str(exc)
        elif unit is not None:
            try:
                period = parse_period(period_text, today=_today())
                report = build_period_report(conn, unit.id, period, current_lang(),
                                             timezone=_config().timezone, now=utcnow(),
                                             place=state.settings.place)
            except (PeriodError, ReportError) as exc:
                errors[_field(exc)] = str(exc)
    return render_template("reports.html", unit=unit, choices=choices, period=period_text,
                           report=report, errors=errors,
                           formats=DOWNLOADS), 400 if errors else 200


@bp.get("/ranking")
@bp.get("/units/<int:unit_id>/ranking")
@web_auth.page()
def ranking_page(unit_id: int | None = None) -> Any:
    period_text = request.args.get("period", "").strip() or str(_today().year - 1)
    fmt = request.args.get("format", "")
    errors: dict[str, str] = {}
    ranking = None
    state = _reports()
    with web_auth.engine().connect() as conn:
        unit = _unit(conn, unit_id)
        choices = _choices(conn)
        if unit is not None and fmt in DOWNLOADS:
            try:
                return _download(ranking_output(
                    conn, str(unit.id), period_text, fmt, current_lang(), now=utcnow(),
                    timezone=_config().timezone, config=state.ranking_config,
                    place=state.settings.place))
            except ParameterError as exc:
                errors[_field(exc)] = str(exc)
        elif unit is not None:
            try:
                period = parse_period(period_text, today=_today())
                ranking = build_ranking(conn, unit.id, period, current_lang(),
                                        timezone=_config().timezone, now=utcnow(),
                                        config=state.ranking_config,
                                        place=state.settings.place)
            except (PeriodError, ReportError) as exc:
                errors[_field(exc)] = str(exc)
    return render_template("ranking.html", unit=unit, choices=choices, period=period_text,
                           ranking=ranking, errors=errors, formats=DOWNLOADS,
                           title=_("Ranking")), 400 if errors else 200
