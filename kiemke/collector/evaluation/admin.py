"""Administrative changes that move results: machine moves and waivers.

Shared by the CLI and the API. Each function runs inside the caller's write
transaction and re-evaluates what it affects at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select, update

from kiemke.collector.assets.store import move_machine as move_depreciation
from kiemke.collector.db.compliance_tables import waivers
from kiemke.collector.db.tables import agents, machines
from kiemke.collector.evaluation.evaluator import Evaluator
from kiemke.collector.evaluation.store import move_machine_results
from kiemke.collector.timeutil import iso_z
from kiemke.collector.units import Unit, find_unit


class AdminError(ValueError):
    """A request that cannot be done; `field` names the input at fault."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field, self.status = field, status


def machine_row(conn: Connection, machine_id: str) -> Any:
    row = conn.execute(select(machines.c.machine_id, machines.c.unit_id, machines.c.hostname)
                       .where(machines.c.machine_id == machine_id)).first()
    if row is None:
        raise AdminError("machine_id", f"no machine {machine_id!r} has reported to this "
                                       f"collector; see `kiemke-collector agents list`", 404)
    return row


def move_machine(conn: Connection, evaluator: Evaluator, machine_id: str, unit_ref: str | int,
                 now: datetime) -> Unit:
    """Put a machine in another unit; its agent follows so the next report keeps it."""
    row = machine_row(conn, machine_id)
    unit = find_unit(conn, unit_ref)
    conn.execute(update(machines).where(machines.c.machine_id == machine_id)
                 .values(unit_id=unit.id))
    conn.execute(update(agents).where(agents.c.machine_id == machine_id).values(unit_id=unit.id))
    move_machine_results(conn, machine_id, unit.id)
    # Its depreciation row follows too, or the old unit would count it until the next report.
    move_depreciation(conn, machine_id, unit.id)
    evaluator.evaluate_units(conn, {row.unit_id, unit.id}, now)
    return unit


def waiver_dict(row: Any, now: datetime) -> dict[str, Any]:
    state = ("revoked" if row.revoked_at is not None
             else "expired" if row.expires_at <= now else "active")
    return {"id": row.id, "machine_id": row.machine_id, "rule": row.rule_id,
            "reason": row.reason, "author": row.author, "created_at": iso_z(row.created_at),
            "expires_at": iso_z(row.expires_at), "revoked_at": iso_z(row.revoked_at),
            "state": state}


def add_waiver(conn: Connection, evaluator: Evaluator, *, machine_id: str, rule_id: str,
               reason: str, author: str, expires_at: datetime, now: datetime
               ) -> dict[str, Any]:
    machine_row(conn, machine_id)
    rule = evaluator.ruleset.by_id.get(rule_id)
    if rule is None or rule.kind != "machine":
        known = ", ".join(r.id for r in evaluator.ruleset.machine_rules)
        raise AdminError("rule", f"{rule_id!r} is not a machine rule of the loaded rule set; "
                                 f"waivers apply to one of: {known}")
    reason, author = " ".join((reason or "").split()), " ".join((author or "").split())
    if not reason:
        raise AdminError("reason", "give the reason for the waiver (it is shown with the "
                                   "exempt result)")
    if not author:
        raise AdminError("author", "give the name of the person who grants the waiver")
    if expires_at.tzinfo is None:
        raise AdminError("expires_at", "the expiry needs a time zone, e.g. 2027-01-31T00:00:00Z")
    if expires_at <= now:
        raise AdminError("expires_at", f"the expiry {iso_z(expires_at)} is not in the future")
    new_id = conn.execute(waivers.insert().values(
        machine_id=machine_id, rule_id=rule_id, reason=reason, author=author, created_at=now,
        expires_at=expires_at).returning(waivers.c.id)).scalar_one()
    evaluator.reevaluate_machines(conn, [machine_id], now)
    return waiver_dict(conn.execute(select(waivers).where(waivers.c.id == new_id)).one(), now)


def revoke_waiver(conn: Connection, evaluator: Evaluator, waiver_id: int, now: datetime
                  ) -> dict[str, Any]:
    row = conn.execute(select(waivers).where(waivers.c.id == waiver_id)).first()
    if row is None:
        raise AdminError("id", f"no waiver with id {waiver_id}; see `kiemke-collector waivers "
                               f"list`", 404)
    if row.revoked_at is None:
        conn.execute(update(waivers).where(waivers.c.id == waiver_id).values(revoked_at=now))
        evaluator.reevaluate_machines(conn, [row.machine_id], now)
    return waiver_dict(conn.execute(select(waivers).where(waivers.c.id == waiver_id)).one(), now)


def revoke_target(conn: Connection, waiver_id: int) -> Any:
    """The waiver with its machine's unit (for scope checks and the audit log)."""
    row = conn.execute(select(waivers.c.id, waivers.c.revoked_at, machines.c.unit_id)
                       .select_from(waivers.outerjoin(
                           machines, machines.c.machine_id == waivers.c.machine_id))
                       .where(waivers.c.id == waiver_id)).first()
    if row is None:
        raise AdminError("id", f"no waiver with id {waiver_id}; see `kiemke-collector waivers "
                               f"list`", 404)
    return row


def list_waivers(conn: Connection, now: datetime, *, machine_id: str | None = None,
                 rule_id: str | None = None, state: str | None = None, limit: int = 100,
                 offset: int = 0, unit_ids: list[int] | None = None
                 ) -> tuple[list[dict[str, Any]], int]:
    """(page of waivers newest first, total matching); `unit_ids`: only the waivers of
    machines in these units (a scoped caller's subtree)."""
    conds: list[ColumnElement[bool]] = []
    if unit_ids is not None:
        conds.append(waivers.c.machine_id.in_(
            select(machines.c.machine_id).where(machines.c.unit_id.in_(unit_ids))))
    if machine_id:
        conds.append(waivers.c.machine_id == machine_id)
    if rule_id:
        conds.append(waivers.c.rule_id == rule_id)
    if state == "active":
        conds += [waivers.c.revoked_at.is_(None), waivers.c.expires_at > now]
    elif state == "expired":
        conds += [waivers.c.revoked_at.is_(None), waivers.c.expires_at <= now]
    elif state == "revoked":
        conds.append(waivers.c.revoked_at.is_not(None))
    elif state not in (None, "", "all"):
        raise AdminError("state", "state must be active, expired, revoked or all")
    total = conn.execute(select(func.count()).select_from(waivers).where(*conds)).scalar_one()
    rows = conn.execute(select(waivers).where(*conds).order_by(waivers.c.id.desc())
                        .limit(limit).offset(offset))
    return [waiver_dict(r, now) for r in rows], total
