"""Compliance tables (issue 4): results per machine and unit, waivers, counts, history.

Defined on the collector's `metadata` so Alembic sees one schema; migration 0002 creates
them. docs/metrics.md explains how the metrics are built from them.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, Float, Index, Integer, String, Table, Text

from kiemke.collector.db.tables import metadata
from kiemke.collector.db.types import UTCDateTime

# One row per machine x machine rule. `unit_id` repeats the machine's unit so that
# counts move with the machine and per-unit queries need no join; `since` is when the
# current result began (kept while the result stays the same).
rule_results = Table(
    "rule_results", metadata,
    Column("machine_id", String(32), primary_key=True),
    Column("rule_id", String(64), primary_key=True),
    Column("unit_id", Integer, nullable=False),
    Column("result", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("since", UTCDateTime, nullable=False),
    Column("evaluated_at", UTCDateTime, nullable=False),
    Index("ix_rule_results_rule_result_unit", "rule_id", "result", "unit_id"),
)

# One row per unit x unit rule, evaluated over the unit's own active machines.
unit_rule_results = Table(
    "unit_rule_results", metadata,
    Column("unit_id", Integer, primary_key=True),
    Column("rule_id", String(64), primary_key=True),
    Column("result", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("since", UTCDateTime, nullable=False),
    Column("evaluated_at", UTCDateTime, nullable=False),
)

waivers = Table(
    "waivers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("machine_id", String(32), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("author", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("ix_waivers_machine_id", "machine_id"),
    Index("ix_waivers_expires_at", "expires_at"),
)

# Machines per DIRECT unit x rule x result (stale machines included), kept by deltas in
# the ingest transaction so that /metrics reads a few thousand rows, not a million.
rule_counts = Table(
    "rule_counts", metadata,
    Column("unit_id", Integer, primary_key=True),
    Column("rule_id", String(64), primary_key=True),
    Column("result", String(16), primary_key=True),
    Column("n", Integer, nullable=False),
)

# A snapshot per day (local calendar) x unit x rule, rolled up over the subtree.
compliance_daily = Table(
    "compliance_daily", metadata,
    Column("day", Date, primary_key=True),
    Column("unit_id", Integer, primary_key=True),
    Column("rule_id", String(64), primary_key=True),
    Column("pass", Integer, nullable=False),
    Column("fail", Integer, nullable=False),
    Column("unknown", Integer, nullable=False),
    Column("not_applicable", Integer, nullable=False),
    Column("exempt", Integer, nullable=False),
    Column("stale", Integer, nullable=False),
    Column("ratio", Float, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    # The rule's target that day (migration 0008); NULL on rows written before it.
    Column("target", Float, nullable=True),
    # One unit's trend (the console's charts) without scanning every unit of each day;
    # since migration 0010 it also holds the columns a period report and the ranking
    # aggregate (reports/aggregates.py), so those reads never visit the table rows.
    Index("ix_compliance_daily_unit_id_day", "unit_id", "day", "rule_id", "ratio", "target"),
)

# The rule set the stored results were computed with (one row, id = 1). A collector
# that starts with other rules claims the re-evaluation (pending_*) so that only one
# worker or instance does it.
ruleset_state = Table(
    "ruleset_state", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("fingerprint", String(64), nullable=True),
    Column("config_fingerprint", String(64), nullable=True),
    Column("applied_at", UTCDateTime, nullable=True),
    Column("pending_fingerprint", String(64), nullable=True),
    Column("claimed_at", UTCDateTime, nullable=True),
    # The last periodic maintenance pass: workers skip theirs when another just ran.
    Column("maintained_at", UTCDateTime, nullable=True),
    # What the stored results were computed with, besides `fingerprint` (migration 0012;
    # kiemke.collector.evaluation.rulestate): each enabled rule's fingerprint (a JSON
    # object, rule id -> SHA-256 of its definition), so that a change of some rules
    # re-evaluates only theirs, and the rule engine's. NULL: not known, a full pass.
    Column("rule_fingerprints", Text, nullable=True),
    Column("engine_fingerprint", String(64), nullable=True),
)
