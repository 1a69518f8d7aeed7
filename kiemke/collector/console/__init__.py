"""The web console at `/`: server-rendered pages for the people who act on the figures.

Flask blueprint + Jinja templates (templates/), one stylesheet (static/), SVG charts
drawn on the server (charts.py), no script and nothing from the Internet. People log in
(kiemke.collector.accounts); every page shows only the viewer's unit subtree.
docs/console.md describes the pages, with screenshots.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, Response, render_template
from markupsafe import Markup

from kiemke.collector.console import (  # noqa: F401 - the view modules add their routes
    i18n,
    views_auth,
    views_manage,
    views_pages,
    views_reports,
    web_auth,
)
from kiemke.collector.console.blueprint import bp


def _filters(app: Flask) -> None:
    tz = ZoneInfo(app.extensions["kiemke"].config.timezone)

    def localtime(value: dt.datetime | None, with_time: bool = True) -> str:
        if value is None:
            return "-"
        local = value.astimezone(tz)
        if i18n.current_lang() == "vi":
            return local.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")
        return local.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")

    def localdate(value: dt.date | None) -> str:
        if value is None:
            return "-"
        return value.strftime("%d/%m/%Y" if i18n.current_lang() == "vi" else "%Y-%m-%d")

    def pct(value: float | None) -> str:
        if value is None:
            return "-"
        text = f"{value * 100:.1f}".rstrip("0").rstrip(".")
        return (text.replace(".", ",") if i18n.current_lang() == "vi" else text) + "%"

    def num(value: int | float | None) -> str:
        if value is None:
            return "-"
        text = f"{value:,.0f}"
        return text.replace(",", ".") if i18n.current_lang() == "vi" else text

    app.jinja_env.filters.update(localtime=localtime, localdate=localdate, pct=pct, num=num)
    app.jinja_env.globals.update(
        _=i18n.gettext, pick=i18n.pick, lang=i18n.current_lang, csrf_token=web_auth.csrf_token,
        session=web_auth.current_session, timezone=app.extensions["kiemke"].config.timezone,
        svg=Markup)


def _headers(resp: Response) -> Response:
    if resp.mimetype == "text/html":
        # No inline script or style anywhere: the policy forbids them outright.
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    return resp


def init_app(app: Flask) -> None:
    _filters(app)
    app.register_blueprint(bp)


def _error_page(status: int) -> Any:
    def handler(_exc: Exception) -> tuple[str, int]:
        return render_template("error.html", status=status), status

    return handler


# Set up once, at import: a blueprint cannot change after its first registration, and
# every app (tests create many) registers the same one.
bp.before_request(web_auth.load_current_session)
bp.before_request(views_auth.check_csrf)
bp.after_request(_headers)
for _status in (400, 403, 404):
    bp.register_error_handler(_status, _error_page(_status))
