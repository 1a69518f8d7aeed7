"""People who log in: add, list, disable, change password, authenticate with lockout.

Plain functions over a connection inside the caller's transaction, so the CLI, the
console and `kiemke-collector setup` (packaging) share them: `add_user(conn, ...)`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update

from kiemke.collector.accounts import audit
from kiemke.collector.accounts.passwords import (
    PasswordPolicyError,
    check_policy,
    hash_password,
    needs_rehash,
    verify,
)
from kiemke.collector.accounts.roles import ROLES, Principal, check_role
from kiemke.collector.db.account_tables import console_sessions, users
from kiemke.collector.db.tables import units
from kiemke.collector.timeutil import iso_z, utcnow
from kiemke.collector.units import UnitError, find_unit

LOCK_AFTER = 5  # consecutive failures
LOCK_FOR = timedelta(minutes=15)


class UserError(ValueError):
    """A refused change to a user; `field` names the input at fault."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field, self.status = field, status


@dataclass(frozen=True)
class User:
    id: int
    name: str
    display_name: str
    role: str
    unit_id: int | None
    unit_path: str | None
    disabled: bool
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime

    def principal(self) -> Principal:
        return Principal("user", self.name, self.role, self.unit_id, user_id=self.id)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "display_name": self.display_name,
                "role": self.role, "unit": {"id": self.unit_id, "path": self.unit_path}
                if self.unit_id is not None else None, "disabled": self.disabled,
                "locked_until": iso_z(self.locked_until),
                "last_login_at": iso_z(self.last_login_at),
                "created_at": iso_z(self.created_at)}


def normalise_name(name: str) -> str:
    name = unicodedata.normalize("NFC", (name or "").strip()).lower()
    if not name:
        raise UserError("name", "give the login name")
    if len(name) > 64 or any(c.isspace() for c in name):
        raise UserError("name", "a login name has no spaces and at most 64 characters "
                                "(e.g. lan.nguyen)")
    return name


_COLUMNS = (users.c.id, users.c.name, users.c.display_name, users.c.role, users.c.unit_id,
            units.c.path.label("unit_path"), users.c.disabled_at, users.c.locked_until,
            users.c.last_login_at, users.c.created_at)


def _user(row: Any) -> User:
    return User(id=row.id, name=row.name, display_name=row.display_name, role=row.role,
                unit_id=row.unit_id, unit_path=row.unit_path,
                disabled=row.disabled_at is not None, locked_until=row.locked_until,
                last_login_at=row.last_login_at, created_at=row.created_at)


def _query() -> Any:
    return select(*_COLUMNS).select_from(users.outerjoin(units, units.c.id == users.c.unit_id))


def get_user(conn: Connection, ref: str | int) -> User:
    """A user by id or login name."""
    text = str(ref).strip()
    cond = users.c.id == int(text) if text.isdigit() else users.c.name == normalise_name(text)
    row = conn.execute(_query().where(cond)).first()
    if row is None:
        raise UserError("name", f"no user {text!r}; see `kiemke-collector users list`", 404)
    return _user(row)


def list_users(conn: Connection, unit_ids: frozenset[int] | None = None) -> list[User]:
    query = _query().order_by(users.c.name)
    if unit_ids is not None:
        query = query.where(users.c.unit_id.in_(sorted(unit_ids)))
    return [_user(r) for r in conn.execute(query)]


def add_user(conn: Connection, name: str, password: str, *, role: str,
             unit: str | int | None = None, display_name: str | None = None,
             actor: Principal, now: datetime | None = None) -> User:
    """Create a user (role admin | manager | viewer, scoped to `unit`'s subtree or all)."""
    now = now or utcnow()
    name = normalise_name(name)
    try:
        role = check_role(role)
    except ValueError as exc:
        raise UserError("role", str(exc)) from None
    unit_id = None
    if unit not in (None, ""):
        try:
            unit_id = find_unit(conn, unit).id  # type: ignore[arg-type]
        except UnitError as exc:
            raise UserError("unit", str(exc)) from None
    try:
        password = check_policy(password, name=name)
    except PasswordPolicyError as exc:
        raise UserError("password", str(exc)) from None
    if conn.execute(select(users.c.id).where(users.c.name == name)).first():
        raise UserError("name", f"a user {name!r} already exists", 409)
    display = unicodedata.normalize("NFC", " ".join((display_name or name).split()))[:255]
    new_id = conn.execute(users.insert().values(
        name=name, display_name=display, password_hash=hash_password(password), role=role,
        unit_id=unit_id, created_at=now, password_changed_at=now, failed_logins=0)
        .returning(users.c.id)).scalar_one()
    audit.record(conn, actor, "user.add", f"user {name}", unit_id=unit_id, now=now,
                 details={"role": role, "unit_id": unit_id, "display_name": display})
    return get_user(conn, new_id)


