"""unchanged: a report that says its sections are those the collector already holds.

The agent sends `unchanged: true` with the `facts_digest` the collector acknowledged
(docs/report-format.md, "Unchanged reports"). `machines.facts_digest` holds the facts
key of the machine's current report: the digest plus a hash of everything else its
facts were built from (agent, unit, day, report kind and age, clock offset minute:
kiemke.compliance.facts.envelope_facts). Three cases:

- same key: nothing the rules read changed. The report row (the small body as sent) and
  the machine's last_seen / last report are written (on the driver's cursor); assets
  and evaluation are skipped, the pipeline ends here.
- same digest, other envelope (a new day, another kind, another clock offset minute,
  re-enrolled): the stored report's sections are put under this envelope and the report
  goes through store -> assets -> evaluate like a full one.
- another or no digest (database restored, facts changed meanwhile): 409
  `facts_digest_unknown`, nothing written; the agent sends the same report in full.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Update, and_, bindparam, case, or_, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect

from kiemke.collector.db.prepared import Prepared, RawSQL, RawTransaction
from kiemke.collector.db.tables import machines, reports
from kiemke.collector.db.types import UTCDateTime
from kiemke.collector.ingest import REPORT_COLUMNS, AgentCredential, statements_for
from kiemke.collector.pipeline.base import Ingest, Rejected
from kiemke.collector.pipeline.ingest_lock import lock_first
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


def _seen() -> Update:
    """The machine's last seen, and its last report when this one is newer."""
    old = machines.c
    seq = bindparam("sequence", type_=BigInteger)
    collected = bindparam("collected_at", type_=UTCDateTime)
    now = bindparam("now", type_=UTCDateTime)
    # The rule of the machine upsert (kiemke.collector.ingest) for the same credential
    # (the facts key holds the agent): the counter when both carry one, else
    # collection time unless the stored time lies after now (a clock that ran ahead).
    newer = case((and_(seq.is_not(None), old.last_sequence.is_not(None)),
                  seq > old.last_sequence),
                 else_=or_(collected >= old.last_collected_at, old.last_collected_at > now))
    return (update(machines).where(machines.c.machine_id == bindparam("m"))
            .values(last_seen=now,
                    last_report_id=case((newer, bindparam("report_id")),
                                        else_=old.last_report_id),
                    last_collected_at=case((newer, collected), else_=old.last_collected_at),
                    last_sequence=case((newer, seq), else_=old.last_sequence)))


class _Statements:
    """Prepared per dialect (kiemke.collector.db.prepared): the fast path runs on the
    driver's cursor."""

    def __init__(self, dialect: Dialect) -> None:
        # SQLite, when report_if_held inserted nothing: another key, or a replay.
        self.current = Prepared(select(machines.c.facts_digest)
                                .where(machines.c.machine_id == bindparam("m"))
                                .with_for_update(), dialect)
        # sqlite3 takes named parameters (a dict): each value is converted once, not once
        # per place it appears (`seen` has `now` and `collected_at` four times each).
        fast = sqlite.dialect(paramstyle="named") if dialect.name == "sqlite" else dialect
        self.seen = Prepared(_seen(), fast)
        self.agent_seen = Prepared(statements_for(dialect.name).agent_seen, fast)
        # SQLite: the key check and the report row in one statement (PostgreSQL: PG_SEEN
        # below): the row is inserted only when the machine holds this facts key, so a
        # returned row means "held and new".
        self.report_if_held: Prepared | None = None
        if dialect.name == "sqlite":
            held_row = select(*(
                machines.c.machine_id if c == "machine_id"
                else bindparam(c, type_=reports.c[c].type) for c in REPORT_COLUMNS
            )).where(machines.c.machine_id == bindparam("m"),
                     machines.c.facts_digest == bindparam("key"))
            self.report_if_held = Prepared(
                sqlite.insert(reports)
                .from_select(list(REPORT_COLUMNS), held_row)
                .on_conflict_do_nothing(index_elements=["machine_id", "report_id"])
                .returning(reports.c.report_id), fast)
        self.stored_report = select(machines.c.report).where(
            machines.c.machine_id == bindparam("m"))
        self.held = select(machines.c.facts_digest).with_for_update().where(
            machines.c.machine_id == bindparam("m"))


