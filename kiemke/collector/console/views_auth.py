"""Login, logout, password change and the language switch."""

from __future__ import annotations

from typing import Any

from flask import abort, g, make_response, redirect, render_template, request, url_for

from kiemke.collector.accounts import throttle
from kiemke.collector.accounts.sessions import create_session, end_session
from kiemke.collector.accounts.users import (
    LoginRefused,
    UserError,
    authenticate,
    check_password,
    set_password,
)
from kiemke.collector.console import i18n, web_auth
from kiemke.collector.console.blueprint import bp
from kiemke.collector.console.i18n import gettext as _
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.timeutil import utcnow


def check_csrf() -> None:
    """before_request: a POST without the right csrf_token is refused before its view."""
    if request.method == "POST" and not web_auth.csrf_ok():
        g.csrf_refused = True
        abort(400)


def _client() -> str:
    # The direct peer: X-Forwarded-For is only trustworthy with a known proxy in front.
    return request.remote_addr or "unknown"


def _login_page(errors: dict[str, str], name: str, status: int) -> Any:
    resp = make_response(render_template("login.html", errors=errors, name=name,
                                         next=request.values.get("next", "")), status)
    web_auth.set_cookie(resp, web_auth.LOGIN_CSRF_COOKIE, web_auth.csrf_token(), 3600)
    return resp


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if web_auth.current_session() is not None:
            return redirect(web_auth.safe_next(request.args.get("next")))
        return _login_page({}, "", 200)
    name = request.form.get("name", "")
    password = request.form.get("password", "")
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = _("Enter your login name.")
    if not password:
        errors["password"] = _("Enter your password.")
    if errors:
        return _login_page(errors, name, 400)
    now = utcnow()
    engine = web_auth.engine()
    with engine.connect() as conn:
        if throttle.blocked(conn, _client(), now):
            return _login_page({"form": _("Too many failed logins from this computer. "
                                          "Wait 15 minutes, then try again.")}, name, 429)
    refused: LoginRefused | None = None
    with write_transaction(engine) as conn:
        # A refusal is caught inside the transaction: the failure count and a lockout
        # must be committed, not rolled back with the exception.
        try:
            user = authenticate(conn, name, password, now)
            secret, _session = create_session(conn, user, now)
        except LoginRefused as exc:
            refused = exc
            throttle.note_failure(conn, _client(), now)
    if refused is not None:
        if refused.reason == "locked":
            message = _("This account is locked for 15 minutes after repeated wrong "
                        "passwords. Wait, or ask an administrator to set a new password.")
        elif refused.reason == "disabled":
            message = _("This account is disabled. Ask an administrator.")
        else:
            message = _("The name or the password is wrong.")
        return _login_page({"form": message}, name, 401)
    resp = redirect(web_auth.safe_next(request.form.get("next")))
    web_auth.set_cookie(resp, web_auth.SESSION_COOKIE, secret)
    resp.delete_cookie(web_auth.LOGIN_CSRF_COOKIE, path="/")
    return resp


@bp.post("/logout")
def logout() -> Any:
    session = web_auth.current_session()
    if session is not None:
        with write_transaction(web_auth.engine()) as conn:
            end_session(conn, session.id_hash)
    resp = redirect(url_for("console.login"))
    resp.delete_cookie(web_auth.SESSION_COOKIE, path="/")
    return resp


@bp.route("/account/password", methods=["GET", "POST"])
@web_auth.page()
def password() -> Any:
    session = web_auth.current_session()
    assert session is not None
    if request.method == "GET":
        return render_template("password.html", errors={}, done=False)
    current = request.form.get("current", "")
    new = request.form.get("new", "")
    again = request.form.get("again", "")
    errors: dict[str, str] = {}
    with web_auth.engine().connect() as conn:
        if not check_password(conn, session.user.id, current):
            errors["current"] = _("This is not your current password.")
    if new != again:
        errors["again"] = _("The two new passwords differ.")
    if not errors:
        try:
            with write_transaction(web_auth.engine()) as conn:
                set_password(conn, session.user.id, new, actor=web_auth.principal(),
                             keep_session=session.id_hash)
        except UserError as exc:
            errors["new"] = _(str(exc))
    if errors:
        return render_template("password.html", errors=errors, done=False), 400
    return render_template("password.html", errors={}, done=True)


@bp.get("/lang/<code>")
def set_lang(code: str) -> Any:
    if code not in i18n.LANGS:
        abort(404)
    resp = redirect(web_auth.safe_next(request.args.get("next")))
    resp.set_cookie(i18n.LANG_COOKIE, code, max_age=365 * 86400, samesite="Lax",
                    secure=web_auth.secure_request(), httponly=True, path="/")
    return resp


