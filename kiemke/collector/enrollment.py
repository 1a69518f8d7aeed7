"""Enrolment tokens, agent credentials and admin tokens (create, list, revoke, check)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from kiemke.collector.credentials import hash_secret, new_agent_id, new_secret
from kiemke.collector.db.engine import inserted_id
from kiemke.collector.db.tables import admin_tokens, agents, enrollment_tokens, units
from kiemke.collector.timeutil import utcnow
from kiemke.collector.units import find_unit


class EnrollmentError(Exception):
    """Enrolment refused: status is the HTTP status, message plain words for IT staff."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Enrolled:
    agent_id: str
    secret: str
    unit: dict[str, Any]


def create_enrollment_token(conn: Connection, unit_ref: str | int, *,
                            expires_in: timedelta | None = None, max_uses: int | None = None,
                            description: str | None = None) -> tuple[int, str]:
    """Return (id, token); the token is shown once and only its hash is stored."""
    unit = find_unit(conn, unit_ref)
    if max_uses is not None and max_uses < 1:
        raise ValueError("--max-uses must be 1 or more")
    token = new_secret()
    now = utcnow()
    result = conn.execute(enrollment_tokens.insert().values(
        token_hash=hash_secret(token), unit_id=unit.id, description=description,
        created_at=now, expires_at=now + expires_in if expires_in else None,
        max_uses=max_uses, use_count=0))
    return inserted_id(result), token


def list_enrollment_tokens(conn: Connection) -> list[Any]:
    query = (select(enrollment_tokens, units.c.path.label("unit_path"))
             .join(units, units.c.id == enrollment_tokens.c.unit_id)
             .order_by(enrollment_tokens.c.id))
    return list(conn.execute(query))


def revoke_enrollment_token(conn: Connection, token_id: int) -> bool:
    result = conn.execute(update(enrollment_tokens)
                          .where(enrollment_tokens.c.id == token_id,
                                 enrollment_tokens.c.revoked_at.is_(None))
                          .values(revoked_at=utcnow()))
    return result.rowcount > 0


def enroll(conn: Connection, token: str, machine_id: str, hostname: str,
           now: datetime | None = None) -> Enrolled:
    """Spend one use of `token` and issue a new credential for machine_id.

    Any earlier credential of the same machine is revoked: a re-installed agent
    enrols again and the old secret stops working.
    """
    now = now or utcnow()
    row = conn.execute(select(enrollment_tokens).where(
        enrollment_tokens.c.token_hash == hash_secret(token))).first()
    if row is None:
        raise EnrollmentError(401, "invalid_token", "this enrolment token is not known to the "
                              "collector; check it was copied completely or ask for a new one")
    if row.revoked_at is not None:
        raise EnrollmentError(403, "token_revoked", "this enrolment token has been revoked; "
                              "ask the administrator for a new one")
    if row.expires_at is not None and row.expires_at <= now:
        raise EnrollmentError(403, "token_expired", "this enrolment token expired on "
                              f"{row.expires_at:%Y-%m-%d %H:%M} UTC; ask for a new one")
    # Conditional increment: two agents racing for the last use cannot both win.
    spent = conn.execute(update(enrollment_tokens).where(
        enrollment_tokens.c.id == row.id,
        or_(enrollment_tokens.c.max_uses.is_(None),
            enrollment_tokens.c.use_count < enrollment_tokens.c.max_uses),
    ).values(use_count=enrollment_tokens.c.use_count + 1))
    if spent.rowcount == 0:
        raise EnrollmentError(403, "token_used_up", f"this enrolment token has been used "
                              f"{row.max_uses} time(s), its limit; ask for a new one")
    conn.execute(update(agents).where(and_(agents.c.machine_id == machine_id,
                                           agents.c.revoked_at.is_(None)))
                 .values(revoked_at=now))
    agent_id, secret = new_agent_id(), new_secret()
    conn.execute(agents.insert().values(
        id=agent_id, machine_id=machine_id, unit_id=row.unit_id, secret_hash=hash_secret(secret),
        token_id=row.id, hostname=hostname, enrolled_at=now))
    unit = conn.execute(select(units.c.id, units.c.name, units.c.path)
                        .where(units.c.id == row.unit_id)).one()
    return Enrolled(agent_id=agent_id, secret=secret,
                    unit={"id": unit.id, "name": unit.name, "path": unit.path})


def list_agents(conn: Connection, include_revoked: bool = True) -> list[Any]:
    query = (select(agents, units.c.path.label("unit_path"))
             .join(units, units.c.id == agents.c.unit_id).order_by(agents.c.enrolled_at))
    if not include_revoked:
        query = query.where(agents.c.revoked_at.is_(None))
    return list(conn.execute(query))


def revoke_agent(conn: Connection, agent_id: str) -> bool:
    result = conn.execute(update(agents).where(agents.c.id == agent_id,
                                               agents.c.revoked_at.is_(None))
                          .values(revoked_at=utcnow()))
    return result.rowcount > 0


def create_admin_token(conn: Connection, name: str) -> tuple[int, str]:
    name = name.strip()
    if not name:
        raise ValueError("give the admin token a name saying who or what uses it")
    token = new_secret()
    result = conn.execute(admin_tokens.insert().values(
        name=name, token_hash=hash_secret(token), created_at=utcnow()))
    return inserted_id(result), token


def list_admin_tokens(conn: Connection) -> list[Any]:
    return list(conn.execute(select(admin_tokens.c.id, admin_tokens.c.name,
                                    admin_tokens.c.created_at, admin_tokens.c.revoked_at)
                             .order_by(admin_tokens.c.id)))


def revoke_admin_token(conn: Connection, token_id: int) -> bool:
    result = conn.execute(update(admin_tokens).where(admin_tokens.c.id == token_id,
                                                     admin_tokens.c.revoked_at.is_(None))
                          .values(revoked_at=utcnow()))
    return result.rowcount > 0


def admin_token_valid(conn: Connection, token: str) -> bool:
    row = conn.execute(select(admin_tokens.c.id).where(
        admin_tokens.c.token_hash == hash_secret(token),
        admin_tokens.c.revoked_at.is_(None))).first()
    return row is not None
