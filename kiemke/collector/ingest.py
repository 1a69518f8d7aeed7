"""The agent credential and the hot-path statements of ingest (built once per dialect).

The steps that use them are in kiemke.collector.pipeline (store: the report row, the
machine upsert, the agent's last_seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Engine, Select, and_, bindparam, case, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from kiemke.collector.db.prepared import Prepared, raw_transaction
from kiemke.collector.db.tables import agents, machines, reports


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


@cache
def _agent_prepared(dialect: Dialect) -> Prepared:
    return Prepared(_AGENT, dialect)


def load_agent(engine: Engine, agent_id: str) -> AgentCredential | None:
    # On the driver's cursor (kiemke.collector.db.prepared): engine.connect() alone cost
    # more than this query. Plain columns: no result conversion is needed.
    with raw_transaction(engine, write=False) as tx:
        row = tx.one(_agent_prepared(engine.dialect), {"agent_id": agent_id})
    if row is None:
        return None
    agent_id, machine_id, unit_id, secret_hash, revoked_at = row
    return AgentCredential(agent_id, machine_id, unit_id, secret_hash, revoked_at is not None)


REPORT_COLUMNS = ("report_id", "machine_id", "agent_id", "kind", "collected_at",
                  "received_at", "body")
MACHINE_COLUMNS = ("machine_id", "agent_id", "unit_id", "hostname", "platform",
                   "agent_version", "first_seen", "last_seen", "last_report_id",
                   "last_collected_at", "last_sequence", "report", "facts_digest")
# What the machine upsert returns: the facts stored BEFORE the report (the upsert leaves
# `facts` alone), whether it became the current report, when the machine was first seen.
MACHINE_RETURNED = ("first_seen", "last_report_id", "facts")


def _machine_upsert(upsert: Any) -> Any:
    """ON CONFLICT of the machine upsert (`upsert`: an INSERT INTO machines, of VALUES or
    of a SELECT), with its RETURNING."""
    new, old = upsert.excluded, machines.c
    # Which report is the machine's current state: never the machine's clock alone.
    # - a new credential (re-enrolled, reinstalled: its counter starts again) wins;
    # - the agent's report counter when both reports carry one;
    # - else collection time, unless the stored time lies after the moment the new
    #   report arrived: then the stored one came from a clock running ahead.
    newer = case(
        (new.agent_id != old.agent_id, true()),
        (and_(new.last_sequence.is_not(None), old.last_sequence.is_not(None)),
         new.last_sequence > old.last_sequence),
        else_=or_(new.last_collected_at >= old.last_collected_at,
                  old.last_collected_at > new.last_seen))
    current = {col: case((newer, getattr(new, col)), else_=old[col])
               for col in ("hostname", "platform", "agent_version", "last_report_id",
                           "last_collected_at", "last_sequence", "report",
                           "facts_digest")}
    return upsert.on_conflict_do_update(
        index_elements=["machine_id"],
        set_={"agent_id": new.agent_id, "unit_id": new.unit_id,
              "last_seen": new.last_seen, **current},
    ).returning(*(machines.c[c] for c in MACHINE_RETURNED))


def _stored_in_one(dialect: str) -> Select[Any]:
    """The store step's three writes as ONE statement (data-modifying CTEs; PostgreSQL
    runs each exactly once): the report row; the machine upsert and the agent's
    last_seen only when the report row was inserted (a replay changes nothing). The
    machine takes the report's own values from the inserted row, so the body is sent and
    serialised once. A row (MACHINE_RETURNED) when stored, none for a replay."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stored = (insert(reports)
              .values({c: bindparam(c, type_=reports.c[c].type) for c in REPORT_COLUMNS})
              .on_conflict_do_nothing(index_elements=["machine_id", "report_id"])
              .returning(*(reports.c[c] for c in REPORT_COLUMNS))
              .cte("stored_report"))
    from_report = {"machine_id": stored.c.machine_id, "agent_id": stored.c.agent_id,
                   "first_seen": stored.c.received_at, "last_seen": stored.c.received_at,
                   "last_report_id": stored.c.report_id,
                   "last_collected_at": stored.c.collected_at, "report": stored.c.body}
    source = select(*(from_report[c].label(c) if c in from_report
                      else bindparam(c, type_=machines.c[c].type).label(c)
                      for c in MACHINE_COLUMNS))
    machine = _machine_upsert(insert(machines).from_select(list(MACHINE_COLUMNS), source)
                              ).cte("machine")
    seen = (update(agents).where(agents.c.id == stored.c.agent_id)
            .values(last_seen=stored.c.received_at).returning(agents.c.id).cte("agent_seen"))
    return select(*(machine.c[c] for c in MACHINE_RETURNED)).add_cte(seen)


class IngestStatements:
    """The hot-path statements, built once per engine: SQLAlchemy then reuses the compiled
    form from its cache instead of rebuilding and hashing the statement on every report."""

    def __init__(self, dialect: str) -> None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # Report ids are the agent's: unique per machine only (migration 0007).
        self.report = (insert(reports)
                       .on_conflict_do_nothing(index_elements=["machine_id", "report_id"])
                       .returning(reports.c.report_id))
        self.machine = _machine_upsert(insert(machines))
        self.agent_seen = (update(agents).where(agents.c.id == bindparam("agent_id"))
                           .values(last_seen=bindparam("seen")))
        # PostgreSQL: one round trip for all three (pipeline/store.py).
        self.stored = _stored_in_one(dialect) if dialect == "postgresql" else None


@cache
def _statements(dialect: str) -> IngestStatements:
    return IngestStatements(dialect)  # immutable statement objects: safe to share


def statements(engine: Engine) -> IngestStatements:
    return _statements(engine.dialect.name)


def statements_for(dialect: str) -> IngestStatements:
    return _statements(dialect)
