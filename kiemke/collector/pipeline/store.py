"""store: the raw report and the machine's current state, in the write transaction."""

from __future__ import annotations

from typing import ClassVar

from kiemke.collector.ingest import statements
from kiemke.collector.pipeline.base import Ingest
from kiemke.collector.pipeline.unchanged import facts_key
from kiemke.collector.timeutil import parse_iso


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
        stmts = statements(conn.engine)
        identity = report["identity"]
        collected_at = parse_iso(report["collected_at"])
        stored = conn.execute(stmts.report, {
            "report_id": report["report_id"], "machine_id": identity["machine_id"],
            "agent_id": agent.id, "kind": report["kind"], "collected_at": collected_at,
            "received_at": now, "body": report})
        # RETURNING, not rowcount: psycopg 3 reports -1 for INSERT ... ON CONFLICT here.
        if stored.first() is None:
            ingest.stored, ingest.finished = False, True
            return
        key = facts_key(report, agent, now)
        values = {
            "machine_id": identity["machine_id"], "agent_id": agent.id, "unit_id": agent.unit_id,
            "hostname": identity["hostname"], "platform": identity.get("platform"),
            "agent_version": identity.get("agent_version"), "first_seen": now, "last_seen": now,
            "last_report_id": report["report_id"], "last_collected_at": collected_at,
            "last_sequence": report.get("sequence"), "report": report, "facts_digest": key,
        }
        row = conn.execute(stmts.machine, values).one()
        conn.execute(stmts.agent_seen, {"agent_id": agent.id, "seen": now})
        # The upsert leaves `facts` alone, so RETURNING gives the facts stored before this
        # report: the evaluate step compares with them without reading them again.
        ingest.machine = {**values, "first_seen": row.first_seen,
                          "current": row.last_report_id == report["report_id"],
                          "stored_facts": row.facts}
        ingest.stored = True
        if key is not None and ingest.machine["current"]:
            ingest.facts_digest = report["facts_digest"]
