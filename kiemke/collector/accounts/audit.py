"""The audit log: every write records who did it, when, and what changed.

`record` runs inside the caller's write transaction, so an entry exists exactly when
the change was committed. Entries carry the unit the change belongs to, so a unit
manager sees the changes of their own subtree (entries without a unit, such as a new
API token over everything, are shown to unscoped admins only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from kiemke.collector.accounts.roles import Principal, Scope
from kiemke.collector.db.account_tables import audit_log
from kiemke.collector.timeutil import iso_z, utcnow


def record(conn: Connection, actor: Principal, action: str, target: str, *,
           unit_id: int | None = None, details: dict[str, Any] | None = None,
           now: datetime | None = None) -> int:
    return int(conn.execute(audit_log.insert().values(
        at=now or utcnow(), actor_kind=actor.kind, actor=actor.label, action=action,
        target=target[:255], unit_id=unit_id, details=details or {})
        .returning(audit_log.c.id)).scalar_one())


def entry_dict(row: Any) -> dict[str, Any]:
    return {"id": row.id, "at": iso_z(row.at), "actor_kind": row.actor_kind,
            "actor": row.actor, "action": row.action, "target": row.target,
            "unit_id": row.unit_id, "details": row.details or {}}


def list_entries(conn: Connection, scope: Scope, *, action: str | None = None,
                 actor: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, limit: int = 100, offset: int = 0
                 ) -> tuple[list[dict[str, Any]], int]:
    """(page of entries newest first, total matching) visible in `scope`."""
    conds: list[ColumnElement[bool]] = []
    if not scope.everything:
        conds.append(audit_log.c.unit_id.in_(sorted(scope.ids or ())))
    if action:
        # "waiver" matches every waiver.* action; "waiver.add" only that one.
        conds.append(audit_log.c.action.startswith(action) if "." not in action
                     else audit_log.c.action == action)
    if actor:
        conds.append(audit_log.c.actor == actor)
    if since:
        conds.append(audit_log.c.at >= since)
    if until:
        conds.append(audit_log.c.at < until)
    total = conn.execute(select(func.count()).select_from(audit_log).where(*conds)).scalar_one()
    rows = conn.execute(select(audit_log).where(*conds)
                        .order_by(audit_log.c.id.desc()).limit(limit).offset(offset))
    return [entry_dict(r) for r in rows], int(total)
