"""Change tracking: the contract between the writers and /metrics' per-process caches.

/metrics keeps what it renders from the database per process and reuses it while the
versions it was built from are unchanged (plus what it reads live: the unit tree and the
stale machines). A version is read and compared, never interpreted: a bump only means
"something in this topic changed".

Topics (`change_versions` rows):
- COMPLIANCE: rule_results, rule_counts, unit_rule_results. Writers record the (unit_id,
  rule_id) blocks they changed with `record_compliance()`, and the (machine_id, rule_id)
  results behind them; `flush()` bumps the version once per transaction and logs those
  blocks in `compliance_changes` (migration 0005) and the machine results in
  `compliance_machine_changes` (migration 0013), so /metrics rebuilds only those blocks
  and re-reads only those machines. A new writer of rule_results must name its machines,
  or /metrics re-reads its blocks whole. `write_transaction()` calls `flush()` last,
  just before commit (the ingest pipeline's `changes` step calls it explicitly), so the
  version row is the last lock every writer takes: no deadlock can form on it, and
  versions commit in order (a reader that sees version v sees every version before it).
  One exception: a group-commit batch of reports (pipeline/group_commit.py) runs each
  report's `changes` step before the next report's rows, so there the version row is not
  last; ingest transactions hold the ingest lock instead and never meet each other. A
  plain `bump(conn, COMPLIANCE)` (a recount) leaves a gap in the log, which readers take
  as "anything may have changed".
- MACHINES: rows of `machines` added or removed, or their hostname, unit or agent
  version changed; MACHINE_LABELS: rows removed, or their hostname or unit changed (what
  the per-machine rule series show); UNITS: any change to `units`. These three are bumped
  by database triggers (migrations 0004 and 0005), so every writer is covered and the
  usual report, which changes none of these columns, fires nothing.
- The depreciation families use the assets part's own `asset_state.version`
  (kiemke/collector/assets/store.py, bumped by every writer of machine_depreciation).

What a change must do:
- A new table that a metric family reads: its writers bump a topic in the writing
  transaction, either by a trigger (a new migration, as 0004 does for `machines`) or by
  calling `bump()` / `record_compliance()`; add the topic to TOPICS and insert its row
  in the migration.
- A new column that a family shows: when the column lives in `machines` or `units`, the
  triggers' WHEN condition (migrations 0004/0005) must compare it, or the family
  will not see the change.
- A new metric family: key its cached text on the versions it reads
  (kiemke.collector.scrape.change_versions, kiemke.collector.scrape.Memo) and on what
  it reads live (units, stale machines), never on time alone; a test in
  tests/test_metrics_incremental.py compares it with a fresh build after changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

from kiemke.collector.db.tables import metadata

COMPLIANCE = "compliance"
MACHINES = "machines"
MACHINE_LABELS = "machine_labels"
UNITS = "units"
TOPICS = (COMPLIANCE, MACHINES, MACHINE_LABELS, UNITS)

# Versions kept in the log: a process whose cache is older rebuilds everything. At 100
# changing reports a second this is over a quarter of an hour of scrapes.
LOG_KEEP = 100_000
LOG_PRUNE_EVERY = 1024
# Machine results logged per version at most: a larger change (a rule re-evaluated over
# the fleet) logs its blocks only, which readers re-read whole (cheaper than replacing
# that many lines, and no large log write in the re-evaluation's transaction).
MACHINE_LOG_MAX = 5000
_PENDING = "kiemke_compliance_changes"  # conn.info key: (transaction, blocks recorded)

change_versions = Table(
    "change_versions", metadata,
    Column("topic", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

compliance_changes = Table(
    "compliance_changes", metadata,
    Column("version", BigInteger, nullable=False),
    Column("unit_id", Integer, nullable=False),
    Column("rule_id", String(64), nullable=False),
    PrimaryKeyConstraint("version", "unit_id", "rule_id", name="pk_compliance_changes"),
)

# The machine x rule results each version changed (migration 0013), beside its blocks:
# the failing series re-read these machines rather than their blocks' every machine.
compliance_machine_changes = Table(
    "compliance_machine_changes", metadata,
    Column("version", BigInteger, nullable=False),
    Column("machine_id", String(32), nullable=False),
    Column("rule_id", String(64), nullable=False),
    PrimaryKeyConstraint("version", "machine_id", "rule_id",
                         name="pk_compliance_machine_changes"),
)


def bump(conn: Connection, topic: str) -> None:
    """Mark `topic` changed, inside the caller's write transaction.

    On PostgreSQL this locks the topic's row until commit: call it after the data rows
    of the transaction are written (callers keep one order), so that concurrent writers
    queue on it instead of deadlocking. For COMPLIANCE this means "anything may have
    changed"; `record_compliance()` says what did.
    """
    conn.execute(update(change_versions).where(change_versions.c.topic == topic)
                 .values(version=change_versions.c.version + 1))


def record_compliance(conn: Connection, blocks: Iterable[tuple[int, str]],
                      machine_rules: Iterable[tuple[str, str]] = ()) -> None:
    """Note (unit_id, rule_id) blocks whose results or counts this transaction changed,
    and the (machine_id, rule_id) results behind them (every writer of rule_results
    names them); `flush()` bumps COMPLIANCE for all of them once, at the end of the
    transaction."""
    transaction = conn.get_transaction()
    entry = conn.info.get(_PENDING)
    if entry is None or entry[0] is not transaction:
        # conn.info outlives the transaction (pooled connection): a set left by a
        # transaction that rolled back is not this one's.
        pending: set[tuple[int, str]] = set()
        pending_machines: set[tuple[str, str]] = set()
        entry = conn.info[_PENDING] = (transaction, pending, pending_machines)
    entry[1].update(blocks)
    entry[2].update(machine_rules)


def flush(conn: Connection) -> int | None:
    """Bump COMPLIANCE for the blocks recorded in this transaction, if any; return the
    new version (None when nothing was recorded). Called last in a write transaction."""
    entry = conn.info.pop(_PENDING, None)
    if entry is None or entry[0] is not conn.get_transaction() or not entry[1]:
        return None
    return bump_compliance(conn, entry[1], entry[2])


def discard(conn: Connection) -> None:
    """Forget what this transaction recorded (it is rolling back)."""
    conn.info.pop(_PENDING, None)


def bump_compliance(conn: Connection, blocks: Iterable[tuple[int, str]],
                    machine_rules: Iterable[tuple[str, str]] = ()) -> int:
    """Bump COMPLIANCE and log the (unit_id, rule_id) blocks this transaction changed,
    and the (machine_id, rule_id) results it changed.

    Writers call `record_compliance()` and leave this to `flush()`, which runs it last in
    the transaction; the log rows are new keys (the version is this transaction's own),
    so they wait on nobody. Returns the new version.
    """
    version = conn.execute(
        update(change_versions).where(change_versions.c.topic == COMPLIANCE)
        .values(version=change_versions.c.version + 1)
        .returning(change_versions.c.version)).scalar()
    if version is None:  # a database without the row: readers rebuild everything
        return -1
    rows = [{"version": version, "unit_id": unit_id, "rule_id": rule_id}
            for unit_id, rule_id in sorted(set(blocks))]
    if rows:
        conn.execute(insert(compliance_changes), rows)
    machine_rows = [{"version": version, "machine_id": machine_id, "rule_id": rule_id}
                    for machine_id, rule_id in sorted(set(machine_rules))]
    if 0 < len(machine_rows) <= MACHINE_LOG_MAX:
        conn.execute(insert(compliance_machine_changes), machine_rows)
    if version % LOG_PRUNE_EVERY == 0:
        for table in (compliance_changes, compliance_machine_changes):
            conn.execute(delete(table).where(table.c.version <= version - LOG_KEEP))
    return int(version)


def versions(conn: Connection) -> dict[str, int]:
    """{topic: version}; a topic missing from the table reads as -1."""
    found = dict(conn.execute(select(change_versions.c.topic, change_versions.c.version)).all())
    return {topic: int(found.get(topic, -1)) for topic in TOPICS}


class ComplianceLog(NamedTuple):
    """What COMPLIANCE versions after..upto changed."""

    blocks: set[tuple[int, str]]  # (unit_id, rule_id)
    machine_rules: set[tuple[str, str]]  # (machine_id, rule_id)
    # Blocks of versions that named no machine (a writer older than migration 0013, or a
    # unit-rule result): their machines are not known, so a reader re-reads them whole.
    unnamed: set[tuple[int, str]]


def compliance_log_after(conn: Connection, after: int, upto: int) -> ComplianceLog | None:
    """The blocks and machine results changed by COMPLIANCE versions after..upto, or None
    when the log cannot tell (a plain bump, or versions pruned)."""
    if upto <= after:
        return ComplianceLog(set(), set(), set())
    per_version: dict[int, list[tuple[int, str]]] = {}
    for version, unit_id, rule_id in conn.execute(
            select(compliance_changes.c.version, compliance_changes.c.unit_id,
                   compliance_changes.c.rule_id)
            .where(compliance_changes.c.version > after,
                   compliance_changes.c.version <= upto)):
        per_version.setdefault(version, []).append((unit_id, rule_id))
    if len(per_version) != upto - after:
        return None
    named: set[int] = set()
    machine_rules: set[tuple[str, str]] = set()
    for version, machine_id, rule_id in conn.execute(
            select(compliance_machine_changes.c.version,
                   compliance_machine_changes.c.machine_id,
                   compliance_machine_changes.c.rule_id)
            .where(compliance_machine_changes.c.version > after,
                   compliance_machine_changes.c.version <= upto)):
        named.add(version)
        machine_rules.add((machine_id, rule_id))
    blocks: set[tuple[int, str]] = set()
    unnamed: set[tuple[int, str]] = set()
    for version, logged in per_version.items():
        blocks.update(logged)
        if version not in named:
            unnamed.update(logged)
    return ComplianceLog(blocks, machine_rules, unnamed)