def disable_user(conn: Connection, ref: str | int, *, actor: Principal,
                 now: datetime | None = None) -> User:
    """Disable a user and end their sessions (the row stays: the audit log names them)."""
    now = now or utcnow()
    user = get_user(conn, ref)
    if not user.disabled:
        conn.execute(update(users).where(users.c.id == user.id).values(disabled_at=now))
        conn.execute(delete(console_sessions).where(console_sessions.c.user_id == user.id))
        audit.record(conn, actor, "user.disable", f"user {user.name}", unit_id=user.unit_id,
                     now=now)
    return get_user(conn, user.id)


def set_password(conn: Connection, ref: str | int, password: str, *, actor: Principal,
                 now: datetime | None = None, keep_session: str | None = None) -> User:
    """Set a new password; every session of the user ends except `keep_session` (the
    id hash of the session that changed its own password). Clears a lockout."""
    now = now or utcnow()
    user = get_user(conn, ref)
    try:
        password = check_policy(password, name=user.name)
    except PasswordPolicyError as exc:
        raise UserError("password", str(exc)) from None
    conn.execute(update(users).where(users.c.id == user.id).values(
        password_hash=hash_password(password), password_changed_at=now, failed_logins=0,
        locked_until=None))
    ended = delete(console_sessions).where(console_sessions.c.user_id == user.id)
    if keep_session:
        ended = ended.where(console_sessions.c.id_hash != keep_session)
    conn.execute(ended)
    audit.record(conn, actor, "user.password", f"user {user.name}", unit_id=user.unit_id,
                 now=now)
    return get_user(conn, user.id)


def check_password(conn: Connection, user_id: int, password: str) -> bool:
    stored = conn.execute(select(users.c.password_hash).where(users.c.id == user_id)).scalar()
    return verify(stored, password)


class LoginRefused(Exception):
    """Login failed; `reason` is wrong | locked | disabled (shown as one message)."""

    def __init__(self, reason: str, locked_until: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason, self.locked_until = reason, locked_until


def authenticate(conn: Connection, name: str, password: str,
                 now: datetime | None = None) -> User:
    """The user when name and password match; else LoginRefused. In a write transaction:
    failures are counted, and LOCK_AFTER in a row lock the account for LOCK_FOR."""
    now = now or utcnow()
    try:
        name = normalise_name(name)
    except UserError:
        verify(None, password)
        raise LoginRefused("wrong") from None
    row = conn.execute(select(users).where(users.c.name == name)).first()
    if row is None:
        verify(None, password)  # same time as a real check
        raise LoginRefused("wrong")
    if row.locked_until is not None and row.locked_until > now:
        raise LoginRefused("locked", row.locked_until)
    if not verify(row.password_hash, password):
        failures = (row.failed_logins or 0) + 1
        locked = now + LOCK_FOR if failures >= LOCK_AFTER else None
        conn.execute(update(users).where(users.c.id == row.id).values(
            failed_logins=0 if locked else failures, locked_until=locked))
        if locked:
            audit.record(conn, Principal("system", "login", "admin", None), "user.lock",
                         f"user {name}", unit_id=row.unit_id, now=now,
                         details={"failures": failures, "until": iso_z(locked)})
            raise LoginRefused("locked", locked)
        raise LoginRefused("wrong")
    if row.disabled_at is not None:
        raise LoginRefused("disabled")
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    if needs_rehash(row.password_hash):
        values["password_hash"] = hash_password(password)
    conn.execute(update(users).where(users.c.id == row.id).values(**values))
    return get_user(conn, row.id)


__all__ = ["ROLES", "LoginRefused", "User", "UserError", "add_user", "authenticate",
           "check_password", "disable_user", "get_user", "list_users", "set_password"]
