"""Change versions: a counter per topic, bumped in the transaction that changes the data.

/metrics keeps what it renders from the database per process and reuses it while the
versions it was built from are unchanged (plus what it reads live: the unit tree and the
stale machines). A version is read and compared, never interpreted: a bump only means
"something in this topic changed".

Topics:
- COMPLIANCE: rule_results, rule_counts, unit_rule_results (bumped by
  kiemke.collector.evaluation.store in the writing transaction);
- MACHINES: rows of `machines` added or removed, or their hostname, unit or agent version
  changed;
- MACHINE_LABELS: rows of `machines` removed, or their hostname or unit changed (what
  the per-machine rule series show; an agent upgrade does not move it);
- UNITS: any change to `units` (added, renamed, moved).
MACHINES, MACHINE_LABELS and UNITS are bumped by database triggers (migrations 0004 and
0005): every writer is covered, and the usual report, which changes none of these
columns, fires nothing.

The compliance change log (`compliance_changes`, migration 0005) says which blocks
(unit x rule) a COMPLIANCE version changed, so /metrics rebuilds only those. The writer
that bumps through `bump_compliance()` holds the version row's lock until it commits, so
versions commit in order: a reader that sees version v sees every version before it. A
bump without log rows (plain `bump()`: a recount, a re-evaluation) leaves a gap in the
log, which readers take as "anything may have changed".

The depreciation families use assets' own `asset_state.version` (assets/store.py).
"""

from __future__ import annotations

from collections.abc import Iterable

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


def bump(conn: Connection, topic: str) -> None:
    """Mark `topic` changed, inside the caller's write transaction.

    On PostgreSQL this locks the topic's row until commit: call it after the data rows
    of the transaction are written (callers keep one order), so that concurrent writers
    queue on it instead of deadlocking. For COMPLIANCE this means "anything may have
    changed"; `bump_compliance()` says what did.
    """
    conn.execute(update(change_versions).where(change_versions.c.topic == topic)
                 .values(version=change_versions.c.version + 1))


def bump_compliance(conn: Connection, blocks: Iterable[tuple[int, str]]) -> int:
    """Bump COMPLIANCE and log the (unit_id, rule_id) blocks this transaction changed.

    Same place in the lock order as `bump()`; the log rows are new keys (the version is
    this transaction's own), so they wait on nobody. Returns the new version.
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
    if version % LOG_PRUNE_EVERY == 0:
        conn.execute(delete(compliance_changes)
                     .where(compliance_changes.c.version <= version - LOG_KEEP))
    return int(version)


def versions(conn: Connection) -> dict[str, int]:
    """{topic: version}; a topic missing from the table reads as -1."""
    found = dict(conn.execute(select(change_versions.c.topic, change_versions.c.version)).all())
    return {topic: int(found.get(topic, -1)) for topic in TOPICS}


def compliance_changes_after(conn: Connection, after: int, upto: int
                             ) -> set[tuple[int, str]] | None:
    """The blocks changed by COMPLIANCE versions after..upto, or None when the log cannot
    tell (a plain bump, or versions pruned): then anything may have changed."""
    if upto <= after:
        return set()
    seen: set[int] = set()
    blocks: set[tuple[int, str]] = set()
    for version, unit_id, rule_id in conn.execute(
            select(compliance_changes.c.version, compliance_changes.c.unit_id,
                   compliance_changes.c.rule_id)
            .where(compliance_changes.c.version > after,
                   compliance_changes.c.version <= upto)):
        seen.add(version)
        blocks.add((unit_id, rule_id))
    return blocks if len(seen) == upto - after else None
