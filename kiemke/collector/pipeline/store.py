"""store: the raw report and the machine's current state, in the write transaction."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, ClassVar

from sqlalchemy.engine import Dialect

from kiemke.collector.db.prepared import Prepared, RawTransaction
from kiemke.collector.db.tables import machines
from kiemke.collector.ingest import (
    MACHINE_COLUMNS,
    MACHINE_RETURNED,
    REPORT_COLUMNS,
    statements_for,
)
from kiemke.collector.pipeline.base import Ingest
from kiemke.collector.pipeline.ingest_lock import lock_first
from kiemke.collector.pipeline.unchanged import facts_key
from kiemke.collector.timeutil import parse_iso


class _Statements:
    """The store step's statements for one dialect, on the driver's cursor
    (kiemke.collector.db.prepared: SQLAlchemy's execute cost more than these statements).
    PostgreSQL: the three writes in one statement, one round trip; SQLite (no round
    trips): the three statements, with the report's JSON serialised once for both."""

    def __init__(self, dialect: Dialect) -> None:
        stmts = statements_for(dialect.name)
        self.one = Prepared(stmts.stored, dialect) if stmts.stored is not None else None
        self.report = Prepared(stmts.report, dialect, REPORT_COLUMNS)
        self.machine = Prepared(stmts.machine, dialect, MACHINE_COLUMNS)
        self.agent_seen = Prepared(stmts.agent_seen, dialect)
        # The JSON columns' serialiser (the same JSON type): applied once, below.
        self.to_json: Callable[[Any], Any] = self.report.processors.pop("body")
        del self.machine.processors["report"]
        if self.one is not None:
            del self.one.processors["body"]
        # The conversions SQLAlchemy applies to what the upsert returns (SQLite's text
        # dates and JSON, PostgreSQL's zone): the same values as from Connection.execute.
        self.returned: list[Callable[[Any], Any] | None] = [
            machines.c[c].type._cached_result_processor(dialect, None)  # noqa: SLF001
            for c in MACHINE_RETURNED]

    def row(self, values: tuple[Any, ...]) -> dict[str, Any]:
        return {c: (p(v) if p is not None else v)
                for c, p, v in zip(MACHINE_RETURNED, self.returned, values, strict=True)}


@cache
def _statements(dialect: Dialect) -> _Statements:
    return _Statements(dialect)


class StoreStep:
    """Insert the report (a report_id this machine already sent is a replay: the pipeline
    ends, nothing changes; another machine's report with the same id is its own report),
    upsert the machine, note when the agent was last seen.

    A late report (older than the stored current state by the agent's counter, or else
    by collection time: kiemke.collector.ingest) is kept in `reports` but does not
    overwrite the machine's current state (`machine["current"]` is False). The facts
    key of a current report with a `facts_digest` is kept for unchanged reports
    (kiemke.collector.pipeline.unchanged).
    """

    name: ClassVar[str] = "store"
    in_transaction: ClassVar[bool] = True

    def run(self, ingest: Ingest) -> None:
        conn, report, agent, now = ingest.db, ingest.report, ingest.agent, ingest.now
        dialect = conn.engine.dialect
        stmts = _statements(dialect)
        tx = RawTransaction(conn.connection.driver_connection, dialect,
                            on_lost=conn.invalidate)
        identity = report["identity"]
        collected_at = parse_iso(report["collected_at"])
        key = facts_key(report, agent, now)
        values = {
            "machine_id": identity["machine_id"], "agent_id": agent.id, "unit_id": agent.unit_id,
            "hostname": identity["hostname"], "platform": identity.get("platform"),
            "agent_version": identity.get("agent_version"), "first_seen": now, "last_seen": now,
            "last_report_id": report["report_id"], "last_collected_at": collected_at,
            "last_sequence": report.get("sequence"), "facts_digest": key,
        }
        body = stmts.to_json(report)
        if stmts.one is not None:
            # Usually the transaction's first statement (a full report): the ingest lock
            # goes first, in the same round trip, before this statement's row locks.
            returned = tx.one(stmts.one, {**values, "report_id": report["report_id"],
                                          "kind": report["kind"],
                                          "collected_at": collected_at, "received_at": now,
                                          "body": body}, first=lock_first(conn))
        elif tx.one(stmts.report, {
                "report_id": report["report_id"], "machine_id": identity["machine_id"],
                "agent_id": agent.id, "kind": report["kind"], "collected_at": collected_at,
                "received_at": now, "body": body}) is None:
            returned = None
        else:
            returned = tx.one(stmts.machine, {**values, "report": body})
            tx.run(stmts.agent_seen, {"agent_id": agent.id, "seen": now})
        # RETURNING, not rowcount: psycopg 3 reports -1 for INSERT ... ON CONFLICT here.
        if returned is None:
            ingest.stored, ingest.finished = False, True
            return
        row = stmts.row(returned)
        # The upsert leaves `facts` alone, so RETURNING gives the facts stored before this
        # report: the evaluate step compares with them without reading them again.
        ingest.machine = {**values, "report": report, "first_seen": row["first_seen"],
                          "current": row["last_report_id"] == report["report_id"],
                          "stored_facts": row["facts"]}
        ingest.stored = True
        if key is not None and ingest.machine["current"]:
            ingest.facts_digest = report["facts_digest"]
