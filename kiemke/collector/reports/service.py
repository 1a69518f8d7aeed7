"""What the CLI, the API and delivery share: parse the parameters, build, render.

Every bad parameter raises ParameterError naming it (unit, parent, period, format,
lang); nothing is written.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from kiemke.collector.reports.figures import ReportError, build_period_report
from kiemke.collector.reports.periods import Period, PeriodError, local_day, parse_period
from kiemke.collector.reports.ranking import RankingConfig, build_ranking
from kiemke.collector.reports.render import CONTENT_TYPES, FORMATS, render_ranking, render_report


class ParameterError(ValueError):
    def __init__(self, message: str, field: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass
class Output:
    body: bytes
    content_type: str
    filename: str


def check_format(fmt: str) -> str:
    fmt = (fmt or "").strip().lower()
    if fmt not in FORMATS:
        raise ParameterError(f"format {fmt!r} is not known: use one of {', '.join(FORMATS)}",
                             "format")
    return fmt


def check_lang(lang: str) -> str:
    lang = (lang or "vi").strip().lower()
    if lang not in ("vi", "en"):
        raise ParameterError(f"lang {lang!r}: use vi or en", "lang")
    return lang


def period_of(text: str, now: datetime, timezone: str) -> Period:
    try:
        return parse_period(text, local_day(now, timezone))
    except PeriodError as exc:
        raise ParameterError(str(exc), exc.field) from None


def slug(text: str) -> str:
    """An ASCII file-name part: 'LĐLĐ huyện Yên Dũng' -> 'LDLD-huyen-Yen-Dung'."""
    text = text.replace("Đ", "D").replace("đ", "d")
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_).strip("-")[:60] or "unit"


def report_output(conn: Connection, unit: str, period: str, fmt: str, lang: str, *,
                  now: datetime, timezone: str, place: str = "") -> Output:
    fmt, lang = check_format(fmt), check_lang(lang)
    if not (unit or "").strip():
        raise ParameterError("unit is missing: give a unit id, code or path", "unit")
    p = period_of(period, now, timezone)
    try:
        report = build_period_report(conn, unit, p, lang, timezone=timezone, now=now,
                                     place=place)
    except ReportError as exc:
        raise ParameterError(str(exc), exc.field,
                             404 if exc.field in ("unit", "period") else 400) from None
    name = f"bao-cao-{slug(report.unit.name)}-{p.text.replace('..', '_')}.{fmt}"
    return Output(render_report(report, fmt), CONTENT_TYPES[fmt], name)


def ranking_output(conn: Connection, parent: str, period: str, fmt: str, lang: str, *,
                   now: datetime, timezone: str, config: RankingConfig | None = None,
                   place: str = "") -> Output:
    fmt, lang = check_format(fmt), check_lang(lang)
    if not (parent or "").strip():
        raise ParameterError("parent is missing: give a unit id, code or path", "parent")
    p = period_of(period, now, timezone)
    try:
        ranking = build_ranking(conn, parent, p, lang, timezone=timezone, now=now,
                                config=config, place=place)
    except ReportError as exc:
        raise ParameterError(str(exc), exc.field,
                             404 if exc.field in ("parent", "period") else 400) from None
    name = f"xep-hang-{slug(ranking.parent_name)}-{p.text.replace('..', '_')}.{fmt}"
    return Output(render_ranking(ranking, fmt), CONTENT_TYPES[fmt], name)
