"""unchanged: a report that says its sections are those the collector already holds.

The agent sends `unchanged: true` with the `facts_digest` the collector acknowledged
(docs/report-format.md, "Unchanged reports"). `machines.facts_digest` holds the facts
key of the machine's current report: the digest plus a hash of everything else its
facts were built from (agent, unit, day, report kind and age, clock offset minute:
kiemke.compliance.facts.envelope_facts). Three cases:

- same key: nothing the rules read changed. The report row (the small body as sent) and
  the machine's last_seen / last report are written; assets and evaluation are skipped
  (the pipeline ends here).
- same digest, other envelope (a new day, another kind, another clock offset minute,
  re-enrolled): the stored report's sections are put under this envelope and the report
  goes through store -> assets -> evaluate like a full one.
- another or no digest (database restored, facts changed meanwhile): 409
  `facts_digest_unknown`, nothing written; the agent sends the same report in full.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import bindparam, select, update

from kiemke.collector.db.tables import machines
from kiemke.collector.ingest import AgentCredential, statements
from kiemke.collector.pipeline.base import Ingest, Rejected
from kiemke.collector.timeutil import parse_iso
from kiemke.compliance.facts import envelope_facts
from kiemke.schema.digest import NOT_SECTIONS


def facts_key(report: dict[str, Any], agent: AgentCredential, now: datetime) -> str | None:
    """`<facts_digest>:<hash of the rest>` for a report that carries a digest, else None."""
    digest = report.get("facts_digest")
    if not isinstance(digest, str):
        return None
    env = envelope_facts(report, now)
    rest = json.dumps([agent.id, agent.unit_id, env["now"].isoformat(), env.get("report.kind"),
                       env.get("report.age_days"), env.get("agent.clock_offset_seconds")])
    return f"{digest}:{hashlib.blake2b(rest.encode(), digest_size=16).hexdigest()}"


class _Statements:
    def __init__(self) -> None:
        # FOR UPDATE (PostgreSQL; SQLite holds the write lock already): the row cannot
        # change between this read and the update below.
        self.current = (select(machines.c.facts_digest, machines.c.last_sequence,
                               machines.c.last_collected_at)
                        .where(machines.c.machine_id == bindparam("m")).with_for_update())
        self.stored_report = select(machines.c.report).where(
            machines.c.machine_id == bindparam("m"))
        self.seen = (update(machines).where(machines.c.machine_id == bindparam("m"))
                     .values(last_seen=bindparam("now")))
        self.seen_current = (update(machines).where(machines.c.machine_id == bindparam("m"))
                             .values(last_seen=bindparam("now"),
                                     last_report_id=bindparam("report_id"),
                                     last_collected_at=bindparam("collected_at"),
                                     last_sequence=bindparam("sequence")))


@cache
def _statements() -> _Statements:
    return _Statements()


def is_newer(sequence: int | None, collected: datetime, now: datetime,
             old_sequence: int | None, old_collected: datetime | None) -> bool:
    """The rule of the machine upsert (kiemke.collector.ingest) for the same credential:
    the agent's counter when both carry one, else collection time unless the stored
    time lies after now (a clock that ran ahead)."""
    if sequence is not None and old_sequence is not None:
        return sequence > old_sequence
    return old_collected is None or collected >= old_collected or old_collected > now


class UnchangedStep:
    """First in the transaction: ends the pipeline for an unchanged report, or hands the
    rebuilt report to `store`. A report without `unchanged` passes untouched."""

    name: ClassVar[str] = "unchanged"
    in_transaction: ClassVar[bool] = True

    def run(self, ingest: Ingest) -> None:
        report = ingest.report
        if not report.get("unchanged"):
            return
        conn, stmts = ingest.db, _statements()
        mid = report["identity"]["machine_id"]
        row = conn.execute(stmts.current, {"m": mid}).first()
        digest = report["facts_digest"]
        if row is None or not (row.facts_digest or "").startswith(digest + ":"):
            raise Rejected(409, "facts_digest_unknown", "facts_digest",
                           "the collector does not hold this machine's facts with this "
                           "digest (its database was restored, or the facts changed "
                           "meanwhile); the agent sends the same report in full, nothing "
                           "to do")
        if row.facts_digest != facts_key(report, ingest.agent, ingest.now):
            stored = conn.execute(stmts.stored_report, {"m": mid}).scalar_one()
            rebuilt = {k: v for k, v in stored.items() if k not in NOT_SECTIONS}
            rebuilt.update((k, v) for k, v in report.items() if k != "unchanged")
            ingest.report = rebuilt
            return
        collected = parse_iso(report["collected_at"])
        inserted = conn.execute(statements(conn.engine).report, {
            "report_id": report["report_id"], "machine_id": mid, "agent_id": ingest.agent.id,
            "kind": report["kind"], "collected_at": collected, "received_at": ingest.now,
            "body": report}).first()
        ingest.finished = True
        if inserted is None:  # a replay: nothing changes
            return
        sequence = report.get("sequence")
        if is_newer(sequence, collected, ingest.now, row.last_sequence, row.last_collected_at):
            conn.execute(stmts.seen_current, {"m": mid, "now": ingest.now,
                                              "report_id": report["report_id"],
                                              "collected_at": collected, "sequence": sequence})
        else:
            conn.execute(stmts.seen, {"m": mid, "now": ingest.now})
        conn.execute(statements(conn.engine).agent_seen,
                     {"agent_id": ingest.agent.id, "seen": ingest.now})
        ingest.stored = ingest.unchanged = True
