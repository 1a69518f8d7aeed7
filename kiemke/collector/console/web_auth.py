"""The console's side of logging in: the session cookie, CSRF on every form, page guards.

- Session cookie `kiemke_session`: HttpOnly, SameSite=Lax, Secure when the request came
  over TLS (directly or through the reverse proxy's X-Forwarded-Proto: https, or always
  with KIEMKE_COOKIE_SECURE=true).
- Every POST carries `csrf_token`: the session's token, or before login a double-submit
  cookie. A POST without it is refused (400) before its handler runs: nothing is written.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from kiemke.collector.accounts.roles import READ, Principal, Scope, scope_of
from kiemke.collector.accounts.sessions import Session, load_session, touch_session
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.timeutil import utcnow
from kiemke.collector.units import Unit, all_units

SESSION_COOKIE = "kiemke_session"
LOGIN_CSRF_COOKIE = "kiemke_login_csrf"


def engine() -> Any:
    return current_app.extensions["kiemke"].engine


def secure_request() -> bool:
    forced = str(current_app.config.get("KIEMKE_COOKIE_SECURE", "auto")).lower()
    if forced in ("1", "true", "yes"):
        return True
    return request.is_secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def set_cookie(resp: BaseResponse, name: str, value: str, max_age: int | None = None) -> None:
    resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Lax",
                    secure=secure_request(), path="/")


def load_current_session() -> None:
    """before_request: g.session (or None) from the cookie."""
    g.session = None
    secret = request.cookies.get(SESSION_COOKIE, "")
    if not secret:
        return
    now = utcnow()
    with engine().connect() as conn:
        session = load_session(conn, secret, now)
    if session is not None and session.needs_touch:
        with write_transaction(engine()) as conn:
            touch_session(conn, session.id_hash, now)
    g.session = session


def current_session() -> Session | None:
    return getattr(g, "session", None)


def principal() -> Principal:
    session = current_session()
    assert session is not None
    return session.user.principal()


def units_and_scope(conn: Any) -> tuple[list[Unit], Scope]:
    cached = getattr(g, "console_scope", None)
    if cached is None:
        units_ = all_units(conn)
        cached = g.console_scope = (units_, scope_of(principal(), units_))
    return cached  # type: ignore[no-any-return]


def csrf_token() -> str:
    """The token to put in a form: the session's, or the login double-submit cookie's."""
    session = current_session()
    if session is not None:
        return session.csrf_token
    token = getattr(g, "login_csrf", None) or request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token:
        token = secrets.token_urlsafe(32)
    g.login_csrf = token
    return token


def csrf_ok() -> bool:
    sent = request.form.get("csrf_token", "")
    session = current_session()
    expected = session.csrf_token if session is not None else request.cookies.get(
        LOGIN_CSRF_COOKIE, "")
    return bool(sent and expected) and hmac.compare_digest(sent, expected)


def safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //): no open redirect."""
    if not target:
        return url_for("console.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return url_for("console.home")
    return target


def page(permission: str = READ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Log in first (redirect back after), then the role must allow `permission`."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_session() is None:
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            if not principal().can(permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate
