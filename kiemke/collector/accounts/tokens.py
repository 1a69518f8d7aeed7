"""API tokens: admin tokens (everything, as before) and read-only tokens scoped to a unit
subtree (for Grafana and scripts). Both live in `admin_tokens` with a role and a unit.

256-bit random values stored as SHA-256 hashes (docs/design.md): not passwords.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from kiemke.collector.accounts import audit
from kiemke.collector.accounts.roles import ADMIN, VIEWER, Principal
from kiemke.collector.credentials import hash_secret, new_secret
from kiemke.collector.db.tables import admin_tokens, units
from kiemke.collector.timeutil import utcnow
from kiemke.collector.units import find_unit

TOKEN_ROLES = (ADMIN, VIEWER)


def create_api_token(conn: Connection, name: str, *, role: str = VIEWER,
                     unit: str | int | None = None, actor: Principal) -> tuple[int, str]:
    """(id, token); the token is shown once. role admin (only unscoped) or viewer."""
    name = " ".join((name or "").split())
    if not name:
        raise ValueError("give the token a name saying who or what uses it (e.g. grafana)")
    if role not in TOKEN_ROLES:
        raise ValueError("an API token is an admin token or a read-only (viewer) token")
    unit_id = find_unit(conn, unit).id if unit not in (None, "") else None  # type: ignore[arg-type]
    if role == ADMIN and unit_id is not None:
        raise ValueError("admin tokens are not scoped; make a read-only token for one unit")
    token = new_secret()
    new_id = conn.execute(admin_tokens.insert().values(
        name=name, token_hash=hash_secret(token), created_at=utcnow(), role=role,
        unit_id=unit_id).returning(admin_tokens.c.id)).scalar_one()
    audit.record(conn, actor, "token.add", f"api token {new_id} ({name})", unit_id=unit_id,
                 details={"role": role, "unit_id": unit_id})
    return int(new_id), token


def list_api_tokens(conn: Connection) -> list[Any]:
    return list(conn.execute(
        select(admin_tokens.c.id, admin_tokens.c.name, admin_tokens.c.role,
               admin_tokens.c.unit_id, units.c.path.label("unit_path"),
               admin_tokens.c.created_at, admin_tokens.c.revoked_at)
        .select_from(admin_tokens.outerjoin(units, units.c.id == admin_tokens.c.unit_id))
        .order_by(admin_tokens.c.id)))


def revoke_api_token(conn: Connection, token_id: int, *, actor: Principal) -> bool:
    row = conn.execute(select(admin_tokens.c.name, admin_tokens.c.unit_id)
                       .where(admin_tokens.c.id == token_id)).first()
    result = conn.execute(update(admin_tokens).where(admin_tokens.c.id == token_id,
                                                     admin_tokens.c.revoked_at.is_(None))
                          .values(revoked_at=utcnow()))
    if result.rowcount and row is not None:
        audit.record(conn, actor, "token.revoke", f"api token {token_id} ({row.name})",
                     unit_id=row.unit_id)
    return bool(result.rowcount)


def token_principal(conn: Connection, token: str) -> Principal | None:
    """The principal of a live API token, or None."""
    row = conn.execute(select(admin_tokens.c.id, admin_tokens.c.name, admin_tokens.c.role,
                              admin_tokens.c.unit_id).where(
        admin_tokens.c.token_hash == hash_secret(token),
        admin_tokens.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    return Principal("token", row.name, row.role or ADMIN, row.unit_id, token_id=row.id)
