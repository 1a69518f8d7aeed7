"""Who is calling the API, what they may do, and which units they may see.

`@require(permission)` authenticates the bearer token (an admin token or a read-only
token scoped to a subtree), refuses what its role may not do (403 `forbidden`) and
leaves the principal in `flask.g`. Views then call `scope()` and `check_unit()` so a
token of district A never sees district B: asking for B is 403 `outside_scope`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g
from sqlalchemy import Connection

from kiemke.collector.accounts.roles import Principal, Scope, scope_of
from kiemke.collector.accounts.tokens import token_principal
from kiemke.collector.api.auth import bearer_token
from kiemke.collector.api.errors import ApiError
from kiemke.collector.units import Unit, all_units


def authenticate_token() -> Principal:
    token = bearer_token()
    with current_app.extensions["kiemke"].engine.connect() as conn:
        principal = token_principal(conn, token)
    if principal is None:
        raise ApiError(401, "invalid_credentials", "Authorization",
                       "this API token is not valid or was revoked; create one with "
                       "`kiemke-collector admin-tokens create NAME` (everything) or "
                       "`kiemke-collector read-tokens create NAME --unit UNIT` (read only)")
    return principal


def require(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate_token()
            if not principal.can(permission):
                raise ApiError(403, "forbidden", "Authorization",
                               f"this {principal.role} token may not do this; it needs a "
                               f"token or user allowed to change {permission}")
            g.principal = principal
            return view(*args, **kwargs)

        return wrapper

    return decorate


def principal() -> Principal:
    return g.principal  # type: ignore[no-any-return]


def scope(conn: Connection, units_: list[Unit] | None = None) -> Scope:
    """The calling principal's scope (computed once per request)."""
    cached = getattr(g, "kiemke_scope", None)
    if cached is None:
        cached = g.kiemke_scope = scope_of(principal(), units_ if units_ is not None
                                           else all_units(conn))
    return cached  # type: ignore[no-any-return]


def check_unit(conn: Connection, unit_id: int | None, field: str = "unit") -> None:
    """403 outside_scope unless the unit is in the caller's subtree."""
    if not scope(conn).contains(unit_id):
        raise ApiError(403, "outside_scope", field,
                       "this unit is outside what your token may see; ask for a token "
                       "scoped to it or to a unit above it")


def scoped_unit(conn: Connection, unit: Unit | None, units_: list[Unit] | None = None,
                field: str = "unit") -> Unit | None:
    """The unit a request names, checked against the caller's scope (403 outside it);
    when it names none, the scope's own unit (None: everything, for an unscoped caller)."""
    s = scope(conn, units_)
    if unit is None:
        return s.root
    if not s.contains(unit.id):
        check_unit(conn, unit.id, field)
    return unit


def scope_ids(conn: Connection) -> list[int] | None:
    """The unit ids the caller may see, for `unit_id IN (...)`; None: no restriction."""
    s = scope(conn)
    return None if s.ids is None else sorted(s.ids)
