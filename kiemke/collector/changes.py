"""Change versions: a counter per topic, bumped in the transaction that changes the data.

/metrics keeps what it renders from the database per process and reuses it while the
versions it was built from are unchanged (plus what it reads live: the unit tree and the
stale machines). A version is read and compared, never interpreted: a bump only means
"something in this topic changed".

Topics:
- COMPLIANCE: rule_results, rule_counts, unit_rule_results (bumped by
  kiemke.collector.compliance.store in the writing transaction);
- MACHINES: rows of `machines` added or removed, or their hostname, unit or agent version
  changed;
- UNITS: any change to `units` (added, renamed, moved).
MACHINES and UNITS are bumped by database triggers (migration 0004): every writer is
covered, and the usual report, which changes none of these columns, fires nothing.

The depreciation families use assets' own `asset_state.version` (assets/store.py).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, String, Table, select, update

from kiemke.collector.db.tables import metadata

COMPLIANCE = "compliance"
MACHINES = "machines"
UNITS = "units"
TOPICS = (COMPLIANCE, MACHINES, UNITS)

change_versions = Table(
    "change_versions", metadata,
    Column("topic", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
)


def bump(conn: Connection, topic: str) -> None:
    """Mark `topic` changed, inside the caller's write transaction.

    On PostgreSQL this locks the topic's row until commit: call it after the data rows
    of the transaction are written (callers keep one order), so that concurrent writers
    queue on it instead of deadlocking.
    """
    conn.execute(update(change_versions).where(change_versions.c.topic == topic)
                 .values(version=change_versions.c.version + 1))


def versions(conn: Connection) -> dict[str, int]:
    """{topic: version}; a topic missing from the table reads as -1."""
    found = dict(conn.execute(select(change_versions.c.topic, change_versions.c.version)).all())
    return {topic: int(found.get(topic, -1)) for topic in TOPICS}