# PostgreSQL: the whole common case in ONE statement, one round trip (each costs more in
# psycopg than the statement in the server): the key check, the report row, the
# machine's last seen (the newer-report rule of _seen) and the agent's.
# Data-modifying CTEs all run; `ins` is empty for another key or a replay, and then
# nothing else changes. Returns (key matched, report inserted).
PG_SEEN = """
WITH cur AS (
  SELECT machine_id FROM machines
  WHERE machine_id = %(m)s AND facts_digest = %(key)s FOR UPDATE),
ins AS (
  INSERT INTO reports (report_id, machine_id, agent_id, kind, collected_at, received_at, body)
  SELECT %(report_id)s::varchar, machine_id, %(agent_id)s::varchar, %(kind)s::varchar,
         %(collected_at)s::timestamptz, %(now)s::timestamptz, %(body)s::jsonb FROM cur
  ON CONFLICT (machine_id, report_id) DO NOTHING RETURNING machine_id),
newer AS (
  SELECT CASE WHEN %(sequence)s::bigint IS NOT NULL AND m.last_sequence IS NOT NULL
              THEN %(sequence)s::bigint > m.last_sequence
              ELSE (%(collected_at)s::timestamptz >= m.last_collected_at
                    OR m.last_collected_at > %(now)s::timestamptz) END AS yes
  FROM machines m JOIN ins ON m.machine_id = ins.machine_id),
seen AS (
  UPDATE machines SET last_seen = %(now)s::timestamptz,
    last_report_id = CASE WHEN newer.yes THEN %(report_id)s::varchar
                          ELSE machines.last_report_id END,
    last_collected_at = CASE WHEN newer.yes THEN %(collected_at)s::timestamptz
                             ELSE machines.last_collected_at END,
    last_sequence = CASE WHEN newer.yes THEN %(sequence)s::bigint
                         ELSE machines.last_sequence END
  FROM newer WHERE machines.machine_id = %(m)s RETURNING 1),
agent AS (
  UPDATE agents SET last_seen = %(now)s::timestamptz
  WHERE id = %(agent_id)s AND EXISTS (SELECT 1 FROM ins) RETURNING 1)
SELECT (SELECT count(*) FROM cur), (SELECT count(*) FROM ins),
       (SELECT count(*) FROM seen), (SELECT count(*) FROM agent)
"""
_PG_SEEN = RawSQL(PG_SEEN)


@cache
def _statements(dialect: Dialect) -> _Statements:
    return _Statements(dialect)


class UnchangedStep:
    """First in the transaction; a report without `unchanged` passes untouched."""

    name: ClassVar[str] = "unchanged"
    in_transaction: ClassVar[bool] = True

    def run(self, ingest: Ingest) -> None:
        report, agent, conn = ingest.report, ingest.agent, ingest.db
        if not report.get("unchanged"):
            return
        stmts = _statements(conn.engine.dialect)
        # The common case on the driver's cursor, in this same transaction
        # (kiemke.collector.db.prepared): SQLAlchemy's execute cost more than the SQL.
        tx = RawTransaction(conn.connection.driver_connection, conn.engine.dialect,
                            on_lost=conn.invalidate)
        mid = report["identity"]["machine_id"]
        key = facts_key(report, agent, ingest.now)
        if conn.engine.dialect.name == "postgresql":
            if self._postgresql(tx, ingest, key, lock_first(conn)):
                return
            held = conn.execute(stmts.held, {"m": mid}).scalar()
        else:
            if self._sqlite(tx, stmts, ingest, key):
                return
            row = tx.one(stmts.current, {"m": mid})
            held = row[0] if row is not None else None
            if held is not None and held == key:  # held, and the report row is there
                ingest.finished = True  # a replay: nothing changes
                return
        if not (held or "").startswith(report["facts_digest"] + ":"):
            raise Rejected(409, "facts_digest_unknown", "facts_digest",
                           "the collector does not hold this machine's facts with this "
                           "digest (its database was restored, or the facts changed "
                           "meanwhile); the agent sends the same report in full, nothing "
                           "to do")
        stored = conn.execute(stmts.stored_report, {"m": mid}).scalar_one()
        rebuilt = {k: v for k, v in stored.items() if k not in NOT_SECTIONS}
        rebuilt.update((k, v) for k, v in report.items() if k != "unchanged")
        ingest.report = rebuilt  # store -> assets -> evaluate take it as a full report

    @staticmethod
    def _sqlite(tx: RawTransaction, stmts: _Statements, ingest: Ingest,
                key: str | None) -> bool:
        """The report row if the machine holds `key`, then the machine's and the agent's
        last seen; True when recorded. False: another key, or a replay (run() tells)."""
        report, mid = ingest.report, ingest.report["identity"]["machine_id"]
        if key is None or stmts.report_if_held is None:
            return False
        collected = parse_iso(report["collected_at"])
        inserted = tx.one(stmts.report_if_held, {
            "report_id": report["report_id"], "m": mid, "key": key,
            "agent_id": ingest.agent.id, "kind": report["kind"], "collected_at": collected,
            "received_at": ingest.now, "body": report})
        if inserted is None:
            return False
        tx.run(stmts.seen, {"m": mid, "now": ingest.now, "report_id": report["report_id"],
                            "collected_at": collected, "sequence": report.get("sequence")})
        tx.run(stmts.agent_seen, {"agent_id": ingest.agent.id, "seen": ingest.now})
        ingest.finished = ingest.stored = ingest.unchanged = True
        return True

    @staticmethod
    def _postgresql(tx: RawTransaction, ingest: Ingest, key: str | None,
                    first: tuple[Prepared, Mapping[str, Any]] | None) -> bool:
        """PG_SEEN (after `first`, the ingest lock when pending, in the same round trip);
        True when the pipeline ends here (recorded, or a replay)."""
        report = ingest.report
        row = tx.one(_PG_SEEN, first=first, values={
            "m": report["identity"]["machine_id"], "key": key,
            "report_id": report["report_id"], "agent_id": ingest.agent.id,
            "kind": report["kind"], "collected_at": parse_iso(report["collected_at"]),
            "now": ingest.now, "sequence": report.get("sequence"),
            "body": json.dumps(report, ensure_ascii=False)})
        matched, inserted = (row[0], row[1]) if row is not None else (0, 0)
        if not matched:
            return False
        ingest.finished = True
        ingest.stored = ingest.unchanged = bool(inserted)
        return True
