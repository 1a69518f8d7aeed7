"""Store one validated report: machine current state + raw report, one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Engine, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import agents, machines, reports
from kiemke.collector.extension import OnReport
from kiemke.collector.timeutil import parse_iso, utcnow


@dataclass(frozen=True)
class AgentCredential:
    id: str
    machine_id: str
    unit_id: int
    secret_hash: str
    revoked: bool


# Built once: constructing the statement cost more than running it (every report
# authenticates). No cache of credentials: a revocation takes effect on the next report.
_AGENT = select(agents.c.id, agents.c.machine_id, agents.c.unit_id, agents.c.secret_hash,
                agents.c.revoked_at).where(agents.c.id == bindparam("agent_id"))


def load_agent(engine: Engine, agent_id: str) -> AgentCredential | None:
    with engine.connect() as conn:
        row = conn.execute(_AGENT, {"agent_id": agent_id}).first()
    if row is None:
        return None
    return AgentCredential(row.id, row.machine_id, row.unit_id, row.secret_hash,
                           row.revoked_at is not None)


class IngestStatements:
    """The hot-path statements, built once per engine: SQLAlchemy then reuses the compiled
    form from its cache instead of rebuilding and hashing the statement on every report."""

    def __init__(self, dialect: str) -> None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.report = (insert(reports).on_conflict_do_nothing(index_elements=["report_id"])
                       .returning(reports.c.report_id))
        upsert = insert(machines)
        newer = upsert.excluded.last_collected_at >= machines.c.last_collected_at
        current = {col: case((newer, getattr(upsert.excluded, col)), else_=machines.c[col])
                   for col in ("hostname", "platform", "agent_version", "last_report_id",
                               "last_collected_at", "report")}
        self.machine = upsert.on_conflict_do_update(
            index_elements=["machine_id"],
            set_={"agent_id": upsert.excluded.agent_id, "unit_id": upsert.excluded.unit_id,
                  "last_seen": upsert.excluded.last_seen, **current},
        ).returning(machines.c.first_seen, machines.c.last_report_id, machines.c.facts)
        self.agent_seen = (update(agents).where(agents.c.id == bindparam("agent_id"))
                           .values(last_seen=bindparam("seen")))


@cache
def _statements(dialect: str) -> IngestStatements:
    return IngestStatements(dialect)  # immutable statement objects: safe to share


def statements(engine: Engine) -> IngestStatements:
    return _statements(engine.dialect.name)


def store_report(engine: Engine, agent: AgentCredential, report: dict[str, Any],
                 on_report: OnReport, now: datetime | None = None) -> bool:
    """Return True when stored, False when report_id was already stored (a replay).

    A late report (collected before the stored current state) is kept in `reports`
    but does not overwrite the machine's current state.
    """
    now = now or utcnow()
    stmts = statements(engine)
    identity = report["identity"]
    collected_at = parse_iso(report["collected_at"])
    with write_transaction(engine) as conn:
        stored = conn.execute(stmts.report, {
            "report_id": report["report_id"], "machine_id": identity["machine_id"],
            "agent_id": agent.id, "kind": report["kind"], "collected_at": collected_at,
            "received_at": now, "body": report})
        # RETURNING, not rowcount: psycopg 3 reports -1 for INSERT ... ON CONFLICT here.
        if stored.first() is None:
            return False
        values = {
            "machine_id": identity["machine_id"], "agent_id": agent.id, "unit_id": agent.unit_id,
            "hostname": identity["hostname"], "platform": identity.get("platform"),
            "agent_version": identity.get("agent_version"), "first_seen": now, "last_seen": now,
            "last_report_id": report["report_id"], "last_collected_at": collected_at,
            "report": report,
        }
        row = conn.execute(stmts.machine, values).one()
        conn.execute(stmts.agent_seen, {"agent_id": agent.id, "seen": now})
        # The upsert leaves `facts` alone, so RETURNING gives the facts stored before this
        # report: the compliance hook compares with them without reading them again.
        machine_row = {**values, "first_seen": row.first_seen,
                       "current": row.last_report_id == report["report_id"],
                       "stored_facts": row.facts}
        on_report(conn, machine_row, report)
    return True
