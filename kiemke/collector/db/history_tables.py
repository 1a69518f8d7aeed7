"""Replayable history (issue 9): what period reports and the ranking are built from.

Written by the daily job (kiemke/collector/reports/history.py) and never by ingest:
- `history_intervals`: per machine x machine rule (and unit x unit rule) the state
  intervals [start_at, end_at) with the machine's unit, so a report can name the
  machines failing at period end and count the days each was failing;
- `history_presence`: per machine the intervals it was active or stale, with its unit
  and hostname as they were;
- `history_rulesets`: every rule set in force on some day, by fingerprint, with the
  rule definitions kept (titles, source, target, severity);
- `history_days`: one row per closed local day: the rule set in force that day;
- `history_units`: the unit tree as it was each day (name, path, parent) with its
  machine, reporting and depreciation counts rolled up over the subtree;
- `history_lock`: the lock row that lets one collector instance run the job on SQLite
  (PostgreSQL uses an advisory lock).
Per unit x rule x day counts stay in `compliance_daily` (compliance_tables.py), which
gained its `target` column in migration 0008.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, Index, Integer, String, Table, Text

from kiemke.collector.db.tables import metadata
from kiemke.collector.db.types import JSONType, UTCDateTime

# `subject` is a machine id for machine rules, "unit:<id>" for unit rules (machine ids
# are hex, so the two never collide). `reason` is the reason when the interval began,
# never rewritten, so a closed period reads the same text forever.
history_intervals = Table(
    "history_intervals", metadata,
    Column("subject", String(40), primary_key=True),
    Column("rule_id", String(64), primary_key=True),
    Column("start_at", UTCDateTime, primary_key=True),
    Column("end_at", UTCDateTime, nullable=True),
    Column("unit_id", Integer, nullable=False),
    Column("result", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Index("ix_history_intervals_end_at", "end_at"),
    # The failing intervals of a rule in force at an instant (a report's failing machines;
    # migration 0010).
    Index("ix_history_intervals_rule_result_end", "rule_id", "result", "end_at"),
)

history_presence = Table(
    "history_presence", metadata,
    Column("machine_id", String(32), primary_key=True),
    Column("start_at", UTCDateTime, primary_key=True),
    Column("end_at", UTCDateTime, nullable=True),
    Column("unit_id", Integer, nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("status", String(8), nullable=False),  # active | stale
    # The machine's last_seen when this row was written: a stale interval ends at the
    # first report after it.
    Column("last_seen", UTCDateTime, nullable=True),
    Index("ix_history_presence_end_at", "end_at"),
)

history_rulesets = Table(
    "history_rulesets", metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("rules", JSONType, nullable=False),
    Column("first_day", Date, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

history_days = Table(
    "history_days", metadata,
    Column("day", Date, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("timezone", String(64), nullable=False),
    # "live": closed by the job on the night after the day; "catch-up": replayed from
    # the intervals after the job had not run; "simulated": written by simulate.py.
    Column("source", String(16), nullable=False),
    Column("closed_at", UTCDateTime, nullable=False),
)

history_units = Table(
    "history_units", metadata,
    Column("day", Date, primary_key=True),
    Column("unit_id", Integer, primary_key=True),
    Column("parent_id", Integer, nullable=True),
    Column("name", String(255), nullable=False),
    Column("code", String(64), nullable=True),
    Column("path", Text, nullable=False),
    Column("level", Integer, nullable=False),
    Column("machines", Integer, nullable=False),
    Column("active", Integer, nullable=False),
    Column("stale", Integer, nullable=False),
    Column("depreciated_in_service", Integer, nullable=False),
    Column("replace_next_year", Integer, nullable=False),
)

history_lock = Table(
    "history_lock", metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(64), nullable=True),
    Column("acquired_at", UTCDateTime, nullable=True),
    Column("synced_at", UTCDateTime, nullable=True),  # the last interval sync
)
